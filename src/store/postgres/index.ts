/**
 * PostgresDatastore: the shared store over PostgreSQL with node-postgres, so several stateless
 * Pemba replicas can serve one set of stores. Its answers are the SQLite store's, call for call
 * (the same conformance suite runs against both); what differs is how it stays correct when
 * writers on different replicas race:
 *
 * - `write()` is one transaction that first locks the store's row (`SELECT … FOR UPDATE`). Writers
 *   to one store take turns, so revision r+1 commits after revision r on every replica, and a
 *   change-feed position (revision, seq) once read is never preceded by a later commit.
 *   Deadlocks and serialization failures (SQLSTATE 40P01, 40001) are retried with jitter.
 * - Every statement runs under `statement_timeout` (PEMBA_PG_STATEMENT_TIMEOUT_MS), so a stuck
 *   query fails the request instead of holding a pooled connection forever.
 * - Cursors are JSON of column values (a store id, a tuple key, a (revision, seq) pair), never
 *   process state, so a token from one replica continues on any other.
 *
 * Hot queries are named prepared statements (parsed once per pooled connection), and each look-up
 * is an index range: the primary key for `document:1#viewer@…`, `tuples_by_user` for
 * `document:?#viewer@group:eng#member`.
 *
 * @module
 */
import pg from 'pg'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import { PembaError } from '../../core/errors.ts'
import {
  canonicalContext,
  conflictError,
  decodeCursor,
  deleteMissingError,
  describeTuple,
  isChangePosition,
  isStringArray,
  rowToAccessRequest,
  writeExistingError,
  type AccessRequestRow,
  type EventRow,
  rowToTuple,
  type TupleRow,
} from '../common.ts'
import { formatSubject, type Subject, type Tuple } from '../../core/tuple.ts'
import type { AuthorizationModel } from '../../model/types.ts'
import {
  MIGRATION_FOLDERS,
  MigrationsPendingError,
  pendingMigrations,
  type MigrationsMode,
} from '../migrations.ts'
import {
  EXPIRY_ACTOR,
  effectiveStatus,
  type AccessRequestDecision,
  type AccessRequestEvent,
  type AccessRequestQuery,
  type AccessRequestRecord,
  type AccessRequestStatus,
  type ChangesQuery,
  type Datastore,
  type Page,
  type ReadFilter,
  type Revision,
  type StoreRecord,
  type StoredTuple,
  type TupleChange,
  type TupleIdentity,
  type TokenIssuerInput,
  type TokenIssuerPut,
  type TokenIssuerRecord,
  type TupleReader,
  type WriteRequest,
} from '../store.ts'
import { PostgresTokenIssuers } from './token-issuers.ts'
import type {
  DecisionLogSettings,
  DecisionQuery,
  GrantUse,
  GrantWithUsage,
  GrantsQuery,
  IdentityGrantStats,
  IdentityStatsQuery,
  StoredDecision,
} from '../audit.ts'
import { PostgresAudit } from './audit.ts'

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
}

/** Attempts of one write when PostgreSQL reports a deadlock or serialization failure. */
const WRITE_ATTEMPTS = 5
/** Ask PostgreSQL to refresh table statistics after this many tuples written by this process. */
const ANALYZE_AFTER_ROWS = 50_000
const RETRYABLE = new Set(['40001', '40P01'])

/** How long a request waits for a pooled connection before failing instead of queueing forever. */
const CONNECT_TIMEOUT_MS = 10_000

/** The advisory lock that serialises migrations of one schema across replicas starting at once. */
const MIGRATION_LOCK = 0x70656d62 // 'pemb'

/** The key columns of a tuple, in primary-key order after store_id. */
const KEY_COLUMNS = 'object_type, object_id, relation, user_relation, user_type, user_id'

const TUPLE_COLUMNS = `${KEY_COLUMNS}, condition_name, condition_context, expires_at`

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


interface StoreRow {
  id: string
  name: string
  created_at: number
  updated_at: number
  deleted_at: number | null
}

interface ChangeRow {
  revision: number
  seq: number
  object_type: string
  object_id: string
  relation: string
  user: string
  condition_name: string
  condition_context: string | null
  expires_at: number | null
  operation: number
  created_at: number
}





/** The WHERE clause of an effective-status filter; `pending` and `expired` compare with $n. */
function statusClause(status: AccessRequestStatus | undefined, n: number): string | undefined {
  switch (status) {
    case undefined:
      return undefined
    case 'pending':
      return `(status = 'pending' AND pending_until > $${n})`
    case 'expired':
      return `(status = 'expired' OR (status = 'pending' AND pending_until <= $${n}))`
    case 'approved':
      return "status = 'approved'"
    case 'denied':
      return "status = 'denied'"
  }
}

function rowToStore(r: StoreRow): StoreRecord {
  return {
    id: r.id,
    name: r.name,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    deletedAt: r.deleted_at === null ? null : new Date(r.deleted_at),
  }
}

/** sql joins a statement written over several lines into one line (for logs, pg_stat_statements). */
function sql(strings: TemplateStringsArray, ...values: string[]): string {
  return String.raw({ raw: strings }, ...values).replace(/\s+/g, ' ').trim()
}

/** `unnest($from::text[], …)`: n parallel text arrays as the rows of a batch. */
function unnestText(from: number, n: number): string {
  return `unnest(${Array.from({ length: n }, (_, i) => `$${from + i}::text[]`).join(', ')})`
}

/** The join of tuples `t` with a batch of keys `k`, both in KEY_COLUMNS. */
const SAME_KEY = sql`t.object_type = k.object_type AND t.object_id = k.object_id
  AND t.relation = k.relation AND t.user_relation = k.user_relation
  AND t.user_type = k.user_type AND t.user_id = k.user_id`

/**
 * The statements whose text never changes. A name makes node-postgres prepare the statement once
 * per pooled connection and then only bind and execute it.
 */
const SQL = {
  insertStore: sql`INSERT INTO stores (id, name, created_at, updated_at, deleted_at, revision)
    VALUES ($1, $2, $3, $4, NULL, 0)`,
  getStore: 'SELECT * FROM stores WHERE id = $1 AND deleted_at IS NULL',
  listStores: 'SELECT * FROM stores WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2',
  listStoresByName: sql`SELECT * FROM stores
    WHERE deleted_at IS NULL AND name = $1 AND id > $2 ORDER BY id LIMIT $3`,
  deleteStore: sql`UPDATE stores SET deleted_at = $1, updated_at = $2
    WHERE id = $3 AND deleted_at IS NULL`,
  headRevision: 'SELECT revision FROM stores WHERE id = $1',
  /** The row lock that makes writers to one store take turns, on every replica. */
  lockStore: 'SELECT revision FROM stores WHERE id = $1 FOR UPDATE',
  setRevision: 'UPDATE stores SET revision = $2 WHERE id = $1',
  insertModel: sql`INSERT INTO authorization_models
    (store_id, id, schema_version, model, created_at) VALUES ($1, $2, $3, $4, $5)`,
  readModel: 'SELECT model FROM authorization_models WHERE store_id = $1 AND id = $2',
  latestModelId: sql`SELECT id FROM authorization_models
    WHERE store_id = $1 ORDER BY id DESC LIMIT 1`,
  listModels: sql`SELECT id, model FROM authorization_models
    WHERE store_id = $1 ORDER BY id DESC LIMIT $2`,
  listModelsAfter: sql`SELECT id, model FROM authorization_models
    WHERE store_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`,
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
  /**
   * Deletes a batch of live keys, returning those that existed (a missing one fails or is
   * ignored). An expired row counts as missing: it is gone, and the sweeper records it.
   */
  deleteTuples: sql`DELETE FROM tuples t USING ${unnestText(2, 6)} AS k(${KEY_COLUMNS})
    WHERE t.store_id = $1 AND ${SAME_KEY} AND ${live(8, 't.')}
    RETURNING t.object_type, t.object_id, t.relation, t.user_relation, t.user_type, t.user_id`,
  /** Deletes the rows of a batch of keys whatever their expiry (expired rows being replaced). */
  deleteRows: sql`DELETE FROM tuples t USING ${unnestText(2, 6)} AS k(${KEY_COLUMNS})
    WHERE t.store_id = $1 AND ${SAME_KEY}`,
  existingTuples: sql`SELECT t.object_type, t.object_id, t.relation, t.user_relation, t.user_type,
      t.user_id, t.condition_name, t.condition_context, t.expires_at
    FROM tuples t JOIN ${unnestText(2, 6)} AS k(${KEY_COLUMNS}) ON ${SAME_KEY}
    WHERE t.store_id = $1`,
  insertTuples: sql`INSERT INTO tuples (store_id, ${KEY_COLUMNS}, condition_name,
      condition_context, expires_at, revision, inserted_at)
    SELECT $1::text, k.*, $11::bigint, $12::bigint
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
      $8::text[], $9::text[], $10::bigint[]) AS k`,
  insertChanges: sql`INSERT INTO changelog (store_id, revision, seq, object_type, object_id,
      relation, "user", condition_name, condition_context, expires_at, operation, created_at)
    SELECT $1::text, $2::bigint, k.*, $12::bigint
    FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
      $9::text[], $10::bigint[], $11::int[]) AS k`,
  /** The stores with the oldest expired tuples, over tuples_by_expiry (no locks taken). */
  expiredStores: sql`SELECT DISTINCT store_id FROM (SELECT store_id FROM tuples
    WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2) e`,
  /**
   * Deletes up to $3 of one store's expired tuples. Run while holding the store row's lock, as
   * every writer does, so a sweeper on another replica either already deleted a row (this
   * statement, in a newer snapshot, no longer sees it) or waits its turn.
   */
  sweepStore: sql`DELETE FROM tuples WHERE ctid = ANY(ARRAY(SELECT ctid FROM tuples
      WHERE store_id = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3))
    RETURNING ${KEY_COLUMNS}`,
  insertAccessRequest: sql`INSERT INTO access_requests (store_id, id, object_type, object_id,
      relation, "user", duration_ms, reason, status, created_at, pending_until, grant_expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
  getAccessRequest: 'SELECT * FROM access_requests WHERE store_id = $1 AND id = $2',
  /** The request's row lock: approvals, denials and expiry of one request take turns. */
  lockAccessRequest: sql`SELECT status, pending_until FROM access_requests
    WHERE store_id = $1 AND id = $2 FOR UPDATE`,
  setAccessRequestStatus: sql`UPDATE access_requests SET status = $3, grant_expires_at = $4
    WHERE store_id = $1 AND id = $2`,
  /** Appends an event; callers hold the request's row lock (or just created it), so seq is free. */
  insertEvent: sql`INSERT INTO access_request_events
      (store_id, request_id, seq, type, actor, at, reason)
    SELECT $1::text, $2::text, COUNT(*), $3::text, $4::text, $5::bigint, $6::text
    FROM access_request_events WHERE store_id = $1 AND request_id = $2`,
  events: sql`SELECT * FROM access_request_events
    WHERE store_id = $1 AND request_id = ANY($2::text[]) ORDER BY request_id, seq`,
  /** Pending requests past their deadline; rows another sweeper holds are left to it. */
  duePendingRequests: sql`SELECT store_id, id, pending_until FROM access_requests
    WHERE status = 'pending' AND pending_until <= $1 ORDER BY pending_until LIMIT $2
    FOR UPDATE SKIP LOCKED`,
  expireRequests: sql`UPDATE access_requests a SET status = 'expired'
    FROM unnest($1::text[], $2::text[]) AS k(store_id, id)
    WHERE a.store_id = k.store_id AND a.id = k.id`,
  insertExpiredEvents: sql`INSERT INTO access_request_events
      (store_id, request_id, seq, type, actor, at, reason)
    SELECT k.store_id, k.id, (SELECT COUNT(*) FROM access_request_events e
        WHERE e.store_id = k.store_id AND e.request_id = k.id),
      'expired', $4::text, k.at, ''
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(store_id, id, at)`,
  writeAssertions: sql`INSERT INTO assertions (store_id, model_id, assertions) VALUES ($1, $2, $3)
    ON CONFLICT (store_id, model_id) DO UPDATE SET assertions = excluded.assertions`,
  readAssertions: 'SELECT assertions FROM assertions WHERE store_id = $1 AND model_id = $2',
} as const

type StatementName = keyof typeof SQL

/** A prepared query config: `pemba_<name>` is prepared once per connection. */
function q(name: StatementName, values: unknown[]): pg.QueryConfig {
  return { name: `pemba_${name}`, text: SQL[name], values }
}






/** A tuple's key as one string; PostgreSQL text cannot hold NUL, so NUL separates unambiguously. */
function keyOf(t: TupleIdentity): string {
  return [t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId].join('\0')
}

type KeyRow = Pick<TupleRow, 'object_type' | 'object_id' | 'relation' | 'user_relation' | 'user_type' | 'user_id'>

function keyOfRow(r: KeyRow): string {
  return keyOf({
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    userRelation: r.user_relation,
    userType: r.user_type,
    userId: r.user_id,
  })
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
async function prepareSchema(url: string, mode: MigrationsMode): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'pemba-migrate' })
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
    if (mode === 'check') {
      const table = `${client.escapeIdentifier(schema)}.__drizzle_migrations`
      let newest: number | undefined
      if (await one<string | null>('SELECT to_regclass($1)', [table])) {
        const max = await one<string | null>(`SELECT MAX(created_at)::text FROM ${table}`)
        newest = max === null ? undefined : Number(max)
      }
      const pending = pendingMigrations(MIGRATION_FOLDERS.postgres, newest)
      if (pending.length > 0) {
        throw new MigrationsPendingError(`${redact(url)} (schema ${schema})`, pending)
      }
      return
    }
    await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, schema])
    try {
      await migrate(drizzle({ client }), {
        migrationsFolder: MIGRATION_FOLDERS.postgres,
        migrationsSchema: schema,
        migrationsTable: '__drizzle_migrations',
      })
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, schema])
    }
  } finally {
    await client.end()
  }
}

export class PostgresDatastore implements Datastore {
  readonly dialect = 'postgres' as const
  /**
   * Each read is a network round trip, so the engine evaluates up to 8 sibling subproblems at
   * once (`viewer: [user] or editor or viewer from parent` issues its three reads together).
   */
  readonly preferredConcurrency = 8
  readonly pool: pg.Pool
  #closed = false
  readonly #tokenIssuers: PostgresTokenIssuers
  /** The decision log, its settings and grant usage (audit.ts). */
  readonly #audit: PostgresAudit

  private constructor(pool: pg.Pool) {
    this.pool = pool
    this.#tokenIssuers = new PostgresTokenIssuers(pool)
    this.#audit = new PostgresAudit(pool)
  }

  /** open connects, applies or checks the migrations, and returns the store. */
  static async open(options: PostgresOptions): Promise<PostgresDatastore> {
    await prepareSchema(options.url, options.migrations ?? 'auto')
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
    pool.on('error', (err) => console.error('[pemba] idle PostgreSQL connection failed:', err.message))
    return new PostgresDatastore(pool)
  }

  async #query<R extends pg.QueryResultRow>(name: StatementName, values: unknown[]): Promise<R[]> {
    return (await this.pool.query<R>(q(name, values))).rows
  }

  async createStore(id: string, name: string, now: Date): Promise<StoreRecord> {
    await this.#query('insertStore', [id, name, now.getTime(), now.getTime()])
    return { id, name, createdAt: now, updatedAt: now, deletedAt: null }
  }

  async getStore(id: string): Promise<StoreRecord | undefined> {
    const [row] = await this.#query<StoreRow>('getStore', [id])
    return row && rowToStore(row)
  }

  async listStores(q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>> {
    const after = decodeCursor(q.after, isStringArray(1))?.[0] ?? ''
    const rows =
      q.name !== undefined
        ? await this.#query<StoreRow>('listStoresByName', [q.name, after, q.pageSize + 1])
        : await this.#query<StoreRow>('listStores', [after, q.pageSize + 1])
    const more = rows.length > q.pageSize
    const items = rows.slice(0, q.pageSize).map(rowToStore)
    return { items, next: more ? JSON.stringify([items[items.length - 1].id]) : '' }
  }

  async deleteStore(id: string, now: Date): Promise<void> {
    await this.#query('deleteStore', [now.getTime(), now.getTime(), id])
  }

  async writeModel(storeId: string, model: AuthorizationModel, now: Date): Promise<void> {
    const { id, ...body } = model
    await this.#query('insertModel', [storeId, id, model.schema_version, JSON.stringify(body), now.getTime()])
  }

  async readModel(storeId: string, id: string): Promise<AuthorizationModel | undefined> {
    const [row] = await this.#query<{ model: string }>('readModel', [storeId, id])
    return row === undefined ? undefined : { id, ...JSON.parse(row.model) }
  }

  async latestModelId(storeId: string): Promise<string | undefined> {
    const [row] = await this.#query<{ id: string }>('latestModelId', [storeId])
    return row?.id
  }

  async listModels(storeId: string, q: { pageSize: number; after?: string }): Promise<Page<AuthorizationModel>> {
    const after = decodeCursor(q.after, isStringArray(1))?.[0]
    const rows =
      after === undefined
        ? await this.#query<{ id: string; model: string }>('listModels', [storeId, q.pageSize + 1])
        : await this.#query<{ id: string; model: string }>('listModelsAfter', [storeId, after, q.pageSize + 1])
    const more = rows.length > q.pageSize
    const items = rows.slice(0, q.pageSize).map((r) => ({ id: r.id, ...JSON.parse(r.model) }))
    return { items, next: more ? JSON.stringify([items[items.length - 1].id]) : '' }
  }

  /**
   * write runs the whole request in one transaction, retried on deadlock or serialization
   * failure (nothing of a failed attempt is visible, so a retry is a fresh start).
   */
  async write(storeId: string, req: WriteRequest, now: Date): Promise<Revision> {
    const ts = now.getTime()
    const revision = await this.#retrying(() => this.#transaction((c) => applyWrite(c, storeId, req, ts)))
    this.#written += req.writes.length
    if (this.#written >= ANALYZE_AFTER_ROWS) {
      // After a bulk load the planner's statistics describe a much smaller table, and it picks
      // sequential scans for the look-ups of a check until autovacuum catches up (measured:
      // 39 checks/s right after importing 100k tuples). Refresh them now, off the write path.
      this.#written = 0
      this.pool.query('ANALYZE tuples').catch(() => {})
    }
    return revision
  }

  /** Tuples written since the last ANALYZE this process asked for. */
  #written = 0

  async #transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    let broken: Error | undefined
    try {
      await client.query('BEGIN')
      try {
        const out = await fn(client)
        await client.query('COMMIT')
        return out
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
      client.release(broken)
    }
  }

  async read(
    storeId: string,
    f: ReadFilter,
    q: { pageSize: number; after?: string },
    now: number,
  ): Promise<Page<StoredTuple>> {
    const where = ['store_id = $1', live(2)]
    const params: unknown[] = [storeId, now]
    // The statement's shape (which fields are set, whether there is a cursor) names it, so each
    // of the few shapes in use is prepared once per connection.
    let shape = ''
    const add = (col: string, v: string | undefined) => {
      shape += v === undefined ? '0' : '1'
      if (v !== undefined) {
        params.push(v)
        where.push(`${col} = $${params.length}`)
      }
    }
    add('object_type', f.objectType)
    add('object_id', f.objectId)
    add('relation', f.relation)
    add('user_type', f.userType)
    add('user_id', f.userId)
    add('user_relation', f.userRelation)
    const after = decodeCursor(q.after, isStringArray(6))
    if (after) {
      shape += 'c'
      const n = params.length
      where.push(`(${KEY_COLUMNS}) > ($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6})`)
      params.push(...after)
    }
    params.push(q.pageSize + 1)
    const text = sql`SELECT ${TUPLE_COLUMNS}, inserted_at FROM tuples WHERE ${where.join(' AND ')}
      ORDER BY ${KEY_COLUMNS} LIMIT $${String(params.length)}`
    const name = `pemba_read_${shape}`
    const rows = (await this.pool.query<TupleRow>({ name, text, values: params })).rows
    const more = rows.length > q.pageSize
    const page = rows.slice(0, q.pageSize)
    const items = page.map((r) => ({ ...rowToTuple(r), insertedAt: new Date(r.inserted_at!) }))
    const last = page[page.length - 1]
    const next = more
      ? JSON.stringify([
          last.object_type,
          last.object_id,
          last.relation,
          last.user_relation,
          last.user_type,
          last.user_id,
        ])
      : ''
    return { items, next }
  }

  async readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>> {
    const where = ['store_id = $1']
    const params: unknown[] = [storeId]
    let shape = ''
    if (q.objectType !== undefined) {
      params.push(q.objectType)
      where.push(`object_type = $${params.length}`)
      shape += 't'
    }
    const after = decodeCursor(q.after, isChangePosition)
    if (after) {
      params.push(after[0], after[1])
      where.push(`(revision, seq) > ($${params.length - 1}, $${params.length})`)
      shape += 'c'
    } else if (q.startTime) {
      params.push(q.startTime.getTime())
      where.push(`created_at >= $${params.length}`)
      shape += 's'
    }
    params.push(q.pageSize)
    const text = sql`SELECT * FROM changelog WHERE ${where.join(' AND ')}
      ORDER BY revision, seq LIMIT $${String(params.length)}`
    const name = `pemba_changes_${shape}`
    const rows = (await this.pool.query<ChangeRow>({ name, text, values: params })).rows
    const items: TupleChange[] = rows.map((r) => ({
      revision: r.revision,
      seq: r.seq,
      objectType: r.object_type,
      objectId: r.object_id,
      relation: r.relation,
      user: r.user,
      conditionName: r.condition_name,
      conditionContext: r.condition_context === null ? undefined : JSON.parse(r.condition_context),
      ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
      operation: r.operation === 0 ? 'write' : 'delete',
      timestamp: new Date(r.created_at),
    }))
    const last = rows[rows.length - 1]
    return { items, next: last ? JSON.stringify([last.revision, last.seq]) : (q.after ?? '') }
  }

  async headRevision(storeId: string): Promise<Revision> {
    const [row] = await this.#query<{ revision: number }>('headRevision', [storeId])
    return row?.revision ?? 0
  }

  reader(storeId: string, _revision: Revision, now: number): TupleReader {
    return new PostgresTupleReader(storeId, now, this.pool)
  }

  /**
   * sweepExpired finds the stores with the oldest expired tuples, then sweeps each in its own
   * transaction under the store row's lock (the lock every write takes first), so replicas
   * sweeping at once take turns per store and a tuple's delete is recorded once; lock order is
   * store row, then tuples, as in write(), so sweeping cannot deadlock with writers.
   */
  async sweepExpired(now: Date, limit: number): Promise<number> {
    const ts = now.getTime()
    const stores = await this.#query<{ store_id: string }>('expiredStores', [ts, limit])
    let swept = 0
    for (const { store_id: storeId } of stores) {
      if (swept >= limit) break
      const left = limit - swept
      const sweep = () => this.#transaction((c) => sweepStore(c, storeId, ts, left))
      swept += await this.#retrying(sweep)
    }
    return swept
  }

  // --- access requests -----------------------------------------------------------------------

  async createAccessRequest(r: AccessRequestRecord): Promise<void> {
    await this.#transaction(async (c) => {
      await c.query(
        q('insertAccessRequest', [
          r.storeId,
          r.id,
          r.objectType,
          r.objectId,
          r.relation,
          r.user,
          r.durationMs,
          r.reason,
          r.status,
          r.createdAt.getTime(),
          r.pendingUntil.getTime(),
          r.grantExpiresAt?.getTime() ?? null,
        ]),
      )
      for (const e of r.events) await appendEvent(c, r.storeId, r.id, e)
    })
  }

  async getAccessRequest(storeId: string, id: string): Promise<AccessRequestRecord | undefined> {
    const rows = await this.#query<AccessRequestRow>('getAccessRequest', [storeId, id])
    return rows.length ? (await this.#withEvents(storeId, rows))[0] : undefined
  }

  async listAccessRequests(
    storeId: string,
    q: AccessRequestQuery,
  ): Promise<Page<AccessRequestRecord>> {
    const where = ['store_id = $1']
    const params: unknown[] = [storeId]
    let shape = q.status ?? 'all'
    const status = statusClause(q.status, 2)
    if (status) {
      where.push(status)
      if (q.status === 'pending' || q.status === 'expired') params.push(q.now)
    }
    const after = decodeCursor(q.after, isStringArray(1))
    if (after) {
      params.push(after[0])
      where.push(`id > $${params.length}`)
      shape += '_c'
    }
    params.push(q.pageSize + 1)
    const text = sql`SELECT * FROM access_requests WHERE ${where.join(' AND ')}
      ORDER BY id LIMIT $${String(params.length)}`
    const name = `pemba_requests_${shape}`
    const rows = (await this.pool.query<AccessRequestRow>({ name, text, values: params })).rows
    const more = rows.length > q.pageSize
    const items = await this.#withEvents(storeId, rows.slice(0, q.pageSize))
    return { items, next: more ? JSON.stringify([items[items.length - 1].id]) : '' }
  }

  async approveAccessRequest(
    storeId: string,
    id: string,
    tuple: Tuple,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision> {
    const ts = now.getTime()
    return this.#retrying(() =>
      this.#transaction(async (c) => {
        // The store row first, as every writer takes it: the grant's revision is then in order.
        const locked = await c.query<{ revision: number }>(q('lockStore', [storeId]))
        if (locked.rows.length === 0) return { ok: false, status: 'missing' } as const
        const notPending = await lockPending(c, storeId, id, ts)
        if (notPending) return notPending
        const granted = await grant(c, storeId, tuple, locked.rows[0].revision, ts)
        if (!granted.ok) return granted
        const expires = tuple.expiresAt ?? null
        await c.query(q('setAccessRequestStatus', [storeId, id, 'approved', expires]))
        await appendEvent(c, storeId, id, event)
        return granted
      }),
    )
  }

  async denyAccessRequest(
    storeId: string,
    id: string,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision> {
    return this.#retrying(() =>
      this.#transaction(async (c) => {
        const notPending = await lockPending(c, storeId, id, now.getTime())
        if (notPending) return notPending
        await c.query(q('setAccessRequestStatus', [storeId, id, 'denied', null]))
        await appendEvent(c, storeId, id, event)
        const [head] = (await c.query<{ revision: number }>(q('headRevision', [storeId]))).rows
        return { ok: true, revision: head?.revision ?? 0 } as const
      }),
    )
  }

  async expireAccessRequests(now: Date, limit: number): Promise<number> {
    return this.#retrying(() =>
      this.#transaction(async (c) => {
        const due = (
          await c.query<{ store_id: string; id: string; pending_until: number }>(
            q('duePendingRequests', [now.getTime(), limit]),
          )
        ).rows
        if (due.length === 0) return 0
        const stores = due.map((r) => r.store_id)
        const ids = due.map((r) => r.id)
        await c.query(q('expireRequests', [stores, ids]))
        const at = due.map((r) => r.pending_until)
        await c.query(q('insertExpiredEvents', [stores, ids, at, EXPIRY_ACTOR]))
        return due.length
      }),
    )
  }

  async #withEvents(storeId: string, rows: AccessRequestRow[]): Promise<AccessRequestRecord[]> {
    if (rows.length === 0) return []
    const events = await this.#query<EventRow>('events', [storeId, rows.map((r) => r.id)])
    return rows.map((r) => rowToAccessRequest(r, events.filter((e) => e.request_id === r.id)))
  }

  /** #retrying runs a transaction again on deadlock or serialization failure, with jitter. */
  async #retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (e) {
        if (attempt >= WRITE_ATTEMPTS || !isRetryable(e)) throw e
        // 10, 20, 40, 80 ms ceilings, full jitter: racing replicas do not retry in lockstep.
        await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** (attempt - 1)))
      }
    }
  }

  putTokenIssuer(input: TokenIssuerInput, now: Date): Promise<TokenIssuerPut> {
    return this.#tokenIssuers.put(input, now)
  }

  getTokenIssuer(storeId: string, name: string): Promise<TokenIssuerRecord | undefined> {
    return this.#tokenIssuers.get(storeId, name)
  }

  listTokenIssuers(storeId: string): Promise<TokenIssuerRecord[]> {
    return this.#tokenIssuers.list(storeId)
  }

  deleteTokenIssuer(storeId: string, name: string): Promise<boolean> {
    return this.#tokenIssuers.delete(storeId, name)
  }

  async writeAssertions(storeId: string, modelId: string, assertions: unknown[]): Promise<void> {
    await this.#query('writeAssertions', [storeId, modelId, JSON.stringify(assertions)])
  }

  async readAssertions(storeId: string, modelId: string): Promise<unknown[] | undefined> {
    const [row] = await this.#query<{ assertions: string }>('readAssertions', [storeId, modelId])
    return row === undefined ? undefined : JSON.parse(row.assertions)
  }

  appendDecisions(decisions: StoredDecision[], uses: GrantUse[]): Promise<void> {
    return this.#audit.appendDecisions(decisions, uses)
  }

  listDecisions(storeId: string, q: DecisionQuery): Promise<Page<StoredDecision>> {
    return this.#audit.listDecisions(storeId, q)
  }

  deleteDecisionsBefore(before: number, limit: number): Promise<number> {
    return this.#audit.deleteDecisionsBefore(before, limit)
  }

  forgetGrantUsage(before: number, limit: number): Promise<number> {
    return this.#audit.forgetGrantUsage(before, limit)
  }

  getDecisionLogSettings(storeId: string): Promise<DecisionLogSettings | undefined> {
    return this.#audit.getDecisionLogSettings(storeId)
  }

  putDecisionLogSettings(storeId: string, settings: DecisionLogSettings): Promise<void> {
    return this.#audit.putDecisionLogSettings(storeId, settings)
  }

  listGrants(storeId: string, user: Subject, q: GrantsQuery): Promise<Page<GrantWithUsage>> {
    return this.#audit.listGrants(storeId, user, q)
  }

  identityGrantStats(storeId: string, userType: string, q: IdentityStatsQuery): Promise<Page<IdentityGrantStats>> {
    return this.#audit.identityGrantStats(storeId, userType, q)
  }

  /** close ends the pool once; in-flight queries finish first. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.pool.end()
  }
}

/**
 * applyWrite is one attempt of `write()` inside an open transaction. The store row's lock comes
 * first, so everything after it sees every earlier write to the store. Then, in batches: deletes
 * (a delete and a write of `doc:1#viewer@user:anne` in one request re-creates the tuple), the
 * existence check of the writes, the inserts, and the changelog. The outcome, including which
 * tuple an error names, is the same as applying the changes one by one in request order, as the
 * SQLite store does.
 */
async function applyWrite(c: pg.PoolClient, storeId: string, req: WriteRequest, ts: number): Promise<Revision> {
  const locked = await c.query<{ revision: number }>(q('lockStore', [storeId]))
  if (locked.rows.length === 0) throw new PembaError('store_id_not_found', 'Store ID not found')
  const head = locked.rows[0].revision
  const revision = head + 1

  const change = {
    seq: [] as number[],
    objectType: [] as string[],
    objectId: [] as string[],
    relation: [] as string[],
    user: [] as string[],
    conditionName: [] as string[],
    conditionContext: [] as (string | null)[],
    expiresAt: [] as (number | null)[],
    operation: [] as number[],
  }
  const record = (
    t: TupleIdentity,
    conditionName: string,
    ctx: string | null,
    expires: number | null,
    operation: number,
  ) => {
    change.seq.push(change.seq.length)
    change.objectType.push(t.objectType)
    change.objectId.push(t.objectId)
    change.relation.push(t.relation)
    change.user.push(formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation }))
    change.conditionName.push(conditionName)
    change.conditionContext.push(ctx)
    change.expiresAt.push(expires)
    change.operation.push(operation)
  }

  if (req.deletes.length > 0) {
    const res = await c.query<TupleRow>(q('deleteTuples', [storeId, ...keyArrays(req.deletes), ts]))
    const deleted = new Set(res.rows.map(keyOfRow))
    for (const d of req.deletes) {
      // Consumed on first use: a second delete of the same tuple in one request finds nothing.
      if (!deleted.delete(keyOf(d))) {
        if (req.onMissing === 'error') {
          throw deleteMissingError(d)
        }
        continue
      }
      record(d, '', null, null, 1)
    }
  }

  if (req.writes.length > 0) {
    const res = await c.query<TupleRow>(q('existingTuples', [storeId, ...keyArrays(req.writes)]))
    const existing = new Map(res.rows.map((r) => [keyOfRow(r), r] as const))
    const inserts: Tuple[] = []
    const contexts: (string | null)[] = []
    const replaced: Tuple[] = []
    for (const w of req.writes) {
      const key = keyOf(w)
      const ctx = canonicalContext(w.conditionContext)
      const expires = w.expiresAt ?? null
      let found = existing.get(key)
      if (found && found.expires_at !== null && found.expires_at <= ts) {
        // Expired but not swept yet: gone for everyone, so this is a new tuple. Its removal is
        // recorded first, as the sweeper would have, so the feed stays a true history.
        replaced.push(w)
        record(w, '', null, null, 1)
        found = undefined
      }
      if (found) {
        if (req.onDuplicate === 'error') {
          throw writeExistingError(w)
        }
        if (found.condition_name !== w.conditionName || found.condition_context !== ctx) {
          throw conflictError(w, 'condition')
        }
        if (found.expires_at !== expires) {
          throw conflictError(w, 'expiry')
        }
        continue
      }
      // A later write of the same key in this request meets this one, as it would row by row.
      existing.set(key, {
        ...rowOf(w),
        condition_name: w.conditionName,
        condition_context: ctx,
        expires_at: expires,
      })
      inserts.push(w)
      contexts.push(ctx)
      record(w, w.conditionName, ctx, expires, 0)
    }
    if (replaced.length > 0) await c.query(q('deleteRows', [storeId, ...keyArrays(replaced)]))
    if (inserts.length > 0) {
      const values = [
        storeId,
        ...keyArrays(inserts),
        inserts.map((w) => w.conditionName),
        contexts,
        inserts.map((w) => w.expiresAt ?? null),
        revision,
        ts,
      ]
      await c.query(q('insertTuples', values))
    }
  }

  // Nothing changed (every delete missing, every write present, all ignored): no new revision.
  if (change.seq.length === 0) return head
  await c.query(
    q('insertChanges', [
      storeId,
      revision,
      change.seq,
      change.objectType,
      change.objectId,
      change.relation,
      change.user,
      change.conditionName,
      change.conditionContext,
      change.expiresAt,
      change.operation,
      ts,
    ]),
  )
  await c.query(q('setRevision', [storeId, revision]))
  return revision
}

/** The changelog's operation codes. */
const WRITE = 0 as const
const DELETE = 1 as const

/** recordChanges writes changelog entries (no conditions) under `revision`, seq 0, 1, … */
async function recordChanges(
  c: pg.PoolClient,
  storeId: string,
  revision: number,
  ts: number,
  changes: { t: TupleIdentity; expires: number | null; operation: 0 | 1 }[],
): Promise<void> {
  await c.query(
    q('insertChanges', [
      storeId,
      revision,
      changes.map((_, i) => i),
      changes.map((x) => x.t.objectType),
      changes.map((x) => x.t.objectId),
      changes.map((x) => x.t.relation),
      changes.map(({ t }) => subjectOf(t)),
      changes.map(() => ''),
      changes.map(() => null),
      changes.map((x) => x.expires),
      changes.map((x) => x.operation),
      ts,
    ]),
  )
}

/**
 * sweepStore is one sweep transaction of one store: lock the store row, delete up to `limit`
 * expired tuples, record each delete under the store's next revision.
 */
async function sweepStore(
  c: pg.PoolClient,
  storeId: string,
  ts: number,
  limit: number,
): Promise<number> {
  const locked = await c.query<{ revision: number }>(q('lockStore', [storeId]))
  const deleted = (await c.query<KeyRow>(q('sweepStore', [storeId, ts, limit]))).rows
  // Without a store row there is no revision to order a changelog entry by; the rows still go.
  if (deleted.length === 0 || locked.rows.length === 0) return deleted.length
  const revision = locked.rows[0].revision + 1
  const changes = deleted.map((r) => ({ t: identityOfRow(r), expires: null, operation: DELETE }))
  await recordChanges(c, storeId, revision, ts, changes)
  await c.query(q('setRevision', [storeId, revision]))
  return deleted.length
}

/**
 * lockPending locks an access request's row and returns undefined when it is pending at `ts`,
 * or why it is not (missing, approved, denied, expired).
 */
async function lockPending(
  c: pg.PoolClient,
  storeId: string,
  id: string,
  ts: number,
): Promise<AccessRequestDecision | undefined> {
  type Row = { status: AccessRequestStatus; pending_until: number }
  const [row] = (await c.query<Row>(q('lockAccessRequest', [storeId, id]))).rows
  if (!row) return { ok: false, status: 'missing' }
  const status = effectiveStatus(row.status, row.pending_until, ts)
  return status === 'pending' ? undefined : { ok: false, status }
}

/**
 * grant writes a JIT grant inside the caller's transaction, which holds the store row's lock
 * (`head` is the revision it read). Absent (or expired, not yet swept): written under a new
 * revision. Present without a condition: its expiry becomes the later of the two (an
 * unexpiring tuple stays as it is), recorded as a delete and a write so a feed consumer sees the
 * new expiry. Present with a condition: refused, since replacing it would drop the condition and
 * keeping it would not grant what was approved.
 */
async function grant(
  c: pg.PoolClient,
  storeId: string,
  t: Tuple,
  head: number,
  ts: number,
): Promise<AccessRequestDecision> {
  const expires = t.expiresAt ?? null
  const key = keyArrays([t])
  const [existing] = (await c.query<TupleRow>(q('existingTuples', [storeId, ...key]))).rows
  const live = existing && (existing.expires_at === null || existing.expires_at > ts)
  if (existing && live) {
    if (existing.condition_name !== '' || existing.condition_context !== null) {
      const conflict = `${describeTuple(t)} already exists with a condition`
      return { ok: false, status: 'pending', conflict }
    }
    if (existing.expires_at === null || (expires !== null && existing.expires_at >= expires)) {
      return { ok: true, revision: head }
    }
  }
  const revision = head + 1
  const changes: { t: TupleIdentity; expires: number | null; operation: 0 | 1 }[] = []
  if (existing) {
    await c.query(q('deleteRows', [storeId, ...key]))
    changes.push({ t, expires: null, operation: DELETE })
  }
  await c.query(q('insertTuples', [storeId, ...key, [''], [null], [expires], revision, ts]))
  changes.push({ t, expires, operation: WRITE })
  await recordChanges(c, storeId, revision, ts, changes)
  await c.query(q('setRevision', [storeId, revision]))
  return { ok: true, revision }
}

async function appendEvent(
  c: pg.PoolClient,
  storeId: string,
  id: string,
  e: AccessRequestEvent,
): Promise<void> {
  await c.query(q('insertEvent', [storeId, id, e.type, e.actor, e.at.getTime(), e.reason]))
}

function subjectOf(t: TupleIdentity): string {
  return formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
}

function identityOfRow(r: KeyRow): TupleIdentity {
  return {
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    userRelation: r.user_relation,
    userType: r.user_type,
    userId: r.user_id,
  }
}

function rowOf(t: TupleIdentity): KeyRow {
  return {
    object_type: t.objectType,
    object_id: t.objectId,
    relation: t.relation,
    user_relation: t.userRelation,
    user_type: t.userType,
    user_id: t.userId,
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

  async #rows(name: StatementName, values: unknown[]): Promise<Tuple[]> {
    return (await this.#pool.query<TupleRow>(q(name, values))).rows.map(rowToTuple)
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
