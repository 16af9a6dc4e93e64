/**
 * The pure logic of the Tuples, Changes and Requests pages (no DOM, unit-tested in
 * test/console/unit/tuples-logic.test.ts): the read filter sent to `POST /stores/{id}/read`,
 * the trail of continuation tokens that lets a page go back, the add-a-tuple form's checks,
 * datetime-input ↔ ISO conversion and the approve/deny body.
 */
import type { TupleKey } from '../types.ts'

/** The Tuples page's filter, as kept in the URL (`?type=&object=&relation=&user=`). */
export interface TupleFilter {
  type: string
  object: string
  relation: string
  user: string
}

/** filterFromQuery reads the filter from the page's query (missing keys are ''). */
export function filterFromQuery(query: URLSearchParams): TupleFilter {
  return {
    type: (query.get('type') ?? '').trim(),
    object: (query.get('object') ?? '').trim(),
    relation: (query.get('relation') ?? '').trim(),
    user: (query.get('user') ?? '').trim(),
  }
}

/**
 * readTupleKey: the `tuple_key` of a ReadRequest for the filter, or undefined for "every tuple
 * of the store" (an empty filter). The object id is sent as `type:id`; only the type as `type:`.
 * The page sends what was asked, even a combination the API refuses (an id without a type, a
 * relation alone): the API's own error then says why, in place.
 */
export function readTupleKey(f: TupleFilter): { object?: string; relation?: string; user?: string } | undefined {
  if (f.type === '' && f.object === '' && f.relation === '' && f.user === '') return undefined
  const key: { object?: string; relation?: string; user?: string } = {}
  if (f.type !== '' || f.object !== '') key.object = `${f.type}:${f.object}`
  if (f.relation !== '') key.relation = f.relation
  if (f.user !== '') key.user = f.user
  return key
}

/**
 * filterHint: why the API will refuse a filter (OpenFGA's rules for Read: with any filter the
 * object type is required, and an object id or a user must be given too), or undefined. Shown
 * next to the API's own error, never instead of it.
 */
export function filterHint(f: TupleFilter): string | undefined {
  if (readTupleKey(f) === undefined) return undefined
  if (f.type === '') return 'A filter needs an object type (the API reads tuples by type).'
  if (f.object === '' && f.user === '') {
    return 'With an object type, give an object id or a user too (the API does not list a whole type, or a type and relation, on their own).'
  }
  return undefined
}

/** PAGE_SIZES offered by the pages (the API allows 1 to 100). */
export const PAGE_SIZES = [10, 25, 50, 100] as const
export const DEFAULT_PAGE_SIZE = 50

/** pageSizeFromQuery: `?size=` when it is one of PAGE_SIZES, else the default. */
export function pageSizeFromQuery(query: URLSearchParams, fallback: number = DEFAULT_PAGE_SIZE): number {
  const n = Number(query.get('size'))
  return (PAGE_SIZES as readonly number[]).includes(n) ? n : fallback
}

/**
 * Paging with the API's forward-only continuation tokens, kept in the URL: `token` is the
 * current page's token (absent on the first page) and `prev` the tokens of the pages between
 * the first and the current one, comma-separated (tokens are base64url: no commas).
 */
export interface PageState {
  token?: string
  prev: string[]
}

export function pageStateFromQuery(query: URLSearchParams): PageState {
  const token = query.get('token') ?? ''
  const prev = (query.get('prev') ?? '').split(',').filter((t) => t !== '')
  return token === '' ? { prev: [] } : { token, prev }
}

/** pageQuery: the query keys for a page state (undefined removes a key). */
export function pageQuery(s: PageState): { token: string | undefined; prev: string | undefined } {
  return { token: s.token || undefined, prev: s.prev.length > 0 ? s.prev.join(',') : undefined }
}

/** nextPage: the state after following `next`, the API's continuation token. */
export function nextPage(s: PageState, next: string): PageState {
  return { token: next, prev: s.token ? [...s.prev, s.token] : [] }
}

/** previousPage: the state of the page before, or undefined on the first page. */
export function previousPage(s: PageState): PageState | undefined {
  if (!s.token) return undefined
  if (s.prev.length === 0) return { prev: [] }
  return { token: s.prev[s.prev.length - 1], prev: s.prev.slice(0, -1) }
}

/** pageNumber: 1 for the first page. */
export function pageNumber(s: PageState): number {
  return s.token ? s.prev.length + 2 : 1
}

/** The add-a-tuple form's fields, as typed (kept in the URL). */
export interface AddForm {
  object: string
  relation: string
  user: string
  conditionName: string
  /** JSON text of the condition's context, or ''. */
  conditionContext: string
  /** A `datetime-local` input's value (local time), or ''. */
  expiresAt: string
}

export type AddResult = { ok: true; key: TupleKey } | { ok: false; errors: Partial<Record<keyof AddForm, string>> }

/**
 * buildTupleKey checks the form before anything is sent (the API checks the rest against the
 * model) and answers the tuple key to write: the condition only with a name, its context only
 * when it is a JSON object, `expires_at` as an ISO time.
 */
export function buildTupleKey(form: AddForm): AddResult {
  const errors: Partial<Record<keyof AddForm, string>> = {}
  const object = form.object.trim()
  const relation = form.relation.trim()
  const user = form.user.trim()
  const conditionName = form.conditionName.trim()
  if (!/^[^\s:#@]+:[^\s]+$/.test(object)) errors.object = 'An object is type:id, e.g. document:d1.'
  if (!/^[^\s:#@]+$/.test(relation)) errors.relation = 'A relation is one word, e.g. viewer.'
  if (!/^[^\s:#@]+:[^\s#]+(#[^\s:#@]+)?$/.test(user)) {
    errors.user = 'A user is type:id, type:* or a userset type:id#relation, e.g. user:u1 or group:g1#member.'
  }
  let context: Record<string, unknown> | undefined
  if (form.conditionContext.trim() !== '') {
    if (conditionName === '') errors.conditionContext = 'A context needs a condition name.'
    try {
      const parsed: unknown = JSON.parse(form.conditionContext)
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        errors.conditionContext = 'The context must be a JSON object, e.g. {"ip": "10.0.0.1"}.'
      } else {
        context = parsed as Record<string, unknown>
      }
    } catch (e) {
      errors.conditionContext = `Not valid JSON: ${e instanceof Error ? e.message : String(e)}`
    }
  }
  // A tuple's condition name: one word as the model names conditions (≤ 50), and at least 2
  // characters, which the write API requires of a tuple's condition.
  if (conditionName !== '' && !/^[^\s:#@]{2,50}$/.test(conditionName)) {
    errors.conditionName = 'A condition name is one word of 2 to 50 characters (the API needs at least 2), e.g. office_hours.'
  }
  let expiresAt: string | undefined
  const expires = form.expiresAt.trim()
  if (expires !== '') {
    expiresAt = localInputToIso(expires) ?? zonedIsoToIso(expires)
    if (expiresAt === undefined) errors.expiresAt = `‘${expires}’ is not a date and time.`
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors }
  const key: TupleKey = { object, relation, user }
  if (conditionName !== '') key.condition = context ? { name: conditionName, context } : { name: conditionName }
  if (expiresAt) key.expires_at = expiresAt
  return { ok: true, key }
}

/** writeBody: the body of `POST /stores/{id}/write` that writes one tuple. */
export function writeBody(key: TupleKey) {
  return { writes: { tuple_keys: [key] } }
}

/** deleteBody: the body that deletes one tuple (a delete names only object, relation and user). */
export function deleteBody(key: Pick<TupleKey, 'object' | 'relation' | 'user'>) {
  return { deletes: { tuple_keys: [{ object: key.object, relation: key.relation, user: key.user }] } }
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0')

/** localInputToIso: a `datetime-local` value (the browser's local time) as an ISO UTC time, or undefined. */
export function localInputToIso(value: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/.exec(value)
  if (!m) return undefined
  const [, y, mo, d, h, mi, s, ms] = m
  const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0), Number((ms ?? '0').padEnd(3, '0')))
  if (Number.isNaN(date.getTime()) || date.getMonth() !== Number(mo) - 1 || date.getDate() !== Number(d)) return undefined
  return date.toISOString()
}

/** zonedIsoToIso: an ISO time with its zone (`Z` or `±hh:mm`, as a link may carry) as an ISO UTC time, or undefined. */
export function zonedIsoToIso(value: string): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i.test(value)) return undefined
  const d = new Date(value)
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString()
}

/**
 * expiresInput: what a `datetime-local` input can show for the add form's `new_expires` (a
 * link may carry a local value, an ISO time with zone, or garbage). `unreadable` is the raw value
 * when the input would look empty although the URL holds something, so the page can say so.
 */
export function expiresInput(value: string): { input: string; unreadable?: string } {
  const v = value.trim()
  if (v === '') return { input: '' }
  if (localInputToIso(v) !== undefined) return { input: v }
  const iso = zonedIsoToIso(v)
  return iso !== undefined ? { input: isoToLocalInput(iso) } : { input: '', unreadable: v }
}

/** isoToLocalInput: an ISO time as a `datetime-local` value to the second (local time), or '' when unreadable. */
export function isoToLocalInput(iso: string): string {
  const d = new Date(iso)
  if (iso === '' || Number.isNaN(d.getTime())) return ''
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** The approve/deny body: `{approver, reason?}` (an empty reason is left out). */
export function decisionBody(approver: string, reason: string): { approver: string; reason?: string } {
  const r = reason.trim()
  return r === '' ? { approver: approver.trim() } : { approver: approver.trim(), reason: r }
}

/** A JIT request's status as the API names them. */
export const REQUEST_STATUSES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const
export type RequestStatus = (typeof REQUEST_STATUSES)[number]

/** statusFromQuery: `?status=` when it is a known status, '' (all) when absent or empty, else 'pending'. */
export function statusFromQuery(query: URLSearchParams): RequestStatus | '' {
  const s = query.get('status')
  if (s === null) return 'pending'
  if (s === '' || s === 'all') return ''
  return (REQUEST_STATUSES as readonly string[]).includes(s) ? (s as RequestStatus) : 'pending'
}

/** The latest model's names, as suggestions for the fields (never as a rule: the API decides). */
export interface ModelHints {
  types: string[]
  /** Relations per type. */
  relations: Record<string, string[]>
  allRelations: string[]
  conditions: string[]
}

/** relationsOfType: the relations suggested for a type (every relation when it is empty or not in the model). */
export function relationsOfType(hints: ModelHints | undefined, type: string | undefined): string[] {
  const t = (type ?? '').trim()
  return (t !== '' && hints?.relations[t]) || hints?.allRelations || []
}

/** objectType: the type part of a typed `type:id` object ('' before the colon is typed). */
export function objectType(object: string): string {
  const s = object.trim()
  const i = s.indexOf(':')
  return i === -1 ? '' : s.slice(0, i)
}
