/**
 * Tuple keys and the identities inside them. A relationship tuple reads
 * `object#relation@user`, e.g. `document:1#viewer@group:eng#member`: the members of group:eng
 * may view document:1.
 *
 * @module
 */

/** ObjectRef names one object, e.g. `document:1` → { type: 'document', id: '1' }. */
export interface ObjectRef {
  type: string
  id: string
}

/**
 * Subject is the user side of a tuple or check: an object (`user:anne`), a typed wildcard
 * (`user:*`, id '*') or a userset (`group:eng#member`, relation 'member'). `relation` is ''
 * when the subject is not a userset.
 */
export interface Subject {
  type: string
  id: string
  relation: string
}

/** TupleCondition is a condition name with the context stored alongside the tuple. */
export interface TupleCondition {
  name: string
  context?: Record<string, unknown>
}

/**
 * TupleKey is the wire form of a tuple: three strings plus an optional condition and, as a Pemba
 * extension, an optional `expires_at` (RFC 3339) after which the tuple grants nothing.
 */
export interface TupleKey {
  user: string
  relation: string
  object: string
  condition?: TupleCondition | null
  expires_at?: string | null
}

/**
 * Tuple is a parsed, stored relationship. Parsing once at the edge lets the store and engine
 * compare fields without re-splitting strings on the hot path.
 */
export interface Tuple {
  objectType: string
  objectId: string
  relation: string
  userType: string
  userId: string
  /** '' unless the user is a userset (`group:eng#member` → 'member'). */
  userRelation: string
  conditionName: string
  conditionContext: Record<string, unknown> | undefined
  /** When the tuple stops granting anything (ms since the epoch); undefined = never. */
  expiresAt?: number
}

/** TupleIdentity is the key of a tuple, without its condition or expiry: what a delete names. */
export type TupleIdentity = Omit<Tuple, 'conditionName' | 'conditionContext' | 'expiresAt'>

export const WILDCARD = '*'

/** parseObject splits `type:id`; returns undefined when it is not exactly that shape. */
export function parseObject(object: string): ObjectRef | undefined {
  const i = object.indexOf(':')
  if (i <= 0 || i === object.length - 1) return undefined
  const type = object.slice(0, i)
  const id = object.slice(i + 1)
  if (id.includes(':') || id.includes('#') || type.includes('#') || hasSpace(object)) return undefined
  return { type, id }
}

/**
 * parseSubject splits a user string (`user:anne`, `user:*`, `group:eng#member`). Mirrors
 * OpenFGA's IsValidUser: at most one ':' and one '#', no white space, a non-empty type and id,
 * and a wildcard may not carry a relation.
 */
export function parseSubject(user: string): Subject | undefined {
  if (hasSpace(user)) return undefined
  const colon = user.indexOf(':')
  if (colon <= 0) return undefined
  if (user.indexOf(':', colon + 1) !== -1) return undefined
  const hash = user.indexOf('#')
  if (hash !== -1 && (hash < colon || user.indexOf('#', hash + 1) !== -1)) return undefined
  const type = user.slice(0, colon)
  const id = hash === -1 ? user.slice(colon + 1) : user.slice(colon + 1, hash)
  const relation = hash === -1 ? '' : user.slice(hash + 1)
  if (id === '') return undefined
  if (hash !== -1 && relation === '') return undefined
  if (id === WILDCARD && relation !== '') return undefined
  return { type, id, relation }
}

/** formatSubject is the inverse of parseSubject. */
export function formatSubject(s: Subject): string {
  return s.relation ? `${s.type}:${s.id}#${s.relation}` : `${s.type}:${s.id}`
}

export function formatObject(type: string, id: string): string {
  return `${type}:${id}`
}

/**
 * tupleToKey renders a parsed tuple in its wire form (condition and expiry omitted when
 * absent, so a tuple without them reads exactly as OpenFGA renders it).
 */
export function tupleToKey(t: Tuple): TupleKey {
  const key: TupleKey = {
    user: formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation }),
    relation: t.relation,
    object: formatObject(t.objectType, t.objectId),
  }
  if (t.conditionName) {
    key.condition = { name: t.conditionName, context: t.conditionContext ?? {} }
  }
  if (t.expiresAt !== undefined) key.expires_at = formatExpiry(t.expiresAt)
  return key
}

/**
 * RFC 3339 date-time: `2026-11-29T10:00:00Z`, `2026-11-29T12:00:00.5+02:00`. `T` and `Z` may be
 * lower case, as RFC 3339 allows; a zone is required (a local time names no instant).
 */
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/

/**
 * parseExpiresAt reads an `expires_at` value: the instant in ms since the epoch, or undefined
 * when it is not an RFC 3339 date-time naming a real calendar instant (`2026-02-30T00:00:00Z`
 * is refused rather than rolled over to March). Fractions below a millisecond are cut, so the
 * tuple expires at most a fraction of a millisecond early, never late. Leap seconds (`:60`) are
 * refused: JavaScript time has none.
 */
export function parseExpiresAt(s: string): number | undefined {
  const m = RFC3339.exec(s)
  if (!m) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate()
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined
  if (hour > 23 || minute > 59 || second > 59) return undefined
  if (m[9] && (Number(m[10]) > 23 || Number(m[11]) > 59)) return undefined
  const ms = Date.parse(s.toUpperCase())
  return Number.isNaN(ms) ? undefined : ms
}

/** formatExpiry prints an expiry as RFC 3339 in UTC, with fractional seconds only when set. */
export function formatExpiry(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z')
}

/**
 * describeTuple renders a tuple as OpenFGA's write errors and messages do:
 * `user: 'user:anne', relation: 'viewer', object: 'doc:1'`.
 */
export function describeTuple(t: TupleIdentity): string {
  const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
  return `user: '${user}', relation: '${t.relation}', object: '${t.objectType}:${t.objectId}'`
}

/** tupleString renders `object#relation@user`, the form used in messages and cache keys. */
export function tupleString(key: { user: string; relation: string; object: string }): string {
  return `${key.object}#${key.relation}@${key.user}`
}


/**
 * hasSpace: white space, or U+0000, which no id may hold either: PostgreSQL text cannot store
 * it, so a NUL in a check, read or delete would fail there as a 500 rather than a 400.
 */
function hasSpace(s: string): boolean {
  return /[\s\u0000]/.test(s)
}
