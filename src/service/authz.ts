/**
 * AuthzService is what the HTTP routes call: it resolves the model, validates the request's
 * tuples against it, binds a reader to the store's current revision (with contextual tuples laid
 * over it), and runs the engine. It speaks in parsed domain values; JSON shapes belong to the
 * API layer.
 *
 * @module
 */
import { ERROR_CODES, PembaError, validationError, type ErrorCode } from '../core/errors.ts'
import { redactSecrets } from '../core/redact.ts'
import {
  parseExpiresAt,
  parseObject,
  parseSubject,
  tupleToKey,
  type Subject,
  type Tuple,
  type TupleKey,
} from '../core/tuple.ts'
import { buildCheckDispatcher } from '../engine/build.ts'
import { CheckCache } from '../engine/caching.ts'
import type { CheckDispatcher, CheckResult, ResolutionContext } from '../engine/dispatch.ts'
import { ACTS_FOR, delegatedCheck, type DeniedBy } from '../engine/delegation.ts'
import { expand, type ExpandNode } from '../engine/expand.ts'
import {
  collapseDenied,
  denialReasons,
  traceOf,
  witnessPath,
  witnessTree,
  type TraceNode,
} from '../engine/explain.ts'
import { listObjects, type ListObjectsResult } from '../engine/list-objects.ts'
import { listUsers, type ListUsersResult } from '../engine/list-users.ts'
import { invalidTupleMessage, validateTuple } from '../model/tuple-validation.ts'
import type { TypeSystem } from '../model/typesystem.ts'
import { BufferedTupleReader } from '../store/buffered.ts'
import { ContextualTupleReader } from '../store/contextual.ts'
import { CachedObjectReader, ObjectCache } from '../store/object-cache.ts'
import type { TupleIndex, TupleIndexStats } from '../store/tuple-index.ts'
import { ExpiryTrackingReader } from '../engine/expiry-tracking.ts'
import type { Datastore, Page, ReadFilter, StoredTuple, TupleChange, TupleIdentity, TupleReader } from '../store/store.ts'
import type { ModelService } from './models.ts'
import { NO_DECISIONS, type DecisionKind, type DecisionSink, type RequestMeta } from './decision-sink.ts'

/** Objects with at most this many tuples are read whole by a request. */
const OBJECT_BUFFER_LIMIT = 64

export type Consistency = 'UNSPECIFIED' | 'MINIMIZE_LATENCY' | 'HIGHER_CONSISTENCY'

export interface AuthzServiceOptions {
  datastore: Datastore
  models: ModelService
  clock: () => Date
  maxTuplesPerWrite: number
  maxChecksPerBatch: number
  resolveNodeLimit: number
  maxDispatchesPerRequest: number
  checkDeadlineMs: number
  listMaxResults: number
  listDeadlineMs: number
  /** The longest `on_behalf_of` chain a delegated request may name. */
  maxDelegationChain: number
  /** Entries in the cross-request check cache; 0 turns it off. */
  checkCacheSize: number
  /** How stale a MINIMIZE_LATENCY answer may be (ms): the age of the head revision it uses. */
  checkCacheStalenessMs: number
  /** Tuples held by the cross-request tuple cache (whole small objects); 0 turns it off. */
  tupleCacheSize: number
  /** The in-memory tuple index (src/store/tuple-index.ts); without it every read goes to the datastore. */
  tupleIndex?: TupleIndex
  /** Where decisions made for API requests (those given a RequestMeta) are recorded. */
  decisions?: DecisionSink
}

/**
 * Who asked, for the decision log: calls that pass it are recorded (the query API's), calls
 * without it are Pemba's own (an approver check, reach, API-client permissions) and are not.
 * `kind` and `detail` let a caller that adds to the check (a token check) record it as its own.
 */
export type DecisionMeta = RequestMeta & { kind?: DecisionKind; detail?: Record<string, unknown> }

export interface QueryOptions {
  modelId?: string
  contextualTuples?: TupleKey[]
  context?: Record<string, unknown>
  consistency?: Consistency
}

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

export type ListObjectsInput = QueryOptions & { type: string; relation: string; user: string; onBehalfOf?: string[] }

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

export type BatchCheckOutcome =
  | { allowed: boolean; denied_by?: DeniedBy; witness?: TupleKey[]; explanation?: Explanation }
  | { error: { input_error?: string; internal_error?: string; message: string } }

export interface WriteInput {
  modelId?: string
  writes?: TupleKey[]
  deletes?: { user: string; relation: string; object: string }[]
  onDuplicate: 'error' | 'ignore'
  onMissing: 'error' | 'ignore'
}

export class AuthzService {
  readonly #o: AuthzServiceOptions
  readonly #dispatcher: CheckDispatcher
  readonly #cache: CheckCache | undefined
  readonly #objects: ObjectCache | undefined
  readonly #index: TupleIndex | undefined
  readonly #heads: HeadRevisions
  readonly #decisions: DecisionSink

  constructor(options: AuthzServiceOptions) {
    this.#o = options
    this.#decisions = options.decisions ?? NO_DECISIONS
    this.#cache = options.checkCacheSize > 0 ? new CheckCache(options.checkCacheSize) : undefined
    this.#objects = options.tupleCacheSize > 0 ? new ObjectCache(options.tupleCacheSize) : undefined
    this.#index = options.tupleIndex
    this.#heads = new HeadRevisions(options.datastore, options.checkCacheStalenessMs, () => options.clock().getTime())
    this.#dispatcher = buildCheckDispatcher(
      { maxDepth: options.resolveNodeLimit, maxDispatches: options.maxDispatchesPerRequest },
      this.#cache,
    )
  }

  /**
   * noteRevision records a revision this replica committed outside write() (a JIT approval),
   * so later checks here read their own writes, as after write().
   */
  noteRevision(storeId: string, revision: number): void {
    this.#heads.advance(storeId, revision)
  }

  /** cacheStats reports the cross-request cache's counters (all zero when it is off). */
  cacheStats(): { enabled: boolean; hits: number; misses: number; entries: number } {
    const c = this.#cache
    return { enabled: !!c, hits: c?.hits ?? 0, misses: c?.misses ?? 0, entries: c?.size ?? 0 }
  }

  /** tupleIndexStats reports the in-memory tuple index's counters, or undefined when it is off. */
  tupleIndexStats(): TupleIndexStats | undefined {
    return this.#index?.stats()
  }

  /** tupleIndexReady waits until the store's tuples are in memory (false: it does not fit, or no index). */
  async tupleIndexReady(storeId: string): Promise<boolean> {
    return this.#index ? this.#index.ready(storeId) : false
  }

  /** forgetStore releases what this service holds for a deleted store. */
  forgetStore(storeId: string): void {
    this.#index?.drop(storeId)
  }

  /** tupleCacheStats reports the cross-request tuple cache's counters. */
  tupleCacheStats(): { enabled: boolean; hits: number; misses: number; entries: number } {
    const c = this.#objects
    return { enabled: !!c, hits: c?.hits ?? 0, misses: c?.misses ?? 0, entries: c?.size ?? 0 }
  }

  // --- writes ------------------------------------------------------------------------------

  async write(storeId: string, input: WriteInput): Promise<{ modelId: string }> {
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh: true })
    const writes = input.writes ?? []
    const deletes = input.deletes ?? []
    if (input.writes === undefined && input.deletes === undefined) {
      throw new PembaError(
        'invalid_write_input',
        'Invalid input. Make sure you provide at least one write, or at least one delete',
      )
    }
    if (writes.length + deletes.length > this.#o.maxTuplesPerWrite) {
      throw new PembaError(
        'exceeded_entity_limit',
        `The number of write operations exceeds the allowed limit of ${this.#o.maxTuplesPerWrite}`,
      )
    }
    const seen = new Set<string>()
    for (const k of [...writes, ...deletes]) {
      const id = `${k.object}#${k.relation}@${k.user}`
      if (seen.has(id)) {
        throw new PembaError(
          'cannot_allow_duplicate_tuples_in_one_request',
          `duplicate tuple in write: user: '${k.user}', relation: '${k.relation}', object: '${k.object}'`,
        )
      }
      seen.add(id)
    }
    const now = this.#o.clock()
    const parsedWrites: Tuple[] = writes.map((k) => parseWrite(ts, k, now.getTime()))
    const parsedDeletes: TupleIdentity[] = deletes.map((k) => {
      const object = parseObject(k.object)
      const user = parseSubject(k.user)
      if (!object || !user || !k.relation) {
        throw validationError(invalidTupleMessage(k, !user ? "the 'user' field is malformed" : 'invalid object'))
      }
      return {
        objectType: object.type,
        objectId: object.id,
        relation: k.relation,
        userType: user.type,
        userId: user.id,
        userRelation: user.relation,
      }
    })
    const revision = await this.#o.datastore.write(
      storeId,
      { writes: parsedWrites, deletes: parsedDeletes, onDuplicate: input.onDuplicate, onMissing: input.onMissing },
      now,
    )
    // Read-your-writes on this replica: later checks here are bound to at least this revision.
    this.#heads.advance(storeId, revision)
    return { modelId: ts.id }
  }

  /**
   * importTuples is the bulk load path: every tuple is validated against the model like a
   * Write, then committed in large transactions (`chunkSize` tuples each, each its own
   * revision, every new tuple recorded in the changelog). Unlike Write it has no 100-tuple
   * limit, and a tuple that already exists identically is left as it is. Returns how many
   * tuples were validated and are now stored.
   */
  async importTuples(storeId: string, keys: TupleKey[], options: { modelId?: string; chunkSize?: number } = {}): Promise<number> {
    const ts = await this.#o.models.resolve(storeId, options.modelId, { fresh: true })
    const now = this.#o.clock().getTime()
    const tuples = keys.map((k) => parseWrite(ts, k, now))
    const chunk = options.chunkSize ?? 10_000
    for (let i = 0; i < tuples.length; i += chunk) {
      const revision = await this.#o.datastore.write(
        storeId,
        { writes: tuples.slice(i, i + chunk), deletes: [], onDuplicate: 'ignore', onMissing: 'ignore' },
        this.#o.clock(),
      )
      this.#heads.advance(storeId, revision)
    }
    return tuples.length
  }

  read(
    storeId: string,
    key: { user?: string; relation?: string; object?: string } | undefined,
    page: { pageSize: number; after?: string },
  ): Promise<Page<StoredTuple>> {
    const filter: ReadFilter = {}
    if (key) {
      const object = key.object ?? ''
      const colon = object.indexOf(':')
      const type = colon === -1 ? '' : object.slice(0, colon)
      const id = colon === -1 ? '' : object.slice(colon + 1)
      if (!type || (!id && !key.user)) {
        throw validationError(
          "the 'tuple_key' field was provided but the object type field is required and both the object id and user cannot be empty",
        )
      }
      filter.objectType = type
      if (id) filter.objectId = id
      if (key.relation) filter.relation = key.relation
      if (key.user) {
        const user = parseSubject(key.user)
        if (user) {
          filter.userType = user.type
          filter.userId = user.id
          filter.userRelation = user.relation
        } else {
          // `user:` (a type with no id) is not a user; OpenFGA's pattern rejects it too.
          throw validationError(`invalid 'user' field: '${key.user}'`)
        }
      }
    }
    return this.#o.datastore.read(storeId, filter, page, this.#o.clock().getTime())
  }

  readChanges(
    storeId: string,
    q: { objectType?: string; after?: string; startTime?: Date; pageSize: number },
  ): Promise<Page<TupleChange>> {
    return this.#o.datastore.readChanges(storeId, q)
  }

  // --- queries -----------------------------------------------------------------------------

  /** check answers one check; with `meta` (an API request) the decision is recorded. */
  async check(storeId: string, input: CheckInput, meta?: DecisionMeta): Promise<CheckOutput> {
    if (!meta || this.#decisions === NO_DECISIONS) return this.#check(storeId, input)
    const started = performance.now()
    const r = await this.#check(storeId, input)
    const detail = r.deniedBy ? { ...meta.detail, denied_by: r.deniedBy } : meta.detail
    this.#decisions.record({
      kind: meta.kind ?? 'check',
      storeId,
      modelId: r.modelId,
      client: meta.client,
      requestId: meta.requestId,
      subject: input.tupleKey.user,
      onBehalfOf: input.onBehalfOf,
      relation: input.tupleKey.relation,
      object: input.tupleKey.object,
      allowed: r.allowed,
      witnessTuples: r.allowed ? r.witnessTuples : undefined,
      latencyUs: (performance.now() - started) * 1000,
      consistency: input.consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail,
    })
    return r
  }

  async #check(storeId: string, input: CheckInput): Promise<CheckOutput> {
    const higher = input.consistency === 'HIGHER_CONSISTENCY'
    // The model and the answer are looked up without an await when both are known: a repeated
    // check then costs a few map look-ups.
    const ts = (!higher && this.#o.models.known(storeId, input.modelId)) || (await this.#o.models.resolve(storeId, input.modelId, { fresh: higher }))
    // A question answered before at this revision was valid then; nothing to parse again.
    const answered = input.explain ? undefined : this.#cachedAnswer(storeId, ts, input)
    const render = input.witness || input.explain
    if (answered !== undefined) {
      const out: CheckOutput = { allowed: answered.allowed, modelId: ts.id, witnessTuples: answered.witness }
      return render ? withWitness(out, answered.witness) : out
    }
    const { object, subject } = validateCheckKey(ts, input.tupleKey)
    const chain = input.onBehalfOf ? this.#delegationChain(ts, subject, input.onBehalfOf) : undefined
    const contextual = this.#contextualTuples(ts, input.contextualTuples)
    const ctx = await this.#context(storeId, ts, contextual, input.context, this.#o.checkDeadlineMs, input.consistency, input.explain)
    const stored = (w: readonly Tuple[] | undefined) => (w && contextual.length ? w.filter((t) => !contextual.includes(t)) : w)
    if (chain) {
      const r = await delegatedCheck(this.#dispatcher, ctx, object, input.tupleKey.relation, subject, chain)
      const out: CheckOutput = { allowed: r.allowed, modelId: ts.id, deniedBy: r.deniedBy, witnessTuples: stored(r.witness) }
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
    const out: CheckOutput = { allowed: r.allowed, modelId: ts.id, witnessTuples: stored(r.witness) }
    if (render) withWitness(out, out.witnessTuples)
    if (input.explain) out.explanation = explanation(traceOf(r))
    return out
  }

  /**
   * #cachedAnswer is the fast path of a repeated check: the whole question is a subproblem the
   * cross-request cache may already hold (`document:1#viewer@user:anne` at this store, model and
   * revision), so it is looked up before any per-request state is built. Only for requests the
   * cache may serve (see #context): no context, no contextual tuples, not HIGHER_CONSISTENCY.
   */
  #cachedAnswer(storeId: string, ts: TypeSystem, input: CheckInput): CheckResult | undefined {
    const cache = this.#cache
    if (!cache || input.onBehalfOf || input.consistency === 'HIGHER_CONSISTENCY') return undefined
    if (input.contextualTuples && input.contextualTuples.length > 0) return undefined
    if (input.context && Object.keys(input.context).length > 0) return undefined
    const now = this.#o.clock().getTime()
    // Only a revision this replica knows (fresh enough) can key a hit; otherwise the check runs
    // and #context reads the head.
    const revision = this.#heads.known(storeId, now)
    if (revision === undefined) return undefined
    const { user, relation, object } = input.tupleKey
    return cache.get(`${storeId}/${ts.id}/${revision}/${object}#${relation}@${user}`, now)?.value
  }

  /**
   * #delegationChain validates `on_behalf_of`: each identity a plain object (`user:alice`, not a
   * userset or wildcard) of a type that defines `acts_for`, no longer than the configured limit.
   */
  #delegationChain(ts: TypeSystem, actor: Subject, onBehalfOf: string[]): Subject[] {
    if (onBehalfOf.length === 0) throw validationError('on_behalf_of must name at least one principal')
    if (onBehalfOf.length > this.#o.maxDelegationChain) {
      throw validationError(
        `on_behalf_of names ${onBehalfOf.length} principals, the maximum allowed is ${this.#o.maxDelegationChain}`,
      )
    }
    if (actor.relation || actor.id === '*') {
      throw validationError('a delegated check needs a single identity as the user, not a userset or wildcard')
    }
    return onBehalfOf.map((p) => {
      const s = parseSubject(p)
      if (!s || s.relation || s.id === '*') {
        throw validationError(`invalid on_behalf_of identity '${p}': expected 'type:id'`)
      }
      if (!ts.hasType(s.type)) throw validationError(`type '${s.type}' not found`)
      if (!ts.relation(s.type, ACTS_FOR)) {
        throw validationError(
          `type '${s.type}' defines no '${ACTS_FOR}' relation, so nothing can act on behalf of '${p}'`,
        )
      }
      return s
    })
  }

  /**
   * batchCheck answers up to maxChecksPerBatch checks. With `meta` (an API request) every item
   * answered is one decision, also when identical items were computed once; an item answered
   * with an error is not a decision, as a failed check is not.
   */
  async batchCheck(
    storeId: string,
    input: { modelId?: string; consistency?: Consistency; checks: BatchCheckItem[] },
    meta?: RequestMeta,
  ): Promise<{ result: Record<string, BatchCheckOutcome>; modelId: string }> {
    validateBatch(input.checks, this.#o.maxChecksPerBatch)
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh: input.consistency === 'HIGHER_CONSISTENCY' })
    // Identical checks (same key, context and contextual tuples) are computed once.
    const byShape = new Map<string, Promise<BatchCheckOutcome>>()
    const result: Record<string, BatchCheckOutcome> = {}
    // Each shape's answer as check gave it (with its witness), for the decision log.
    const answers = new Map<string, CheckOutput>()
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
            (r): BatchCheckOutcome => {
              answers.set(shape, r)
              const outcome: BatchCheckOutcome = r.deniedBy ? { allowed: false, denied_by: r.deniedBy } : { allowed: r.allowed }
              if (r.explanation) Object.assign(outcome, { witness: r.witness, explanation: r.explanation })
              return outcome
            },
            (e): BatchCheckOutcome => ({ error: batchError(e) }),
          )
          byShape.set(shape, p)
        }
        result[c.correlationId] = await p
        const answer = answers.get(shape)
        if (meta && answer) this.#recordBatchItem(storeId, input.consistency, c, answer, started, meta)
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
    this.#decisions.record({
      kind: c.decision?.kind ?? 'batch_check',
      storeId,
      modelId: r.modelId,
      client: meta.client,
      requestId: meta.requestId,
      subject: c.tupleKey.user,
      onBehalfOf: c.onBehalfOf,
      relation: c.tupleKey.relation,
      object: c.tupleKey.object,
      allowed: r.allowed,
      witnessTuples: r.allowed ? r.witnessTuples : undefined,
      latencyUs: (performance.now() - started) * 1000,
      consistency: consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail,
    })
  }

  async expand(
    storeId: string,
    input: QueryOptions & { tupleKey: { relation: string; object: string } },
  ): Promise<{ root: ExpandNode; modelId: string }> {
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh: input.consistency === 'HIGHER_CONSISTENCY' })
    const object = parseObject(input.tupleKey.object)
    if (!object || object.id === '*') throw new PembaError('invalid_expand_input', `invalid object '${input.tupleKey.object}'`)
    if (!ts.hasType(object.type)) throw new PembaError('type_not_found', `type '${object.type}' not found`)
    if (!ts.relation(object.type, input.tupleKey.relation)) {
      throw new PembaError('relation_not_found', `relation '${object.type}#${input.tupleKey.relation}' not found`)
    }
    const contextual = this.#contextualTuples(ts, input.contextualTuples)
    const ctx = await this.#context(storeId, ts, contextual, input.context, this.#o.checkDeadlineMs, input.consistency)
    const root = await expand(ctx, object.type, object.id, input.tupleKey.relation)
    return { root, modelId: ts.id }
  }

  /**
   * listObjects lists what the user reaches; with `meta` (an API request) the call is one
   * decision of kind list_objects: `object` is the type, `allowed` whether anything was found,
   * and `detail.count` how many objects (`truncated` when the list was cut).
   */
  async listObjects(
    storeId: string,
    input: ListObjectsInput,
    onObject?: (object: string) => void,
    meta?: RequestMeta,
  ): Promise<ListObjectsResult & { modelId: string; deniedBy?: DeniedBy }> {
    if (!meta || this.#decisions === NO_DECISIONS) return this.#listObjects(storeId, input, onObject)
    const started = performance.now()
    const r = await this.#listObjects(storeId, input, onObject)
    const detail: Record<string, unknown> = { count: r.objects.length }
    if (r.truncated) detail.truncated = r.truncated
    if (r.deniedBy) detail.denied_by = r.deniedBy
    if (onObject) detail.streamed = true
    this.#decisions.record({
      kind: 'list_objects',
      storeId,
      modelId: r.modelId,
      client: meta.client,
      requestId: meta.requestId,
      subject: input.user,
      onBehalfOf: input.onBehalfOf,
      relation: input.relation,
      object: input.type,
      allowed: r.objects.length > 0,
      latencyUs: (performance.now() - started) * 1000,
      consistency: input.consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail,
    })
    return r
  }

  async #listObjects(
    storeId: string,
    input: ListObjectsInput,
    onObject?: (object: string) => void,
  ): Promise<ListObjectsResult & { modelId: string; deniedBy?: DeniedBy }> {
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh: input.consistency === 'HIGHER_CONSISTENCY' })
    if (!ts.hasType(input.type)) throw new PembaError('type_not_found', `type '${input.type}' not found`)
    if (!ts.relation(input.type, input.relation)) {
      throw new PembaError('relation_not_found', `relation '${input.type}#${input.relation}' not found`)
    }
    const subject = validateSubject(ts, input.user)
    const chain = input.onBehalfOf ? this.#delegationChain(ts, subject, input.onBehalfOf) : undefined
    const contextual = this.#contextualTuples(ts, input.contextualTuples)
    const ctx = await this.#context(storeId, ts, contextual, input.context, this.#o.listDeadlineMs, input.consistency)
    let confirm: ((id: string) => Promise<boolean>) | undefined
    if (chain) {
      // A broken delegation chain reaches nothing; otherwise the answer is what every identity
      // of the chain reaches, confirmed object by object with the same rule as check.
      const probe = await delegatedCheck(this.#dispatcher, ctx, { type: '', id: '' }, '', subject, chain, true)
      if (!probe.allowed) return { objects: [], truncated: '', modelId: ts.id, deniedBy: 'delegation' }
      confirm = async (id) =>
        (await delegatedCheck(this.#dispatcher, ctx, { type: input.type, id }, input.relation, subject, chain)).allowed
    }
    const r = await listObjects(this.#dispatcher, {
      objectType: input.type,
      relation: input.relation,
      subject,
      ctx,
      maxResults: this.#o.listMaxResults,
      onObject,
      confirm,
    })
    return { ...r, modelId: ts.id }
  }

  async listUsers(
    storeId: string,
    input: QueryOptions & {
      object: { type: string; id: string }
      relation: string
      userFilters: { type: string; relation?: string }[]
    },
  ): Promise<ListUsersResult & { modelId: string }> {
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh: input.consistency === 'HIGHER_CONSISTENCY' })
    const { object } = input
    if (!ts.hasType(object.type)) throw new PembaError('type_not_found', `type '${object.type}' not found`)
    if (!ts.relation(object.type, input.relation)) {
      throw new PembaError('relation_not_found', `relation '${object.type}#${input.relation}' not found`)
    }
    if (input.userFilters.length !== 1) {
      throw validationError('invalid ListUsersRequest.UserFilters: value must contain exactly 1 item(s)')
    }
    const filter = input.userFilters[0]
    if (!ts.hasType(filter.type)) throw new PembaError('type_not_found', `type '${filter.type}' not found`)
    if (filter.relation && !ts.relation(filter.type, filter.relation)) {
      throw new PembaError('relation_not_found', `relation '${filter.type}#${filter.relation}' not found`)
    }
    const contextual = this.#contextualTuples(ts, input.contextualTuples)
    const ctx = await this.#context(storeId, ts, contextual, input.context, this.#o.listDeadlineMs, input.consistency)
    const r = await listUsers(this.#dispatcher, {
      objectType: object.type,
      objectId: object.id,
      relation: input.relation,
      filter: { type: filter.type, relation: filter.relation ?? '' },
      ctx,
      maxResults: this.#o.listMaxResults,
    })
    return { ...r, modelId: ts.id }
  }

  // --- helpers -----------------------------------------------------------------------------

  /**
   * #contextualTuples validates a request's contextual tuples. One may carry `expires_at` like a
   * written tuple (e.g. a token's group claims, valid until the token expires); an unparseable
   * time is a 400, an expiry already past simply makes the tuple count for nothing.
   */
  #contextualTuples(ts: TypeSystem, keys: TupleKey[] | undefined): Tuple[] {
    if (!keys || keys.length === 0) return []
    return keys.map((k) => {
      const v = validateTuple(ts, k)
      if (!v.ok) throw new PembaError('invalid_tuple', invalidTupleMessage(k, v.reason))
      if (k.expires_at) {
        const expiresAt = parseExpiresAt(k.expires_at)
        if (expiresAt === undefined) throw new PembaError('invalid_tuple', invalidExpiryMessage(k))
        v.tuple.expiresAt = expiresAt
      }
      return v.tuple
    })
  }


  async #context(
    storeId: string,
    ts: TypeSystem,
    contextual: Tuple[],
    context: Record<string, unknown> | undefined,
    deadlineMs: number,
    consistency: Consistency | undefined,
    explain = false,
  ): Promise<ResolutionContext> {
    const ds = this.#o.datastore
    const higher = consistency === 'HIGHER_CONSISTENCY'
    const hasContext = context !== undefined && Object.keys(context).length > 0
    // An explained check evaluates everything itself: a cached answer has no trace to show.
    const cacheable = !!this.#cache && contextual.length === 0 && !hasContext && !explain
    const now = this.#o.clock().getTime()
    // The revision keys the cross-request caches and says how fresh the tuple index must be;
    // the datastore's own readers always read the newest data.
    const revision = this.#cache || this.#objects || this.#index ? await this.#heads.get(storeId, higher) : 0
    const indexed = this.#index && (await this.#index.reader(storeId, revision, now))
    let stored: TupleReader | undefined = indexed
    if (!stored) {
      stored = ds.reader(storeId, revision, now)
      if (this.#objects) {
        // Stored tuples only: contextual tuples are laid over them below, per request.
        stored = new CachedObjectReader(stored, this.#objects, { prefix: `${storeId}/${revision}/`, read: !higher, now })
      }
      // Objects with a few tuples are read whole, once per request (see BufferedTupleReader).
      stored = new BufferedTupleReader(stored, OBJECT_BUFFER_LIMIT)
    }
    if (contextual.length) stored = new ContextualTupleReader(stored, contextual, now)
    const ctx: ResolutionContext = {
      sharedCache: cacheable ? { prefix: `${storeId}/${ts.id}/${revision}/`, read: !higher, cache: this.#cache! } : undefined,
      closures: new Map(),
      maxDepth: this.#o.resolveNodeLimit,
      storeId,
      revision,
      typesystem: ts,
      reader: stored,
      context,
      memo: new Map(),
      inflight: new Map(),
      // One branch at a time when explaining, so that the explanation is deterministic.
      concurrency: explain ? 1 : ds.preferredConcurrency,
      stats: { dispatches: 0, reads: 0 },
      now,
      validUntil: Number.POSITIVE_INFINITY,
      deadline: deadlineMs ? Date.now() + deadlineMs : 0,
      explain,
    }
    // Every tuple the engine sees bounds how long what it concludes may be cached. The index's
    // reader notes that itself, one async layer less on every read.
    if (indexed && stored === indexed) indexed.trackExpiry(ctx)
    else ctx.reader = new ExpiryTrackingReader(stored, ctx)
    return ctx
  }
}

/**
 * validateBatch applies a batch check's own limits, as OpenFGA states them: 1 to `max` items,
 * each correlation id once. Shared by the plain and the token-carrying batch check.
 */
export function validateBatch(checks: { correlationId: string }[], max: number): void {
  if (checks.length === 0) throw validationError('batchCheck received 0 checks, the minimum is 1')
  if (checks.length > max) {
    throw validationError(`batchCheck received ${checks.length} checks, the maximum allowed is ${max}`)
  }
  const ids = new Set<string>()
  for (const c of checks) {
    if (ids.has(c.correlationId)) throw validationError(`received duplicate correlation id: ${c.correlationId}`)
    ids.add(c.correlationId)
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

/**
 * parseWrite validates a tuple to be written against the model and reads its `expires_at`: an
 * unparseable time, or one at or before `now` (a grant that would never count), is a 400 and
 * the whole write is refused. E.g. `namespace:prod#deployer@service_account:ci` with
 * `expires_at: "2026-11-29T10:00:00Z"` is written at 09:00Z and refused at 10:00Z.
 */
export function parseWrite(ts: TypeSystem, k: TupleKey, now: number): Tuple {
  const v = validateTuple(ts, k)
  if (!v.ok) throw validationError(invalidTupleMessage(k, v.reason))
  if (k.expires_at) {
    const expiresAt = parseExpiresAt(k.expires_at)
    if (expiresAt === undefined) throw validationError(invalidExpiryMessage(k))
    if (expiresAt <= now) {
      const reason = `expires_at '${k.expires_at}' is not in the future`
      throw validationError(invalidTupleMessage(k, reason))
    }
    v.tuple.expiresAt = expiresAt
  }
  return v.tuple
}

function invalidExpiryMessage(k: TupleKey): string {
  const reason = `expires_at '${k.expires_at}' is not an RFC 3339 date-time (e.g. 2026-11-29T10:00:00Z)`
  return invalidTupleMessage(k, reason)
}

/**
 * validateCheckKey checks a Check's tuple key against the model. OpenFGA answers every
 * problem here with `validation_error`.
 */
function validateCheckKey(
  ts: TypeSystem,
  key: { user: string; relation: string; object: string },
): { object: { type: string; id: string }; subject: Subject } {
  const object = parseObject(key.object)
  if (!object || object.id === '*') throw validationError(`invalid 'object' field format: '${key.object}'`)
  if (!ts.hasType(object.type)) throw validationError(`type '${object.type}' not found`)
  if (!ts.relation(object.type, key.relation)) {
    throw validationError(`relation '${object.type}#${key.relation}' not found`)
  }
  return { object, subject: validateSubject(ts, key.user) }
}

function validateSubject(ts: TypeSystem, user: string): Subject {
  const subject = parseSubject(user)
  if (!subject) throw validationError(`invalid 'user' field format: '${user}'`)
  if (!ts.hasType(subject.type)) throw validationError(`type '${subject.type}' not found`)
  if (subject.relation && !ts.relation(subject.type, subject.relation)) {
    throw validationError(`relation '${subject.type}#${subject.relation}' not found`)
  }
  return subject
}

function batchError(e: unknown): { input_error?: string; internal_error?: string; message: string } {
  if (e instanceof PembaError) {
    const n = ERROR_CODES[e.code as ErrorCode]
    // Per-check messages quote the check's input, which may carry a credential.
    if (n !== undefined && n >= 2000 && n < 4000) return { input_error: e.code, message: redactSecrets(e.message) }
    if (n !== undefined && n >= 4000 && n < 5000) return { internal_error: e.code, message: redactSecrets(e.message) }
    return { input_error: 'validation_error', message: redactSecrets(e.message) }
  }
  return { internal_error: 'internal_error', message: 'Internal Server Error' }
}

/**
 * HeadRevisions remembers each store's head revision for up to `maxAgeMs`, so that
 * MINIMIZE_LATENCY requests share cache entries without a database round trip; a
 * HIGHER_CONSISTENCY request always reads the head afresh. A replica learns of writes made on
 * other replicas within `maxAgeMs`: that is the staleness bound of MINIMIZE_LATENCY.
 */
class HeadRevisions {
  readonly #ds: Datastore
  readonly #maxAgeMs: number
  readonly #now: () => number
  readonly #heads = new Map<string, { revision: number; at: number }>()

  constructor(ds: Datastore, maxAgeMs: number, now: () => number) {
    this.#ds = ds
    this.#maxAgeMs = maxAgeMs
    this.#now = now
  }

  /** known is the head revision remembered for the store, if it is still fresh enough. */
  known(storeId: string, now = this.#now()): number | undefined {
    const known = this.#heads.get(storeId)
    return known && now - known.at <= this.#maxAgeMs ? known.revision : undefined
  }

  async get(storeId: string, fresh: boolean, now = this.#now()): Promise<number> {
    const recent = fresh ? undefined : this.known(storeId, now)
    if (recent !== undefined) return recent
    const before = this.#heads.get(storeId)?.revision ?? 0
    const revision = await this.#ds.headRevision(storeId)
    this.advance(storeId, revision, now)
    return Math.max(revision, before)
  }

  /** advance records a revision this replica knows to be committed; it never moves back. */
  advance(storeId: string, revision: number, at = this.#now()): void {
    const known = this.#heads.get(storeId)
    if (!known || revision >= known.revision) this.#heads.set(storeId, { revision, at })
    if (this.#heads.size > 100_000) this.#heads.clear()
  }
}
