/**
 * PEMBA_SQLITE_SYNCHRONOUS (issue 22, item 8) reaches the SQLite connection: `full` by default,
 * `normal` when asked, and any other value stops the server with a message naming the setting.
 * What each guarantees is in docs/failure-behaviour.md; what `full` costs, in bench/README.md.
 */
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba } from '../../src/server.ts'
import { createBackup, restoreBackup } from '../../src/store/backup/index.ts'
import { sqliteBackup } from '../../src/store/backup/sqlite.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { runPemba } from '../helpers/processes.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-durability-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** SQLite's numbers for the pragma: 1 NORMAL, 2 FULL. */
const PRAGMA = { normal: 1, full: 2 } as const

async function synchronousOf(env: Record<string, string>): Promise<number> {
  const file = join(dir, `db-${Math.random().toString(36).slice(2)}.db`)
  const pemba = await createPemba(loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${file}`, PEMBA_LOG_LEVEL: 'silent', ...env }, argv: [] }), {
    sweeper: false,
  })
  try {
    expect(pemba.datastore).toBeInstanceOf(SqliteDatastore)
    return (pemba.datastore as SqliteDatastore).db.pragma('synchronous', { simple: true }) as number
  } finally {
    await pemba.close()
  }
}

describe('PEMBA_SQLITE_SYNCHRONOUS', () => {
  it('is FULL by default: an acknowledged write is on the disk', async () => {
    expect(await synchronousOf({})).toBe(PRAGMA.full)
    expect(await synchronousOf({ PEMBA_SQLITE_SYNCHRONOUS: 'full' })).toBe(PRAGMA.full)
  })

  it('is NORMAL when asked', async () => {
    expect(await synchronousOf({ PEMBA_SQLITE_SYNCHRONOUS: 'normal' })).toBe(PRAGMA.normal)
  })

  it('a datastore opened directly (tests, tools) is FULL too, like the server', () => {
    const ds = new SqliteDatastore({ filename: join(dir, 'direct.db') })
    try {
      expect(ds.db.pragma('synchronous', { simple: true })).toBe(PRAGMA.full)
    } finally {
      void ds.close()
    }
  })

  it('any other value stops the server, naming the setting', async () => {
    const p = runPemba(['serve'], {
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite:${join(dir, 'refused.db')}`,
      PEMBA_SQLITE_SYNCHRONOUS: 'off',
    })
    try {
      const code = await p.exited
      expect(code).not.toBe(0)
      expect(p.stderr() + p.stdout()).toMatch(/PEMBA_SQLITE_SYNCHRONOUS must be 'full' or 'normal', got 'off'/)
    } finally {
      p.kill()
    }
  }, 90_000)
})

describe('a restore into SQLite', () => {
  /** A backup of a database holding one store. */
  async function backupOfOneStore(): Promise<string> {
    const source = join(dir, `source-${Math.random().toString(36).slice(2)}.db`)
    const ds = new SqliteDatastore({ filename: source })
    await ds.createStore('01JRESTOREDSTOREAAAAAAAAAA', 'restored', new Date())
    await ds.close()
    const file = join(dir, `${Math.random().toString(36).slice(2)}.backup.gz`)
    await createBackup(`sqlite:${source}`, file, { withDecisions: false, overwrite: false, pembaVersion: 'test', clock: () => new Date() })
    return file
  }

  it('writes at synchronous FULL, whatever SQLite would open an existing WAL database at', async () => {
    // An existing WAL database: better-sqlite3 opens those at NORMAL unless told otherwise.
    const target = join(dir, 'restore-target.db')
    await new SqliteDatastore({ filename: target, synchronous: 'normal' }).close()
    const session = await sqliteBackup.begin({ filename: target })
    try {
      expect((session as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(PRAGMA.full)
    } finally {
      await session.close()
    }
  })

  it('says so when readers kept the final checkpoint from finishing, and the restore stands', async () => {
    const file = await backupOfOneStore()
    const target = join(dir, 'restore-busy.db')
    await new SqliteDatastore({ filename: target }).close()
    // A server's reader in the middle of a read transaction, from before the restore.
    const reader = new Database(target)
    reader.exec('BEGIN')
    reader.prepare('SELECT COUNT(*) FROM stores').pluck().get()
    let warnings: string[]
    try {
      // The checkpoint waits for the reader (busy_timeout, 10 s), then gives up.
      ;({ warnings } = await restoreBackup(`sqlite:${target}`, file, { force: false }))
    } finally {
      reader.exec('COMMIT')
      reader.close()
    }
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/the final WAL checkpoint was blocked by other connections .*the restore is durable in the WAL/)
    const check = new Database(target, { readonly: true })
    try {
      expect(check.prepare('SELECT name FROM stores').pluck().all()).toEqual(['restored'])
    } finally {
      check.close()
    }
    // Without readers the checkpoint finishes: no warning.
    const quiet = join(dir, 'restore-quiet.db')
    expect((await restoreBackup(`sqlite:${quiet}`, file, { force: false })).warnings).toEqual([])
  }, 60_000)
})
