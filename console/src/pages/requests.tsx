/**
 * Access requests: the store's just-in-time requests (`GET /stores/{id}/access-requests`,
 * filtered by status, paged by continuation token), each with its tuple, duration, reason,
 * times and events; Approve and Deny for approvers (`POST …/{request}/approve|deny` with
 * `{approver, reason?}`), after a confirmation showing exactly what is sent. The model decides
 * who may approve: the API's refusal (`approver_not_authorized`) is shown in place.
 *
 *   /console/stores/{id}/requests?status=pending&approver=user:rita&size=25&token=…&prev=…
 *
 * The approver is kept in the URL and in this tab's session, so it need not be typed again. It is
 * one per tab, not per store: the approver is a person (`user:rita`), who decides in any store
 * of this server; a link's `approver=` replaces it.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import type { StorePageProps } from '../app.tsx'
import { post, get, storePath } from '../api.ts'
import { ConfirmDialog, ErrorNote, Loading, Time, TupleText, useAction, useAsync } from '../components.tsx'
import { setQuery } from '../router.ts'
import {
  REQUEST_STATUSES,
  decisionBody,
  pageSizeFromQuery,
  pageStateFromQuery,
  statusFromQuery,
} from '../tuples/logic.ts'
import { NO_PAGE, NoticeRegion, PagingBar, useNotice } from '../tuples/parts.tsx'
import './requests.css'

/** An access request as the API renders it (docs/nhi.md, Just-in-time access). */
export interface AccessRequest {
  id: string
  tuple_key: { user: string; relation: string; object: string }
  duration: string
  reason: string
  status: string
  created_at: string
  pending_until: string
  grant_expires_at: string | null
  events: { type: string; actor: string; at: string; reason?: string | null }[]
}

interface ListAnswer {
  access_requests: AccessRequest[]
  continuation_token: string
}

type Decision = 'approve' | 'deny'

const APPROVER_KEY = 'pemba.console.approver'

function sessionApprover(): string {
  try {
    return sessionStorage.getItem(APPROVER_KEY) ?? ''
  } catch {
    return ''
  }
}

function keepApprover(value: string): void {
  try {
    if (value.trim() === '') sessionStorage.removeItem(APPROVER_KEY)
    else sessionStorage.setItem(APPROVER_KEY, value.trim())
  } catch {
    // Storage refused: the URL still keeps it.
  }
}

export default function RequestsPage({ store, query }: StorePageProps) {
  const status = statusFromQuery(query)
  const size = pageSizeFromQuery(query)
  const paging = pageStateFromQuery(query)
  const approver = query.get('approver') ?? sessionApprover()
  const approverRef = useRef<HTMLInputElement>(null)
  const [approverError, setApproverError] = useState<string | undefined>(undefined)
  const notice = useNotice()
  const [open, setOpen] = useState<{ request: AccessRequest; decision: Decision } | undefined>(undefined)
  const [reason, setReason] = useState('')

  // A session's approver shows in the URL too, so the link carries it; a link's approver is kept
  // for the session. Also when a link without it (the top nav) lands on this mounted page.
  const inUrl = query.has('approver')
  useEffect(() => {
    if (inUrl) keepApprover(approver)
    else if (approver !== '') setQuery({ approver }, { replace: true })
  }, [approver, inUrl])

  const listDeps = [store, status, size, paging.token]
  const list = useAsync(
    () =>
      get<ListAnswer>(storePath(store, 'access-requests'), {
        status: status || undefined,
        page_size: size,
        continuation_token: paging.token,
      }),
    listDeps,
  )
  // Another status or page: the last decision's note no longer belongs to what is shown.
  useEffect(() => notice.clear(), listDeps)

  const decide = useAction(
    useCallback(
      (id: string, decision: Decision, body: { approver: string; reason?: string }) =>
        post<AccessRequest>(storePath(store, `access-requests/${encodeURIComponent(id)}/${decision}`), body),
      [store],
    ),
  )

  const ask = (request: AccessRequest, decision: Decision) => {
    if (approver.trim() === '') {
      setApproverError('Type who decides (the approver, e.g. user:rita) first.')
      approverRef.current?.focus()
      return
    }
    setApproverError(undefined)
    notice.clear()
    decide.clearError()
    setReason('')
    setOpen({ request, decision })
  }
  const confirm = async () => {
    if (!open) return
    const answer = await decide.run(open.request.id, open.decision, decisionBody(approver, reason))
    if (answer !== undefined) {
      const t = answer.tuple_key
      // The decided row may leave the list (and with it the button that opened the dialog): focus the note.
      notice.show(
        `${open.decision === 'approve' ? 'Approved' : 'Denied'} ${t.object}#${t.relation}@${t.user}: now ${answer.status}` +
          (answer.grant_expires_at ? `, the grant expires at ${answer.grant_expires_at}.` : '.'),
        true,
      )
      setOpen(undefined)
      list.reload()
    }
  }

  const rows = list.data?.access_requests ?? []
  const path = open ? storePath(store, `access-requests/${encodeURIComponent(open.request.id)}/${open.decision}`) : ''
  return (
    <section class="requests-page">
      <h1>Access requests</h1>
      <form class="panel filter-bar requests-filter" onSubmit={(e) => e.preventDefault()} aria-label="Requests shown and who decides">
        <label>
          Status
          <select value={status || 'all'} onChange={(e) => setQuery({ status: e.currentTarget.value, ...NO_PAGE })}>
            {REQUEST_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s[0].toUpperCase() + s.slice(1)}
              </option>
            ))}
            <option value="all">All</option>
          </select>
        </label>
        <label class="approver-field">
          Approver (who decides)
          <input
            ref={approverRef}
            name="approver"
            placeholder="user:rita"
            autocomplete="off"
            value={approver}
            aria-invalid={approverError ? true : undefined}
            aria-describedby={approverError ? 'approver-error' : 'approver-help'}
            onInput={(e) => {
              const v = e.currentTarget.value
              keepApprover(v)
              setApproverError(undefined)
              setQuery({ approver: v }, { replace: true })
            }}
          />
          {approverError && (
            <span id="approver-error" class="field-error">
              {approverError}
            </span>
          )}
        </label>
        <p id="approver-help" class="muted small approver-help">
          The model decides who may approve: whoever has <code>&lt;relation&gt;_approver</code> (or <code>approver</code>) on the object. Nobody approves their own request.
        </p>
      </form>
      <NoticeRegion notice={notice} />
      <ErrorNote error={list.error} context="The API refused this list" />
      {list.loading && !list.data && <Loading what="the requests" />}
      {list.data && list.error === undefined && (
        <>
          <div class="table-wrap">
            <table class="requests-table" aria-busy={list.loading}>
              <caption class="muted">
                {rows.length === 0
                  ? `No ${status || ''} requests.`.replace('  ', ' ')
                  : `${rows.length} request${rows.length === 1 ? '' : 's'} on this page, oldest first.`}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Requested access</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Pending until</th>
                  <th scope="col">Status</th>
                  <th scope="col">Events</th>
                  <th scope="col">
                    <span class="visually-hidden">Decision</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <RequestRow key={r.id} request={r} onDecide={(d) => ask(r, d)} />
                ))}
              </tbody>
            </table>
          </div>
          <PagingBar paging={paging} size={size} next={list.data.continuation_token} label="Request pages" />
        </>
      )}
      <ConfirmDialog
        open={open !== undefined}
        title={open?.decision === 'deny' ? 'Deny this request?' : 'Approve this request?'}
        confirmLabel={open?.decision === 'deny' ? 'Deny request' : 'Approve request'}
        busy={decide.busy}
        error={decide.error}
        onConfirm={() => void confirm()}
        onCancel={() => setOpen(undefined)}
      >
        {open && (
          <>
            <p>
              <TupleText tuple={open.request.tuple_key} /> for {open.request.duration}, decided by <code>{approver}</code>.
            </p>
            <label>
              Reason (optional)
              <textarea name="decision_reason" rows={2} maxLength={1024} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
            </label>
            <p class="muted">
              Sends <code>POST {path}</code> with:
            </p>
            <pre class="request-body">{JSON.stringify(decisionBody(approver, reason), null, 2)}</pre>
          </>
        )}
      </ConfirmDialog>
    </section>
  )
}

function RequestRow({ request: r, onDecide }: { request: AccessRequest; onDecide: (d: Decision) => void }) {
  const label = `${r.tuple_key.object}#${r.tuple_key.relation}@${r.tuple_key.user}`
  const requester = r.events.find((e) => e.type === 'created')?.actor
  return (
    <tr>
      <td>
        <TupleText tuple={r.tuple_key} />
        <div class="muted small mono" title="Request id">
          {r.id}
        </div>
      </td>
      <td>
        <code>{r.duration}</code>
      </td>
      <td class="request-reason">{r.reason}</td>
      <td>
        <Time iso={r.created_at} />
        {requester && requester !== r.tuple_key.user && (
          <div class="muted small">
            by <code>{requester}</code>
          </div>
        )}
      </td>
      <td>
        {r.status === 'pending' ? (
          <Time iso={r.pending_until} />
        ) : r.status === 'expired' ? (
          <span class="muted">
            expired <Time iso={r.pending_until} />
          </span>
        ) : (
          <span class="muted">— no longer pending</span>
        )}
      </td>
      <td>
        <span class={`badge status-${r.status}`}>{r.status}</span>
        {r.grant_expires_at && (
          <div class="muted small">
            grant until <Time iso={r.grant_expires_at} />
          </div>
        )}
      </td>
      <td>
        <details class="request-events">
          <summary>
            {r.events.length} event{r.events.length === 1 ? '' : 's'}
          </summary>
          <ol>
            {r.events.map((e, i) => (
              <li key={i}>
                <strong>{e.type}</strong> by <code>{e.actor}</code>, <Time iso={e.at} />
                {e.reason && <div class="muted">“{e.reason}”</div>}
              </li>
            ))}
          </ol>
        </details>
      </td>
      <td class="row-actions">
        {r.status === 'pending' && (
          <>
            <button type="button" class="primary" aria-label={`Approve ${label}`} onClick={() => onDecide('approve')}>
              Approve
            </button>
            <button type="button" class="danger-outline" aria-label={`Deny ${label}`} onClick={() => onDecide('deny')}>
              Deny
            </button>
          </>
        )}
      </td>
    </tr>
  )
}
