/**
 * The PostgreSQL driver: the shared store over PostgreSQL with node-postgres, so several
 * stateless Pemba replicas can serve one set of stores. Its answers are the SQLite store's, call
 * for call (the same SQL core issues the statements, and the same conformance suite runs against
 * both); what differs is how it stays correct when writers on different replicas race:
 *
 * - Every transaction that changes a store's tuples first locks the store's row (`SELECT … FOR
 *   UPDATE`, sql/tuples.ts). Writers to one store take turns, so revision r+1 commits after
 *   revision r on every replica, and a change-feed position (revision, seq) once read is never
 *   preceded by a later commit. Deadlocks and serialization failures (SQLSTATE 40P01, 40001) are
 *   retried with jitter.
 * - Every statement runs under `statement_timeout` (PEMBA_PG_STATEMENT_TIMEOUT_MS), so a stuck
 *   query fails the request instead of holding a pooled connection forever.
 * - Cursors are JSON of column values (a store id, a tuple key, a (revision, seq) pair), never
 *   process state, so a token from one replica continues on any other.
 *
 * Every statement is a named prepared statement (parsed once per pooled connection), batches
 * are one statement over `unnest` of column arrays (statements.ts), and each look-up of the hot
 * reader (reader.ts) is an index range. The schema's migrations and the connection errors worth
 * retrying are in schema.ts, the bulk load (COPY into a staging table) in bulk.ts.
 *
 * @module
 */
import pg from 'pg'
import type { DatastoreUnavailable } from '../../core/errors.ts'
import { formatSubject, type TupleIdentity } from '../../core/tuple.ts'
import { DECISION_COLUMNS } from '../audit.ts'
import type { TupleRow } from '../common.ts'
import { pendingMigrations, type MigrationsMode } from '../migrations.ts'
import type { PoolStats, QueryObserver, ReadReplicaStats, TupleReader, WriteRequest } from '../ports.ts'
import type { SqlBackend } from '../sql/backend.ts'
import { SqlDatastore, type SqlDatastoreOptions } from '../sql/datastore.ts'
import {
  all,
  get,
  run,
  type BulkInserted,
  type BulkRow,
  type SqlDriver,
  type Statement,
  type StoredForWrite,
  type TransactionOptions,
  type Tx,
  type ValueRow,
} from '../sql/driver.ts'
import { connectionLost, datastoreUnreachable } from '../sql/unavailable.ts'
import type { PlannedChange } from '../write-plan.ts'
import { copyIn, postgresBulkInsert } from './bulk.ts'
import { ReadRouter, type ReplicaLog, type StandbyHandle } from './read-replicas.ts'
import { PostgresTupleReader } from './reader.ts'
import { CONNECT_TIMEOUT_MS, POSTGRES_MIGRATIONS, prepareSchema, redact, unreachable } from './schema.ts'
import { BATCH, columns, keyArrays, numbered } from './statements.ts'

export interface PostgresOptions {
  /**
   * `postgres://user:password@host:5432/db`. Tables live in the connection's current schema
   * (`public` unless the URL says otherwise, e.g. `?options=-c%20search_path%3Dpemba`).
   */
  url: string
  /** Connections in the pool (PEMBA_PG_POOL_SIZE). Default 10. */
  poolSize?: number
  /** `statement_timeout` of each pooled connection (PEMBA_PG_STATEMENT_TIMEOUT_MS). Default 5000. */
  statementTimeoutMs?: number
  /** `auto` applies pending migrations at open; `check` refuses to open while any are pending. */
  migrations?: MigrationsMode
  /** Told each operation's duration and outcome (the metrics). */
  observer?: QueryObserver
  /** Told when an idle pooled connection fails (the pool replaces it); default: nothing. */
  onConnectionError?: (err: Error) => void
  /** Told each time an operation fails because the database is unavailable (the outage tracker). */
  onUnavailable?: (err: DatastoreUnavailable) => void
  /** Told which migrations `auto` applied, as read under the migration lock. */
  onMigrationsApplied?: (tags: string[]) => void
  /**
   * Streaming standbys of this database (PEMBA_DATABASE_READ_URL) for the reads that may lag
   * (read-replicas.ts); each gets a pool of `poolSize` connections.
   */
  readUrls?: readonly string[]
  /** How far (ms) a read sent to a standby may lag (PEMBA_CHECK_CACHE_STALENESS_MS). Default 1000. */
  readStalenessMs?: number
  /** Time between the standbys' lag probes (ms); default read-replicas.ts's. */
  readProbeIntervalMs?: number
  /** Where a standby going down, lagging or coming back is logged. */
  replicaLog?: ReplicaLog
  /** Hides secrets in what replicaLog is told (the configured redactor). */
  redact?: (text: string) => string
}

/** Attempts of one transaction when PostgreSQL reports a deadlock or serialization failure. */
const ATTEMPTS = 5
/** Ask PostgreSQL to refresh table statistics after this many tuples written by this process. */
const ANALYZE_AFTER_ROWS = 50_000
const RETRYABLE = new Set(['40001', '40P01'])

/**
 * int8 (bigint) comes back as a string by default. Pemba's bigints are millisecond times and
 * revisions, both far below 2^53, so this pool parses them as numbers; other pools in the
 * process keep node-postgres' default.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text') =>
    oid === pg.types.builtins.INT8
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
}

const NOTHING: ReadonlySet<TupleIdentity> = new Set()

/** Where a transaction attempt got to: once COMMIT is sent, a lost connection leaves its outcome unknown. */
interface AttemptPhase {
  committing: boolean
}

class PostgresDriver implements SqlDriver {
  readonly dialect = postgresBackend.name
  /**
   * Each read is a network round trip, so the engine evaluates up to 8 sibling subproblems at
   * once (`viewer: [user] or editor or viewer from parent` issues its three reads together).
   */
  readonly preferredConcurrency = 8
  readonly forUpdate = ' FOR UPDATE'
  readonly forUpdateSkipLocked = ' FOR UPDATE SKIP LOCKED'
  readonly rowId = 'ctid'
  /** An array of ctids makes a TID scan, where `ctid IN (…)` may scan the whole table. */
  rowIdIn(select: string): string {
    return `ctid = ANY(ARRAY(${select}))`
  }
  readonly decisionScanBudget = undefined
  readonly deleteDecisionsSql = 'DELETE FROM decision_log WHERE ctid IN (SELECT ctid FROM decision_log WHERE at < ? LIMIT ?)'
  readonly pool: pg.Pool
  /** Each statement's name and numbered text, by the core's text. */
  readonly #named = new Map<string, { name: string; text: string }>()
  #closed = false
  /** Tuples written since the last ANALYZE this process asked for. */
  #written = 0

  constructor(pool: pg.Pool) {
    this.pool = pool
  }

  /** #config names a statement after its text, so each is parsed once per pooled connection. */
  #config(text: string, values: readonly unknown[]): pg.QueryConfig {
    let named = this.#named.get(text)
    if (!named) {
      named = { name: `pemba_${this.#named.size}`, text: numbered(text) }
      this.#named.set(text, named)
    }
    return { name: named.name, text: named.text, values: values as unknown[] }
  }

  async #execute(c: pg.PoolClient, op: Statement): Promise<unknown> {
    switch (op.kind) {
      case 'all':
        return (await c.query(this.#config(op.sql, op.params))).rows
      case 'get':
        return (await c.query(this.#config(op.sql, op.params))).rows[0]
      case 'run':
        return (await c.query(this.#config(op.sql, op.params))).rowCount ?? 0
      case 'runEach': {
        // Queued on the one client at once; it sends them one after another.
        const runs: Promise<pg.QueryResult>[] = []
        for (let i = 0; i < op.count; i++) runs.push(c.query(this.#config(op.sql, op.row(i))))
        return (await Promise.all(runs)).map((r) => r.rowCount ?? 0)
      }
      case 'copyFrom':
        return copyIn(c, op.sql, op.chunks)
    }
  }

  async all<R>(text: string, params: readonly unknown[]): Promise<R[]> {
    return (await this.pool.query(this.#config(text, params))).rows as R[]
  }

  async get<R>(text: string, params: readonly unknown[]): Promise<R | undefined> {
    return (await this.pool.query(this.#config(text, params))).rows[0] as R | undefined
  }

  async run(text: string, params: readonly unknown[]): Promise<number> {
    return (await this.pool.query(this.#config(text, params))).rowCount ?? 0
  }

  /**
   * transaction runs the body on one pooled client between BEGIN and COMMIT, again on deadlock
   * or serialization failure, or when the connection broke before COMMIT was sent (nothing of a
   * failed attempt is visible, so a retry is a fresh start), with jitter: 10, 20, 40, 80 ms
   * ceilings, so racing replicas do not retry in lockstep. A connection lost during COMMIT is
   * ambiguous (the server may have committed): retried only for an idempotent body, else thrown
   * (the API answers 503 and the client reads back). A connection that could not be opened is
   * not retried here: the database is down, and the caller hears so at once.
   */
  async transaction<T>(body: () => Tx<T>, options?: TransactionOptions): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const phase: AttemptPhase = { committing: false }
      try {
        return await this.#attempt(body(), phase)
      } catch (e) {
        const again =
          isRetryable(e) || (connectionLost(e) && (!phase.committing || options?.idempotent === true))
        if (attempt >= ATTEMPTS || !again) throw e
        await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** (attempt - 1)))
      }
    }
  }

  async #attempt<T>(body: Tx<T>, phase: AttemptPhase): Promise<T> {
    const client = await this.pool.connect()
    let broken: Error | undefined
    // A checked-out client has no listener of the pool's: a connection cut between two
    // statements would otherwise be an unhandled 'error' event, which ends the process.
    const onError = (err: Error) => (broken = err)
    client.on('error', onError)
    try {
      await client.query('BEGIN')
      try {
        let step = body.next()
        while (!step.done) step = body.next(await this.#execute(client, step.value))
        phase.committing = true
        await client.query('COMMIT')
        return step.value
      } catch (e) {
        // A connection that failed is never handed back to the pool (release(err) destroys it).
        if (connectionLost(e) || datastoreUnreachable(e)) broken ??= e as Error
        if (broken === undefined) {
          try {
            await client.query('ROLLBACK')
          } catch (rollbackError) {
            // The connection is unusable (e.g. it was cut); do not return it to the pool.
            broken = rollbackError as Error
          }
        }
        throw e
      }
    } finally {
      client.off('error', onError)
      client.release(broken)
    }
  }

  /** The store row's lock, which every transaction changing the store's tuples takes first. */
  *nextRevision(storeId: string): Tx<number | undefined> {
    // A deleted store is no store: READ COMMITTED re-checks `deleted_at` on the row version it
    // locks, so a write queued behind the DELETE sees the deletion and is refused.
    const row = yield* get<{ revision: number }>('SELECT revision FROM stores WHERE id = ? AND deleted_at IS NULL FOR UPDATE', [storeId])
    return row && row.revision + 1
  }

  *settleRevision(storeId: string, revision: number, changed: boolean): Tx<void> {
    if (changed) yield* run('UPDATE stores SET revision = ? WHERE id = ?', [revision, storeId])
  }

  *storedForWrite(storeId: string, req: WriteRequest): Tx<StoredForWrite> {
    const keys = req.deletes.length === 0 ? req.writes : [...req.deletes, ...req.writes]
    return { rows: keys.length === 0 ? [] : yield* this.storedTuples(storeId, keys), applied: NOTHING, insertedAll: false }
  }

  *storedTuples(storeId: string, keys: readonly TupleIdentity[]): Tx<TupleRow[]> {
    return yield* all<TupleRow>(BATCH.storedTuples, [storeId, ...keyArrays(keys)])
  }

  *deleteRows(storeId: string, keys: readonly TupleIdentity[]): Tx<void> {
    yield* run(BATCH.deleteRows, [storeId, ...keyArrays(keys)])
  }

  *insertTuples(storeId: string, writes: readonly PlannedChange[], revision: number, ts: number): Tx<void> {
    const keys = keyArrays(writes.map((w) => w.tuple))
    const conditions = writes.map((w) => w.conditionName)
    const contexts = writes.map((w) => w.context)
    const expiries = writes.map((w) => w.expiresAt)
    yield* run(BATCH.insertTuples, [storeId, ...keys, conditions, contexts, expiries, revision, ts])
  }

  *insertChanges(storeId: string, revision: number, changes: readonly PlannedChange[], ts: number): Tx<void> {
    yield* run(BATCH.insertChanges, [
      storeId,
      revision,
      changes.map((_, seq) => seq),
      changes.map((c) => c.tuple.objectType),
      changes.map((c) => c.tuple.objectId),
      changes.map((c) => c.tuple.relation),
      changes.map(({ tuple: t }) => formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })),
      changes.map((c) => c.conditionName),
      changes.map((c) => c.context),
      changes.map((c) => c.expiresAt),
      changes.map((c) => (c.operation === 'write' ? 0 : 1)),
      ts,
    ])
  }

  /** COPY into a staging table, then one set-based insert (bulk.ts). */
  bulkInsert(storeId: string, rows: readonly BulkRow[], revision: number, ts: number): Tx<BulkInserted> {
    return postgresBulkInsert(storeId, rows, revision, ts)
  }

  *expireRequests(due: readonly { store_id: string; id: string; pending_until: number }[], actor: string): Tx<void> {
    const stores = due.map((r) => r.store_id)
    const ids = due.map((r) => r.id)
    yield* run(BATCH.expireRequests, [stores, ids])
    yield* run(BATCH.insertExpiredEvents, [stores, ids, due.map((r) => r.pending_until), actor])
  }

  /** appendDecisions: one insert over `unnest` and one upsert, in one transaction. */
  async appendDecisions(decisions: ValueRow[], uses: ValueRow[]): Promise<void> {
    const decisionColumns = columns(decisions, DECISION_COLUMNS.length)
    const usageColumns = columns(uses, 8)
    // Decisions are inserted or ignored by id and usage keeps the latest time: a batch whose
    // COMMIT was cut may be written again without a duplicate.
    await this.transaction(
      function* () {
        if (decisions.length > 0) yield* run(BATCH.insertDecisions, decisionColumns)
        if (uses.length > 0) yield* run(BATCH.upsertUsage, usageColumns)
      },
      { idempotent: true },
    )
  }

  noteWritten(tuples: number): void {
    this.#written += tuples
    if (this.#written >= ANALYZE_AFTER_ROWS) {
      // After a bulk load the planner's statistics describe a much smaller table, and it picks
      // sequential scans for the look-ups of a check until autovacuum catches up (measured:
      // 39 checks/s right after importing 100k tuples). Refresh them now, off the write path.
      this.#written = 0
      this.pool.query('ANALYZE tuples').catch(() => {})
    }
  }

  reader(storeId: string, now: number): TupleReader {
    return new PostgresTupleReader(storeId, now, this.pool)
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1')
  }

  async pendingMigrations(): Promise<string[]> {
    const table = await this.pool.query<{ t: string | null }>(
      "SELECT to_regclass(quote_ident(current_schema()) || '.__drizzle_migrations')::text AS t",
    )
    const name = table.rows[0]?.t
    let newest: number | undefined
    if (name) {
      const max = (await this.pool.query<{ m: string | null }>(`SELECT MAX(created_at)::text AS m FROM ${name}`)).rows[0]?.m
      newest = max === null || max === undefined ? undefined : Number(max)
    }
    return pendingMigrations(postgresBackend.migrationsFolder, newest)
  }

  poolStats(): PoolStats {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount }
  }

  /** close ends the pool once; in-flight queries finish first. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.pool.end()
  }
}

/**
 * PostgresDatastore: the SQL core over a PostgresDriver. With standbys (`readUrls`), the reads
 * that may lag are routed by a ReadRouter (read-replicas.ts) over one read-only SQL core per
 * standby, and the writes tell it what they committed; everything else is the primary's.
 */
export class PostgresDatastore extends SqlDatastore {
  readonly pool: pg.Pool
  #router: ReadRouter | undefined
  /** The standbys' pools and the probes' own connections, ended with the primary's. */
  readonly #pools: pg.Pool[]

  private constructor(driver: PostgresDriver, options: SqlDatastoreOptions, pools: pg.Pool[] = []) {
    super(driver, options)
    this.pool = driver.pool
    this.#pools = pools
  }

  /** #route sends the reads that may lag through the router, and tells it of every revision this process commits. */
  #route(router: ReadRouter): void {
    this.#router = router
    const { write, loadTuples, approveAccessRequest } = this
    this.reader = (storeId, revision, now, options) => router.reader(storeId, revision, now, options)
    this.readChanges = (storeId, q) => router.readChanges(storeId, q)
    this.storeHead = (storeId, maxStalenessMs) => router.storeHead(storeId, maxStalenessMs)
    this.write = async (storeId, req, now) => {
      const revision = await write(storeId, req, now)
      router.committed(storeId, revision)
      return revision
    }
    this.loadTuples = async (storeId, tuples, now) => {
      const result = await loadTuples(storeId, tuples, now)
      router.committed(storeId, result.revision)
      return result
    }
    this.approveAccessRequest = async (storeId, id, tuple, event, now) => {
      const decision = await approveAccessRequest(storeId, id, tuple, event, now)
      if (decision.ok) router.committed(storeId, decision.revision)
      return decision
    }
  }

  readReplicaStats(): ReadReplicaStats | undefined {
    return this.#router?.stats()
  }

  /** probeReplicas measures the standbys' lag now (tests; the router does it every interval). */
  async probeReplicas(): Promise<void> {
    await this.#router?.probe()
  }

  override async close(): Promise<void> {
    await this.#router?.close()
    await super.close()
    await Promise.all(this.#pools.splice(0).map((p) => p.end()))
  }

  /** open connects, applies or checks the migrations, and returns the store. */
  static async open(options: PostgresOptions): Promise<PostgresDatastore> {
    const mode = options.migrations ?? 'auto'
    const before = await prepareSchema(options.url, mode)
    if (mode === 'auto' && before.pending.length > 0) options.onMigrationsApplied?.(before.pending)
    const pool = openPool(options.url, options, options.poolSize ?? 10, 'pemba')
    // An idle connection that dies (server restart, failover) must not crash the process; the
    // pool drops it and the next query opens a new one.
    const onConnectionError = options.onConnectionError ?? (() => {})
    pool.on('error', (err) => onConnectionError(err))
    const sqlOptions = { observer: options.observer, onUnavailable: options.onUnavailable }
    const readUrls = options.readUrls ?? []
    if (readUrls.length === 0) return new PostgresDatastore(new PostgresDriver(pool), sqlOptions)
    const pools: pg.Pool[] = []
    const own = (p: pg.Pool) => (pools.push(p), p)
    // The probes have a connection of their own on each side: a pool busy with reads would
    // delay them, and the delay would read as lag.
    const primaryProbe = own(openPool(options.url, options, 1, 'pemba-probe'))
    primaryProbe.on('error', () => {})
    // One driver per pool: it names the prepared statements of the pool's connections.
    const store = new PostgresDatastore(new PostgresDriver(pool), sqlOptions, pools)
    let router: ReadRouter | undefined
    const names = new Set<string>()
    const standbys = readUrls.map((url): StandbyHandle => {
      const name = uniqueName(standbyName(url), names)
      // Each new connection shows the server's start first: one that restarted since the last
      // probe may serve an earlier state than the router believes it has replayed (read-replicas.ts).
      const verify = (client: pg.PoolClient, done: (err?: Error) => void) => {
        client.query<{ started: number }>(STANDBY_STARTED).then(
          (r) => done(router?.restarted(name, r.rows[0].started) ? new Error(`read replica ${name} restarted since its last probe`) : undefined),
          (err: Error) => done(err),
        )
      }
      const reads = own(openPool(url, options, options.poolSize ?? 10, 'pemba-read', verify))
      // A standby's connection cut while idle (it restarted) takes it out until a probe finds it.
      reads.on('error', (err) => router?.connectionLost(name, err))
      const probe = own(openPool(url, options, 1, 'pemba-probe'))
      probe.on('error', () => {})
      // A standby's outage is no outage of the database: the router retries on the primary.
      return { name, target: new SqlDatastore(new PostgresDriver(reads), { observer: options.observer }), probe: () => standbyPosition(probe) }
    })
    router = new ReadRouter({
      // The primary's reads as the SQL core answers them (before #route lays the router over them).
      primary: { reader: store.reader, readChanges: store.readChanges, storeHead: store.storeHead },
      primaryLsn: async () => (await primaryProbe.query<{ lsn: number }>(PRIMARY_LSN)).rows[0].lsn,
      primaryIdentity: async () => (await primaryProbe.query<{ identity: string }>(`SELECT ${IDENTITY} AS identity`)).rows[0].identity,
      standbys,
      stalenessMs: options.readStalenessMs ?? 1000,
      probeIntervalMs: options.readProbeIntervalMs,
      log: options.replicaLog,
      redact: options.redact,
    })
    try {
      await router.start()
    } catch (e) {
      await router.close()
      await store.close()
      throw e
    }
    store.#route(router)
    return store
  }
}

/** The primary's WAL insert position, in bytes (a commit acknowledged before is at or below it). */
const PRIMARY_LSN = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::float8 AS lsn"
/**
 * Which cluster, database and schema a connection serves: a physical standby has its primary's
 * system identifier and the same OIDs, so `7642011472967116994/16384/2200` on both sides means
 * the standby's tables are the primary's (another cluster, `/pemba_old` or another search_path
 * differ).
 */
const IDENTITY = `((SELECT system_identifier FROM pg_control_system())::text || '/' ||
  (SELECT oid FROM pg_database WHERE datname = current_database())::text || '/' ||
  COALESCE((SELECT oid FROM pg_namespace WHERE nspname = current_schema())::text, 'no schema'))`
/** When the server started (ms): the read pool's verify hook compares it with the last probe's. */
const STANDBY_STARTED = 'SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::float8 AS started'
/** Where a standby's replay stands (read-replicas.ts, StandbyPosition). */
const STANDBY_POSITION = `SELECT pg_is_in_recovery() AS recovery,
  COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::float8, -1) AS replay,
  (extract(epoch FROM pg_postmaster_start_time()) * 1000)::float8 AS started,
  ${IDENTITY} AS identity`

async function standbyPosition(pool: pg.Pool) {
  const row = (await pool.query<{ recovery: boolean; replay: number; started: number; identity: string }>(STANDBY_POSITION)).rows[0]
  return { inRecovery: row.recovery, replayLsn: row.replay, startedAt: row.started, identity: row.identity }
}

/** uniqueName: `name`, or `name#2`, `#3`… when another standby has it (two URLs differing only in user or options). */
function uniqueName(name: string, taken: Set<string>): string {
  let unique = name
  for (let n = 2; taken.has(unique); n++) unique = `${name}#${n}`
  taken.add(unique)
  return unique
}

/** openPool: a pool of `max` connections to `url` with the store's timeouts and int8 parsing. */
function openPool(url: string, options: PostgresOptions, max: number, applicationName: string, verify?: pg.PoolConfig['verify']): pg.Pool {
  return new pg.Pool({
    verify,
    connectionString: url,
    max,
    statement_timeout: options.statementTimeoutMs ?? 5000,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    application_name: applicationName,
    types: TYPES,
  })
}

/** standbyName: `host:port/database` of a standby's URL, without its credentials (logs and metrics). */
export function standbyName(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`
  } catch {
    return redact(url)
  }
}

/** What postgresBackend makes of a `postgres://…` URL: the node-postgres connection string as it is. */
export interface PostgresTarget {
  url: string
}

/**
 * postgresBackend: `postgres://…` and `postgresql://…` (node-postgres connection strings, passed
 * on as they are). Migrations run on a connection of their own before the pool opens
 * (prepareSchema), under `check` only compared with the journal.
 */
export const postgresBackend: SqlBackend<PostgresTarget> = {
  name: 'postgres',
  schemes: ['postgres://', 'postgresql://'],
  urlForms: ['postgres://…'],
  migrationsFolder: POSTGRES_MIGRATIONS,
  parseUrl: (url) => ({ url }),
  redactUrl: redact,
  open: (target, options) =>
    PostgresDatastore.open({
      url: target.url,
      poolSize: options.poolSize,
      statementTimeoutMs: options.statementTimeoutMs,
      migrations: options.migrations,
      observer: options.observer,
      onConnectionError: options.onConnectionError,
      onUnavailable: options.onUnavailable,
      onMigrationsApplied: options.onMigrationsApplied,
      readUrls: options.readUrls,
      readStalenessMs: options.readStalenessMs,
      replicaLog: options.replicaLog,
      redact: options.redact,
    }),
  migrate: async (target) => (await prepareSchema(target.url, 'auto')).pending,
  migrationStatus: (target) => prepareSchema(target.url, 'status'),
  unreachable,
}

function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && RETRYABLE.has(code)
}

