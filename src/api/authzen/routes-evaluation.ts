/**
 * AuthZEN 1.0 Access Evaluation and Access Evaluations, per store in OpenFGA's layout:
 *
 * ```
 * POST /stores/{store_id}/access/v1/evaluation
 * {"subject":{"type":"user","id":"maria"},"action":{"name":"can_edit"},"resource":{"type":"doc","id":"plan-7"}}
 * → 200 {"decision":false}
 * ```
 *
 * - The model: the `Openfga-Authorization-Model-Id` header when it is a model id (a ULID), else
 *   the store's latest. As OpenFGA's AuthZEN, a header that is not a ULID is ignored (the latest
 *   model answers); a ULID that names no model of the store is a 400
 *   `authorization_model_not_found`, as a check with that `authorization_model_id`.
 * - `Pemba-Explain: true` asks for reasons, as `context.pemba.explain` does.
 * - Errors are `{code, message}` (the one error mapper): 415 without a JSON Content-Type, 400
 *   for a body that is not a JSON object or lacks a required member; a denial is 200.
 *   `X-Request-ID` is echoed on every answer (observe.ts).
 * - Evaluations: the batch service (src/service/authzen/evaluations.ts). A failed item is
 *   `{"decision":false,"context":{"error":{"status":400,"message":"…"}}}`, redacted as every
 *   error. Absent or empty `evaluations` answers the single evaluation's `decision` and a
 *   one-element `evaluations`.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { PembaError } from '../../core/errors.ts'
import type { DecisionMeta } from '../../service/checks.ts'
import { AUTHZEN_DETAIL, type DecideOptions } from '../../service/authzen/decider.ts'
import type { AuthzenDecision } from '../../service/authzen/types.ts'
import type { EvaluationOutcome } from '../../service/authzen/evaluations.ts'
import { errorContext, wireError } from '../errors.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId, parseInput } from '../validation.ts'
import { pdpOf } from './base-url.ts'
import { EXPLAIN_HEADER, evaluationRequest, evaluationsRequest, pinnedModel, readAuthzenBody } from './contracts.ts'

/**
 * authzenMeta: who asked, for the decision log, marked as AuthZEN's (`detail.authzen`); built
 * once per request (the decider passes a meta that has its detail on unchanged, so a batch
 * does not build one per item).
 */
function authzenMeta(c: Context<AppEnv>): DecisionMeta {
  return { requestId: c.get('requestId'), client: c.get('client'), detail: AUTHZEN_DETAIL }
}

export function registerAuthzenEvaluationRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { authzenDecider: decider, authzenEvaluations: batches, authzenSettings: settings } = deps

  route(app, 'POST /stores/:store/access/v1/evaluation', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(evaluationRequest, await readAuthzenBody(c), 'EvaluationRequest')
    const observation = c.get('observation')
    observation.beginQuery('check', storeId, body.action.name, body.resource.type)
    const decision = await decider.decide(storeId, body, new HttpDecideOptions(c, deps, storeId))
    observation.endQuery(decision.decision ? 'allowed' : 'denied')
    return c.json(decision)
  })

  route(app, 'POST /stores/:store/access/v1/evaluations', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(evaluationsRequest, await readAuthzenBody(c), 'EvaluationsRequest')
    const { evaluations: items, options, ...defaults } = body
    const single = items === undefined || items.length === 0
    // Exactly a single evaluation: its members are required at the top level.
    if (single) parseInput(evaluationRequest, defaults, 'EvaluationsRequest')
    const observation = c.get('observation')
    observation.beginQuery('batch_check', storeId)
    const outcomes = await batches.evaluate(storeId, {
      defaults,
      items: single ? [{}] : items,
      semantic: options?.evaluations_semantic ?? 'execute_all',
      modelId: pinnedModel(c),
      explain: c.req.header(EXPLAIN_HEADER) === 'true' || undefined,
      meta: authzenMeta(c),
      pdp: () => pdpOf(c, settings, storeId),
      canSeeDetails: () => mayReadTuples(deps, c.get('client'), storeId),
    })
    observation.endQuery('ok', undefined, outcomes.length)
    if (single) {
      // Exactly a single evaluation: its error is the request's.
      const only = outcomes[0]
      if (!only.ok) throw only.error
      return c.json({ decision: only.decision.decision, ...(only.decision.context ? { context: only.decision.context } : {}), evaluations: [only.decision] })
    }
    const ctx = errorContext(deps, c.get('requestId'))
    return c.json({ evaluations: outcomes.map((o) => decisionOf(o, (err) => wireError(err, ctx))) })
  })
}

/**
 * HttpDecideOptions: the DecideOptions of one HTTP evaluation. A class, its lazy parts methods:
 * an options literal with a getter and closures over the request's context cost up to ~40 µs per
 * evaluation in garbage collection (measured in-process over 100k requests), more than the check.
 */
class HttpDecideOptions implements DecideOptions {
  readonly modelId: string | undefined
  readonly explain: boolean | undefined
  readonly meta: DecisionMeta
  readonly #c: Context<AppEnv>
  readonly #deps: AppDeps
  readonly #storeId: string

  constructor(c: Context<AppEnv>, deps: AppDeps, storeId: string) {
    this.modelId = pinnedModel(c)
    this.explain = c.req.header(EXPLAIN_HEADER) === 'true' || undefined
    this.meta = authzenMeta(c)
    this.#c = c
    this.#deps = deps
    this.#storeId = storeId
  }

  /** Only a requestable denial or an approval needs the identifier (and the Host). */
  pdp(): string {
    return pdpOf(this.#c, this.#deps.authzenSettings, this.#storeId)
  }

  canSeeDetails(): Promise<boolean> {
    return mayReadTuples(this.#deps, this.#c.get('client'), this.#storeId)
  }
}

/**
 * mayReadTuples: may the client read the store's tuples (`reader`, or authentication off)? Then
 * it may see an explained decision's `reason_admin` and `pemba.explanation` (decider.ts).
 */
export function mayReadTuples(deps: Pick<AppDeps, 'access'>, client: string, storeId: string): Promise<boolean> {
  return deps.access.requireOnStore(client, 'reader', storeId).then(
    () => true,
    (e: unknown) => {
      if (e instanceof PembaError && e.code === 'forbidden') return false
      throw e
    },
  )
}

/** decisionOf: an item's decision, or its error failed closed (`decision: false`, `context.error`). */
function decisionOf(o: EvaluationOutcome, wire: (err: unknown) => { status: number; body: { message: string } }): AuthzenDecision {
  if (o.ok) return o.decision
  const w = wire(o.error)
  return { decision: false, context: { error: { status: w.status, message: w.body.message } } }
}
