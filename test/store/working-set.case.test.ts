/**
 * The working set (src/store/readers/working-set.ts) against the datastore it mirrors: every
 * read it answers equals what the datastore's own reader answers at the same instant, after
 * changes made through the same handle or another one (another replica, another process on the
 * same SQLite file), with a bound small enough that entries are evicted, objects small enough
 * to be held and others too large to be (read relation by relation from the database), and
 * expiring tuples. Run for SQLite (working-set.test.ts) and PostgreSQL (working-set-postgres).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Subject, Tuple } from '../../src/core/tuple.ts'
import type { Datastore, TupleReader } from '../../src/store/store.ts'
import { WorkingSet } from '../../src/store/readers/working-set.ts'
import {
  NOW,
  T0,
  canon,
  everyRead as everyReadOf,
  full,
  identity,
  random,
  randomWrite as randomWriteTo,
  subjectOf,
  tupleOf,
  useDatastorePair,
  type ReadUniverse,
} from '../helpers/reader-differential.ts'

export interface WorkingSetSuiteOptions {
  name: string
  /** Two handles on one fresh, empty database: `primary` feeds the working set, `other` writes behind its back. */
  open(): Promise<{ primary: Datastore; other: Datastore }>
}

const S = '01HWSWSWSWSWSWSWSWSWSWSWSW'

const OBJECTS = ['document:d1', 'document:d2', 'document:d3', 'folder:f1', 'group:g1', 'group:g2']
const RELATIONS = ['viewer', 'owner', 'parent', 'member']
const USERS = ['user:anne', 'user:bob', 'user:carl', 'user:*', 'group:g1#member', 'group:g2#member', 'folder:f1']
const UNIVERSE: ReadUniverse = {
  objects: OBJECTS,
  relations: RELATIONS,
  users: USERS,
  usersOneByOne: USERS.slice(0, 3),
  types: ['document', 'folder', 'group'],
  smallLimit: 2,
}

/** A random tuple: some with a condition, some expiring (some already expired at NOW, some soon after). */
function randomTuple(rnd: () => number): Tuple {
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]
  const extra: Partial<Tuple> = {}
  if (rnd() < 0.1) extra.conditionName = 'in_hours'
  const e = rnd()
  if (e < 0.1) extra.expiresAt = NOW - 1000
  else if (e < 0.25) extra.expiresAt = NOW + 1 + Math.floor(rnd() * 60_000)
  return tupleOf(pick(OBJECTS), pick(RELATIONS), pick(USERS), extra)
}

/** Every read the engine makes, for every object, relation and user of the universe. */
const everyRead = (reader: TupleReader) => everyReadOf(reader, UNIVERSE)
/** Random writes and deletes in one request, as a client would send them. */
const randomWrite = (ds: Datastore, rnd: () => number, live: Map<string, Tuple>) => randomWriteTo(ds, S, rnd, live, randomTuple)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A reader that delegates every read explicitly (no spread: a class instance's methods live on
 * its prototype) and holds the loads the working set makes (readObject, readObjects,
 * readStartingWithUser) at `hold` after reading, so that a catch-up can happen meanwhile.
 */
class HeldReader implements TupleReader {
  readonly #base: TupleReader
  readonly #hold: () => Promise<unknown>
  readonly readObjects?: TupleReader['readObjects']
  constructor(base: TupleReader, hold: () => Promise<unknown>, readObjects?: TupleReader['readObjects']) {
    this.#base = base
    this.#hold = hold
    const inner = readObjects ?? base.readObjects?.bind(base)
    // Not async: a readObjects that throws at once throws at once here too.
    if (inner) this.readObjects = (t, ids, limit) => inner(t, ids, limit).then(async (rows) => (await hold(), rows))
  }
  readObject(t: string, id: string, limit: number) {
    return this.#base.readObject(t, id, limit).then(async (rows) => (await this.#hold(), rows))
  }
  readObjectRelation(t: string, id: string, relation: string) {
    return this.#base.readObjectRelation(t, id, relation)
  }
  readUsers(t: string, id: string, relation: string, users: Subject[]) {
    return this.#base.readUsers(t, id, relation, users)
  }
  readUsersets(t: string, id: string, relation: string) {
    return this.#base.readUsersets(t, id, relation)
  }
  readStartingWithUser(t: string, relation: string, users: Subject[]) {
    return this.#base.readStartingWithUser(t, relation, users).then(async (rows) => (await this.#hold(), rows))
  }
}

/** The primary's reader and changelog, its loads held by `hold`. */
const heldSource = (ds: Datastore, hold: () => Promise<unknown>, readObjects?: (base: TupleReader) => TupleReader['readObjects']) => ({
  readChanges: (s: string, q: Parameters<Datastore['readChanges']>[1]) => ds.readChanges(s, q),
  reader: (s: string, r: number, now: number) => {
    const base = ds.reader(s, r, now)
    return new HeldReader(base, hold, readObjects?.(base))
  },
})

export function runWorkingSetSuite(opts: WorkingSetSuiteOptions): void {
  describe(`working set: ${opts.name}`, () => {
    let primary: Datastore
    let other: Datastore
    useDatastorePair(opts.open, S, 'working set', (pair) => ({ primary, other } = pair))

    /** The working set's reader at `revision`, over the primary's reader for what it does not hold. */
    const readerOf = (ws: WorkingSet, revision: number, now = NOW) => ws.reader(S, revision, now, primary.reader(S, revision, now))

    // Bounds small enough that this universe exercises every path: objects over the limit
    // (read relation by relation), users' lists over theirs (never held), and evictions.
    for (const [seed, bounds] of [
      [1, { maxTuples: 10_000, objectLimit: 256, userListLimit: 1024 }],
      [2, { maxTuples: 12, objectLimit: 4, userListLimit: 2 }],
      [3, { maxTuples: 40, objectLimit: 6, userListLimit: 3, batch: true }],
    ] as const) {
      it(`answers every read as the datastore does, before and after changes from either handle (seed ${seed}, bound ${bounds.maxTuples})`, async () => {
        const rnd = random(seed)
        const live = new Map<string, Tuple>()
        const ws = new WorkingSet({ datastore: primary, ...bounds, pageSize: 3 })
        let revision = 0
        for (let i = 0; i < 6; i++) revision = await randomWrite(primary, rnd, live)
        for (let round = 0; round < 8; round++) {
          for (const now of [NOW, NOW + 30_000, NOW + 120_000]) {
            const got = await everyRead(await readerOf(ws, revision, now))
            expect(got, `round ${round} at +${now - NOW} ms`).toEqual(await everyRead(primary.reader(S, revision, now)))
          }
          // The next writes from this handle or the other, several revisions between reads.
          for (let w = 0; w < 1 + Math.floor(rnd() * 3); w++) revision = await randomWrite(rnd() < 0.5 ? primary : other, rnd, live)
        }
        expect(await everyRead(await readerOf(ws, revision))).toEqual(await everyRead(primary.reader(S, revision, NOW)))
        expect(ws.revision(S)).toBe(revision)
        const stats = ws.stats()
        expect(stats.tuples).toBeLessThanOrEqual(bounds.maxTuples)
        expect(stats.hits).toBeGreaterThan(0)
      })
    }

    it('keeps what it holds across a write to another object, and sees a write to a held one at the next revision', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000 })
      let r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(canon(await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer'))).toHaveLength(1)
      const misses = ws.stats().misses
      // Another process writes another object, then this one.
      r = await other.write(S, { writes: [tupleOf('document:d2', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(canon(await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer'))).toHaveLength(1)
      expect(ws.stats().misses).toBe(misses) // d1 still held: no read of the database
      r = await other.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const users = await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')
      expect(users.map((t) => t.userId).sort()).toEqual(['anne', 'bob'])
      expect(ws.stats().misses).toBe(misses) // updated in place from the changelog
    })

    it('never keeps (nor shares) a load that a change overtook while it was in flight', async () => {
      // Loads read the primary at once but are held at a gate, so that a catch-up happens meanwhile.
      let open!: () => void
      const gate = new Promise<void>((resolve) => (open = resolve))
      const gated: Pick<Datastore, 'reader' | 'readChanges'> = {
        readChanges: (s, q) => primary.readChanges(s, q),
        reader: (s, r, now) => {
          const base = primary.reader(s, r, now)
          return { ...base, readObject: async (t, id, limit) => base.readObject(t, id, limit).then(async (rows) => (await gate, rows)) } as TupleReader
        },
      }
      const ws = new WorkingSet({ datastore: gated, maxTuples: 1000 })
      let r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const first = await ws.reader(S, r, NOW, primary.reader(S, r, NOW))
      const loading = first.readObjectRelation('document', 'd1', 'viewer')
      await new Promise((resolve) => setTimeout(resolve, 20))
      r = await other.write(S, { writes: [], deletes: [identity(tupleOf('document:d1', 'viewer', 'user:anne'))], onDuplicate: 'error', onMissing: 'error' }, T0)
      const second = await ws.reader(S, r, NOW, primary.reader(S, r, NOW))
      const fresh = second.readObjectRelation('document', 'd1', 'viewer')
      open()
      // The first request read before the delete (its revision allows it); the second never sees anne.
      expect((await loading).map((t) => t.userId)).toEqual(['anne'])
      expect(await fresh).toEqual([])
      expect(ws.stats().discardedLoads).toBe(1)
      const third = await ws.reader(S, r, NOW, primary.reader(S, r, NOW))
      expect(await third.readObjectRelation('document', 'd1', 'viewer')).toEqual([])
    })

    for (const batch of [false, true]) {
      it(`never keeps a load a change overtook, explicit delegation (${batch ? 'batched readObjects' : 'readObject'})`, async () => {
        let open!: (v?: unknown) => void
        const gate = new Promise((resolve) => (open = resolve))
        const ws = new WorkingSet({ datastore: heldSource(primary, () => gate), maxTuples: 1000, batch })
        let r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
        const loading = (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')
        await sleep(20) // the load is enqueued, flushed and read; held at the gate
        r = await other.write(S, { writes: [], deletes: [identity(tupleOf('document:d1', 'viewer', 'user:anne'))], onDuplicate: 'error', onMissing: 'error' }, T0)
        const fresh = (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')
        open()
        expect((await loading).map((t) => t.userId)).toEqual(['anne'])
        expect(await fresh).toEqual([])
        expect(ws.stats().discardedLoads).toBe(1)
        expect(ws.stats().objectLoads).toBe(2)
        expect(await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')).toEqual([])
      })
    }

    it('never lets a load that finishes late replace a newer entry (no answer going back at one revision)', async () => {
      // Each load waits at its own gate: the first load of d1, then the second.
      const gates: { open: () => void; wait: Promise<void> }[] = []
      for (let i = 0; i < 2; i++) {
        let open!: () => void
        const wait = new Promise<void>((resolve) => (open = resolve))
        gates.push({ open, wait })
      }
      let held = 0
      const ws = new WorkingSet({ datastore: heldSource(primary, () => gates[held++]?.wait), maxTuples: 1000 })
      const r1 = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const first = (await readerOf(ws, r1)).readObjectRelation('document', 'd1', 'viewer') // read [anne], held
      await sleep(20)
      const r2 = await other.write(S, { writes: [tupleOf('document:d2', 'viewer', 'user:carl')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const atR2 = await readerOf(ws, r2) // a catch-up that does not touch d1
      await other.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const second = atR2.readObjectRelation('document', 'd1', 'viewer') // a new load: reads [anne, bob]
      await sleep(20)
      gates[1].open()
      expect((await second).map((t) => t.userId).sort()).toEqual(['anne', 'bob'])
      gates[0].open()
      expect((await first).map((t) => t.userId)).toEqual(['anne'])
      // Still at r2: what is held is the newer load, not the older one that finished last.
      expect((await (await readerOf(ws, r2)).readObjectRelation('document', 'd1', 'viewer')).map((t) => t.userId).sort()).toEqual(['anne', 'bob'])
    })

    it('never keeps a user\'s list that a change overtook while it was read', async () => {
      let open!: (v?: unknown) => void
      const gate = new Promise((resolve) => (open = resolve))
      const ws = new WorkingSet({ datastore: heldSource(primary, () => gate), maxTuples: 1000 })
      let r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const loading = (await readerOf(ws, r)).readStartingWithUser('document', 'viewer', [subjectOf('user:anne')])
      await sleep(20)
      r = await other.write(S, { writes: [], deletes: [identity(tupleOf('document:d1', 'viewer', 'user:anne'))], onDuplicate: 'error', onMissing: 'error' }, T0)
      await readerOf(ws, r) // caught up past the delete while the list is in flight
      open()
      expect((await loading).map((t) => t.objectId)).toEqual(['d1'])
      expect(ws.stats().discardedLoads).toBe(1)
      const third = await readerOf(ws, r)
      expect(await third.readStartingWithUser('document', 'viewer', [subjectOf('user:anne')])).toEqual([])
    })

    for (const batch of [false, true]) {
      it(`answers concurrent requests right while writes land, and holds nothing stale after (${batch ? 'batched' : 'unbatched'})`, async () => {
        const rnd = random(batch ? 8 : 7)
        const live = new Map<string, Tuple>()
        // Every load is held a few milliseconds, so catch-ups land while loads are in flight.
        const ws = new WorkingSet({ datastore: heldSource(primary, () => sleep(Math.floor(rnd() * 6))), maxTuples: 10_000, pageSize: 2, batch })
        let revision = await randomWrite(primary, rnd, live)
        for (let round = 0; round < 5; round++) {
          let writing = true
          const writer = (async () => {
            for (let w = 0; w < 6; w++) {
              revision = await randomWrite(other, rnd, live)
              await sleep(1 + Math.floor(rnd() * 3))
            }
            writing = false
          })()
          // Four clients, each asking again and again at the newest revision while the writes land.
          const clients = Array.from({ length: 4 }, async (_, c) => {
            for (let i = 0; writing || i < 3; i++) {
              await sleep(Math.floor(rnd() * 3))
              const reader = await readerOf(ws, revision)
              const [type, id] = OBJECTS[(c + i) % OBJECTS.length].split(':')
              await Promise.all([
                reader.readObjectRelation(type, id, RELATIONS[i % RELATIONS.length]),
                reader.readObject(OBJECTS[(c + i + 1) % OBJECTS.length].split(':')[0], OBJECTS[(c + i + 1) % OBJECTS.length].split(':')[1], 100),
                reader.readStartingWithUser(type, RELATIONS[(c + i) % RELATIONS.length], USERS.map(subjectOf)),
              ])
            }
          })
          await Promise.all([writer, ...clients])
          // Quiet now: whatever the races kept must equal the datastore.
          expect(await everyRead(await readerOf(ws, revision)), `round ${round}`).toEqual(await everyRead(primary.reader(S, revision, NOW)))
        }
        expect(ws.stats().hits).toBeGreaterThan(0)
      })
    }

    it('refuses a store dropped while a request holds its reader, and never takes its state again', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000 })
      const r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const reader = await readerOf(ws, r)
      ws.dropStore(S)
      await expect(reader.readObjectRelation('document', 'd1', 'viewer')).rejects.toMatchObject({ code: 'store_id_not_found' })
      await expect(reader.readStartingWithUser('document', 'viewer', [subjectOf('user:anne')])).rejects.toMatchObject({ code: 'store_id_not_found' })
      await expect(readerOf(ws, r)).rejects.toMatchObject({ code: 'store_id_not_found' })
      expect(ws.storeCount).toBe(0)
      expect(ws.stats().entries).toBe(0)
    })

    it('keeps the state of at most maxStores stores, forgetting the least recently read with its entries', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000, maxStores: 2 })
      const ids = ['01HWSWSWSWSWSWSWSWSWSWSWS1', '01HWSWSWSWSWSWSWSWSWSWSWS2']
      for (const id of ids) await primary.createStore(id, id, T0)
      let r = 0
      for (const id of [S, ...ids]) {
        r = await primary.write(id, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
        const reader = await ws.reader(id, r, NOW, primary.reader(id, r, NOW))
        expect(await reader.readObjectRelation('document', 'd1', 'viewer')).toHaveLength(1)
      }
      expect(ws.storeCount).toBe(2)
      expect(ws.revision(S)).toBeUndefined()
      expect(ws.stats().entries).toBe(2) // S's entry went with its state
      // S again: started afresh, and right after a write made while it was forgotten.
      r = await other.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect((await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')).map((t) => t.userId).sort()).toEqual(['anne', 'bob'])
    })

    it('resets once when concurrent requests fall too far behind together, never moving backwards', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000, maxChanges: 5, pageSize: 2 })
      const r0 = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(await (await readerOf(ws, r0)).readObjectRelation('document', 'd1', 'viewer')).toHaveLength(1)
      const r1 = await other.write(S, { writes: Array.from({ length: 10 }, (_, i) => tupleOf('document:d1', 'viewer', `user:v${i}`)), deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const r2 = await other.write(S, { writes: [tupleOf('document:d2', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const [high, low] = await Promise.all([readerOf(ws, r2), readerOf(ws, r1)])
      expect(ws.stats().resets).toBe(1)
      expect(ws.revision(S)).toBe(r2)
      expect(await high.readObjectRelation('document', 'd1', 'viewer')).toHaveLength(11)
      expect(await low.readObjectRelation('document', 'd2', 'viewer')).toHaveLength(1)
    })

    it('weighs condition contexts in its bound, and answers a subject asked twice once', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000 })
      const big = tupleOf('document:d1', 'viewer', 'user:anne', { conditionName: 'in_hours', conditionContext: { note: 'x'.repeat(1000) } })
      const r = await primary.write(S, { writes: [big, tupleOf('document:d1', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')).toHaveLength(2)
      // One for the entry, one for bob, 1 + ⌈1,011 / 256⌉ = 5 for anne's 1,011-byte context.
      expect(ws.stats().tuples).toBe(7)
      const twice = [subjectOf('user:anne'), subjectOf('user:anne')]
      const want = canon(await primary.reader(S, r, NOW).readStartingWithUser('document', 'viewer', twice))
      expect(canon(await (await readerOf(ws, r)).readStartingWithUser('document', 'viewer', twice))).toEqual(want) // a miss
      expect(canon(await (await readerOf(ws, r)).readStartingWithUser('document', 'viewer', twice))).toEqual(want) // a hit
      expect(want).toHaveLength(1)
    })

    it('hands a batch\'s failure to its waiters, even one thrown at once', async () => {
      const boom = new Error('no readObjects today')
      const ws = new WorkingSet({
        datastore: heldSource(primary, async () => undefined, () => () => {
          throw boom
        }),
        maxTuples: 1000,
        batch: true,
      })
      const r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const reader = await readerOf(ws, r)
      const both = [reader.readObjectRelation('document', 'd1', 'viewer'), reader.readObjectRelation('document', 'd2', 'viewer')]
      for (const p of both) await expect(p).rejects.toBe(boom)
    }, 10_000)

    it('filters expiring tuples by each request\'s clock, without a write or a sweep', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000 })
      const expiring = tupleOf('document:d1', 'viewer', 'user:anne', { expiresAt: NOW + 1000 })
      const r = await primary.write(S, { writes: [expiring, tupleOf('document:d1', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const ids = async (now: number) => (await (await readerOf(ws, r, now)).readObjectRelation('document', 'd1', 'viewer')).map((t) => t.userId).sort()
      const starting = async (now: number) => (await (await readerOf(ws, r, now)).readStartingWithUser('document', 'viewer', [subjectOf('user:anne')])).length
      expect(await ids(NOW + 999)).toEqual(['anne', 'bob'])
      expect(await starting(NOW + 999)).toBe(1)
      expect(await ids(NOW + 1000)).toEqual(['bob'])
      expect(await starting(NOW + 1000)).toBe(0)
      // An earlier request after a later one: the entry was loaded with every row, so it still counts.
      expect(await ids(NOW)).toEqual(['anne', 'bob'])
    })

    it('never loads a huge object whole: its relations are read from the database, one at a time', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000, objectLimit: 8 })
      const members = Array.from({ length: 20 }, (_, i) => tupleOf('group:all', 'member', `user:u${i}`))
      const r = await primary.write(S, { writes: [...members, tupleOf('group:all', 'owner', 'user:root')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const reader = await readerOf(ws, r)
      expect(await reader.readObject('group', 'all', 100)).toHaveLength(21)
      expect(await reader.readObjectRelation('group', 'all', 'member')).toHaveLength(20)
      expect((await reader.readUsers('group', 'all', 'member', [subjectOf('user:u3'), subjectOf('user:zz')])).map((t) => t.userId)).toEqual(['u3'])
      // Held as a marker only: one unit of the bound, not 21 tuples.
      expect(ws.stats().tuples).toBe(1)
    })

    it('stays within its bound in tuples, evicting the least recently read', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 50 })
      const writes = Array.from({ length: 200 }, (_, i) => tupleOf(`document:d${i}`, 'viewer', `user:u${i % 7}`))
      const r = await primary.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      for (let i = 0; i < 200; i++) {
        const reader = await readerOf(ws, r)
        expect((await reader.readObjectRelation('document', `d${i}`, 'viewer')).map((t) => t.userId)).toEqual([`u${i % 7}`])
        expect(ws.stats().tuples).toBeLessThanOrEqual(50)
      }
      expect(ws.stats().tuples).toBeGreaterThan(25)
      // Evicted entries are read again, and still right.
      expect((await (await readerOf(ws, r)).readObjectRelation('document', 'd0', 'viewer')).map((t) => t.userId)).toEqual(['u0'])
    })

    it('forgets a store that fell too far behind, and reads it afresh', async () => {
      const ws = new WorkingSet({ datastore: primary, maxTuples: 1000, maxChanges: 5, pageSize: 2 })
      let r = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')).toHaveLength(1)
      const writes = Array.from({ length: 10 }, (_, i) => tupleOf('document:d1', 'viewer', `user:v${i}`))
      r = await other.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(await (await readerOf(ws, r)).readObjectRelation('document', 'd1', 'viewer')).toHaveLength(11)
      expect(ws.stats().resets).toBe(1)
    })
  })
}

/**
 * The batched loads: the objects asked for in one turn of the event loop (a walk's level) are
 * read by one statement, counted through the datastore's query observer (`readObjects`), and
 * answer as the datastore's own reader does, huge and empty objects included.
 */
export function runWorkingSetBatchSuite(opts: { name: string; open(observer: (operation: string) => void): Promise<Datastore> }): void {
  describe(`working set, batched loads: ${opts.name}`, () => {
    let ds: Datastore
    const operations: string[] = []
    beforeEach(async () => {
      operations.length = 0
      ds = await opts.open((operation) => operations.push(operation))
      await ds.createStore(S, 'batched', T0)
    })
    afterEach(() => ds.close())

    it('reads a level of twenty objects with one statement, and answers as the datastore does', async () => {
      const writes: Tuple[] = []
      for (let i = 0; i < 20; i++) writes.push(tupleOf(`folder:f${i}`, 'viewer', `user:u${i}`), tupleOf(`folder:f${i}`, 'parent', `folder:p${i % 3}`))
      for (let i = 0; i < 12; i++) writes.push(tupleOf('folder:f7', 'viewer', `user:extra${i}`, i === 0 ? { expiresAt: NOW + 5 } : {}))
      const r = await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const ws = new WorkingSet({ datastore: ds, maxTuples: 10_000, objectLimit: 8, batch: true })
      const reader = await ws.reader(S, r, NOW, ds.reader(S, r, NOW))
      operations.length = 0
      // Twenty-two objects (f7 too large to hold, f99 empty) asked for at once, as a level's branches would.
      const ids = [...Array.from({ length: 20 }, (_, i) => `f${i}`), 'f99', 'f3']
      const got = await Promise.all(ids.map((id) => reader.readObjectRelation('folder', id, 'viewer')))
      expect(operations.filter((o) => o === 'readObjects')).toHaveLength(1)
      expect(operations.filter((o) => o === 'readObject')).toHaveLength(0)
      const want = await Promise.all(ids.map((id) => ds.reader(S, r, NOW).readObjectRelation('folder', id, 'viewer')))
      expect(got.map(canon)).toEqual(want.map(canon))
      expect(got[7]).toHaveLength(13) // the huge one, read relation by relation
      expect(ws.stats().objectLoads).toBe(1)
      // The next level (the parents) is one more statement; a level held already costs none.
      operations.length = 0
      await Promise.all(['p0', 'p1', 'p2'].map((id) => reader.readObjectRelation('folder', id, 'viewer')))
      await Promise.all(ids.slice(0, 5).map((id) => reader.readObjectRelation('folder', id, 'parent')))
      expect(operations.filter((o) => o === 'readObjects')).toHaveLength(1)
      // At the instant f7's expiring tuple expires.
      const later = await ws.reader(S, r, NOW + 5, ds.reader(S, r, NOW + 5))
      expect(await later.readObjectRelation('folder', 'f7', 'viewer')).toHaveLength(12)
    })

    it('reads an id asked twice once, and splits a level of 1,100 objects into statements of 500', async () => {
      const writes = Array.from({ length: 1100 }, (_, i) => tupleOf(`folder:f${i}`, 'viewer', `user:u${i}`))
      const r = await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const twice = await ds.reader(S, r, NOW).readObjects!('folder', ['f1', 'f2', 'f1'], 8)
      expect(canon(twice.get('f1'))).toEqual([full(writes[1])])
      const ws = new WorkingSet({ datastore: ds, maxTuples: 10_000, batch: true })
      const reader = await ws.reader(S, r, NOW, ds.reader(S, r, NOW))
      operations.length = 0
      const got = await Promise.all(writes.map((t) => reader.readObjectRelation('folder', t.objectId, 'viewer')))
      expect(got.map((ts) => ts.map((t) => t.userId))).toEqual(writes.map((t) => [t.userId]))
      expect(operations.filter((o) => o === 'readObjects')).toHaveLength(3)
      expect(ws.stats().objectLoads).toBe(3)
    })
  })
}
