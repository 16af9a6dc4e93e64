/**
 * StoreTupleIndex: one store's tuples in the compact form of compact-segment.ts, plus the
 * changes since that segment was built, plus a bounded cache of lists turned back into tuples.
 *
 * The changes (the "delta") are held as overrides: for each object relation a change touched
 * (`document:d1#viewer`), its whole current list of tuples; for each user of a relation a change
 * touched (`document#viewer` ← `group:eng#member`), the whole list of its tuples. A read looks
 * at the override first, then the segment. Because an override is the whole truth for its key,
 * it does not depend on the segment below it: a merge builds a new segment from the old one
 * with a snapshot of the overrides applied (in slices, in the background), and on swapping it in
 * drops exactly the overrides still equal to the snapshot. Changes applied during the merge made
 * new overrides, which stay. A reader therefore sees the same tuples before, during and after a
 * merge, and a list handed out is never changed (every override is a new array). An override
 * emptied by a delete is dropped when the segment (and the merge in flight) has nothing under
 * its key, so ids that come and go (`document:tmp-1#viewer@user:session-1`, then its delete)
 * leave nothing behind; the empty ones that must stay count towards the next merge, which drops
 * them and the ids of the tuples gone.
 *
 * A merge starts when the overrides hold more tuples plus keys, both directions counted, than
 * max(`mergeAfter`, an eighth of the segment). Overrides are `Tuple` objects (~100 bytes each
 * against ~40 in the segment), and a merge builds a second segment beside the first until it is
 * swapped in: memory the index's tuple budget does not see.
 *
 * Readers still get `Tuple` objects (the engine and the decision log's witness use them): a list
 * read from the segment is materialised and kept in a bounded cache of recently read lists
 * (ListCache), which a change to its key removes. A list longer than `cacheTuples` is not cached:
 * it is materialised at each read, work in proportion to the answer. The few reads that need a
 * small part of a long list do not materialise it: one user is found by binary search
 * (`findUser`), the usersets (`group:eng#member`) of an object relation by the kinds' runs
 * (`usersetList`).
 *
 * @module
 */
import { parseSubject, type Subject, type Tuple } from '../../core/tuple.ts'
import type { Revision, TupleChange } from '../ports.ts'
import type { ChangelogFollower } from './changelog-follower.ts'
import { NameTables, Pacer, Segment, SegmentBuilder, type Run, type TupleExtra } from './compact-segment.ts'

/** The lists above this length get a by-user map when a request asks for single users. */
const USER_MAP_MIN = 16

export interface CompactIndexTuning {
  /** Tuples plus keys in overrides beyond which a merge starts (at least; also an eighth of the segment). */
  mergeAfter: number
  /** Entries sorted or copied between two looks at the clock (Pacer). */
  slice: number
  /** Milliseconds a build or merge holds the event loop before it yields (0: at every slice). */
  sliceMs: number
  /** Tuples of materialised lists kept per cache and generation; longer lists are not cached. */
  cacheTuples: number
  /** Lists longer than this are cached apart, least recently used first out (ListCache). */
  longList: number
  /** Segment runs longer than this are searched for one user instead of being materialised. */
  searchRuns: number
}

export const DEFAULT_TUNING: CompactIndexTuning = { mergeAfter: 4096, slice: 1024, sliceMs: 4, cacheTuples: 32_768, longList: 4096, searchRuns: USER_MAP_MIN }

/**
 * The tuples of one object relation (`document:d1#viewer`) or of one user in one relation: a list
 * that never changes, with what readers ask of it computed once.
 */
export class TupleList {
  readonly tuples: readonly Tuple[]
  /** Whether any tuple here expires (then readers filter by their clock). */
  readonly expiring: boolean
  #byUser: Map<string, Tuple> | undefined
  #usersets: TupleList | undefined

  constructor(tuples: readonly Tuple[]) {
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

  /** The usersets of the list (`group:eng#member`, not `user:anne`). */
  usersetList(): TupleList {
    return (this.#usersets ??= new TupleList(this.tuples.filter((t) => t.userRelation !== '')))
  }
}

function userKey(type: string, id: string, relation: string): string {
  return relation === '' ? `${type}:${id}` : `${type}:${id}#${relation}`
}

const EMPTY_LIST = new TupleList(Object.freeze([]))

/**
 * ListCache: materialised lists by (slot, id), two generations of up to `cacheTuples` tuples
 * each. A long list (a group of 10,000 members) is kept apart, least recently used first out,
 * up to `2 × cacheTuples` tuples, so that reading it often does not turn the generations over at
 * every read of a short one. A list longer than `cacheTuples` (every `document` `user:*` may
 * view, 300,000 of them) is not admitted there, so two hot long lists always fit together and do
 * not evict each other at every read; the one huge list read last is kept in a slot of its own,
 * so that one hot huge list is not rebuilt at every read (two read in turn still are). At most
 * `4 × cacheTuples` tuples (plus one list per generation) and that one huge list are held.
 */
class ListCache {
  readonly #cacheTuples: number
  readonly #longList: number
  #young: (Map<string, TupleList> | undefined)[] = []
  #old: (Map<string, TupleList> | undefined)[] = []
  #held = 0
  /** Long lists by `slot id`, least recently used first. */
  readonly #long = new Map<string, TupleList>()
  #longHeld = 0
  /** The huge list (over `cacheTuples`) read last, by `slot id`. */
  #huge: { key: string; list: TupleList } | undefined

  constructor(cacheTuples: number, longList: number) {
    this.#cacheTuples = cacheTuples
    this.#longList = longList
  }

  get(slot: number, id: string): TupleList | undefined {
    const young = this.#young[slot]?.get(id)
    if (young) return young
    const old = this.#old[slot]?.get(id)
    if (old) {
      this.set(slot, id, old)
      return old
    }
    if (this.#long.size === 0 && this.#huge === undefined) return undefined
    const key = `${slot} ${id}`
    if (this.#huge?.key === key) return this.#huge.list
    const long = this.#long.get(key)
    if (long) {
      this.#long.delete(key)
      this.#long.set(key, long)
    }
    return long
  }

  set(slot: number, id: string, list: TupleList): void {
    const length = list.tuples.length
    if (length > this.#cacheTuples) {
      this.#huge = { key: `${slot} ${id}`, list }
      return
    }
    if (length > this.#longList) {
      const key = `${slot} ${id}`
      this.#longHeld += length - (this.#long.get(key)?.tuples.length ?? 0)
      this.#long.delete(key)
      this.#long.set(key, list)
      for (const [k, v] of this.#long) {
        if (this.#longHeld <= this.#cacheTuples * 2 || k === key) break
        this.#long.delete(k)
        this.#longHeld -= v.tuples.length
      }
      return
    }
    if (this.#held >= this.#cacheTuples) {
      this.#old = this.#young
      this.#young = []
      this.#held = 0
    }
    ;(this.#young[slot] ??= new Map()).set(id, list)
    this.#held += list.tuples.length + 1
  }

  delete(slot: number, id: string): void {
    this.#young[slot]?.delete(id)
    this.#old[slot]?.delete(id)
    if (this.#long.size === 0 && this.#huge === undefined) return
    const key = `${slot} ${id}`
    if (this.#huge?.key === key) this.#huge = undefined
    const long = this.#long.get(key)
    if (long) {
      this.#long.delete(key)
      this.#longHeld -= long.tuples.length
    }
  }
}

/** Overrides by slot (an orel, or a user slot) and id: the whole current list of the key. */
type Overrides = (Map<string, TupleList> | undefined)[]

function extraOf(t: Tuple): TupleExtra | undefined {
  if (t.conditionName === '' && t.conditionContext === undefined && t.expiresAt === undefined) return undefined
  return { conditionName: t.conditionName, conditionContext: t.conditionContext, expiresAt: t.expiresAt }
}

/** What a store's index holds beside its segment (tests assert its bounds, benchmarks print it). */
export interface StoreIndexCounts {
  segmentTuples: number
  /** Distinct id strings of the segment (the ids of deleted tuples go at the next merge). */
  segmentIds: number
  /** Override keys, both directions (`document:d1#viewer`, `document#viewer ← user:anne`). */
  overrideKeys: number
  /** Tuples in overrides, both directions. */
  overrideTuples: number
  /** Tuples turned back into objects from the segment since the index was made. */
  materialised: number
}

export class StoreTupleIndex {
  readonly names = new NameTables()
  /** Where the index stands in the store's changelog. */
  readonly follower: ChangelogFollower
  size = 0
  /** The size the budget has been charged for (`size` moves first while catching up). */
  counted = 0
  /** Built: from now on changes go to overrides. */
  live = false
  /** Dropped: a merge in flight stops. */
  dead = false
  merges = 0
  readonly #tuning: CompactIndexTuning
  #base: Segment
  #builder: SegmentBuilder | undefined
  readonly #objects: Overrides = []
  readonly #users: Overrides = []
  #overrideKeys = 0
  #overrideTuples = 0
  #materialised = 0
  #merging: Promise<void> | undefined
  /** The merge in flight's snapshot of the object overrides (its new segment holds their keys). */
  #snapshot: Overrides | undefined
  readonly #objectCache: ListCache
  readonly #userCache: ListCache
  readonly #usersetCache: ListCache

  constructor(follower: ChangelogFollower, tuning: Partial<CompactIndexTuning> = {}) {
    this.follower = follower
    this.#tuning = { ...DEFAULT_TUNING, ...tuning }
    const { cacheTuples, longList } = this.#tuning
    this.#objectCache = new ListCache(cacheTuples, longList)
    this.#userCache = new ListCache(cacheTuples, longList)
    this.#usersetCache = new ListCache(cacheTuples, longList)
    this.#builder = new SegmentBuilder(this.names)
    this.#base = new Segment(this.names, [], new Map(), new Int32Array(0), new Int32Array(0), new Int32Array(0), new Int32Array(0), new Int32Array(1), new Map())
  }

  /** Every change up to this revision is applied. */
  get revision(): Revision {
    return this.follower.revision
  }

  /** add appends a tuple of the build's pages (before `finishBuild`). */
  add(t: Tuple): void {
    const orel = this.names.internOrel(t.objectType, t.relation)
    const kind = this.names.internKind(t.userType, t.userRelation)
    this.#builder!.add(orel, t.objectId, kind, t.userId, extraOf(t))
    this.size++
  }

  /** finishBuild sorts the pages read into the first segment. */
  async finishBuild(): Promise<void> {
    this.#base = await this.#builder!.finish(this.#pacer())
    this.#builder = undefined
  }

  #pacer(): Pacer {
    return new Pacer(this.#tuning.slice, this.#tuning.sliceMs)
  }

  counts(): StoreIndexCounts {
    return {
      segmentTuples: this.#base.size,
      segmentIds: this.#base.strings.length,
      overrideKeys: this.#overrideKeys,
      overrideTuples: this.#overrideTuples,
      materialised: this.#materialised,
    }
  }

  /** A merge in flight, if any (tests and benchmarks wait for it). */
  get merging(): Promise<void> | undefined {
    return this.#merging
  }

  // --- reads -----------------------------------------------------------------------------------

  #materialise(p: number, orel: number): Tuple {
    const base = this.#base
    const names = this.names
    const kind = base.kind[p]
    const extra = base.extras.size === 0 ? undefined : base.extras.get(p)
    this.#materialised++
    const t: Tuple = {
      objectType: names.orelType[orel],
      objectId: base.strings[base.obj[p]],
      relation: names.orelRelation[orel],
      userType: names.kindType[kind],
      userId: base.strings[base.uid[p]],
      userRelation: names.kindRelation[kind],
      conditionName: extra ? extra.conditionName : '',
      conditionContext: extra?.conditionContext,
    }
    if (extra?.expiresAt !== undefined) t.expiresAt = extra.expiresAt
    return t
  }

  #objectRunList(orel: number, run: Run): TupleList {
    const tuples: Tuple[] = []
    for (let p = run.start; p < run.end; p++) tuples.push(this.#materialise(p, orel))
    return new TupleList(tuples)
  }

  /** objectList: the tuples of `type:id#relation` as orel (undefined or empty when none). */
  objectList(orel: number, objectId: string): TupleList | undefined {
    const override = this.#objects[orel]?.get(objectId)
    if (override) return override
    let list = this.#objectCache.get(orel, objectId)
    if (list) return list
    const run = this.#base.objectRun(orel, objectId)
    if (!run) return undefined
    list = this.#objectRunList(orel, run)
    this.#objectCache.set(orel, objectId, list)
    return list
  }

  /**
   * usersetList: the usersets of `type:id#relation` (`group:eng#member`), without materialising
   * the rest of a long list: within an object run the segment is sorted by user kind, so each
   * userset kind is one sub-run.
   */
  usersetList(orel: number, objectId: string): TupleList | undefined {
    const whole = this.#objects[orel]?.get(objectId) ?? this.#objectCache.get(orel, objectId)
    if (whole) return whole.usersetList()
    let list = this.#usersetCache.get(orel, objectId)
    if (list) return list
    const run = this.#base.objectRun(orel, objectId)
    if (!run) return undefined
    const tuples: Tuple[] = []
    const kindRelation = this.names.kindRelation
    for (let kind = 0; kind < kindRelation.length; kind++) {
      if (kindRelation[kind] === '') continue
      const sub = this.#base.kindRun(run, kind)
      if (sub) for (let p = sub.start; p < sub.end; p++) tuples.push(this.#materialise(p, orel))
    }
    list = tuples.length ? new TupleList(tuples) : EMPTY_LIST
    this.#usersetCache.set(orel, objectId, list)
    return list
  }

  /**
   * findUser: the tuple `orel(objectId)@u`, or undefined. A long list of the segment is searched
   * for the one user instead of being materialised whole.
   */
  findUser(orel: number, objectId: string, u: Subject): Tuple | undefined {
    const override = this.#objects[orel]?.get(objectId)
    if (override) return override.find(u)
    const cached = this.#objectCache.get(orel, objectId)
    if (cached) return cached.find(u)
    const run = this.#base.objectRun(orel, objectId)
    if (!run) return undefined
    if (run.end - run.start <= this.#tuning.searchRuns) {
      const list = this.#objectRunList(orel, run)
      this.#objectCache.set(orel, objectId, list)
      return list.find(u)
    }
    const kind = this.names.kind(u.type, u.relation)
    if (kind === undefined) return undefined
    const p = this.#base.find(run, kind, u.id)
    return p === -1 ? undefined : this.#materialise(p, orel)
  }

  /** userList: the tuples `orel(?)@kind:userId` (the objects one user reaches directly). */
  userList(orel: number, kind: number, userId: string): TupleList | undefined {
    const slot = this.names.slot(orel, kind)
    const override = this.#users[slot]?.get(userId)
    if (override) return override
    let list = this.#userCache.get(slot, userId)
    if (list) return list
    const run = this.#base.userRun(orel, kind, userId)
    if (!run) return undefined
    const by = this.#base.byUser
    const tuples: Tuple[] = []
    for (let j = run.start; j < run.end; j++) tuples.push(this.#materialise(by[j], orel))
    list = new TupleList(tuples)
    this.#userCache.set(slot, userId, list)
    return list
  }

  // --- changes ---------------------------------------------------------------------------------

  /** apply makes one changelog entry true of the index: a write replaces, a delete removes. */
  apply(c: TupleChange): void {
    const user = parseSubject(c.user)
    if (!user) throw new Error(`changelog entry with an invalid user: ${c.user}`)
    const names = this.names
    const orel = names.internOrel(c.objectType, c.relation)
    const kind = names.internKind(user.type, user.relation)
    const slot = names.slot(orel, kind)
    let written: Tuple | undefined
    if (c.operation === 'write') {
      written = {
        objectType: names.orelType[orel],
        objectId: c.objectId,
        relation: names.orelRelation[orel],
        userType: names.kindType[kind],
        userId: user.id,
        userRelation: names.kindRelation[kind],
        conditionName: c.conditionName,
        conditionContext: c.conditionContext,
      }
      if (c.expiresAt !== undefined) written.expiresAt = c.expiresAt
    }
    const sameUser = (t: Tuple) => t.userId === user.id && t.userType === user.type && t.userRelation === user.relation
    const before = this.objectList(orel, c.objectId)?.tuples ?? EMPTY_LIST.tuples
    // Every tuple of the key goes, as in the datastore: a duplicate must not survive as a ghost.
    const after = before.filter((t) => !sameUser(t))
    const removed = before.length - after.length
    if (removed === 0 && !written) return
    if (written) after.push(written)
    this.size += (written ? 1 : 0) - removed
    // An emptied key needs an (empty) override only while something below it still has tuples.
    const objectHidden = this.#base.objectRun(orel, c.objectId) !== undefined || this.#snapshot?.[orel]?.has(c.objectId) === true
    this.#override(this.#objects, orel, c.objectId, after.length ? new TupleList(after) : objectHidden ? EMPTY_LIST : undefined)
    this.#objectCache.delete(orel, c.objectId)
    this.#usersetCache.delete(orel, c.objectId)

    const ofUser = this.userList(orel, kind, user.id)?.tuples ?? EMPTY_LIST.tuples
    const reached = ofUser.filter((t) => t.objectId !== c.objectId)
    if (written) reached.push(written)
    const userHidden = this.#base.userRun(orel, kind, user.id) !== undefined || this.#merging !== undefined
    this.#override(this.#users, slot, user.id, reached.length ? new TupleList(reached) : userHidden ? EMPTY_LIST : undefined)
    this.#userCache.delete(slot, user.id)
  }

  /** #override sets (or, with undefined, removes) one key's override and counts it. */
  #override(side: Overrides, slot: number, id: string, list: TupleList | undefined): void {
    const overrides = (side[slot] ??= new Map())
    const previous = overrides.get(id)
    if (previous) {
      this.#overrideKeys--
      this.#overrideTuples -= previous.tuples.length
    }
    if (!list) {
      overrides.delete(id)
      return
    }
    overrides.set(id, list)
    this.#overrideKeys++
    this.#overrideTuples += list.tuples.length
  }

  /** applyAll applies a catch-up's changes in order, then starts a merge if the overrides are large. */
  applyAll(changes: TupleChange[]): void {
    for (const c of changes) this.apply(c)
    const pending = this.#overrideKeys + this.#overrideTuples
    if (this.live && !this.#merging && pending > Math.max(this.#tuning.mergeAfter, this.#base.size / 8)) {
      this.#merging = this.#merge().finally(() => {
        this.#merging = undefined
        this.#snapshot = undefined
      })
    }
  }

  /**
   * #merge folds a snapshot of the overrides into a new segment and swaps it in (module comment).
   * The snapshot is taken at once (both directions must be of one instant); every later pass
   * yields through a Pacer. The old segment is copied as integers: each id string is interned
   * once through `remap` (old id → new id), and only the ids still used are carried over.
   */
  async #merge(): Promise<void> {
    const objects = this.#objects.map((m) => m && new Map(m))
    const users = this.#users.map((m) => m && new Map(m))
    this.#snapshot = objects
    const old = this.#base
    const names = this.names
    const builder = new SegmentBuilder(names)
    const pacer = this.#pacer()
    const remap = new Int32Array(old.strings.length).fill(-1)
    const idOf = (o: number) => (remap[o] !== -1 ? remap[o] : (remap[o] = builder.intern(old.strings[o])))
    const orels = names.orels
    for (let orel = 0; orel < orels && orel + 1 < old.orelStart.length; orel++) {
      const overridden = objects[orel]
      const end = old.orelStart[orel + 1]
      let last = -1
      let skipping = false
      for (let p = old.orelStart[orel]; p < end; p++) {
        const obj = old.obj[p]
        if (obj !== last) {
          last = obj
          skipping = overridden?.has(old.strings[obj]) ?? false
        }
        if (skipping) continue
        builder.addInterned(orel, idOf(obj), old.kind[p], idOf(old.uid[p]), old.extras.size === 0 ? undefined : old.extras.get(p))
        if (pacer.due()) {
          await pacer.pause()
          if (this.dead) return
        }
      }
    }
    for (let orel = 0; orel < objects.length; orel++) {
      for (const [objectId, list] of objects[orel] ?? []) {
        for (const t of list.tuples) {
          builder.add(orel, objectId, names.internKind(t.userType, t.userRelation), t.userId, extraOf(t))
          if (pacer.due()) {
            await pacer.pause()
            if (this.dead) return
          }
        }
      }
    }
    const merged = await builder.finish(pacer)
    if (this.dead) return
    this.#base = merged
    this.#snapshot = undefined
    // Drop the overrides the new segment now holds. Those changed since the snapshot stay; until
    // its turn an unchanged one still says what the segment says, so this pass may yield.
    for (const [now, then] of [[this.#objects, objects], [this.#users, users]] as const) {
      for (let slot = 0; slot < then.length; slot++) {
        const current = now[slot]
        for (const [id, list] of then[slot] ?? []) {
          if (current?.get(id) === list) this.#override(now, slot, id, undefined)
          if (pacer.due()) await pacer.pause()
        }
      }
    }
    this.merges++
  }
}
