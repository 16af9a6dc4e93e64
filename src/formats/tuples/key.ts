/**
 * One tuple record read from a file, checked for shape only: strings where fga expects them,
 * `type:id` objects and users, a condition with a name and an object context, an RFC 3339
 * `expires_at`. Whether the types and relations exist is the model's business, decided when the
 * tuple is written; a file is read without a server.
 *
 * @module
 */
import { parseExpiresAt, parseObject, parseSubject, type TupleKey } from '../../core/tuple.ts'

/** A record of a tuple file: its 1-based line, and either the key or why it cannot be read. */
export interface TupleRecord {
  line: number
  key?: TupleKey
  /** `line 7: object 'doc' is not type:id`: the line number leads, so it prints as is. */
  error?: string
}

/** TupleFileError: a tuple a file format cannot carry (thrown by a writer; the export stops). */
export class TupleFileError extends Error {}

/** badRecord: a record that cannot be read, its reason prefixed with its line. */
export function badRecord(line: number, reason: string): TupleRecord {
  return { line, error: `line ${line}: ${reason}` }
}

/**
 * keyFromParts checks a tuple's parts and builds its wire form; returns the reason as a string
 * when they are not a tuple. `condition` and `expires_at` appear only when given, so a tuple
 * without them reads exactly as OpenFGA renders it.
 */
export function keyFromParts(
  user: unknown,
  relation: unknown,
  object: unknown,
  condition: unknown,
  expiresAt: unknown,
): TupleKey | string {
  if (typeof user !== 'string' || user === '') return "'user' is missing or not a string"
  if (typeof relation !== 'string' || relation === '') return "'relation' is missing or not a string"
  if (typeof object !== 'string' || object === '') return "'object' is missing or not a string"
  // PostgreSQL text cannot hold U+0000; the server refuses it too.
  for (const [name, value] of [['user', user], ['relation', relation], ['object', object]] as const) {
    if (value.includes('\0')) return `'${name}' holds a NUL character (U+0000), which a tuple cannot hold`
  }
  if (!parseObject(object)) return `object '${object}' is not type:id`
  if (!parseSubject(user)) return `user '${user}' is not type:id, type:* or type:id#relation`
  if (/[\s#:@]/.test(relation)) return `relation '${relation}' is not a relation name`
  const key: TupleKey = { user, relation, object }
  if (condition !== undefined && condition !== null) {
    if (typeof condition !== 'object' || Array.isArray(condition)) return "'condition' is not an object {name, context}"
    const { name, context } = condition as { name?: unknown; context?: unknown }
    if (typeof name !== 'string' || name === '') return "'condition.name' is missing or not a string"
    if (name.includes('\0')) return "'condition.name' holds a NUL character (U+0000), which a tuple cannot hold"
    if (context !== undefined && context !== null && (typeof context !== 'object' || Array.isArray(context))) {
      return `condition '${name}' has a context that is not an object`
    }
    key.condition = { name, context: (context ?? {}) as Record<string, unknown> }
  }
  if (expiresAt !== undefined && expiresAt !== null && expiresAt !== '') {
    if (typeof expiresAt !== 'string' || parseExpiresAt(expiresAt) === undefined) {
      return `expires_at '${String(expiresAt)}' is not an RFC 3339 date-time`
    }
    key.expires_at = expiresAt
  }
  return key
}

/** recordFromObject reads one `{user, relation, object, condition?, expires_at?}` item. */
export function recordFromObject(line: number, item: unknown): TupleRecord {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return badRecord(line, 'a tuple is an object {user, relation, object, condition?, expires_at?}')
  }
  const o = item as Record<string, unknown>
  const key = keyFromParts(o.user, o.relation, o.object, o.condition, o.expires_at)
  return typeof key === 'string' ? badRecord(line, key) : { line, key }
}

/** canonicalKey: the key's fields in OpenFGA's order, for writers (no stray fields). */
export function canonicalKey(key: TupleKey): TupleKey {
  const out: TupleKey = { user: key.user, relation: key.relation, object: key.object }
  if (key.condition) out.condition = { name: key.condition.name, context: key.condition.context ?? {} }
  if (key.expires_at) out.expires_at = key.expires_at
  return out
}
