/**
 * Least-privilege reviews, for a security engineer asking "what can this agent do, and does it
 * use it?":
 *
 * - accessReview: an identity's direct grants (the stored tuples whose user is exactly that
 *   identity: `agent:summarizer`, or `agent:*`, or a userset such as `team:eng#member`), each
 *   with when it was granted, when it last granted an allowed decision (from the decision log's
 *   grant usage), and whether it is unused: granted before the window began (now − unused_for)
 *   and not used since. A grant newer than the window is not called unused: it has not had the
 *   whole window to be used. Each unused grant comes with the Write body that revokes it.
 * - typeReview: every identity of a type (`agent`) with its grant count and unused count,
 *   sorted by unused share, so the most over-privileged come first.
 * - reach: the blast radius: for every type and relation of the store's latest model, how many
 *   objects the identity reaches, computed by list-objects (the same engine as check), and the
 *   first few of them.
 *
 * Reviews read the store's tuples directly (one scan of the store for an identity or a type):
 * they are an operator's tool, not a request path.
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { PembaError, validationError } from '../core/errors.ts'
import { formatSubject, parseSubject, type TupleKey } from '../core/tuple.ts'
import { RequestCancelledError } from '../engine/limits.ts'
import type { DecisionStore, GrantWithUsage, IdentityGrantStats } from './decision-store.ts'
import type { Page, StoreCatalog } from '../store/ports.ts'
import type { ListService } from './lists.ts'
import type { ModelService } from './models.ts'
import { refuseCredentialId } from './tuple-input.ts'

export interface ReviewServiceOptions {
  datastore: Pick<DecisionStore, 'listGrants' | 'identityGrantStats'> & Pick<StoreCatalog, 'getStore'>
  lists: Pick<ListService, 'listObjects'>
  models: ModelService
  clock: () => Date
  /** Objects listed per relation by reach (the count covers all of them). Default 10. */
  reachSample?: number
  /**
   * One deadline (ms) for a whole reach (PEMBA_LIST_DEADLINE_MS): once it has passed, the
   * relations not yet listed answer `truncated: 'deadline'` without running. Default 30 s.
   */
  reachDeadlineMs?: number
  /**
   * What a credential-shaped identifier is (core/credentials.ts): a review of such a user is
   * refused (its answer would echo the user). Default: JWT and Authorization shapes.
   */
  credentials?: CredentialRule
}

/** Why a grant is, or is not, unused. */
export type GrantVerdict =
  | 'never used'
  | 'not used within the window'
  | 'used within the window'
  | 'granted within the window'

export interface ReviewedGrant {
  /** The grant as a tuple key (with its condition and expiry when it has them). */
  tupleKey: TupleKey
  grantedAt: Date
  lastUsedAt: Date | null
  unused: boolean
  verdict: GrantVerdict
}

export interface AccessReview {
  user: string
  /** The window's start: unused grants were granted before it and not used since. */
  unusedSince: Date
  grants: ReviewedGrant[]
  next: string
}

export interface TypeReview {
  userType: string
  unusedSince: Date
  identities: (IdentityGrantStats & { unusedShare: number })[]
  next: string
}

export interface ReachEntry {
  type: string
  relation: string
  /** How many objects the identity reaches (all of them, up to the list limit). */
  count: number
  /** The first objects found, at most `reachSample`. */
  objects: string[]
  /** '' when `count` is complete; otherwise why the list was cut (`max_results`, `deadline`). */
  truncated: '' | 'max_results' | 'deadline'
  /** When this relation could not be listed for the identity (e.g. a condition needs context). */
  error?: string
}

export interface Reach {
  user: string
  modelId: string
  relations: ReachEntry[]
}

export class ReviewService {
  readonly #o: ReviewServiceOptions

  constructor(options: ReviewServiceOptions) {
    this.#o = options
  }

  async #storeExists(storeId: string): Promise<void> {
    if (!(await this.#o.datastore.getStore(storeId))) throw new PembaError('store_id_not_found', 'Store ID not found')
  }

  async accessReview(
    storeId: string,
    user: string,
    unusedForMs: number,
    page: { pageSize: number; after?: string },
  ): Promise<AccessReview> {
    refuseCredentialId(this.#o.credentials ?? CREDENTIAL_SHAPES, 'user', user)
    const subject = parseSubject(user)
    if (!subject) throw validationError(`invalid user '${user}': expected 'type:id', 'type:*' or 'type:id#relation'`)
    await this.#storeExists(storeId)
    const now = this.#o.clock().getTime()
    const cutoff = now - unusedForMs
    const found = await this.#o.datastore.listGrants(storeId, subject, { now, pageSize: page.pageSize, after: page.after })
    return {
      user: formatSubject(subject),
      unusedSince: new Date(cutoff),
      grants: found.items.map((g) => reviewGrant(g, cutoff)),
      next: found.next,
    }
  }

  async typeReview(
    storeId: string,
    userType: string,
    unusedForMs: number,
    page: { pageSize: number; after?: string },
  ): Promise<TypeReview> {
    // The answer names the type it was asked for: a credential as the type would come back.
    refuseCredentialId(this.#o.credentials ?? CREDENTIAL_SHAPES, 'user_type', userType)
    if (!/^[^:#@\s]{1,254}$/.test(userType)) throw validationError(`invalid user_type '${userType}'`)
    await this.#storeExists(storeId)
    const now = this.#o.clock().getTime()
    const cutoff = now - unusedForMs
    const found: Page<IdentityGrantStats> = await this.#o.datastore.identityGrantStats(storeId, userType, {
      now,
      cutoff,
      pageSize: page.pageSize,
      after: page.after,
    })
    return {
      userType,
      unusedSince: new Date(cutoff),
      identities: found.items.map((i) => ({ ...i, unusedShare: i.grants ? i.unused / i.grants : 0 })),
      next: found.next,
    }
  }

  /**
   * reach lists, for every type and relation of the latest model, what `user` reaches. Each
   * relation is one list-objects call (not recorded in the decision log: a review is not a
   * decision an application acted on). `signal`: the client went away, the lists stop.
   */
  async reach(storeId: string, user: string, signal?: AbortSignal): Promise<Reach> {
    refuseCredentialId(this.#o.credentials ?? CREDENTIAL_SHAPES, 'user', user)
    const ts = await this.#o.models.resolve(storeId)
    const subject = parseSubject(user)
    if (!subject) throw validationError(`invalid user '${user}': expected 'type:id', 'type:*' or 'type:id#relation'`)
    if (!ts.hasType(subject.type)) throw validationError(`type '${subject.type}' not found`)
    if (subject.relation && !ts.relation(subject.type, subject.relation)) {
      throw validationError(`relation '${subject.type}#${subject.relation}' not found`)
    }
    const sample = this.#o.reachSample ?? 10
    const relations: ReachEntry[] = []
    // One deadline for the whole reach, not one per relation (a model may have many).
    const until = this.#o.clock().getTime() + (this.#o.reachDeadlineMs ?? 30_000)
    for (const [type, t] of ts.types) {
      for (const relation of t.relations.keys()) {
        if (this.#o.clock().getTime() > until) {
          relations.push({ type, relation, count: 0, objects: [], truncated: 'deadline' })
          continue
        }
        try {
          const r = await this.#o.lists.listObjects(storeId, { modelId: ts.id, type, relation, user, signal })
          relations.push({
            type,
            relation,
            count: r.objects.length,
            objects: r.objects.slice(0, sample),
            truncated: r.truncated,
          })
        } catch (e) {
          // A client gone away ends the whole reach: nobody reads the rest.
          if (!(e instanceof PembaError) || e instanceof RequestCancelledError) throw e
          relations.push({ type, relation, count: 0, objects: [], truncated: '', error: e.message })
        }
      }
    }
    return { user: formatSubject(subject), modelId: ts.id, relations }
  }
}

function reviewGrant(g: GrantWithUsage, cutoff: number): ReviewedGrant {
  const tupleKey: TupleKey = {
    user: formatSubject({ type: g.userType, id: g.userId, relation: g.userRelation }),
    relation: g.relation,
    object: `${g.objectType}:${g.objectId}`,
  }
  if (g.conditionName) tupleKey.condition = { name: g.conditionName, ...(g.conditionContext ? { context: g.conditionContext } : {}) }
  if (g.expiresAt !== undefined) tupleKey.expires_at = new Date(g.expiresAt).toISOString()
  const grantedAt = g.insertedAt
  let verdict: GrantVerdict
  if (g.lastUsedAt !== null && g.lastUsedAt >= cutoff) verdict = 'used within the window'
  else if (grantedAt.getTime() >= cutoff) verdict = 'granted within the window'
  else verdict = g.lastUsedAt === null ? 'never used' : 'not used within the window'
  const unused = verdict === 'never used' || verdict === 'not used within the window'
  return { tupleKey, grantedAt, lastUsedAt: g.lastUsedAt === null ? null : new Date(g.lastUsedAt), unused, verdict }
}
