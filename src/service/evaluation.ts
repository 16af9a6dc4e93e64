/**
 * EvaluationService is what every query shares: the engine's dispatcher, the cross-request
 * caches (answers and tuples), the tuple index and the stores' head revisions. For one request
 * it resolves the model and binds a reader to a revision (`bind`), with the request's contextual
 * tuples laid over the stored ones; for a repeated check it finds a cached answer without an
 * await (`cachedAnswer`). It also reports the caches' and the index's counters.
 *
 * @module
 */
import type { Tuple, TupleKey } from '../core/tuple.ts'
import { buildCheckDispatcher } from '../engine/build.ts'
import { CheckCache, cacheKey, cacheScope } from '../engine/caching.ts'
import type { CheckDispatcher, CheckResult, ResolutionContext } from '../engine/dispatch.ts'
import { CHECK_SLICE_MS, LIST_SLICE_MS, Pacer } from '../engine/pacing.ts'
import type { TypeSystem, UsersetClosure } from '../model/typesystem.ts'
import { WorkingSet } from '../store/readers/working-set.ts'
import { buildRequestReader } from '../store/readers/request-reader.ts'
import type { TupleIndex, TupleIndexStats } from '../store/readers/tuple-index.ts'
import type { MembershipClosures, MembershipClosureStats } from '../store/readers/membership-closure.ts'

/** The tuple index's counters, as /metrics reports them. */
export type { TupleIndexStats }
import type { TupleStore } from '../store/ports.ts'
import type { Datastore } from '../store/store.ts'
import { type HeadRevisions, storeNotFound } from './head-revisions.ts'
import type { ModelService } from './models.ts'

export type Consistency = 'UNSPECIFIED' | 'MINIMIZE_LATENCY' | 'HIGHER_CONSISTENCY'

/** What every query may name besides its question. */
export interface QueryOptions {
  modelId?: string
  contextualTuples?: TupleKey[]
  context?: Record<string, unknown>
  consistency?: Consistency
  /** Aborted when the client has gone away: the query stops (HTTP requests pass theirs). */
  signal?: AbortSignal
}

export interface EvaluationServiceOptions {
  /** The datastore's readers (bound to a revision) and how many reads it serves at once well. */
  datastore: Pick<TupleStore, 'reader'> & Pick<Datastore, 'preferredConcurrency' | 'readChanges'>
  models: ModelService
  heads: HeadRevisions
  clock: () => Date
  resolveNodeLimit: number
  maxDispatchesPerRequest: number
  /** Entries in the cross-request check cache; 0 turns it off. */
  checkCacheSize: number
  /**
   * Tuples held by the working set (store/readers/working-set.ts: objects and users' lists of
   * the stores not in the tuple index, kept fresh from the changelog); 0 turns it off.
   */
  tupleCacheSize: number
  /** The in-memory tuple index (src/store/readers/tuple-index.ts); without it every read goes to the datastore. */
  tupleIndex?: TupleIndex
  /**
   * The membership closures (src/store/readers/membership-closure.ts): nested groups answered
   * without walking them; without them the engine walks up from the subject.
   */
  membershipClosures?: MembershipClosures
  /**
   * How long (ms) a paced query (a list, a search, an expansion) runs before it gives the event
   * loop back (src/engine/pacing.ts); default LIST_SLICE_MS; 0 = never (the bench compares).
   */
  sliceMs?: number
  /** The same for a check (its fan-out); default CHECK_SLICE_MS; 0 = never. */
  checkSliceMs?: number
}

/** A request to bind (see bind). */
export interface Binding {
  /** The request's contextual tuples, validated (see tuple-input.ts). */
  contextual: Tuple[]
  /** The request's condition context. */
  context: Record<string, unknown> | undefined
  /** How long evaluation may take (ms; 0 = no deadline). */
  deadlineMs: number
  consistency: Consistency | undefined
  /** An explained check: evaluated one branch at a time, without the cross-request cache. */
  explain?: boolean
  /** Aborted when the client has gone away (see QueryOptions). */
  signal?: AbortSignal
  /**
   * A list, search or expansion: it gives the event loop back after a short slice
   * (src/engine/pacing.ts); a check does after a longer one.
   */
  paced?: boolean
}

/** A cache's counters, for /metrics (all zero when it is off). */
export interface CacheStats {
  enabled: boolean
  hits: number
  misses: number
  entries: number
}

export class EvaluationService {
  /** The engine: every check, and every check a list or expansion makes, goes through it. */
  readonly dispatcher: CheckDispatcher
  readonly #o: EvaluationServiceOptions
  readonly #cache: CheckCache | undefined
  readonly #objects: WorkingSet | undefined
  readonly #index: TupleIndex | undefined
  readonly #heads: HeadRevisions
  /** Shared by every query of this process: the slices bound the loop's hold, whoever holds it. */
  readonly #pacer = new Pacer()

  constructor(options: EvaluationServiceOptions) {
    this.#o = options
    this.#cache = options.checkCacheSize > 0 ? new CheckCache(options.checkCacheSize) : undefined
    this.#objects =
      options.tupleCacheSize > 0
        ? new WorkingSet({
            datastore: options.datastore,
            maxTuples: options.tupleCacheSize,
            // Where reads are round trips and sibling branches run concurrently (PostgreSQL), a
            // level's object loads are gathered into one statement.
            batch: options.datastore.preferredConcurrency > 1,
          })
        : undefined
    this.#index = options.tupleIndex
    this.#heads = options.heads
    this.dispatcher = buildCheckDispatcher(
      { maxDepth: options.resolveNodeLimit, maxDispatches: options.maxDispatchesPerRequest },
      this.#cache,
    )
  }

  /** model resolves the model a query names (the latest when none); HIGHER_CONSISTENCY reads afresh. */
  model(storeId: string, modelId: string | undefined, consistency: Consistency | undefined): Promise<TypeSystem> {
    return this.#o.models.resolve(storeId, modelId, { fresh: consistency === 'HIGHER_CONSISTENCY' })
  }

  /**
   * cachedAnswer is the fast path of a repeated check: the whole question is a subproblem the
   * cross-request cache may already hold (`document:1#viewer@user:anne` at this store, model and
   * revision), so it is looked up before any per-request state is built. Only for requests the
   * cache may serve (see bind): no context, no contextual tuples, not HIGHER_CONSISTENCY, not
   * delegated.
   */
  cachedAnswer(
    storeId: string,
    ts: TypeSystem,
    input: QueryOptions & { tupleKey: { user: string; relation: string; object: string }; onBehalfOf?: string[] },
  ): CheckResult | undefined {
    const cache = this.#cache
    if (!cache || input.onBehalfOf || input.consistency === 'HIGHER_CONSISTENCY') return undefined
    if (input.contextualTuples && input.contextualTuples.length > 0) return undefined
    if (input.context && Object.keys(input.context).length > 0) return undefined
    const now = this.#o.clock().getTime()
    // Only a revision this replica knows (fresh enough) can key a hit; otherwise the check runs
    // and bind reads the head.
    const revision = this.#heads.known(storeId, now)
    if (revision === undefined) return undefined
    const { user, relation, object } = input.tupleKey
    // The raw strings are the question in checkKey's form; a question that parses differently
    // names no cached subproblem and simply misses.
    return cache.get(cacheKey(cacheScope(storeId, ts.id, revision), `${object}#${relation}@${user}`), now)?.value
  }

  /**
   * bind builds one request's context: the revision it reads at (the store's head, remembered
   * or read afresh), its reader (see store/readers/request-reader.ts) and how it may use the
   * cross-request cache.
   */
  async bind(storeId: string, ts: TypeSystem, b: Binding): Promise<ResolutionContext> {
    const higher = b.consistency === 'HIGHER_CONSISTENCY'
    const hasContext = b.context !== undefined && Object.keys(b.context).length > 0
    // An explained check evaluates everything itself: a cached answer has no trace to show.
    const cacheable = !!this.#cache && b.contextual.length === 0 && !hasContext && !b.explain
    const now = this.#o.clock().getTime()
    // The revision keys the cross-request caches and says how fresh the tuple index must be;
    // the datastore's own readers always read the newest data. Either way a deleted store is
    // refused here (store_id_not_found), for every caller: HTTP, embedded, the library, MCP.
    // HIGHER_CONSISTENCY reads the store row even without caches, so a store deleted on another
    // replica is refused at once; without caches, requireLive reads it once per staleness
    // window and costs no await while what it knows is fresh.
    let revision = 0
    if (this.#cache || this.#objects || this.#index || this.#o.membershipClosures || higher) revision = await this.#heads.get(storeId, higher)
    else {
      const reading = this.#heads.requireLive(storeId, now)
      if (reading) await reading
    }
    // A deletion learnt while the head was read: never rebuild the index (nor the working set's
    // state) of a deleted store.
    if ((this.#index || this.#objects) && this.#heads.isDeleted(storeId)) throw storeNotFound()
    const indexed = this.#index && (await this.#index.reader(storeId, revision, now))
    // Not for an explanation: it walks, to show each userset it looked into.
    // The closure answers only at the revision the request's tuples are read at, asked at each
    // look-up (the index and the working set move on with other requests; see MembershipView).
    const objects = this.#objects
    const tupleRevision = indexed ? () => indexed.revision : objects ? () => objects.revision(storeId) : undefined
    const membership =
      this.#o.membershipClosures && !b.explain
        ? await this.#o.membershipClosures.view(storeId, revision, now, b.contextual, tupleRevision)
        : undefined
    // Not indexed: the working set, brought to the request's revision first (HIGHER_CONSISTENCY
    // sees its write), over the datastore's reader for what it does not hold.
    const workingSet =
      !indexed && this.#objects
        ? await this.#objects.reader(storeId, revision, now, this.#o.datastore.reader(storeId, revision, now, { replica: !higher }))
        : undefined
    const ctx: ResolutionContext = {
      sharedCache: cacheable ? { prefix: cacheScope(storeId, ts.id, revision), read: !higher, cache: this.#cache! } : undefined,
      closures: new Map(),
      maxDepth: this.#o.resolveNodeLimit,
      storeId,
      revision,
      typesystem: ts,
      // Set below: the reader records expiries in this context.
      reader: undefined!,
      context: b.context,
      memo: new Map(),
      inflight: new Map(),
      // One branch at a time when explaining, so that the explanation is deterministic.
      concurrency: b.explain ? 1 : this.#o.datastore.preferredConcurrency,
      stats: { dispatches: 0, reads: 0 },
      now,
      validUntil: Number.POSITIVE_INFINITY,
      deadline: b.deadlineMs ? Date.now() + b.deadlineMs : 0,
      explain: !!b.explain,
    }
    if (b.signal) ctx.signal = b.signal
    if (membership) ctx.membership = membership
    const sliceMs = b.paced ? (this.#o.sliceMs ?? LIST_SLICE_MS) : (this.#o.checkSliceMs ?? CHECK_SLICE_MS)
    if (sliceMs > 0) ctx.slice = this.#pacer.slice(sliceMs)
    ctx.reader = buildRequestReader({
      storeId,
      revision,
      now,
      datastore: this.#o.datastore,
      indexed: indexed || undefined,
      workingSet,
      contextual: b.contextual,
      bound: ctx,
      replica: !higher,
    })
    return ctx
  }

  /** cacheStats reports the cross-request cache's counters (all zero when it is off). */
  cacheStats(): CacheStats {
    const c = this.#cache
    return { enabled: !!c, hits: c?.hits ?? 0, misses: c?.misses ?? 0, entries: c?.size ?? 0 }
  }

  /** tupleCacheStats reports the working set's counters (PEMBA_TUPLE_CACHE_SIZE; see working-set.ts). */
  tupleCacheStats(): CacheStats {
    const s = this.#objects?.stats()
    return { enabled: !!s, hits: s?.hits ?? 0, misses: s?.misses ?? 0, entries: s?.entries ?? 0 }
  }

  /** workingSetStats: the working set's own counters, or undefined when it is off. */
  workingSetStats(): ReturnType<WorkingSet['stats']> | undefined {
    return this.#objects?.stats()
  }

  /**
   * cacheSizes: what the cross-request caches hold and their bounds, each in the unit its
   * setting counts (answers; closure levels; tuples), for /metrics (docs/memory.md).
   */
  cacheSizes(): { cache: string; size: number; capacity: number }[] {
    const out: { cache: string; size: number; capacity: number }[] = []
    const c = this.#cache
    if (c) {
      out.push({ cache: 'check', size: c.size, capacity: c.capacity })
      out.push({ cache: 'check_closures', size: c.closureSize, capacity: c.closureCapacity })
    }
    const ws = this.#objects?.stats()
    if (ws) out.push({ cache: 'tuple', size: ws.tuples, capacity: ws.capacity })
    const m = this.#o.membershipClosures
    if (m) out.push({ cache: 'membership_closure', size: m.stats().entries, capacity: m.maxEntries })
    return out
  }

  /** membershipClosureStats reports the membership closures' counters, or undefined when they are off. */
  membershipClosureStats(): MembershipClosureStats | undefined {
    return this.#o.membershipClosures?.stats()
  }

  /**
   * membershipClosuresReady builds the membership closures of the store's latest model now
   * (a warm-up or a benchmark; requests start them on first use) and says whether all are ready.
   */
  async membershipClosuresReady(storeId: string): Promise<boolean> {
    const closures = this.#o.membershipClosures
    if (!closures) return false
    const ts = await this.#o.models.resolve(storeId, undefined, { fresh: true })
    let ready = true
    const families = new Set<UsersetClosure>()
    for (const [type, t] of ts.types) {
      for (const name of t.relations.keys()) {
        const family = ts.usersetClosure(type, name)
        if (family) families.add(family)
      }
    }
    for (const family of families) ready = (await closures.ready(storeId, family)) && ready
    return ready
  }

  /** tupleIndexStats reports the in-memory tuple index's counters, or undefined when it is off. */
  tupleIndexStats(): TupleIndexStats | undefined {
    return this.#index?.stats()
  }

  /** tupleIndexReady waits until the store's tuples are in memory (false: it does not fit, or no index). */
  async tupleIndexReady(storeId: string): Promise<boolean> {
    return this.#index ? this.#index.ready(storeId) : false
  }

  /** forgetStore releases what is held for a deleted store: its tuple index, cached answers and objects. */
  forgetStore(storeId: string): void {
    this.#o.membershipClosures?.drop(storeId)
    this.#index?.drop(storeId)
    this.#cache?.dropStore(storeId)
    this.#objects?.dropStore(storeId)
  }
}
