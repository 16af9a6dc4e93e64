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
 *
 * **Complete or nothing.** A search with more than PEMBA_AUTHZEN_SEARCH_MAX_RESULTS results
 * answers 400 `exceeded_entity_limit`, and one that does not finish within
 * PEMBA_LIST_DEADLINE_MS answers `deadline_exceeded` (500, as a check past its deadline);
 * never a silently partial list.
 *
 * Pemba's options under `context.pemba` are honoured as for an evaluation (pemba-options.ts):
 * `consistency` and `contextual_tuples`; `on_behalf_of` for resource search (a delegated
 * list-objects). A `subject_token` is refused (search is not token-aware); `explain` is
 * ignored. A computed search is one decision in the decision log (see #record); later pages,
 * served from the snapshot, decide nothing and are not logged.
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
import { contextualTuples, validateSubject } from '../tuple-input.ts'
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
  /** Results of recent snapshots held in memory, so paging on one replica reads no row. Default 200,000. */
  cachedResults?: number
}

/** A search's complete answer, as computed for its first page. */
interface Computed {
  /** Sorted: `type:id` (subjects, resources) or action names. */
  results: string[]
  modelId: string
  dispatches: number
  /** For the decision log: who, which relation, on what. */
  logged: { subject: string; relation: string; object: string; onBehalfOf?: string[] }
}

export class SearchService {
  readonly #o: SearchServiceOptions
  readonly #decisions: DecisionSink
  /** Recent snapshots by `store id`: the pages of a search served here read no row. */
  readonly #recent: LRUCache<string, SearchSnapshot>

  constructor(options: SearchServiceOptions) {
    this.#o = options
    this.#decisions = options.decisions ?? NO_DECISIONS
    this.#recent = new LRUCache({ maxSize: options.cachedResults ?? 200_000, sizeCalculation: (s) => s.results.length + 1 })
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
    const computed = await this.#compute(storeId, q, o.modelId)
    const total = computed.results.length
    if (o.meta) this.#record(storeId, q, computed, o.meta, started)
    if (limit === 0 || total <= limit) {
      const results = limit === 0 ? [] : computed.results
      return { ...wireResults(q.kind, results), nextToken: '', total, modelId: computed.modelId, dispatches: computed.dispatches }
    }
    const now = this.#o.clock()
    const snapshot: SearchSnapshot = {
      storeId,
      id: newSnapshotId(),
      queryHash: hash,
      modelId: computed.modelId,
      revision: computed.revision,
      secret: newSnapshotSecret(),
      results: computed.results,
      total,
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.#o.tokenTtlMs),
    }
    await this.#o.snapshots.insertSearchSnapshot(snapshot)
    this.#recent.set(`${storeId} ${snapshot.id}`, snapshot)
    return { ...this.#slice(q.kind, snapshot, 0, limit), dispatches: computed.dispatches }
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
    let s = this.#recent.get(key)
    if (!s) {
      s = await this.#o.snapshots.getSearchSnapshot(storeId, id)
      if (s && s.expiresAt.getTime() > now) this.#recent.set(key, s)
    }
    if (!s || s.expiresAt.getTime() <= now) {
      this.#recent.delete(key)
      return undefined
    }
    return s
  }

  #slice(kind: SearchQuery['kind'], s: SearchSnapshot, offset: number, limit: number): Omit<SearchPage, 'dispatches'> {
    const end = Math.min(offset + limit, s.total)
    const nextToken = end < s.total ? encodePageToken({ storeId: s.storeId, snapshotId: s.id, offset: end }, s.secret) : ''
    return { ...wireResults(kind, s.results.slice(offset, end)), nextToken, total: s.total, modelId: s.modelId }
  }

  /** #compute finds the whole answer, sorted, or fails: never a partial list. */
  async #compute(storeId: string, q: SearchQuery, modelId: string | undefined): Promise<Computed & { revision: number }> {
    const opts = evaluationOptions(q.context ?? {}, false)
    if (opts.subjectToken !== undefined) throw validationError('context.subject_token is not supported by search: name the subject')
    if (opts.onBehalfOf && q.kind !== 'resource') throw validationError(`context.pemba.on_behalf_of is not supported by ${q.kind} search`)
    // The head the answer is computed at (the engine binds to the same remembered head).
    const revision = await this.#o.heads.get(storeId, opts.consistency === 'HIGHER_CONSISTENCY')
    const context = conditionContext({
      subject: propertiesOf(q.subject),
      action: 'action' in q ? q.action : undefined,
      resource: propertiesOf(q.resource),
      context: q.context,
    })
    const common = { modelId, context, contextualTuples: opts.contextualTuples, consistency: opts.consistency, maxResults: this.#o.maxResults + 1 }
    let computed: Computed
    if (q.kind === 'resource') {
      const user = userOf(q.subject)
      const relation = relationOf(q.action)
      const r = await this.#o.lists.listObjects(storeId, { ...common, type: q.resource.type, relation, user, onBehalfOf: opts.onBehalfOf })
      this.#complete(r.truncated, r.objects.length)
      computed = { results: r.objects, modelId: r.modelId, dispatches: r.dispatches, logged: { subject: user, relation, object: q.resource.type, onBehalfOf: opts.onBehalfOf } }
    } else if (q.kind === 'subject') {
      const object = objectOf(q.resource)
      const relation = relationOf(q.action)
      const r = await this.#o.lists.listUsers(storeId, {
        ...common,
        object: { type: q.resource.type, id: q.resource.id },
        relation,
        userFilters: [{ type: q.subject.type }],
      })
      this.#complete(r.truncated, r.users.length)
      computed = { results: r.users.map((u) => `${u.type}:${u.id}`), modelId: r.modelId, dispatches: r.dispatches, logged: { subject: q.subject.type, relation, object } }
    } else {
      computed = await this.#actions(storeId, q, modelId, opts, context)
    }
    computed.results.sort()
    return { ...computed, revision }
  }

  /** #actions: the actions of the resource's type (see the module comment) the subject may do. */
  async #actions(
    storeId: string,
    q: Extract<SearchQuery, { kind: 'action' }>,
    modelId: string | undefined,
    opts: EvaluationOptions,
    context: Record<string, unknown> | undefined,
  ): Promise<Computed> {
    const user = userOf(q.subject)
    const object = objectOf(q.resource)
    const { evaluation } = this.#o
    const ts = await evaluation.model(storeId, modelId, opts.consistency)
    const type = ts.types.get(q.resource.type)
    if (!type) throw new PembaError('type_not_found', `type '${q.resource.type}' not found`)
    const subject: Subject = validateSubject(ts, user)
    const actions = [...type.relations.values()].filter((r) => r.directTypes.length === 0).map((r) => r.name)
    const ctx = await evaluation.bind(storeId, ts, {
      contextual: contextualTuples(ts, opts.contextualTuples),
      context,
      deadlineMs: this.#o.deadlineMs,
      consistency: opts.consistency,
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
      logged: { subject: user, relation: '', object },
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
   * #record logs a computed search like a list-objects: one decision of kind `list_objects`,
   * `detail.search` saying which search (`subject`: the subject is the searched type and the
   * object the resource; `action`: no relation) and `detail.count` its size.
   */
  #record(storeId: string, q: SearchQuery, c: Computed, meta: RequestMeta, started: number): void {
    if (this.#decisions === NO_DECISIONS) return
    const consistency: Consistency | undefined = evaluationOptions(q.context ?? {}, false).consistency
    this.#decisions.record({
      kind: 'list_objects',
      storeId,
      modelId: c.modelId,
      client: meta.client,
      requestId: meta.requestId,
      subject: c.logged.subject,
      onBehalfOf: c.logged.onBehalfOf,
      relation: c.logged.relation,
      object: c.logged.object,
      allowed: c.results.length > 0,
      latencyUs: (performance.now() - started) * 1000,
      consistency: consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail: { search: q.kind, count: c.results.length },
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
