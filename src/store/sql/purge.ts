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
 * Orphans. Some writers do not take the store row's lock (decision-log settings, grant usage,
 * access requests), so a request still in flight when the store row goes could leave a row of a
 * store that no longer exists. Once nothing else is left to purge, a call also removes rows of
 * those tables whose store has no row and was created (its ULID's time) before `deletedBefore`.
 * Finding them costs one index probe per store present in each table (a skip scan over the
 * primary key, which leads with `store_id`), not a scan of the rows. The decision log, grant
 * usage and search snapshots need no such pass: their rows expire on their own (the decision
 * log's retention; usage of a grant that no longer exists; a snapshot's expiry).
 *
 * @module
 */
import { decodeTime } from 'ulid'
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

/** The per-store tables written without the store row's lock, whose rows never expire (see Orphans). */
const UNLOCKED_TABLES = ['decision_log_settings', 'access_request_events', 'access_requests'] as const

/**
 * The store ids of `table` with no store row, found by a skip scan of its primary key (one
 * index probe per store id present).
 */
const orphanIds = (table: string) =>
  `WITH RECURSIVE ids(id) AS (
     SELECT MIN(store_id) FROM ${table}
     UNION ALL SELECT (SELECT MIN(store_id) FROM ${table} WHERE store_id > ids.id) FROM ids WHERE ids.id IS NOT NULL
   ) SELECT id FROM ids WHERE id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stores WHERE stores.id = ids.id)`

/** Stores due for purging, oldest deletion first (a handful per call; the table is small). */
const DUE = 'SELECT id FROM stores WHERE deleted_at IS NOT NULL AND deleted_at <= ? ORDER BY deleted_at, id LIMIT 16'

const deleteBatch = (d: SqlDriver, table: string) =>
  `DELETE FROM ${table} WHERE ${d.rowIdIn(`SELECT ${d.rowId} FROM ${table} WHERE store_id = ? LIMIT ?`)}`

/**
 * purgeDeletedStores deletes up to `limit` rows of the stores deleted at or before
 * `deletedBefore` (see the module's comment): how many (fewer than `limit`: nothing is left to
 * purge), and the stores whose row went last. `beforeRemove` (removing the grants on the store)
 * runs before the store row goes, so a failure leaves the store due and is retried next call.
 */
export async function purgeDeletedStores(
  d: SqlDriver,
  deletedBefore: Date,
  limit: number,
  beforeRemove?: (storeId: string) => Promise<void>,
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
    await beforeRemove?.(id)
    if ((await d.transaction(() => removeStoreRow(d, id))) > 0) {
      done.rows += 1
      done.stores.push(id)
    }
  }
  if (done.rows < limit) done.rows += await purgeOrphans(d, deletedBefore, limit - done.rows)
  return done
}

/** purgeOrphans deletes up to `limit` rows of stores that no longer exist (see Orphans). */
async function purgeOrphans(d: SqlDriver, deletedBefore: Date, limit: number): Promise<number> {
  let rows = 0
  for (const table of UNLOCKED_TABLES) {
    for (const { id } of await d.all<{ id: string }>(orphanIds(table), [])) {
      // Only a store id (a ULID) created before the cutoff: never a row whose store is being
      // restored or imported in a transaction not yet committed, nor anything not a store id.
      if (!createdBefore(id, deletedBefore)) continue
      for (;;) {
        const want = limit - rows
        if (want <= 0) return rows
        const n = await d.run(deleteBatch(d, table), [id, want])
        rows += n
        if (n < want) break
      }
    }
  }
  return rows
}

/** createdBefore: `id` is a ULID whose time is at or before `cutoff`. */
function createdBefore(id: string, cutoff: Date): boolean {
  try {
    return decodeTime(id) <= cutoff.getTime()
  } catch {
    return false
  }
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
