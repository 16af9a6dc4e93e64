/**
 * The decision log (GET /stores/{store}/decisions): filters and the page token in the URL, a
 * table newest first, and each row opening in place what was recorded (its witness, its detail)
 * with a link that asks the same question again in the check page, explained now.
 */
import { useEffect, useState } from 'preact/hooks'
import type { StorePageProps } from '../app.tsx'
import { get, storePath } from '../api.ts'
import { ErrorNote, Link, Loading, Pager, Time, useAsync } from '../components.tsx'
import { href, setQuery } from '../router.ts'
import {
  FILTERS,
  KINDS,
  apiQuery,
  checkQuery,
  detailLines,
  fromLocalInput,
  latencyText,
  noReplayText,
  readFilters,
  replayNotes,
  toLocalInput,
  type Decision,
  type Filters,
  WITNESS_KINDS,
} from '../explain/decision-view.ts'
import { WitnessList } from '../explain/tree.tsx'
import './decisions.css'

const FILTER_LABELS = { user: 'Subject', relation: 'Relation', object: 'Object', client: 'Client', request_id: 'Request or decision id' } as const

interface DecisionPage {
  decisions: Decision[]
  continuation_token?: string
}

export default function DecisionsPage({ store, query }: StorePageProps) {
  const filters = readFilters(query)
  const token = query.get('token')
  const openId = query.get('open')
  // The page size is a URL key too (a link can ask for short pages); 50 by default, the API bounds it.
  const pageSize = Number(query.get('page_size')) > 0 ? Math.floor(Number(query.get('page_size'))) : 50
  const filterKey = FILTERS.map((f) => filters[f]).join('\u0000')
  const page = useAsync(() => get<DecisionPage>(storePath(store, 'decisions'), apiQuery(filters, token, pageSize)), [store, filterKey, token, pageSize])

  // The text filters are a draft until applied (so typing does not query on every key);
  // the draft follows the URL when it changes (back, forward, a link).
  const [draft, setDraft] = useState<Filters>(filters)
  useEffect(() => setDraft(filters), [filterKey])
  const apply = (next: Partial<Filters>) => setQuery({ ...draft, ...next, token: undefined, open: undefined })
  const filtered = FILTERS.some((f) => filters[f] !== '')

  return (
    <section class="decisions-page">
      <h1>Decisions</h1>
      <form
        class="panel decision-filters"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault()
          apply({})
        }}
      >
        <div class="form-row">
          {(['user', 'relation', 'object', 'client', 'request_id'] as const).map((f) => (
            <label key={f}>
              {FILTER_LABELS[f]}
              <input
                name={f}
                value={draft[f]}
                autocomplete="off"
                spellcheck={false}
                placeholder={{ user: 'user:u1', relation: 'view', object: 'document:d1', client: 'API client id', request_id: 'X-Request-Id or X-Pemba-Decision-Id' }[f]}
                onInput={(e) => setDraft({ ...draft, [f]: e.currentTarget.value })}
              />
            </label>
          ))}
        </div>
        <div class="form-row">
          <label>
            Allowed
            <select name="allowed" value={filters.allowed} onChange={(e) => apply({ allowed: e.currentTarget.value })}>
              <option value="">any</option>
              <option value="true">allowed only</option>
              <option value="false">denied only</option>
            </select>
          </label>
          <label>
            Kind
            <select name="kind" value={filters.kind} onChange={(e) => apply({ kind: e.currentTarget.value })}>
              <option value="">any</option>
              {KINDS.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          </label>
          <label>
            From (inclusive)
            <input type="datetime-local" step={1} name="from" value={toLocalInput(draft.from)} onInput={(e) => setDraft({ ...draft, from: fromLocalInput(e.currentTarget.value) })} />
          </label>
          <label>
            To (exclusive)
            <input type="datetime-local" step={1} name="to" value={toLocalInput(draft.to)} onInput={(e) => setDraft({ ...draft, to: fromLocalInput(e.currentTarget.value) })} />
          </label>
          <div class="filter-actions">
            <button type="submit" class="primary">
              Apply filters
            </button>
            <button type="button" disabled={!filtered} onClick={() => setQuery(Object.fromEntries([...FILTERS, 'token', 'open'].map((f) => [f, undefined])))}>
              Clear
            </button>
          </div>
        </div>
        <p class="muted hint">Times are in your browser's time zone; the log keeps decisions for its retention (PEMBA_DECISION_LOG_RETENTION).</p>
      </form>
      <div aria-busy={page.loading}>
        {page.loading && <Loading what="decisions" />}
        <ErrorNote error={page.error} />
        {page.data && <DecisionTable store={store} decisions={page.data.decisions} openId={openId} />}
        {page.data && page.data.decisions.length === 0 && (
          <p class="muted">{page.data.continuation_token ? 'No match on this page: the log was read up to its scan limit; read on with Next page.' : 'No decision matches.'}</p>
        )}
        {page.data && <Pager token={page.data.continuation_token || undefined} current={token ?? undefined} onPage={(t) => setQuery({ token: t, open: undefined })} />}
      </div>
    </section>
  )
}

function DecisionTable({ store, decisions, openId }: { store: string; decisions: Decision[]; openId: string | null }) {
  if (decisions.length === 0) return null
  return (
    <div class="table-wrap">
      <table class="decisions">
        <caption class="muted">Newest first. Open a row for what was recorded with it.</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Kind</th>
            <th scope="col">User</th>
            <th scope="col">Relation</th>
            <th scope="col">Object</th>
            <th scope="col">Answer</th>
            <th scope="col">Client</th>
            <th scope="col" class="num">
              Latency
            </th>
            <th scope="col">
              <span class="dec-sr-only">Details</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {decisions.map((d) => (
            <DecisionRow key={d.id} store={store} d={d} open={d.id === openId} />
          ))}
        </tbody>
      </table>
    </div>
  )
}

function DecisionRow({ store, d, open }: { store: string; d: Decision; open: boolean }) {
  const detailId = `decision-${d.id}`
  // Opening a row is a new state (not typing): pushed, so Back closes it.
  const toggle = () => setQuery({ open: open ? undefined : d.id })
  const count = typeof d.detail?.count === 'number' ? (d.detail.count as number) : undefined
  return (
    <>
      <tr class={open ? 'open' : undefined}>
        <td>
          <Time iso={d.time} />
        </td>
        <td>{d.kind}</td>
        <td class="mono">
          {d.user || <span class="muted">(no one)</span>}
          {d.on_behalf_of.length > 0 && <div class="obo">on behalf of {d.on_behalf_of.join(' → ')}</div>}
        </td>
        <td class="mono">{d.relation}</td>
        <td class="mono">{d.object}</td>
        <td>
          <span class={`badge ${d.allowed ? 'ok' : 'bad'}`}>{d.allowed ? 'allowed' : 'denied'}</span>
          {count !== undefined && <span class="muted"> {count} found</span>}
        </td>
        <td class="mono">{d.client || <span class="muted">none</span>}</td>
        <td class="num">{latencyText(d.latency_us)}</td>
        <td>
          <button type="button" aria-expanded={open} aria-controls={open ? detailId : undefined} onClick={toggle} aria-label={`${open ? 'Hide' : 'Explain'} decision ${d.id}`}>
            {open ? 'Hide' : 'Explain'}
          </button>
        </td>
      </tr>
      {open && (
        <tr class="decision-detail">
          <td colSpan={9} id={detailId}>
            <DecisionDetail store={store} d={d} />
          </td>
        </tr>
      )}
    </>
  )
}

function DecisionDetail({ store, d }: { store: string; d: Decision }) {
  const q = checkQuery(d)
  const recordsWitness = WITNESS_KINDS.includes(d.kind)
  const witness = d.witness.map((w) => (w.condition?.name ? { ...w, condition: w.condition.name } : { user: w.user, relation: w.relation, object: w.object }))
  const lines = detailLines(d.detail)
  return (
    <div class="decision-body">
      <section aria-label={`Recorded with decision ${d.id}`}>
        <h2 class="sub">Recorded at the time</h2>
        {d.allowed && recordsWitness && (
          <>
            <p>The witness: the stored tuples that granted it, object first.</p>
            <WitnessList tuples={witness} label="Recorded witness" empty="No witness was recorded (granted by contextual tuples only)." />
          </>
        )}
        {!d.allowed && recordsWitness && <p>Denied: a denial records no witness. Ask it again in Check to see every branch tried.</p>}
        {d.kind === 'list_objects' && <p>A list-objects call: {d.detail?.count !== undefined ? `${String(d.detail.count)} objects found` : 'no count recorded'}.</p>}
        {d.kind === 'search' && (
          <p>
            A {typeof d.detail?.search === 'string' ? `${d.detail.search} ` : ''}search (AuthZEN): {d.detail?.count !== undefined ? `${String(d.detail.count)} results` : 'no count recorded'}; a search
            records no witness.
          </p>
        )}
        {lines.length > 0 && (
          <ul class="detail-lines" aria-label="Detail">
            {lines.map((l) => (
              <li key={l}>
                <code>{l}</code>
              </li>
            ))}
          </ul>
        )}
        <dl class="meta">
          <dt>Decision</dt>
          <dd class="mono">{d.id}</dd>
          <dt>Request</dt>
          <dd class="mono">{d.request_id || '—'}</dd>
          <dt>Model</dt>
          <dd class="mono">{d.model_id || '—'}</dd>
          <dt>Consistency</dt>
          <dd class="mono">{d.consistency}</dd>
        </dl>
      </section>
      {q ? (
        <>
          <p>
            <Link href={href('check', store, q)}>{q.mode ? `Ask again in Check (${q.mode.replace('-', ' ')})` : 'Explain in Check'}</Link>{' '}
            <span class="muted">
              asks the same question again with the same model: the explanation is computed now, on the tuples as they are now, and may differ
              from what was decided then.
            </span>
          </p>
          <ul class="replay-notes" aria-label="Not asked again">
            {replayNotes(d).map((n) => (
              <li key={n}>{n}</li>
            ))}
          </ul>
        </>
      ) : (
        <p class="muted">{noReplayText(d)}</p>
      )}
    </div>
  )
}
