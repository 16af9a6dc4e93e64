/**
 * The decisions page's pure helpers: its filters as URL state, the API query they make, time
 * fields between RFC 3339 (URL, API) and `<input type="datetime-local">`, latency in words, and
 * the link that opens a decision in the check page.
 */

export interface Decision {
  id: string
  time: string
  kind: string
  model_id: string
  client: string
  user: string
  on_behalf_of: string[]
  relation: string
  object: string
  allowed: boolean
  witness: { user: string; relation: string; object: string; condition?: { name: string; context?: Record<string, unknown> } | null }[]
  latency_us: number
  consistency: string
  request_id: string
  detail: Record<string, unknown>
}

/** The filters the API takes (docs/decision-log.md), as the page keeps them in its URL. */
export const FILTERS = ['user', 'object', 'relation', 'allowed', 'client', 'kind', 'from', 'to', 'request_id'] as const
export type Filter = (typeof FILTERS)[number]
export type Filters = Record<Filter, string>

export const KINDS = ['check', 'batch_check', 'token_check', 'list_objects', 'search'] as const

export function readFilters(query: URLSearchParams): Filters {
  const out = {} as Filters
  for (const f of FILTERS) out[f] = query.get(f) ?? ''
  return out
}

/** apiQuery: the GET /decisions query for the filters and page token (empty ones left out). */
export function apiQuery(filters: Filters, token: string | null, pageSize = 50): Record<string, string | number> {
  const q: Record<string, string | number> = { page_size: pageSize }
  for (const f of FILTERS) if (filters[f].trim() !== '') q[f] = filters[f].trim()
  if (token) q.continuation_token = token
  return q
}

const pad = (n: number) => String(n).padStart(2, '0')

/** toLocalInput: an RFC 3339 time as a datetime-local value in the browser's zone ('' when not a time). */
export function toLocalInput(iso: string): string {
  if (!iso) return ''
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ''
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** fromLocalInput: a datetime-local value (the browser's zone) as RFC 3339 UTC ('' when empty or not a time). */
export function fromLocalInput(value: string): string {
  if (!value) return ''
  const d = new Date(value)
  return Number.isNaN(d.getTime()) ? '' : d.toISOString()
}

/** latencyText: µs as `318 µs`, `1.19 ms`, `2.5 s`. */
export function latencyText(us: number): string {
  if (!Number.isFinite(us)) return ''
  if (us < 1000) return `${Math.round(us)} µs`
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`
  return `${(us / 1_000_000).toFixed(2)} s`
}

/** The kinds that record a witness when allowed (a list or a search records a count instead). */
export const WITNESS_KINDS: readonly string[] = ['check', 'batch_check', 'token_check']

/**
 * checkQuery: the check page's query that asks a decision's question again, run: the same
 * user, relation, object, principals and model (and consistency when one was asked for). A
 * list-objects entry or a resource search (its object is a type) opens as list objects, a
 * subject search (its user is a type) as list users; a token check, whose token was never
 * stored, as a check of the user it resolved to (see replayNotes). Answers undefined when
 * there is nothing to ask again (see noReplayText).
 */
export function checkQuery(d: Decision): Record<string, string | undefined> | undefined {
  if (!d.user || !d.relation || !d.object) return undefined
  const consistency = d.consistency === 'MINIMIZE_LATENCY' || d.consistency === 'HIGHER_CONSISTENCY' ? d.consistency : undefined
  const common = { relation: d.relation, obo: d.on_behalf_of.join(', ') || undefined, model: d.model_id || undefined, consistency, run: '1' }
  const search = d.kind === 'search' ? d.detail?.search : undefined
  if (d.kind === 'list_objects' || search === 'resource') {
    if (!d.user.includes(':') || d.object.includes(':')) return undefined
    return { ...common, user: d.user, mode: 'list-objects', type: d.object }
  }
  if (search === 'subject') {
    // list-users takes no on_behalf_of: a delegated subject search cannot be asked again as such.
    if (d.user.includes(':') || !d.object.includes(':') || d.on_behalf_of.length > 0) return undefined
    return { ...common, obo: undefined, mode: 'list-users', user_type: d.user, object: d.object }
  }
  if (d.kind === 'search') return undefined
  if (!d.user.includes(':') || !d.object.includes(':')) return undefined
  return { ...common, user: d.user, object: d.object }
}

/** noReplayText: why a decision cannot be asked again in Check (when checkQuery answers undefined). */
export function noReplayText(d: Decision): string {
  if (d.kind === 'token_check' && !d.user) return 'Nothing to ask again: the subject token was refused before it named anyone, and tokens are never stored.'
  if (d.kind === 'search' && d.detail?.search === 'action') return 'Nothing to ask again in Check: an action search asks which relations hold, not one question.'
  if (d.kind === 'search' && d.detail?.search === 'subject' && d.on_behalf_of.length > 0)
    return 'Nothing to ask again in Check: a delegated subject search has no list-users equivalent (list users takes no on_behalf_of).'
  return 'Nothing to ask again in Check: the recorded user, relation or object is not a question the check page can ask.'
}

/**
 * replayNotes: what "Explain in Check" cannot reproduce of a decision, said on the page: the
 * log records no context or contextual tuples, and never a token (so no scope ceiling).
 */
export function replayNotes(d: Decision): string[] {
  const notes: string[] = []
  if (d.kind === 'token_check') {
    notes.push(`The token is not stored: Check asks as ${d.user} directly, so the token's scopes (a ceiling on what it may do) are not applied and the answer may be allowed where the token was denied.`)
  }
  notes.push("The request's context and contextual tuples are not recorded: a check that depended on them (a condition's parameters, a contextual grant) answers differently or fails until you add them in the form.")
  return notes
}

/** detailLines: what `detail` says (denied_by, a token's issuer and reason, a list's count), as `key: value`. */
export function detailLines(detail: Record<string, unknown>): string[] {
  return Object.entries(detail ?? {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
}
