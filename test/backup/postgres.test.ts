/**
 * `pemba backup` on PostgreSQL: a backup taken by another process (`node bin/pemba.js backup
 * create`, one repeatable-read snapshot streamed out with COPY) while a writer keeps changing the
 * benchmark store restores to exactly the source's state at the manifest's revision and answers
 * every check as that state does; and the format is portable: the same backup restored into
 * SQLite, backed up there and restored into PostgreSQL again keeps every row of every table
 * (the checksums are equal at each step); a non-empty database is refused unless --force.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { inspectBackup, type Manifest } from '../../src/store/backup/index.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'
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
      expect(p.stdout()).toMatch(/^backup of postgres:\/\/pemba@127\.0\.0\.1:5432\/pemba written to .* in .* s: 3 stores, /)
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

  it('keeps multi-byte text intact: every restored value equals the source\'s, over megabytes of COPY output', async () => {
    // COPY's output reaches the snapshot in socket-sized chunks that end wherever they end,
    // inside a row and inside a character: text of 2-, 3- and 4-byte characters only, so that
    // nearly every chunk boundary falls inside one.
    const wide = await createTestSchema(target.url!)
    schemas.push(wide)
    const wideClient = await createTestClient({ databaseUrl: wide.url })
    let wideStore: string
    try {
      wideStore = (await setup(wideClient, 'model\n  schema 1.1\ntype user\ntype document\n  relations\n    define viewer: [user]\n')).storeId
      const text = (n: number, length: number) => `${n}-${'é文🎉ß語'.repeat(length)}`
      const keys = Array.from({ length: 3000 }, (_, n) => ({ user: `user:${text(n, 8)}`, relation: 'viewer', object: `document:${text(n, 16)}` }))
      await wideClient.pemba.writes.importTuples(wideStore, keys)
    } finally {
      await wideClient.close()
    }
    const file = join(dir, 'multi-byte.backup.gz')
    expect((await cli('create', file, '--database-url', wide.url)).code).toBe(0)
    const restored = await createTestSchema(target.url!)
    schemas.push(restored)
    const r = await cli('restore', file, '--database-url', restored.url)
    expect(r.code, r.err).toBe(0)

    const db = new pg.Client({ connectionString: target.url })
    await db.connect()
    try {
      const read = async (schema: string, table: string, key: string) =>
        (await db.query({ text: `SELECT * FROM ${db.escapeIdentifier(schema)}.${table} ORDER BY ${key}`, rowMode: 'array' })).rows
      const bytes = await db.query<{ n: number }>(
        `SELECT SUM(octet_length(object_id) + octet_length(user_id))::int AS n FROM ${db.escapeIdentifier(wide.name)}.tuples`,
      )
      expect(bytes.rows[0].n).toBeGreaterThan(1_000_000)
      for (const [table, key] of [['stores', 'id'], ['tuples', 'store_id, object_type, object_id, relation, user_type, user_id'], ['changelog', 'store_id, revision, seq']]) {
        const original = await read(wide.name, table, key)
        const copy = await read(restored.name, table, key)
        expect(original.length, table).toBeGreaterThan(0)
        // Whole values, not checksums: a checksum taken after a bad decode matches its own damage.
        expect(copy, table).toEqual(original)
      }
      expect(JSON.stringify(await read(restored.name, 'tuples', 'object_id'))).not.toContain('\uFFFD')
    } finally {
      await db.end()
    }
  })

  it('never records or prints the database password, given in the URL\'s query string either', async () => {
    const small = await createTestSchema(target.url!)
    schemas.push(small)
    const smallClient = await createTestClient({ databaseUrl: small.url })
    await smallClient.request('POST', '/stores', { name: 'small' })
    await smallClient.close()
    // postgres://pemba@host/db?options=…&password=… : the password where redactUrl does not look.
    const withQueryPassword = (url: string) => {
      const u = new URL(url)
      const password = decodeURIComponent(u.password)
      u.password = ''
      u.searchParams.set('password', password)
      return { url: u.toString(), password }
    }
    const from = withQueryPassword(small.url)
    expect(from.password.length).toBeGreaterThan(0)
    const file = join(dir, 'no-password.backup.gz')
    const created = await cli('create', file, '--database-url', from.url)
    expect(created.code, created.err).toBe(0)
    const into = await createTestSchema(target.url!)
    schemas.push(into)
    const restored = await cli('restore', file, '--database-url', withQueryPassword(into.url).url)
    expect(restored.code, restored.err).toBe(0)
    const inspected = await cli('inspect', file, '--json')
    const printed = [created.out, restored.out, restored.err, inspected.out, (await cli('inspect', file)).out].join('\n')
    expect(printed).toMatch(/password=\[REDACTED\]/)
    expect(printed).not.toContain(`password=${from.password}`)
    expect(gunzipSync(readFileSync(file)).toString('utf8')).not.toContain('password')
    const server = new URL(target.url!)
    expect(JSON.parse(inspected.out).database).toBe(`postgres://${server.username}@${server.host}${server.pathname}`)
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
    // Into a schema without Pemba's tables: the migrations, applied before the transaction, stay; the message says so.
    const bare = await createTestSchema(target.url!)
    schemas.push(bare)
    const migrated = await cli('restore', duplicate, '--database-url', bare.url)
    expect(migrated.code).toBe(1)
    expect(migrated.err).toMatch(/failed, and was rolled back \(no row was written, but the \d+ migration\(s\) applied before it stay applied\): duplicate key/)
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
