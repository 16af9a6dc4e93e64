/**
 * What each backend supplies to backups: a snapshot to read every table from, consistent as of
 * one instant while servers keep writing, and a restore target to write a backup into, in one
 * transaction. sqlite.ts and postgres.ts implement them; index.ts picks one by the backend's
 * name and does the rest (the file format, the checks) the same way for both.
 *
 * @module
 */
import type { RowBatches, TableLoader } from './format.ts'
import type { TableSpec } from './tables.ts'

/** Rows per batch a snapshot hands the writer. */
export const SNAPSHOT_BATCH = 2000

/** A consistent read of the whole database, as of the moment it was opened. */
export interface Snapshot {
  /** The applied and pending migrations of the database (its backend's journal tags). */
  migrations: { applied: string[]; pending: string[] }
  /** The table's rows in primary-key order, each an array of values in `spec.columns` order. */
  rows(spec: TableSpec): RowBatches
  /** Ends the snapshot and removes whatever it made (a copy of the file). */
  close(): Promise<void>
}

/** A database being restored into, inside one write transaction. */
export interface RestoreSession {
  /** The migrations begin applied (before the transaction: a rollback does not undo them). */
  readonly migrated: readonly string[]
  /** Whether begin created the database (a new SQLite file), which discard then removes. */
  readonly created: boolean
  /** The tables that hold rows, with a count (`stores`) or 1 (at least one row). */
  occupied(): Promise<Record<string, number>>
  /** Empties every Pemba table (`--force`). */
  wipe(): Promise<void>
  /** A loader for one table's rows, given the backup's column names (a subset of the spec's). */
  load(spec: TableSpec, columns: readonly string[]): Promise<TableLoader>
  commit(): Promise<void>
  /** After the commit: what makes the restored database fast from its first query (statistics, a WAL checkpoint). */
  optimize(): Promise<void>
  /** Releases everything, rolling back what was not committed. */
  close(): Promise<void>
  /** After a failed restore, once closed: removes the database if begin created it. */
  discard(): Promise<void>
}

/** One backend's backup support. */
export interface BackupDialect {
  /** The SqlBackend name it serves: `sqlite`, `postgres`. */
  name: string
  /**
   * openSnapshot starts a consistent read of the database at `target` (the backend's parsed
   * URL); `scratchPath` names a file it may create, in a private directory, for a copy.
   */
  openSnapshot(target: object, scratchPath: string): Promise<Snapshot>
  /** The files the database lives in (a SQLite file and its -wal, -shm, -journal), absolute; none for a server. */
  databaseFiles(target: object): string[]
  /**
   * occupiedBefore: the tables holding rows, read without creating or migrating anything (a
   * missing SQLite file holds nothing), so a refused restore changes nothing.
   */
  occupiedBefore(target: object): Promise<Record<string, number>>
  /** begin opens the (migrated) database and starts the restore's write transaction. */
  begin(target: object): Promise<RestoreSession>
}

/**
 * BackupRefused: the database cannot be backed up, or restored into, as asked (an in-memory
 * database, pending migrations, a non-empty target without `--force`). Its message says why and
 * what to do; the command exits 1 and nothing was changed.
 */
export class BackupRefused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'BackupRefused'
  }
}

/** BackupInterrupted: a signal (Ctrl-C) stopped the command; what it had made is removed or rolled back. */
export class BackupInterrupted extends BackupRefused {
  constructor(message: string) {
    super(message)
    this.name = 'BackupInterrupted'
  }
}
