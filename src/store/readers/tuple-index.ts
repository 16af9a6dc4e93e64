/**
 * TupleIndex: each store's tuples held in memory, in both directions, and kept in step with the
 * store's changelog. A cold check of a document in a six-deep folder chain asks for a dozen
 * tuple sets; from SQLite each costs 10–35 µs through better-sqlite3, from PostgreSQL a network
 * round trip, and from here a map look-up. It is not a cache of answers: it is a replica of the
 * tuples, as fresh as the revision each request is bound to.
 *
 * Freshness. An index knows the revision it reflects. A request bound to revision r (its
 * store's head, read afresh for HIGHER_CONSISTENCY, or remembered for up to the staleness bound
 * otherwise) is answered only once the index has applied every change up to r: it reads the
 * changelog after its position first (`readChanges`), so a write by this replica, another
 * replica or another process on the same SQLite file is seen as soon as the request's revision
 * includes it.
 *
 * Building. The first request for a store starts a build: the head revision R0 is read, then
 * the tuples page by page (yielding to the event loop between pages, so a large store does not
 * stall the server), then every change after R0. Pages read after R0 may already hold some of
 * those changes; replaying them is harmless because applying a change sets a tuple to what the
 * change says (a write replaces, a delete removes), so each tuple ends as its last change left
 * it. A store whose first page is its whole content is ready for the request that asked; a
 * larger one is read by the datastore's own reader until its build completes.
 *
 * Memory. `maxTuples` bounds the tuples held across all stores (each costs roughly 250–400
 * bytes with both directions). A store that does not fit, or outgrows the budget later, is not
 * indexed (its requests read the datastore) until `retryMs` has passed.
 *
 * Expiry. Tuples are held with their `expiresAt` and filtered by each request's clock, as the
 * datastore's reader does; the sweeper's deletes reach the index through the changelog.
 *
 * Arrays handed to readers are never changed afterwards: once a store is live, a change copies
 * the affected lists (copy on write), so a request iterating a list across `await`s sees one
 * state of it.
 *
 * @module
 */
import { parseSubject, type Subject, type Tuple } from '../../core/tuple.ts'
import type { Datastore, ImmediateReads, Revision, TupleChange, TupleReader } from '../store.ts'
import { ChangelogFollower } from './changelog-follower.ts'
import type { ExpiryBound } from './expiry-tracking.ts'

/** The part of the datastore an index reads. */
export type IndexSource = Pick<Datastore, 'read' | 'readChanges' | 'headRevision'>

export interface TupleIndexOptions {
  datastore: IndexSource
  /** The most tuples held across all stores. */
  maxTuples: number
  /** Tuples (or changes) read per page while building or catching up. */
  pageSize?: number
  /** How long a store that did not fit (or whose build failed) is left to the datastore. */
  retryMs?: number
  /** Wall clock (ms) for `retryMs`. */
  now?: () => number
  /** Told about builds that failed; the store is then read from the datastore. */
  onError?: (storeId: string, err: unknown) => void
}

export interface TupleIndexStats {
  /** Stores answered from memory. */
  stores: number
  /** Tuples held (including expired ones the sweeper has not deleted yet). */
  tuples: number
  builds: number
  /** Catch-ups that applied at least one change. */
  catchUps: number
  changesApplied: number
  /** Requests that read the datastore because their store was not (yet) indexed. */
  fallbacks: number
}

const EMPTY: readonly Tuple[] = Object.freeze([])

/** The lists above this length get a by-user map when a request asks for single users. */
const USER_MAP_MIN = 16

interface BuildingState {
  kind: 'building'
  /** Settles once the first page is read. */
  done: Promise<void>
  /** Settles when the build has ended, whichever way. */
  building: Promise<void>
}

type StoreState =
  | BuildingState
  | { kind: 'ready'; index: StoreTupleIndex }
  | { kind: 'unavailable'; until: number }

export class TupleIndex {
  readonly #ds: IndexSource
  readonly #maxTuples: number
  readonly #pageSize: number
  readonly #retryMs: number
  readonly #now: () => number
  readonly #onError: (storeId: string, err: unknown) => void
  readonly #stores = new Map<string, StoreState>()
  /** Tuples held or being read by builds, across stores. */
  #held = 0
  #builds = 0
  #fallbacks = 0
  /** Catch-ups and changes of indexes dropped since (live ones are counted by their followers). */
  #catchUps = 0
  #changesApplied = 0

  constructor(options: TupleIndexOptions) {
    this.#ds = options.datastore
    this.#maxTuples = Math.max(0, options.maxTuples)
    this.#pageSize = Math.max(1, options.pageSize ?? 5000)
    this.#retryMs = options.retryMs ?? 60_000
    this.#now = options.now ?? Date.now
    this.#onError = options.onError ?? (() => {})
  }

  /**
   * reader returns a reader over the store's tuples at revision `revision` or newer, evaluated at
   * `now`; or undefined when the store is not indexed (yet), and the caller reads the datastore.
   */
  async reader(storeId: string, revision: Revision, now: number): Promise<IndexedTupleReader | undefined> {
    let state = this.#stores.get(storeId)
    if (!state || (state.kind === 'unavailable' && this.#now() >= state.until)) {
      state = this.#build(storeId)
    }
    if (state.kind === 'building') {
      await state.done
      state = this.#stores.get(storeId)
    }
    if (state?.kind !== 'ready') {
      this.#fallbacks++
      return undefined
    }
    const index = state.index
    while (index.revision < revision) {
      await this.#catchUp(storeId, index, revision)
      if (this.#stores.get(storeId) !== state) {
        // Outgrew the budget while catching up.
        this.#fallbacks++
        return undefined
      }
    }
    return new IndexedTupleReader(index, now)
  }

  /**
   * ready waits until the store is indexed (or found not to fit) and says which; a benchmark or
   * an operator's warm-up uses it, requests never wait for a whole build.
   */
  async ready(storeId: string): Promise<boolean> {
    let state = this.#stores.get(storeId)
    if (!state || (state.kind === 'unavailable' && this.#now() >= state.until)) state = this.#build(storeId)
    while (state?.kind === 'building') {
      await state.building
      state = this.#stores.get(storeId)
    }
    return state?.kind === 'ready'
  }

  /** drop forgets a store (deleted): its memory is released at once. */
  drop(storeId: string): void {
    const state = this.#stores.get(storeId)
    if (state?.kind === 'ready') {
      this.#held -= state.index.counted
      this.#catchUps += state.index.follower.catchUps
      this.#changesApplied += state.index.follower.changesApplied
    }
    this.#stores.delete(storeId)
  }

  stats(): TupleIndexStats {
    let stores = 0
    let catchUps = this.#catchUps
    let changesApplied = this.#changesApplied
    for (const s of this.#stores.values()) {
      if (s.kind !== 'ready') continue
      stores++
      catchUps += s.index.follower.catchUps
      changesApplied += s.index.follower.changesApplied
    }
    return {
      stores,
      tuples: this.#held,
      builds: this.#builds,
      catchUps,
      changesApplied,
      fallbacks: this.#fallbacks,
    }
  }

  /**
   * #build starts reading a store. The state's `done` settles after the first page: at once for
   * a store that fits in one page (the state is then ready), otherwise with the rest of the
   * build going on in the background (`building` settles when it ends).
   */
  #build(storeId: string): BuildingState {
    let firstPage!: () => void
    const done = new Promise<void>((resolve) => (firstPage = resolve))
    const state: BuildingState = { kind: 'building', done, building: Promise.resolve() }
    this.#stores.set(storeId, state)
    state.building = this.#load(storeId, state, firstPage).finally(firstPage)
    return state
  }

  async #load(storeId: string, state: BuildingState, firstPage: () => void): Promise<void> {
    const index = new StoreTupleIndex(
      new ChangelogFollower({ datastore: this.#ds, storeId, pageSize: this.#pageSize, maxChanges: this.#maxTuples }),
    )
    const current = () => this.#stores.get(storeId) === state
    let reserved = 0
    const release = () => {
      this.#held -= reserved
      reserved = 0
    }
    const giveUp = () => {
      release()
      if (current()) this.#stores.set(storeId, { kind: 'unavailable', until: this.#now() + this.#retryMs })
    }
    try {
      const r0 = await this.#ds.headRevision(storeId)
      let after: string | undefined
      for (;;) {
        const page = await this.#ds.read(storeId, {}, { pageSize: this.#pageSize, after }, 0)
        for (const t of page.items) index.add(t)
        this.#held += page.items.length
        reserved += page.items.length
        if (this.#held > this.#maxTuples) return giveUp()
        if (page.next === '') break
        after = page.next
        firstPage()
        // Let requests (read from the datastore meanwhile) run between pages.
        await new Promise<void>((resolve) => setImmediate(resolve))
        // Dropped (its store deleted) while building.
        if (!current()) return release()
      }
      index.follower.start(r0)
      release()
      const caughtUp = await index.follower.readNow((changes) => index.applyAll(changes))
      if (!current()) return
      if (caughtUp !== 'applied' || this.#held + index.size > this.#maxTuples) return giveUp()
      index.live = true
      this.#held += index.size
      index.counted = index.size
      this.#builds++
      this.#stores.set(storeId, { kind: 'ready', index })
    } catch (err) {
      giveUp()
      this.#onError(storeId, err)
    }
  }

  /** #catchUp brings a live index to `revision` or newer; one catch-up per store at a time. */
  async #catchUp(storeId: string, index: StoreTupleIndex, revision: Revision): Promise<void> {
    const caughtUp = await index.follower.catchUp(revision, (changes) => index.applyAll(changes))
    const state = this.#stores.get(storeId)
    if (state?.kind !== 'ready' || state.index !== index) return
    this.#held += index.size - index.counted
    index.counted = index.size
    if (caughtUp === 'too-far-behind') this.drop(storeId) // the next request reads it afresh
    else if (this.#held > this.#maxTuples) {
      this.drop(storeId)
      this.#stores.set(storeId, { kind: 'unavailable', until: this.#now() + this.#retryMs })
    }
  }
}

/**
 * The tuples of one object relation (`document:d1#viewer`). `tuples` is only appended to while
 * the index is being built; once live, a change makes a new RelationTuples.
 */
class RelationTuples {
  readonly tuples: Tuple[]
  /** Whether any tuple here expires (then readers filter by their clock). */
  expiring: boolean
  #byUser: Map<string, Tuple> | undefined
  #usersets: Tuple[] | undefined

  constructor(tuples: Tuple[]) {
    this.tuples = tuples
    this.expiring = tuples.some((t) => t.expiresAt !== undefined)
  }

  /** The tuple for one user (`group:eng#member`, `user:*`), by a map once the list is long. */
  find(u: Subject): Tuple | undefined {
    const list = this.tuples
    if (list.length < USER_MAP_MIN) {
      for (const t of list) if (t.userId === u.id && t.userType === u.type && t.userRelation === u.relation) return t
      return undefined
    }
    if (!this.#byUser) {
      this.#byUser = new Map()
      for (const t of list) this.#byUser.set(userKey(t.userType, t.userId, t.userRelation), t)
    }
    return this.#byUser.get(userKey(u.type, u.id, u.relation))
  }

  usersets(): Tuple[] {
    return (this.#usersets ??= this.tuples.filter((t) => t.userRelation !== ''))
  }
}

function userKey(type: string, id: string, relation: string): string {
  return relation === '' ? `${type}:${id}` : `${type}:${id}#${relation}`
}

interface ObjectTuples {
  /** The object's id, shared by its tuples. */
  id: string
  relations: Map<string, RelationTuples>
  count: number
}

/** UsersOf: for one object type, relation, user type and user relation: user id → tuples. */
type UsersOf = Map<string, Tuple[]>

/**
 * StoreTupleIndex holds one store's tuples: by object (`document` → `d1` → relation → tuples)
 * and by user (`document` → `viewer` → `group#member` → `eng` → tuples), sharing the tuple
 * objects and interned strings between them. Nested maps rather than joined keys: a look-up
 * then hashes strings the engine already holds (ids from earlier tuples) instead of a new one.
 */
class StoreTupleIndex {
  readonly objects = new Map<string, Map<string, ObjectTuples>>()
  /** object type → relation → `userType#userRelation` → user id → tuples. */
  readonly byUser = new Map<string, Map<string, Map<string, UsersOf>>>()
  /** Where the index stands in the store's changelog. */
  readonly follower: ChangelogFollower
  size = 0
  /** The size the budget has been charged for (`size` moves first while catching up). */
  counted = 0
  /** Built: from now on lists handed out are never changed (copy on write). */
  live = false
  /**
   * Types, relations and condition names, shared by every tuple that names them. Ids are shared
   * through the structures instead (an object's id from its entry, a user's id from its list),
   * so that nothing here outlives the tuples: a store with churning ids does not grow it.
   */
  readonly #strings = new Map<string, string>()

  constructor(follower: ChangelogFollower) {
    this.follower = follower
  }

  /** Every change up to this revision is applied. */
  get revision(): Revision {
    return this.follower.revision
  }

  #intern(s: string): string {
    const known = this.#strings.get(s)
    if (known !== undefined) return known
    this.#strings.set(s, s)
    return s
  }

  add(source: Tuple): void {
    const objectType = this.#intern(source.objectType)
    const relation = this.#intern(source.relation)
    const userType = this.#intern(source.userType)
    const userRelation = this.#intern(source.userRelation)
    let ofType = this.objects.get(objectType)
    if (!ofType) this.objects.set(objectType, (ofType = new Map()))
    let object = ofType.get(source.objectId)
    if (!object) {
      object = { id: source.objectId, relations: new Map(), count: 0 }
      ofType.set(object.id, object)
    }
    const users = this.#usersOf(objectType, relation, userType, userRelation, true)!
    const list = users.get(source.userId)
    const t: Tuple = {
      objectType,
      objectId: object.id,
      relation,
      userType,
      userId: list ? list[0].userId : source.userId,
      userRelation,
      conditionName: this.#intern(source.conditionName),
      conditionContext: source.conditionContext,
    }
    if (source.expiresAt !== undefined) t.expiresAt = source.expiresAt
    const rel = object.relations.get(t.relation)
    if (!rel) object.relations.set(t.relation, new RelationTuples([t]))
    else if (this.live) object.relations.set(t.relation, new RelationTuples([...rel.tuples, t]))
    else {
      rel.tuples.push(t)
      if (t.expiresAt !== undefined) rel.expiring = true
    }
    object.count++

    if (!list) users.set(t.userId, [t])
    else if (this.live) users.set(t.userId, [...list, t])
    else list.push(t)
    this.size++
  }

  /** usersOf finds (or with `create`, makes) the user id → tuples map of one kind of tuple. */
  #usersOf(objectType: string, relation: string, userType: string, userRelation: string, create: boolean): UsersOf | undefined {
    let relations = this.byUser.get(objectType)
    if (!relations) {
      if (!create) return undefined
      this.byUser.set(objectType, (relations = new Map()))
    }
    let kinds = relations.get(relation)
    if (!kinds) {
      if (!create) return undefined
      relations.set(relation, (kinds = new Map()))
    }
    const kind = this.#intern(`${userType}#${userRelation}`)
    let users = kinds.get(kind)
    if (!users && create) kinds.set(kind, (users = new Map()))
    return users
  }

  /** object returns one object's tuples by relation. */
  object(objectType: string, objectId: string): ObjectTuples | undefined {
    return this.objects.get(objectType)?.get(objectId)
  }

  /** remove deletes the tuple with this key (any condition or expiry); false when absent. */
  remove(k: Omit<Tuple, 'conditionName' | 'conditionContext' | 'expiresAt'>): boolean {
    const object = this.object(k.objectType, k.objectId)
    const rel = object?.relations.get(k.relation)
    if (!object || !rel) return false
    const same = (t: Tuple) => t.userId === k.userId && t.userType === k.userType && t.userRelation === k.userRelation
    const i = rel.tuples.findIndex(same)
    if (i === -1) return false
    const kept = rel.tuples.filter((t) => !same(t))
    if (kept.length) object.relations.set(k.relation, new RelationTuples(kept))
    else object.relations.delete(k.relation)
    object.count -= rel.tuples.length - kept.length
    if (object.count === 0) this.objects.get(k.objectType)!.delete(k.objectId)

    const users = this.#usersOf(k.objectType, k.relation, k.userType, k.userRelation, false)
    const list = users?.get(k.userId)
    if (users && list) {
      const rest = list.filter((t) => t.objectId !== k.objectId)
      if (rest.length) users.set(k.userId, rest)
      else users.delete(k.userId)
    }
    this.size -= rel.tuples.length - kept.length
    return true
  }

  /** apply makes one changelog entry true of the index: a write replaces, a delete removes. */
  apply(c: TupleChange): void {
    const user = parseSubject(c.user)
    if (!user) throw new Error(`changelog entry with an invalid user: ${c.user}`)
    const key = {
      objectType: c.objectType,
      objectId: c.objectId,
      relation: c.relation,
      userType: user.type,
      userId: user.id,
      userRelation: user.relation,
    }
    this.remove(key)
    if (c.operation === 'write') {
      const t: Tuple = { ...key, conditionName: c.conditionName, conditionContext: c.conditionContext }
      if (c.expiresAt !== undefined) t.expiresAt = c.expiresAt
      this.add(t)
    }
  }

  /** applyAll applies a catch-up's changes in order. */
  applyAll(changes: TupleChange[]): void {
    for (const c of changes) this.apply(c)
  }
}

/**
 * IndexedTupleReader answers one request from a store's index, at the request's instant. It can
 * note the earliest expiry among what it returns itself (`trackExpiry`), which costs nothing
 * for lists without expiring tuples; ExpiryTrackingReader (expiry-tracking.ts) does the same for
 * any reader, one layer further out.
 */
export class IndexedTupleReader implements TupleReader, ImmediateReads {
  readonly #index: StoreTupleIndex
  readonly #now: number
  #bound: ExpiryBound | undefined

  constructor(index: StoreTupleIndex, now: number) {
    this.#index = index
    this.#now = now
  }

  get immediate(): ImmediateReads {
    return this
  }

  trackExpiry(bound: ExpiryBound): void {
    this.#bound = bound
  }

  /** #counts: the tuple has not expired; it then bounds the request's answers if it will. */
  #counts(t: Tuple): boolean {
    if (t.expiresAt === undefined) return true
    if (t.expiresAt <= this.#now) return false
    if (this.#bound && t.expiresAt < this.#bound.validUntil) this.#bound.validUntil = t.expiresAt
    return true
  }

  #live(tuples: readonly Tuple[], expiring: boolean): Tuple[] {
    if (!expiring) return tuples as Tuple[]
    return tuples.filter((t) => this.#counts(t))
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const object = this.#index.object(objectType, objectId)
    if (!object) return []
    let expiring = false
    for (const rel of object.relations.values()) expiring ||= rel.expiring
    // Expired tuples (not swept yet) do not count towards the limit, as in the datastore.
    if (object.count > limit && !expiring) return undefined
    const out: Tuple[] = []
    for (const rel of object.relations.values()) out.push(...this.#live(rel.tuples, rel.expiring))
    return out.length > limit ? undefined : out
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.readObjectRelationNow(objectType, objectId, relation)
  }

  readObjectRelationNow(objectType: string, objectId: string, relation: string): Tuple[] {
    const rel = this.#index.object(objectType, objectId)?.relations.get(relation)
    return rel ? this.#live(rel.tuples, rel.expiring) : (EMPTY as Tuple[])
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.readUsersNow(objectType, objectId, relation, users)
  }

  readUsersNow(objectType: string, objectId: string, relation: string, users: Subject[]): Tuple[] {
    const rel = this.#index.object(objectType, objectId)?.relations.get(relation)
    if (!rel) return EMPTY as Tuple[]
    const out: Tuple[] = []
    for (const u of users) {
      const t = rel.find(u)
      if (t && this.#counts(t)) out.push(t)
    }
    return out
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.readUsersetsNow(objectType, objectId, relation)
  }

  readUsersetsNow(objectType: string, objectId: string, relation: string): Tuple[] {
    const rel = this.#index.object(objectType, objectId)?.relations.get(relation)
    return rel ? this.#live(rel.usersets(), rel.expiring) : (EMPTY as Tuple[])
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.readStartingWithUserNow(objectType, relation, users)
  }

  readStartingWithUserNow(objectType: string, relation: string, users: Subject[]): Tuple[] {
    const out: Tuple[] = []
    const kinds = this.#index.byUser.get(objectType)?.get(relation)
    if (!kinds) return out
    // The users of one call are mostly of one kind (`group:a#member`, `group:b#member`).
    let type: string | undefined
    let userRelation: string | undefined
    let ofKind: UsersOf | undefined
    for (const u of users) {
      if (u.type !== type || u.relation !== userRelation) {
        type = u.type
        userRelation = u.relation
        ofKind = kinds.get(`${u.type}#${u.relation}`)
      }
      const list = ofKind?.get(u.id)
      if (!list) continue
      for (const t of list) if (this.#counts(t)) out.push(t)
    }
    return out
  }
}
