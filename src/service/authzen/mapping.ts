/**
 * How an AuthZEN evaluation becomes a Pemba check, exactly as OpenFGA's AuthZEN maps it:
 *
 * - subject `{"type":"user","id":"maria"}` → user `user:maria`;
 * - resource `{"type":"doc","id":"plan-7"}` → object `doc:plan-7`;
 * - action `{"name":"can_edit"}` → relation `can_edit`;
 * - `properties` become condition parameters with the prefixes `subject_`, `resource_` and
 *   `action_` (`subject.properties.team` → `subject_team`), merged in that order, and the
 *   request's `context` last, so the context wins a conflict.
 *
 * Some context members are Pemba's or a profile's, not condition parameters, and are taken out
 * before the merge (RESERVED_CONTEXT_KEYS): `pemba` (Pemba's options: `explain`, `consistency`,
 * `contextual_tuples`), `subject_token` (the caller's JWT, token-aware evaluation), `approval`
 * (ARAP re-evaluation) and `supported_obligations` (Obligations profile).
 *
 * @module
 */
import { validationError } from '../../core/errors.ts'
import type { AuthzenEntity, AuthzenEvaluation } from './types.ts'

/** Context members that are never condition parameters (see the module comment). */
export const RESERVED_CONTEXT_KEYS: ReadonlySet<string> = new Set(['pemba', 'subject_token', 'approval', 'supported_obligations'])

/** A type or an action name: OpenFGA's AuthZEN rule (no `:`, `#`, `@` or white space; 1–50). */
const NAME = /^[^:#@\s]{1,50}$/
/** An id: no `#` (that would make a userset), `:` or white space; `@` is fine (emails). */
const ID = /^[^:#\s]+$/
const MAX_SUBJECT_ID = 500
const MAX_RESOURCE_ID = 256

/** entityString turns a subject or resource into `type:id`, or throws a 400 naming the field. */
function entityString(e: AuthzenEntity, field: 'subject' | 'resource', maxId: number): string {
  if (!NAME.test(e.type)) throw validationError(`invalid ${field}.type '${e.type}': 1 to 50 characters, none of ':', '#', '@' or white space`)
  if (e.id.length > maxId || !ID.test(e.id)) {
    throw validationError(`invalid ${field}.id '${e.id}': 1 to ${maxId} characters, none of ':', '#' or white space`)
  }
  return `${e.type}:${e.id}`
}

/** userOf: the check's user for an AuthZEN subject (`user:maria`). */
export function userOf(subject: AuthzenEntity): string {
  return entityString(subject, 'subject', MAX_SUBJECT_ID)
}

/** objectOf: the check's object for an AuthZEN resource (`doc:plan-7`). */
export function objectOf(resource: AuthzenEntity): string {
  return entityString(resource, 'resource', MAX_RESOURCE_ID)
}

/** relationOf: the check's relation for an AuthZEN action name. */
export function relationOf(action: { name: string }): string {
  if (!NAME.test(action.name)) throw validationError(`invalid action.name '${action.name}': 1 to 50 characters, none of ':', '#', '@' or white space`)
  return action.name
}

/** tupleKeyOf: the check an evaluation asks (`doc:plan-7#can_edit@user:maria`). */
export function tupleKeyOf(e: AuthzenEvaluation): { user: string; relation: string; object: string } {
  return { user: userOf(e.subject), relation: relationOf(e.action), object: objectOf(e.resource) }
}

/**
 * conditionContext: the condition parameters of an evaluation (see the module comment), or
 * undefined when there are none, so that a plain evaluation keeps the check's cached fast path.
 */
export function conditionContext(e: {
  subject?: AuthzenEntity
  action?: { properties?: Record<string, unknown> }
  resource?: AuthzenEntity
  context?: Record<string, unknown>
}): Record<string, unknown> | undefined {
  // No closure per call: this runs for every evaluation and batch item.
  let out = addPrefixed(undefined, 'subject_', e.subject?.properties)
  out = addPrefixed(out, 'resource_', e.resource?.properties)
  out = addPrefixed(out, 'action_', e.action?.properties)
  const ctx = e.context
  if (ctx) for (const k in ctx) if (!RESERVED_CONTEXT_KEYS.has(k)) (out ??= {})[k] = ctx[k]
  return out
}

/** addPrefixed copies `props` into `out` (made on first need) with `prefix` before each key. */
function addPrefixed(
  out: Record<string, unknown> | undefined,
  prefix: string,
  props: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (props) for (const k in props) (out ??= {})[prefix + k] = props[k]
  return out
}
