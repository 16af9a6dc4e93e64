/**
 * The storage ports. The engine reads tuples only through `TupleReader`, bound to one store and
 * one revision (this module is where the engine, the tuple index and the readers' decorators
 * import it from); everything else goes through one small port per concern: `StoreCatalog`,
 * `ModelStore`, `TupleStore` (the Read API and readers), `TupleWriter`, `TupleBulkLoader`
 * (imports), `Changelog`, `AssertionStore`, and the feature-owned ports declared next to their services
 * (service/access-request-store.ts, decision-store.ts, token-issuer-store.ts). Every method is
 * async, even over better-sqlite3, so that PostgreSQL implements the same interfaces without
 * touching the engine. store.ts composes them into the `Datastore` the server wires.
 *
 * @module
 */
import type { Subject, Tuple, TupleIdentity } from '../core/tuple.ts'
import type { AuthorizationModel } from '../model/types.ts'
import type { UsersetClosure } from '../model/typesystem.ts'

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
   * readObjects: readObject for several objects of one type in one statement (the datastores'
   * readers; others leave it out): each id maps to its tuples, or to undefined when it has more
   * than `limit` stored rows (expired ones not swept yet count here, unlike readObject's limit;
   * the working set reads at instant 0, where the two agree). The working set gathers the objects a walk's level asks for into one call.
   */
  readObjects?(objectType: string, objectIds: readonly string[], limit: number): Promise<Map<string, Tuple[] | undefined>>
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

/**
 * MembershipReach: the usersets of one closure family that contain a subject, each with the
 * length of its shortest path (0 = a direct tuple) and the tuple it was first reached through
 * (`group:g2#member` → `group:g2#member@group:g1#member`), as the engine's upward walk finds them.
 */
export interface MembershipReach {
  levels: Map<string, number>
  via: Map<string, Tuple>
  truncated: boolean
}

/**
 * MembershipClosureReader: a request's view of the membership closures kept beside the tuple
 * index (Zanzibar's Leopard index, store/readers/membership-closure.ts), bound to the request's
 * revision, instant and contextual tuples. `reachable` answers what walking up from `subject`
 * through the family's tuples would find within `maxLevel` levels, or undefined whenever it
 * cannot answer exactly (being built, over budget, contextual tuples in the family, expired
 * tuples not swept yet, a path as long as the depth limit): the engine then walks. It lowers
 * `bound.validUntil` to the earliest expiry among the family's tuples it relied on.
 */
export interface MembershipClosureReader {
  reachable(family: UsersetClosure, subject: Subject, maxLevel: number, bound: { validUntil: number }): MembershipReach | undefined
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
  /**
   * The page may come from a read replica that has applied this revision of the store (a
   * follower catching up to a request's revision, src/store/readers/changelog-follower.ts);
   * absent: the primary (a build's last read among them). Every revision before a page's last
   * one is whole in it; its last may continue on the next page.
   */
  atLeast?: Revision
}

/** StoreStats: what a store holds, counted for its summary (the console's stores page). */
export interface StoreStats {
  modelCount: number
  /** The newest model's id; undefined when the store has none. */
  latestModelId: string | undefined
  /**
   * The tuples stored and not expired at the instant asked for (expired ones not swept yet are
   * left out), counted up to the cap asked for: at most that cap.
   */
  tupleCount: number
  /** Whether the store holds more live tuples than the cap (then tupleCount is the cap). */
  tupleCountCapped: boolean
  /** When the newest changelog entry was written; undefined when the store has none. */
  lastChangeAt: Date | undefined
}

/** StoreCatalog keeps the stores themselves. */
export interface StoreCatalog {
  createStore(id: string, name: string, now: Date): Promise<StoreRecord>
  getStore(id: string): Promise<StoreRecord | undefined>
  /**
   * storeStats counts a store's models and its tuples live at `now` (ms), the tuples up to
   * `tupleCountCap` (the work is bounded by it), and finds its latest model and last change, in
   * one statement; a store that does not exist counts zero.
   */
  storeStats(id: string, now: number, tupleCountCap: number): Promise<StoreStats>
  listStores(q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>>
  /**
   * deleteStore soft-deletes: from then on every write to the store is refused (its writes check
   * `deleted_at` under the store row's lock), and getStore no longer finds it. Deleting a missing
   * or deleted store is not an error.
   */
  deleteStore(id: string, now: Date): Promise<void>
  /**
   * purgeDeletedStores removes the data of stores deleted at or before `deletedBefore`: up to
   * `limit` rows per call (every per-store table, then the store row itself once nothing of it
   * is left), each statement deleting a bounded batch so none holds a lock for long. Safe on
   * several replicas at once. Returns the rows removed (fewer than `limit`: none are left) and
   * the ids of the stores whose row it removed. `beforeRemove` runs for each store once its
   * rows are gone and before its store row goes: if it fails, the store is still due and the
   * next call runs it again.
   */
  purgeDeletedStores(
    deletedBefore: Date,
    limit: number,
    beforeRemove?: (storeId: string) => Promise<void>,
  ): Promise<{ rows: number; stores: string[] }>
}

/** ModelStore keeps each store's authorization models (immutable, newest id last). */
export interface ModelStore {
  writeModel(storeId: string, model: AuthorizationModel, now: Date): Promise<void>
  readModel(storeId: string, id: string): Promise<AuthorizationModel | undefined>
  /** latestModelId is the id of the store's newest model, without reading the model itself. */
  latestModelId(storeId: string): Promise<string | undefined>
  listModels(storeId: string, q: { pageSize: number; after?: string }): Promise<Page<AuthorizationModel>>
}

/** TupleStore reads the stored tuples: the Read API's pages, and readers bound to a revision. */
export interface TupleStore {
  /** read pages the tuples matching `filter`, hiding those expired at `now` (ms). */
  read(
    storeId: string,
    filter: ReadFilter,
    q: { pageSize: number; after?: string },
    now: number,
  ): Promise<Page<StoredTuple>>
  /**
   * reader reads the store's tuples as of `revision` (or newer) at the instant `now` (ms since
   * the epoch): tuples with `expiresAt <= now` are invisible to it.
   */
  reader(storeId: string, revision: Revision, now: number, options?: ReaderOptions): TupleReader
}

/** How a reader may be served (TupleStore.reader). */
export interface ReaderOptions {
  /**
   * The request accepts a read replica (MINIMIZE_LATENCY): the datastore may answer it from a
   * standby that has applied `revision` of the store (revision 0: one that lags by no more than
   * the staleness bound and has this process's writes to the store). Absent or false
   * (HIGHER_CONSISTENCY, anything a write or a service reads): the primary.
   */
  replica?: boolean
}

/** TupleWriter changes tuples: a Write, and the sweep of expired tuples. */
export interface TupleWriter {
  /**
   * write applies deletes then writes in one transaction, assigns the store's next revision and
   * records each change in the changelog (the rules: store/write-plan.ts). Throws
   * TupleWriteRejected on a missing delete or duplicate write (per onMissing/onDuplicate), or
   * when `ignore` meets the same tuple with a different condition or expiry; nothing is written
   * then.
   */
  write(storeId: string, req: WriteRequest, now: Date): Promise<Revision>
  /**
   * sweepExpired deletes up to `limit` tuples (across stores) that expired at or before `now`,
   * one transaction per store touched, and records each removal in the changelog as a delete
   * under a new revision of its store. Safe to run on several replicas at once: a tuple is
   * deleted, and its delete recorded, once. Returns how many tuples it deleted; fewer than
   * `limit` means none were left.
   */
  sweepExpired(now: Date, limit: number): Promise<number>
}

/** Why a bulk load left a tuple unwritten: the key is live with another condition or expiry. */
export type BulkLoadConflictReason = 'different_condition' | 'different_expiry'

/** What one bulk load did with its tuples. */
export interface BulkLoadResult {
  /** The revision it committed as; when it wrote nothing, the store's head (no new revision). */
  revision: Revision
  /** Tuples inserted (absent, or replacing an expired row not yet swept), each recorded in the changelog. */
  written: number
  /** Tuples stored already identically, or repeating an identical tuple earlier in the load: left as they are. */
  unchanged: number
  /**
   * The tuples left unwritten, by position in the load (ascending): their key is live (stored,
   * or written earlier in the load) with another condition or expiry, which Write refuses under
   * `onDuplicate: 'ignore'`; the rest of the load is written all the same.
   */
  conflicts: { index: number; reason: BulkLoadConflictReason }[]
}

/**
 * TupleBulkLoader writes many new tuples at once: the import path (src/store/sql/bulk.ts).
 * Write's rules with `onDuplicate: 'ignore'`, per tuple instead of per request: a conflict
 * leaves only its tuple unwritten.
 */
export interface TupleBulkLoader {
  /**
   * loadTuples writes `tuples` (validated against the model by the caller) in one transaction
   * under one new revision of the store, recording each tuple written in the changelog as a
   * Write would (an expired row it replaces recorded as a delete first). Nothing written: no
   * new revision. Throws PembaError `store_id_not_found` for a missing store.
   */
  loadTuples(storeId: string, tuples: readonly Tuple[], now: Date): Promise<BulkLoadResult>
}

/** StoreHead: a store's head revision, and whether it was deleted (a store never written: 0, live). */
export interface StoreHead {
  revision: Revision
  deleted: boolean
  /**
   * Set when a read replica answered: how far (ms) it may lag the primary, so the caller counts
   * the head as read that long ago. Absent: the primary answered.
   */
  lagMs?: number
}

/** Changelog: each store's revision and the history of its tuple changes. */
export interface Changelog {
  readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>>
  headRevision(storeId: string): Promise<Revision>
  /**
   * storeHead: headRevision and the deletion mark, in one read of the store row. Given
   * `maxStalenessMs`, a read replica lagging no more than that may answer (see StoreHead.lagMs).
   */
  storeHead(storeId: string, maxStalenessMs?: number): Promise<StoreHead>
}

/** AssertionStore keeps the assertions written for one model of a store (opaque JSON). */
export interface AssertionStore {
  writeAssertions(storeId: string, modelId: string, assertions: unknown[]): Promise<void>
  readAssertions(storeId: string, modelId: string): Promise<unknown[] | undefined>
}

/** How busy a connection pool is (PostgreSQL); a single-connection backend has none. */
export interface PoolStats {
  /** Connections open, idle or in use. */
  total: number
  idle: number
  /** Requests waiting for a connection. */
  waiting: number
}

/**
 * QueryObserver is told how long each datastore operation took (`readObject`, `write`, …) and
 * whether it failed; the metrics' histogram and error counter implement it. Called once per
 * operation, so it must be cheap: SQLite answers in microseconds.
 */
export type QueryObserver = (operation: string, seconds: number, failed: boolean) => void

/** DatastoreHealth: what readiness (`/readyz`) and the pool gauges ask the database. */
export interface DatastoreHealth {
  /**
   * ping resolves once the database answers a trivial query, rejects when it cannot; it may take
   * as long as a connection attempt (the caller bounds its wait: src/service/readiness.ts).
   */
  ping(): Promise<void>
  /** pendingMigrations lists the migrations the database has not applied ([] when its schema is current). */
  pendingMigrations(): Promise<string[]>
  /** The connection pool's state, or undefined when the backend has no pool. */
  poolStats(): PoolStats | undefined
  /** The read replicas' state (PEMBA_DATABASE_READ_URL), or undefined when there are none. */
  readReplicaStats?(): ReadReplicaStats | undefined
}

/** The read replicas (PostgreSQL standbys) and where the reads went, for /metrics. */
export interface ReadReplicaStats {
  standbys: {
    /** `host:port/database`, no credentials. */
    name: string
    up: boolean
    /** How far (s) it may lag the primary, as last measured; undefined before it was measured. */
    lagSeconds: number | undefined
    /** Reads it answered. */
    reads: number
  }[]
  /** Reads that could have gone to a standby and went to the primary (none eligible, or it failed). */
  primaryReads: number
}
