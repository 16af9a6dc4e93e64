/**
 * `pemba backup` on PostgreSQL: a backup taken by another process (`node bin/pemba.js backup
 * create`, one repeatable-read snapshot streamed out with COPY) while a writer keeps changing the
 * benchmark store restores to exactly the source's state at the manifest's revision and answers
 * every check as that state does; and the format is portable: the same backup restored into
 * SQLite, backed up there and restored into PostgreSQL again keeps every row of every table
 * (the checksums are equal at each step); a non-empty database is refused unless --force.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { inspectBackup, type Manifest } from '../../src/store/backup/index.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { runPemba } from '../helpers/processes.ts'
import { addExtras, cli, expectRestoredAt, loadBench, startWriter, withDuplicateRow } from './support.ts'

const target = await probePostgres()

describePostgres('pemba backup on PostgreSQL', target, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-backup-pg-'))
  const schemas: TestSchema[] = []
  let source: TestSchema
  let client: TestClient
  let storeId: string
  let manifest: Manifest
  let after: number

  beforeAll(async () => {
    source = await createTestSchema(target.url!)
    schemas.push(source)
    client = await createTestClient({ databaseUrl: source.url })
    storeId = await loadBench(client)
    await addExtras(client)
  })

  afterAll(async () => {
    await client?.close()
    for (const s of schemas) await s.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** restored: a new schema with `file` restored into it, and a backup of it that must equal `manifest`. */
  async function restoreAndCompare(file: string, name: string): Promise<TestSchema> {
    const schema = await createTestSchema(target.url!)
    schemas.push(schema)
    const r = await cli('restore', file, '--database-url', schema.url)
    expect(r, r.err).toMatchObject({ code: 0, err: '' })
    const again = join(dir, `${name}.backup.gz`)
    expect((await cli('create', again, '--with-decisions', '--database-url', schema.url)).code).toBe(0)
    const copy = await inspectBackup(again, true)
    expect(copy.tables).toEqual(manifest.tables)
    expect(copy.stores).toEqual(manifest.stores)
    return schema
  }

  it('is made by another process while the writer runs, and restores every row of every table', async () => {
    const before = await client.pemba.datastore.headRevision(storeId)
    const file = join(dir, 'during-writes.backup.gz')
    const writer = startWriter(client.pemba, storeId)
    try {
      await writer.waitFor(20)
      const p = runPemba(['backup', 'create', file, '--with-decisions'], { PEMBA_DATABASE_URL: source.url })
      expect(await p.exited, p.stderr()).toBe(0)
      expect(p.stdout()).toMatch(/^backup of postgres:\/\/pemba:\*\*\*@.* written to .* in .* s: 3 stores, /)
      await writer.waitFor(writer.writes() + 20)
    } finally {
      await writer.stop()
    }
    after = await client.pemba.datastore.headRevision(storeId)
    manifest = await inspectBackup(file, true)
    const revision = manifest.stores.find((s) => s.id === storeId)!.revision
    expect(revision).toBeGreaterThanOrEqual(before + 20)
    expect(revision).toBeLessThan(after)
    expect(manifest).toMatchObject({ backend: 'postgres', decision_log: true })
    for (const t of manifest.tables) expect(t.rows, t.name).toBeGreaterThan(0)

    const restored = await restoreAndCompare(file, 'restored')
    await expectRestoredAt(client.pemba, restored.url, storeId, revision, after)
  })

  it('restores into SQLite, and from there into PostgreSQL again, every table unchanged', async () => {
    const file = join(dir, 'during-writes.backup.gz')
    const sqlite = join(dir, 'from-postgres.db')
    let r = await cli('restore', file, '--database-url', `sqlite:${sqlite}`)
    expect(r.code, r.err).toBe(0)
    const fromSqlite = join(dir, 'from-sqlite.backup.gz')
    r = await cli('create', fromSqlite, '--with-decisions', '--database-url', `sqlite:${sqlite}`)
    expect(r.code, r.err).toBe(0)
    const viaSqlite = await inspectBackup(fromSqlite, true)
    expect(viaSqlite.backend).toBe('sqlite')
    expect(viaSqlite.tables).toEqual(manifest.tables)

    // Every table's checksum equal at each step: the same rows, so the same answers as the first restore's.
    await restoreAndCompare(fromSqlite, 'round-trip')
  })

  it('refuses a non-empty database unless --force, which wipes it first', async () => {
    const file = join(dir, 'during-writes.backup.gz')
    const other = await createTestSchema(target.url!)
    schemas.push(other)
    const otherClient = await createTestClient({ databaseUrl: other.url })
    const otherStore = (await otherClient.request('POST', '/stores', { name: 'other' })).body.id as string
    await otherClient.close()
    const r = await cli('restore', file, '--database-url', other.url)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^pemba backup restore: postgres:\/\/pemba:\*\*\*@.* is not empty \(2 stores, and rows in .*\): restore into an empty database, or pass --force to wipe it first$/)
    // A file that verifies but cannot be written (a repeated primary key): nothing changes, --force's wipe included.
    const duplicate = join(dir, 'duplicate.gz')
    withDuplicateRow(file, duplicate, 'changelog')
    const failed = await cli('restore', duplicate, '--force', '--database-url', other.url)
    expect(failed.code).toBe(1)
    expect(failed.err).toMatch(/^pemba backup restore: restoring into postgres:\/\/pemba:\*\*\*@.* failed, and was rolled back \(the database is as it was\): duplicate key value violates unique constraint/)
    const still = await cli('restore', file, '--database-url', other.url)
    expect(still.err).toMatch(/is not empty \(2 stores/)

    const forced = await cli('restore', file, '--force', '--database-url', other.url)
    expect(forced.code, forced.err).toBe(0)
    const copy = join(dir, 'forced.backup.gz')
    expect((await cli('create', copy, '--with-decisions', '--database-url', other.url)).code).toBe(0)
    const restored = await inspectBackup(copy, true)
    expect(restored.tables).toEqual(manifest.tables)
    expect(restored.stores.map((s) => s.id)).not.toContain(otherStore)
  })
})
