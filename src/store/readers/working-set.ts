/**
 * WorkingSet: for stores the tuple index does not hold (too large for its budget, still being
 * built, or the index turned off), the objects and users most recently read, each with its whole
 * tuple list, in one LRU bounded by tuples across stores, and kept in step with each store's
 * changelog. A check of `document:d1#viewer@user:anne` reads d1's tuples once; the next check
 * of d1 (any user, any relation of d1) is answered from memory, and a write to some other
 * object does not throw d1 away, unlike a cache keyed by revision.
 *
 * What an entry holds.
 * - An object (`document:d1`): every tuple `document:d1#*@*`, by relation, when it has at most
 *   `objectLimit` of them (read with one capped `readObject`, or `readObjects` when batched). A larger one (`group:all` with a
 *   million members) is never loaded: a marker says so, and its reads go to the database
 *   relation by relation, as they did before.
 * - A user's list (`document:?#viewer@group:eng#member`): every tuple of one object type and
 *   relation whose user is that subject, as `readStartingWithUser` asks for them; lists longer
 *   than `userListLimit` are read from the database each time and not kept.
 *
 * Freshness. Every request first brings its store's entries to the revision it is bound to
 * (the ChangelogFollower: the changes after the position applied at once; HIGHER_CONSISTENCY
 * binds to the head read afresh, so it sees its write). A change updates the entries it touches
 * (a write replaces the tuple with that key, a delete removes it; an object grown past the
 * limit is dropped) and is ignored when nothing it touches is held. A load from the database
 * reads the newest committed state, at least the revision the entries reflect when it starts;
 * if a change touching the same entry is applied while it is in flight, the load is not kept
 * (its rows may predate the change), so an entry is never older than the changes applied.
 * A store more than `maxChanges` behind (a replica cut off for long) forgets its entries and
 * starts again from the request's revision. A load never replaces an entry held meanwhile: what
 * is held already reflects every change applied, and may be newer than the load's rows.
 *
 * Bounds. The entries: `maxTuples` units across stores, a tuple one unit plus one per 256 bytes
 * of its condition context. The per-store state (the follower, and the keys recent catch-ups
 * touched, kept only while loads are in flight): at most `maxStores` stores, the least recently
 * read forgotten past it. A deleted store (dropStore) is refused (store_id_not_found), also to
 * requests that began before the deletion, and never takes state again.
 *
 * Expiry. Entries hold every stored tuple with its `expiresAt` (they are loaded at instant 0,
 * expired-but-unswept rows included) and each request filters by its own clock, as the
 * datastore's reader does; the sweeper's deletes arrive as changes.
 *
 * Lists handed to readers are never changed afterwards: a change builds new lists (copy on
 * write), so a request iterating one across `await`s sees one state of it.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import { PembaError } from '../../core/errors.ts'
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { Datastore, Revision, TupleChange, TupleReader, TupleStore } from '../store.ts'
import { ChangelogFollower, tupleOfChange } from './changelog-follower.ts'

/** The part of the datastore the working set reads: loads, and the changelog. */
export type WorkingSetSource = Pick<TupleStore, 'reader'> & Pick<Datastore, 'readChanges'>

export interface WorkingSetOptions {
  datastore: WorkingSetSource
  /**
   * The most units held across stores: each entry counts one, and each of its tuples one plus
   * one per 256 bytes of condition context (a tuple with a 32 KiB context weighs 129).
   */
  maxTuples: number
  /** The most stores whose state (follower, recent touched keys) is kept (default 10,000). */
  maxStores?: number
  /** Objects with more tuples than this are not held (default 256). */
  objectLimit?: number
  /** A user's list longer than this is not held (default 1,024). */
  userListLimit?: number
  /** Changes read per page while catching up (default 1,000). */
  pageSize?: number
  /** More changes than this behind: the store's entries are forgotten (default 10,000). */
  maxChanges?: number
  /**
   * Gather the object loads asked for in one turn of the event loop (a walk's level: the
   * engine evaluates sibling branches concurrently, across requests too) into one `readObjects`
   * statement per store and object type. Worth it where a read is a round trip (PostgreSQL);
   * SQLite answers each read in microseconds and its engine walks one branch at a time, so
   * there it would only add a turn of the loop (default: false).
   */
  batch?: boolean
}

/** The counters /metrics reports (pemba_cache_* with cache="tuple"). */
export interface WorkingSetStats {
  hits: number
  misses: number
  /** Entries held (objects, huge-object markers and user lists). */
  entries: number
  /** Units held (tuples, weighted by their condition contexts): the unit of the bound. */
  tuples: number
  capacity: number
  /** Loads not kept: a change touched their entry while they were in flight, or a later load was kept first. */
  discardedLoads: number
  /** Statements that loaded objects: `readObject` calls, and `readObjects` calls when batched. */
  objectLoads: number
  /** Stores whose entries were forgotten because they fell too far behind. */
  resets: number
}

const EMPTY: readonly Tuple[] = Object.freeze([])

/** One object's tuples, by relation. */
interface ObjectEntry {
  kind: 'object'
  relations: ReadonlyMap<string, readonly Tuple[]>
  count: number
  /** Its weight in the bound (see tupleUnits). */
  units: number
  /** Whether any tuple expires (then readers filter by their clock). */
  expiring: boolean
}

/** An object with more than objectLimit tuples: read from the database. */
interface HugeEntry {
  kind: 'huge'
}

/** One user's tuples of one (object type, relation). */
interface UserEntry {
  kind: 'user'
  tuples: readonly Tuple[]
  units: number
  expiring: boolean
}

type Entry = ObjectEntry | HugeEntry | UserEntry

const HUGE: HugeEntry = Object.freeze({ kind: 'huge' })

/**
 * How many recent catch-ups remember the keys they touched, and how many keys at most, for the
 * loads in flight (a load begun before the oldest one remembered is simply not kept).
 */
const TOUCHED_BATCHES = 64
const TOUCHED_KEYS = 20_000
/** The most ids in one readObjects call: a list-objects level of thousands is several statements. */
const BATCH_IDS = 500
/** How many deleted stores are remembered, to refuse them (a store id never comes back). */
const DROPPED_REMEMBERED = 10_000

/** The answer for a store deleted while a request was reading it (as the service's storeNotFound). */
const storeGone = () => new PembaError('store_id_not_found', 'Store ID not found')

/** The key of an object entry: `<store> o document:d1`. */
const objectKey = (storeId: string, objectType: string, objectId: string) => `${storeId}\u0000o\u0000${objectType}:${objectId}`

/** The key of a user entry: `<store> u document#viewer@group:eng#member`. */
const userKey = (storeId: string, objectType: string, relation: string, u: Subject) =>
  `${storeId}\u0000u\u0000${objectType}#${relation}@${u.type}:${u.id}#${u.relation}`

const sameUser = (a: Tuple, b: Tuple) => a.userId === b.userId && a.userType === b.userType && a.userRelation === b.userRelation

/** One store's follower and what loads in flight need to know about the catch-ups since they began. */
class StoreState {
  readonly follower: ChangelogFollower
  /** Catch-up batches applied so far (each recorded with the keys it touched). */
  batch = 0
  /** Bumped when the store's entries are forgotten: loads begun earlier are not kept. */
  epoch = 0
  readonly touched: { batch: number; keys: Set<string> }[] = []
  touchedKeys = 0
  /** Loads begun and not yet kept or discarded: while none is, no catch-up need record its keys. */
  inflight = 0

  constructor(follower: ChangelogFollower) {
    this.follower = follower
  }

  /** Whether a load of `key` begun at (epoch, batch) may be kept. */
  mayKeep(key: string, epoch: number, batch: number): boolean {
    if (epoch !== this.epoch) return false
    if (batch === this.batch) return true
    if (this.touched.length === 0 || this.touched[0].batch > batch + 1) return false
    for (const t of this.touched) if (t.batch > batch && t.keys.has(key)) return false
    return true
  }
}

export class WorkingSet {
  readonly #ds: WorkingSetSource
  readonly #lru: LRUCache<string, Entry>
  readonly #objectLimit: number
  readonly #userListLimit: number
  readonly #pageSize: number
  readonly #maxChanges: number
  readonly #stores: LRUCache<string, StoreState>
  /** Stores deleted (dropStore): refused, and never given state again. */
  readonly #dropped = new LRUCache<string, true>({ max: DROPPED_REMEMBERED })
  /**
   * Object loads in flight, shared by the requests asking at once while no catch-up has been
   * applied since the load began (a request caught up past a later change must not take the
   * rows of a load that may predate it).
   */
  readonly #loading = new Map<string, { st: StoreState; epoch: number; batch: number; entry: Promise<Entry> }>()
  readonly #batch: boolean
  /** Object loads waiting for the end of this turn of the event loop, by store and object type. */
  readonly #pending = new Map<string, PendingBatch>()
  hits = 0
  misses = 0
  /** Statements that loaded objects (one per batch when batching), for tests and stats. */
  #loads = 0
  #discarded = 0
  #resets = 0

  constructor(options: WorkingSetOptions) {
    this.#ds = options.datastore
    this.#objectLimit = Math.max(1, options.objectLimit ?? 256)
    this.#userListLimit = Math.max(1, options.userListLimit ?? 1024)
    this.#pageSize = Math.max(1, options.pageSize ?? 1000)
    this.#maxChanges = Math.max(1, options.maxChanges ?? 10_000)
    this.#batch = options.batch ?? false
    this.#lru = new LRUCache<string, Entry>({
      maxSize: Math.max(1, options.maxTuples),
      sizeCalculation: (e) => (e.kind === 'huge' ? 1 : e.units + 1),
    })
    this.#stores = new LRUCache<string, StoreState>({
      max: Math.max(1, options.maxStores ?? 10_000),
      // An evicted store is forgotten as a reset forgets it; its loads in flight are not kept
      // (their state is no longer the store's), and its next request starts afresh.
      dispose: (st, storeId, reason) => {
        if (reason !== 'evict') return
        st.epoch++
        this.#forget(storeId)
      },
    })
  }

  /**
   * reader brings the store's entries to `revision` (a revision committed before the call) and
   * returns a reader over them at the instant `now`; reads the working set cannot answer go to
   * `fallback`, the datastore's reader bound to the request.
   */
  async reader(storeId: string, revision: Revision, now: number, fallback: TupleReader): Promise<WorkingSetReader> {
    if (this.#dropped.has(storeId)) throw storeGone()
    let st = this.#stores.get(storeId)
    if (!st) {
      st = new StoreState(
        new ChangelogFollower({ datastore: this.#ds, storeId, pageSize: this.#pageSize, maxChanges: this.#maxChanges }),
      )
      // Nothing is held yet: every load reads the database, which is at least at `revision`.
      st.follower.start(revision)
      this.#stores.set(storeId, st)
    }
    // Every waiter of one catch-up that fell too far behind hears so: the first to resume resets
    // the store (to its revision), the others see the epoch moved and catch up from there.
    for (let tries = 0; tries < 3 && st.follower.revision < revision; tries++) {
      const state = st
      const epoch = state.epoch
      const result = await state.follower.catchUp(revision, (changes) => this.#apply(storeId, state, changes))
      if (this.#dropped.has(storeId)) throw storeGone()
      if (this.#stores.peek(storeId) !== state) break // evicted meanwhile: its loads are not kept
      if (result === 'too-far-behind' && state.epoch === epoch) this.#reset(storeId, state, revision)
    }
    // Still behind after that (others kept resetting to older revisions): start afresh here.
    if (st.follower.revision < revision && this.#stores.peek(storeId) === st) this.#reset(storeId, st, revision)
    return new WorkingSetReader(this, st, storeId, now, fallback)
  }

  /** #reset forgets the store's entries (loads in flight are not kept) and restarts at `revision`. */
  #reset(storeId: string, st: StoreState, revision: Revision): void {
    this.#forget(storeId)
    this.#resets++
    st.epoch++
    st.touched.length = 0
    st.touchedKeys = 0
    st.follower.start(revision)
  }

  /** The store's entries reflect every change up to this revision (for tests). */
  revision(storeId: string): Revision | undefined {
    return this.#stores.peek(storeId)?.follower.revision
  }

  stats(): WorkingSetStats {
    return {
      hits: this.hits,
      misses: this.misses,
      entries: this.#lru.size,
      tuples: this.#lru.calculatedSize,
      capacity: this.#lru.maxSize,
      discardedLoads: this.#discarded,
      objectLoads: this.#loads,
      resets: this.#resets,
    }
  }

  /** Stores whose state is kept (for tests). */
  get storeCount(): number {
    return this.#stores.size
  }

  /**
   * dropStore forgets a deleted store's entries and its follower, and refuses the store from
   * now on: a request that read its head just before the deletion gets store_id_not_found.
   */
  dropStore(storeId: string): void {
    this.#dropped.set(storeId, true)
    const st = this.#stores.peek(storeId)
    if (st) st.epoch++
    this.#stores.delete(storeId)
    this.#forget(storeId)
  }

  #forget(storeId: string): void {
    const prefix = `${storeId}\u0000`
    const doomed: string[] = []
    for (const key of this.#lru.keys()) if (key.startsWith(prefix)) doomed.push(key)
    for (const key of doomed) this.#lru.delete(key)
  }

  /** Whether `st` is still the store's state; throws store_id_not_found for a deleted store. */
  #current(storeId: string, st: StoreState): boolean {
    if (this.#stores.peek(storeId) === st) return true
    if (this.#dropped.has(storeId)) throw storeGone()
    return false
  }

  /** #apply makes a catch-up's changes true of the entries held; the rest are ignored. */
  #apply(storeId: string, st: StoreState, changes: TupleChange[]): void {
    // A state evicted (or dropped) during its catch-up: the entries held now are a newer state's,
    // which an old change must not touch (it would undo a later one that state already has).
    if (this.#stores.peek(storeId) !== st) return
    const keys = new Set<string>()
    for (const c of changes) {
      const t = tupleOfChange(c)
      const user = { type: t.userType, id: t.userId, relation: t.userRelation }
      const write = c.operation === 'write'
      const ok = objectKey(storeId, c.objectType, c.objectId)
      const uk = userKey(storeId, c.objectType, c.relation, user)
      keys.add(ok)
      keys.add(uk)
      const o = this.#lru.peek(ok)
      if (o?.kind === 'object') {
        const next = withObjectChange(o, t, write)
        if (next.count > this.#objectLimit) this.#lru.set(ok, HUGE)
        else this.#lru.set(ok, next) // too heavy for the bound: lru-cache drops it
      } else if (o?.kind === 'huge' && !write) {
        // It may fit again: the next read finds out.
        this.#lru.delete(ok)
      }
      const u = this.#lru.peek(uk)
      if (u?.kind === 'user') {
        const rest = u.tuples.filter((x) => x.objectId !== t.objectId)
        if (write) rest.push(t)
        if (rest.length > this.#userListLimit) this.#lru.delete(uk)
        else this.#lru.set(uk, userEntry(rest))
      }
    }
    st.batch++
    if (st.inflight === 0) {
      // No load began before this catch-up: none will ask which keys it touched.
      st.touched.length = 0
      st.touchedKeys = 0
      return
    }
    st.touched.push({ batch: st.batch, keys })
    st.touchedKeys += keys.size
    while (st.touched.length > TOUCHED_BATCHES || (st.touched.length > 1 && st.touchedKeys > TOUCHED_KEYS)) {
      st.touchedKeys -= st.touched.shift()!.keys.size
    }
  }

  /** object returns an object's entry, loading it (once, shared) when it is not held. */
  object(st: StoreState, storeId: string, objectType: string, objectId: string): Entry | Promise<Entry> {
    const key = objectKey(storeId, objectType, objectId)
    const held = this.#lru.get(key)
    if (held) {
      this.hits++
      return held
    }
    this.misses++
    this.#current(storeId, st)
    const inflight = this.#loading.get(key)
    if (inflight && inflight.st === st && inflight.epoch === st.epoch && inflight.batch === st.batch) return inflight.entry
    const loading = { st, epoch: st.epoch, batch: st.batch, entry: this.#loadObject(st, storeId, key, objectType, objectId) }
    this.#loading.set(key, loading)
    const forget = () => {
      if (this.#loading.get(key) === loading) this.#loading.delete(key)
    }
    loading.entry.then(forget, forget)
    return loading.entry
  }

  async #loadObject(st: StoreState, storeId: string, key: string, objectType: string, objectId: string): Promise<Entry> {
    const { epoch, batch } = st
    st.inflight++
    try {
      const tuples = await this.#fetch(st, storeId, objectType, objectId)
      const entry: Entry = tuples ? objectEntry(tuples) : HUGE
      // Held meanwhile (a later load, kept up to date since): at least as new as these rows.
      if (this.#lru.has(key)) {
        this.#discarded++
        return entry
      }
      if (this.#current(storeId, st) && st.mayKeep(key, epoch, batch)) this.#lru.set(key, entry)
      else this.#discarded++
      return entry
    } finally {
      st.inflight--
    }
  }

  /**
   * #fetch reads one object, capped at objectLimit, at instant 0 (every stored row, expired ones
   * included; each request filters by its own clock): at once, or with the others asked for in
   * this turn of the event loop (see WorkingSetOptions.batch).
   */
  #fetch(st: StoreState, storeId: string, objectType: string, objectId: string): Promise<Tuple[] | undefined> {
    const reader = this.#ds.reader(storeId, st.follower.revision, 0)
    if (!this.#batch || !reader.readObjects) {
      this.#loads++
      return reader.readObject(objectType, objectId, this.#objectLimit)
    }
    const k = `${storeId}\u0000${objectType}`
    let b = this.#pending.get(k)
    if (!b) {
      const pending: PendingBatch = { waiting: new Map() }
      this.#pending.set(k, pending)
      setImmediate(() => {
        this.#pending.delete(k)
        this.#flush(st, storeId, objectType, pending)
      })
      b = pending
    }
    const batch = b
    return new Promise((resolve, reject) => {
      const waiting = batch.waiting.get(objectId)
      if (waiting) waiting.push({ resolve, reject })
      else batch.waiting.set(objectId, [{ resolve, reject }])
    })
  }

  /**
   * #flush sends one batch: a readObjects call per BATCH_IDS ids (the pool bounds how many run at
   * once). It runs in setImmediate: whatever throws is handed to the waiters, never left uncaught.
   */
  #flush(st: StoreState, storeId: string, objectType: string, b: PendingBatch): void {
    const settle = (ids: string[], objects: Map<string, Tuple[] | undefined> | undefined, err?: unknown) => {
      for (const id of ids) {
        for (const w of b.waiting.get(id)!) {
          if (objects) w.resolve(objects.has(id) ? objects.get(id) : [])
          else w.reject(err)
        }
      }
    }
    const ids = [...b.waiting.keys()]
    for (let i = 0; i < ids.length; i += BATCH_IDS) {
      const chunk = ids.slice(i, i + BATCH_IDS)
      try {
        this.#loads++
        // The revision read now: at least that of every load in the batch when it was asked for.
        const reader = this.#ds.reader(storeId, st.follower.revision, 0)
        reader.readObjects!(objectType, chunk, this.#objectLimit).then(
          (objects) => settle(chunk, objects),
          (err: unknown) => settle(chunk, undefined, err),
        )
      } catch (err) {
        settle(chunk, undefined, err)
      }
    }
  }

  /**
   * startingWithUsers answers `readStartingWithUser` from the users' lists held, reading the
   * others in one call (the datastore groups them by kind: one `IN`/`ANY` statement each).
   */
  async startingWithUsers(st: StoreState, storeId: string, objectType: string, relation: string, users: Subject[], now: number): Promise<Tuple[]> {
    const out: Tuple[] = []
    const missing: Subject[] = []
    const seen = new Set<string>() // a subject asked twice is answered once, as the datastore does
    for (const u of users) {
      const key = userKey(storeId, objectType, relation, u)
      if (seen.has(key)) continue
      seen.add(key)
      const e = this.#lru.get(key)
      if (e?.kind === 'user') {
        this.hits++
        pushLive(out, e.tuples, e.expiring, now)
      } else {
        this.misses++
        missing.push(u)
      }
    }
    if (missing.length === 0) return out
    this.#current(storeId, st)
    const { epoch, batch } = st
    st.inflight++
    try {
      const reader = this.#ds.reader(storeId, st.follower.revision, 0)
      const rows = await reader.readStartingWithUser(objectType, relation, missing)
      const byUser = new Map<string, Tuple[]>()
      for (const u of missing) byUser.set(userKey(storeId, objectType, relation, u), [])
      for (const t of rows) {
        byUser.get(userKey(storeId, objectType, relation, { type: t.userType, id: t.userId, relation: t.userRelation }))?.push(t)
      }
      const keep = this.#current(storeId, st)
      for (const [key, list] of byUser) {
        const entry = userEntry(list)
        pushLive(out, list, entry.expiring, now)
        if (list.length > this.#userListLimit) continue
        if (keep && !this.#lru.has(key) && st.mayKeep(key, epoch, batch)) this.#lru.set(key, entry)
        else this.#discarded++
      }
      return out
    } finally {
      st.inflight--
    }
  }
}

/** The object loads of one store and object type waiting for the end of this turn of the loop. */
interface PendingBatch {
  waiting: Map<string, { resolve: (tuples: Tuple[] | undefined) => void; reject: (err: unknown) => void }[]>
}

/** pushLive appends the tuples that have not expired at `now`. */
function pushLive(out: Tuple[], tuples: readonly Tuple[], expiring: boolean, now: number): void {
  if (!expiring) {
    for (const t of tuples) out.push(t)
    return
  }
  for (const t of tuples) if (t.expiresAt === undefined || t.expiresAt > now) out.push(t)
}

function live(tuples: readonly Tuple[], expiring: boolean, now: number): Tuple[] {
  if (!expiring) return tuples as Tuple[]
  return tuples.filter((t) => t.expiresAt === undefined || t.expiresAt > now)
}

/** The weight of each tuple with a condition context, measured once. */
const contextUnits = new WeakMap<Tuple, number>()

/**
 * tupleUnits: a tuple's weight in the bound, one plus one per 256 bytes of its condition
 * context (`{"ip":"10.0.0.0/8"}` weighs 2; a 32 KiB context, the most a write accepts, 129).
 */
function tupleUnits(t: Tuple): number {
  if (t.conditionContext === undefined) return 1
  let units = contextUnits.get(t)
  if (units === undefined) {
    units = 1 + Math.ceil(JSON.stringify(t.conditionContext).length / 256)
    contextUnits.set(t, units)
  }
  return units
}

function unitsOf(tuples: readonly Tuple[]): number {
  let units = 0
  for (const t of tuples) units += tupleUnits(t)
  return units
}

function userEntry(tuples: readonly Tuple[]): UserEntry {
  return { kind: 'user', tuples, units: unitsOf(tuples), expiring: tuples.some((x) => x.expiresAt !== undefined) }
}

function objectEntry(tuples: readonly Tuple[]): ObjectEntry {
  const relations = new Map<string, Tuple[]>()
  let expiring = false
  for (const t of tuples) {
    const list = relations.get(t.relation)
    if (list) list.push(t)
    else relations.set(t.relation, [t])
    if (t.expiresAt !== undefined) expiring = true
  }
  return { kind: 'object', relations, count: tuples.length, units: unitsOf(tuples), expiring }
}

/** withObjectChange: a new entry with `t` written (replacing the tuple of its key) or deleted. */
function withObjectChange(o: ObjectEntry, t: Tuple, write: boolean): ObjectEntry {
  const relations = new Map(o.relations)
  const before = relations.get(t.relation) ?? EMPTY
  const rest = before.filter((x) => !sameUser(x, t))
  if (write) rest.push(t)
  if (rest.length) relations.set(t.relation, rest)
  else relations.delete(t.relation)
  let expiring = false
  for (const list of relations.values()) for (const x of list) if (x.expiresAt !== undefined) expiring = true
  const units = o.units - unitsOf(before) + unitsOf(rest)
  return { kind: 'object', relations, count: o.count - before.length + rest.length, units, expiring }
}

/**
 * WorkingSetReader answers one request from the working set at the request's instant; what it
 * does not hold (a huge object's relations) is read through the request's datastore reader.
 */
export class WorkingSetReader implements TupleReader {
  readonly #ws: WorkingSet
  /** The store's state this request caught up with (no longer the store's once it is dropped). */
  readonly #st: StoreState
  readonly #store: string
  readonly #now: number
  readonly #fallback: TupleReader

  constructor(ws: WorkingSet, st: StoreState, storeId: string, now: number, fallback: TupleReader) {
    this.#ws = ws
    this.#st = st
    this.#store = storeId
    this.#now = now
    this.#fallback = fallback
  }

  async #object(objectType: string, objectId: string): Promise<ObjectEntry | undefined> {
    const e = await this.#ws.object(this.#st, this.#store, objectType, objectId)
    return e.kind === 'object' ? e : undefined
  }

  #relation(o: ObjectEntry, relation: string): Tuple[] {
    const list = o.relations.get(relation)
    return list ? live(list, o.expiring, this.#now) : []
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const o = await this.#object(objectType, objectId)
    if (!o) return this.#fallback.readObject(objectType, objectId, limit)
    const out: Tuple[] = []
    for (const list of o.relations.values()) pushLive(out, list, o.expiring, this.#now)
    return out.length > limit ? undefined : out
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const o = await this.#object(objectType, objectId)
    if (!o) return this.#fallback.readObjectRelation(objectType, objectId, relation)
    return this.#relation(o, relation)
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const o = await this.#object(objectType, objectId)
    if (!o) return this.#fallback.readUsers(objectType, objectId, relation, users)
    const out: Tuple[] = []
    for (const t of this.#relation(o, relation)) {
      for (const u of users) {
        if (t.userId === u.id && t.userType === u.type && t.userRelation === u.relation) {
          out.push(t)
          break
        }
      }
    }
    return out
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const o = await this.#object(objectType, objectId)
    if (!o) return this.#fallback.readUsersets(objectType, objectId, relation)
    return this.#relation(o, relation).filter((t) => t.userRelation !== '')
  }

  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#ws.startingWithUsers(this.#st, this.#store, objectType, relation, users, this.#now)
  }
}
