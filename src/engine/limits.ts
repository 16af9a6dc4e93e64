/**
 * LimitingDispatcher bounds the work of one request: resolution deeper than `maxDepth` hops
 * (OpenFGA's resolve node limit, 25) is `authorization_model_resolution_too_complex`, more than
 * `maxDispatches` subproblems or a passed deadline stop the request. These are the guards that
 * keep one hostile or pathological request from taking the server.
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'
import type { CheckDispatcher, CheckRequest, CheckResult, ResolutionContext } from './dispatch.ts'
import { sliceSpent, stopReason, yieldTurn } from './pacing.ts'

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

/**
 * RequestCancelledError: the client went away (its connection closed) while its query was
 * waiting or running; the work stops. Nobody reads the answer (`cancelled`, 400).
 */
export class RequestCancelledError extends PembaError {
  constructor() {
    super('cancelled', 'the request was cancelled: the client closed its connection')
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
    const ctx = req.ctx
    if (++ctx.stats.dispatches > this.#limits.maxDispatches) throw new ResolutionTooComplexError()
    // Every 64 subproblems: the deadline, the client, and the event loop's turn, so that a wide
    // fan-out (a check over 20k parents, one heavy candidate of a list) holds the loop no longer
    // than its slice and stops at its deadline (pacing.ts; reducers.ts passes the stop up).
    // The root too: a check that starts after other work has held the loop past its slice
    // (the items of a batch start together) gives it back before its first read.
    if ((ctx.stats.dispatches & 63) === 0 || ctx.stats.dispatches === 1) {
      stopIfDue(ctx)
      if (sliceSpent(ctx)) {
        return yieldTurn(ctx).then(() => {
          stopIfDue(ctx)
          return this.#next.dispatchCheck(req)
        })
      }
    }
    return this.#next.dispatchCheck(req)
  }
}

/**
 * deadlinePassed is for lists, which answer what they found by their deadline: true once it
 * has passed; it throws RequestCancelledError when the client has gone away.
 */
export function deadlinePassed(ctx: ResolutionContext): boolean {
  const why = stopReason(ctx)
  if (why === 'cancelled') throw new RequestCancelledError()
  return why === 'deadline'
}

/**
 * stopsRequest: is this error the whole request's end (its deadline, its client gone) rather
 * than one branch's? The set operators pass such errors straight up instead of trying the
 * other branches, so a fan-out stops where it runs (reducers.ts).
 */
export function stopsRequest(e: unknown): boolean {
  return e instanceof DeadlineExceededError || e instanceof RequestCancelledError
}

/** stopIfDue throws when the request must stop: its deadline passed, or its client went away. */
export function stopIfDue(ctx: ResolutionContext): void {
  const why = stopReason(ctx)
  if (why === 'deadline') throw new DeadlineExceededError()
  if (why === 'cancelled') throw new RequestCancelledError()
}
