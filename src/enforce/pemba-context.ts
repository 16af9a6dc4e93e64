/**
 * How a DecisionClient puts its options into a question: Pemba reads them from
 * `context.pemba` (src/service/authzen/pemba-options.ts), on the wire and in-process alike:
 *
 *     withPembaOptions(q, {onBehalfOf: ['user:alice'], consistency: 'HIGHER_CONSISTENCY'})
 *     // → {...q, context: {...q.context, pemba: {on_behalf_of: ['user:alice'], consistency: 'HIGHER_CONSISTENCY'}}}
 *
 * A question without options is sent as it is (no copy).
 *
 * @module
 */
import { createRequestIdGenerator } from '../core/ids.ts'
import type { AuthzenEvaluation, DecisionOptions } from './decisions.ts'

/** Request ids for questions asked: ULIDs from pooled randomness (ulid's default costs ~0.1 ms of CPU each). */
const newRequestId = createRequestIdGenerator()

/** withPembaOptions returns the question with `onBehalfOf`, `consistency` and `explain` in `context.pemba`. */
export function withPembaOptions(question: AuthzenEvaluation, options: DecisionOptions | undefined): AuthzenEvaluation {
  if (!options) return question
  const pemba: Record<string, unknown> = {}
  if (options.onBehalfOf?.length) pemba.on_behalf_of = options.onBehalfOf
  if (options.consistency) pemba.consistency = options.consistency
  if (options.explain) pemba.explain = true
  if (Object.keys(pemba).length === 0) return question
  const own = question.context?.pemba
  const merged = own && typeof own === 'object' && !Array.isArray(own) ? { ...own, ...pemba } : pemba
  return { ...question, context: { ...question.context, pemba: merged } }
}

/** The request ids Pemba logs decisions under as sent (src/api/observe.ts); any other it replaces. */
const LOGGED_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * requestIdOf: the id a question is asked (and logged) under: the caller's when Pemba would log
 * it as sent (1–128 of `[A-Za-z0-9._:-]`), else a fresh ULID, so the id an enforcement point
 * shows always finds the decision.
 */
export function requestIdOf(options: DecisionOptions | undefined): string {
  const id = options?.requestId
  return id !== undefined && LOGGED_REQUEST_ID.test(id) ? id : newRequestId()
}
