/**
 * WriteService.importTuples, the bulk import the `pemba tuple import` database path and the
 * bench call: bad tuples reported by index while the good ones of their chunk land, a re-run
 * that changes nothing, one revision per chunk, and a server on the same database (another
 * Pemba, as `pemba serve` would be) that answers from the imported tuples through its tuple
 * index's catch-up. On SQLite (a file two processes share) and on PostgreSQL (skipped with the
 * reason printed when PEMBA_TEST_POSTGRES_URL is unset; failed when PEMBA_REQUIRE_POSTGRES=1).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { transformer } from '@openfga/syntax-transformer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { PembaError } from '../../src/core/errors.ts'
import type { TupleKey } from '../../src/core/tuple.ts'
import type { AuthorizationModelInput } from '../../src/model/types.ts'
import { createPemba, type Pemba } from '../../src/server.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'

const MODEL = transformer.transformDSLToJSONObject(`model
  schema 1.1
type user
type document
  relations
    define viewer: [user, group#member, user with below_ten]
type group
  relations
    define member: [user]
condition below_ten(limit: int) {
  limit < 10
}
`) as unknown as AuthorizationModelInput

/** Pemba over `databaseUrl` without HTTP; `index` turns the tuple index on (a server's view). */
function open(databaseUrl: string, index: boolean): Promise<Pemba> {
  const config = {
    ...loadConfig({ env: { PEMBA_TUPLE_INDEX_MAX_TUPLES: index ? '1000000' : '0' }, argv: [] }),
    databaseUrl,
    logLevel: 'warn' as const,
    decisionLog: 'off' as const,
  }
  return createPemba(config, { sweeper: false })
}

const viewer = (object: string, user: string, extra: Partial<TupleKey> = {}): TupleKey => ({ user, relation: 'viewer', object, ...extra })

function runImportSuite(name: string, url: () => string): void {
  describe(`importTuples: ${name}`, () => {
    let server: Pemba
    let importer: Pemba
    beforeAll(async () => {
      server = await open(url(), true)
      importer = await open(url(), false)
    })
    afterAll(async () => {
      await importer?.close()
      await server?.close()
    })

    it('writes the good tuples around bad ones, reports each bad one by index, and a server sees the import', async () => {
      const store = await server.stores.create('bulk-import', 'client:test')
      await server.models.write(store.id, MODEL)
      await server.writes.write(store.id, { writes: [viewer('document:seed', 'user:anne')], onDuplicate: 'error', onMissing: 'error' })
      // The server's index holds the store before the import: it must catch up, not rebuild.
      expect(await server.evaluation.tupleIndexReady(store.id)).toBe(true)

      const keys: TupleKey[] = Array.from({ length: 1000 }, (_, i) => viewer(`document:${i}`, `user:u${i}`))
      keys[10] = viewer('folder:1', 'user:anne') // no such type
      keys[20] = { user: 'user:anne', relation: 'owner', object: 'document:20' } // no such relation
      keys[30] = viewer('document:30', 'user:bob', { condition: { name: 'below_ten' } })
      keys[40] = viewer('document:40', 'user:bob', { expires_at: '2001-01-01T00:00:00Z' }) // already expired
      keys[50] = viewer('document:seed', 'user:anne') // stored identically
      keys[60] = viewer('document:seed', 'user:anne', { condition: { name: 'below_ten' } }) // stored without it
      keys[999] = viewer('document:eng', 'group:eng#member')
      const result = await importer.writes.importTuples(store.id, keys, { chunkSize: 400 })
      expect(result.written).toBe(1000 - 5)
      expect(result.unchanged).toBe(1)
      expect(result.refused.map((r) => [r.index, r.reason])).toEqual([
        [10, 'invalid_tuple'],
        [20, 'invalid_tuple'],
        [40, 'invalid_tuple'],
        [60, 'different_condition'],
      ])
      expect(result.refused[0].message).toMatch(/folder:1/)
      expect(result.refused[3].message).toBe(
        "tuple to be written already existed with a different condition: user: 'user:anne', relation: 'viewer', object: 'document:seed'",
      )
      // One revision per chunk of 400 (the seed write was revision 1).
      expect(result.revision).toBe(4)
      const changes = await server.writes.readChanges(store.id, { pageSize: 2000 })
      expect(changes.items).toHaveLength(1 + 995)
      expect(changes.items.filter((c) => c.revision > 1).every((c) => c.operation === 'write')).toBe(true)

      const check = (object: string, user: string, context?: Record<string, unknown>) =>
        server.checks.check(store.id, { tupleKey: { user, relation: 'viewer', object }, context, consistency: 'HIGHER_CONSISTENCY' })
      expect((await check('document:0', 'user:u0')).allowed).toBe(true)
      expect((await check('document:998', 'user:u998')).allowed).toBe(true)
      expect((await check('document:30', 'user:bob', { limit: 3 })).allowed).toBe(true)
      expect((await check('document:30', 'user:bob', { limit: 30 })).allowed).toBe(false)
      expect((await check('document:10', 'user:u10')).allowed).toBe(false)
      expect(server.evaluation.tupleIndexStats()).toMatchObject({ tuples: 1 + 995 })

      // A re-run writes nothing and makes no revision.
      const again = await importer.writes.importTuples(store.id, keys, { chunkSize: 400 })
      expect(again).toMatchObject({ written: 0, unchanged: 996, revision: 4 })
      expect(again.refused).toEqual(result.refused)
    })

    it('answers an empty import with the head revision, and refuses a missing store', async () => {
      const store = await importer.stores.create('bulk-empty', 'client:test')
      await importer.models.write(store.id, MODEL)
      expect(await importer.writes.importTuples(store.id, [])).toMatchObject({ written: 0, unchanged: 0, refused: [], revision: 0 })
      // The model is resolved first: a store that does not exist has none.
      await expect(importer.writes.importTuples('01HNOSUCHSTORENOSUCHSTORE0', [viewer('document:1', 'user:a')])).rejects.toBeInstanceOf(PembaError)
    })
  })
}

const dir = mkdtempSync(join(tmpdir(), 'pemba-bulk-import-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
runImportSuite('sqlite file', () => `sqlite:${join(dir, 'shared.db')}`)

const target = await probePostgres()
describePostgres('importTuples on postgres', target, () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(async () => {
    await schema?.drop()
  })
  runImportSuite('postgres', () => schema.url)
})
