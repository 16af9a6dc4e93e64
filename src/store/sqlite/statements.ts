/**
 * The SQLite driver's statement text shared by its parts (index.ts, bulk.ts): single-row
 * statements, prepared once and run row by row (with better-sqlite3 that beats binding one long
 * argument list, except for the bulk load's multi-row inserts).
 *
 * @module
 */
import { KEY_COLUMNS } from '../sql/tuples.ts'

/**
 * Every reader query ends with this, bound to the reader's `now`: an expired tuple is gone the
 * instant it expires, whether or not the sweeper has deleted the row yet.
 */
export const LIVE = '(expires_at IS NULL OR expires_at > ?)'

/** A storedState row: condition_name, condition_context, expires_at. */
export type StateRow = [string, string | null, number | null]

/** The tuple key columns, for statements that name one tuple. */
export const KEY_MATCH =
  'store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation = ? AND user_type = ? AND user_id = ?'

export const SQL = {
  /** A tuple's stored state, as a StateRow (see storedTuples, storedForWrite). */
  storedState: `SELECT condition_name, condition_context, expires_at FROM tuples WHERE ${KEY_MATCH}`,
  deleteRow: `DELETE FROM tuples WHERE ${KEY_MATCH}`,
  insertTuple: `INSERT INTO tuples (store_id, ${KEY_COLUMNS}, condition_name, condition_context, revision,
    inserted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** A deleted store is no store: its writes find no row to bump (store_id_not_found). */
  bumpRevision: 'UPDATE stores SET revision = revision + 1 WHERE id = ? AND deleted_at IS NULL RETURNING revision',
  unbumpRevision: 'UPDATE stores SET revision = revision - 1 WHERE id = ?',
  /**
   * Deletes a live tuple, returning its state as a StateRow: an expired one is already gone,
   * and is the sweeper's.
   */
  deleteLive: `DELETE FROM tuples WHERE ${KEY_MATCH} AND ${LIVE} RETURNING condition_name, condition_context, expires_at`,
  insertIgnore: `INSERT OR IGNORE INTO tuples (store_id, ${KEY_COLUMNS}, condition_name, condition_context,
    revision, inserted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  insertChange: `INSERT INTO changelog (store_id, revision, seq, object_type, object_id, relation, user,
    condition_name, condition_context, expires_at, operation, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  expireRequest: "UPDATE access_requests SET status = 'expired', grant_expires_at = NULL WHERE store_id = ? AND id = ?",
  insertEvent: `INSERT INTO access_request_events (store_id, request_id, seq, type, actor, at, reason)
    VALUES (?, ?, (SELECT COUNT(*) FROM access_request_events WHERE store_id = ? AND request_id = ?), ?, ?, ?, ?)`,
} as const
