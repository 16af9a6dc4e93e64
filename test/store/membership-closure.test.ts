/**
 * The membership closure (Zanzibar's Leopard index, src/store/readers/membership-closure*.ts):
 *
 * - its incremental maintenance equals a closure computed from scratch by a naive walk written
 *   here, over random group graphs (cycles, diamonds, wildcards, conditioned tuples the family
 *   does not admit) changed by random batches of writes and deletes;
 * - kept by MembershipClosures over a real SQLite datastore: built from the store, in step with
 *   its changelog at each request's revision, and falling back (undefined) whenever it cannot
 *   answer exactly: while building, contextual tuples in the family, an expired tuple not yet
 *   swept, a path as long as the depth limit, over its budget;
 * - through the whole server: check answers, their witness chains and list-objects are the same
 *   with the closure on and off on random data, and a write is seen by the next check at its
 *   revision (HIGHER_CONSISTENCY included).
 */
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import type { UsersetClosure } from '../../src/model/typesystem.ts'
import { FamilyClosure } from '../../src/store/readers/membership-closure-graph.ts'
import { INLINE_RECOMPUTE, MembershipClosures } from '../../src/store/readers/membership-closure.ts'
import { TupleIndex } from '../../src/store/readers/tuple-index.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import type { TupleChange } from '../../src/store/store.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { random } from '../helpers/reader-differential.ts'

const GROUP_MEMBER = { type: 'group', relation: 'member' }
/** `group#member: [user, user:*, group#member]`, as the model compiles it. */
const FAMILY: UsersetClosure = {
  relations: new Set(['group#member']),
  edges: new Map([
    ['user', [GROUP_MEMBER]],
    ['user:*', [GROUP_MEMBER]],
    ['group#member', [GROUP_MEMBER]],
  ]),
}

const GROUPS = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5']
const USERS = ['anne', 'bob', 'carl', '*']

function member(group: string, user: string, extra: Partial<Tuple> = {}): Tuple {
  const nested = user.startsWith('group:')
  const [userType, userId] = nested ? ['group', user.slice(6)] : ['user', user]
  return {
    objectType: 'group',
    objectId: group,
    relation: 'member',
    userType,
    userId,
    userRelation: nested ? 'member' : '',
    conditionName: '',
    conditionContext: undefined,
    ...extra,
  }
}

const userString = (t: Tuple) => (t.userRelation ? `${t.userType}:${t.userId}#${t.userRelation}` : `${t.userType}:${t.userId}`)
const idOf = (t: Tuple) => `${t.objectType}:${t.objectId}#${t.relation}@${userString(t)}`

function change(t: Tuple, operation: 'write' | 'delete', revision: number, seq: number): TupleChange {
  return {
    revision,
    seq,
    objectType: t.objectType,
    objectId: t.objectId,
    relation: t.relation,
    user: userString(t),
    conditionName: t.conditionName,
    conditionContext: t.conditionContext,
    ...(t.expiresAt !== undefined ? { expiresAt: t.expiresAt } : {}),
    operation,
    timestamp: new Date(0),
  }
}

/**
 * The reference: a naive breadth-first walk up from `start` (and the type's wildcard for a
 * plain user) over the live, admitted tuples, giving each group's shortest level.
 */
function naiveLevels(live: Iterable<Tuple>, start: string): Map<string, number> {
  const admitted = [...live].filter((t) => t.conditionName === '')
  const sources = [start]
  if (start.startsWith('user:') && start !== 'user:*') sources.push('user:*')
  const levels = new Map<string, number>()
  let frontier = sources
  for (let level = 0; frontier.length; level++) {
    const next: string[] = []
    for (const node of frontier) {
      for (const t of admitted) {
        if (userString(t) !== node) continue
        const k = `group:${t.objectId}#member`
        if (levels.has(k)) continue
        levels.set(k, level)
        next.push(k)
      }
    }
    frontier = next
  }
  return levels
}

/** The witness chain of `userset` from a reach: each step one live tuple, ending at the start. */
function chainIsValid(reach: { levels: Map<string, number>; via: Map<string, Tuple> }, userset: string, start: string, live: Map<string, Tuple>): boolean {
  let key = userset
  for (let steps = 0; steps <= reach.levels.get(userset)!; steps++) {
    const t = reach.via.get(key)
    if (!t || !live.has(idOf(t)) || `${t.objectType}:${t.objectId}#${t.relation}` !== key) return false
    const user = userString(t)
    if (steps === reach.levels.get(userset)) return user === start || user === 'user:*'
    if (!t.userRelation) return false
    key = user
  }
  return false
}

const subjects = [...USERS.map((u) => `user:${u}`), ...GROUPS.map((g) => `group:${g}#member`)]

function expectMatches(closure: FamilyClosure, live: Map<string, Tuple>): void {
  for (const s of subjects) {
    const [type, rest] = s.split(':')
    const [id, relation = ''] = rest.split('#')
    const reach = closure.reach(type, id, relation)
    expect([...reach.levels].sort(), s).toEqual([...naiveLevels(live.values(), s)].sort())
    for (const userset of reach.levels.keys()) expect(chainIsValid(reach, userset, s, live), `${s} in ${userset}`).toBe(true)
    expect(reach.deepest).toBe(Math.max(-1, ...reach.levels.values()))
  }
  // Who is in each group, transitively, without the wildcard's merge.
  for (const g of GROUPS) {
    const userset = `group:${g}#member`
    const expected = subjects.filter((s) => {
      const own = new Map([...live].filter(([, t]) => t.conditionName === ''))
      return naiveOwn(own.values(), s).has(userset)
    })
    expect([...closure.members(userset)].sort(), userset).toEqual(expected.sort())
  }
}

/** naiveLevels without the wildcard source. */
function naiveOwn(live: Iterable<Tuple>, start: string): Set<string> {
  const admitted = [...live]
  const seen = new Set<string>()
  let frontier = [start]
  while (frontier.length) {
    const next: string[] = []
    for (const node of frontier) {
      for (const t of admitted) {
        const k = `group:${t.objectId}#member`
        if (userString(t) === node && !seen.has(k)) {
          seen.add(k)
          next.push(k)
        }
      }
    }
    frontier = next
  }
  return seen
}

const tupleArb = fc
  .record({
    group: fc.constantFrom(...GROUPS),
    user: fc.oneof(fc.constantFrom(...USERS), fc.constantFrom(...GROUPS.map((g) => `group:${g}`))),
    conditioned: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  })
  .map(({ group, user, conditioned }) => member(group, user, conditioned ? { conditionName: 'c' } : {}))

describe('FamilyClosure: incremental maintenance', () => {
  it('equals a closure recomputed from scratch after random batches of writes and deletes (cycles, diamonds, wildcards)', () => {
    fc.assert(
      fc.property(
        fc.array(tupleArb, { maxLength: 14 }),
        fc.array(fc.array(fc.record({ del: fc.boolean(), t: tupleArb, pick: fc.nat() }), { minLength: 1, maxLength: 5 }), { maxLength: 8 }),
        (initial, batches) => {
          const live = new Map<string, Tuple>()
          const built = new FamilyClosure(FAMILY)
          for (const t of initial) {
            live.set(idOf(t), t)
          }
          for (const t of live.values()) built.add(t)
          for (const s of built.subjects()) built.compute(s)
          expectMatches(built, live)
          let revision = 1
          for (const batch of batches) {
            const changes: TupleChange[] = []
            let seq = 0
            for (const op of batch) {
              const known = [...live.values()]
              if (op.del && known.length) {
                const t = known[op.pick % known.length]
                live.delete(idOf(t))
                changes.push(change(t, 'delete', revision, seq++))
              } else {
                live.set(idOf(op.t), op.t)
                changes.push(change(op.t, 'write', revision, seq++))
              }
            }
            built.applyAll(changes)
            revision++
            expectMatches(built, live)
            // The same state from scratch: same entries.
            const fresh = new FamilyClosure(FAMILY)
            for (const t of live.values()) fresh.add(t)
            for (const s of fresh.subjects()) fresh.compute(s)
            expect(built.entries).toBe(fresh.entries)
            expect(built.tuples).toBe(fresh.tuples)
          }
        },
      ),
      { numRuns: 150, seed: 20261206 },
    )
  })

  it('equals a closure from scratch when batches arrive while a large recompute is partly done', () => {
    fc.assert(
      fc.property(
        fc.array(tupleArb, { maxLength: 14 }),
        fc.array(fc.record({ ops: fc.array(fc.record({ del: fc.boolean(), t: tupleArb, pick: fc.nat() }), { minLength: 1, maxLength: 5 }), drained: fc.nat(3) }), { maxLength: 12 }),
        (initial, batches) => {
          const live = new Map<string, Tuple>()
          const built = new FamilyClosure(FAMILY)
          for (const t of initial) live.set(idOf(t), t)
          for (const t of live.values()) built.add(t)
          for (const s of built.subjects()) built.compute(s)
          let revision = 1
          for (const { ops, drained } of batches) {
            const changes: TupleChange[] = []
            let seq = 0
            for (const op of ops) {
              const known = [...live.values()]
              if (op.del && known.length) {
                const t = known[op.pick % known.length]
                live.delete(idOf(t))
                changes.push(change(t, 'delete', revision, seq++))
              } else {
                live.set(idOf(op.t), op.t)
                changes.push(change(op.t, 'write', revision, seq++))
              }
            }
            // Nothing inline: everything left to drain, of which only part is done before the next batch.
            built.applyAll(changes, 0)
            built.drain(drained)
            revision++
          }
          expect(built.drain(Number.POSITIVE_INFINITY)).toBe(0)
          expectMatches(built, live)
          const fresh = new FamilyClosure(FAMILY)
          for (const t of live.values()) fresh.add(t)
          for (const s of fresh.subjects()) fresh.compute(s)
          expect(built.entries).toBe(fresh.entries)
        },
      ),
      { numRuns: 3000, seed: 20261207 },
    )
  })

  it('replaces a closure rather than changing it: a reach handed out keeps its state', () => {
    const c = new FamilyClosure(FAMILY)
    c.add(member('g1', 'anne'))
    c.add(member('g2', 'group:g1'))
    for (const s of c.subjects()) c.compute(s)
    const before = c.reach('user', 'anne', '')
    expect([...before.levels]).toEqual([['group:g1#member', 0], ['group:g2#member', 1]])
    c.applyAll([change(member('g2', 'group:g1'), 'delete', 2, 0)])
    expect([...before.levels]).toEqual([['group:g1#member', 0], ['group:g2#member', 1]])
    expect([...c.reach('user', 'anne', '').levels]).toEqual([['group:g1#member', 0]])
  })
})

// --- over a real SQLite datastore ---------------------------------------------------------------

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const T0 = new Date('2026-01-01T00:00:00Z')
const NOW = T0.getTime()
const bound = () => ({ validUntil: Number.POSITIVE_INFINITY })

describe('MembershipClosures over SQLite', () => {
  let ds: SqliteDatastore
  afterEach(() => ds?.close())

  async function open(): Promise<SqliteDatastore> {
    ds = new SqliteDatastore({ filename: ':memory:' })
    await ds.createStore(S, 'closures', T0)
    return ds
  }
  const write = (writes: Tuple[], deletes: Tuple[] = []) =>
    ds.write(S, { writes, deletes, onDuplicate: 'error', onMissing: 'error' }, T0)
  const anne = { type: 'user', id: 'anne', relation: '' }

  it('is built in the background, then follows the changelog to each request\'s revision', async () => {
    await open()
    await write([member('g1', 'anne'), member('g2', 'group:g1'), member('g3', 'group:g2')])
    const closures = new MembershipClosures({ datastore: ds, maxEntries: 1000 })
    // The first look-up starts the build and walks.
    const first = await closures.view(S, await ds.headRevision(S), NOW, [])
    expect(first.reachable(FAMILY, anne, 25, bound())).toBeUndefined()
    expect(await closures.ready(S, FAMILY)).toBe(true)
    let view = await closures.view(S, await ds.headRevision(S), NOW, [])
    expect([...view.reachable(FAMILY, anne, 25, bound())!.levels]).toEqual([
      ['group:g1#member', 0],
      ['group:g2#member', 1],
      ['group:g3#member', 2],
    ])
    // A write and a delete: the next view at the new revision sees both.
    const r = await write([member('g4', 'group:g3')], [member('g2', 'group:g1')])
    view = await closures.view(S, r, NOW, [])
    expect([...view.reachable(FAMILY, anne, 25, bound())!.levels]).toEqual([['group:g1#member', 0]])
    const g2 = view.reachable(FAMILY, { type: 'group', id: 'g2', relation: 'member' }, 25, bound())!
    expect([...g2.levels]).toEqual([['group:g3#member', 0], ['group:g4#member', 1]])
    const s = closures.stats()
    expect(s).toMatchObject({ closures: 1, builds: 1, tuples: 3 })
    expect(s.entries).toBe(1 + 2 + 1) // anne: g1; g2: g3, g4; g3: g4
    expect(s.fallbacks).toBe(1)
    expect(s.changesApplied).toBeGreaterThanOrEqual(2)
  })

  it('falls back when it cannot answer exactly: contextual tuples, expired tuples, the depth limit, the budget', async () => {
    await open()
    await write([member('g1', 'anne'), member('g2', 'group:g1'), member('g3', 'bob', { expiresAt: NOW + 60_000 })])
    const closures = new MembershipClosures({ datastore: ds, maxEntries: 1000 })
    expect(await closures.ready(S, FAMILY)).toBe(true)
    const r = await ds.headRevision(S)
    // Contextual tuples that add to the family: walked; others do not matter.
    const withContext = await closures.view(S, r, NOW, [member('g9', 'anne')])
    expect(withContext.reachable(FAMILY, anne, 25, bound())).toBeUndefined()
    const doc: Tuple = { ...member('d', 'anne'), objectType: 'document', relation: 'viewer' }
    expect((await closures.view(S, r, NOW, [doc])).reachable(FAMILY, anne, 25, bound())).toBeDefined()
    // An expiring tuple bounds how long the answer may be cached; once expired (not swept), walked.
    const b = bound()
    expect((await closures.view(S, r, NOW, [])).reachable(FAMILY, anne, 25, b)).toBeDefined()
    expect(b.validUntil).toBe(NOW + 60_000)
    expect((await closures.view(S, r, NOW + 60_000, [])).reachable(FAMILY, anne, 25, bound())).toBeUndefined()
    // A path as long as the depth limit: the walk reports the limit.
    const view = await closures.view(S, r, NOW, [])
    expect(view.reachable(FAMILY, anne, 3, bound())).toBeDefined()
    expect(view.reachable(FAMILY, anne, 2, bound())).toBeUndefined()

    // Over the budget: never built, walked (and tried again after the retry time).
    const small = new MembershipClosures({ datastore: ds, maxEntries: 2 })
    expect(await small.ready(S, FAMILY)).toBe(false)
    expect((await small.view(S, r, NOW, [])).reachable(FAMILY, anne, 25, bound())).toBeUndefined()
    expect(small.stats().closures).toBe(0)
  })

  it('lets a paused request run between the pages of a build (SQLite reads never go round the loop)', async () => {
    // At scale 30 the first deep-group check started the build, paused at its slice and waited
    // for the whole family to be read (~14 s): it must wait for one page, not all of them.
    await open()
    await write(Array.from({ length: 40 }, (_, i) => member(`g${i}`, i % 2 ? 'anne' : `group:g${i - 1}`)))
    let pages = 0
    const source = {
      read: (...a: Parameters<SqliteDatastore['read']>) => {
        pages++
        return ds.read(...a)
      },
      readChanges: ds.readChanges.bind(ds),
      headRevision: ds.headRevision.bind(ds),
    }
    const closures = new MembershipClosures({ datastore: source, maxEntries: 1000, pageSize: 4 })
    expect(closures.closure(S, FAMILY, await ds.headRevision(S))).toBeUndefined()
    // A request paused at its slice (engine/pacing.ts) resumes after one turn of the event loop.
    await new Promise<void>((resolve) => setImmediate(resolve))
    expect(pages).toBeLessThanOrEqual(2)
    expect(await closures.ready(S, FAMILY)).toBe(true)
    expect(pages).toBe(10) // 40 tuples, 4 a page
    expect(closures.stats().tuples).toBe(40)
  })

  it('drops a closure that outgrows its budget while catching up, and a deleted store', async () => {
    await open()
    await write([member('g1', 'anne')])
    const closures = new MembershipClosures({ datastore: ds, maxEntries: 3 })
    expect(await closures.ready(S, FAMILY)).toBe(true)
    const r = await write([member('g2', 'group:g1'), member('g3', 'group:g2')])
    const view = await closures.view(S, r, NOW, [])
    expect(view.reachable(FAMILY, anne, 25, bound())).toBeUndefined()
    expect(closures.stats().closures).toBe(0)
    const other = new MembershipClosures({ datastore: ds, maxEntries: 100 })
    expect(await other.ready(S, FAMILY)).toBe(true)
    other.drop(S)
    expect(other.stats()).toMatchObject({ closures: 0, entries: 0 })
  })
})

describe('MembershipClosures: consistency with the tuple index, bounded work', () => {
  let ds: SqliteDatastore
  afterEach(() => ds?.close())

  async function open(storeId = S): Promise<SqliteDatastore> {
    ds ??= new SqliteDatastore({ filename: ':memory:' })
    await ds.createStore(storeId, 'closures', T0)
    return ds
  }
  const write = (writes: Tuple[], deletes: Tuple[] = [], storeId = S) =>
    ds.write(storeId, { writes, deletes, onDuplicate: 'error', onMissing: 'error' }, T0)
  const anne = { type: 'user', id: 'anne', relation: '' }
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve))
  }

  it('answers only at the revision the tuple index is at when asked: one write is never seen half', async () => {
    ds = undefined as unknown as SqliteDatastore
    await open()
    const blocked: Tuple = { ...member('1', 'anne'), objectType: 'document', relation: 'blocked' }
    const r1 = await write([member('eng', 'anne'), blocked])
    const index = new TupleIndex({ datastore: ds, maxTuples: 1000 })
    const closures = new MembershipClosures({ datastore: ds, maxEntries: 1000 })
    expect(await index.ready(S)).toBe(true)
    expect(await closures.ready(S, FAMILY)).toBe(true)
    // Request 1, bound to r1: the index and the closure agree.
    const reader1 = (await index.reader(S, r1, NOW))!
    const view1 = await closures.view(S, r1, NOW, [], () => reader1.revision)
    expect(view1.reachable(FAMILY, anne, 25, bound())).toBeDefined()
    // One atomic write: anne leaves eng and is no longer blocked on document:1.
    const r2 = await write([], [member('eng', 'anne'), blocked])
    // Request 2 moves the (shared) index to r2 while request 1 is still evaluating.
    expect(reader1.revision).toBe(r1)
    await index.reader(S, r2, NOW)
    expect(reader1.revision).toBe(r2)
    // Request 1 now reads "not blocked" from the index (r2): the closure (still at r1, where anne
    // is in eng) must not answer, or document:1#view would be allowed at no revision.
    const other = { type: 'user', id: 'bob', relation: '' }
    expect(view1.reachable(FAMILY, other, 25, bound())).toBeUndefined()
    expect(view1.reachable(FAMILY, anne, 25, bound())).toBeUndefined()
    // A request bound to r2 brings the closure to the index's revision, and it answers again.
    const reader2 = (await index.reader(S, r2, NOW))!
    const view2 = await closures.view(S, r1, NOW, [], () => reader2.revision)
    expect([...view2.reachable(FAMILY, anne, 25, bound())!.levels]).toEqual([])
  })

  it('recomputes a change that reaches many subjects in the background, walking meanwhile', async () => {
    ds = undefined as unknown as SqliteDatastore
    await open()
    const n = INLINE_RECOMPUTE + 100
    await write(Array.from({ length: n }, (_, i) => member('big', `u${i}`)))
    const closures = new MembershipClosures({ datastore: ds, maxEntries: 100_000 })
    expect(await closures.ready(S, FAMILY)).toBe(true)
    const u0 = { type: 'user', id: 'u0', relation: '' }
    // Nesting the big group into another reaches every one of its members: not recomputed on
    // the request path; the requests walk until the background work is done.
    const r = await write([member('all', 'group:big')])
    const view = await closures.view(S, r, NOW, [])
    expect(view.reachable(FAMILY, u0, 25, bound())).toBeUndefined()
    for (let i = 0; i < 100 && !(await closures.view(S, r, NOW, [])).reachable(FAMILY, u0, 25, bound()); i++) await turns(5)
    const after = (await closures.view(S, r, NOW, [])).reachable(FAMILY, u0, 25, bound())!
    expect([...after.levels]).toEqual([
      ['group:big#member', 0],
      ['group:all#member', 1],
    ])
    expect(closures.stats().entries).toBe(2 * n + 1)
    // A small change is still applied inline, on the request path.
    const r2 = await write([member('solo', 'u0')])
    expect([...(await closures.view(S, r2, NOW, [])).reachable(FAMILY, u0, 25, bound())!.levels]).toContainEqual(['group:solo#member', 0])
  })

  it('checks the budget while a build reads, and counts concurrent builds together', async () => {
    ds = undefined as unknown as SqliteDatastore
    await open()
    await write(Array.from({ length: 20 }, (_, i) => member(`g${i}`, 'anne')))
    let reads = 0
    const counting = { ...pick(ds), read: (...a: Parameters<SqliteDatastore['read']>) => (reads++, ds.read(...a)) }
    const closures = new MembershipClosures({ datastore: counting, maxEntries: 5, pageSize: 2 })
    expect(await closures.ready(S, FAMILY)).toBe(false)
    // It stopped at the page that went past the budget, not after reading all 10 pages.
    expect(reads).toBeLessThanOrEqual(3)

    // Two stores that each fit, but not together: built at once, only one is kept.
    const S2 = '01HZZZZZZZZZZZZZZZZZZZZZZY'
    const S3 = '01HZZZZZZZZZZZZZZZZZZZZZZX'
    await open(S2)
    await open(S3)
    await write(Array.from({ length: 8 }, (_, i) => member(`g${i}`, 'anne')), [], S2)
    await write(Array.from({ length: 8 }, (_, i) => member(`g${i}`, 'bob')), [], S3)
    // A page per tuple, so that the two builds take turns: each counts what the other holds so
    // far, and one stops reading as soon as the two together pass the budget.
    reads = 0
    expect(await new MembershipClosures({ datastore: counting, maxEntries: 100, pageSize: 1 }).ready(S2, FAMILY)).toBe(true)
    const alone = reads
    reads = 0
    const shared = new MembershipClosures({ datastore: counting, maxEntries: 10, pageSize: 1 })
    const built = await Promise.all([shared.ready(S2, FAMILY), shared.ready(S3, FAMILY)])
    expect(built.filter(Boolean)).toHaveLength(1)
    expect(shared.stats().entries).toBeLessThanOrEqual(10)
    expect(reads).toBeLessThan(2 * alone)
  })

  it('backs off a family that did not fit, and retries only once the store changed materially', async () => {
    ds = undefined as unknown as SqliteDatastore
    await open()
    await write(Array.from({ length: 20 }, (_, i) => member(`g${i}`, 'anne')))
    let reads = 0
    let clock = NOW
    const counting = { ...pick(ds), read: (...a: Parameters<SqliteDatastore['read']>) => (reads++, ds.read(...a)) }
    const closures = new MembershipClosures({ datastore: counting, maxEntries: 10, retryMs: 60_000, now: () => clock })
    expect(await closures.ready(S, FAMILY)).toBe(false)
    const builds = reads
    const lookUp = async () => {
      closures.closure(S, FAMILY, 0)
      await turns(20)
    }
    // A minute later, and much later: nothing changed, so it is not read again.
    clock += 61_000
    await lookUp()
    clock += 10 * 3_600_000
    await lookUp()
    expect(reads).toBe(builds)
    // Below a tenth of its tuples in changes: still not.
    await write([member('x', 'bob')])
    clock += 10 * 3_600_000
    await lookUp()
    expect(reads).toBe(builds)
    // Materially changed (most of the family deleted): built again once the back-off has passed.
    await write([], Array.from({ length: 15 }, (_, i) => member(`g${i}`, 'anne')))
    clock += 10 * 3_600_000
    await lookUp()
    expect(await closures.ready(S, FAMILY)).toBe(true)
    expect(reads).toBeGreaterThan(builds)
  })

  it('keeps the earliest expiry through deletes of the earliest and rewrites with another expiry', () => {
    const closure = new FamilyClosure(FAMILY)
    const expiring = Array.from({ length: 300 }, (_, i) => member(`g${i}`, 'anne', { expiresAt: NOW + 1000 + i }))
    for (const t of expiring) closure.add(t)
    expect(closure.minExpiry).toBe(NOW + 1000)
    // The sweeper deletes the oldest first.
    closure.applyAll(expiring.slice(0, 100).map((t, i) => change(t, 'delete', 2, i)))
    expect(closure.minExpiry).toBe(NOW + 1100)
    // Rewritten later, then earlier; then deleted out of order.
    closure.applyAll([change({ ...expiring[100], expiresAt: NOW + 5000 }, 'write', 3, 0)])
    expect(closure.minExpiry).toBe(NOW + 1101)
    closure.applyAll([change({ ...expiring[150], expiresAt: NOW + 10 }, 'write', 4, 0)])
    expect(closure.minExpiry).toBe(NOW + 10)
    closure.applyAll([change(expiring[150], 'delete', 5, 0), change({ ...expiring[101], expiresAt: undefined }, 'write', 5, 1)])
    expect(closure.minExpiry).toBe(NOW + 1102)
    closure.applyAll(expiring.slice(102).map((t, i) => change(t, 'delete', 6, i)))
    expect(closure.minExpiry).toBe(NOW + 5000)
    closure.applyAll([change(expiring[100], 'delete', 7, 0)])
    expect(closure.minExpiry).toBe(Number.POSITIVE_INFINITY)
  })
})

/** The part of the datastore a closure reads (to wrap one of them). */
function pick(d: SqliteDatastore) {
  return { read: d.read.bind(d), readChanges: d.readChanges.bind(d), headRevision: d.headRevision.bind(d) }
}

// --- through the server: closure on and off ------------------------------------------------------

const MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member]
    define view: viewer or view from parent
type document
  relations
    define parent: [folder]
    define viewer: [user, group#member]
    define blocked: [user]
    define view: (viewer or view from parent) but not blocked
`

type Key = { user: string; relation: string; object: string }
const STRICT = { onDuplicate: 'error', onMissing: 'error' } as const

function randomStore(seed: number): Key[] {
  const rnd = random(seed)
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]
  const groups = Array.from({ length: 10 }, (_, i) => `g${i}`)
  const users = Array.from({ length: 8 }, (_, i) => `user:u${i}`)
  const keys = new Map<string, Key>()
  const add = (k: Key) => {
    if (k.user === `${k.object}#${k.relation}`) return
    keys.set(`${k.object}#${k.relation}@${k.user}`, k)
  }
  for (let i = 0; i < 40; i++) add({ object: `group:${pick(groups)}`, relation: 'member', user: rnd() < 0.5 ? pick(users) : `group:${pick(groups)}#member` })
  add({ object: `group:${pick(groups)}`, relation: 'member', user: 'user:*' })
  for (let f = 0; f < 4; f++) {
    if (f > 0) add({ object: `folder:f${f}`, relation: 'parent', user: `folder:f${f - 1}` })
    add({ object: `folder:f${f}`, relation: 'viewer', user: `group:${pick(groups)}#member` })
  }
  for (let d = 0; d < 6; d++) {
    add({ object: `document:d${d}`, relation: 'parent', user: `folder:f${Math.floor(rnd() * 4)}` })
    add({ object: `document:d${d}`, relation: 'viewer', user: rnd() < 0.7 ? `group:${pick(groups)}#member` : pick(users) })
    if (rnd() < 0.3) add({ object: `document:d${d}`, relation: 'blocked', user: pick(users) })
  }
  return [...keys.values()]
}

describe('checks and lists with the closure on and off', () => {
  const clients: TestClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close()
  })

  async function server(closure: 'on' | 'off', keys: Key[]): Promise<{ c: TestClient; storeId: string }> {
    const c = await createTestClient({ membershipClosure: closure, checkCacheSize: 0 })
    clients.push(c)
    const storeId = (await c.request('POST', '/stores', { name: 'closure' })).body.id
    const m = await c.request('POST', `/stores/${storeId}/authorization-models`, MODEL, { 'content-type': 'text/plain' })
    expect(m.status).toBe(201)
    await c.pemba.writes.write(storeId, { writes: keys, ...STRICT })
    if (closure === 'on') expect(await c.pemba.evaluation.membershipClosuresReady(storeId)).toBe(true)
    return { c, storeId }
  }

  for (const seed of [1, 2, 3, 4]) {
    it(`gives the same answers, witnesses as long and lists (seed ${seed})`, async () => {
      const keys = randomStore(seed)
      const on = await server('on', keys)
      const off = await server('off', keys)
      const live = new Set(keys.map((k) => `${k.object}#${k.relation}@${k.user}`))
      const users = [...Array.from({ length: 8 }, (_, i) => `user:u${i}`), 'user:nobody', 'group:g1#member']
      const objects = [...Array.from({ length: 6 }, (_, i) => `document:d${i}`), ...Array.from({ length: 4 }, (_, i) => `folder:f${i}`)]
      for (const user of users) {
        for (const object of objects) {
          for (const relation of ['viewer', 'view']) {
            const input = { tupleKey: { user, relation, object }, witness: true }
            const a = await on.c.pemba.checks.check(on.storeId, input)
            const b = await off.c.pemba.checks.check(off.storeId, input)
            expect(a.allowed, `${object}#${relation}@${user}`).toBe(b.allowed)
            expect(a.witness?.length).toBe(b.witness?.length)
            for (const w of a.witness ?? []) expect(live.has(`${w.object}#${w.relation}@${w.user}`)).toBe(true)
          }
        }
        for (const [type, relation] of [['document', 'view'], ['folder', 'view'], ['group', 'member']]) {
          const la = await on.c.pemba.lists.listObjects(on.storeId, { type, relation, user })
          const lb = await off.c.pemba.lists.listObjects(off.storeId, { type, relation, user })
          expect([...la.objects].sort(), `${type}#${relation}@${user}`).toEqual([...lb.objects].sort())
        }
      }
      const stats = on.c.pemba.evaluation.membershipClosureStats()!
      expect(stats.answered).toBeGreaterThan(0)
      expect(off.c.pemba.evaluation.membershipClosureStats()).toBeUndefined()
    })
  }

  it('sees a write at its revision, HIGHER_CONSISTENCY included, and walks with contextual tuples', async () => {
    const keys: Key[] = [
      { object: 'group:a', relation: 'member', user: 'user:anne' },
      { object: 'document:d', relation: 'viewer', user: 'group:c#member' },
    ]
    const { c, storeId } = await server('on', keys)
    const check = (consistency?: 'HIGHER_CONSISTENCY', contextualTuples?: Key[]) =>
      c.pemba.checks.check(storeId, { tupleKey: { user: 'user:anne', relation: 'view', object: 'document:d' }, consistency, contextualTuples })
    expect((await check()).allowed).toBe(false)
    await c.pemba.writes.write(storeId, {
      ...STRICT,
      writes: [
        { object: 'group:b', relation: 'member', user: 'group:a#member' },
        { object: 'group:c', relation: 'member', user: 'group:b#member' },
      ],
    })
    const answered = c.pemba.evaluation.membershipClosureStats()!.answered
    expect((await check('HIGHER_CONSISTENCY')).allowed).toBe(true)
    expect((await check()).allowed).toBe(true)
    expect(c.pemba.evaluation.membershipClosureStats()!.answered).toBeGreaterThan(answered)
    await c.pemba.writes.write(storeId, { ...STRICT, deletes: [{ object: 'group:b', relation: 'member', user: 'group:a#member' }] })
    expect((await check('HIGHER_CONSISTENCY')).allowed).toBe(false)
    // A contextual tuple in the family counts, for this request only (the closure walks then).
    const fallbacks = c.pemba.evaluation.membershipClosureStats()!.fallbacks
    expect((await check(undefined, [{ object: 'group:b', relation: 'member', user: 'group:a#member' }])).allowed).toBe(true)
    expect(c.pemba.evaluation.membershipClosureStats()!.fallbacks).toBeGreaterThan(fallbacks)
    expect((await check()).allowed).toBe(false)
    // list-objects sees the same.
    const l = await c.pemba.lists.listObjects(storeId, { type: 'group', relation: 'member', user: 'user:anne', consistency: 'HIGHER_CONSISTENCY' })
    expect(l.objects.sort()).toEqual(['group:a'])
    // /metrics reports it, and its size against its budget.
    const metrics = (await c.request('GET', '/metrics')).text
    const sample = (name: string) => Number(metrics.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1])
    expect(sample('pemba_membership_closure_closures')).toBe(1)
    expect(sample('pemba_membership_closure_entries')).toBe(c.pemba.evaluation.membershipClosureStats()!.entries)
    expect(sample('pemba_membership_closure_builds_total')).toBe(1)
    expect(sample('pemba_membership_closure_answers_total')).toBeGreaterThan(0)
    expect(sample('pemba_membership_closure_fallbacks_total')).toBeGreaterThan(0)
    expect(sample('pemba_cache_size\\{cache="membership_closure"\\}')).toBe(sample('pemba_membership_closure_entries'))
    expect(sample('pemba_cache_capacity\\{cache="membership_closure"\\}')).toBe(250_000)
  })

  it('refuses a bad PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES, naming it', async () => {
    const { loadConfig } = await import('../../src/config.ts')
    expect(() => loadConfig({ env: { PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES: 'lots' }, argv: [] })).toThrow(/PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES/)
    expect(() => loadConfig({ env: { PEMBA_MEMBERSHIP_CLOSURE: 'maybe' }, argv: [] })).toThrow(/PEMBA_MEMBERSHIP_CLOSURE/)
    expect(loadConfig({ env: {}, argv: [] }).membershipClosure).toBe('on')
  })
})
