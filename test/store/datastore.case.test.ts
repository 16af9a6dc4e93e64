/**
 * The datastore conformance suite: every Datastore implementation runs these same cases
 * (SQLite in memory and on a file today; PostgreSQL with the same file later).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConflictError, PembaError } from '../../src/core/errors.ts'
import type { Tuple } from '../../src/core/tuple.ts'
import type { Datastore } from '../../src/store/store.ts'

export interface DatastoreSuiteOptions {
  name: string
  open(): Promise<Datastore>
}

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const T0 = new Date('2026-01-01T00:00:00Z')

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
      expect((await ds.readLatestModel(S))?.id).toBe('01HA0000000000000000000003')
      expect((await ds.readModel(S, '01HA0000000000000000000002'))?.type_definitions[0].type).toBe('user')
      const page = await ds.listModels(S, { pageSize: 2 })
      expect(page.items.map((x) => x.id)).toEqual(['01HA0000000000000000000003', '01HA0000000000000000000002'])
      const rest = await ds.listModels(S, { pageSize: 2, after: page.next })
      expect(rest.items.map((x) => x.id)).toEqual(['01HA0000000000000000000001'])
      expect(rest.next).toBe('')
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
      ).rejects.toBeInstanceOf(PembaError)
      expect(await ds.headRevision(S)).toBe(2)
      expect((await ds.reader(S, 2).readObjectRelation('doc', '2', 'viewer'))).toHaveLength(0)
      await expect(
        ds.write(S, { writes: [], deletes: [tuple('doc:9', 'viewer', 'user:x')], onDuplicate: 'error', onMissing: 'error' }, T0),
      ).rejects.toThrow(/cannot delete a tuple which does not exist/)
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
      ).rejects.toBeInstanceOf(ConflictError)
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
      const r = ds.reader(S, await ds.headRevision(S))
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
      const r = ds.reader(S, await ds.headRevision(S))
      const whole = await r.readObject('doc', '1', 3)
      expect(whole?.map((t) => t.relation).sort()).toEqual(['owner', 'parent', 'viewer'])
      expect(await r.readObject('doc', '1', 2)).toBeUndefined()
      expect(await r.readObject('doc', '9', 3)).toEqual([])
    })

    it('reads starting with several users at once, of mixed kinds', async () => {
      const writes = Array.from({ length: 120 }, (_, i) => tuple(`group:p${i}`, 'member', `group:g${i}#member`))
      writes.push(tuple('group:top', 'member', 'user:anne'))
      await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      const r = ds.reader(S, await ds.headRevision(S))
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
        const page = await ds.read(S, { objectType: 'doc', userType: 'user', userId: 'anne', userRelation: '' }, { pageSize: 3, after })
        seen.push(...page.items.map((t) => t.objectId))
        after = page.next || undefined
      } while (after)
      expect(seen.sort()).toEqual(['0', '1', '2', '3', '4', '5', '6'])
      await expect(ds.read(S, {}, { pageSize: 3, after: 'not json' })).rejects.toThrow(/Invalid continuation token/)
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

    it('stores assertions per model', async () => {
      expect(await ds.readAssertions(S, 'm1')).toBeUndefined()
      await ds.writeAssertions(S, 'm1', [{ a: 1 }])
      await ds.writeAssertions(S, 'm1', [{ a: 2 }])
      expect(await ds.readAssertions(S, 'm1')).toEqual([{ a: 2 }])
    })
  })
}
