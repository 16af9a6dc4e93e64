/**
 * The storage contract. The engine reads tuples only through `TupleReader`, bound to one store
 * and one revision; everything else (stores, models, writes, changes, assertions) goes through
 * `Datastore`. Every method is async, even over better-sqlite3, so that PostgreSQL implements the
 * same interfaces without touching the engine.
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import type { AuthorizationModel } from '../model/types.ts'
import type {
  DecisionLogSettings,
  DecisionQuery,
  GrantUse,
  GrantWithUsage,
  GrantsQuery,
  IdentityGrantStats,
  IdentityStatsQuery,
  StoredDecision,
} from './audit.ts'

/** Revision counts the committed writes of one store; a reader bound to r sees at least r. */
export type Revision = number

/**
 * TupleReader answers the look-ups the evaluator needs. No ordering is guaranteed. Readers
 * return the tuples as stored (with their `expiresAt`), except expired ones: a reader bound to
 * `now` never returns a tuple whose `expiresAt <= now`, whether or not the sweeper has deleted
 * it yet. Filtering by the current model is the engine's job.
 */
export interface TupleReader {
  /**
   * readObject: every tuple of one object (`document:1#*@*`), or undefined when it has more than
   * `limit` of them; lets a request answer all its questions about a small object in one read.
   */
  readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined>
  /** readObjectRelation: every tuple `objectType:objectId#relation@*`, e.g. all parents of document:1. */
  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]>
  /**
   * readUsers: the tuples `objectType:objectId#relation@u` for each u in users, matched exactly
   * (a subject `user:*` matches only the wildcard tuple), e.g. users [user:anne, user:*] finds
   * `document:1#viewer@user:anne` and `document:1#viewer@user:*`.
   */
  readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]>
  /** readUsersets: the tuples of `objectType:objectId#relation` whose user is a userset (`group:eng#member`). */
  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]>
  /**
   * readStartingWithUser: the tuples `objectType:?#relation@u` for each u in users, e.g.
   * (document, viewer, [group:eng#member]) finds every document the members of group:eng view
   * directly.
   */
  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]>
  /**
   * Set by a reader that holds the tuples in memory (the tuple index): the same reads, answered
   * without a promise. The engine uses them when present, one await fewer per read.
   */
  readonly immediate?: ImmediateReads
}

/** ImmediateReads: TupleReader's hot reads, answered at once (same arguments, same answers). */
export interface ImmediateReads {
  readObjectRelationNow(objectType: string, objectId: string, relation: string): Tuple[]
  readUsersNow(objectType: string, objectId: string, relation: string, users: Subject[]): Tuple[]
  readUsersetsNow(objectType: string, objectId: string, relation: string): Tuple[]
  readStartingWithUserNow(objectType: string, relation: string, users: Subject[]): Tuple[]
}

export interface StoreRecord {
  id: string
  name: string
  createdAt: Date
  updatedAt: Date
  deletedAt: Date | null
}

export interface Page<T> {
  items: T[]
  /** An opaque store-specific cursor, or '' when there is nothing more. */
  next: string
}

/** StoredTuple is a tuple with the time it was written (the Read API's `timestamp`). */
export interface StoredTuple extends Tuple {
  insertedAt: Date
}

/** TupleChange is one changelog entry. */
export interface TupleChange {
  /** The change's position in the store's changelog: its revision, then its order within it. */
  revision: number
  seq: number
  objectType: string
  objectId: string
  relation: string
  user: string
  conditionName: string
  conditionContext: Record<string, unknown> | undefined
  /** On a write: when the written tuple expires (ms since the epoch); undefined = never. */
  expiresAt?: number
  operation: 'write' | 'delete'
  timestamp: Date
}

/** ReadFilter selects tuples for the Read API; unset fields match anything. */
export interface ReadFilter {
  objectType?: string
  objectId?: string
  relation?: string
  userType?: string
  userId?: string
  userRelation?: string
}

/** TupleIdentity is the key of a tuple, without its condition or expiry: what a delete names. */
export type TupleIdentity = Omit<Tuple, 'conditionName' | 'conditionContext' | 'expiresAt'>

export interface WriteRequest {
  deletes: TupleIdentity[]
  writes: Tuple[]
  onMissing: 'error' | 'ignore'
  onDuplicate: 'error' | 'ignore'
}

export interface ChangesQuery {
  objectType?: string
  /** A cursor from an earlier page; takes precedence over startTime. */
  after?: string
  startTime?: Date
  pageSize: number
}

/** The states of a just-in-time access request. */
export type AccessRequestStatus = 'pending' | 'approved' | 'denied' | 'expired'

/** AccessRequestEvent is one state change of an access request: what, who, when, why. */
export interface AccessRequestEvent {
  type: 'created' | 'approved' | 'denied' | 'expired'
  /** Who: the requester, the approver, or `pemba` for expiry. */
  actor: string
  at: Date
  reason: string
}

/**
 * AccessRequestRecord is a just-in-time access request as stored: the tuple it asks for
 * (`namespace:production#deployer@service_account:ci`), for how long, and its history. `status`
 * is as stored: a `pending` request whose `pendingUntil` has passed is expired even before the
 * sweeper marks it so (the service presents it that way).
 */
export interface AccessRequestRecord {
  storeId: string
  id: string
  objectType: string
  objectId: string
  relation: string
  /** The requested user, a single identity (`service_account:ci`). */
  user: string
  durationMs: number
  reason: string
  status: AccessRequestStatus
  createdAt: Date
  /** When a request still pending expires. */
  pendingUntil: Date
  /** Once approved: when the granted tuple expires. */
  grantExpiresAt: Date | null
  /** Oldest first; the first is always `created`. */
  events: AccessRequestEvent[]
}

/**
 * What approving or denying found: done, or the request was not pending at `now` (its
 * effective status says why, `missing` when there is no such request), or (approve only) the
 * tuple already exists with a condition, which a grant must not silently replace.
 */
export type AccessRequestDecision =
  | { ok: true; revision: Revision }
  | { ok: false; status: Exclude<AccessRequestStatus, 'pending'> | 'missing' }
  | { ok: false; status: 'pending'; conflict: string }

/** Who expires a request nobody decided on in time (the actor of its `expired` event). */
export const EXPIRY_ACTOR = 'pemba'

/**
 * effectiveStatus is a stored status as of `now` (ms): a pending request past its
 * `pendingUntil` is expired, whether or not the sweeper has marked it so yet.
 */
export function effectiveStatus(
  status: AccessRequestStatus,
  pendingUntil: number,
  now: number,
): AccessRequestStatus {
  return status === 'pending' && pendingUntil <= now ? 'expired' : status
}

export interface AccessRequestQuery {
  /**
   * Effective status at `now`: `pending` excludes requests past their `pendingUntil`, and
   * `expired` includes them.
   */
  status?: AccessRequestStatus
  now: number
  pageSize: number
  after?: string
}

/**
 * TokenIssuerRecord is a token issuer a store trusts for token-native checks
 * (`PUT /stores/{store}/token-issuers/{name}`): its name in the store, the `iss` its tokens carry,
 * and the rest of its validated configuration (audience, keys, subject and actor types, scope
 * map) as a JSON document the service owns.
 */
export interface TokenIssuerRecord {
  storeId: string
  name: string
  issuer: string
  config: Record<string, unknown>
  createdAt: Date
  updatedAt: Date
}

/**
 * What putting a token issuer found: stored (created, or replaced keeping its `createdAt`), or
 * refused with nothing changed: the store does not exist, another issuer of the store already
 * has this `iss` (tokens would be ambiguous), or the store already has `limit` issuers.
 */
export type TokenIssuerPut =
  | { ok: true; created: boolean; record: TokenIssuerRecord }
  | { ok: false; reason: 'store_missing' }
  | { ok: false; reason: 'issuer_taken'; by: string }
  | { ok: false; reason: 'limit' }

export interface TokenIssuerInput {
  storeId: string
  name: string
  issuer: string
  config: Record<string, unknown>
  /** The most issuers one store may have; creating one more is refused. */
  limit: number
}

export interface Datastore {
  readonly dialect: 'sqlite' | 'postgres'
  /** How many sibling subproblems the engine should evaluate at once over this store. */
  readonly preferredConcurrency: number

  createStore(id: string, name: string, now: Date): Promise<StoreRecord>
  getStore(id: string): Promise<StoreRecord | undefined>
  listStores(q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>>
  /** deleteStore soft-deletes; deleting a missing store is not an error. */
  deleteStore(id: string, now: Date): Promise<void>

  writeModel(storeId: string, model: AuthorizationModel, now: Date): Promise<void>
  readModel(storeId: string, id: string): Promise<AuthorizationModel | undefined>
  /** latestModelId is the id of the store's newest model, without reading the model itself. */
  latestModelId(storeId: string): Promise<string | undefined>
  listModels(storeId: string, q: { pageSize: number; after?: string }): Promise<Page<AuthorizationModel>>

  /**
   * write applies deletes then writes in one transaction, assigns the store's next revision and
   * records each change in the changelog. Throws PembaError on a missing delete or duplicate
   * write (per onMissing/onDuplicate) and ConflictError when `ignore` meets the same tuple with
   * a different condition; nothing is written then.
   */
  write(storeId: string, req: WriteRequest, now: Date): Promise<Revision>
  /** read pages the tuples matching `filter`, hiding those expired at `now` (ms). */
  read(
    storeId: string,
    filter: ReadFilter,
    q: { pageSize: number; after?: string },
    now: number,
  ): Promise<Page<StoredTuple>>
  readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>>

  headRevision(storeId: string): Promise<Revision>
  /**
   * reader reads the store's tuples as of `revision` (or newer) at the instant `now` (ms since
   * the epoch): tuples with `expiresAt <= now` are invisible to it.
   */
  reader(storeId: string, revision: Revision, now: number): TupleReader

  /**
   * sweepExpired deletes up to `limit` tuples (across stores) that expired at or before `now`,
   * one transaction per store touched, and records each removal in the changelog as a delete
   * under a new revision of its store. Safe to run on several replicas at once: a tuple is
   * deleted, and its delete recorded, once. Returns how many tuples it deleted; fewer than
   * `limit` means none were left.
   */
  sweepExpired(now: Date, limit: number): Promise<number>

  createAccessRequest(r: AccessRequestRecord): Promise<void>
  /** getAccessRequest returns the stored request with its events, or undefined. */
  getAccessRequest(storeId: string, id: string): Promise<AccessRequestRecord | undefined>
  /** listAccessRequests pages a store's requests, oldest first, by effective status. */
  listAccessRequests(storeId: string, q: AccessRequestQuery): Promise<Page<AccessRequestRecord>>
  /**
   * approveAccessRequest, in one transaction: if the request is pending at `now`, grants
   * `tuple` (which carries its `expiresAt`) under a new revision recorded in the changelog, marks
   * the request approved with `grantExpiresAt = tuple.expiresAt` and appends `event`; otherwise
   * changes nothing. Granting a tuple that already exists without a condition keeps the later
   * expiry (an unexpiring tuple stays as it is); an expired one not yet swept is replaced.
   */
  approveAccessRequest(
    storeId: string,
    id: string,
    tuple: Tuple,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision>
  /** denyAccessRequest marks a request pending at `now` denied and appends `event`. */
  denyAccessRequest(
    storeId: string,
    id: string,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision>
  /**
   * expireAccessRequests marks up to `limit` requests still pending at `now` past their
   * `pendingUntil` as expired, each with an `expired` event by `pemba` at its `pendingUntil`.
   * Returns how many it marked.
   */
  expireAccessRequests(now: Date, limit: number): Promise<number>

  /**
   * putTokenIssuer creates or replaces a store's token issuer, in one transaction that also
   * checks the store exists and no other issuer of it has the same `iss` (concurrent puts to one
   * store take turns, so two can never both claim one `iss`).
   */
  putTokenIssuer(input: TokenIssuerInput, now: Date): Promise<TokenIssuerPut>
  getTokenIssuer(storeId: string, name: string): Promise<TokenIssuerRecord | undefined>
  /** listTokenIssuers returns all of a store's issuers (at most the put limit), by name. */
  listTokenIssuers(storeId: string): Promise<TokenIssuerRecord[]>
  /** deleteTokenIssuer removes an issuer; false when there was none of that name. */
  deleteTokenIssuer(storeId: string, name: string): Promise<boolean>

  writeAssertions(storeId: string, modelId: string, assertions: unknown[]): Promise<void>
  readAssertions(storeId: string, modelId: string): Promise<unknown[] | undefined>

  // --- audit (see audit.ts) ----------------------------------------------------------------

  /**
   * appendDecisions writes a batch of decisions and the grant uses they carry in one
   * transaction (PostgreSQL: one multi-row insert over `unnest`; SQLite: prepared inserts, from
   * a worker thread when the database is a file), the uses as upserts that keep the latest
   * `last_used_at` of each tuple.
   */
  appendDecisions(decisions: StoredDecision[], uses: GrantUse[]): Promise<void>
  /** listDecisions pages a store's decisions matching the filter, newest (highest id) first. */
  listDecisions(storeId: string, q: DecisionQuery): Promise<Page<StoredDecision>>
  /** deleteDecisionsBefore deletes up to `limit` decisions (any store) made before `before` (ms). */
  deleteDecisionsBefore(before: number, limit: number): Promise<number>
  /**
   * forgetGrantUsage deletes up to `limit` grant_usage rows last used before `before` whose
   * tuple no longer exists (the usage of a deleted grant outlives it by the retention period).
   */
  forgetGrantUsage(before: number, limit: number): Promise<number>
  getDecisionLogSettings(storeId: string): Promise<DecisionLogSettings | undefined>
  putDecisionLogSettings(storeId: string, settings: DecisionLogSettings): Promise<void>
  /**
   * listGrants pages the live tuples whose user is exactly `user` (`agent:x`, `agent:*` or
   * `team:eng#member`), by object type, object id and relation, each with its last use.
   */
  listGrants(storeId: string, user: Subject, q: GrantsQuery): Promise<Page<GrantWithUsage>>
  /**
   * identityGrantStats pages every identity of `userType` that holds live tuples, with its grant
   * count and unused count, ordered by unused share (unused / grants) descending, then identity.
   */
  identityGrantStats(storeId: string, userType: string, q: IdentityStatsQuery): Promise<Page<IdentityGrantStats>>

  close(): Promise<void>
}
