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
 *   (an error is a non-permit). `execute_all` starts every item at once (the batch is capped,
 *   see `maxItems`). The short-circuit semantics evaluate speculatively in a window of
 *   SPECULATION_WINDOW items in flight, in request order: no item is started once an item
 *   before it has settled as the stopper, and an item in flight past a known stopper is told
 *   it is no longer wanted (`wanted()`: the decider then signs no ARAP binding token for it).
 *   The answer is the prefix up to the stopper, in order. At most SPECULATION_WINDOW − 1 items
 *   past the stopper are decided (and recorded in the decision log as the checks they were)
 *   without being returned.
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
    o: {
      modelId?: string
      explain?: boolean
      meta?: DecisionMeta
      pdp: () => string
      wanted?: () => boolean
      canSeeDetails?: () => Promise<boolean>
    },
  ): Promise<AuthzenDecision>
}

/** How many items of a short-circuit batch are evaluated ahead, in flight at once. */
export const SPECULATION_WINDOW = 8

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
  /** The PDP identifier, built on first use (only requestable denials and approvals need it). */
  pdp: () => string
  meta?: DecisionMeta
  /** May the caller see an explanation's details (reason_admin, the tree)? Asked once, when explaining. */
  canSeeDetails?: () => Promise<boolean>
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
    const { explain, meta } = input
    const modelId = ts.id
    // One answer for the whole batch: the caller is the same for every item.
    let details: Promise<boolean> | undefined
    const canSeeDetails = input.canSeeDetails && (() => (details ??= input.canSeeDetails!()))
    let pdp: string | undefined
    const pdpOnce = () => (pdp ??= input.pdp())
    // An outcome never rejects, so an item in flight past a stopper fails no one.
    const run = (e: AuthzenEvaluation, o: Parameters<SingleDecider['decide']>[2]): Promise<EvaluationOutcome> =>
      this.#o.decider.decide(storeId, e, o).then(
        (decision): EvaluationOutcome => ({ ok: true, decision }),
        (error: unknown): EvaluationOutcome => ({ ok: false, error }),
      )
    if (semantic === 'execute_all') {
      const shared = { modelId, explain, meta, canSeeDetails, pdp: pdpOnce }
      return Promise.all(evaluations.map((e) => run(e, shared)))
    }
    const stops = (o: EvaluationOutcome): boolean => {
      const permitted = o.ok && o.decision.decision
      return semantic === 'deny_on_first_deny' ? !permitted : permitted
    }
    const n = evaluations.length
    const pending: Promise<EvaluationOutcome>[] = []
    // The lowest index known to stop the batch: items past it are not started, nor wanted.
    let stopper = n
    const start = (i: number): Promise<EvaluationOutcome> => {
      const o = { modelId, explain, meta, canSeeDetails, pdp: pdpOnce, wanted: () => i <= stopper }
      return run(evaluations[i], o).then((outcome) => {
        if (i < stopper && stops(outcome)) stopper = i
        return outcome
      })
    }
    const out: EvaluationOutcome[] = []
    let started = 0
    for (let i = 0; i < n; i++) {
      while (started < n && started < i + SPECULATION_WINDOW && started <= stopper) pending.push(start(started++))
      const outcome = await pending[i]
      out.push(outcome)
      if (stops(outcome)) break
    }
    return out
  }
}
