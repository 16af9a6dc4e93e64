/**
 * The working set over PostgreSQL: the shared suite (working-set.case.test.ts) with two
 * datastores on one schema, as two replicas would have. Skipped with the reason printed when
 * PEMBA_TEST_POSTGRES_URL is unset or unreachable; failed instead when PEMBA_REQUIRE_POSTGRES=1.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import { createTestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { runWorkingSetBatchSuite, runWorkingSetSuite } from './working-set.case.test.ts'

const target = await probePostgres()

describePostgres('working set on postgres', target, () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(async () => {
    await schema?.drop()
  })

  runWorkingSetSuite({
    name: 'postgres, two replicas',
    open: async () => {
      const primary = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
      const other = await PostgresDatastore.open({ url: schema.url, poolSize: 2 })
      await schema.truncate()
      return { primary, other }
    },
  })

  it('a check fanning out over twenty parents loads them in a few statements, not twenty (index off)', async () => {
    // A store of its own (the client migrates the schema if no suite has yet).
    const c = await createTestClient({ databaseUrl: schema.url, tupleIndexMaxTuples: 0, checkCacheSize: 0 })
    try {
      const dsl = `model
  schema 1.1
type user
type folder
  relations
    define viewer: [user]
type doc
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent`
      const parents = Array.from({ length: 20 }, (_, i) => `doc:d1#parent@folder:f${i}`)
      const { check } = await setup(c, dsl, [...parents, 'folder:f19#viewer@user:anne', 'folder:f3#viewer@user:bob'])
      const counts = async () => {
        const text = (await c.request('GET', '/metrics')).text
        const count = (op: string) => Number(new RegExp(`^pemba_datastore_query_duration_seconds_count\\{operation="${op}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
        return { readObjects: count('readObjects'), readObject: count('readObject') }
      }
      const before = await counts()
      expect(await check('doc:d1#viewer@user:carl')).toBe(false)
      const after = await counts()
      // d1, then its twenty parents: the engine evaluates them eight at a time (PostgreSQL's
      // preferred concurrency), each group one statement; without batching, 21 readObject.
      const statements = after.readObjects - before.readObjects + after.readObject - before.readObject
      expect(statements).toBeGreaterThan(0)
      expect(statements).toBeLessThanOrEqual(5)
      // Held now: the same questions read nothing more; and the answers stay right.
      expect(await check('doc:d1#viewer@user:anne')).toBe(true)
      expect(await check('doc:d1#viewer@user:bob')).toBe(true)
      const again = await counts()
      expect(again.readObjects + again.readObject).toBe(after.readObjects + after.readObject)
    } finally {
      await c.close()
    }
  })

  runWorkingSetBatchSuite({
    name: 'postgres',
    open: async (observe) => {
      const ds = await PostgresDatastore.open({ url: schema.url, poolSize: 2, observer: (operation) => observe(operation) })
      await schema.truncate()
      return ds
    },
  })
})
