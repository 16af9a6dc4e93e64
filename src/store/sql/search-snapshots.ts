/**
 * SearchSnapshotStore (service/search-snapshot-store.ts) over SQL, for both dialects: one row
 * per paged AuthZEN search, its results a JSON array, removed by the sweeper once expired.
 *
 * @module
 */
import type { SearchSnapshot, SearchSnapshotStore } from '../../service/search-snapshot-store.ts'
import type { SqlDriver } from './driver.ts'

interface SnapshotRow {
  store_id: string
  id: string
  query_hash: string
  model_id: string
  revision: number | string
  secret: string
  results: string
  total: number | string
  created_at: number | string
  expires_at: number | string
}

const SQL = {
  insert: `INSERT INTO search_snapshots (store_id, id, query_hash, model_id, revision, secret, results, total, created_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  get: 'SELECT * FROM search_snapshots WHERE store_id = ? AND id = ?',
  // In batches, oldest first, so a backlog never holds a lock for long.
  deleteExpired: `DELETE FROM search_snapshots WHERE (store_id, id) IN
    (SELECT store_id, id FROM search_snapshots WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
} as const

function rowToSnapshot(r: SnapshotRow): SearchSnapshot {
  return {
    storeId: r.store_id,
    id: r.id,
    queryHash: r.query_hash,
    modelId: r.model_id,
    // PostgreSQL's bigint arrives as text.
    revision: Number(r.revision),
    secret: r.secret,
    results: JSON.parse(r.results) as string[],
    total: Number(r.total),
    createdAt: new Date(Number(r.created_at)),
    expiresAt: new Date(Number(r.expires_at)),
  }
}

/** The search-snapshot port over `d`. */
export function sqlSearchSnapshots(d: SqlDriver): SearchSnapshotStore {
  return {
    async insertSearchSnapshot(s) {
      await d.run(SQL.insert, [
        s.storeId,
        s.id,
        s.queryHash,
        s.modelId,
        s.revision,
        s.secret,
        JSON.stringify(s.results),
        s.total,
        s.createdAt.getTime(),
        s.expiresAt.getTime(),
      ])
    },
    async getSearchSnapshot(storeId, id) {
      const row = await d.get<SnapshotRow>(SQL.get, [storeId, id])
      return row && rowToSnapshot(row)
    },
    deleteExpiredSearchSnapshots(now, limit) {
      return d.run(SQL.deleteExpired, [now.getTime(), limit])
    },
  }
}
