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

/** TupleKey is the wire form of a tuple: three strings plus an optional condition. */
export interface TupleKey {
  user: string
  relation: string
  object: string
  condition?: TupleCondition | null
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
}

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

/** tupleToKey renders a parsed tuple in its wire form (condition omitted when absent). */
export function tupleToKey(t: Tuple): TupleKey {
  const key: TupleKey = {
    user: formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation }),
    relation: t.relation,
    object: formatObject(t.objectType, t.objectId),
  }
  if (t.conditionName) {
    key.condition = { name: t.conditionName, context: t.conditionContext ?? {} }
  }
  return key
}

/** tupleString renders `object#relation@user`, the form used in messages and cache keys. */
export function tupleString(key: { user: string; relation: string; object: string }): string {
  return `${key.object}#${key.relation}@${key.user}`
}

/** isWildcard tells whether a subject is a typed wildcard (`user:*`). */
export function isWildcard(s: Subject): boolean {
  return s.id === WILDCARD
}

function hasSpace(s: string): boolean {
  return /\s/.test(s)
}
