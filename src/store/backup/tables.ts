/**
 * What a backup holds: every Pemba table, its columns in a fixed order and the primary key its
 * rows are read in. One list for both dialects (schema/sqlite.ts and schema/postgres.ts name
 * the same tables and columns), so a row read from SQLite restores into PostgreSQL and back,
 * and the same data gives the same lines, and so the same checksums, on either.
 *
 * The list is written out rather than read from the database on purpose: a migration that adds
 * a table or a column fails the test that compares this list with both migrated schemas
 * (test/backup/tables.test.ts) until someone decides how backups carry it, instead of backups
 * silently leaving it out.
 *
 * @module
 */

/** How a column's values are written: text, an integer (ms times, revisions, flags), a float. */
export type ColumnType = 'text' | 'int' | 'real'

export interface TableSpec {
  name: string
  /** The columns, in the order a row lists its values. */
  columns: readonly string[]
  /** The type of each column of `columns`, same order. */
  types: readonly ColumnType[]
  /** The primary key: rows are read in its order, so a backup of the same data is the same file. */
  key: readonly string[]
  /** Only in a backup made with `--with-decisions` (the decision log). */
  optional?: true
}

/** table builds a spec from `name type` pairs; `key` names primary key columns. */
function table(name: string, columns: string, key: string, optional?: true): TableSpec {
  const pairs = columns
    .trim()
    .split(/\s*,\s*/)
    .map((c) => c.split(/\s+/) as [string, ColumnType])
  return { name, columns: pairs.map((p) => p[0]), types: pairs.map((p) => p[1]), key: key.split(/\s*,\s*/), ...(optional ? { optional } : {}) }
}

/**
 * Every table, in restore order (stores first; nothing references anything, but a reader of
 * the file meets each store before its rows). The decision log is last and optional: it can be
 * far larger than everything else and is an audit trail, not state a check depends on.
 * grant_usage (when each tuple last granted) is always included: it is bounded by the tuples,
 * and without it a least-privilege review of the restored database would call every grant
 * unused.
 */
export const TABLES: readonly TableSpec[] = [
  table('stores', 'id text, name text, created_at int, updated_at int, deleted_at int, revision int', 'id'),
  table('authorization_models', 'store_id text, id text, schema_version text, model text, created_at int', 'store_id, id'),
  table(
    'tuples',
    `store_id text, object_type text, object_id text, relation text, user_relation text, user_type text, user_id text,
     condition_name text, condition_context text, revision int, inserted_at int, expires_at int`,
    'store_id, object_type, object_id, relation, user_relation, user_type, user_id',
  ),
  table(
    'changelog',
    `store_id text, revision int, seq int, object_type text, object_id text, relation text, user text,
     condition_name text, condition_context text, expires_at int, operation int, created_at int`,
    'store_id, revision, seq',
  ),
  table('assertions', 'store_id text, model_id text, assertions text', 'store_id, model_id'),
  table(
    'access_requests',
    `store_id text, id text, object_type text, object_id text, relation text, user text, duration_ms int, reason text,
     status text, created_at int, pending_until int, grant_expires_at int, idempotency_key text, request_hash text,
     binding_jti text, submission text`,
    'store_id, id',
  ),
  table('access_request_events', 'store_id text, request_id text, seq int, type text, actor text, at int, reason text', 'store_id, request_id, seq'),
  table('token_issuers', 'store_id text, name text, issuer text, config text, created_at int, updated_at int', 'store_id, name'),
  table('decision_log_settings', 'store_id text, enabled int, sample_rate real, updated_at int', 'store_id'),
  table(
    'grant_usage',
    'store_id text, object_type text, object_id text, relation text, user_relation text, user_type text, user_id text, last_used_at int',
    'store_id, object_type, object_id, relation, user_relation, user_type, user_id',
  ),
  table(
    'decision_log',
    `store_id text, id text, at int, kind text, model_id text, client text, subject text, on_behalf_of text, relation text,
     object text, allowed int, witness text, latency_us int, consistency text, request_id text, detail text`,
    'store_id, id',
    true,
  ),
]

/**
 * The tables a backup leaves out on purpose, each with why; listed (with their columns) so that
 * the schema test still notices a change to them.
 */
export const NOT_BACKED_UP: readonly (TableSpec & { why: string })[] = [
  {
    ...table(
      'search_snapshots',
      'store_id text, id text, query_hash text, model_id text, revision int, secret text, results text, total int, created_at int, expires_at int',
      'store_id, id',
    ),
    why: 'the pages of AuthZEN searches in progress: minutes of life, recomputed by asking again',
  },
  {
    ...table('signing_keys', 'kid text, alg text, private_jwk text, public_jwk text, created_at int', 'kid'),
    why: 'private keys do not belong in a backup file; a restored server makes a new one (outstanding binding tokens and approval states then need a new request)',
  },
]

/** The spec of a table by name, or undefined. */
export function tableSpec(name: string): TableSpec | undefined {
  return TABLES.find((t) => t.name === name)
}

/** A quoted identifier (`"user"` is a reserved word in PostgreSQL; SQLite accepts the quotes too). */
export function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** The SELECT of a table's rows, its columns in spec order, in primary-key order. */
export function selectRows(t: TableSpec): string {
  return `SELECT ${t.columns.map(quoteName).join(', ')} FROM ${quoteName(t.name)} ORDER BY ${t.key.map(quoteName).join(', ')}`
}
