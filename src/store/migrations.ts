/**
 * Migration bookkeeping shared by both dialects. drizzle's migrator records each applied
 * migration in `__drizzle_migrations` with the journal entry's `when` as `created_at`, and applies
 * every journal entry newer than the newest recorded one. `PEMBA_MIGRATIONS=check` asks the same
 * question without applying anything, so operators who migrate separately (`pemba migrate`, then
 * roll the replicas) get a refusal instead of a server running on an older schema.
 *
 * @module
 */
import Database from 'better-sqlite3'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** `auto` applies pending migrations at open; `check` refuses to open while any are pending. */
export type MigrationsMode = 'auto' | 'check'

export const MIGRATION_FOLDERS = {
  sqlite: fileURLToPath(new URL('../../migrations/sqlite', import.meta.url)),
  postgres: fileURLToPath(new URL('../../migrations/postgres', import.meta.url)),
} as const

/** MigrationsPendingError: `check` found migrations the database has not applied. */
export class MigrationsPendingError extends Error {
  constructor(
    readonly target: string,
    readonly pending: string[],
  ) {
    super(
      `${target} has ${pending.length} pending migration(s) (${pending.join(', ')}) and ` +
        `PEMBA_MIGRATIONS=check: run 'pemba migrate' (npm run migrate) against it first, ` +
        `or start with PEMBA_MIGRATIONS=auto`,
    )
    this.name = 'MigrationsPendingError'
  }
}

/**
 * pendingMigrations lists the journal tags drizzle's migrator would apply, given the newest
 * `created_at` in `__drizzle_migrations` (undefined when the table is missing or empty): e.g.
 * journal [0000_init@100, 0001_x@200] and newest 100 → ['0001_x'].
 */
export function pendingMigrations(folder: string, newestApplied: number | undefined): string[] {
  const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, 'utf8')) as {
    entries: { tag: string; when: number }[]
  }
  return journal.entries
    .filter((e) => newestApplied === undefined || newestApplied < e.when)
    .map((e) => e.tag)
}

/**
 * checkSqliteMigrations throws MigrationsPendingError unless the SQLite file exists and has
 * every migration applied. It opens the file read-only, so a check never creates or changes a
 * database; an in-memory database is always empty and so always pending.
 */
export function checkSqliteMigrations(filename: string): void {
  const target = `sqlite:${filename}`
  let newest: number | undefined
  if (filename !== ':memory:' && existsSync(filename)) {
    const db = new Database(filename, { readonly: true, fileMustExist: true })
    try {
      const table = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'")
        .get()
      if (table) {
        const v = db.prepare('SELECT MAX(CAST(created_at AS INTEGER)) FROM __drizzle_migrations').pluck().get()
        newest = v === null || v === undefined ? undefined : Number(v)
      }
    } finally {
      db.close()
    }
  }
  const pending = pendingMigrations(MIGRATION_FOLDERS.sqlite, newest)
  if (pending.length > 0) throw new MigrationsPendingError(target, pending)
}
