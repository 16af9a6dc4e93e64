/**
 * The datastore conformance suite against PostgreSQL, plus what only a shared database has to
 * get right: two PostgresDatastore instances (two pools, as two replicas would have) writing to
 * one store at once, the change feed read across them, and migrations under `check`.
 * Skipped (with the reason printed) when PEMBA_TEST_POSTGRES_URL is unset or unreachable; failed
 * instead when PEMBA_REQUIRE_POSTGRES=1.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import { MigrationsPendingError } from '../../src/store/migrations.ts'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import type { TupleChange } from '../../src/store/store.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { oldMigrations } from '../helpers/migrations.ts'
import { runDatastoreSuite } from './datastore.case.test.ts'
import { runTupleIndexSuite } from './tuple-index.case.test.ts'

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

  runTupleIndexSuite({
    name: 'postgres, two replicas',
    open: async () => {
      const primary = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
      const other = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
      await schema.truncate()
      return { primary, other }
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
        const page = await (seen.length % 2 === 0 ? b : a).read(S, { objectType: 'doc' }, { pageSize: 25, after }, T0.getTime())
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
        if (r.status === 'rejected') expect(r.reason).toMatchObject({ reason: 'write_existing' })
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

    it('sweeps from both replicas at once without losing or double-recording a delete', async () => {
      const stores = ['1', '2', '3'].map((n) => `01HZZZZZZZZZZZZZZZZZZZZZZ${n}`)
      const N = 120
      for (const id of stores) {
        await a.createStore(id, 'sweep', T0)
        const writes: Tuple[] = Array.from({ length: N }, (_, i) => ({
          ...viewer(`e${i}`),
          expiresAt: T0.getTime() + 1000 + i,
        }))
        writes.push(viewer('kept'))
        await a.write(id, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)
      }
      const now = new Date(T0.getTime() + 60_000)
      // Small batches, so the replicas interleave on every store; each loops until it finds none.
      const drain = async (ds: PostgresDatastore) => {
        let total = 0
        for (let n; (n = await ds.sweepExpired(now, 7)) > 0; ) total += n
        return total
      }
      const [x, y, z, w] = await Promise.all([drain(a), drain(b), drain(a), drain(b)])
      expect(x + y + z + w).toBe(stores.length * N)
      for (const id of stores) {
        const changes: TupleChange[] = []
        let after: string | undefined
        for (;;) {
          const page = await a.readChanges(id, { pageSize: 100, after })
          if (page.items.length === 0) break
          changes.push(...page.items)
          after = page.next
        }
        const deletes = changes.filter((c) => c.operation === 'delete').map((c) => c.objectId)
        expect(deletes).toHaveLength(N)
        expect(new Set(deletes).size).toBe(N)
        const left = await b.read(id, {}, { pageSize: 10 }, 0)
        expect(left.items.map((t) => t.objectId)).toEqual(['kept'])
      }
    })

    it('lets exactly one of racing approvals of one request write its tuple', async () => {
      await a.createStore(S, 'jit', T0)
      const id = '01HA0000000000000000000001'
      await a.createAccessRequest({
        storeId: S,
        id,
        objectType: 'doc',
        objectId: 'prod',
        relation: 'viewer',
        user: 'user:anne',
        durationMs: 3_600_000,
        reason: 'incident',
        status: 'pending',
        createdAt: T0,
        pendingUntil: new Date(T0.getTime() + 86_400_000),
        grantExpiresAt: null,
        events: [{ type: 'created', actor: 'user:anne', at: T0, reason: 'incident' }],
      })
      const grant = { ...viewer('prod'), expiresAt: T0.getTime() + 3_600_000 }
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => {
          const event = { type: 'approved' as const, actor: `user:approver${i}`, at: T0, reason: '' }
          return (i % 2 ? a : b).approveAccessRequest(S, id, grant, event, T0)
        }),
      )
      expect(results.filter((r) => r.ok)).toHaveLength(1)
      expect(results.filter((r) => !r.ok).every((r) => r.status === 'approved')).toBe(true)
      const r = await b.getAccessRequest(S, id)
      expect(r?.events.map((e) => e.type)).toEqual(['created', 'approved'])
      expect((await a.readChanges(S, { pageSize: 10 })).items).toHaveLength(1)
      // Expiring it from both replicas at once: only pending requests are touched, so nothing.
      const dayAfter = new Date(T0.getTime() + 2 * 86_400_000)
      const expired = await Promise.all([a.expireAccessRequests(dayAfter, 10), b.expireAccessRequests(dayAfter, 10)])
      expect(expired).toEqual([0, 0])
    })

    it('expires a pending request once when both replicas sweep', async () => {
      await a.createStore(S, 'jit', T0)
      for (let i = 0; i < 30; i++) {
        await a.createAccessRequest({
          storeId: S,
          id: `01HA00000000000000000000${String(i).padStart(2, '0')}`,
          objectType: 'doc',
          objectId: 'prod',
          relation: 'viewer',
          user: 'user:anne',
          durationMs: 1000,
          reason: '',
          status: 'pending',
          createdAt: T0,
          pendingUntil: new Date(T0.getTime() + 1000),
          grantExpiresAt: null,
          events: [{ type: 'created', actor: 'user:anne', at: T0, reason: '' }],
        })
      }
      const later = new Date(T0.getTime() + 5000)
      const drain = async (ds: PostgresDatastore) => {
        let total = 0
        for (let n; (n = await ds.expireAccessRequests(later, 4)) > 0; ) total += n
        return total
      }
      const counts = await Promise.all([drain(a), drain(b), drain(a), drain(b)])
      expect(counts.reduce((x, y) => x + y, 0)).toBe(30)
      const all = await a.listAccessRequests(S, { now: later.getTime(), pageSize: 100 })
      expect(all.items.every((r) => r.status === 'expired' && r.events.length === 2)).toBe(true)
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
      const r = b.reader(S, await b.headRevision(S), T0.getTime())
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
        expect(await ds.reader(S, 2, T0.getTime()).readObjectRelation('doc', 'x', 'viewer')).toEqual([])
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
    it('upgrades a schema made by 0000_init to the current one, keeping the data', async () => {
      const old = await createTestSchema(target.url!)
      const dir = mkdtempSync(join(tmpdir(), 'pemba-pg-migrations-'))
      const client = new pg.Client({ connectionString: old.url })
      await client.connect()
      try {
        await migrate(drizzle({ client }), {
          migrationsFolder: oldMigrations('postgres', 1, dir),
          migrationsSchema: old.name,
          migrationsTable: '__drizzle_migrations',
        })
        await client.query(
          "INSERT INTO stores (id, name, created_at, updated_at, revision) VALUES ($1, 'old', 0, 0, 1)",
          [S],
        )
        await client.query(
          `INSERT INTO tuples (store_id, object_type, object_id, relation, user_type, user_id, revision, inserted_at)
           VALUES ($1, 'doc', '1', 'viewer', 'user', 'anne', 1, 0)`,
          [S],
        )
        await expect(PostgresDatastore.open({ url: old.url, migrations: 'check' })).rejects.toThrow(
          /3 pending migration\(s\) \(0001_expiry_and_access_requests, 0002_audit_and_token_issuers, 0003_authzen\)/,
        )
        const ds = await PostgresDatastore.open({ url: old.url, poolSize: 1 })
        try {
          const tuples = await ds.reader(S, 1, T0.getTime()).readObjectRelation('doc', '1', 'viewer')
          expect(tuples.map((t) => [t.userId, t.expiresAt])).toEqual([['anne', undefined]])
          const bob = { ...viewer('1', 'bob'), expiresAt: T0.getTime() + 1000 }
          expect(await ds.write(S, { writes: [bob], deletes: [], onDuplicate: 'error', onMissing: 'error' }, T0)).toBe(2)
          expect(await ds.sweepExpired(new Date(T0.getTime() + 2000), 10)).toBe(1)
        } finally {
          await ds.close()
        }
        await (await PostgresDatastore.open({ url: old.url, migrations: 'check', poolSize: 1 })).close()
      } finally {
        await client.end()
        rmSync(dir, { recursive: true, force: true })
        await old.drop()
      }
    })

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
