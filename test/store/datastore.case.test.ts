/**
 * The datastore conformance suite: every Datastore implementation runs these same cases
 * (SQLite in memory and on a file today; PostgreSQL with the same file later).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TupleWriteRejected } from '../../src/core/errors.ts'
import type { Tuple } from '../../src/core/tuple.ts'
import type { AccessRequestRecord, Datastore, WriteRequest } from '../../src/store/store.ts'

export interface DatastoreSuiteOptions {
  name: string
  open(): Promise<Datastore>
}

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const T0 = new Date('2026-01-01T00:00:00Z')

/** ms after T0 */
const at = (ms: number) => T0.getTime() + ms
const HOUR = 3_600_000

/** A write of `writes` (errors on duplicates and missing deletes). */
function w(writes: Tuple[], deletes: Tuple[] = []): WriteRequest {
  return { writes, deletes, onDuplicate: 'error', onMissing: 'error' }
}

/** tuple(...) that expires `ms` after T0. */
function expiring(object: string, relation: string, user: string, ms: number): Tuple {
  return { ...tuple(object, relation, user), expiresAt: at(ms) }
}

function request(id: string, over: Partial<AccessRequestRecord> = {}): AccessRequestRecord {
  return {
    storeId: S,
    id,
    objectType: 'namespace',
    objectId: 'prod',
    relation: 'deployer',
    user: 'service_account:ci',
    durationMs: HOUR,
    reason: 'hotfix',
    status: 'pending',
    createdAt: T0,
    pendingUntil: new Date(at(24 * HOUR)),
    grantExpiresAt: null,
    events: [{ type: 'created', actor: 'service_account:ci', at: T0, reason: 'hotfix' }],
    ...over,
  }
}

function tuple(object: string, relation: string, user: string, condition?: { name: string; context?: Record<string, unknown> }): Tuple {
  const [objectType, objectId] = object.split(':')
  const [u, userRelation = ''] = user.split('#')
  const [userType, userId] = u.split(':')
  return {
    objectType,
    objectId,
    relation,
    userType,
    userId,
    userRelation,
    conditionName: condition?.name ?? '',
    conditionContext: condition?.context,
  }
}

export function runDatastoreSuite(opts: DatastoreSuiteOptions): void {
  describe(`datastore: ${opts.name}`, () => {
    let ds: Datastore
    beforeEach(async () => {
      ds = await opts.open()
      await ds.createStore(S, 'test-store', T0)
    })
    afterEach(async () => {
      await ds.close()
    })

    it('creates, lists, gets and soft-deletes stores', async () => {
      await ds.createStore('01HZZZZZZZZZZZZZZZZZZZZZZ1', 'other', T0)
      expect((await ds.getStore(S))?.name).toBe('test-store')
      const page1 = await ds.listStores({ pageSize: 1 })
      expect(page1.items).toHaveLength(1)
      expect(page1.next).not.toBe('')
      const page2 = await ds.listStores({ pageSize: 1, after: page1.next })
      expect(page2.items).toHaveLength(1)
      expect(page2.items[0].id).not.toBe(page1.items[0].id)
      expect((await ds.listStores({ pageSize: 10, name: 'other' })).items.map((s) => s.name)).toEqual(['other'])
      await ds.deleteStore(S, T0)
      expect(await ds.getStore(S)).toBeUndefined()
      expect((await ds.listStores({ pageSize: 10 })).items.map((s) => s.id)).not.toContain(S)
    })

    it('stores models and finds the latest by highest id', async () => {
      const m = (id: string) => ({ id, schema_version: '1.1', type_definitions: [{ type: 'user', relations: {} }] })
      await ds.writeModel(S, m('01HA0000000000000000000001'), T0)
      await ds.writeModel(S, m('01HA0000000000000000000003'), T0)
      await ds.writeModel(S, m('01HA0000000000000000000002'), T0)
      expect(await ds.latestModelId(S)).toBe('01HA0000000000000000000003')
      expect((await ds.readModel(S, '01HA0000000000000000000002'))?.type_definitions[0].type).toBe('user')
      const page = await ds.listModels(S, { pageSize: 2 })
      expect(page.items.map((x) => x.id)).toEqual(['01HA0000000000000000000003', '01HA0000000000000000000002'])
      const rest = await ds.listModels(S, { pageSize: 2, after: page.next })
      expect(rest.items.map((x) => x.id)).toEqual(['01HA0000000000000000000001'])
      expect(rest.next).toBe('')
    })

    it('counts a store: models, latest model, tuples live at an instant (up to a cap), last change', async () => {
      const CAP = 1000
      expect(await ds.storeStats(S, at(0), CAP)).toEqual({ modelCount: 0, latestModelId: undefined, tupleCount: 0, tupleCountCapped: false, lastChangeAt: undefined })
      const m = (id: string) => ({ id, schema_version: '1.1', type_definitions: [{ type: 'user', relations: {} }] })
      await ds.writeModel(S, m('01HA0000000000000000000002'), T0)
      await ds.writeModel(S, m('01HA0000000000000000000001'), T0)
      const other = '01HZZZZZZZZZZZZZZZZZZZZZZ1'
      await ds.createStore(other, 'other', T0)
      await ds.write(other, w([tuple('doc:9', 'viewer', 'user:zed')]), new Date(at(5 * HOUR)))
      await ds.write(S, w([tuple('doc:1', 'viewer', 'user:anne'), expiring('doc:2', 'viewer', 'user:bob', HOUR)]), new Date(at(1000)))
      await ds.write(S, w([tuple('doc:3', 'viewer', 'user:carl')]), new Date(at(2000)))
      await ds.write(S, w([], [tuple('doc:3', 'viewer', 'user:carl')]), new Date(at(3000)))
      const before = await ds.storeStats(S, at(HOUR - 1), CAP)
      expect(before).toEqual({ modelCount: 2, latestModelId: '01HA0000000000000000000002', tupleCount: 2, tupleCountCapped: false, lastChangeAt: new Date(at(3000)) })
      // Expired, not swept: stored, not counted (nor counted towards the cap).
      expect(await ds.storeStats(S, at(HOUR), CAP)).toMatchObject({ tupleCount: 1, tupleCountCapped: false })
      expect(await ds.storeStats(S, at(HOUR), 1)).toMatchObject({ tupleCount: 1, tupleCountCapped: false })
      // The cap: at most that many counted, and whether there are more.
      expect(await ds.storeStats(S, at(HOUR - 1), 2)).toMatchObject({ tupleCount: 2, tupleCountCapped: false })
      expect(await ds.storeStats(S, at(HOUR - 1), 1)).toMatchObject({ tupleCount: 1, tupleCountCapped: true, modelCount: 2 })
      expect(await ds.storeStats(S, at(HOUR - 1), 0)).toMatchObject({ tupleCount: 0, tupleCountCapped: true })
      expect(await ds.storeStats(other, at(0), CAP)).toMatchObject({ modelCount: 0, tupleCount: 1, lastChangeAt: new Date(at(5 * HOUR)) })
      expect(await ds.storeStats('01HZZZZZZZZZZZZZZZZZZZZZZ9', at(0), CAP)).toEqual({
        modelCount: 0,
        latestModelId: undefined,
        tupleCount: 0,
        tupleCountCapped: false,
        lastChangeAt: undefined,
      })
    })

    it('writes atomically, deletes first, and counts revisions', async () => {
      expect(await ds.headRevision(S)).toBe(0)
      const r1 = await ds.write(
        S,
        { writes: [tuple('doc:1', 'viewer', 'user:anne'), tuple('doc:1', 'viewer', 'group:eng#member')], deletes: [], onDuplicate: 'error', onMissing: 'error' },
        T0,
      )
      expect(r1).toBe(1)
      // A delete and a write of the same tuple in one request: the delete applies first.
      const r2 = await ds.write(
        S,
        { writes: [tuple('doc:1', 'viewer', 'user:anne')], deletes: [tuple('doc:1', 'viewer', 'user:anne')], onDuplicate: 'error', onMissing: 'error' },
        T0,
      )
      expect(r2).toBe(2)
      // A failing write changes nothing, not even the part before the failure.
      await expect(
        ds.write(
          S,
          { writes: [tuple('doc:2', 'viewer', 'user:bob'), tuple('doc:1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' },
          T0,
        ),
      ).rejects.toMatchObject({ reason: 'write_existing', tuple: { objectId: '1', userId: 'anne' } })
      expect(await ds.headRevision(S)).toBe(2)
      expect((await ds.reader(S, 2, T0.getTime()).readObjectRelation('doc', '2', 'viewer'))).toHaveLength(0)
      await expect(
        ds.write(S, { writes: [], deletes: [tuple('doc:9', 'viewer', 'user:x')], onDuplicate: 'error', onMissing: 'error' }, T0),
      ).rejects.toMatchObject({ reason: 'delete_missing', tuple: { objectId: '9', userId: 'x' } })
      // ignore: a missing delete and an identical write are no-ops and do not bump the revision.
      const r3 = await ds.write(
        S,
        { writes: [tuple('doc:1', 'viewer', 'user:anne')], deletes: [tuple('doc:9', 'viewer', 'user:x')], onDuplicate: 'ignore', onMissing: 'ignore' },
        T0,
      )
      expect(r3).toBe(2)
    })

    it('rejects an ignored duplicate whose condition differs (409)', async () => {
      await ds.write(S, { writes: [tuple('doc:1', 'viewer', 'user:anne', { name: 'c', context: { x: 1 } })], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      await expect(
        ds.write(S, { writes: [tuple('doc:1', 'viewer', 'user:anne', { name: 'c', context: { x: 2 } })], deletes: [], onDuplicate: 'ignore', onMissing: 'error' }, T0),
      ).rejects.toMatchObject({ reason: 'different_condition', tuple: { objectId: '1', userId: 'anne' } })
      await ds.write(S, { writes: [tuple('doc:1', 'viewer', 'user:anne', { name: 'c', context: { x: 1 } })], deletes: [], onDuplicate: 'ignore', onMissing: 'error' }, T0)
    })

    it('reads in both directions the evaluator needs', async () => {
      await ds.write(
        S,
        {
          writes: [
            tuple('doc:1', 'viewer', 'user:anne'),
            tuple('doc:1', 'viewer', 'user:*'),
            tuple('doc:1', 'viewer', 'group:eng#member'),
            tuple('doc:2', 'viewer', 'group:eng#member'),
            tuple('doc:1', 'parent', 'folder:f1', { name: 'c', context: { a: 'b' } }),
          ],
          deletes: [],
          onDuplicate: 'error',
          onMissing: 'error',
        },
        T0,
      )
      const r = ds.reader(S, await ds.headRevision(S), T0.getTime())
      expect((await r.readObjectRelation('doc', '1', 'viewer')).length).toBe(3)
      const users = await r.readUsers('doc', '1', 'viewer', [
        { type: 'user', id: 'anne', relation: '' },
        { type: 'user', id: '*', relation: '' },
        { type: 'user', id: 'bob', relation: '' },
      ])
      expect(users.map((t) => t.userId).sort()).toEqual(['*', 'anne'])
      const usersets = await r.readUsersets('doc', '1', 'viewer')
      expect(usersets.map((t) => `${t.userType}:${t.userId}#${t.userRelation}`)).toEqual(['group:eng#member'])
      const reverse = await r.readStartingWithUser('doc', 'viewer', [{ type: 'group', id: 'eng', relation: 'member' }])
      expect(reverse.map((t) => t.objectId).sort()).toEqual(['1', '2'])
      const parent = await r.readObjectRelation('doc', '1', 'parent')
      expect(parent[0].conditionName).toBe('c')
      expect(parent[0].conditionContext).toEqual({ a: 'b' })
    })

    it('reads a small object whole, and refuses one over the limit', async () => {
      await ds.write(
        S,
        {
          writes: [
            tuple('doc:1', 'viewer', 'user:anne'),
            tuple('doc:1', 'parent', 'folder:f1'),
            tuple('doc:1', 'owner', 'group:eng#member'),
            tuple('doc:2', 'viewer', 'user:anne'),
          ],
          deletes: [],
          onDuplicate: 'error',
          onMissing: 'error',
        },
        T0,
      )
      const r = ds.reader(S, await ds.headRevision(S), T0.getTime())
      const whole = await r.readObject('doc', '1', 3)
      expect(whole?.map((t) => t.relation).sort()).toEqual(['owner', 'parent', 'viewer'])
      expect(await r.readObject('doc', '1', 2)).toBeUndefined()
      expect(await r.readObject('doc', '9', 3)).toEqual([])
    })

    it('reads starting with several users at once, of mixed kinds', async () => {
      const writes = Array.from({ length: 120 }, (_, i) => tuple(`group:p${i}`, 'member', `group:g${i}#member`))
      writes.push(tuple('group:top', 'member', 'user:anne'))
      await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const r = ds.reader(S, await ds.headRevision(S), T0.getTime())
      const users = Array.from({ length: 120 }, (_, i) => ({ type: 'group', id: `g${i}`, relation: 'member' }))
      users.push({ type: 'user', id: 'anne', relation: '' }, { type: 'group', id: 'nope', relation: 'member' })
      const found = await r.readStartingWithUser('group', 'member', users)
      expect(found).toHaveLength(121)
      expect(new Set(found.map((t) => t.objectId)).size).toBe(121)
    })

    it('pages tuples by filter with opaque cursors', async () => {
      const writes = Array.from({ length: 7 }, (_, i) => tuple(`doc:${i}`, 'viewer', 'user:anne'))
      writes.push(tuple('folder:1', 'viewer', 'user:anne'))
      await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const seen: string[] = []
      let after: string | undefined
      do {
        const page = await ds.read(S, { objectType: 'doc', userType: 'user', userId: 'anne', userRelation: '' }, { pageSize: 3, after }, T0.getTime())
        seen.push(...page.items.map((t) => t.objectId))
        after = page.next || undefined
      } while (after)
      expect(seen.sort()).toEqual(['0', '1', '2', '3', '4', '5', '6'])
      await expect(ds.read(S, {}, { pageSize: 3, after: 'not json' }, T0.getTime())).rejects.toThrow(/Invalid continuation token/)
    })

    it('pages filters that fix a prefix of the key, or all of it, without skipping or repeating', async () => {
      // The cursor then compares only the key columns after the fixed ones (tuples.ts, fixedKeyPrefix).
      const writes = Array.from({ length: 5 }, (_, i) => tuple('doc:1', 'viewer', `user:u${i}`))
      writes.push(...Array.from({ length: 4 }, (_, i) => tuple('doc:1', 'viewer', `group:g${i}#member`)))
      writes.push(tuple('doc:1', 'owner', 'user:u0'), tuple('doc:2', 'viewer', 'user:u0'))
      await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const pageAll = async (f: Parameters<typeof ds.read>[1], pageSize: number) => {
        const seen: string[] = []
        let after: string | undefined
        do {
          const page = await ds.read(S, f, { pageSize, after }, T0.getTime())
          seen.push(...page.items.map((t) => `${t.objectType}:${t.objectId}#${t.relation}@${t.userType}:${t.userId}${t.userRelation ? '#' + t.userRelation : ''}`))
          after = page.next || undefined
        } while (after)
        return seen
      }
      const viewers = await pageAll({ objectType: 'doc', objectId: '1', relation: 'viewer' }, 2)
      expect(viewers).toHaveLength(9)
      expect(new Set(viewers).size).toBe(9)
      expect(await pageAll({ objectType: 'doc', objectId: '1' }, 1)).toHaveLength(10)
      const one = { objectType: 'doc', objectId: '1', relation: 'viewer', userRelation: '', userType: 'user', userId: 'u3' }
      expect(await pageAll(one, 1)).toEqual(['doc:1#viewer@user:u3'])
    })

    it('records every change in order, with type filter and cursors', async () => {
      await ds.write(S, { writes: [tuple('doc:1', 'viewer', 'user:anne'), tuple('folder:1', 'viewer', 'user:anne')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      await ds.write(S, { writes: [], deletes: [tuple('doc:1', 'viewer', 'user:anne')], onDuplicate: 'error', onMissing: 'error' }, new Date(T0.getTime() + 1000))
      const all = await ds.readChanges(S, { pageSize: 10 })
      expect(all.items.map((c) => `${c.operation} ${c.objectType}:${c.objectId}`)).toEqual([
        'write doc:1',
        'write folder:1',
        'delete doc:1',
      ])
      const docs = await ds.readChanges(S, { pageSize: 1, objectType: 'doc' })
      expect(docs.items).toHaveLength(1)
      const next = await ds.readChanges(S, { pageSize: 1, objectType: 'doc', after: docs.next })
      expect(next.items[0].operation).toBe('delete')
      const none = await ds.readChanges(S, { pageSize: 1, objectType: 'doc', after: next.next })
      expect(none.items).toHaveLength(0)
      expect(none.next).toBe(next.next)
      const later = await ds.readChanges(S, { pageSize: 10, startTime: new Date(T0.getTime() + 500) })
      expect(later.items.map((c) => c.operation)).toEqual(['delete'])
    })

    it('hides expired tuples from every reader look-up and from read, at the instant', async () => {
      await ds.write(
        S,
        w([
          expiring('doc:1', 'viewer', 'user:anne', 1000),
          expiring('doc:1', 'viewer', 'group:eng#member', 1000),
          expiring('doc:1', 'viewer', 'user:*', 1000),
          tuple('doc:1', 'viewer', 'user:bob'),
          expiring('doc:1', 'viewer', 'user:carl', 5000),
        ]),
        T0,
      )
      const users = [
        { type: 'user', id: 'anne', relation: '' },
        { type: 'user', id: '*', relation: '' },
        { type: 'group', id: 'eng', relation: 'member' },
      ]
      const look = async (now: number) => {
        const r = ds.reader(S, await ds.headRevision(S), now)
        const page = await ds.read(S, { objectType: 'doc' }, { pageSize: 10 }, now)
        return {
          object: (await r.readObject('doc', '1', 10))?.length,
          relation: (await r.readObjectRelation('doc', '1', 'viewer')).length,
          users: (await r.readUsers('doc', '1', 'viewer', users)).length,
          usersets: (await r.readUsersets('doc', '1', 'viewer')).length,
          reverse: (await r.readStartingWithUser('doc', 'viewer', users)).length,
          reverseOne: (await r.readStartingWithUser('doc', 'viewer', [users[0]])).length,
          read: page.items.map((t) => t.userId).sort(),
        }
      }
      expect(await look(at(999))).toEqual({
        object: 5,
        relation: 5,
        users: 3,
        usersets: 1,
        reverse: 3,
        reverseOne: 1,
        read: ['*', 'anne', 'bob', 'carl', 'eng'],
      })
      // At the expiry instant itself they are gone; no sweep has run.
      expect(await look(at(1000))).toEqual({
        object: 2,
        relation: 2,
        users: 0,
        usersets: 0,
        reverse: 0,
        reverseOne: 0,
        read: ['bob', 'carl'],
      })
      // Readers and read return the expiry with the tuple.
      const live = ds.reader(S, 1, at(0))
      const carl = (await live.readObjectRelation('doc', '1', 'viewer')).find((t) => t.userId === 'carl')
      expect(carl?.expiresAt).toBe(at(5000))
      const bob = (await live.readObjectRelation('doc', '1', 'viewer')).find((t) => t.userId === 'bob')
      expect(bob?.expiresAt).toBeUndefined()
      const read = await ds.read(S, { objectType: 'doc', userType: 'user', userId: 'carl', userRelation: '' }, { pageSize: 1 }, at(0))
      expect(read.items[0].expiresAt).toBe(at(5000))
    })

    it('applies a request as tuple by tuple in order, whatever the dialect batches', async () => {
      const anne = tuple('doc:1', 'viewer', 'user:anne')
      const bob = tuple('doc:1', 'viewer', 'user:bob')
      const ops = async () => (await ds.readChanges(S, { pageSize: 50 })).items.map((c) => `${c.revision}.${c.seq} ${c.operation} ${c.user}`)
      // The same tuple twice: the second meets the first.
      await expect(ds.write(S, w([anne, bob, { ...anne }]), T0)).rejects.toMatchObject({ reason: 'write_existing', tuple: { userId: 'anne' } })
      expect(await ds.headRevision(S)).toBe(0)
      expect(await ds.write(S, { ...w([anne, bob, { ...anne }]), onDuplicate: 'ignore' }, T0)).toBe(1)
      await expect(ds.write(S, { ...w([{ ...anne, conditionName: 'c' }, anne]), onDuplicate: 'ignore' }, T0)).rejects.toMatchObject({
        reason: 'different_condition',
      })
      // A second delete of one tuple finds nothing; a missing delete then a write of it writes it.
      await expect(ds.write(S, w([], [anne, { ...anne }]), T0)).rejects.toMatchObject({ reason: 'delete_missing', tuple: { userId: 'anne' } })
      expect(await ds.write(S, { ...w([], [anne, { ...anne }]), onMissing: 'ignore' }, T0)).toBe(2)
      const carl = tuple('doc:1', 'viewer', 'user:carl')
      await expect(ds.write(S, w([carl], [carl]), T0)).rejects.toMatchObject({ reason: 'delete_missing' })
      expect(await ds.write(S, { ...w([carl], [carl]), onMissing: 'ignore' }, T0)).toBe(3)
      // Deleted and written again in one request, twice over with ignore.
      expect(await ds.write(S, { ...w([bob, { ...bob }], [bob]), onDuplicate: 'ignore' }, T0)).toBe(4)
      expect(await ops()).toEqual([
        '1.0 write user:anne',
        '1.1 write user:bob',
        '2.0 delete user:anne',
        '3.0 write user:carl',
        '4.0 delete user:bob',
        '4.1 write user:bob',
      ])
      const reader = ds.reader(S, 4, T0.getTime())
      expect((await reader.readObjectRelation('doc', '1', 'viewer')).map((t) => t.userId).sort()).toEqual(['bob', 'carl'])
      // Nothing changed: no new revision, on either path.
      expect(await ds.write(S, { ...w([bob], [anne]), onDuplicate: 'ignore', onMissing: 'ignore' }, T0)).toBe(4)
      expect(await ds.headRevision(S)).toBe(4)
      expect(await ds.write(S, w([tuple('doc:2', 'viewer', 'user:dan')]), T0)).toBe(5)
    })

    it('treats an expired tuple as gone for writes and deletes before it is swept', async () => {
      await ds.write(S, w([expiring('doc:1', 'viewer', 'user:anne', 1000)]), T0)
      // Deleting it: it does not exist any more.
      await expect(ds.write(S, w([], [tuple('doc:1', 'viewer', 'user:anne')]), new Date(at(1000)))).rejects.toMatchObject({
        reason: 'delete_missing',
      })
      // Writing it again (without expiry) is a new tuple; the feed records the old one's removal.
      const r = await ds.write(S, w([tuple('doc:1', 'viewer', 'user:anne')]), new Date(at(2000)))
      expect(r).toBe(2)
      const changes = await ds.readChanges(S, { pageSize: 10 })
      expect(changes.items.map((c) => [c.operation, c.expiresAt])).toEqual([
        ['write', at(1000)],
        ['delete', undefined],
        ['write', undefined],
      ])
      const now = ds.reader(S, 2, at(3000))
      expect((await now.readObjectRelation('doc', '1', 'viewer'))[0].expiresAt).toBeUndefined()
      // Nothing left for the sweeper.
      expect(await ds.sweepExpired(new Date(at(10_000)), 100)).toBe(0)
    })

    it('conflicts on an ignored duplicate whose expiry differs (409)', async () => {
      await ds.write(S, w([expiring('doc:1', 'viewer', 'user:anne', HOUR)]), T0)
      const again = (t: Tuple) => ds.write(S, { ...w([t]), onDuplicate: 'ignore' }, T0)
      expect(await again(expiring('doc:1', 'viewer', 'user:anne', HOUR))).toBe(1)
      await expect(again(expiring('doc:1', 'viewer', 'user:anne', 2 * HOUR))).rejects.toBeInstanceOf(TupleWriteRejected)
      await expect(again(tuple('doc:1', 'viewer', 'user:anne'))).rejects.toMatchObject({ reason: 'different_expiry' })
    })

    it('sweeps expired tuples in bounded batches, recording each delete under a new revision', async () => {
      const OTHER = '01HZZZZZZZZZZZZZZZZZZZZZZ2'
      await ds.createStore(OTHER, 'other', T0)
      const five = Array.from({ length: 5 }, (_, i) => expiring(`doc:${i}`, 'viewer', 'user:anne', 1000 + i))
      await ds.write(S, w([...five, tuple('doc:keep', 'viewer', 'user:anne'), expiring('doc:later', 'viewer', 'user:anne', HOUR)]), T0)
      await ds.write(OTHER, w([expiring('doc:x', 'viewer', 'user:bob', 500)]), T0)
      expect(await ds.headRevision(S)).toBe(1)

      // Nothing has expired yet.
      expect(await ds.sweepExpired(new Date(at(499)), 100)).toBe(0)
      // Batches of 4: the oldest first, so the other store's tuple goes in the first batch.
      const sweepAt = new Date(at(60_000))
      expect(await ds.sweepExpired(sweepAt, 4)).toBe(4)
      expect(await ds.sweepExpired(sweepAt, 4)).toBe(2)
      expect(await ds.sweepExpired(sweepAt, 4)).toBe(0)

      const changes = (await ds.readChanges(S, { pageSize: 100 })).items
      const deletes = changes.filter((c) => c.operation === 'delete')
      expect(deletes.map((c) => c.objectId).sort()).toEqual(['0', '1', '2', '3', '4'])
      expect(deletes.every((c) => c.timestamp.getTime() === sweepAt.getTime())).toBe(true)
      // Two sweep transactions touched S: revisions 2 and 3.
      expect(await ds.headRevision(S)).toBe(3)
      expect(await ds.headRevision(OTHER)).toBe(2)
      const other = (await ds.readChanges(OTHER, { pageSize: 10 })).items
      expect(other.map((c) => `${c.operation} ${c.objectId}`)).toEqual(['write x', 'delete x'])
      // Even a reader that ignores time (now = 0) finds them gone; the rest stay.
      const left = await ds.read(S, { objectType: 'doc' }, { pageSize: 10 }, 0)
      expect(left.items.map((t) => t.objectId).sort()).toEqual(['keep', 'later'])
    })

    it('creates, reads and lists access requests by effective status, oldest first', async () => {
      await ds.createAccessRequest(request('01HA0000000000000000000001'))
      await ds.createAccessRequest(request('01HA0000000000000000000002', { pendingUntil: new Date(at(HOUR)) }))
      await ds.createAccessRequest(request('01HA0000000000000000000003'))
      const got = await ds.getAccessRequest(S, '01HA0000000000000000000001')
      expect(got).toEqual(request('01HA0000000000000000000001'))
      expect(await ds.getAccessRequest(S, '01HA000000000000000000000X')).toBeUndefined()

      const ids = async (status: AccessRequestRecord['status'] | undefined, now: number) =>
        (await ds.listAccessRequests(S, { status, now, pageSize: 10 })).items.map((r) => r.id.slice(-1))
      expect(await ids('pending', at(0))).toEqual(['1', '2', '3'])
      // Request 2's deadline passes: expired at once, though still stored as pending.
      expect(await ids('pending', at(HOUR))).toEqual(['1', '3'])
      expect(await ids('expired', at(HOUR))).toEqual(['2'])
      expect(await ids(undefined, at(HOUR))).toEqual(['1', '2', '3'])

      const page = await ds.listAccessRequests(S, { now: at(0), pageSize: 2 })
      expect(page.items.map((r) => r.id.slice(-1))).toEqual(['1', '2'])
      expect(page.items[0].events).toHaveLength(1)
      const rest = await ds.listAccessRequests(S, { now: at(0), pageSize: 2, after: page.next })
      expect(rest.items.map((r) => r.id.slice(-1))).toEqual(['3'])
      expect(rest.next).toBe('')
    })

    it('approves a pending request and writes its tuple in one transaction, once', async () => {
      const id = '01HA0000000000000000000001'
      await ds.createAccessRequest(request(id))
      const now = new Date(at(10 * 60_000))
      const grant = expiring('namespace:prod', 'deployer', 'service_account:ci', 10 * 60_000 + HOUR)
      const approved = { type: 'approved' as const, actor: 'user:bob', at: now, reason: 'ok' }
      expect(await ds.approveAccessRequest(S, id, grant, approved, now)).toEqual({ ok: true, revision: 1 })
      const r = await ds.getAccessRequest(S, id)
      expect(r?.status).toBe('approved')
      expect(r?.grantExpiresAt?.getTime()).toBe(grant.expiresAt)
      expect(r?.events.map((e) => `${e.type} ${e.actor}`)).toEqual(['created service_account:ci', 'approved user:bob'])
      const t = await ds.reader(S, 1, now.getTime()).readObjectRelation('namespace', 'prod', 'deployer')
      expect(t.map((x) => [x.userId, x.expiresAt])).toEqual([['ci', grant.expiresAt]])
      const changes = (await ds.readChanges(S, { pageSize: 10 })).items
      expect(changes.map((c) => [c.operation, c.user, c.expiresAt])).toEqual([['write', 'service_account:ci', grant.expiresAt]])

      // A second approval, or a denial, finds it approved and changes nothing.
      expect(await ds.approveAccessRequest(S, id, grant, approved, now)).toEqual({ ok: false, status: 'approved' })
      expect(await ds.denyAccessRequest(S, id, { ...approved, type: 'denied' }, now)).toEqual({ ok: false, status: 'approved' })
      expect(await ds.headRevision(S)).toBe(1)
      expect((await ds.getAccessRequest(S, id))?.events).toHaveLength(2)
      expect(await ds.approveAccessRequest(S, '01HA000000000000000000000X', grant, approved, now)).toEqual({
        ok: false,
        status: 'missing',
      })
    })

    it('denies and expires pending requests, and then refuses to approve them', async () => {
      const [a, b] = ['01HA0000000000000000000001', '01HA0000000000000000000002']
      await ds.createAccessRequest(request(a))
      await ds.createAccessRequest(request(b, { pendingUntil: new Date(at(HOUR)) }))
      const now = new Date(at(60_000))
      const grant = expiring('namespace:prod', 'deployer', 'service_account:ci', 2 * HOUR)
      const denied = { type: 'denied' as const, actor: 'user:bob', at: now, reason: 'not now' }
      expect((await ds.denyAccessRequest(S, a, denied, now)).ok).toBe(true)
      expect(await ds.approveAccessRequest(S, a, grant, { ...denied, type: 'approved' }, now)).toEqual({
        ok: false,
        status: 'denied',
      })
      // b is past its deadline: refused before and after the sweeper marks it.
      const late = new Date(at(HOUR))
      expect(await ds.approveAccessRequest(S, b, grant, { ...denied, type: 'approved' }, late)).toEqual({
        ok: false,
        status: 'expired',
      })
      expect(await ds.expireAccessRequests(new Date(at(2 * HOUR)), 10)).toBe(1)
      expect(await ds.expireAccessRequests(new Date(at(2 * HOUR)), 10)).toBe(0)
      const expired = await ds.getAccessRequest(S, b)
      expect(expired?.status).toBe('expired')
      // Recorded as expiring at its deadline, by pemba, whenever the sweep ran.
      expect(expired?.events[1]).toEqual({ type: 'expired', actor: 'pemba', at: new Date(at(HOUR)), reason: '' })
      expect((await ds.getAccessRequest(S, a))?.events.map((e) => e.type)).toEqual(['created', 'denied'])
      expect(await ds.headRevision(S)).toBe(0)
      expect((await ds.read(S, {}, { pageSize: 10 }, 0)).items).toHaveLength(0)
    })

    it('grants over an existing tuple: keeps the later expiry, refuses to replace a condition', async () => {
      const ids = ['01HA0000000000000000000001', '01HA0000000000000000000002', '01HA0000000000000000000003']
      for (const id of ids) await ds.createAccessRequest(request(id))
      const now = new Date(at(0))
      const ev = { type: 'approved' as const, actor: 'user:bob', at: now, reason: '' }
      const key = (ms: number) => expiring('namespace:prod', 'deployer', 'service_account:ci', ms)
      expect(await ds.approveAccessRequest(S, ids[0], key(2 * HOUR), ev, now)).toEqual({ ok: true, revision: 1 })
      // A shorter grant leaves the longer one as it is (no new revision).
      expect(await ds.approveAccessRequest(S, ids[1], key(HOUR), ev, now)).toEqual({ ok: true, revision: 1 })
      // A longer one extends it, recorded as a delete and a write.
      expect(await ds.approveAccessRequest(S, ids[2], key(3 * HOUR), ev, now)).toEqual({ ok: true, revision: 2 })
      const t = await ds.reader(S, 2, at(0)).readObjectRelation('namespace', 'prod', 'deployer')
      expect(t.map((x) => x.expiresAt)).toEqual([at(3 * HOUR)])
      const changes = (await ds.readChanges(S, { pageSize: 10 })).items
      expect(changes.map((c) => `${c.operation} ${c.expiresAt ?? ''}`)).toEqual([
        `write ${at(2 * HOUR)}`,
        'delete ',
        `write ${at(3 * HOUR)}`,
      ])

      const conditional = { ...tuple('namespace:dev', 'deployer', 'service_account:ci', { name: 'c', context: { x: 1 } }) }
      await ds.write(S, w([conditional]), now)
      const id = '01HA0000000000000000000004'
      await ds.createAccessRequest(request(id, { objectId: 'dev' }))
      const refused = await ds.approveAccessRequest(S, id, { ...conditional, conditionName: '', conditionContext: undefined, expiresAt: at(HOUR) }, ev, now)
      expect(refused).toMatchObject({ ok: false, status: 'pending', conflict: expect.stringMatching(/condition/) })
      expect((await ds.getAccessRequest(S, id))?.status).toBe('pending')
      expect(await ds.headRevision(S)).toBe(3)
    })

    it('stores assertions per model', async () => {
      expect(await ds.readAssertions(S, 'm1')).toBeUndefined()
      await ds.writeAssertions(S, 'm1', [{ a: 1 }])
      await ds.writeAssertions(S, 'm1', [{ a: 2 }])
      expect(await ds.readAssertions(S, 'm1')).toEqual([{ a: 2 }])
    })
  })
}
