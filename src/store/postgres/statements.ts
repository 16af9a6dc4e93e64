/**
 * The PostgreSQL driver's statement text: the helpers that write it (`sql`, `unnest`), the batch
 * statements over `unnest` of column arrays (one statement per kind of batch, whatever its
 * size), and the conversions of rows into those arrays.
 *
 * @module
 */
import type { TupleIdentity } from '../../core/tuple.ts'
import { DECISION_COLUMNS } from '../audit.ts'
import type { ValueRow } from '../sql/driver.ts'
import { KEY_COLUMNS } from '../sql/tuples.ts'

/** sql joins a statement written over several lines into one line (for logs, pg_stat_statements). */
export function sql(strings: TemplateStringsArray, ...values: string[]): string {
  return String.raw({ raw: strings }, ...values).replace(/\s+/g, ' ').trim()
}

/** `unnest($from::type[], …)`: parallel arrays as the rows of a batch. */
export function unnest(from: number, types: readonly string[]): string {
  return `unnest(${types.map((t, i) => `$${from + i}::${t}[]`).join(', ')})`
}

export const TEXT6 = ['text', 'text', 'text', 'text', 'text', 'text'] as const

/** The join of tuples `t` with a batch of keys `k`, both in KEY_COLUMNS. */
export const SAME_KEY = sql`t.object_type = k.object_type AND t.object_id = k.object_id
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
export const BATCH = {
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
    SELECT * FROM ${unnest(1, DECISION_COLUMNS.map((c) => DECISION_TYPES[c]))}
    ON CONFLICT DO NOTHING`,
  /** Keys arrive sorted (mergeGrantUses), so replicas flushing at once lock rows in one order. */
  upsertUsage: sql`INSERT INTO grant_usage (store_id, ${KEY_COLUMNS}, last_used_at)
    SELECT * FROM ${unnest(1, [...TEXT6, 'text', 'bigint'])}
    ON CONFLICT (store_id, ${KEY_COLUMNS})
    DO UPDATE SET last_used_at = GREATEST(grant_usage.last_used_at, excluded.last_used_at)`,
} as const

/** keyArrays turns tuples into the six column arrays a batch statement unnests. */
export function keyArrays(ts: readonly TupleIdentity[]): string[][] {
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
export function columns(rows: readonly ValueRow[], n: number): unknown[][] {
  const out: unknown[][] = Array.from({ length: n }, () => new Array(rows.length))
  rows.forEach((r, i) => r.forEach((v, c) => (out[c][i] = v)))
  return out
}
/** numbered turns the core's `?` placeholders into PostgreSQL's `$1`, `$2`, … */
export function numbered(text: string): string {
  let n = 0
  return text.replace(/\?/g, () => `$${++n}`)
}
