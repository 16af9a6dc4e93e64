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

/** Revision counts the committed writes of one store; a reader bound to r sees at least r. */
export type Revision = number

/**
 * TupleReader answers the look-ups the evaluator needs. No ordering is guaranteed. Readers
 * return the tuples as stored; filtering by the current model is the engine's job.
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
  objectType: string
  objectId: string
  relation: string
  user: string
  conditionName: string
  conditionContext: Record<string, unknown> | undefined
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

/** TupleIdentity is the key of a tuple, without its condition: what a delete names. */
export type TupleIdentity = Omit<Tuple, 'conditionName' | 'conditionContext'>

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
  readLatestModel(storeId: string): Promise<AuthorizationModel | undefined>
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
  read(storeId: string, filter: ReadFilter, q: { pageSize: number; after?: string }): Promise<Page<StoredTuple>>
  readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>>

  headRevision(storeId: string): Promise<Revision>
  reader(storeId: string, revision: Revision): TupleReader

  writeAssertions(storeId: string, modelId: string, assertions: unknown[]): Promise<void>
  readAssertions(storeId: string, modelId: string): Promise<unknown[] | undefined>

  close(): Promise<void>
}
