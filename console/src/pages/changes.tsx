/**
 * Changes: the store's change feed (`GET /stores/{id}/changes`) as a timeline, oldest first as
 * the API pages it: grouped by minute, writes and deletes told apart by mark, colour and word,
 * each with its condition and expiry. Filter by object type and a start time (`start_time`);
 * "Newer" follows the API's continuation token, "Older" goes back along the tokens kept in
 * the URL.
 *
 *   /console/stores/{id}/changes?type=document&from=2026-12-07T01:00:00.000Z&size=50&token=…&prev=…
 */
import { useEffect, useState } from 'preact/hooks'
import type { StorePageProps } from '../app.tsx'
import { get, storePath } from '../api.ts'
import { ErrorNote, Loading, Time, TupleText, useAsync } from '../components.tsx'
import { setQuery } from '../router.ts'
import type { TupleChange } from '../types.ts'
import { isoToLocalInput, localInputToIso, nextPage, pageQuery, pageSizeFromQuery, pageStateFromQuery, previousPage } from '../tuples/logic.ts'
import { ConditionText, HintError, HintLists, PageNav, PageSizeSelect, useModelHints } from '../tuples/parts.tsx'
import { groupChanges, operationLabel } from '../tuples/timeline.ts'
import './changes.css'

interface ChangesAnswer {
  changes: TupleChange[]
  continuation_token: string
}

const NO_PAGE = { token: undefined, prev: undefined }

export default function ChangesPage({ store, query }: StorePageProps) {
  const type = (query.get('type') ?? '').trim()
  const from = (query.get('from') ?? '').trim()
  const size = pageSizeFromQuery(query)
  const paging = pageStateFromQuery(query)
  const hints = useModelHints(store)

  const feed = useAsync(
    () =>
      get<ChangesAnswer>(storePath(store, 'changes'), {
        type,
        start_time: from,
        page_size: size,
        continuation_token: paging.token,
      }),
    [store, type, from, size, paging.token],
  )
  const changes = feed.data?.changes ?? []
  const groups = groupChanges(changes)
  const next = feed.data?.continuation_token

  return (
    <section class="changes-page">
      <h1>Changes</h1>
      <HintLists hints={hints.data} />
      {hints.error !== undefined && <HintError error={hints.error} />}
      <FeedFilter type={type} from={from} />
      <ErrorNote error={feed.error} context="The API refused this read of the change feed" />
      {feed.loading && !feed.data && <Loading what="the changes" />}
      {feed.data && feed.error === undefined && (
        <>
          <p class="muted" role="status">
            {changes.length === 0
              ? paging.token
                ? 'No newer changes yet.'
                : 'No changes match.'
              : `${changes.length} change${changes.length === 1 ? '' : 's'} on this page, oldest first: ${countOf(changes, 'TUPLE_OPERATION_WRITE')} written, ${countOf(changes, 'TUPLE_OPERATION_DELETE')} deleted.`}
          </p>
          <ol class="timeline" aria-label="Changes by minute" aria-busy={feed.loading}>
            {groups.map((g, i) => (
              <li key={`${g.minute}/${i}`} class="timeline-group">
                <h2 class="timeline-minute">
                  <time dateTime={g.first}>{g.minute}</time> <span class="muted small">{summary(g.writes, g.deletes)}</span>
                </h2>
                <ol class="timeline-entries">
                  {g.changes.map((c, j) => (
                    <ChangeEntry key={j} change={c} />
                  ))}
                </ol>
              </li>
            ))}
          </ol>
          <div class="paging-bar">
            <PageSizeSelect value={size} onChange={(n) => setQuery({ size: String(n), ...NO_PAGE })} />
            <PageNav
              state={paging}
              next={changes.length > 0 ? next : undefined}
              label="Change pages"
              previousLabel="Older"
              nextLabel="Newer"
              onFirst={() => setQuery(NO_PAGE)}
              onPrevious={() => {
                const p = previousPage(paging)
                if (p) setQuery(pageQuery(p))
              }}
              onNext={() => setQuery(pageQuery(nextPage(paging, next ?? '')))}
            />
          </div>
          {changes.length === 0 && (
            // An empty page (the end of the feed, or a quiet store from a start time): ask again
            // with the same token or start time, as the API gives no token to follow.
            <div class="actions">
              <button type="button" onClick={feed.reload}>
                Look for newer changes
              </button>
            </div>
          )}
        </>
      )}
    </section>
  )
}

function countOf(changes: TupleChange[], op: TupleChange['operation']): number {
  return changes.filter((c) => c.operation === op).length
}

function summary(writes: number, deletes: number): string {
  const parts = []
  if (writes > 0) parts.push(`${writes} written`)
  if (deletes > 0) parts.push(`${deletes} deleted`)
  return parts.join(', ')
}

function ChangeEntry({ change }: { change: TupleChange }) {
  const deleted = change.operation === 'TUPLE_OPERATION_DELETE'
  const k = change.tuple_key
  return (
    <li class={`change ${deleted ? 'change-delete' : 'change-write'}`}>
      <span class="change-mark" aria-hidden="true">
        {deleted ? '−' : '+'}
      </span>
      <span class="change-op">{operationLabel(change.operation)}</span>
      <TupleText tuple={k} />
      {k.condition?.name && (
        <span class="change-detail">
          <span class="muted">condition</span> <ConditionText condition={k.condition} />
        </span>
      )}
      {k.expires_at && (
        <span class="change-detail">
          <span class="muted">expires</span> <Time iso={k.expires_at} />
        </span>
      )}
      <span class="change-time">
        <Time iso={change.timestamp} />
      </span>
    </li>
  )
}

/** FeedFilter: object type and start time, applied with "Show" (a new history entry). */
function FeedFilter({ type, from }: { type: string; from: string }) {
  const [draftType, setDraftType] = useState(type)
  const [draftFrom, setDraftFrom] = useState(isoToLocalInput(from))
  const [fromError, setFromError] = useState<string | undefined>(undefined)
  useEffect(() => setDraftType(type), [type])
  useEffect(() => setDraftFrom(isoToLocalInput(from)), [from])
  const apply = (e: Event) => {
    e.preventDefault()
    let iso: string | undefined
    if (draftFrom.trim() !== '') {
      iso = localInputToIso(draftFrom.trim())
      if (iso === undefined) {
        setFromError('Not a date and time.')
        return
      }
    }
    setFromError(undefined)
    setQuery({ type: draftType.trim() || undefined, from: iso, ...NO_PAGE })
  }
  // The quick buttons apply the typed type too, so the field and the feed agree.
  const since = (ms: number | undefined) =>
    setQuery({ type: draftType.trim() || undefined, from: ms === undefined ? undefined : new Date(Date.now() - ms).toISOString(), ...NO_PAGE })
  return (
    <form class="panel changes-filter" onSubmit={apply} aria-label="Filter the change feed">
      <div class="filter-bar">
        <label>
          Object type
          <input name="type" list="hint-types" placeholder="all types" autocomplete="off" value={draftType} onInput={(e) => setDraftType(e.currentTarget.value)} />
        </label>
        <label>
          From (local time)
          <input
            name="from"
            type="datetime-local"
            step="1"
            value={draftFrom}
            onInput={(e) => setDraftFrom(e.currentTarget.value)}
            aria-invalid={fromError ? true : undefined}
            aria-describedby={fromError ? 'from-error' : undefined}
          />
          {fromError && (
            <span id="from-error" class="field-error">
              {fromError}
            </span>
          )}
        </label>
        <button type="submit" class="primary">
          Show
        </button>
        <span class="changes-quick" role="group" aria-label="Quick start times">
          <button type="button" onClick={() => since(15 * 60_000)}>
            Last 15 minutes
          </button>
          <button type="button" onClick={() => since(24 * 3600_000)}>
            Last 24 hours
          </button>
          <button type="button" onClick={() => since(undefined)}>
            From the beginning
          </button>
        </span>
      </div>
      <p class="muted small">
        The feed runs oldest first from the start time (or the store's first change); a type filter shows the changes of objects of that type.
      </p>
    </form>
  )
}
