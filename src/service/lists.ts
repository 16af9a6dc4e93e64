/**
 * ListService answers list queries: the objects a user reaches (`listObjects`, also delegated,
 * also streamed object by object) and the users that reach an object (`listUsers`). API
 * requests (those given a RequestMeta) are recorded as decisions of kind list_objects.
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { PembaError, validationError } from '../core/errors.ts'
import { delegatedCheck, type DeniedBy } from '../engine/delegation.ts'
import { listObjects, type ListObjectsResult } from '../engine/list-objects.ts'
import { listUsers, type ListUsersResult } from '../engine/list-users.ts'
import type { ResolutionContext } from '../engine/dispatch.ts'
import type { TypeSystem } from '../model/typesystem.ts'
import { NO_DECISIONS, type DecisionSink, type RequestMeta } from './decision-sink.ts'
import type { EvaluationService, QueryOptions } from './evaluation.ts'
import { contextualTuples, delegationChain, refuseCredentialId, validateSubject } from './tuple-input.ts'

export interface ListServiceOptions {
  evaluation: EvaluationService
  clock: () => Date
  /** The most results a list returns (then `truncated`). */
  listMaxResults: number
  listDeadlineMs: number
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

/** `maxResults` replaces listMaxResults for one call (AuthZEN search has its own maximum). */
export type ListObjectsInput = QueryOptions & { type: string; relation: string; user: string; onBehalfOf?: string[]; maxResults?: number }

/** What the engine did for a list: subproblems dispatched (checks of candidates, their subproblems). */
interface ListFacts {
  dispatches: number
}

export type ListUsersInput = QueryOptions & {
  object: { type: string; id: string }
  relation: string
  userFilters: { type: string; relation?: string }[]
  /** Replaces listMaxResults for one call. */
  maxResults?: number
}

export class ListService {
  readonly #o: ListServiceOptions
  readonly #evaluation: EvaluationService
  readonly #decisions: DecisionSink
  readonly #credentials: CredentialRule

  constructor(options: ListServiceOptions) {
    this.#o = options
    this.#evaluation = options.evaluation
    this.#decisions = options.decisions ?? NO_DECISIONS
    this.#credentials = options.credentials ?? CREDENTIAL_SHAPES
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
  ): Promise<ListObjectsResult & ListFacts & { modelId: string; deniedBy?: DeniedBy }> {
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
  ): Promise<ListObjectsResult & ListFacts & { modelId: string; deniedBy?: DeniedBy }> {
    const ts = await this.#evaluation.model(storeId, input.modelId, input.consistency)
    if (!ts.hasType(input.type)) throw new PembaError('type_not_found', `type '${input.type}' not found`)
    if (!ts.relation(input.type, input.relation)) {
      throw new PembaError('relation_not_found', `relation '${input.type}#${input.relation}' not found`)
    }
    const subject = validateSubject(ts, input.user, this.#credentials)
    const chain = input.onBehalfOf
      ? delegationChain(ts, subject, input.onBehalfOf, this.#o.maxDelegationChain, this.#credentials)
      : undefined
    const ctx = await this.#bind(storeId, ts, input)
    const dispatcher = this.#evaluation.dispatcher
    let confirm: ((id: string) => Promise<boolean>) | undefined
    if (chain) {
      // A broken delegation chain reaches nothing; otherwise the answer is what every identity
      // of the chain reaches, confirmed object by object with the same rule as check.
      const probe = await delegatedCheck(dispatcher, ctx, { type: '', id: '' }, '', subject, chain, true)
      if (!probe.allowed) return { objects: [], truncated: '', modelId: ts.id, deniedBy: 'delegation', dispatches: ctx.stats.dispatches }
      confirm = async (id) => (await delegatedCheck(dispatcher, ctx, { type: input.type, id }, input.relation, subject, chain)).allowed
    }
    const r = await listObjects(dispatcher, {
      objectType: input.type,
      relation: input.relation,
      subject,
      ctx,
      maxResults: input.maxResults ?? this.#o.listMaxResults,
      onObject,
      confirm,
    })
    return { ...r, modelId: ts.id, dispatches: ctx.stats.dispatches }
  }

  /** listUsers lists the users of one filter (a type, or a userset type) that reach `object#relation`. */
  async listUsers(storeId: string, input: ListUsersInput): Promise<ListUsersResult & ListFacts & { modelId: string }> {
    const ts = await this.#evaluation.model(storeId, input.modelId, input.consistency)
    const { object } = input
    refuseCredentialId(this.#credentials, 'object', `${object.type}:${object.id}`)
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
    const ctx = await this.#bind(storeId, ts, input)
    const r = await listUsers(this.#evaluation.dispatcher, {
      objectType: object.type,
      objectId: object.id,
      relation: input.relation,
      filter: { type: filter.type, relation: filter.relation ?? '' },
      ctx,
      maxResults: input.maxResults ?? this.#o.listMaxResults,
    })
    return { ...r, modelId: ts.id, dispatches: ctx.stats.dispatches }
  }

  /** #bind binds a list request, its contextual tuples validated, with the lists' deadline. */
  #bind(storeId: string, ts: TypeSystem, input: QueryOptions): Promise<ResolutionContext> {
    return this.#evaluation.bind(storeId, ts, {
      contextual: contextualTuples(ts, input.contextualTuples),
      context: input.context,
      deadlineMs: this.#o.listDeadlineMs,
      consistency: input.consistency,
      signal: input.signal,
      paced: true,
    })
  }
}
