/**
 * LimitingDispatcher bounds the work of one request: resolution deeper than `maxDepth` hops
 * (OpenFGA's resolve node limit, 25) is `authorization_model_resolution_too_complex`, more than
 * `maxDispatches` subproblems or a passed deadline stop the request. These are the guards that
 * keep one hostile or pathological request from taking the server.
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'
import type { CheckDispatcher, CheckRequest, CheckResult } from './dispatch.ts'

export class ResolutionTooComplexError extends PembaError {
  constructor() {
    super(
      'authorization_model_resolution_too_complex',
      'Authorization Model resolution required too many rewrite rules to be resolved. Try simplifying your authorization model.',
    )
  }
}

export class DeadlineExceededError extends PembaError {
  constructor() {
    super('deadline_exceeded', 'Request Deadline Exceeded')
  }
}

export interface Limits {
  maxDepth: number
  maxDispatches: number
}

export class LimitingDispatcher implements CheckDispatcher {
  readonly #next: CheckDispatcher
  readonly #limits: Limits

  constructor(next: CheckDispatcher, limits: Limits) {
    this.#next = next
    this.#limits = limits
  }

  dispatchCheck(req: CheckRequest): Promise<CheckResult> {
    if (req.depth >= this.#limits.maxDepth) throw new ResolutionTooComplexError()
    const stats = req.ctx.stats
    if (++stats.dispatches > this.#limits.maxDispatches) throw new ResolutionTooComplexError()
    if (req.ctx.deadline && (stats.dispatches & 63) === 0 && Date.now() > req.ctx.deadline) {
      throw new DeadlineExceededError()
    }
    return this.#next.dispatchCheck(req)
  }
}
