/**
 * The explanation tree of a check's answer, drawn from shape.ts's view model: nested lists whose
 * branches open and close with a button (aria-expanded: Tab to it, Enter or Space to toggle),
 * the witness path emphasised for an allowed answer, every failed branch with its reason for a
 * denied one. The API's text is rendered as text, never as HTML.
 */
import { useMemo, useState } from 'preact/hooks'
import { TupleText } from '../components.tsx'
import { STEP_NAMES, countNodes, type NodeRole, type TupleRef, type ViewNode } from './shape.ts'
import './explain.css'

const ROLE_TEXT: Record<NodeRole, string> = {
  witness: 'granted',
  'not-excluded': 'false, as required',
  failed: 'failed',
  held: 'held',
  excluding: 'excluded it',
  skipped: 'not evaluated',
}

function initialOpen(root: ViewNode): Set<string> {
  const open = new Set<string>()
  const visit = (n: ViewNode) => {
    if (n.open) open.add(n.id)
    n.children.forEach(visit)
  }
  visit(root)
  return open
}

function allIds(root: ViewNode): Set<string> {
  const ids = new Set<string>()
  const visit = (n: ViewNode) => {
    if (n.children.length) ids.add(n.id)
    n.children.forEach(visit)
  }
  visit(root)
  return ids
}

/** ExplainTree: the whole tree, with buttons to open every branch, close them, or go back to the first view. */
export function ExplainTree({ root, label }: { root: ViewNode; label: string }) {
  const [open, setOpen] = useState(() => initialOpen(root))
  const size = useMemo(() => countNodes(root), [root])
  const toggle = (id: string) =>
    setOpen((s) => {
      const next = new Set(s)
      if (next.has(id)) next.delete(id)
      else next.add(id)
      return next
    })
  return (
    <div class="explain">
      <div class="explain-tools">
        <span class="muted">{size} steps</span>
        <button type="button" onClick={() => setOpen(allIds(root))}>
          Expand all
        </button>
        <button type="button" onClick={() => setOpen(new Set([root.id]))}>
          Collapse all
        </button>
        <button type="button" onClick={() => setOpen(initialOpen(root))}>
          Reset
        </button>
      </div>
      <ul class="xtree" aria-label={label}>
        <TreeNode node={root} open={open} toggle={toggle} />
      </ul>
    </div>
  )
}

function TreeNode({ node, open, toggle }: { node: ViewNode; open: Set<string>; toggle: (id: string) => void }) {
  const isOpen = open.has(node.id)
  const content = (
    <>
      <span class={`xmark ${node.allowed ? 'ok' : 'bad'}`}>{node.allowed ? '✓' : '✗'}</span>
      <span class="xstep">{STEP_NAMES[node.step] ?? node.step}</span>
      <span class="xlabel">{node.tuple ? <TupleText tuple={node.tuple} /> : node.label}</span>
      {node.tuple?.condition && <span class="xcond"> with {node.tuple.condition}</span>}
      <span class="xrole">{ROLE_TEXT[node.role]}</span>
    </>
  )
  return (
    <li class={`xnode role-${node.role}`} data-role={node.role} data-step={node.step}>
      {node.children.length > 0 ? (
        <button type="button" class="xrow xtoggle" aria-expanded={isOpen} onClick={() => toggle(node.id)}>
          <span class="xcaret" aria-hidden="true">
            {isOpen ? '▾' : '▸'}
          </span>
          {content}
        </button>
      ) : (
        <div class="xrow">
          <span class="xcaret" aria-hidden="true" />
          {content}
        </div>
      )}
      {node.reason && <div class="xreason">{node.reason}</div>}
      {isOpen && node.children.length > 0 && (
        <ul>
          {node.children.map((c) => (
            <TreeNode key={c.id} node={c} open={open} toggle={toggle} />
          ))}
        </ul>
      )}
    </li>
  )
}

/** WitnessList: the tuples that granted an allowed check, object first, numbered. */
export function WitnessList({ tuples, label = 'Witness tuples', empty }: { tuples: TupleRef[]; label?: string; empty: string }) {
  if (tuples.length === 0) return <p class="muted">{empty}</p>
  return (
    <ol class="witness" aria-label={label}>
      {tuples.map((t, i) => (
        <li key={i}>
          <TupleText tuple={t} />
          {t.condition && <span class="xcond"> with {t.condition}</span>}
        </li>
      ))}
    </ol>
  )
}
