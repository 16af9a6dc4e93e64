/**
 * CheckService answers checks: one (`check`), a batch (`batchCheck`), a delegated one
 * (`on_behalf_of`, see engine/delegation.ts) and the expansion of a relation (`expand`). It
 * resolves the model, validates the question against it, binds the request (EvaluationService)
 * and runs the engine; API requests (those given a RequestMeta) are recorded as decisions. It
 * speaks in parsed domain values; JSON shapes belong to the API layer.
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { PembaError } from '../core/errors.ts'
import { parseObject, tupleToKey, type Tuple, type TupleKey } from '../core/tuple.ts'
import type { CheckDispatcher } from '../engine/dispatch.ts'
import { delegatedCheck, type DeniedBy } from '../engine/delegation.ts'
import { expand, type ExpandNode } from '../engine/expand.ts'
import { collapseDenied, denialReasons, traceOf, witnessPath, witnessTree, type TraceNode } from '../engine/explain.ts'
import { NO_DECISIONS, type DecisionKind, type DecisionSink, type RequestMeta } from './decision-sink.ts'
import type { Consistency, EvaluationService, QueryOptions } from './evaluation.ts'
import type { ModelService } from './models.ts'
import { contextualTuples, delegationChain, refuseCredentialId, validateBatch, validateCheckKey } from './tuple-input.ts'

export interface CheckServiceOptions {
  evaluation: EvaluationService
  models: ModelService
  clock: () => Date
  maxChecksPerBatch: number
  checkDeadlineMs: number
  /** The longest `on_behalf_of` chain a delegated request may name. */
  maxDelegationChain: number
  /** Where decisions made for API requests (those given a RequestMeta) are recorded. */
  decisions?: DecisionSink
  /**
   * What a credential-shaped identifier is (core/credentials.ts; the server's knows the configured
   * preshared keys): such a user or object is refused. Default: JWT and Authorization shapes.
   */
  credentials?: CredentialRule
}

/**
 * Who asked, for the decision log: calls that pass it are recorded (the query API's), calls
 * without it are Pemba's own (an approver check, reach, API-client permissions) and are not.
 * `kind` and `detail` let a caller that adds to the check (a token check) record it as its own.
 */
export type DecisionMeta = RequestMeta & { kind?: DecisionKind; detail?: Record<string, unknown> }

export interface CheckInput extends QueryOptions {
  tupleKey: { user: string; relation: string; object: string }
  /** The principals the user acts for, nearest first (`["agent:planner", "user:alice"]`). */
  onBehalfOf?: string[]
  /** Return an explanation of the answer (see engine/explain.ts). Same answer, slower. */
  explain?: boolean
  /**
   * Return the witness of an allowed answer in wire form (always computed by the engine; only
   * rendered when asked for: the decision log and explanations want it, a plain check not).
   */
  witness?: boolean
}

export interface CheckOutput {
  allowed: boolean
  modelId: string
  /** For a delegated check that was denied: which part failed. */
  deniedBy?: DeniedBy
  /**
   * For an allowed answer: the stored tuples that granted it (contextual tuples, which exist
   * only for the request, are left out).
   */
  witness?: TupleKey[]
  /** The witness as the engine's tuples (always, for an allowed answer: a reference, no copy). */
  witnessTuples?: readonly Tuple[]
  /** Only when `explain` was asked for. */
  explanation?: Explanation
  /** Subproblems the engine dispatched for it (0 when the cross-request cache held the answer). */
  dispatches: number
  /** The whole question was answered from the cross-request cache, without the engine. */
  cacheHit: boolean
}

/**
 * Explanation of one check. Allowed: `path`, the witness path as lines from the object to the
 * subject, and `tree`, the steps that granted it. Denied: `reasons`, every failed branch with
 * where it sits, and `tree`, every branch tried (branches never started are left out).
 */
export interface Explanation {
  allowed: boolean
  path?: string[]
  reasons?: string[]
  tree: TraceNode
}

export interface BatchCheckItem {
  tupleKey: { user: string; relation: string; object: string }
  contextualTuples?: TupleKey[]
  context?: Record<string, unknown>
  onBehalfOf?: string[]
  correlationId: string
  explain?: boolean
  /** What the decision log records this item as, when not a plain batch_check (a token check). */
  decision?: { kind: DecisionKind; detail?: Record<string, unknown> }
}

/**
 * One item of a batch: the check's output, or what it threw (an item's own mistake answers
 * that item only; the API layer maps it to the item's wire error).
 */
export type BatchCheckItemResult = { ok: true; output: CheckOutput } | { ok: false; error: unknown }

export class CheckService {
  readonly #o: CheckServiceOptions
  readonly #evaluation: EvaluationService
  readonly #models: ModelService
  readonly #dispatcher: CheckDispatcher
  readonly #decisions: DecisionSink
  readonly #credentials: CredentialRule

  constructor(options: CheckServiceOptions) {
    this.#o = options
    this.#evaluation = options.evaluation
    this.#models = options.models
    this.#dispatcher = options.evaluation.dispatcher
    this.#decisions = options.decisions ?? NO_DECISIONS
    this.#credentials = options.credentials ?? CREDENTIAL_SHAPES
  }

  /** check answers one check; with `meta` (an API request) the decision is recorded. */
  async check(storeId: string, input: CheckInput, meta?: DecisionMeta): Promise<CheckOutput> {
    if (!meta || this.#decisions === NO_DECISIONS) return this.#check(storeId, input)
    const started = performance.now()
    const r = await this.#check(storeId, input)
    const detail = r.deniedBy ? { ...meta.detail, denied_by: r.deniedBy } : meta.detail
    this.#record(storeId, meta.kind ?? 'check', input, input.consistency, r, started, meta, detail)
    return r
  }

  async #check(storeId: string, input: CheckInput): Promise<CheckOutput> {
    const higher = input.consistency === 'HIGHER_CONSISTENCY'
    // The model and the answer are looked up without an await when both are known: a repeated
    // check then costs a few map look-ups.
    const ts = (!higher && this.#models.known(storeId, input.modelId)) || (await this.#models.resolve(storeId, input.modelId, { fresh: higher }))
    // A question answered before at this revision was valid then; nothing to parse again.
    const answered = input.explain ? undefined : this.#evaluation.cachedAnswer(storeId, ts, input)
    const render = input.witness || input.explain
    if (answered !== undefined) {
      const out: CheckOutput = { allowed: answered.allowed, modelId: ts.id, witnessTuples: answered.witness, dispatches: 0, cacheHit: true }
      return render ? withWitness(out, answered.witness) : out
    }
    // A refused (credential-shaped) id never reaches the cross-request cache above: it is
    // refused here, before anything is computed for it.
    const { object, subject } = validateCheckKey(ts, input.tupleKey, this.#credentials)
    const chain = input.onBehalfOf
      ? delegationChain(ts, subject, input.onBehalfOf, this.#o.maxDelegationChain, this.#credentials)
      : undefined
    const contextual = contextualTuples(ts, input.contextualTuples)
    const ctx = await this.#evaluation.bind(storeId, ts, {
      contextual,
      context: input.context,
      deadlineMs: this.#o.checkDeadlineMs,
      consistency: input.consistency,
      explain: input.explain,
    })
    const stored = (w: readonly Tuple[] | undefined) => (w && contextual.length ? w.filter((t) => !contextual.includes(t)) : w)
    if (chain) {
      const r = await delegatedCheck(this.#dispatcher, ctx, object, input.tupleKey.relation, subject, chain)
      const out: CheckOutput = {
        allowed: r.allowed,
        modelId: ts.id,
        deniedBy: r.deniedBy,
        witnessTuples: stored(r.witness),
        dispatches: ctx.stats.dispatches,
        cacheHit: false,
      }
      if (render) withWitness(out, out.witnessTuples)
      if (input.explain) {
        const label = `${input.tupleKey.object}#${input.tupleKey.relation}@${input.tupleKey.user} on behalf of ${input.onBehalfOf!.join(', ')}`
        out.explanation = explanation({ step: 'intersection', allowed: r.allowed, label, children: r.steps ?? [] })
      }
      return out
    }
    const r = await this.#dispatcher.dispatchCheck({
      objectType: object.type,
      objectId: object.id,
      relation: input.tupleKey.relation,
      subject,
      depth: 0,
      path: undefined,
      ctx,
    })
    const out: CheckOutput = { allowed: r.allowed, modelId: ts.id, witnessTuples: stored(r.witness), dispatches: ctx.stats.dispatches, cacheHit: false }
    if (render) withWitness(out, out.witnessTuples)
    if (input.explain) out.explanation = explanation(traceOf(r))
    return out
  }

  /**
   * batchCheck answers up to maxChecksPerBatch checks, each item with its output or its error.
   * With `meta` (an API request) every item answered is one decision, also when identical items
   * were computed once; an item answered with an error is not a decision, as a failed check is not.
   */
  async batchCheck(
    storeId: string,
    input: { modelId?: string; consistency?: Consistency; checks: BatchCheckItem[] },
    meta?: RequestMeta,
  ): Promise<{ result: Record<string, BatchCheckItemResult>; modelId: string }> {
    validateBatch(input.checks, this.#o.maxChecksPerBatch, this.#credentials)
    const ts = await this.#evaluation.model(storeId, input.modelId, input.consistency)
    // Identical checks (same key, context and contextual tuples) are computed once.
    const byShape = new Map<string, Promise<BatchCheckItemResult>>()
    // Items in the order they were answered.
    const result: Record<string, BatchCheckItemResult> = {}
    await Promise.all(
      input.checks.map(async (c) => {
        const started = performance.now()
        const shape = JSON.stringify([c.tupleKey, c.context ?? null, c.contextualTuples ?? [], c.onBehalfOf ?? null, !!c.explain])
        let p = byShape.get(shape)
        if (!p) {
          p = this.check(storeId, {
            modelId: ts.id,
            tupleKey: c.tupleKey,
            contextualTuples: c.contextualTuples,
            context: c.context,
            consistency: input.consistency,
            onBehalfOf: c.onBehalfOf,
            explain: c.explain,
          }).then(
            (output): BatchCheckItemResult => ({ ok: true, output }),
            (error: unknown): BatchCheckItemResult => ({ ok: false, error }),
          )
          byShape.set(shape, p)
        }
        const item = await p
        result[c.correlationId] = item
        if (meta && item.ok) this.#recordBatchItem(storeId, input.consistency, c, item.output, started, meta)
      }),
    )
    return { result, modelId: ts.id }
  }

  #recordBatchItem(
    storeId: string,
    consistency: Consistency | undefined,
    c: BatchCheckItem,
    r: CheckOutput,
    started: number,
    meta: RequestMeta,
  ): void {
    const detail: Record<string, unknown> = { ...c.decision?.detail, correlation_id: c.correlationId }
    if (r.deniedBy) detail.denied_by = r.deniedBy
    this.#record(storeId, c.decision?.kind ?? 'batch_check', c, consistency, r, started, meta, detail)
  }

  /** #record sends one answered check (plain or a batch item) to the decision log. */
  #record(
    storeId: string,
    kind: DecisionKind,
    q: { tupleKey: { user: string; relation: string; object: string }; onBehalfOf?: string[] },
    consistency: Consistency | undefined,
    r: CheckOutput,
    started: number,
    meta: RequestMeta,
    detail: Record<string, unknown> | undefined,
  ): void {
    this.#decisions.record({
      kind,
      storeId,
      modelId: r.modelId,
      client: meta.client,
      requestId: meta.requestId,
      subject: q.tupleKey.user,
      onBehalfOf: q.onBehalfOf,
      relation: q.tupleKey.relation,
      object: q.tupleKey.object,
      allowed: r.allowed,
      witnessTuples: r.allowed ? r.witnessTuples : undefined,
      latencyUs: (performance.now() - started) * 1000,
      consistency: consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail,
    })
  }

  /** expand returns the userset tree of `object#relation` (OpenFGA's Expand). */
  async expand(
    storeId: string,
    input: QueryOptions & { tupleKey: { relation: string; object: string } },
  ): Promise<{ root: ExpandNode; modelId: string }> {
    const ts = await this.#evaluation.model(storeId, input.modelId, input.consistency)
    refuseCredentialId(this.#credentials, 'object', input.tupleKey.object)
    const object = parseObject(input.tupleKey.object)
    if (!object || object.id === '*') throw new PembaError('invalid_expand_input', `invalid object '${input.tupleKey.object}'`)
    if (!ts.hasType(object.type)) throw new PembaError('type_not_found', `type '${object.type}' not found`)
    if (!ts.relation(object.type, input.tupleKey.relation)) {
      throw new PembaError('relation_not_found', `relation '${object.type}#${input.tupleKey.relation}' not found`)
    }
    const contextual = contextualTuples(ts, input.contextualTuples)
    const ctx = await this.#evaluation.bind(storeId, ts, {
      contextual,
      context: input.context,
      deadlineMs: this.#o.checkDeadlineMs,
      consistency: input.consistency,
      signal: input.signal,
      paced: true,
    })
    const root = await expand(ctx, object.type, object.id, input.tupleKey.relation)
    return { root, modelId: ts.id }
  }
}

/** withWitness adds an allowed answer's witness, in wire form, to a check's output. */
function withWitness(out: CheckOutput, witness: readonly Tuple[] | undefined): CheckOutput {
  if (out.allowed && witness && witness.length) out.witness = witness.map(tupleToKey)
  return out
}

/** explanation turns a check's trace into what the API shows (see Explanation). */
function explanation(trace: TraceNode): Explanation {
  if (trace.allowed) {
    const tree = witnessTree(trace)
    return { allowed: true, path: witnessPath(tree), tree }
  }
  const tree = collapseDenied(trace)
  return { allowed: false, reasons: denialReasons(tree), tree }
}
