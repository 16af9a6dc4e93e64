/**
 * The pieces every page uses: links that stay in the app, the error shown in place (the API's
 * code and message), a loader hook, a confirmation dialog and a pager. Conventions the browser
 * tests rely on: every field has a <label>, every page one <h1>, errors are role="alert" with
 * `data-code`, busy regions aria-busy.
 */
import type { AnchorHTMLAttributes, ComponentChildren } from 'preact'
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks'
import { ApiError } from './api.ts'
import { linkClick } from './router.ts'

/** Link: an <a> that navigates inside the console (Ctrl+click still opens a tab). */
export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  return <a {...props} onClick={(e) => linkClick(e)} />
}

/** ErrorNote: an API error where it happened, with its code and message (and request id). */
export function ErrorNote({ error, context }: { error: unknown; context?: string }) {
  if (error === undefined || error === null) return null
  const api = error instanceof ApiError ? error : undefined
  const code = api?.code ?? 'error'
  const message = error instanceof Error ? error.message : String(error)
  return (
    <div class="error" role="alert" data-code={code}>
      {context && <span class="error-context">{context}: </span>}
      <code class="error-code">{code}</code> <span class="error-message">{message}</span>
      {api && api.status > 0 && <span class="error-status"> (HTTP {api.status})</span>}
      {api?.requestId && <span class="error-request"> request {api.requestId}</span>}
    </div>
  )
}

export interface AsyncState<T> {
  data?: T
  error?: unknown
  loading: boolean
  /** Load again (after a write). */
  reload: () => void
}

/**
 * useAsync runs `load` when `deps` change and keeps its latest answer; an answer overtaken by
 * a newer load is dropped, so fast typing in a filter never shows stale rows.
 */
export function useAsync<T>(load: () => Promise<T>, deps: readonly unknown[]): AsyncState<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true })
  const [tick, setTick] = useState(0)
  const generation = useRef(0)
  useEffect(() => {
    const mine = ++generation.current
    setState((s) => ({ data: s.data, loading: true }))
    load().then(
      (data) => mine === generation.current && setState({ data, loading: false }),
      (error) => mine === generation.current && setState({ error, loading: false }),
    )
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick])
  const reload = useCallback(() => setTick((t) => t + 1), [])
  return { ...state, reload }
}

/**
 * useAction runs a write (create, delete, revoke, approve) and keeps its error to show in
 * place; `busy` while it runs, so its button is disabled and not pressed twice.
 */
export function useAction<A extends unknown[], T>(action: (...args: A) => Promise<T>) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const run = useCallback(
    async (...args: A): Promise<T | undefined> => {
      setBusy(true)
      setError(undefined)
      try {
        return await action(...args)
      } catch (e) {
        setError(e)
        return undefined
      } finally {
        setBusy(false)
      }
    },
    [action],
  )
  return { run, busy, error, clearError: () => setError(undefined) }
}

/**
 * ConfirmDialog: a modal <dialog> (focus kept inside, Esc cancels) that asks before a change
 * that cannot be undone; `details` shows exactly what will be sent.
 */
export function ConfirmDialog(props: {
  open: boolean
  title: string
  confirmLabel: string
  children?: ComponentChildren
  busy?: boolean
  error?: unknown
  onConfirm: () => void
  onCancel: () => void
}) {
  const ref = useRef<HTMLDialogElement>(null)
  // One id per dialog: two on a page must not share the heading that names them.
  const titleId = useId()
  useEffect(() => {
    const dialog = ref.current
    if (!dialog) return
    if (props.open && !dialog.open) dialog.showModal()
    if (!props.open && dialog.open) dialog.close()
  }, [props.open])
  return (
    <dialog ref={ref} class="confirm" aria-labelledby={titleId} onCancel={(e) => (e.preventDefault(), props.onCancel())}>
      <h2 id={titleId}>{props.title}</h2>
      <div class="confirm-body">{props.children}</div>
      <ErrorNote error={props.error} />
      <div class="actions">
        <button type="button" onClick={props.onCancel} autofocus>
          Cancel
        </button>
        <button type="button" class="danger" disabled={props.busy} onClick={props.onConfirm}>
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  )
}

/** Pager: "Next page" while the API returned a continuation token; "First page" to go back. */
export function Pager(props: { token?: string | null; current?: string; onPage: (token: string | undefined) => void }) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={!props.current} onClick={() => props.onPage(undefined)}>
        First page
      </button>
      <button type="button" disabled={!props.token} onClick={() => props.onPage(props.token ?? undefined)}>
        Next page
      </button>
    </nav>
  )
}

/** Loading: a polite note while a region loads. */
export function Loading({ what }: { what?: string }) {
  return (
    <p class="loading" role="status">
      Loading{what ? ` ${what}` : ''}…
    </p>
  )
}

/** TupleText: `document:d1#viewer@user:u1`, monospace, wrapping at separators. */
export function TupleText({ tuple }: { tuple: { user: string; relation: string; object: string } }) {
  return (
    <code class="tuple">
      {tuple.object}#{tuple.relation}@{tuple.user}
    </code>
  )
}

/** formatTime: an ISO time as the browser's locale shows it, with the ISO text as its title. */
export function Time({ iso }: { iso?: string | null }) {
  if (!iso) return <span class="muted">never</span>
  const d = new Date(iso)
  return (
    <time dateTime={iso} title={iso}>
      {Number.isNaN(d.getTime()) ? iso : d.toLocaleString()}
    </time>
  )
}
