/**
 * Pieces shared by the Tuples, Changes and Requests pages: the latest model's types and
 * relations (suggestions for the fields), a tuple's condition, a page-size choice and the
 * back-and-forth pager over the API's continuation tokens (state in the URL, logic.ts).
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { get, storePath } from '../api.ts'
import { ErrorNote, useAsync } from '../components.tsx'
import type { AuthorizationModel, Condition } from '../types.ts'
import { setQuery } from '../router.ts'
import { nextPage, PAGE_SIZES, pageNumber, pageQuery, previousPage, relationsOfType, type ModelHints, type PageState } from './logic.ts'
import './shared.css'

export type { ModelHints } from './logic.ts'

/** useModelHints: the store's latest model, read once, as suggestions (never as a rule: the API decides). */
export function useModelHints(store: string) {
  return useAsync(async (): Promise<ModelHints> => {
    const answer = await get<{ authorization_models: AuthorizationModel[] }>(storePath(store, 'authorization-models'), { page_size: 1 })
    const model = answer.authorization_models[0]
    const relations: Record<string, string[]> = {}
    for (const t of model?.type_definitions ?? []) relations[t.type] = Object.keys(t.relations ?? {})
    const allRelations = [...new Set(Object.values(relations).flat())].sort()
    return { types: Object.keys(relations), relations, allRelations, conditions: Object.keys(model?.conditions ?? {}) }
  }, [store])
}

/** HintLists: the type and condition <datalist>s the fields point at (`list="hint-types"`, `list="hint-conditions"`). */
export function HintLists({ hints }: { hints?: ModelHints }) {
  return (
    <>
      <datalist id="hint-types">
        {hints?.types.map((t) => <option key={t} value={t} />)}
      </datalist>
      <datalist id="hint-conditions">
        {hints?.conditions.map((c) => <option key={c} value={c} />)}
      </datalist>
    </>
  )
}

/**
 * RelationHints: a <datalist> (`id`) of the relations of `type` in the model, or of every
 * relation when the type is empty or unknown. Each field has its own list, following the type
 * typed in that form (the filter's draft type, the add form's object type).
 */
export function RelationHints({ id, hints, type }: { id: string; hints?: ModelHints; type?: string }) {
  const relations = relationsOfType(hints, type)
  return (
    <datalist id={id}>
      {relations.map((r) => (
        <option key={r} value={r} />
      ))}
    </datalist>
  )
}

/** HintError: the model could not be read for suggestions (the fields still work). */
export function HintError({ error }: { error: unknown }) {
  return <ErrorNote error={error} context="The model's types could not be read for suggestions" />
}

/** ConditionText: `name` and its stored context as JSON, or a dash. */
export function ConditionText({ condition }: { condition?: Condition | null }) {
  if (!condition || !condition.name) return <span class="muted">—</span>
  const context = condition.context && Object.keys(condition.context).length > 0 ? JSON.stringify(condition.context) : undefined
  return (
    <span class="tuple-condition">
      <code class="tuple-condition-name">{condition.name}</code>
      {context && <code class="tuple-condition-context">{context}</code>}
    </span>
  )
}

/** PageSizeSelect: how many rows a page asks for. */
export function PageSizeSelect({ value, onChange }: { value: number; onChange: (size: number) => void }) {
  return (
    <label class="page-size">
      Page size
      <select value={String(value)} onChange={(e) => onChange(Number(e.currentTarget.value))}>
        {PAGE_SIZES.map((n) => (
          <option key={n} value={String(n)}>
            {n}
          </option>
        ))}
      </select>
    </label>
  )
}

/**
 * PageNav: first / previous / next over forward-only continuation tokens, the page number
 * between. `next` is the token the API answered ('' at the end).
 */
export function PageNav(props: {
  state: PageState
  next?: string
  label?: string
  previousLabel?: string
  nextLabel?: string
  onFirst: () => void
  onPrevious: () => void
  onNext: () => void
}) {
  const n = pageNumber(props.state)
  return (
    <nav class="pager tuples-pager" aria-label={props.label ?? 'Pages'}>
      <button type="button" disabled={n === 1} onClick={props.onFirst}>
        First page
      </button>
      <button type="button" disabled={n === 1} onClick={props.onPrevious}>
        {props.previousLabel ?? 'Previous page'}
      </button>
      <span class="page-number" aria-live="polite">
        Page {n}
      </span>
      <button type="button" disabled={!props.next} onClick={props.onNext}>
        {props.nextLabel ?? 'Next page'}
      </button>
    </nav>
  )
}

/** The query that drops the paging state: a new filter or page size starts at page 1. */
export const NO_PAGE = { token: undefined, prev: undefined }

/**
 * PagingBar: the page size and the page navigation of a paged list, both kept in the URL
 * (`size`, `token`, `prev`), as the tuples and requests pages show them under their table.
 */
export function PagingBar(props: { paging: PageState; size: number; next?: string; label: string }) {
  return (
    <div class="paging-bar">
      <PageSizeSelect value={props.size} onChange={(n) => setQuery({ size: String(n), ...NO_PAGE })} />
      <PageNav
        state={props.paging}
        next={props.next}
        label={props.label}
        onFirst={() => setQuery(NO_PAGE)}
        onPrevious={() => {
          const p = previousPage(props.paging)
          if (p) setQuery(pageQuery(p))
        }}
        onNext={() => setQuery(pageQuery(nextPage(props.paging, props.next ?? '')))}
      />
    </div>
  )
}

/**
 * useNotice: a page's one-line success note. `show(text, true)` also moves focus to it (after a
 * delete or a decision whose row leaves the list, so keyboard users do not fall back to <body>);
 * `clear()` when a new action starts or the list changes, so an old note never sits next to a
 * new refusal.
 */
export function useNotice() {
  const [text, setText] = useState<string | undefined>(undefined)
  const ref = useRef<HTMLParagraphElement>(null)
  const focusNext = useRef(false)
  // Runs after the ConfirmDialog's own effect (children's effects run first), so the focus the
  // closing dialog hands back to its button is then moved here.
  useEffect(() => {
    if (text !== undefined && focusNext.current) {
      focusNext.current = false
      ref.current?.focus()
    }
  }, [text])
  return {
    text,
    ref,
    show: (t: string, focus = false) => {
      focusNext.current = focus
      setText(t)
    },
    clear: () => setText(undefined),
  }
}

/** NoticeRegion: an always-present live region (announced when text arrives), holding the note when there is one. */
export function NoticeRegion({ notice }: { notice: Pick<ReturnType<typeof useNotice>, 'text' | 'ref'> }) {
  return (
    <div role="status" class="notice-region">
      {notice.text !== undefined && (
        <p class="notice" tabIndex={-1} ref={notice.ref}>
          {notice.text}
        </p>
      )}
    </div>
  )
}
