/**
 * Condition evaluation on the check path: a tuple `document:1#viewer@user:anne with in_hours`
 * grants only if `in_hours` evaluates to true over the request context overlaid by the tuple's
 * stored context. A missing parameter or a failed conversion is an error (OpenFGA 2000), which
 * the reducers surface only when no other branch decides the answer.
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'
import type { Tuple } from '../core/tuple.ts'
import type { ResolutionContext } from './dispatch.ts'

/** ConditionEvaluationError is a condition that could not be evaluated (HTTP 400 validation_error). */
export class ConditionEvaluationError extends PembaError {
  constructor(message: string) {
    super('validation_error', message)
  }
}

/**
 * tupleConditionHolds tells whether a tuple's condition (if any) is met; throws
 * ConditionEvaluationError when it cannot be evaluated.
 */
export function tupleConditionHolds(ctx: ResolutionContext, t: Tuple): boolean {
  if (!t.conditionName) return true
  const cond = ctx.typesystem.conditions.get(t.conditionName)
  // typesystem.admits() already drops tuples whose condition is no longer in the model.
  if (!cond) return false
  const outcome = cond.evaluate(ctx.context, t.conditionContext)
  if (outcome.kind === 'true') return true
  if (outcome.kind === 'false') return false
  throw new ConditionEvaluationError(outcome.message)
}
