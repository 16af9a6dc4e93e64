/**
 * Migration bookkeeping shared by every SQL backend. drizzle's migrator records each applied
 * migration in `__drizzle_migrations` with the journal entry's `when` as `created_at`, and applies
 * every journal entry newer than the newest recorded one. `PEMBA_MIGRATIONS=check` asks the same
 * question without applying anything, so operators who migrate separately (`pemba migrate`, then
 * roll the replicas) get a refusal instead of a server running on an older schema. Each backend
 * reads its own newest `created_at` (sqlite/index.ts, postgres/index.ts) and asks
 * pendingMigrations here.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** `auto` applies pending migrations at open; `check` refuses to open while any are pending. */
export type MigrationsMode = 'auto' | 'check'

/** migrationsFolder: where a backend's drizzle migrations live, `migrations/<name>` in the repository. */
export function migrationsFolder(name: string): string {
  return fileURLToPath(new URL(`../../migrations/${name}`, import.meta.url))
}

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
  return migrationStatus(folder, newestApplied).pending
}

/** What `pemba migrate status` prints: the journal's tags, split into applied and pending. */
export interface MigrationStatus {
  applied: string[]
  pending: string[]
}

/**
 * migrationStatus splits the journal's tags by the newest recorded `created_at`, as drizzle's
 * migrator does: journal [0000_init@100, 0001_x@200] and newest 100 → applied ['0000_init'],
 * pending ['0001_x'].
 */
export function migrationStatus(folder: string, newestApplied: number | undefined): MigrationStatus {
  const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, 'utf8')) as {
    entries: { tag: string; when: number }[]
  }
  const status: MigrationStatus = { applied: [], pending: [] }
  for (const e of journal.entries) {
    if (newestApplied === undefined || newestApplied < e.when) status.pending.push(e.tag)
    else status.applied.push(e.tag)
  }
  return status
}
