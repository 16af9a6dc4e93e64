/**
 * An embedded Pemba asked in-process: the same `AuthzenDecider` the HTTP evaluation route calls
 * (`pemba.authzen`), without HTTP, so a service that runs Pemba as a library gets exactly the
 * answers a Pemba server would give, and the same decision log:
 *
 *     const pemba = await createPemba(config)
 *     const decisions = embeddedDecisions(pemba, storeId, { client: 'client:orders-api' })
 *     await decisions.evaluate(question, { onBehalfOf: ['user:alice'] })   // → {decision, requestId}
 *
 * - The options go in `context.pemba`, as over HTTP; the decision is logged under `requestId`
 *   (the caller's, or a fresh ULID) with `client` (default '', as with authentication off).
 * - A batch is one decision per question, decided in parallel, answers in order; a question
 *   Pemba refuses answers `{decision: false, context: {error: {status, message}}}`.
 * - Errors are classified as the remote client classifies Pemba's HTTP answers: a question
 *   Pemba refuses (a PembaError with a 4xx status: an unknown store, type or relation) is
 *   DecisionRejected; a PembaError with a 5xx status (`deadline_exceeded`, `unavailable`) and
 *   anything else it throws (the datastore failing) is DecisionUnavailable of kind
 *   `server_error` (there is no network in between, so never `network` or `timeout`: a
 *   fail-open enforcement point does not open on an embedded Pemba's failures).
 * - The caller owns the instance: `close()` does not close it.
 *
 * @module
 */
import { PembaError, validationError } from '../core/errors.ts'
import { AUTHZEN_DETAIL, type DecideOptions } from '../service/authzen/decider.ts'
import type { Pemba } from '../server.ts'
import {
  DecisionRejected,
  DecisionUnavailable,
  type AuthzenDecision,
  type AuthzenEvaluation,
  type DecisionClient,
  type DecisionOptions,
  type EnforcementDecision,
} from './decisions.ts'
import { requestIdOf, withPembaOptions } from './pemba-context.ts'

export interface EmbeddedDecisionsOptions {
  /** Who asks, as the decision log records it (`client:orders-api`); '' by default. */
  client?: string
  /**
   * This PDP's identifier (its public URL), the audience of ARAP binding tokens. Absent, a
   * denial is never made requestable (no `access_request` is advertised); decisions are the same.
   */
  pdp?: string
}

/** Errors about the store rather than a question: a batch fails as a whole with them. */
const STORE_FAILURES = new Set(['store_id_not_found', 'latest_authorization_model_not_found'])

/** embeddedDecisions returns a DecisionClient asking `pemba` in-process (see the module comment). */
export function embeddedDecisions(pemba: Pick<Pemba, 'authzen'>, storeId: string, options: EmbeddedDecisionsOptions = {}): DecisionClient {
  return new EmbeddedDecisions(pemba, storeId, options)
}

class EmbeddedDecisions implements DecisionClient {
  readonly storeId: string
  readonly #pemba: Pick<Pemba, 'authzen'>
  readonly #client: string
  readonly #pdp: () => string

  constructor(pemba: Pick<Pemba, 'authzen'>, storeId: string, o: EmbeddedDecisionsOptions) {
    if (typeof storeId !== 'string' || storeId === '') throw new TypeError('embeddedDecisions: storeId must be a store id')
    this.storeId = storeId
    this.#pemba = pemba
    this.#client = o.client ?? ''
    const pdp = o.pdp
    // A PembaError tells the decider that no identifier can be built (it then advertises nothing).
    this.#pdp = () => {
      if (pdp === undefined) throw validationError('embeddedDecisions: no pdp identifier was given')
      return pdp
    }
  }

  async evaluate(question: AuthzenEvaluation, options?: DecisionOptions): Promise<EnforcementDecision> {
    const requestId = requestIdOf(options)
    try {
      return { ...(await this.#decide(question, options, requestId)), requestId }
    } catch (e) {
      throw this.#failure(e, requestId)
    }
  }

  async evaluateAll(questions: AuthzenEvaluation[], options?: DecisionOptions): Promise<EnforcementDecision[]> {
    const requestId = requestIdOf(options)
    const settled = await Promise.allSettled(questions.map((q) => this.#decide(q, options, requestId)))
    return settled.map((s) => {
      if (s.status === 'fulfilled') return { ...s.value, requestId }
      const e = s.reason
      // Only Pemba's answer to the question fails the item; anything else fails the batch, as
      // does a store that cannot answer at all (over HTTP the whole batch is refused then too).
      // A 5xx PembaError of one item stays that item's error, as the HTTP batch renders it.
      if (!(e instanceof PembaError) || STORE_FAILURES.has(e.code)) throw this.#failure(e, requestId)
      return { decision: false, context: { error: { status: e.status, message: e.message } }, requestId }
    })
  }

  async close(): Promise<void> {}

  #decide(question: AuthzenEvaluation, options: DecisionOptions | undefined, requestId: string): Promise<AuthzenDecision> {
    const decide: DecideOptions = {
      meta: { requestId, client: this.#client, detail: AUTHZEN_DETAIL },
      pdp: this.#pdp,
      // In-process, the caller is the operator (as with authentication off): it may see details.
      canSeeDetails: async () => true,
    }
    return this.#pemba.authzen.decide(this.storeId, withPembaOptions(question, options), decide)
  }

  #failure(e: unknown, requestId: string): Error {
    if (e instanceof PembaError && e.status < 500) return new DecisionRejected(e.message, e.status, e.code, requestId)
    const why = e instanceof PembaError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)
    return new DecisionUnavailable(`the embedded Pemba could not decide: ${why}`, requestId, { cause: e, kind: 'server_error' })
  }
}
