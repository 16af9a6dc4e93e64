/**
 * The datastore conformance suite against PostgreSQL, plus what only a shared database has to
 * get right: two PostgresDatastore instances (two pools, as two replicas would have) writing to
 * one store at once, the change feed read across them, and migrations under `check`.
 * Skipped (with the reason printed) when PEMBA_TEST_POSTGRES_URL is unset or unreachable; failed
 * instead when PEMBA_REQUIRE_POSTGRES=1.
 */
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import { MigrationsPendingError } from '../../src/store/migrations.ts'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import type { TupleChange } from '../../src/store/store.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { runDatastoreSuite } from './datastore.case.test.ts'

const target = await probePostgres()

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const T0 = new Date('2026-01-01T00:00:00Z')

function viewer(objectId: string, userId = 'anne'): Tuple {
  return {
    objectType: 'doc',
    objectId,
    relation: 'viewer',
    userType: 'user',
    userId,
    userRelation: '',
    conditionName: '',
    conditionContext: undefined,
  }
}

describePostgres('postgres', target, () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(async () => {
    await schema?.drop()
  })

  runDatastoreSuite({
    name: 'postgres',
    open: async () => {
      const ds = await PostgresDatastore.open({ url: schema.url, poolSize: 4 })
      await schema.truncate()
      return ds
    },
  })

  describe('two replicas on one database', () => {
    let a: PostgresDatastore
    let b: PostgresDatastore
    beforeAll(async () => {
      a = await PostgresDatastore.open({ url: schema.url, poolSize: 5 })
      b = await PostgresDatastore.open({ url: schema.url, poolSize: 5 })
    })
    afterAll(async () => {
      await a?.close()
      await b?.close()
    })
    beforeEach(async () => {
      await schema.truncate()
    })

    /** Every change of the store, paging with `pageSize` and alternating replicas per page. */
    async function allChanges(pageSize: number): Promise<TupleChange[]> {
      const out: TupleChange[] = []
      let after: string | undefined
      for (let page = 0; ; page++) {
        const ds = page % 2 === 0 ? a : b
        const res = await ds.readChanges(S, { pageSize, after })
        out.push(...res.items)
        if (res.items.length === 0) return out
        after = res.next
      }
    }

    it('assigns revisions 1..N in commit order to parallel writes from both, losing none', async () => {
      await a.createStore(S, 'shared', T0)
      const N = 80
      const revisions = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          (i % 2 === 0 ? a : b).write(
            S,
            { writes: [viewer(String(i))], deletes: [], onDuplicate: 'error', onMissing: 'error' },
            T0,
          ),
        ),
      )
      expect([...revisions].sort((x, y) => x - y)).toEqual(Array.from({ length: N }, (_, i) => i + 1))
      expect(await a.headRevision(S)).toBe(N)
      expect(await b.headRevision(S)).toBe(N)

      // The change feed lists each write once, in revision order: the change at position r is
      // the write that was told it committed as revision r.
      const changes = await allChanges(7)
      expect(changes).toHaveLength(N)
      const byRevision = new Map(revisions.map((r, i) => [r, String(i)]))
      expect(changes.map((c) => c.objectId)).toEqual(
        Array.from({ length: N }, (_, i) => byRevision.get(i + 1)),
      )

      const seen: string[] = []
      let after: string | undefined
      do {
        const page = await (seen.length % 2 === 0 ? b : a).read(S, { objectType: 'doc' }, { pageSize: 25, after })
        seen.push(...page.items.map((t) => t.objectId))
        after = page.next || undefined
      } while (after)
      expect(seen.sort()).toEqual(Array.from({ length: N }, (_, i) => String(i)).sort())
    })

    it('serialises racing writes of the same tuple: one creates it, the rest see it', async () => {
      await a.createStore(S, 'shared', T0)
      const racers = 20
      const results = await Promise.allSettled(
        Array.from({ length: racers }, (_, i) =>
          (i % 2 === 0 ? a : b).write(
            S,
            { writes: [viewer('contested')], deletes: [], onDuplicate: 'error', onMissing: 'error' },
            T0,
          ),
        ),
      )
      const ok = results.filter((r) => r.status === 'fulfilled')
      expect(ok).toHaveLength(1)
      for (const r of results) {
        if (r.status === 'rejected') expect(String(r.reason)).toMatch(/cannot write a tuple which already exists/)
      }
      // ignore: all succeed, none bumps the revision again.
      const again = await Promise.all(
        Array.from({ length: racers }, (_, i) =>
          (i % 2 === 0 ? a : b).write(
            S,
            { writes: [viewer('contested')], deletes: [], onDuplicate: 'ignore', onMissing: 'ignore' },
            T0,
          ),
        ),
      )
      expect(new Set(again)).toEqual(new Set([1]))
      expect(await allChanges(100)).toHaveLength(1)
    })

    it('continues a change-feed token from one replica on the other', async () => {
      await a.createStore(S, 'shared', T0)
      for (let i = 0; i < 5; i++) {
        await a.write(S, { writes: [viewer(`a${i}`)], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      }
      const first = await a.readChanges(S, { pageSize: 3 })
      expect(first.items.map((c) => c.objectId)).toEqual(['a0', 'a1', 'a2'])
      // B writes more after A handed out the token; B continues from it without gaps or repeats.
      await b.write(
        S,
        { writes: [viewer('b0')], deletes: [viewer('a0')], onDuplicate: 'error', onMissing: 'error' },
        T0,
      )
      const rest = await b.readChanges(S, { pageSize: 10, after: first.next })
      expect(rest.items.map((c) => `${c.operation} ${c.objectId}`)).toEqual([
        'write a3',
        'write a4',
        'delete a0',
        'write b0',
      ])
      // Caught up: no items, and the same token back, on either replica.
      const none = await a.readChanges(S, { pageSize: 10, after: rest.next })
      expect(none.items).toHaveLength(0)
      expect(none.next).toBe(rest.next)
      const filtered = await b.readChanges(S, { pageSize: 10, objectType: 'doc', after: first.next })
      expect(filtered.items).toHaveLength(4)
    })

    it('reads what the other replica wrote at once, in both directions', async () => {
      await a.createStore(S, 'shared', T0)
      await a.write(
        S,
        {
          writes: [viewer('1'), viewer('2'), viewer('1', '*'), { ...viewer('1', 'eng'), userType: 'group', userRelation: 'member' }],
          deletes: [],
          onDuplicate: 'error',
          onMissing: 'error',
        },
        T0,
      )
      const r = b.reader(S, await b.headRevision(S))
      const users = await r.readUsers('doc', '1', 'viewer', [
        { type: 'user', id: 'anne', relation: '' },
        { type: 'user', id: '*', relation: '' },
        { type: 'group', id: 'eng', relation: 'member' },
        { type: 'user', id: 'bob', relation: '' },
      ])
      expect(users.map((t) => `${t.userType}:${t.userId}#${t.userRelation}`).sort()).toEqual([
        'group:eng#member',
        'user:*#',
        'user:anne#',
      ])
      const objects = await r.readStartingWithUser('doc', 'viewer', [
        { type: 'user', id: 'anne', relation: '' },
        { type: 'user', id: '*', relation: '' },
      ])
      expect(objects.map((t) => t.objectId).sort()).toEqual(['1', '1', '2'])
      expect(await r.readObject('doc', '1', 3)).toHaveLength(3)
      expect(await r.readObject('doc', '1', 2)).toBeUndefined()
    })
  })

  describe('retries', () => {
    it('retries a write that PostgreSQL picked as a deadlock victim (40P01)', async () => {
      const ds = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
      await schema.truncate()
      const other = new pg.Client({ connectionString: schema.url })
      await other.connect()
      try {
        await ds.createStore(S, 'deadlock', T0)
        await ds.write(S, { writes: [viewer('x')], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
        // Another session locks the tuple, then (after Pemba holds the store row and waits for
        // the tuple) asks for the store row: a cycle. Pemba waited first, so its deadlock check
        // fires first and its transaction is the one aborted; the retry then goes through.
        await other.query('BEGIN')
        await other.query("SELECT 1 FROM tuples WHERE object_id = 'x' FOR UPDATE")
        const write = ds.write(S, { writes: [], deletes: [viewer('x')], onDuplicate: 'error', onMissing: 'error' }, T0)
        await new Promise((r) => setTimeout(r, 300))
        await other.query('SELECT revision FROM stores WHERE id = $1 FOR UPDATE', [S])
        await other.query('ROLLBACK')
        expect(await write).toBe(2)
        expect(await ds.reader(S, 2).readObjectRelation('doc', 'x', 'viewer')).toEqual([])
      } finally {
        await other.end()
        await ds.close()
      }
    })
  })

  describe('pool', () => {
    it('sets statement_timeout on every pooled connection and sizes the pool', async () => {
      const ds = await PostgresDatastore.open({ url: schema.url, poolSize: 3, statementTimeoutMs: 150 })
      try {
        expect(ds.pool.options.max).toBe(3)
        const shown = await Promise.all([1, 2, 3].map(() => ds.pool.query('SHOW statement_timeout')))
        expect(shown.map((r) => r.rows[0].statement_timeout)).toEqual(['150ms', '150ms', '150ms'])
        await expect(ds.pool.query('SELECT pg_sleep(2)')).rejects.toMatchObject({ code: '57014' })
      } finally {
        await ds.close()
        await ds.close() // closing twice is harmless
      }
    })
  })

  describe('migrations', () => {
    it('check refuses an unmigrated schema; auto migrates it once even when replicas race', async () => {
      const fresh = await createTestSchema(target.url!)
      try {
        await expect(PostgresDatastore.open({ url: fresh.url, migrations: 'check' })).rejects.toBeInstanceOf(
          MigrationsPendingError,
        )
        await expect(PostgresDatastore.open({ url: fresh.url, migrations: 'check' })).rejects.toThrow(
          /pending migration.*0000_init.*pemba migrate/,
        )
        const opened = await Promise.all(
          Array.from({ length: 3 }, () => PostgresDatastore.open({ url: fresh.url, poolSize: 1 })),
        )
        for (const ds of opened) await ds.close()
        const checked = await PostgresDatastore.open({ url: fresh.url, migrations: 'check', poolSize: 1 })
        await checked.createStore(S, 'migrated', T0)
        expect((await checked.getStore(S))?.name).toBe('migrated')
        await checked.close()
      } finally {
        await fresh.drop()
      }
    })
  })
})
