/**
 * `pemba backup` on SQLite: a backup taken by another process (`node bin/pemba.js backup
 * create`) while a writer keeps changing the benchmark store restores to exactly the source's
 * state at the manifest's revision, and answers every check as that state does; every row of
 * every table survives (a backup of the restored database has the same checksums); a non-empty
 * target is refused unless --force; a truncated, corrupt or tampered file is refused before
 * anything is written.
 */
import Database from 'better-sqlite3'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BackupRefused, createBackup, inspectBackup, type Manifest } from '../../src/store/backup/index.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { runPemba } from '../helpers/processes.ts'
import { addExtras, answers, benchData, cli, editBackup, expectRestoredAt, loadBench, startWriter, withDuplicateRow } from './support.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-backup-'))
const source = join(dir, 'source.db')
const restored = join(dir, 'restored.db')
const backupFile = join(dir, 'during-writes.backup.gz')

let client: TestClient
let storeId: string

/** What a SQLite file holds: its stores and the number of tuples (no file: undefined). */
function contents(file: string): { stores: string[]; tuples: number } | undefined {
  if (!existsSync(file)) return undefined
  const db = new Database(file, { readonly: true })
  try {
    const stores = db.prepare('SELECT id FROM stores ORDER BY id').pluck().all() as string[]
    return { stores, tuples: db.prepare('SELECT COUNT(*) FROM tuples').pluck().get() as number }
  } finally {
    db.close()
  }
}

beforeAll(async () => {
  client = await createTestClient({ databaseUrl: `sqlite:${source}` })
  storeId = await loadBench(client)
  await addExtras(client)
})

afterAll(async () => {
  await client?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('a backup taken while a server writes', () => {
  let manifest: Manifest
  let before: number
  let after: number

  it('is made by another process while the writer runs, and holds a revision between its first and last write', async () => {
    // The baseline: before any write the source answers as SpiceDB does.
    expect(await answers(client.pemba, storeId)).toEqual(benchData().expected)
    before = await client.pemba.datastore.headRevision(storeId)
    const writer = startWriter(client.pemba, storeId)
    try {
      await writer.waitFor(20)
      const p = runPemba(['backup', 'create', backupFile, '--with-decisions'], { PEMBA_DATABASE_URL: `sqlite:${source}` })
      expect(await p.exited, p.stderr()).toBe(0)
      expect(p.stdout()).toMatch(/^backup of sqlite:.* written to .*during-writes\.backup\.gz \(.*\) in .* s: 3 stores, /)
      await writer.waitFor(writer.writes() + 20)
    } finally {
      await writer.stop()
    }
    after = await client.pemba.datastore.headRevision(storeId)
    manifest = await inspectBackup(backupFile, false)
    const revision = manifest.stores.find((s) => s.id === storeId)!.revision
    expect(revision).toBeGreaterThanOrEqual(before + 20)
    expect(revision).toBeLessThan(after)
    expect(manifest).toMatchObject({ format: 'pemba-backup', backend: 'sqlite', decision_log: true })
    expect(manifest.tables.map((t) => t.name)).toContain('decision_log')
    for (const t of manifest.tables) expect(t.rows, t.name).toBeGreaterThan(0)
  })

  it('restores into a new database; a backup of that has the same rows and checksums in every table', async () => {
    const r = await cli('restore', backupFile, '--database-url', `sqlite:${restored}`)
    expect(r, r.err).toMatchObject({ code: 0, err: '' })
    expect(r.out).toMatch(/^restored .* into sqlite:.*restored\.db, in .* s: 3 stores, /)
    const again = join(dir, 'of-restored.backup.gz')
    expect((await cli('create', again, '--with-decisions', '--database-url', `sqlite:${restored}`)).code).toBe(0)
    const copy = await inspectBackup(again, true)
    expect(copy.tables).toEqual(manifest.tables)
    expect(copy.stores).toEqual(manifest.stores)
  })

  it("holds exactly the source's tuples at the snapshot's revision, and answers every check as they do", async () => {
    const revision = manifest.stores.find((s) => s.id === storeId)!.revision
    await expectRestoredAt(client.pemba, `sqlite:${restored}`, storeId, revision, after)
  })
})

describe('restore refuses', () => {
  it('a database that is not empty, unless --force, which wipes it first', async () => {
    const before = contents(restored)
    const r = await cli('restore', backupFile, '--database-url', `sqlite:${restored}`)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^pemba backup restore: sqlite:.*restored\.db is not empty \(3 stores, and rows in .*tuples.*\): restore into an empty database, or pass --force to wipe it first$/)
    expect(contents(restored)).toEqual(before)

    const other = join(dir, 'other.db')
    const otherClient = await createTestClient({ databaseUrl: `sqlite:${other}` })
    const otherStore = (await otherClient.request('POST', '/stores', { name: 'other' })).body.id as string
    await otherClient.close()
    const forced = await cli('restore', backupFile, '--force', '--database-url', `sqlite:${other}`)
    expect(forced.code, forced.err).toBe(0)
    expect(forced.out).toContain('wiped first (--force)')
    expect(contents(other)).toEqual(before)
    expect(contents(other)!.stores).not.toContain(otherStore)
  })

  it('a truncated, corrupt or tampered file, before writing anything (a new database is not even created)', async () => {
    const whole = readFileSync(backupFile)
    const fresh = join(dir, 'fresh.db')
    const existing = contents(restored)

    const truncated = join(dir, 'truncated.gz')
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length * 0.6)))
    let r = await cli('restore', truncated, '--database-url', `sqlite:${fresh}`)
    expect(r).toMatchObject({ code: 1, out: '' })
    expect(r.err).toMatch(/^pemba backup restore: .*truncated\.gz: .*truncated/)

    const flipped = Buffer.from(whole)
    flipped[Math.floor(flipped.length * 0.5)] ^= 0xff
    const corrupt = join(dir, 'corrupt.gz')
    writeFileSync(corrupt, flipped)
    r = await cli('restore', corrupt, '--database-url', `sqlite:${fresh}`)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^pemba backup restore: .*corrupt\.gz: .*(corrupt|truncated)/)

    // Intact gzip, a row changed: only the checksum can tell.
    const text = gunzipSync(whole).toString('utf8')
    const tampered = join(dir, 'tampered.gz')
    writeFileSync(tampered, gzipSync(text.replace('"blocked"', '"viewer"')))
    r = await cli('restore', tampered, '--force', '--database-url', `sqlite:${restored}`)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^pemba backup restore: .*tampered\.gz: table tuples: its sha256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}: the file is corrupt$/)

    expect(existsSync(fresh)).toBe(false)
    expect(contents(restored)).toEqual(existing)

    // A file that verifies but cannot be written (a repeated primary key): --force's wipe is rolled back too.
    const duplicate = join(dir, 'duplicate.gz')
    withDuplicateRow(backupFile, duplicate, 'tuples')
    r = await cli('restore', duplicate, '--force', '--database-url', `sqlite:${restored}`)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^pemba backup restore: restoring into sqlite:.*restored\.db failed, and was rolled back \(the database is as it was\): UNIQUE constraint failed: tuples\./)
    expect(contents(restored)).toEqual(existing)
    // inspect reads only the manifest unless asked to verify.
    expect((await cli('inspect', tampered)).code).toBe(0)
    const verify = await cli('inspect', tampered, '--verify')
    expect(verify.code).toBe(1)
    expect(verify.err).toMatch(/table tuples: its sha256/)
    // --json carries the verification's outcome, as well as saying it on stderr.
    const verifyJson = await cli('inspect', tampered, '--verify', '--json')
    expect(verifyJson.code).toBe(1)
    expect(JSON.parse(verifyJson.out)).toMatchObject({ verified: false, verify_error: expect.stringMatching(/table tuples: its sha256/) })
    expect(verifyJson.err).toMatch(/^pemba backup inspect: .*table tuples: its sha256/)
  })

  it('and create refuses an existing file without --overwrite, a missing directory, and an in-memory database', async () => {
    const { size, mode } = statSync(backupFile)
    // The whole authorization graph: readable by its owner only.
    expect(mode & 0o777).toBe(0o600)
    let r = await cli('create', backupFile, '--database-url', `sqlite:${source}`)
    expect(r.code).toBe(1)
    expect(r.err).toBe(`pemba backup create: ${backupFile} exists already: name a new file, or pass --overwrite to replace it`)
    expect(statSync(backupFile).size).toBe(size)
    r = await cli('create', join(dir, 'missing', 'backup.gz'), '--database-url', `sqlite:${source}`)
    expect(r).toMatchObject({ code: 1, err: `pemba backup create: ${join(dir, 'missing', 'backup.gz')}: no such directory` })
    r = await cli('create', join(dir, 'memory.gz'), '--database-url', 'sqlite::memory:')
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/sqlite::memory: lives only inside the process that opened it/)
    expect(existsSync(join(dir, 'memory.gz'))).toBe(false)
  })
})

describe('nothing is left behind or replaced', () => {
  const options = { withDecisions: false, overwrite: false, pembaVersion: 'test', clock: () => new Date() }

  it('create keeps its scratch files in a private directory, and an abort removes them at once', async () => {
    const work = join(dir, 'abort')
    mkdirSync(work)
    const file = join(work, 'aborted.backup.gz')
    const controller = new AbortController()
    let seen: { mode: number; files: string[] } | undefined
    const stopped = createBackup(`sqlite:${source}`, file, {
      ...options,
      signal: controller.signal,
      // Called right after the snapshot (a full copy of the database) is made: look, then abort.
      clock: () => {
        const [scratch, ...more] = readdirSync(work)
        expect(more).toEqual([])
        seen = { mode: statSync(join(work, scratch)).mode & 0o777, files: readdirSync(join(work, scratch)) }
        controller.abort(new BackupRefused('stop'))
        expect(readdirSync(work)).toEqual([])
        return new Date()
      },
    })
    await expect(stopped).rejects.toThrow('stop')
    expect(seen).toEqual({ mode: 0o700, files: expect.arrayContaining(['snapshot.db']) })
    expect(readdirSync(work)).toEqual([])
  })

  it('a SIGINT stops create: exit 130, no scratch file left', async () => {
    const work = join(dir, 'sigint')
    mkdirSync(work)
    const p = runPemba(['backup', 'create', join(work, 'interrupted.backup.gz'), '--with-decisions'], { PEMBA_DATABASE_URL: `sqlite:${source}` })
    // The scratch directory appears once the process is under way: interrupt it then.
    const watcher = watch(work, () => {
      watcher.close()
      p.proc.kill('SIGINT')
    })
    try {
      expect(await p.exited, p.stderr()).toBe(130)
    } finally {
      watcher.close()
      p.kill()
    }
    expect(p.stderr()).toMatch(/^pemba backup create: interrupted \(SIGINT\)/)
    expect(readdirSync(work)).toEqual([])
  })

  it('create does not replace a file that appears while it runs', async () => {
    const file = join(dir, 'appears.backup.gz')
    const made = createBackup(`sqlite:${source}`, file, { ...options, clock: () => (writeFileSync(file, 'precious'), new Date()) })
    await expect(made).rejects.toThrow(`${file} appeared while the backup was written: it was left alone`)
    expect(readFileSync(file, 'utf8')).toBe('precious')
    expect(readdirSync(dir).filter((f) => f.includes('pemba-backup'))).toEqual([])
  })

  it('create --overwrite refuses to write over the database it backs up, or its WAL', async () => {
    const size = statSync(source).size
    for (const target of [source, `${source}-wal`, `${dir}/./source.db`]) {
      const r = await cli('create', target, '--overwrite', '--database-url', `sqlite:${source}`)
      expect(r.code).toBe(1)
      expect(r.err).toBe(`pemba backup create: ${target} is the database being backed up (or one of its files): name another file`)
    }
    expect(statSync(source).size).toBe(size)
    expect(await answers(client.pemba, storeId)).toHaveLength(benchData().checks.length)
  })

  it('a failed restore into a new file removes the file it created', async () => {
    const duplicate = join(dir, 'duplicate-new.gz')
    withDuplicateRow(backupFile, duplicate, 'tuples')
    const fresh = join(dir, 'never.db')
    const r = await cli('restore', duplicate, '--database-url', `sqlite:${fresh}`)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^pemba backup restore: restoring into sqlite:.*never\.db failed, and was rolled back \(the database file it had created is removed\): UNIQUE constraint failed: tuples\./)
    expect(readdirSync(dir).filter((f) => f.startsWith('never.db'))).toEqual([])
  })

  it('a manifest edited after the fact is refused, its list of stores included', async () => {
    const edited = join(dir, 'edited.gz')
    // A hand edit that does not recompute manifest_sha256: refused even by a plain inspect.
    editBackup(backupFile, edited, (m) => (m.stores[0].revision += 1), false)
    let r = await cli('inspect', edited)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/edited\.gz: its manifest does not match its manifest_sha256/)
    // Recomputed: the stores table's checksum still holds, and the list no longer matches it.
    editBackup(backupFile, edited, (m) => (m.stores[0].revision += 1))
    r = await cli('inspect', edited, '--verify')
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/edited\.gz: the manifest's list of stores differs from the stores table/)
    editBackup(backupFile, edited, (m) => (m.stores[0].name = 'renamed'))
    expect((await cli('restore', edited, '--database-url', `sqlite:${join(dir, 'edited.db')}`)).err).toMatch(/list of stores differs/)
    // A backend this Pemba does not know no longer skips the migration check.
    editBackup(backupFile, edited, (m) => ((m.backend = 'mysql'), m.migrations.push('9999_from_the_future')))
    r = await cli('restore', edited, '--database-url', `sqlite:${join(dir, 'edited.db')}`)
    expect(r.err).toMatch(/edited\.gz was made by Pemba .*, whose schema this Pemba does not know \(a backup of a mysql database\)/)
    editBackup(backupFile, edited, (m) => ((m.backend = 'postgres'), m.migrations.push('9999_from_the_future')))
    r = await cli('restore', edited, '--database-url', `sqlite:${join(dir, 'edited.db')}`)
    expect(r.err).toMatch(/whose schema this Pemba does not know \(migrations .*9999_from_the_future\)$/)
    expect(existsSync(join(dir, 'edited.db'))).toBe(false)
  })
})

describe('inspect', () => {
  it('prints the manifest as a table, or as JSON', async () => {
    const manifest = await inspectBackup(backupFile, false)
    const text = await cli('inspect', backupFile, '--verify')
    expect(text.code).toBe(0)
    expect(text.out).toMatch(/^Pemba backup \(format 1\) made by Pemba .* on \d{4}-\d\d-\d\dT/)
    expect(text.out).toContain(`${storeId}  `)
    expect(text.out).toMatch(/^tuples +[\d,]+ {2}[0-9a-f]{64}$/m)
    expect(text.out).toContain('verified: every table matches its row count and sha256')
    // A store's name is printed with its control characters escaped (addExtras's has a tab).
    expect(text.out).toMatch(/^[0-9A-Z]{26} +\d+ {2}extras\\twith a tab$/m)
    expect(text.out).not.toContain('\t')
    const json = await cli('inspect', backupFile, '--json')
    expect(JSON.parse(json.out)).toEqual(manifest)
    const verified = await cli('inspect', backupFile, '--json', '--verify')
    expect(verified.code).toBe(0)
    expect(JSON.parse(verified.out)).toEqual({ ...manifest, verified: true })
    expect(JSON.parse(gunzipSync(readFileSync(backupFile)).toString('utf8').split('\n')[0])).toEqual(manifest)
  })
})
