/**
 * The tuple index against the datastore it mirrors: every read it answers must equal what the
 * datastore's own reader answers, after a build, after changes made through this handle or
 * another one (another replica, another process on the same SQLite file), and after a build
 * that writes raced. Run for SQLite here and for PostgreSQL in postgres.test.ts.
 */
import { describe, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import type { Datastore, TupleReader } from '../../src/store/store.ts'
import { TupleIndex, type IndexSource } from '../../src/store/readers/tuple-index.ts'
import {
  NOW,
  T0,
  everyRead as everyReadOf,
  identity,
  random,
  randomWrite as randomWriteTo,
  subjectOf,
  tupleOf,
  useDatastorePair,
  type ReadUniverse,
} from '../helpers/reader-differential.ts'

export interface TupleIndexSuiteOptions {
  name: string
  /** Two handles on one fresh, empty database: `primary` is indexed, `other` writes behind its back. */
  open(): Promise<{ primary: Datastore; other: Datastore }>
}

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'

const OBJECTS = ['document:d1', 'document:d2', 'document:d3', 'folder:f1', 'folder:f2', 'group:g1', 'group:g2', 'group:g3']
const RELATIONS = ['viewer', 'owner', 'parent', 'member', 'blocked']
const USERS = ['user:anne', 'user:bob', 'user:carl', 'user:*', 'group:g1#member', 'group:g2#member', 'folder:f1', 'folder:f2']
const UNIVERSE: ReadUniverse = { objects: OBJECTS, relations: RELATIONS, users: USERS, types: ['document', 'folder', 'group'], smallLimit: 3 }

/** A random tuple: some with a condition and context, some expiring (some already expired at NOW). */
function randomTuple(rnd: () => number): Tuple {
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]
  const extra: Partial<Tuple> = {}
  const r = rnd()
  if (r < 0.15) extra.conditionName = 'in_hours'
  if (r < 0.08) extra.conditionContext = { from: Math.floor(rnd() * 24) }
  const e = rnd()
  if (e < 0.1) extra.expiresAt = NOW - 1000
  else if (e < 0.25) extra.expiresAt = NOW + Math.floor(rnd() * 3_600_000) + 1
  return tupleOf(pick(OBJECTS), pick(RELATIONS), pick(USERS), extra)
}

/** Every read the engine makes, for every object, relation and user of the universe, at `now`. */
const everyRead = (reader: TupleReader) => everyReadOf(reader, UNIVERSE)
/** Random writes and deletes in one request, as a client would send them. */
const randomWrite = (ds: Datastore, rnd: () => number, live: Map<string, Tuple>) => randomWriteTo(ds, S, rnd, live, randomTuple)

export function runTupleIndexSuite(opts: TupleIndexSuiteOptions): void {
  describe(`tuple index: ${opts.name}`, () => {
    let primary: Datastore
    let other: Datastore
    useDatastorePair(opts.open, S, 'indexed', (pair) => ({ primary, other } = pair))

    for (const seed of [1, 2, 3]) {
      it(`answers every read as the datastore does, before and after changes from either handle (seed ${seed})`, async () => {
        const rnd = random(seed)
        const live = new Map<string, Tuple>()
        for (let i = 0; i < 8; i++) await randomWrite(primary, rnd, live)
        const index = new TupleIndex({ datastore: primary, maxTuples: 10_000, pageSize: 7 })
        expect(await index.ready(S)).toBe(true)
        for (let round = 0; round < 6; round++) {
          const head = await primary.headRevision(S)
          const reader = await index.reader(S, head, NOW)
          expect(reader).toBeDefined()
          expect(await everyRead(reader!)).toEqual(await everyRead(primary.reader(S, head, NOW)))
          // Later on the same clock some expiring tuples have gone.
          const later = NOW + 1_800_000
          expect(await everyRead((await index.reader(S, head, later))!)).toEqual(await everyRead(primary.reader(S, head, later)))
          for (let i = 0; i < 3; i++) await randomWrite(round % 2 ? other : primary, rnd, live)
        }
        await index.reader(S, await primary.headRevision(S), NOW)
        // Expired tuples the sweeper has not deleted yet are held too, as the datastore holds them.
        const stored = await primary.read(S, {}, { pageSize: 10_000 }, 0)
        expect(index.stats().tuples).toBe(stored.items.length)
        expect(index.stats().tuples, 'the test model of the store').toBe(live.size)
        expect(index.stats().fallbacks).toBe(0)
      })
    }

    it('catches up exactly as far as the revision a request is bound to', async () => {
      const index = new TupleIndex({ datastore: primary, maxTuples: 100 })
      const r1 = await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(await index.ready(S)).toBe(true)
      const r2 = await other.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:bob')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      expect(r2).toBeGreaterThan(r1)
      const viewers = async (revision: number) =>
        (await (await index.reader(S, revision, NOW))!.readObjectRelation('document', 'd1', 'viewer')).map((t) => t.userId).sort()
      // Bound to r1 (a MINIMIZE_LATENCY request within the staleness bound): no read needed.
      expect(await viewers(r1)).toEqual(['anne'])
      // Bound to r2 (HIGHER_CONSISTENCY reads the head): the change is applied first.
      expect(await viewers(r2)).toEqual(['anne', 'bob'])
      expect(index.stats()).toMatchObject({ catchUps: 1, changesApplied: 1, tuples: 2 })
    })

    it('ends a build equal to the store when writes land between its pages', async () => {
      const rnd = random(7)
      const live = new Map<string, Tuple>()
      for (let i = 0; i < 10; i++) await randomWrite(primary, rnd, live)
      // The build reads 3 tuples a page; after each page another handle writes.
      const racing: IndexSource = {
        headRevision: (s) => primary.headRevision(s),
        readChanges: (s, q) => primary.readChanges(s, q),
        read: async (s, f, q, now) => {
          const page = await primary.read(s, f, q, now)
          await randomWrite(other, rnd, live)
          return page
        },
      }
      const index = new TupleIndex({ datastore: racing, maxTuples: 10_000, pageSize: 3 })
      expect(await index.ready(S)).toBe(true)
      const head = await primary.headRevision(S)
      expect(await everyRead((await index.reader(S, head, NOW))!)).toEqual(await everyRead(primary.reader(S, head, NOW)))
      expect(index.stats().tuples).toBe(live.size)
    })

    it('leaves a store that does not fit to the datastore, and lets go of one that outgrows the budget', async () => {
      let clock = NOW
      const index = new TupleIndex({ datastore: primary, maxTuples: 4, pageSize: 2, retryMs: 60_000, now: () => clock })
      const write = (ds: Datastore, users: string[], del: string[] = []) =>
        ds.write(
          S,
          {
            writes: users.map((u) => tupleOf('group:g1', 'member', u)),
            deletes: del.map((u) => identity(tupleOf('group:g1', 'member', u))),
            onDuplicate: 'error',
            onMissing: 'error',
          },
          T0,
        )
      await write(primary, ['user:a', 'user:b', 'user:c'])
      expect(await index.ready(S)).toBe(true)
      expect(index.stats()).toMatchObject({ stores: 1, tuples: 3 })
      const r = await write(other, ['user:d', 'user:e'])
      expect(await index.reader(S, r, NOW)).toBeUndefined()
      expect(index.stats()).toMatchObject({ stores: 0, tuples: 0, fallbacks: 1 })
      // Not retried before retryMs, even once it would fit again.
      const r2 = await write(other, [], ['user:d', 'user:e'])
      expect(await index.reader(S, r2, NOW)).toBeUndefined()
      clock += 60_000
      expect(await index.ready(S)).toBe(true)
      expect(index.stats()).toMatchObject({ stores: 1, tuples: 3 })
      // A store too large from the start is never half-held.
      await write(primary, ['user:f', 'user:g'])
      index.drop(S)
      expect(await index.ready(S)).toBe(false)
      expect(index.stats()).toMatchObject({ stores: 0, tuples: 0 })
    })

    it('never lets a request see a write half applied while it catches up', async () => {
      const before = ['a', 'b', 'c'].map((u) => tupleOf('group:g1', 'member', `user:${u}`))
      const r1 = await primary.write(S, { writes: before, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      // Pages of two changes, and the second page held back until the test lets it go.
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      let pages = 0
      const slow: IndexSource = {
        headRevision: (s) => primary.headRevision(s),
        read: (s, f, q, now) => primary.read(s, f, q, now),
        readChanges: async (s, q) => {
          const page = await primary.readChanges(s, q)
          if (index.stats().stores === 1 && ++pages === 2) await held
          return page
        },
      }
      const index = new TupleIndex({ datastore: slow, maxTuples: 100, pageSize: 2 })
      expect(await index.ready(S)).toBe(true)
      // One write of three changes: two deletes and a write, one revision.
      const r2 = await other.write(
        S,
        {
          writes: [tupleOf('group:g1', 'member', 'user:d')],
          deletes: [identity(before[0]), identity(before[1])],
          onDuplicate: 'error',
          onMissing: 'error',
        },
        T0,
      )
      const members = async (revision: number) =>
        (await (await index.reader(S, revision, NOW))!.readObjectRelation('group', 'g1', 'member')).map((t) => t.userId).sort()
      const catchingUp = members(r2)
      // Wait until the catch-up has read its first page and waits on the second.
      while (pages < 2) await new Promise((r) => setImmediate(r))
      expect(await members(r1)).toEqual(['a', 'b', 'c'])
      release()
      expect(await catchingUp).toEqual(['c', 'd'])
      expect(await members(r1)).toEqual(['c', 'd'])
    })

    it('reads a store afresh instead of holding more changes than its budget of tuples', async () => {
      const member = (u: string) => tupleOf('group:g1', 'member', `user:${u}`)
      await primary.write(S, { writes: [member('a'), member('b')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const index = new TupleIndex({ datastore: primary, maxTuples: 4, pageSize: 2 })
      expect(await index.ready(S)).toBe(true)
      // Six changes behind (three written, three deleted), though the store stays at two tuples.
      await other.write(S, { writes: [member('c'), member('d'), member('e')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const r = await other.write(
        S,
        { writes: [], deletes: [member('a'), member('c'), member('d')].map(identity), onDuplicate: 'error', onMissing: 'error' },
        T0,
      )
      // This request reads the datastore; the next one finds the store read afresh.
      expect(await index.reader(S, r, NOW)).toBeUndefined()
      const reader = await index.reader(S, r, NOW)
      expect((await reader!.readObjectRelation('group', 'g1', 'member')).map((t) => t.userId).sort()).toEqual(['b', 'e'])
      expect(index.stats()).toMatchObject({ stores: 1, tuples: 2, builds: 2, changesApplied: 0 })
    })

    it('never changes a list it has handed out', async () => {
      await primary.write(S, { writes: [tupleOf('document:d1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const index = new TupleIndex({ datastore: primary, maxTuples: 100 })
      expect(await index.ready(S)).toBe(true)
      const before = await (await index.reader(S, 0, NOW))!.readObjectRelation('document', 'd1', 'viewer')
      const r = await primary.write(
        S,
        {
          writes: [tupleOf('document:d1', 'viewer', 'user:bob')],
          deletes: [identity(tupleOf('document:d1', 'viewer', 'user:anne'))],
          onDuplicate: 'error',
          onMissing: 'error',
        },
        T0,
      )
      const after = await (await index.reader(S, r, NOW))!.readObjectRelation('document', 'd1', 'viewer')
      expect(before.map((t) => t.userId)).toEqual(['anne'])
      expect(after.map((t) => t.userId)).toEqual(['bob'])
    })

    it('reads a large store in the background, the datastore answering meanwhile', async () => {
      await primary.write(
        S,
        { writes: ['a', 'b', 'c', 'd', 'e'].map((u) => tupleOf('group:g1', 'member', `user:${u}`)), deletes: [], onDuplicate: 'error', onMissing: 'error' },
        T0,
      )
      const index = new TupleIndex({ datastore: primary, maxTuples: 100, pageSize: 2 })
      // The first page is not the whole store: this request goes to the datastore.
      expect(await index.reader(S, 0, NOW)).toBeUndefined()
      expect(index.stats().fallbacks).toBe(1)
      expect(await index.ready(S)).toBe(true)
      expect(await (await index.reader(S, 0, NOW))!.readObjectRelation('group', 'g1', 'member')).toHaveLength(5)
      index.drop(S)
      expect(index.stats()).toMatchObject({ stores: 0, tuples: 0 })
    })

    it('answers a small store from its first page, for the request that asked', async () => {
      await primary.write(S, { writes: [tupleOf('group:g1', 'member', 'user:a')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const index = new TupleIndex({ datastore: primary, maxTuples: 100 })
      const reader = await index.reader(S, await primary.headRevision(S), NOW)
      expect(reader).toBeDefined()
      expect(await reader!.readUsers('group', 'g1', 'member', [subjectOf('user:a')])).toHaveLength(1)
      expect(index.stats()).toMatchObject({ stores: 1, builds: 1, fallbacks: 0 })
    })
  })
}
