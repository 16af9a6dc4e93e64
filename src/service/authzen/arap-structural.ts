/**
 * ARAP's structural equality (Access Request and Approval profile §5.3), and the match between
 * a binding token's claims and an access-request submission, for the Access Request Service.
 *
 * Structural equality: the same JSON type; numbers equal as numbers (their JCS forms are then
 * equal: `1`, `1.0` and `1e0` are one number); strings equal code point by code point; arrays
 * equal in order; objects with the same keys, each value equal. An absent member is not a
 * `null` one. `subject.properties.act` (the actor chain) is ignored: a PEP may move it to
 * `client.actor`; a `properties` left empty without it counts as absent.
 *
 * @module
 */
import type { AuthzenAction, AuthzenEntity } from './types.ts'

/** structurallyEqual: are `a` and `b` the same JSON value (see the module comment)? */
export function structurallyEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((v, i) => structurallyEqual(v, b[i]))
  }
  const ra = a as Record<string, unknown>
  const rb = b as Record<string, unknown>
  const ka = presentKeys(ra)
  const kb = presentKeys(rb)
  if (ka.length !== kb.length) return false
  return ka.every((k) => Object.hasOwn(rb, k) && rb[k] !== undefined && structurallyEqual(ra[k], rb[k]))
}

/** The keys JSON would carry: an `undefined` member is absent. */
function presentKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => o[k] !== undefined)
}

/** withoutActor: a subject as compared, without `properties.act` (and without `properties` left empty). */
export function withoutActor(subject: AuthzenEntity): AuthzenEntity {
  const props = subject.properties
  if (!props || !Object.hasOwn(props, 'act')) return subject
  const { act: _act, ...rest } = props
  const { properties: _p, ...bare } = subject
  return presentKeys(rest).length > 0 ? { ...bare, properties: rest } : bare
}

/** What a binding token bound (BindingClaims' members) or what a submission carries. */
export interface BoundRequest {
  subject: AuthzenEntity
  action: AuthzenAction
  resource: AuthzenEntity
  context?: Record<string, unknown>
}

/**
 * bindingMismatch: undefined when `submitted` is what `bound` bound, else the member that
 * differs (`subject`, `action`, `resource`, `context.<name>`). Only the bound context members
 * count: a submission may add its own (a justification), never change or drop a bound one.
 */
export function bindingMismatch(bound: BoundRequest, submitted: BoundRequest): string | undefined {
  if (!structurallyEqual(withoutActor(bound.subject), withoutActor(submitted.subject))) return 'subject'
  if (!structurallyEqual(bound.action, submitted.action)) return 'action'
  if (!structurallyEqual(bound.resource, submitted.resource)) return 'resource'
  const ctx = submitted.context ?? {}
  for (const [k, v] of Object.entries(bound.context ?? {})) {
    if (v === undefined) continue
    if (!Object.hasOwn(ctx, k) || !structurallyEqual(v, ctx[k])) return `context.${k}`
  }
  return undefined
}
