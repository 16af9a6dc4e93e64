/**
 * AuthZEN search, complete and paged: subject search (list-users with the subject type as the
 * one filter; a wildcard comes back as `id: "*"`), resource search (list-objects of the
 * resource type) and action search (the actions of the resource's type the subject may do).
 *
 * **Actions.** An action is a relation with no directly assignable types: it cannot be written
 * as a tuple, only computed (like SpiceDB's permissions). A relation that can be written is
 * structure and is never returned, even when the subject holds it. In
 *
 * ```
 * type doc
 *   relations
 *     define owner: [user]
 *     define parent: [folder]
 *     define editor: [user] or owner
 *     define can_view: editor or viewer from parent
 *     define can_edit: editor
 *     define can_delete: owner
 * ```
 *
 * the actions are `can_view`, `can_edit` and `can_delete`; `owner`, `parent` and `editor`
 * (writable, even though `editor` also has `or owner`) are never returned.
 *
 * **Pages.** The whole answer is computed once, on the first request, and sorted (a stable
 * order). When it fits in one page it is answered at once (`next_token: ""`); otherwise it is
 * kept as a snapshot (search-snapshot-store.ts) for PEMBA_AUTHZEN_PAGE_TOKEN_TTL, and every
 * later page is a slice of it, on any replica: the pages of one search answer at the revision
 * of the first page (a write in between changes nothing they show), and every result comes
 * exactly once. Tokens are signed per snapshot and bound to the question (page-tokens.ts).
 * `page.limit` defaults to PEMBA_AUTHZEN_PAGE_LIMIT; above PEMBA_AUTHZEN_PAGE_LIMIT_MAX is a
 * 400; `limit: 0` asks only for the size: no results, `total`, and `next_token: ""` (there is
 * no page after a page of nothing). A `page.token` that is absent or `""` starts a search.
 * The effective limit is part of the question, so replicas must share the page settings.
 *
 * **Storage is bounded.** A first page of the same question (query hash) at the same head
 * revision and model, within SNAPSHOT_REUSE_MS, is served from the stored answer instead of
 * storing it again (on any replica). A store holds at most PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX
 * live snapshots: a first page that needs one more answers 429 `resource_exhausted` (finish
 * paging or retry later) rather than evicting another client's search, whose tokens must stay
 * valid. Results are stored compactly (search-snapshots.ts). Each replica keeps recent
 * snapshots parsed in memory, within PEMBA_AUTHZEN_SEARCH_CACHE_BYTES and until they expire:
 * on a miss (another replica's search, or one larger than that budget) a page reads and parses
 * the whole row, at most once per page (a ~1 MB row for 10,000 results).
 *
 * **Complete or nothing.** A search with more than PEMBA_AUTHZEN_SEARCH_MAX_RESULTS results
 * answers 400 `exceeded_entity_limit`, and one that does not finish within
 * PEMBA_LIST_DEADLINE_MS answers `deadline_exceeded` (500, as a check past its deadline);
 * never a silently partial list.
 *
 * Pemba's options under `context.pemba` are honoured as for an evaluation (pemba-options.ts):
 * `consistency` and `contextual_tuples`; `on_behalf_of` for resource search (a delegated
 * list-objects). A `subject_token` is refused (search is not token-aware); `explain` is
 * ignored. A first page is one decision of kind `search` in the decision log (see #record);
 * later pages, served from the snapshot, decide nothing and are not logged.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import { PembaError, validationError } from '../../core/errors.ts'
import type { Subject } from '../../core/tuple.ts'
import { DeadlineExceededError } from '../../engine/limits.ts'
import { NO_DECISIONS, type DecisionSink, type RequestMeta } from '../decision-sink.ts'
import type { Consistency, EvaluationService } from '../evaluation.ts'
import type { HeadRevisions } from '../head-revisions.ts'
import type { ListService } from '../lists.ts'
import type { SearchSnapshot, SearchSnapshotStore } from '../search-snapshot-store.ts'
import { contextualTuples, refuseCredentialId, validateSubject } from '../tuple-input.ts'
import type { CredentialRule } from '../../core/credentials.ts'
import { conditionContext, objectOf, relationOf, userOf } from './mapping.ts'
import {
  decodePageToken,
  encodePageToken,
  newSnapshotId,
  newSnapshotSecret,
  pageTokenError,
  queryHash,
} from './page-tokens.ts'
import { evaluationOptions, type EvaluationOptions } from './pemba-options.ts'
import type { AuthzenAction, AuthzenEntity } from './types.ts'

/** The entity of the searched kind: its `type` (and properties); an `id` given is ignored. */
export interface SearchedEntity {
  type: string
  properties?: Record<string, unknown>
}

/** One search, e.g. `{kind: 'resource', subject: user:anne, action: can_view, resource: {type: 'doc'}}`. */
export type SearchQuery =
  | { kind: 'subject'; subject: SearchedEntity; action: AuthzenAction; resource: AuthzenEntity; context?: Record<string, unknown> }
  | { kind: 'resource'; subject: AuthzenEntity; action: AuthzenAction; resource: SearchedEntity; context?: Record<string, unknown> }
  | { kind: 'action'; subject: AuthzenEntity; resource: AuthzenEntity; context?: Record<string, unknown> }

/** The request's `page`: the previous `next_token` (absent or '' for the first page) and `limit`. */
export interface PageRequest {
  token?: string
  limit?: number
}

export interface SearchOptions {
  /** The `Openfga-Authorization-Model-Id` header; the latest model when absent. */
  modelId?: string
  /** Who asked (an API request): the search is then recorded in the decision log. */
  meta?: RequestMeta
  /** Aborted when the client has gone away: the search stops. */
  signal?: AbortSignal
}

/** One page of a search: `results` of the searched kind, and the page's facts. */
export interface SearchPage {
  results: { type: string; id: string }[] | { name: string }[]
  /** '' on the last page. */
  nextToken: string
  /** Results in this page. */
  count: number
  /** Results of the whole search, at the first page's revision. */
  total: number
  modelId: string
  /** Subproblems the engine evaluated for this request (0 for a page served from a snapshot). */
  dispatches: number
}

export interface SearchServiceOptions {
  lists: ListService
  evaluation: EvaluationService
  heads: Pick<HeadRevisions, 'get'>
  snapshots: SearchSnapshotStore
  clock: () => Date
  decisions?: DecisionSink
  /** `page.limit` when the request gives none (PEMBA_AUTHZEN_PAGE_LIMIT). */
  pageLimit: number
  /** The largest `page.limit` accepted (PEMBA_AUTHZEN_PAGE_LIMIT_MAX). */
  pageLimitMax: number
  /** How long a snapshot and its tokens live (PEMBA_AUTHZEN_PAGE_TOKEN_TTL). */
  tokenTtlMs: number
  /** The most results a search may have (PEMBA_AUTHZEN_SEARCH_MAX_RESULTS). */
  maxResults: number
  /** How long computing a search may take (PEMBA_LIST_DEADLINE_MS). */
  deadlineMs: number
  /**
   * The most live snapshots one store may hold (PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX): a first page
   * that needs one more answers 429 `resource_exhausted` (see the module comment).
   */
  snapshotsMax: number
  /**
   * The memory recent snapshots may take on this replica (PEMBA_AUTHZEN_SEARCH_CACHE_BYTES, as
   * the characters of their results plus 24 per result), so paging here reads no row; 0: none.
   */
  cacheBytes: number
  /**
   * What a credential-shaped identifier is (core/credentials.ts): an action search's subject or
   * resource of that shape is refused (the other searches are lists, which refuse it themselves).
   */
  credentials?: CredentialRule
}

/**
 * How long a stored answer is reused for the same question at the same revision. A tuple's
 * expiry changes an answer without a new revision, so reuse is kept short: a repeated first
 * page within it costs no storage, and its answer is as fresh as MINIMIZE_LATENCY's head.
 */
export const SNAPSHOT_REUSE_MS = 10_000

/** A search's complete answer, as computed for its first page. */
interface Computed {
  /** Sorted: `type:id` (subjects, resources) or action names. */
  results: string[]
  modelId: string
  dispatches: number
  /** A delegated resource search refused by its chain (`delegation`): `detail.denied_by`. */
  deniedBy?: string
}

/** approxBytes: what a snapshot's results take in memory (one-byte strings and their headers). */
function approxBytes(s: SearchSnapshot): number {
  let n = 256
  for (const r of s.results) n += r.length + 24
  return n
}

export class SearchService {
  readonly #o: SearchServiceOptions
  readonly #decisions: DecisionSink
  /**
   * Recent snapshots by `store id`: the pages of a search served here read no row. Bounded by
   * bytes; each entry lives until its snapshot expires on the injected clock, and is then
   * dropped (its secret with it).
   */
  readonly #recent: LRUCache<string, SearchSnapshot> | undefined
  /** Recent questions (`store query-hash revision model`) → their snapshot's id, for reuse. */
  readonly #questions: LRUCache<string, string> | undefined

  constructor(options: SearchServiceOptions) {
    this.#o = options
    this.#decisions = options.decisions ?? NO_DECISIONS
    this.#recent =
      options.cacheBytes > 0
        ? new LRUCache<string, SearchSnapshot>({
            maxSize: options.cacheBytes,
            sizeCalculation: approxBytes,
            ttlAutopurge: true,
            ttlResolution: 0,
            perf: { now: () => options.clock().getTime() },
          })
        : undefined
    this.#questions = this.#recent && new LRUCache<string, string>({ max: 10_000, ttlResolution: 0, perf: { now: () => options.clock().getTime() } })
  }

  /** cached: the snapshots this replica holds in memory, and their approximate bytes (for tests and metrics). */
  cached(): { entries: number; bytes: number } {
    const recent = this.#recent
    if (!recent) return { entries: 0, bytes: 0 }
    recent.purgeStale()
    return { entries: recent.size, bytes: recent.calculatedSize }
  }

  /** forgetStore drops a deleted store's snapshots held in memory (their rows go with the store's purge). */
  forgetStore(storeId: string): void {
    for (const lru of [this.#recent, this.#questions]) {
      if (!lru) continue
      const doomed: string[] = []
      for (const key of lru.keys()) if (key.startsWith(`${storeId} `)) doomed.push(key)
      for (const key of doomed) lru.delete(key)
    }
  }

  #remember(s: SearchSnapshot): void {
    const ttl = s.expiresAt.getTime() - this.#o.clock().getTime()
    if (!this.#recent || ttl <= 0) return
    this.#recent.set(`${s.storeId} ${s.id}`, s, { ttl })
    const reuse = s.createdAt.getTime() + SNAPSHOT_REUSE_MS - this.#o.clock().getTime()
    if (reuse > 0) this.#questions?.set(`${s.storeId} ${s.queryHash} ${s.revision} ${s.modelId}`, s.id, { ttl: Math.min(ttl, reuse) })
  }

  /** search answers one page of a search (see the module comment). */
  async search(storeId: string, q: SearchQuery, page: PageRequest, o: SearchOptions): Promise<SearchPage> {
    const limit = page.limit ?? this.#o.pageLimit
    if (!Number.isSafeInteger(limit) || limit < 0) throw validationError(`invalid page.limit ${limit}: expected an integer of at least 0`)
    if (limit > this.#o.pageLimitMax) {
      throw validationError(`page.limit ${limit} exceeds the maximum of ${this.#o.pageLimitMax} (PEMBA_AUTHZEN_PAGE_LIMIT_MAX)`)
    }
    const hash = queryHash({ v: 1, q, limit, model: o.modelId ?? '' })
    if (page.token) return this.#laterPage(storeId, q.kind, page.token, hash, limit)

    const started = performance.now()
    const opts = evaluationOptions(q.context ?? {}, false)
    if (opts.subjectToken !== undefined) throw validationError('context.subject_token is not supported by search: name the subject')
    if (opts.onBehalfOf && q.kind !== 'resource') throw validationError(`context.pemba.on_behalf_of is not supported by ${q.kind} search`)
    // The head read before computing: every write up to it is in the answer (see SearchSnapshot.revision).
    const revision = await this.#o.heads.get(storeId, opts.consistency === 'HIGHER_CONSISTENCY')
    if (limit > 0) {
      const reused = await this.#reusable(storeId, hash, revision, o.modelId, opts)
      if (reused) {
        if (o.meta) this.#record(storeId, q, { results: reused.results, modelId: reused.modelId, dispatches: 0 }, o.meta, started, true)
        return { ...this.#slice(q.kind, reused, 0, limit), dispatches: 0 }
      }
    }
    const computed = await this.#compute(storeId, q, o.modelId, opts, o.signal)
    const total = computed.results.length
    if (limit === 0 || total <= limit) {
      if (o.meta) this.#record(storeId, q, computed, o.meta, started)
      const results = limit === 0 ? [] : computed.results
      return { ...wireResults(q.kind, results), nextToken: '', total, modelId: computed.modelId, dispatches: computed.dispatches }
    }
    const now = this.#o.clock()
    const open = await this.#o.snapshots.countLiveSearchSnapshots(storeId, now)
    if (open >= this.#o.snapshotsMax) {
      const ttl = Math.ceil(this.#o.tokenTtlMs / 1000)
      throw new PembaError(
        'resource_exhausted',
        `too many paged searches open in this store (${this.#o.snapshotsMax}, PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX): finish paging, narrow the search to one page, or retry within ${ttl} s`,
        429,
      )
    }
    const snapshot: SearchSnapshot = {
      storeId,
      id: newSnapshotId(),
      queryHash: hash,
      modelId: computed.modelId,
      revision,
      secret: newSnapshotSecret(),
      results: computed.results,
      total,
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.#o.tokenTtlMs),
    }
    await this.#o.snapshots.insertSearchSnapshot(snapshot)
    this.#remember(snapshot)
    if (o.meta) this.#record(storeId, q, computed, o.meta, started)
    return { ...this.#slice(q.kind, snapshot, 0, limit), dispatches: computed.dispatches }
  }

  /**
   * #reusable finds a live snapshot of the same question at the same revision and model, made
   * within SNAPSHOT_REUSE_MS: in memory, else in the database (another replica's).
   */
  async #reusable(storeId: string, hash: string, revision: number, pinned: string | undefined, opts: EvaluationOptions): Promise<SearchSnapshot | undefined> {
    const modelId = pinned ?? (await this.#o.evaluation.model(storeId, undefined, opts.consistency)).id
    const now = this.#o.clock()
    const id = this.#questions?.get(`${storeId} ${hash} ${revision} ${modelId}`)
    const cached = id === undefined ? undefined : this.#recent?.get(`${storeId} ${id}`)
    if (cached) return cached
    const createdSince = new Date(now.getTime() - SNAPSHOT_REUSE_MS)
    const found = await this.#o.snapshots.findSearchSnapshot(storeId, { queryHash: hash, revision, modelId, createdSince }, now)
    if (found) this.#remember(found)
    return found
  }

  /** #laterPage serves a page of a stored snapshot, once the token is proven to be for this question. */
  async #laterPage(storeId: string, kind: SearchQuery['kind'], token: string, hash: string, limit: number): Promise<SearchPage> {
    const t = decodePageToken(token)
    if (t.storeId !== storeId) throw pageTokenError('it was issued by a search of another store')
    const snapshot = await this.#snapshot(storeId, t.snapshotId)
    if (!snapshot) throw pageTokenError('it has expired or is unknown; start the search again without page.token')
    if (!t.verify(snapshot.secret)) throw pageTokenError('not a token this server issued')
    if (snapshot.queryHash !== hash) {
      throw pageTokenError('it was issued for a different search: the entities, action, context, page.limit and model must be those of the first page')
    }
    if (t.offset > snapshot.total) throw pageTokenError('not a token this server issued')
    return { ...this.#slice(kind, snapshot, t.offset, limit), dispatches: 0 }
  }

  /** #snapshot finds a live snapshot: in memory, else its row (another replica's, or one forgotten here). */
  async #snapshot(storeId: string, id: string): Promise<SearchSnapshot | undefined> {
    const key = `${storeId} ${id}`
    const now = this.#o.clock().getTime()
    let s = this.#recent?.get(key)
    if (!s) {
      s = await this.#o.snapshots.getSearchSnapshot(storeId, id)
      if (s && s.expiresAt.getTime() > now) this.#remember(s)
    }
    return s && s.expiresAt.getTime() > now ? s : undefined
  }

  #slice(kind: SearchQuery['kind'], s: SearchSnapshot, offset: number, limit: number): Omit<SearchPage, 'dispatches'> {
    const end = Math.min(offset + limit, s.total)
    const nextToken = end < s.total ? encodePageToken({ storeId: s.storeId, snapshotId: s.id, offset: end }, s.secret) : ''
    return { ...wireResults(kind, s.results.slice(offset, end)), nextToken, total: s.total, modelId: s.modelId }
  }

  /** #compute finds the whole answer, sorted, or fails: never a partial list. */
  async #compute(storeId: string, q: SearchQuery, modelId: string | undefined, opts: EvaluationOptions, signal?: AbortSignal): Promise<Computed> {
    const context = conditionContext({
      subject: propertiesOf(q.subject),
      action: 'action' in q ? q.action : undefined,
      resource: propertiesOf(q.resource),
      context: q.context,
    })
    const common = { modelId, context, contextualTuples: opts.contextualTuples, consistency: opts.consistency, maxResults: this.#o.maxResults + 1, signal }
    let computed: Computed
    if (q.kind === 'resource') {
      const user = userOf(q.subject)
      const relation = relationOf(q.action)
      const r = await this.#o.lists.listObjects(storeId, { ...common, type: q.resource.type, relation, user, onBehalfOf: opts.onBehalfOf })
      this.#complete(r.truncated, r.objects.length)
      computed = { results: r.objects, modelId: r.modelId, dispatches: r.dispatches, deniedBy: r.deniedBy }
    } else if (q.kind === 'subject') {
      objectOf(q.resource)
      const relation = relationOf(q.action)
      const r = await this.#o.lists.listUsers(storeId, {
        ...common,
        object: { type: q.resource.type, id: q.resource.id },
        relation,
        userFilters: [{ type: q.subject.type }],
      })
      this.#complete(r.truncated, r.users.length)
      computed = { results: r.users.map((u) => `${u.type}:${u.id}`), modelId: r.modelId, dispatches: r.dispatches }
    } else {
      computed = await this.#actions(storeId, q, modelId, opts, context, signal)
    }
    computed.results.sort()
    return computed
  }

  /** #actions: the actions of the resource's type (see the module comment) the subject may do. */
  async #actions(
    storeId: string,
    q: Extract<SearchQuery, { kind: 'action' }>,
    modelId: string | undefined,
    opts: EvaluationOptions,
    context: Record<string, unknown> | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Computed> {
    const user = userOf(q.subject)
    const object = objectOf(q.resource)
    const { evaluation, credentials } = this.#o
    if (credentials) refuseCredentialId(credentials, 'resource', object)
    const ts = await evaluation.model(storeId, modelId, opts.consistency)
    const type = ts.types.get(q.resource.type)
    if (!type) throw new PembaError('type_not_found', `type '${q.resource.type}' not found`)
    const subject: Subject = validateSubject(ts, user, credentials)
    const actions = [...type.relations.values()].filter((r) => r.directTypes.length === 0).map((r) => r.name)
    const ctx = await evaluation.bind(storeId, ts, {
      contextual: contextualTuples(ts, opts.contextualTuples),
      context,
      deadlineMs: this.#o.deadlineMs,
      consistency: opts.consistency,
      signal,
      paced: true,
    })
    let allowed: boolean[]
    try {
      allowed = await Promise.all(
        actions.map(
          async (relation) =>
            (
              await evaluation.dispatcher.dispatchCheck({
                objectType: q.resource.type,
                objectId: q.resource.id,
                relation,
                subject,
                depth: 0,
                path: undefined,
                ctx,
              })
            ).allowed,
        ),
      )
    } catch (e) {
      if (e instanceof DeadlineExceededError) this.#complete('deadline', 0)
      throw e
    }
    return {
      results: actions.filter((_, i) => allowed[i]),
      modelId: ts.id,
      dispatches: ctx.stats.dispatches,
    }
  }

  /** #complete refuses an answer that is not the whole answer (see the module comment). */
  #complete(truncated: '' | 'max_results' | 'deadline', found: number): void {
    if (truncated === 'deadline') {
      throw new PembaError(
        'deadline_exceeded',
        `the search did not complete within ${this.#o.deadlineMs} ms (PEMBA_LIST_DEADLINE_MS); no partial answer is given: narrow the search`,
      )
    }
    if (found > this.#o.maxResults || truncated === 'max_results') {
      throw new PembaError(
        'exceeded_entity_limit',
        `the search has more than ${this.#o.maxResults} results (PEMBA_AUTHZEN_SEARCH_MAX_RESULTS); no partial answer is given: narrow the search`,
      )
    }
  }

  /**
   * #record logs a search: one decision of kind `search`, `detail.search` saying which
   * (`subject`, `resource`, `action`) and `detail.count` its size. The searched side holds its
   * type alone, the other sides are as asked: a resource search is `subject: "user:anne"`,
   * `relation: "can_view"`, `object: "doc"`; a subject search `subject: "user"`, `object:
   * "doc:plan"`; an action search has `relation: ""`. A delegated search refused by its chain
   * adds `detail.denied_by`, a first page served from a stored answer `detail.reused: true`.
   */
  #record(storeId: string, q: SearchQuery, c: Computed, meta: RequestMeta, started: number, reused = false): void {
    if (this.#decisions === NO_DECISIONS) return
    const opts = evaluationOptions(q.context ?? {}, false)
    const consistency: Consistency | undefined = opts.consistency
    const detail: Record<string, unknown> = { search: q.kind, count: c.results.length }
    if (c.deniedBy) detail.denied_by = c.deniedBy
    if (reused) detail.reused = true
    this.#decisions.record({
      kind: 'search',
      storeId,
      modelId: c.modelId,
      client: meta.client,
      requestId: meta.requestId,
      subject: q.kind === 'subject' ? q.subject.type : userOf(q.subject),
      onBehalfOf: opts.onBehalfOf,
      relation: q.kind === 'action' ? '' : q.action.name,
      object: q.kind === 'resource' ? q.resource.type : objectOf(q.resource),
      allowed: c.results.length > 0,
      latencyUs: (performance.now() - started) * 1000,
      consistency: consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail,
    })
  }
}

/** propertiesOf: what conditionContext reads of an entity (its properties), searched or not. */
function propertiesOf(e: SearchedEntity): AuthzenEntity {
  return { type: e.type, id: '', properties: e.properties }
}

/** wireResults: stored results as the searched kind's entities, with their count. */
function wireResults(kind: SearchQuery['kind'], results: string[]): Pick<SearchPage, 'results' | 'count'> {
  if (kind === 'action') return { results: results.map((name) => ({ name })), count: results.length }
  return {
    results: results.map((r) => {
      const colon = r.indexOf(':')
      return { type: r.slice(0, colon), id: r.slice(colon + 1) }
    }),
    count: results.length,
  }
}
