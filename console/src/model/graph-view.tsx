/**
 * GraphView: the model drawn by cytoscape with the dagre layout (left to right), both loaded
 * with a dynamic import() so the first page's bundle carries neither. Styles go through
 * cytoscape's JS style API (set through the CSSOM: allowed by the console's CSP).
 *
 * Once the layout has stopped, the container carries `data-ready="true"` and
 * `data-node-count`, and the accessible companion (the nodes and edges as tables) is rendered
 * from cytoscape's own collections, so what is listed is what was drawn.
 */
import type cytoscapeLib from 'cytoscape'
import type { Core, EdgeSingular, ElementDefinition, NodeSingular, StylesheetJson } from 'cytoscape'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { ErrorNote, Loading } from '../components.tsx'
import type { AuthorizationModel } from '../types.ts'
import { buildGraph, type GraphEdge, type GraphNode } from './graph.ts'

let loaded: Promise<typeof cytoscapeLib> | undefined

/**
 * Cytoscape's renderer (checked for cytoscape 3.35.0, `BRp.init`) adds an inline <style>
 * (`position: relative` for its container) unless an element with this id is already in the
 * document: the CSP refuses inline styles, so a placeholder takes that id and the container gets
 * its position through Preact's style object (the CSSOM, allowed). This id is a private constant
 * of cytoscape: after an upgrade, the graph test's `assertClean()` is what catches a change.
 */
const CYTOSCAPE_STYLESHEET_ID = '__________cytoscape_stylesheet'

/** loadCytoscape: cytoscape with dagre registered, loaded once. */
function loadCytoscape() {
  if (!document.getElementById(CYTOSCAPE_STYLESHEET_ID)) {
    const placeholder = document.createElement('meta')
    placeholder.id = CYTOSCAPE_STYLESHEET_ID
    placeholder.name = 'cytoscape-stylesheet-in-model-css'
    document.head.append(placeholder)
  }
  loaded ??= Promise.all([import('cytoscape'), import('cytoscape-dagre')]).then(
    ([cy, dagre]) => {
      cy.default.use(dagre.default)
      return cy.default
    },
    (e: unknown) => {
      // Not cached: opening the tab again tries the import again.
      loaded = undefined
      throw e
    },
  )
  return loaded
}

const COLORS = { union: '#1f6feb', intersection: '#b35900', exclusion: '#cf222e', direct: '#57606a', computed: '#6639ba', ttu: '#1a7f37' }

const STYLE: StylesheetJson = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'font-size': 12,
      'font-family': 'system-ui, sans-serif',
      'text-valign': 'center',
      'text-halign': 'center',
      color: '#1b1f24',
      'background-color': '#e6eefb',
      'border-width': 1,
      'border-color': '#1f5fbf',
      shape: 'round-rectangle',
      width: (n: NodeSingular) => Math.max(28, String(n.data('label')).length * 7 + 14),
      height: 22,
      padding: '6px',
    },
  },
  {
    selector: 'node[kind = "type"]',
    style: {
      'text-valign': 'top',
      'font-weight': 'bold',
      'font-size': 14,
      'background-color': '#f6f8fa',
      'border-color': '#8c959f',
      padding: '14px',
      'text-background-color': '#ffffff',
      'text-background-opacity': 1,
      'text-background-padding': '2px',
    },
  },
  {
    selector: 'node[kind = "type"]:childless',
    style: { 'text-valign': 'center', 'background-color': '#fff8c5', 'border-color': '#9a6700', 'text-background-opacity': 0 },
  },
  { selector: 'node[kind = "operator"]', style: { shape: 'diamond', width: 44, height: 30, 'font-size': 10, color: '#ffffff', 'border-width': 0 } },
  { selector: 'node[operator = "union"]', style: { 'background-color': COLORS.union } },
  { selector: 'node[operator = "intersection"]', style: { 'background-color': COLORS.intersection } },
  { selector: 'node[operator = "exclusion"]', style: { 'background-color': COLORS.exclusion } },
  {
    selector: 'edge',
    style: {
      width: 1.5,
      'curve-style': 'bezier',
      'target-arrow-shape': 'triangle',
      'line-color': COLORS.direct,
      'target-arrow-color': COLORS.direct,
      label: 'data(label)',
      'font-size': 10,
      'text-rotation': 'autorotate',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.85,
      'text-background-padding': '1px',
      color: '#1b1f24',
    },
  },
  { selector: 'edge:loop', style: { 'control-point-step-size': 60, 'loop-direction': '0deg', 'loop-sweep': '-40deg' } },
  { selector: 'edge[kind = "computed"]', style: { 'line-color': COLORS.computed, 'target-arrow-color': COLORS.computed, 'line-style': 'dashed' } },
  { selector: 'edge[kind = "ttu"], edge[kind = "tupleset"]', style: { 'line-color': COLORS.ttu, 'target-arrow-color': COLORS.ttu, 'line-style': 'dotted', width: 2.5 } },
  { selector: 'edge[kind = "wildcard"]', style: { 'target-arrow-shape': 'triangle-tee' } },
  // An edge into an operator diamond has the operator's colour (as the legend shows it).
  { selector: 'edge[kind = "rewrite"]', style: { width: 3 } },
  { selector: 'edge[into = "union"]', style: { 'line-color': COLORS.union, 'target-arrow-color': COLORS.union } },
  { selector: 'edge[into = "intersection"]', style: { 'line-color': COLORS.intersection, 'target-arrow-color': COLORS.intersection } },
  { selector: 'edge[into = "exclusion"]', style: { 'line-color': COLORS.exclusion, 'target-arrow-color': COLORS.exclusion } },
  { selector: 'edge[side = "subtract"]', style: { 'line-color': COLORS.exclusion, 'target-arrow-color': COLORS.exclusion, 'target-arrow-shape': 'tee', width: 2.5 } },
  { selector: 'edge[condition]', style: { 'source-arrow-shape': 'circle', 'source-arrow-color': '#9a6700', color: '#7d4e00' } },
]

interface Drawn {
  nodes: GraphNode[]
  edges: GraphEdge[]
}

export function GraphView({ model }: { model: Pick<AuthorizationModel, 'type_definitions'> }) {
  const graph = useMemo(() => buildGraph(model), [model])
  const container = useRef<HTMLDivElement>(null)
  const cyRef = useRef<Core | null>(null)
  const [drawn, setDrawn] = useState<Drawn | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)

  useEffect(() => {
    let cancelled = false
    setDrawn(undefined)
    setError(undefined)
    loadCytoscape().then(
      (cytoscape) => {
        if (cancelled || !container.current) return
        try {
          draw(cytoscape, container.current)
        } catch (e) {
          // A build, style or layout failure is shown in place (not left "loading" forever).
          cyRef.current?.destroy()
          cyRef.current = null
          setError(e)
        }
      },
      (e) => !cancelled && setError(e),
    )
    function draw(cytoscape: typeof cytoscapeLib, target: HTMLDivElement) {
      const elements: ElementDefinition[] = [
        ...graph.nodes.map((n) => ({ group: 'nodes' as const, data: { ...n } })),
        ...graph.edges.map((e) => ({ group: 'edges' as const, data: { ...e } })),
      ]
      const cy = cytoscape({
        container: target,
        elements,
        style: STYLE,
        minZoom: 0.1,
        maxZoom: 4,
      })
      cyRef.current = cy
      const layout = cy.layout({ name: 'dagre', rankDir: 'LR', nodeSep: 18, rankSep: 70, edgeSep: 8, padding: 16, fit: true } as never)
      layout.one('layoutstop', () => {
        if (cancelled) return
        // The companion lists what cytoscape holds, not what was handed to it.
        setDrawn({
          nodes: cy.nodes().map((n: NodeSingular) => n.data() as GraphNode),
          edges: cy.edges().map((e: EdgeSingular) => e.data() as GraphEdge),
        })
      })
      layout.run()
    }
    return () => {
      cancelled = true
      cyRef.current?.destroy()
      cyRef.current = null
    }
  }, [graph])

  const zoom = (factor: number) => {
    const cy = cyRef.current
    if (!cy) return
    cy.zoom({ level: cy.zoom() * factor, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } })
  }

  return (
    <div class="graph-view">
      <div class="graph-toolbar" role="toolbar" aria-label="Graph view">
        <button type="button" onClick={() => cyRef.current?.fit(undefined, 16)} disabled={!drawn}>
          Fit
        </button>
        <button type="button" onClick={() => zoom(1.25)} disabled={!drawn}>
          Zoom in
        </button>
        <button type="button" onClick={() => zoom(0.8)} disabled={!drawn}>
          Zoom out
        </button>
        <Legend />
      </div>
      <ErrorNote error={error} context="Drawing the graph" />
      <div
        ref={container}
        class="graph-canvas"
        style={{ position: 'relative' }}
        role="img"
        aria-label="The model as a graph; the same nodes and edges are listed below"
        data-ready={drawn ? 'true' : 'false'}
        data-node-count={drawn ? String(drawn.nodes.length) : undefined}
        data-edge-count={drawn ? String(drawn.edges.length) : undefined}
      />
      {!drawn && !error && <Loading what="the graph" />}
      {drawn && <GraphTables drawn={drawn} />}
    </div>
  )
}

function Legend() {
  return (
    <ul class="graph-legend" aria-label="Legend">
      <li class="lg-direct">direct [type]</li>
      <li class="lg-computed">computed</li>
      <li class="lg-ttu">x from tupleset</li>
      <li class="lg-union">into or</li>
      <li class="lg-intersection">into and</li>
      <li class="lg-exclusion">into but not / subtracted</li>
      <li class="lg-condition">with condition</li>
    </ul>
  )
}

const KIND_TEXT: Record<GraphEdge['kind'], string> = {
  rewrite: 'rewrite',
  direct: 'direct',
  wildcard: 'direct (wildcard)',
  userset: 'direct (userset)',
  computed: 'computed userset',
  ttu: 'tuple to userset',
  tupleset: 'tuple to userset (tupleset)',
}

/** The accessible companion: the drawn nodes by type, and every edge. */
function GraphTables({ drawn }: { drawn: Drawn }) {
  const types = drawn.nodes.filter((n) => n.kind === 'type')
  return (
    <details class="graph-tables" open>
      <summary>Nodes and edges as tables</summary>
      <h2 id="graph-nodes">Types and relations</h2>
      <ul class="graph-node-list" aria-labelledby="graph-nodes">
        {types.map((t) => {
          const children = drawn.nodes.filter((n) => n.parent === t.id)
          return (
            <li key={t.id} data-node={t.id} data-kind="type">
              <strong>{t.label}</strong>
              {children.length > 0 && (
                <ul>
                  {children.map((c) => (
                    <li key={c.id} data-node={c.id} data-kind={c.kind}>
                      {c.kind === 'operator' ? `operator “${c.label}” (${c.id})` : c.id}
                    </li>
                  ))}
                </ul>
              )}
            </li>
          )
        })}
      </ul>
      <h2 id="graph-edges">Edges</h2>
      <div class="table-wrap">
        <table aria-labelledby="graph-edges">
          <thead>
            <tr>
              <th scope="col">From</th>
              <th scope="col">To</th>
              <th scope="col">Kind</th>
              <th scope="col">Label</th>
              <th scope="col">Condition</th>
            </tr>
          </thead>
          <tbody>
            {drawn.edges.map((e) => (
              <tr key={e.id}>
                <td>
                  <code>{e.source}</code>
                </td>
                <td>
                  <code>{e.target}</code>
                </td>
                <td>
                  {KIND_TEXT[e.kind]}
                  {e.into && ` into ${e.into}`}
                  {e.operator && ` (in ${e.operator}${e.side ? `, ${e.side}` : ''})`}
                </td>
                <td>
                  <code>{e.label}</code>
                </td>
                <td>{e.condition ? <code>{e.condition}</code> : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  )
}
