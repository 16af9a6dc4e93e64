/**
 * Validation of a tuple against a model, for writes and contextual tuples. Pure: it only needs
 * the compiled TypeSystem. Messages follow OpenFGA's (`Invalid tuple '<tuple>'. Reason: ...`)
 * so clients that match on them keep working.
 *
 * @module
 */
import { parseObject, parseSubject, tupleString, type Tuple, type TupleKey } from '../core/tuple.ts'
import { validateConditionContext } from './conditions/compile.ts'
import { subjectReferenceKey, type TypeSystem } from './typesystem.ts'

export type TupleValidation = { ok: true; tuple: Tuple } | { ok: false; reason: string; kind: TupleErrorKind }

/** What was wrong, so each API can map it to its own error code. */
export type TupleErrorKind = 'malformed' | 'type_not_found' | 'relation_not_found' | 'not_allowed' | 'condition'

/**
 * validateTuple checks a tuple key against the model: well-formed object and user, existing
 * types and relations, a user admitted by the relation's type restriction with the condition
 * (or lack of one) the restriction names, and a condition context that fits the condition's
 * parameters. Returns the parsed tuple when valid.
 */
export function validateTuple(ts: TypeSystem, key: TupleKey): TupleValidation {
  const fail = (kind: TupleErrorKind, reason: string): TupleValidation => ({ ok: false, kind, reason })
  const object = parseObject(key.object)
  if (!object || object.id === '*') return fail('malformed', 'invalid object')
  const user = parseSubject(key.user)
  if (!user) return fail('malformed', "the 'user' field is malformed")
  if (!key.relation) return fail('malformed', 'the relation is empty')

  if (!ts.hasType(object.type)) {
    return fail('type_not_found', `type '${object.type}' not found`)
  }
  const rel = ts.relation(object.type, key.relation)
  if (!rel) return fail('relation_not_found', `relation '${object.type}#${key.relation}' not found`)
  if (!ts.hasType(user.type)) return fail('type_not_found', `type '${user.type}' not found`)
  if (user.relation && !ts.relation(user.type, user.relation)) {
    return fail('relation_not_found', `relation '${user.type}#${user.relation}' not found`)
  }
  if (user.relation && user.type === object.type && user.id === object.id && user.relation === key.relation) {
    return fail('not_allowed', 'cannot write a tuple that is implicit')
  }

  const refKey = subjectReferenceKey(user)
  const allowedConditions = rel.admitted.get(refKey)
  if (!allowedConditions) {
    return fail('not_allowed', `type '${refKey}' is not an allowed type restriction for '${object.type}#${key.relation}'`)
  }

  const conditionName = key.condition?.name ?? ''
  let conditionContext: Record<string, unknown> | undefined
  if (conditionName) {
    const cond = ts.conditions.get(conditionName)
    if (!cond) return fail('condition', `undefined condition '${conditionName}'`)
    if (!allowedConditions.has(conditionName)) return fail('condition', 'invalid condition for type restriction')
    conditionContext = key.condition?.context ?? undefined
    const problem = validateConditionContext(cond, conditionContext)
    if (problem) return fail('condition', problem)
    if (conditionContext && Object.keys(conditionContext).length === 0) conditionContext = undefined
  } else if (!allowedConditions.has('')) {
    return fail('condition', 'invalid condition for type restriction')
  }

  return {
    ok: true,
    tuple: {
      objectType: object.type,
      objectId: object.id,
      relation: key.relation,
      userType: user.type,
      userId: user.id,
      userRelation: user.relation,
      conditionName,
      conditionContext,
    },
  }
}

/** invalidTupleMessage renders OpenFGA's message for a rejected tuple. */
export function invalidTupleMessage(key: TupleKey, reason: string): string {
  return `Invalid tuple '${tupleString(key)}'. Reason: ${reason}`
}
