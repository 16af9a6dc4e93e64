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
 * Memory. Tuples are held compactly (compact-segment.ts: ids interned to integers, both
 * directions in typed arrays, about 40–50 bytes a tuple with its strings). `maxTuples` bounds the
 * tuples held across all stores. A store that does not fit, or outgrows the budget later, is not
 * indexed (its requests read the datastore) until `retryMs` has passed. Not counted by the
 * budget (compact-store-index.ts): the changes since the last merge, held as `Tuple` lists
 * (~100 bytes a tuple, up to about an eighth of the store before a merge starts); while a merge
 * runs, the second segment it builds; and the bounded caches of lists read (~40 MiB at most per
 * store). Ids that come and go leave nothing behind: an emptied key is dropped, or cleared by
 * the next merge, which also drops the ids of the tuples gone.
 *
 * Expiry. Tuples are held with their `expiresAt` and filtered by each request's clock, as the
 * datastore's reader does; the sweeper's deletes reach the index through the changelog.
 *
 * Arrays handed to readers are never changed afterwards: a change makes new lists for the keys
 * it touches (copy on write), so a request iterating a list across `await`s sees one state of
 * it.
 *
 * @module
 */
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { Datastore, ImmediateReads, Revision, TupleReader } from '../store.ts'
import { ChangelogFollower } from './changelog-follower.ts'
import { DEFAULT_TUNING, StoreTupleIndex, type CompactIndexTuning, type StoreIndexCounts, type TupleList } from './compact-store-index.ts'
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
  /** When changes are merged into the compact form, and in what slices (tests make them small). */
  tuning?: Partial<CompactIndexTuning>
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
  /** Background merges of changes into the compact form. */
  merges: number
}

const EMPTY: readonly Tuple[] = Object.freeze([])

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
  readonly #tuning: CompactIndexTuning
  readonly #stores = new Map<string, StoreState>()
  /** Tuples held or being read by builds, across stores. */
  #held = 0
  #builds = 0
  #fallbacks = 0
  /** Catch-ups and changes of indexes dropped since (live ones are counted by their followers). */
  #catchUps = 0
  #changesApplied = 0
  #merges = 0

  constructor(options: TupleIndexOptions) {
    this.#ds = options.datastore
    this.#maxTuples = Math.max(0, options.maxTuples)
    this.#pageSize = Math.max(1, options.pageSize ?? 5000)
    this.#retryMs = options.retryMs ?? 60_000
    this.#now = options.now ?? Date.now
    this.#onError = options.onError ?? (() => {})
    this.#tuning = { ...DEFAULT_TUNING, ...options.tuning }
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

  /** merged waits for the store's merge in flight, if any (tests and benchmarks). */
  async merged(storeId: string): Promise<void> {
    const state = this.#stores.get(storeId)
    if (state?.kind === 'ready') await state.index.merging
  }

  /** merging: whether a merge of the store's changes is in flight (tests). */
  merging(storeId: string): boolean {
    const state = this.#stores.get(storeId)
    return state?.kind === 'ready' && state.index.merging !== undefined
  }

  /** counts: what a ready store's index holds beside its segment (tests assert its bounds). */
  counts(storeId: string): StoreIndexCounts | undefined {
    const state = this.#stores.get(storeId)
    return state?.kind === 'ready' ? state.index.counts() : undefined
  }

  /** drop forgets a store (deleted): its memory is released at once. */
  drop(storeId: string): void {
    const state = this.#stores.get(storeId)
    if (state?.kind === 'ready') {
      state.index.dead = true
      this.#merges += state.index.merges
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
    let merges = this.#merges
    for (const s of this.#stores.values()) {
      if (s.kind !== 'ready') continue
      stores++
      merges += s.index.merges
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
      merges,
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
      this.#tuning,
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
      await index.finishBuild()
      if (!current()) return release()
      index.follower.start(r0)
      release()
      const caughtUp = await index.follower.readNow((changes) => index.applyAll(changes))
      if (!current()) return
      if (caughtUp !== 'applied' || this.#held + index.size > this.#maxTuples) return giveUp()
      index.live = true
      index.applyAll([]) // a merge, if the changes read after the pages were many
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

  /** The revision the index reflects now (it moves on as requests catch it up). */
  get revision(): Revision {
    return this.#index.revision
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
    const index = this.#index
    const lists: TupleList[] = []
    let count = 0
    let expiring = false
    for (const orel of index.names.orelsOfType.get(objectType) ?? []) {
      const list = index.objectList(orel, objectId)
      if (!list || list.tuples.length === 0) continue
      lists.push(list)
      count += list.tuples.length
      expiring ||= list.expiring
    }
    // Expired tuples (not swept yet) do not count towards the limit, as in the datastore.
    if (count > limit && !expiring) return undefined
    const out: Tuple[] = []
    for (const list of lists) out.push(...this.#live(list.tuples, list.expiring))
    return out.length > limit ? undefined : out
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.readObjectRelationNow(objectType, objectId, relation)
  }

  readObjectRelationNow(objectType: string, objectId: string, relation: string): Tuple[] {
    const orel = this.#index.names.orel(objectType, relation)
    const list = orel === undefined ? undefined : this.#index.objectList(orel, objectId)
    return list ? this.#live(list.tuples, list.expiring) : (EMPTY as Tuple[])
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.readUsersNow(objectType, objectId, relation, users)
  }

  readUsersNow(objectType: string, objectId: string, relation: string, users: Subject[]): Tuple[] {
    const orel = this.#index.names.orel(objectType, relation)
    if (orel === undefined) return EMPTY as Tuple[]
    const out: Tuple[] = []
    for (const u of users) {
      const t = this.#index.findUser(orel, objectId, u)
      if (t && this.#counts(t)) out.push(t)
    }
    return out
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.readUsersetsNow(objectType, objectId, relation)
  }

  readUsersetsNow(objectType: string, objectId: string, relation: string): Tuple[] {
    const orel = this.#index.names.orel(objectType, relation)
    const list = orel === undefined ? undefined : this.#index.usersetList(orel, objectId)
    return list ? this.#live(list.tuples, list.expiring) : (EMPTY as Tuple[])
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.readStartingWithUserNow(objectType, relation, users)
  }

  readStartingWithUserNow(objectType: string, relation: string, users: Subject[]): Tuple[] {
    const out: Tuple[] = []
    const index = this.#index
    const orel = index.names.orel(objectType, relation)
    if (orel === undefined) return out
    // The users of one call are mostly of one kind (`group:a#member`, `group:b#member`).
    let type: string | undefined
    let userRelation: string | undefined
    let kind: number | undefined
    for (const u of users) {
      if (u.type !== type || u.relation !== userRelation) {
        type = u.type
        userRelation = u.relation
        kind = index.names.kind(u.type, u.relation)
      }
      if (kind === undefined) continue
      const list = index.userList(orel, kind, u.id)
      if (!list) continue
      for (const t of list.tuples) if (this.#counts(t)) out.push(t)
    }
    return out
  }
}
