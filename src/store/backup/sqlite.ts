/**
 * Backups of SQLite. The snapshot is better-sqlite3's online backup API (`db.backup()`), told to
 * copy every page in one step: one step runs inside one read transaction on the source, and in
 * WAL mode (which Pemba's databases use) readers and writers do not block each other, so the
 * copy is the database as of one commit while the server keeps writing. (Copied a hundred pages
 * at a time, as better-sqlite3 does by default, the backup restarts whenever another process
 * writes between two steps, and a busy server can keep it from ever finishing; `VACUUM INTO`
 * would hold the read transaction while it also rebuilds every index.) The rows are then read
 * from the private copy, so the live database's snapshot is held only for the page copy, not
 * for the slower encoding and compression.
 *
 * A restore opens the database (migrating it first) and writes every row with prepared inserts
 * inside one IMMEDIATE transaction: all of the backup or nothing, and no server writes between
 * the emptiness check and the last row. A failed restore into a file it created removes the file.
 * The restoring connection runs at `synchronous = FULL` whatever the server's setting: better-sqlite3
 * opens an existing WAL database at NORMAL, under which the COMMIT would not be synced, and a
 * restore reported done must survive a power cut. The final checkpoint is checked: one that
 * readers (a running server) kept from finishing is reported as a warning.
 *
 * @module
 */
import Database from 'better-sqlite3'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { resolve } from 'node:path'
import { migrationStatus } from '../migrations.ts'
import { sqliteBackend, type SqliteTarget } from '../sqlite/index.ts'
import { BackupRefused, SNAPSHOT_BATCH, type BackupDialect, type RestoreSession, type Snapshot } from './dialect.ts'
import type { TableLoader } from './format.ts'
import { quoteName, selectRows, TABLES, type TableSpec } from './tables.ts'

/** More pages than any database has: the whole copy in one backup step (see the module comment). */
const ALL_PAGES = 0x7fffffff

function fileOf(target: object): string {
  const { filename } = target as SqliteTarget
  if (filename === ':memory:') {
    throw new BackupRefused(
      'sqlite::memory: lives only inside the process that opened it: there is nothing another process can back up or restore into',
    )
  }
  return filename
}

/** open: a connection that waits for the server's write transactions instead of failing at once. */
function open(filename: string): Database.Database {
  const db = new Database(filename, { fileMustExist: true })
  db.pragma('busy_timeout = 10000')
  return db
}

/** The tables of `db` that hold rows: `stores` with its count, the others with 1. */
function occupied(db: Database.Database): Record<string, number> {
  const found: Record<string, number> = {}
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").pluck()
  for (const t of TABLES) {
    if (!exists.get(t.name)) continue
    const table = quoteName(t.name)
    const sql = t.name === 'stores' ? `SELECT COUNT(*) FROM ${table}` : `SELECT COUNT(*) FROM (SELECT 1 FROM ${table} LIMIT 1)`
    const n = db.prepare(sql).pluck().get() as number
    if (n > 0) found[t.name] = n
  }
  return found
}

/** The files of a SQLite database: the file itself and those SQLite makes beside it. */
const SUFFIXES = ['', '-wal', '-shm', '-journal']

async function removeDatabase(path: string): Promise<void> {
  for (const suffix of SUFFIXES) await rm(`${path}${suffix}`, { force: true })
}

class SqliteSnapshot implements Snapshot {
  readonly migrations: { applied: string[]; pending: string[] }

  constructor(
    readonly db: Database.Database,
    readonly copyPath: string,
  ) {
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'").get()
    const newest = hasTable ? (db.prepare('SELECT MAX(CAST(created_at AS INTEGER)) FROM __drizzle_migrations').pluck().get() as number | null) : null
    this.migrations = migrationStatus(sqliteBackend.migrationsFolder, newest ?? undefined)
  }

  async *rows(spec: TableSpec): AsyncGenerator<unknown[][]> {
    let batch: unknown[][] = []
    for (const row of this.db.prepare(selectRows(spec)).raw().iterate() as IterableIterator<unknown[]>) {
      batch.push(row)
      if (batch.length >= SNAPSHOT_BATCH) {
        yield batch
        batch = []
      }
    }
    if (batch.length > 0) yield batch
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close()
    await removeDatabase(this.copyPath)
  }
}

class SqliteRestore implements RestoreSession {
  constructor(
    readonly db: Database.Database,
    readonly filename: string,
    readonly migrated: readonly string[],
    readonly created: boolean,
  ) {}

  async occupied(): Promise<Record<string, number>> {
    return occupied(this.db)
  }

  async wipe(): Promise<void> {
    for (const t of TABLES) this.db.prepare(`DELETE FROM ${quoteName(t.name)}`).run()
  }

  async load(spec: TableSpec, columns: readonly string[]): Promise<TableLoader> {
    const insert = this.db.prepare(
      `INSERT INTO ${quoteName(spec.name)} (${columns.map(quoteName).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    )
    return {
      async rows(batch) {
        for (const row of batch) insert.run(...row)
      },
      async end() {},
    }
  }

  async commit(): Promise<void> {
    this.db.exec('COMMIT')
  }

  /**
   * The restore went through the WAL: fold it into the file now rather than at some later write.
   * SQLite answers a checkpoint that readers blocked with `busy = 1` rather than an error; the
   * restore is durable anyway (its COMMIT was synced), so that is said, not failed.
   */
  async optimize(): Promise<void> {
    const [result] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[]
    if (result && result.busy !== 0) {
      throw new Error(
        `the final WAL checkpoint was blocked by other connections (${result.checkpointed} of ${result.log} pages copied); ` +
          'the restore is durable in the WAL and is folded into the database file at the next checkpoint',
      )
    }
  }

  async close(): Promise<void> {
    if (!this.db.open) return
    if (this.db.inTransaction) this.db.exec('ROLLBACK')
    this.db.close()
  }

  async discard(): Promise<void> {
    if (this.created) await removeDatabase(this.filename)
  }
}

export const sqliteBackup: BackupDialect = {
  name: sqliteBackend.name,

  async openSnapshot(target, scratchPath) {
    const filename = fileOf(target)
    if (!existsSync(filename)) throw new BackupRefused(`sqlite:${filename}: no such database file`)
    await removeDatabase(scratchPath)
    const source = open(filename)
    try {
      await source.backup(scratchPath, { progress: () => ALL_PAGES })
    } catch (e) {
      await removeDatabase(scratchPath)
      throw e
    } finally {
      source.close()
    }
    return new SqliteSnapshot(open(scratchPath), scratchPath)
  },

  databaseFiles(target) {
    const { filename } = target as SqliteTarget
    return filename === ':memory:' ? [] : SUFFIXES.map((suffix) => resolve(`${filename}${suffix}`))
  },

  async occupiedBefore(target) {
    const filename = fileOf(target)
    if (!existsSync(filename)) return {}
    const db = open(filename)
    try {
      return occupied(db)
    } finally {
      db.close()
    }
  },

  async begin(target) {
    const filename = fileOf(target)
    // A restore into a new file that fails removes the file again: a failed restore leaves no
    // migrated, empty database behind where there was none.
    const created = !existsSync(filename)
    let db: Database.Database | undefined
    try {
      const migrated = await sqliteBackend.migrate(target as SqliteTarget)
      db = open(filename)
      db.pragma('synchronous = FULL')
      db.exec('BEGIN IMMEDIATE')
      return new SqliteRestore(db, filename, migrated, created)
    } catch (e) {
      db?.close()
      if (created) await removeDatabase(filename)
      throw e
    }
  },
}
