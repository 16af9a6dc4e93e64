/**
 * The AuthZEN batch (`POST …/access/v1/evaluations`): top-level defaults, one decision per item
 * in request order, and the three `options.evaluations_semantic` values.
 *
 * - **Defaults.** `subject`, `action`, `resource` and `context` at the top level apply to every
 *   item that lacks them; an item's member replaces the default whole (no merge of `context`
 *   or `properties`). A top-level member may be absent only if every item has it.
 * - **Empty batch.** Absent or empty `evaluations` is the single evaluation of the top level
 *   (the route answers its `decision` and a one-element `evaluations`).
 * - **Semantics.** `execute_all` returns all N. `deny_on_first_deny` returns items 0…k where k
 *   is the first deny or error; `permit_on_first_permit` items 0…k where k is the first permit
 *   (an error is a non-permit). Every item is started at once (the batch is capped, see
 *   `maxItems`) and the answer is the prefix up to the stopper, in order, as soon as that prefix
 *   is settled: items after it still finish (they are speculative work, and are recorded in the
 *   decision log as the checks they were), but are never returned.
 * - **Errors.** An item's own error (unknown type, bad id) fails that item alone, closed:
 *   the caller renders it as `{decision: false, context: {error: {status, message}}}`.
 * - **Model.** Resolved once for the whole batch (the `Openfga-Authorization-Model-Id` header, or
 *   the latest), so every item is decided by the same model even if a new one is written meanwhile.
 *
 * @module
 */
import { validationError } from '../../core/errors.ts'
import type { DecisionMeta } from '../checks.ts'
import type { ModelService } from '../models.ts'
import type { AuthzenAction, AuthzenDecision, AuthzenEntity, AuthzenEvaluation, EvaluationsSemantic } from './types.ts'

/** What the batch needs of the decider (src/service/authzen/decider.ts): one evaluation → one decision. */
export interface SingleDecider {
  decide(
    storeId: string,
    e: AuthzenEvaluation,
    o: { modelId?: string; explain?: boolean; meta?: DecisionMeta; pdp: string },
  ): Promise<AuthzenDecision>
}

/** An evaluation with every member optional: the top level of a batch, or one of its items. */
export interface PartialEvaluation {
  subject?: AuthzenEntity
  action?: AuthzenAction
  resource?: AuthzenEntity
  context?: Record<string, unknown>
}

export interface EvaluationsInput {
  defaults: PartialEvaluation
  items: PartialEvaluation[]
  semantic: EvaluationsSemantic
  /** The `Openfga-Authorization-Model-Id` header; undefined = the latest model. */
  modelId?: string
  explain?: boolean
  pdp: string
  meta?: DecisionMeta
}

/** One item's outcome: its decision, or what it threw (the HTTP layer maps it to the wire error). */
export type EvaluationOutcome = { ok: true; decision: AuthzenDecision } | { ok: false; error: unknown }

export interface AuthzenEvaluationsOptions {
  decider: SingleDecider
  models: Pick<ModelService, 'resolve'>
  /** The most items one batch may hold (PEMBA_MAX_CHECKS_PER_BATCH, as batch-check). */
  maxItems: number
}

const MEMBERS = ['subject', 'action', 'resource'] as const

/**
 * resolveItems applies the top-level defaults to each item, or throws a 400 naming the first item
 * that lacks a required member the top level does not give either.
 */
export function resolveItems(defaults: PartialEvaluation, items: PartialEvaluation[]): AuthzenEvaluation[] {
  return items.map((item, i) => {
    const e: Partial<AuthzenEvaluation> = {}
    for (const m of MEMBERS) {
      const v = item[m] ?? defaults[m]
      if (v === undefined) {
        throw validationError(`invalid EvaluationsRequest.evaluations[${i}].${m}: value is required (the top level gives no default)`)
      }
      ;(e as Record<string, unknown>)[m] = v
    }
    const context = item.context ?? defaults.context
    if (context !== undefined) e.context = context
    return e as AuthzenEvaluation
  })
}

export class AuthzenEvaluations {
  readonly #o: AuthzenEvaluationsOptions

  constructor(options: AuthzenEvaluationsOptions) {
    this.#o = options
  }

  /**
   * evaluate answers a non-empty batch: one outcome per returned item, in request order (all of
   * them for `execute_all`, the prefix up to the stopper for the short-circuit semantics).
   */
  async evaluate(storeId: string, input: EvaluationsInput): Promise<EvaluationOutcome[]> {
    const { items, semantic } = input
    if (items.length > this.#o.maxItems) {
      throw validationError(`invalid EvaluationsRequest.evaluations: ${items.length} items, at most ${this.#o.maxItems} per request`)
    }
    const evaluations = resolveItems(input.defaults, items)
    const ts = await this.#o.models.resolve(storeId, input.modelId)
    const options = { modelId: ts.id, explain: input.explain, meta: input.meta, pdp: input.pdp }
    // Started together; an outcome never rejects, so items after a stopper fail no one.
    const pending = evaluations.map((e) =>
      this.#o.decider.decide(storeId, e, options).then(
        (decision): EvaluationOutcome => ({ ok: true, decision }),
        (error: unknown): EvaluationOutcome => ({ ok: false, error }),
      ),
    )
    if (semantic === 'execute_all') return Promise.all(pending)
    const out: EvaluationOutcome[] = []
    for (const p of pending) {
      const outcome = await p
      out.push(outcome)
      const permitted = outcome.ok && outcome.decision.decision
      if (semantic === 'deny_on_first_deny' ? !permitted : permitted) break
    }
    return out
  }
}
