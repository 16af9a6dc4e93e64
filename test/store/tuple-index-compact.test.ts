/**
 * The compact tuple index against SQLite's own reader, differentially: fast-check generates a
 * store (plain users, wildcards, usersets, objects as users, conditions with and without
 * context, expiries past and future) and then batches of random changes (writes, deletes,
 * replacements with another condition or expiry, the sweeper's deletes). After every batch each
 * read method is compared, for every object, relation and user of the universe, at two
 * instants. The index is tuned to merge its changes after every catch-up, in slices of two
 * entries (with its default caches, or tiny ones), and the comparison yields to the event loop between objects, so that reads land
 * before, during and after merges.
 *
 * Then the delta merge, copy on write and the budget, one by one.
 */
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import { TupleIndex } from '../../src/store/readers/tuple-index.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import type { Datastore, TupleIdentity, TupleReader } from '../../src/store/store.ts'
import { NOW, T0, canon, everyRead as everyReadOf, identity, idKey, subjectOf, tupleOf, turn } from '../helpers/reader-differential.ts'

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const LATER = NOW + 1_800_000
const RUNS = Number(process.env.PEMBA_INDEX_DIFF_RUNS ?? 40)

const OBJECTS = ['document:d1', 'document:d2', 'document:d3', 'folder:f1', 'folder:f2', 'group:g1', 'group:g2']
const RELATIONS = ['viewer', 'owner', 'parent', 'member']
// user:zed and group:g9#member appear only in changes made after the build (ids new to the index).
const USERS = ['user:anne', 'user:bob', 'user:carl', 'user:*', 'group:g1#member', 'group:g2#member', 'folder:f1', 'folder:f2', 'user:zed', 'group:g9#member']
const LATE_USERS = 2
/** Users asked about but never written: the index must answer them as empty, not fail. */
const ASKED = [...USERS, 'user:nobody', 'team:t1#member', 'group:g1#owner']

const dir = mkdtempSync(join(tmpdir(), 'pemba-index-compact-'))
let files = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function open(): Datastore {
  return new SqliteDatastore({ filename: join(dir, `db-${files++}.sqlite`) })
}

/** Every read the engine makes, for every object, relation and user of the universe. */
const everyRead = (reader: TupleReader, yieldBetween: boolean) =>
  everyReadOf(reader, {
    objects: OBJECTS,
    relations: RELATIONS,
    users: ASKED,
    types: ['document', 'folder', 'group', 'team'],
    smallLimit: 2,
    yieldBetween,
    checkImmediate: true,
  })

/** One generated change: a tuple of the universe with a condition and expiry, or a sweep. */
interface Op {
  sweep: boolean
  del: boolean
  object: number
  relation: number
  user: number
  condition: 0 | 1 | 2
  expiry: 0 | 1 | 2
}

const opArb = (users: number): fc.Arbitrary<Op> =>
  fc.record({
    sweep: fc.constant(false),
    del: fc.boolean(),
    object: fc.nat(OBJECTS.length - 1),
    relation: fc.nat(RELATIONS.length - 1),
    user: fc.nat(users - 1),
    condition: fc.constantFrom<0 | 1 | 2>(0, 0, 0, 1, 2),
    expiry: fc.constantFrom<0 | 1 | 2>(0, 0, 0, 1, 2),
  })

const sweepOrOp = (users: number): fc.Arbitrary<Op> =>
  fc.oneof({ weight: 12, arbitrary: opArb(users) }, { weight: 1, arbitrary: opArb(users).map((o) => ({ ...o, sweep: true })) })

function tupleOfOp(o: Op): Tuple {
  const extra: Partial<Tuple> = {}
  if (o.condition >= 1) extra.conditionName = 'in_hours'
  if (o.condition === 2) extra.conditionContext = { from: o.user + o.object }
  if (o.expiry === 1) extra.expiresAt = NOW - 1000
  if (o.expiry === 2) extra.expiresAt = NOW + 600_000 * (1 + o.relation) // some expire before LATER
  return tupleOf(OBJECTS[o.object], RELATIONS[o.relation], USERS[o.user], extra)
}

/** applyOps turns a batch of ops into one write request (and sweeps), keeping `live` in step. */
async function applyOps(ds: Datastore, ops: Op[], live: Map<string, Tuple>): Promise<void> {
  const deletes: TupleIdentity[] = []
  const writes: Tuple[] = []
  const touched = new Set<string>()
  const expired = (t: Tuple | undefined) => t?.expiresAt !== undefined && t.expiresAt <= NOW
  for (const o of ops) {
    if (o.sweep) continue
    const t = tupleOfOp(o)
    const key = idKey(t)
    const current = live.get(key)
    // A tuple already expired (not swept yet) is left to the sweeper.
    if (touched.has(key) || expired(current)) continue
    touched.add(key)
    if (o.del) {
      if (current) deletes.push(identity(t))
      continue
    }
    if (current) deletes.push(identity(t)) // a replacement: another condition or expiry
    writes.push(t)
  }
  if (writes.length || deletes.length) {
    await ds.write(S, { writes, deletes, onDuplicate: 'error', onMissing: 'error' }, T0)
    for (const d of deletes) live.delete(idKey(d))
    for (const w of writes) live.set(idKey(w), w)
  }
  if (ops.some((o) => o.sweep)) {
    await ds.sweepExpired(T0, 1000)
    for (const [k, t] of live) if (expired(t)) live.delete(k)
  }
}

describe('compact tuple index, differentially against SQLite', () => {
  it('answers every read as the datastore does, through builds, changes and merges', async () => {
    let merges = 0
    let overridden = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb(USERS.length - LATE_USERS), { minLength: 0, maxLength: 40 }),
        fc.array(fc.array(sweepOrOp(USERS.length), { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(1, 3, 1000),
        // Default caches, or caches so small that lists of 2 tuples count as long and lists of
        // 3+ are never cached: the list cache's paths run under changes and merges.
        fc.constantFrom({}, { cacheTuples: 2, longList: 1 }),
        async (initial, batches, pageSize, caches) => {
          const ds = open()
          try {
            await ds.createStore(S, 'indexed', T0)
            const live = new Map<string, Tuple>()
            await applyOps(ds, initial, live)
            const index = new TupleIndex({ datastore: ds, maxTuples: 10_000, pageSize, tuning: { mergeAfter: 1, slice: 2, sliceMs: 0, ...caches } })
            expect(await index.ready(S)).toBe(true)
            const compare = async (yieldBetween: boolean) => {
              const head = await ds.headRevision(S)
              for (const at of [NOW, LATER]) {
                const reader = await index.reader(S, head, at)
                expect(reader).toBeDefined()
                expect(await everyRead(reader!, yieldBetween)).toEqual(await everyRead(ds.reader(S, head, at), false))
              }
              expect(index.stats().tuples).toBe(live.size)
            }
            await compare(false)
            for (const batch of batches) {
              await applyOps(ds, batch, live)
              // The catch-up starts a merge; the reads below interleave with its slices.
              await compare(true)
              overridden++
            }
            await index.merged(S)
            await compare(false)
            merges += index.stats().merges
          } finally {
            await ds.close()
          }
        },
      ),
      { numRuns: RUNS, seed: 20261206 },
    )
    // The property exercised merges, not only the overrides before them.
    expect(overridden).toBeGreaterThan(0)
    expect(merges).toBeGreaterThan(RUNS / 2)
  }, 300_000)
})

describe('compact tuple index: merges, copy on write, budget', () => {
  const member = (u: string) => tupleOf('group:g1', 'member', `user:${u}`)
  const write = (ds: Datastore, writes: Tuple[], deletes: Tuple[] = []) =>
    ds.write(S, { writes, deletes: deletes.map(identity), onDuplicate: 'error', onMissing: 'error' }, T0)

  it('reads during a merge and after it see exactly the tuples of the store', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    const users = Array.from({ length: 200 }, (_, i) => `u${i}`)
    await write(ds, users.map(member))
    const index = new TupleIndex({ datastore: ds, maxTuples: 10_000, tuning: { mergeAfter: 10, slice: 16, sliceMs: 0 } })
    expect(await index.ready(S)).toBe(true)
    const members = async () => {
      const reader = (await index.reader(S, await ds.headRevision(S), NOW))!
      return (await reader.readObjectRelation('group', 'g1', 'member')).map((t) => t.userId).sort()
    }
    const expected = () => ds.reader(S, 0, NOW).readObjectRelation('group', 'g1', 'member').then((ts) => ts.map((t) => t.userId).sort())
    // Enough changes to start a merge; then more while it runs.
    await write(ds, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'].map(member), users.slice(0, 20).map(member))
    expect(await members()).toEqual(await expected())
    let during = 0
    for (let i = 0; i < 5; i++) {
      await turn()
      await write(ds, [member(`late${i}`)], [member(users[100 + i])])
      expect(await members()).toEqual(await expected())
      if (index.merging(S)) during++
    }
    expect(during, 'changes applied while the first merge was running').toBeGreaterThan(0)
    await index.merged(S)
    expect(index.stats().merges).toBeGreaterThan(0)
    expect(await members()).toEqual(await expected())
    const reader = (await index.reader(S, await ds.headRevision(S), NOW))!
    expect((await reader.readStartingWithUser('group', 'member', [subjectOf('user:late3')])).map((t) => t.objectId)).toEqual(['g1'])
    expect(await reader.readStartingWithUser('group', 'member', [subjectOf('user:u100')])).toEqual([])
    expect(index.stats().tuples).toBe((await expected()).length)
    await ds.close()
  })

  it('never changes a list it has handed out, across changes and merges', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    await write(ds, ['a', 'b', 'c'].map(member))
    const index = new TupleIndex({ datastore: ds, maxTuples: 100, tuning: { mergeAfter: 1, slice: 1, sliceMs: 0 } })
    expect(await index.ready(S)).toBe(true)
    const first = await (await index.reader(S, 0, NOW))!.readObjectRelation('group', 'g1', 'member')
    const byUser = await (await index.reader(S, 0, NOW))!.readStartingWithUser('group', 'member', [subjectOf('user:a')])
    const snapshot = first.map((t) => t.userId)
    const r = await write(ds, [member('d')], [member('a')])
    const second = await (await index.reader(S, r, NOW))!.readObjectRelation('group', 'g1', 'member')
    await index.merged(S)
    const third = await (await index.reader(S, r, NOW))!.readObjectRelation('group', 'g1', 'member')
    expect(first.map((t) => t.userId)).toEqual(snapshot)
    expect(byUser.map((t) => t.objectId)).toEqual(['g1'])
    expect(second.map((t) => t.userId).sort()).toEqual(['b', 'c', 'd'])
    expect(third.map((t) => t.userId).sort()).toEqual(['b', 'c', 'd'])
    expect(index.stats().merges).toBe(1)
    await ds.close()
  })

  it('charges the budget with the tuples held, through overrides and merges', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    await write(ds, ['a', 'b', 'c', 'd'].map(member))
    const index = new TupleIndex({ datastore: ds, maxTuples: 6, tuning: { mergeAfter: 1, slice: 1, sliceMs: 0 } })
    expect(await index.ready(S)).toBe(true)
    // A replacement (same key, another condition) changes no count.
    let r = await write(ds, [member('a')].map((t) => ({ ...t, conditionName: 'in_hours' })), [member('a')])
    await index.reader(S, r, NOW)
    expect(index.stats()).toMatchObject({ stores: 1, tuples: 4 })
    r = await write(ds, ['e', 'f'].map(member), [member('b')])
    await index.reader(S, r, NOW)
    await index.merged(S)
    expect(index.stats()).toMatchObject({ stores: 1, tuples: 5 })
    const reader = (await index.reader(S, r, NOW))!
    expect((await reader.readUsers('group', 'g1', 'member', [subjectOf('user:a')]))[0].conditionName).toBe('in_hours')
    // Two more: seven tuples, over the budget of six; the store is let go of.
    r = await write(ds, ['g', 'h'].map(member))
    expect(await index.reader(S, r, NOW)).toBeUndefined()
    expect(index.stats()).toMatchObject({ stores: 0, tuples: 0 })
    await ds.close()
  })

  it('keeps long lists apart in its cache, and forgets them when they change', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    const members = Array.from({ length: 5000 }, (_, i) => member(`m${i}`))
    const viewed = Array.from({ length: 5000 }, (_, i) => tupleOf(`document:doc${i}`, 'viewer', 'user:anne'))
    for (let i = 0; i < 5000; i += 1000) await write(ds, [...members.slice(i, i + 1000), ...viewed.slice(i, i + 1000)])
    const index = new TupleIndex({ datastore: ds, maxTuples: 100_000, tuning: { mergeAfter: 1 } })
    expect(await index.ready(S)).toBe(true)
    const compare = async () => {
      const head = await ds.headRevision(S)
      await index.reader(S, head, NOW)
      // Once merged, a stale cached list would no longer be hidden by the change's override.
      await index.merged(S)
      const reader = (await index.reader(S, head, NOW))!
      const truth = ds.reader(S, head, NOW)
      const anne = [subjectOf('user:anne')]
      for (let round = 0; round < 2; round++) {
        expect(canon(await reader.readObjectRelation('group', 'g1', 'member'))).toEqual(canon(await truth.readObjectRelation('group', 'g1', 'member')))
        expect(canon(await reader.readStartingWithUser('document', 'viewer', anne))).toEqual(canon(await truth.readStartingWithUser('document', 'viewer', anne)))
        // Short lists in between turn the generations over.
        for (let i = 0; i < 50; i++) await reader.readObjectRelation('document', `doc${i}`, 'viewer')
      }
    }
    await compare()
    await write(ds, [member('late'), tupleOf('document:late', 'viewer', 'user:anne')], [members[7], viewed[9]])
    await compare()
    await write(ds, [], [members[8], viewed[10]])
    await compare()
    expect(index.stats().merges).toBe(2)
    await ds.close()
  })

  it('answers a large object relation by search without reading it whole, and a store of many ids', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    const writes: Tuple[] = []
    for (let g = 0; g < 30; g++) for (let u = 0; u < 40; u++) if ((g * 7 + u) % 3 !== 0) writes.push(tupleOf(`group:g${g}`, 'member', `user:u${u}`))
    for (let i = 0; i < writes.length; i += 100) await write(ds, writes.slice(i, i + 100))
    const index = new TupleIndex({ datastore: ds, maxTuples: 10_000, pageSize: 64 })
    expect(await index.ready(S)).toBe(true)
    const reader = (await index.reader(S, await ds.headRevision(S), NOW))!
    const truth = ds.reader(S, await ds.headRevision(S), NOW)
    for (let g = 0; g < 30; g++) {
      for (const u of ['u0', 'u1', 'u2', 'u39', 'u40']) {
        const asked = [subjectOf(`user:${u}`), subjectOf('user:*')]
        expect(canon(reader.immediate!.readUsersNow('group', `g${g}`, 'member', asked))).toEqual(canon(await truth.readUsers('group', `g${g}`, 'member', asked)))
      }
    }
    for (let u = 0; u < 41; u++) {
      const asked = [subjectOf(`user:u${u}`)]
      expect(canon(reader.immediate!.readStartingWithUserNow('group', 'member', asked))).toEqual(canon(await truth.readStartingWithUser('group', 'member', asked)))
    }
    expect(index.stats().tuples).toBe(writes.length)
    await ds.close()
  })

  it('leaves nothing behind of ids that come and go, merging away what it must keep', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    await write(ds, [member('seed')])
    const index = new TupleIndex({ datastore: ds, maxTuples: 10_000, tuning: { mergeAfter: 64 } })
    expect(await index.ready(S)).toBe(true)
    const catchUp = async (r: number) => expect(await index.reader(S, r, NOW)).toBeDefined()
    const sessions = (round: number) => Array.from({ length: 20 }, (_, j) => tupleOf(`document:tmp-${round}-${j}`, 'viewer', `user:s-${round}-${j}`))
    let most = { overrideKeys: 0, segmentIds: 0, segmentTuples: 0 }
    for (let round = 0; round < 60; round++) {
      // Odd rounds: written and deleted within one catch-up. Even rounds: written, merged into
      // the segment, then deleted (empty overrides that only a merge clears).
      if (round % 2 === 1) {
        await write(ds, sessions(round))
        await catchUp(await write(ds, [], sessions(round)))
      } else {
        await catchUp(await write(ds, sessions(round)))
        await index.merged(S)
        await catchUp(await write(ds, [], sessions(round)))
      }
      await index.merged(S)
      const counts = index.counts(S)!
      most = {
        overrideKeys: Math.max(most.overrideKeys, counts.overrideKeys),
        segmentIds: Math.max(most.segmentIds, counts.segmentIds),
        segmentTuples: Math.max(most.segmentTuples, counts.segmentTuples),
      }
    }
    // 60 rounds made 2,400 ids and 2,400 keys a side; what stays is bounded by one round's.
    expect(most.overrideKeys).toBeLessThanOrEqual(80)
    expect(most.segmentIds).toBeLessThanOrEqual(2 + 40)
    expect(most.segmentTuples).toBeLessThanOrEqual(1 + 20)
    expect(index.stats().merges).toBeGreaterThanOrEqual(30)
    // One more merge after the last deletes leaves only the seed.
    await catchUp(await write(ds, sessions(99)))
    await index.merged(S)
    await catchUp(await write(ds, [], sessions(99)))
    await index.merged(S)
    expect(index.stats().tuples).toBe(1)
    const reader = (await index.reader(S, await ds.headRevision(S), NOW))!
    expect(canon(await reader.readObjectRelation('group', 'g1', 'member'))).toEqual(canon([member('seed')]))
    expect(await reader.readObjectRelation('document', 'tmp-98-0', 'viewer')).toEqual([])
    await ds.close()
  })

  it('reads the usersets of long lists without the rest, and keeps two hot long lists together', async () => {
    const ds = open()
    await ds.createStore(S, 'indexed', T0)
    const groups = ['big1', 'big2']
    const writes = groups.flatMap((g) => [
      ...Array.from({ length: 300 }, (_, i) => tupleOf(`group:${g}`, 'member', `user:m${i}`)),
      tupleOf(`group:${g}`, 'member', 'group:sub#member'),
    ])
    const mid = groups.flatMap((g) => Array.from({ length: 40 }, (_, i) => tupleOf(`folder:${g}`, 'viewer', `user:v${i}`)))
    for (let i = 0; i < writes.length; i += 200) await write(ds, writes.slice(i, i + 200))
    await write(ds, mid)
    const index = new TupleIndex({ datastore: ds, maxTuples: 10_000, tuning: { cacheTuples: 64, longList: 16 } })
    expect(await index.ready(S)).toBe(true)
    const head = await ds.headRevision(S)
    const reader = (await index.reader(S, head, NOW))!
    const truth = ds.reader(S, head, NOW)
    const materialised = () => index.counts(S)!.materialised
    for (const g of groups) {
      expect(canon(reader.immediate!.readUsersetsNow('group', g, 'member'))).toEqual(canon(await truth.readUsersets('group', g, 'member')))
      expect(canon(reader.immediate!.readObjectRelationNow('folder', g, 'viewer'))).toEqual(canon(await truth.readObjectRelation('folder', g, 'viewer')))
    }
    // Alternating reads: the usersets are the one userset a group has, each read once, and the
    // two lists of 40 (over `longList`, under `cacheTuples`) stay cached side by side.
    const before = materialised()
    for (let round = 0; round < 10; round++) {
      for (const g of groups) {
        expect(reader.immediate!.readUsersetsNow('group', g, 'member').map((t) => t.userId)).toEqual(['sub'])
        expect(reader.immediate!.readObjectRelationNow('folder', g, 'viewer')).toHaveLength(40)
      }
    }
    expect(materialised() - before).toBe(0)
    // A list over `cacheTuples` does not enter the cache (it would evict the others): it is
    // kept alone in the huge-list slot, so the same huge list read again is not rebuilt, and the
    // cached lists stay.
    const once = materialised()
    expect(await reader.readObjectRelation('group', 'big1', 'member')).toHaveLength(301)
    expect(await reader.readObjectRelation('group', 'big1', 'member')).toHaveLength(301)
    expect(materialised() - once).toBe(301)
    expect(reader.immediate!.readObjectRelationNow('folder', 'big1', 'viewer')).toHaveLength(40)
    expect(materialised() - once).toBe(301)
    for (const g of groups) expect(reader.immediate!.readObjectRelationNow('folder', g, 'viewer')).toHaveLength(40)
    expect(materialised() - once).toBe(301)
    await ds.close()
  })
})
