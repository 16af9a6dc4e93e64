/**
 * The bulk loader on each backend: SQLite in memory and in a file, and PostgreSQL (in a schema
 * of its own; skipped with the reason printed when PEMBA_TEST_POSTGRES_URL is unset, failed
 * instead when PEMBA_REQUIRE_POSTGRES=1), plus what only a shared database must get right: two
 * replicas loading into one store at once.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { runBulkLoadSuite } from './bulk-load.case.test.ts'

runBulkLoadSuite({ name: 'sqlite in memory', open: async () => new SqliteDatastore({ filename: ':memory:' }) })

const dir = mkdtempSync(join(tmpdir(), 'pemba-bulk-'))
let n = 0
runBulkLoadSuite({ name: 'sqlite file', open: async () => new SqliteDatastore({ filename: join(dir, `db-${n++}.sqlite`) }) })
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const target = await probePostgres()

describePostgres('bulk load on postgres', target, () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(async () => {
    await schema?.drop()
  })

  runBulkLoadSuite({
    name: 'postgres',
    open: async () => {
      const ds = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
      await schema.truncate()
      return ds
    },
  })

  it('two replicas loading one store at once take turns: distinct revisions, every tuple once', async () => {
    const a = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
    const b = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
    try {
      await schema.truncate()
      const S = '01HBULKTWOREPLICASTWOREPLI'
      const T0 = new Date('2026-01-01T00:00:00Z')
      await a.createStore(S, 'two', T0)
      const tuple = (i: number): Tuple => ({
        objectType: 'document',
        objectId: `d${i}`,
        relation: 'viewer',
        userType: 'user',
        userId: 'anne',
        userRelation: '',
        conditionName: '',
        conditionContext: undefined,
      })
      // Overlapping loads: 0..1499 and 1000..2499; whichever commits second finds 500 stored.
      const [x, y] = await Promise.all([
        a.loadTuples(S, Array.from({ length: 1500 }, (_, i) => tuple(i)), T0),
        b.loadTuples(S, Array.from({ length: 1500 }, (_, i) => tuple(1000 + i)), T0),
      ])
      expect([x.revision, y.revision].sort()).toEqual([1, 2])
      expect(x.written + y.written).toBe(2500)
      expect(x.unchanged + y.unchanged).toBe(500)
      const changes = await a.readChanges(S, { pageSize: 5000 })
      expect(changes.items).toHaveLength(2500)
      expect(new Set(changes.items.map((c) => c.objectId)).size).toBe(2500)
    } finally {
      await a.close()
      await b.close()
    }
  })
})
