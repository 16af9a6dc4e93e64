/**
 * What a SQL backend tells the wiring about itself: the database URLs it accepts, how it opens a
 * `Datastore` over one, and how it applies or checks its migrations. Each driver file exports one
 * (`sqliteBackend` in sqlite/index.ts, `postgresBackend` in postgres/index.ts) and the registry
 * (backends.ts) lists them, so the configuration, the server and `pemba migrate` name no
 * dialect: a new backend is its driver file, one line in the registry, its schema and migrations.
 *
 * @module
 */
import type { DatastoreUnavailable } from '../../core/errors.ts'
import type { MigrationStatus, MigrationsMode } from '../migrations.ts'
import type { QueryObserver } from '../ports.ts'
import type { Datastore } from '../store.ts'

/** The settings a backend may use when it opens a datastore; each takes those it understands. */
export interface OpenOptions {
  /** Connections in a pool (PEMBA_PG_POOL_SIZE); a single-connection backend ignores it. */
  poolSize: number
  /** Per-statement timeout in ms (PEMBA_PG_STATEMENT_TIMEOUT_MS), 0 = the server's. */
  statementTimeoutMs: number
  /** `auto` applies pending migrations at open; `check` refuses to open while any are pending. */
  migrations: MigrationsMode
  /** Told each operation's duration and outcome (the metrics); none: nothing is timed. */
  observer?: QueryObserver
  /**
   * Told when a pooled connection fails while idle (the server restarted, a failover): the pool
   * drops it and the next operation opens a new one, so this only reports it.
   */
  onConnectionError?: (err: Error) => void
  /**
   * Told each time an operation fails because the database is unavailable (unavailable.ts);
   * the operation itself rejects with the same DatastoreUnavailable.
   */
  onUnavailable?: (err: DatastoreUnavailable) => void
  /**
   * SQLite's `synchronous` pragma (PEMBA_SQLITE_SYNCHRONOUS): `full` (the default) syncs every
   * commit, `normal` only at checkpoints; other backends ignore it. See docs/failure-behaviour.md.
   */
  sqliteSynchronous?: 'full' | 'normal'
  /** Told, under `auto`, which migrations this open applied (none: not called). */
  onMigrationsApplied?: (tags: string[]) => void
  /**
   * Streaming standbys for the reads that may lag (PEMBA_DATABASE_READ_URL, PostgreSQL only:
   * the configuration refuses them for another backend).
   */
  readUrls?: readonly string[]
  /** How far (ms) a read sent to a standby may lag the primary (PEMBA_CHECK_CACHE_STALENESS_MS). */
  readStalenessMs?: number
  /** Where a standby going down, lagging or coming back is logged. */
  replicaLog?: { warn(fields: object, message: string): void; info(fields: object, message: string): void }
  /** Hides secrets in what replicaLog is told. */
  redact?: (text: string) => string
}

/**
 * ReadReplicaRefused: at open a read replica (PEMBA_DATABASE_READ_URL) answered but cannot serve
 * (a wrong password, no such database, not a standby): a misconfiguration, so the server stops
 * with this message, which names the setting (password hidden).
 */
export class ReadReplicaRefused extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ReadReplicaRefused'
  }
}

/**
 * InvalidDatabaseUrl: a URL of the backend's scheme that still names no database. Its message
 * is the reason alone (`names no file`); the configuration prefixes the setting and the URL.
 */
export class InvalidDatabaseUrl extends Error {
  constructor(reason: string) {
    super(reason)
    this.name = 'InvalidDatabaseUrl'
  }
}

/**
 * SqlBackend describes one backend. `Target` is what `parseUrl` makes of a URL, e.g. SQLite's
 * `{ filename: './data/pemba.db' }` for `sqlite:./data/pemba.db`, or PostgreSQL's `{ url }`.
 */
export interface SqlBackend<Target extends object = object> {
  /** The backend's name, which its datastores report as `dialect`: `sqlite`, `postgres`. */
  readonly name: string
  /** The URL prefixes it accepts, e.g. `postgres://` and `postgresql://`. */
  readonly schemes: readonly string[]
  /** The URL forms listed when a URL matches no backend, e.g. `sqlite:<path>`, `sqlite::memory:`. */
  readonly urlForms: readonly string[]
  /** The drizzle migrations folder (journal and SQL files) of its schema. */
  readonly migrationsFolder: string
  /** parseUrl reads a URL with one of `schemes`; throws InvalidDatabaseUrl if it names no database. */
  parseUrl(url: string): Target
  /** redactUrl: the URL as messages may show it (a password hidden: `postgres://pemba:***@db/pemba`). */
  redactUrl(url: string): string
  /**
   * open returns a datastore over `target` after applying its pending migrations, or with
   * `migrations: 'check'` throws MigrationsPendingError while any are pending (changing
   * nothing: a SQLite file is only read, never created).
   */
  open(target: Target, options: OpenOptions): Promise<Datastore>
  /** migrate applies the pending migrations and returns their tags, [] when none was pending (`pemba migrate`). */
  migrate(target: Target): Promise<string[]>
  /** migrationStatus lists the applied and pending migrations, changing nothing (`pemba migrate status`). */
  migrationStatus(target: Target): Promise<MigrationStatus>
  /**
   * unreachable: `open` failed because the database could not be reached (yet): refused or
   * timed-out connections, a server still starting. The server retries those at start
   * (PEMBA_DB_STARTUP_TIMEOUT_MS); anything else (a wrong password, a missing database) stops it
   * at once. Absent: nothing is retried.
   */
  unreachable?(err: unknown): boolean
}
