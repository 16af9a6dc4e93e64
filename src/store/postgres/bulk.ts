/**
 * PostgreSQL's side of the bulk load (driver.ts `bulkInsert`, sql/bulk.ts): the rows go to a
 * temporary staging table through `COPY … FROM STDIN` (pg-copy-streams), the fastest way in
 * (no per-row parse or bind), and from there into `tuples` with one set-based
 * `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`, whose returned rows are the changelog's
 * entries, inserted by the same statement. The data crosses the network once; only the rows
 * that met a stored key come back, and only when there are some.
 *
 * The staging table lives as long as the pooled connection (`ON COMMIT DELETE ROWS` empties it
 * at each commit), so a load creates it at most once per connection.
 *
 * @module
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { all, get, run, type BulkInserted, type BulkRow, type Tx } from '../sql/driver.ts'
import { KEY_COLUMNS } from '../sql/tuples.ts'
import { SAME_KEY, sql } from './statements.ts'

/**
 * A bulk load's statements may take longer than a request's budget (PEMBA_PG_STATEMENT_TIMEOUT_MS,
 * 5 s by default): 100,000 rows copied and inserted take about a second on a quiet machine, more
 * under load or over a slow link. Its transaction allows each statement this long instead.
 */
const BULK_STATEMENT_TIMEOUT_MS = 120_000

/** The staging table's columns after `ord` (the row's position in the load). */
const STAGED_COLUMNS = `${KEY_COLUMNS}, condition_name, condition_context, expires_at`

/** `type:id` or `type:id#relation` of a row's user (formatSubject, in SQL). */
const USER = "user_type || ':' || user_id || CASE WHEN user_relation = '' THEN '' ELSE '#' || user_relation END"

const CHANGELOG = `changelog (store_id, revision, seq, object_type, object_id, relation, "user", condition_name,
  condition_context, expires_at, operation, created_at)`

const BULK = {
  timeout: `SET LOCAL statement_timeout = ${BULK_STATEMENT_TIMEOUT_MS}`,
  staging: sql`CREATE TEMP TABLE IF NOT EXISTS pemba_bulk_staging (
      ord integer NOT NULL, object_type text COLLATE "C" NOT NULL, object_id text COLLATE "C" NOT NULL,
      relation text COLLATE "C" NOT NULL, user_relation text COLLATE "C" NOT NULL,
      user_type text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
      condition_name text COLLATE "C" NOT NULL, condition_context text COLLATE "C", expires_at bigint
    ) ON COMMIT DELETE ROWS`,
  copy: `COPY pemba_bulk_staging (ord, ${STAGED_COLUMNS}) FROM STDIN`,
  /** Whether the store holds any expired row (over tuples_by_expiry); rarely, since the sweeper deletes them. */
  anyExpired: 'SELECT 1 AS expired FROM tuples WHERE expires_at <= $1 AND store_id = $2 LIMIT 1',
  /**
   * The expired rows of staged keys removed, each removal recorded (seq 0, 1, …) as the sweeper
   * would have: the key is then absent, and the insert below writes the staged tuple. Parameters:
   * store, revision, ts.
   */
  replaceExpired: sql`WITH gone AS (
      DELETE FROM tuples t USING pemba_bulk_staging k
      WHERE t.store_id = $1 AND ${SAME_KEY} AND t.expires_at <= $3
      RETURNING t.object_type, t.object_id, t.relation, t.user_relation, t.user_type, t.user_id)
    INSERT INTO ${CHANGELOG}
    SELECT $1::text, $2::bigint, row_number() OVER () - 1, object_type, object_id, relation, ${USER},
      '', NULL, NULL, 1, $3::bigint
    FROM gone`,
  /**
   * The staged rows inserted where their key is absent, in load order (of repeated keys the
   * first goes in), and each inserted row recorded (from seq $4 on). Parameters: store,
   * revision, ts, first seq. Its row count is the number of rows inserted.
   */
  insert: sql`WITH written AS (
      INSERT INTO tuples (store_id, ${STAGED_COLUMNS}, revision, inserted_at)
      SELECT $1::text, ${STAGED_COLUMNS}, $2::bigint, $3::bigint FROM pemba_bulk_staging ORDER BY ord
      ON CONFLICT (store_id, ${KEY_COLUMNS}) DO NOTHING
      RETURNING ${STAGED_COLUMNS})
    INSERT INTO ${CHANGELOG}
    SELECT $1::text, $2::bigint, $4::int + row_number() OVER () - 1, object_type, object_id, relation,
      ${USER}, condition_name, condition_context, expires_at, 0, $3::bigint
    FROM written`,
  /**
   * The staged rows not inserted, in load order, with the state their key holds: every one
   * whose key was stored before the load (another revision), and every repeat of a key after
   * its first. Parameters: store, revision.
   */
  met: sql`SELECT ord, condition_name, condition_context, expires_at FROM (
      SELECT k.ord, t.condition_name, t.condition_context, t.expires_at, t.revision,
        min(k.ord) OVER (PARTITION BY k.object_type, k.object_id, k.relation, k.user_relation,
          k.user_type, k.user_id) AS first
      FROM pemba_bulk_staging k JOIN tuples t ON t.store_id = $1 AND ${SAME_KEY}) m
    WHERE revision <> $2 OR ord <> first
    ORDER BY ord`,
} as const

interface MetRow {
  ord: number
  condition_name: string
  condition_context: string | null
  expires_at: number | null
}

/** postgresBulkInsert is the PostgreSQL driver's bulkInsert (see the module's comment). */
export function* postgresBulkInsert(storeId: string, rows: readonly BulkRow[], revision: number, ts: number): Tx<BulkInserted> {
  yield* run(BULK.timeout, [])
  yield* run(BULK.staging, [])
  yield { kind: 'copyFrom', sql: BULK.copy, chunks: () => copyText(rows) }
  let seq = 0
  if (yield* get(BULK.anyExpired, [ts, storeId])) seq = yield* run(BULK.replaceExpired, [storeId, revision, ts])
  const written = yield* run(BULK.insert, [storeId, revision, ts, seq])
  const met: BulkInserted['met'] = []
  if (written < rows.length) {
    for (const r of yield* all<MetRow>(BULK.met, [storeId, revision])) {
      met.push({ row: rows[r.ord], stored: { conditionName: r.condition_name, context: r.condition_context, expiresAt: r.expires_at } })
    }
  }
  return { written, met }
}

/** copyIn runs `COPY … FROM STDIN` on `client`, streaming `chunks`; resolves to the rows copied. */
export async function copyIn(client: pg.PoolClient, text: string, chunks: () => Iterable<string>): Promise<number> {
  const stream = client.query(copyFrom(text))
  await pipeline(Readable.from(chunks(), { objectMode: false }), stream)
  return stream.rowCount
}

/** The characters COPY's text format escapes, and their escapes. */
const SPECIAL = /[\\\t\n\r]/
const SPECIALS = /[\\\t\n\r]/g
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' }

/** A text value in COPY's text format. */
function text(v: string): string {
  return SPECIAL.test(v) ? v.replace(SPECIALS, (c) => ESCAPES[c]) : v
}

/** Pieces of about this many characters go to the stream at a time. */
const PIECE = 64 * 1024

/** copyText: the rows as the staging table's COPY text (`\N` for NULL), a piece at a time. */
function* copyText(rows: readonly BulkRow[]): Generator<string> {
  let piece = ''
  for (const r of rows) {
    const t = r.tuple
    piece +=
      `${r.index}\t${text(t.objectType)}\t${text(t.objectId)}\t${text(t.relation)}\t${text(t.userRelation)}\t` +
      `${text(t.userType)}\t${text(t.userId)}\t${text(r.conditionName)}\t${r.context === null ? '\\N' : text(r.context)}\t` +
      `${r.expiresAt === null ? '\\N' : r.expiresAt}\n`
    if (piece.length >= PIECE) {
      yield piece
      piece = ''
    }
  }
  if (piece !== '') yield piece
}
