/**
 * The purge of deleted stores, for both dialects: once a store has been deleted for longer than
 * the retention period (PEMBA_DELETED_STORE_RETENTION), every row it owns goes, then its row
 * in `stores`.
 *
 * Bounded work: each statement deletes at most the batch left of the call's `limit`, in its own
 * short transaction, so a store of millions of tuples never holds a lock for long and a call
 * ends after `limit` rows. Several replicas may purge at once: two deletes of the same batch
 * delete each row once (the second finds it gone), and the store row is removed only under its
 * lock, after every table was seen empty of it, so a row written meanwhile (a decision logged
 * by a request still in flight at the deletion) keeps the store row until the next run takes it.
 *
 * @module
 */
import { all, get, run, type SqlDriver, type Tx } from './driver.ts'

/**
 * Every table that holds rows of one store (its `store_id`), children before parents. The
 * `stores` row comes last; signing keys are the server's, not a store's.
 */
export const STORE_TABLES = [
  'tuples',
  'changelog',
  'assertions',
  'authorization_models',
  'access_request_events',
  'access_requests',
  'decision_log',
  'grant_usage',
  'decision_log_settings',
  'token_issuers',
  'search_snapshots',
] as const

/** Stores due for purging, oldest deletion first (a handful per call; the table is small). */
const DUE = 'SELECT id FROM stores WHERE deleted_at IS NOT NULL AND deleted_at <= ? ORDER BY deleted_at, id LIMIT 16'

const deleteBatch = (d: SqlDriver, table: string) =>
  `DELETE FROM ${table} WHERE ${d.rowIdIn(`SELECT ${d.rowId} FROM ${table} WHERE store_id = ? LIMIT ?`)}`

/**
 * purgeDeletedStores deletes up to `limit` rows of the stores deleted at or before
 * `deletedBefore` (see the module's comment): how many (fewer than `limit`: nothing is left to
 * purge), and the stores whose row went last.
 */
export async function purgeDeletedStores(
  d: SqlDriver,
  deletedBefore: Date,
  limit: number,
): Promise<{ rows: number; stores: string[] }> {
  const due = await d.all<{ id: string }>(DUE, [deletedBefore.getTime()])
  const done = { rows: 0, stores: [] as string[] }
  for (const { id } of due) {
    for (const table of STORE_TABLES) {
      for (;;) {
        const want = limit - done.rows
        if (want <= 0) return done
        const n = await d.run(deleteBatch(d, table), [id, want])
        done.rows += n
        if (n < want) break
      }
    }
    if (done.rows >= limit) return done
    if ((await d.transaction(() => removeStoreRow(d, id))) > 0) {
      done.rows += 1
      done.stores.push(id)
    }
  }
  return done
}

/** removeStoreRow deletes a deleted store's row once none of its rows is left; 1 if it did. */
function* removeStoreRow(d: SqlDriver, id: string): Tx<number> {
  // The lock every writer takes first: nothing of this store commits while the tables are checked.
  const deleted = yield* get(`SELECT id FROM stores WHERE id = ? AND deleted_at IS NOT NULL${d.forUpdate}`, [id])
  if (!deleted) return 0
  for (const table of STORE_TABLES) {
    if ((yield* all(`SELECT 1 AS found FROM ${table} WHERE store_id = ? LIMIT 1`, [id])).length > 0) return 0
  }
  return yield* run('DELETE FROM stores WHERE id = ?', [id])
}
