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
 * are one statement over `unnest` of column arrays, and each look-up is an index range: the
 * primary key for `document:1#viewer@…`, `tuples_by_user` for `document:?#viewer@group:eng#member`.
 *
 * @module
 */
import pg from 'pg'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import { formatSubject, type Subject, type Tuple, type TupleIdentity } from '../../core/tuple.ts'
import { DECISION_COLUMNS } from '../audit.ts'
import { rowToTuple, type TupleRow } from '../common.ts'
import {
  MigrationsPendingError,
  migrationsFolder,
  migrationStatus,
  pendingMigrations,
  type MigrationStatus,
  type MigrationsMode,
} from '../migrations.ts'
import type { PoolStats, QueryObserver, TupleReader, WriteRequest } from '../ports.ts'
import type { SqlBackend } from '../sql/backend.ts'
import { SqlDatastore } from '../sql/datastore.ts'
import { all, get, run, type SqlDriver, type Statement, type StoredForWrite, type Tx, type ValueRow } from '../sql/driver.ts'
import { KEY_COLUMNS, TUPLE_COLUMNS } from '../sql/tuples.ts'
import type { PlannedChange } from '../write-plan.ts'

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
  /** Told which migrations `auto` applied, as read under the migration lock. */
  onMigrationsApplied?: (tags: string[]) => void
}

/** Attempts of one transaction when PostgreSQL reports a deadlock or serialization failure. */
const ATTEMPTS = 5
/** Ask PostgreSQL to refresh table statistics after this many tuples written by this process. */
const ANALYZE_AFTER_ROWS = 50_000
const RETRYABLE = new Set(['40001', '40P01'])

/** How long a request waits for a pooled connection before failing instead of queueing forever. */
const CONNECT_TIMEOUT_MS = 10_000

/** The advisory lock that serialises migrations of one schema across replicas starting at once. */
const MIGRATION_LOCK = 0x70656d62 // 'pemb'

/**
 * The reader's filter, with `now` as parameter n: an expired tuple is gone the instant it
 * expires, whether or not the sweeper has deleted the row yet.
 */
const live = (n: number, alias = '') => `(${alias}expires_at IS NULL OR ${alias}expires_at > $${n})`

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

/** sql joins a statement written over several lines into one line (for logs, pg_stat_statements). */
function sql(strings: TemplateStringsArray, ...values: string[]): string {
  return String.raw({ raw: strings }, ...values).replace(/\s+/g, ' ').trim()
}

/** `unnest($from::type[], …)`: parallel arrays as the rows of a batch. */
function unnest(from: number, types: readonly string[]): string {
  return `unnest(${types.map((t, i) => `$${from + i}::${t}[]`).join(', ')})`
}

const TEXT6 = ['text', 'text', 'text', 'text', 'text', 'text'] as const

/** The join of tuples `t` with a batch of keys `k`, both in KEY_COLUMNS. */
const SAME_KEY = sql`t.object_type = k.object_type AND t.object_id = k.object_id
  AND t.relation = k.relation AND t.user_relation = k.user_relation
  AND t.user_type = k.user_type AND t.user_id = k.user_id`

/** The element type of each decision_log column, for `unnest($n::type[])`. */
const DECISION_TYPES: Record<(typeof DECISION_COLUMNS)[number], string> = {
  store_id: 'text',
  id: 'text',
  at: 'bigint',
  kind: 'text',
  model_id: 'text',
  client: 'text',
  subject: 'text',
  on_behalf_of: 'text',
  relation: 'text',
  object: 'text',
  allowed: 'int',
  witness: 'text',
  latency_us: 'bigint',
  consistency: 'text',
  request_id: 'text',
  detail: 'text',
}

/** The batch statements, one per kind of batch whatever its size. */
const BATCH = {
  storedTuples: sql`SELECT t.object_type, t.object_id, t.relation, t.user_relation, t.user_type,
      t.user_id, t.condition_name, t.condition_context, t.expires_at
    FROM tuples t JOIN ${unnest(2, TEXT6)} AS k(${KEY_COLUMNS}) ON ${SAME_KEY}
    WHERE t.store_id = $1`,
  deleteRows: sql`DELETE FROM tuples t USING ${unnest(2, TEXT6)} AS k(${KEY_COLUMNS})
    WHERE t.store_id = $1 AND ${SAME_KEY}`,
  insertTuples: sql`INSERT INTO tuples (store_id, ${KEY_COLUMNS}, condition_name,
      condition_context, expires_at, revision, inserted_at)
    SELECT $1::text, k.*, $11::bigint, $12::bigint
    FROM ${unnest(2, [...TEXT6, 'text', 'text', 'bigint'])} AS k`,
  insertChanges: sql`INSERT INTO changelog (store_id, revision, seq, object_type, object_id,
      relation, "user", condition_name, condition_context, expires_at, operation, created_at)
    SELECT $1::text, $2::bigint, k.*, $12::bigint
    FROM ${unnest(3, ['int', ...TEXT6, 'bigint', 'int'])} AS k`,
  expireRequests: sql`UPDATE access_requests a SET status = 'expired'
    FROM unnest($1::text[], $2::text[]) AS k(store_id, id)
    WHERE a.store_id = k.store_id AND a.id = k.id`,
  insertExpiredEvents: sql`INSERT INTO access_request_events
      (store_id, request_id, seq, type, actor, at, reason)
    SELECT k.store_id, k.id, (SELECT COUNT(*) FROM access_request_events e
        WHERE e.store_id = k.store_id AND e.request_id = k.id),
      'expired', $4::text, k.at, ''
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(store_id, id, at)`,
  insertDecisions: sql`INSERT INTO decision_log (${DECISION_COLUMNS.join(', ')})
    SELECT * FROM ${unnest(1, DECISION_COLUMNS.map((c) => DECISION_TYPES[c]))}`,
  /** Keys arrive sorted (mergeGrantUses), so replicas flushing at once lock rows in one order. */
  upsertUsage: sql`INSERT INTO grant_usage (store_id, ${KEY_COLUMNS}, last_used_at)
    SELECT * FROM ${unnest(1, [...TEXT6, 'text', 'bigint'])}
    ON CONFLICT (store_id, ${KEY_COLUMNS})
    DO UPDATE SET last_used_at = GREATEST(grant_usage.last_used_at, excluded.last_used_at)`,
} as const

/** The hot reader's statements, named once (`pemba_object`, …). */
const READS = {
  /** All of one object's tuples, capped (LIMIT is the cap + 1, to tell "more than" apart). */
  object: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND ${live(5)} LIMIT $4`,
  objectRelation: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4 AND ${live(5)}`,
  usersets: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4
      AND user_relation > '' AND ${live(5)}`,
  /** Users of one (type, relation) at once: `user_id = ANY` stays in the primary key's range. */
  exactUsers: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4
      AND user_relation = $5 AND user_type = $6 AND user_id = ANY($7::text[]) AND ${live(8)}`,
  /** The reverse direction over `tuples_by_user`, again one (type, relation) group at a time. */
  startingWithUsers: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND relation = $3
      AND user_type = $4 AND user_relation = $5 AND user_id = ANY($6::text[]) AND ${live(7)}`,
} as const

type ReadName = keyof typeof READS

/** A prepared query config of the reader: `pemba_<name>` is prepared once per connection. */
function read(name: ReadName, values: unknown[]): pg.QueryConfig {
  return { name: `pemba_${name}`, text: READS[name], values }
}

/** keyArrays turns tuples into the six column arrays a batch statement unnests. */
function keyArrays(ts: readonly TupleIdentity[]): string[][] {
  return [
    ts.map((t) => t.objectType),
    ts.map((t) => t.objectId),
    ts.map((t) => t.relation),
    ts.map((t) => t.userRelation),
    ts.map((t) => t.userType),
    ts.map((t) => t.userId),
  ]
}

/** columns transposes rows of `n` values into `n` column arrays. */
function columns(rows: readonly ValueRow[], n: number): unknown[][] {
  const out: unknown[][] = Array.from({ length: n }, () => new Array(rows.length))
  rows.forEach((r, i) => r.forEach((v, c) => (out[c][i] = v)))
  return out
}

const NOTHING: ReadonlySet<TupleIdentity> = new Set()

/** numbered turns the core's `?` placeholders into PostgreSQL's `$1`, `$2`, … */
function numbered(text: string): string {
  let n = 0
  return text.replace(/\?/g, () => `$${++n}`)
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

  async #execute(c: pg.Pool | pg.PoolClient, op: Statement): Promise<unknown> {
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
   * or serialization failure (nothing of a failed attempt is visible, so a retry is a fresh
   * start), with jitter: 10, 20, 40, 80 ms ceilings, so racing replicas do not retry in lockstep.
   */
  async transaction<T>(body: () => Tx<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#attempt(body())
      } catch (e) {
        if (attempt >= ATTEMPTS || !isRetryable(e)) throw e
        await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** (attempt - 1)))
      }
    }
  }

  async #attempt<T>(body: Tx<T>): Promise<T> {
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
        await client.query('COMMIT')
        return step.value
      } catch (e) {
        try {
          await client.query('ROLLBACK')
        } catch (rollbackError) {
          // The connection is unusable (e.g. it was cut); do not return it to the pool.
          broken = rollbackError as Error
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
    const row = yield* get<{ revision: number }>('SELECT revision FROM stores WHERE id = ? FOR UPDATE', [storeId])
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
    await this.transaction(function* () {
      if (decisions.length > 0) yield* run(BATCH.insertDecisions, decisionColumns)
      if (uses.length > 0) yield* run(BATCH.upsertUsage, usageColumns)
    })
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

/** PostgresDatastore: the SQL core over a PostgresDriver. */
export class PostgresDatastore extends SqlDatastore {
  readonly pool: pg.Pool

  private constructor(driver: PostgresDriver, observer?: QueryObserver) {
    super(driver, observer)
    this.pool = driver.pool
  }

  /** open connects, applies or checks the migrations, and returns the store. */
  static async open(options: PostgresOptions): Promise<PostgresDatastore> {
    const mode = options.migrations ?? 'auto'
    const before = await prepareSchema(options.url, mode)
    if (mode === 'auto' && before.pending.length > 0) options.onMigrationsApplied?.(before.pending)
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      statement_timeout: options.statementTimeoutMs ?? 5000,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'pemba',
      types: TYPES,
    })
    // An idle connection that dies (server restart, failover) must not crash the process; the
    // pool drops it and the next query opens a new one.
    const onConnectionError = options.onConnectionError ?? (() => {})
    pool.on('error', (err) => onConnectionError(err))
    return new PostgresDatastore(new PostgresDriver(pool), options.observer)
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
  migrationsFolder: migrationsFolder('postgres'),
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
      onMigrationsApplied: options.onMigrationsApplied,
    }),
  migrate: async (target) => (await prepareSchema(target.url, 'auto')).pending,
  migrationStatus: (target) => prepareSchema(target.url, 'status'),
  unreachable,
}

/**
 * Node's errors of a connection that may pass by itself: refused, reset, timed out, no route
 * yet, and a host name that does not resolve yet (ENOTFOUND, EAI_AGAIN: a service name in a
 * compose file or a cluster before its DNS entry exists). Not EACCES, EINVAL and the like.
 */
const UNREACHABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * unreachable: an error of connecting that may pass by itself: a refused, reset or timed-out
 * connection, a name not resolving yet, a server starting or shutting down (SQLSTATE 57P0x),
 * out of connections (53300) or a connection exception (class 08). A wrong password (28P01) or a
 * missing database (3D000) will not, nor will an error of a statement.
 */
function unreachable(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown }
  if (typeof code === 'string') {
    // 57P04 is a dropped database: waiting will not bring it back.
    return UNREACHABLE_ERRNOS.has(code) || code.startsWith('08') || (code.startsWith('57P') && code !== '57P04') || code === '53300'
  }
  return typeof message === 'string' && /Connection terminated|connection timeout|timeout expired/i.test(message)
}

function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && RETRYABLE.has(code)
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'the PostgreSQL database'
  }
}

/**
 * prepareSchema applies (auto) or checks (check) the migrations on a dedicated connection. The
 * migration runs under a per-schema advisory lock, so replicas starting together apply it once:
 * the others wait, then find nothing pending. The migrations table sits in the same schema as
 * the tables, so schemas side by side in one database (one per test run, say) migrate apart.
 */
async function prepareSchema(url: string, mode: MigrationsMode | 'status'): Promise<MigrationStatus> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'pemba-migrate',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  })
  // A connection error surfaces as the pending query's rejection; this keeps it from also being
  // an unhandled 'error' event that would end the process.
  client.on('error', () => {})
  await client.connect()
  try {
    // Migrations may take longer than a request's statement budget; waiting for the lock too.
    await client.query('SET statement_timeout = 0')
    const one = async <T>(text: string, values: unknown[] = []): Promise<T> =>
      Object.values((await client.query(text, values)).rows[0])[0] as T
    const schema = await one<string | null>('SELECT current_schema()')
    if (!schema) {
      throw new Error(
        `${redact(url)}: no schema to keep Pemba's tables in (search_path names no existing schema)`,
      )
    }
    const readStatus = async (): Promise<MigrationStatus> => {
      const table = `${client.escapeIdentifier(schema)}.__drizzle_migrations`
      let newest: number | undefined
      if (await one<string | null>('SELECT to_regclass($1)', [table])) {
        const max = await one<string | null>(`SELECT MAX(created_at)::text FROM ${table}`)
        newest = max === null ? undefined : Number(max)
      }
      return migrationStatus(postgresBackend.migrationsFolder, newest)
    }
    if (mode !== 'auto') {
      const status = await readStatus()
      if (mode === 'check' && status.pending.length > 0) {
        throw new MigrationsPendingError(`${redact(url)} (schema ${schema})`, status.pending)
      }
      return status
    }
    await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, schema])
    try {
      // Read under the lock: what this process applies, not what a replica applied meanwhile.
      const before = await readStatus()
      await migrate(drizzle({ client }), {
        migrationsFolder: postgresBackend.migrationsFolder,
        migrationsSchema: schema,
        migrationsTable: '__drizzle_migrations',
      })
      return before
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, schema])
    }
  } finally {
    await client.end()
  }
}

/**
 * groupSubjects groups users by (type, relation), so one `user_id = ANY($n)` query per group
 * answers them: [user:anne, user:*, group:eng#member] → user/'' [anne, *] and group/member [eng].
 */
function groupSubjects(users: readonly Subject[]): { type: string; relation: string; ids: string[] }[] {
  const groups = new Map<string, { type: string; relation: string; ids: string[] }>()
  for (const u of users) {
    const k = `${u.type}#${u.relation}`
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { type: u.type, relation: u.relation, ids: [] }))
    g.ids.push(u.id)
  }
  return [...groups.values()]
}

/**
 * PostgresTupleReader reads the live tuples through the pool. Like the SQLite reader it reads
 * the newest committed state, which is at least as fresh as the revision it was bound to.
 */
class PostgresTupleReader implements TupleReader {
  readonly #store: string
  /** The reader's instant (ms): tuples with expires_at <= now are invisible. */
  readonly #now: number
  readonly #pool: pg.Pool

  constructor(storeId: string, now: number, pool: pg.Pool) {
    this.#store = storeId
    this.#now = now
    this.#pool = pool
  }

  async #rows(name: ReadName, values: unknown[]): Promise<Tuple[]> {
    return (await this.#pool.query<TupleRow>(read(name, values))).rows.map(rowToTuple)
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const values = [this.#store, objectType, objectId, limit + 1, this.#now]
    const rows = await this.#rows('object', values)
    return rows.length > limit ? undefined : rows
  }

  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#rows('objectRelation', [this.#store, objectType, objectId, relation, this.#now])
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const groups = groupSubjects(users)
    const parts = await Promise.all(
      groups.map((g) =>
        this.#rows('exactUsers', [
          this.#store,
          objectType,
          objectId,
          relation,
          g.relation,
          g.type,
          g.ids,
          this.#now,
        ]),
      ),
    )
    return parts.flat()
  }

  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#rows('usersets', [this.#store, objectType, objectId, relation, this.#now])
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const groups = groupSubjects(users)
    const parts = await Promise.all(
      groups.map((g) =>
        this.#rows('startingWithUsers', [
          this.#store,
          objectType,
          relation,
          g.type,
          g.relation,
          g.ids,
          this.#now,
        ]),
      ),
    )
    return parts.flat()
  }
}
