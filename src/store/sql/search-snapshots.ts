/**
 * SearchSnapshotStore (service/search-snapshot-store.ts) over SQL, for both dialects: one row
 * per paged AuthZEN search, removed by the sweeper once expired. The results are stored
 * compactly: the prefix every result shares (`doc:`, the searched type) once, then the rest of
 * each, `{"p":"doc:","r":["0001","0002",…]}` (about half the size of `type:id` strings).
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
  // No index on query_hash: the store's live rows (at most PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX)
  // are scanned through the primary key's store_id prefix, without reading their results.
  find: `SELECT * FROM search_snapshots WHERE store_id = ? AND query_hash = ? AND revision = ? AND model_id = ?
    AND created_at >= ? AND expires_at > ? ORDER BY created_at DESC LIMIT 1`,
  countLive: 'SELECT count(*) AS n FROM search_snapshots WHERE store_id = ? AND expires_at > ?',
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
    results: unpackResults(r.results),
    total: Number(r.total),
    createdAt: new Date(Number(r.created_at)),
    expiresAt: new Date(Number(r.expires_at)),
  }
}

/** packResults: `["doc:a","doc:b"]` → `{"p":"doc:","r":["a","b"]}` (the shared `type:` prefix once). */
export function packResults(results: string[]): string {
  const first = results[0] ?? ''
  const colon = first.indexOf(':')
  const p = colon < 0 ? '' : first.slice(0, colon + 1)
  if (p && results.every((r) => r.startsWith(p))) return JSON.stringify({ p, r: results.map((r) => r.slice(p.length)) })
  return JSON.stringify({ p: '', r: results })
}

function unpackResults(text: string): string[] {
  const v = JSON.parse(text) as { p: string; r: string[] } | string[]
  // A plain array: a row written before the compact form (snapshots live minutes; no migration).
  if (Array.isArray(v)) return v
  return v.p ? v.r.map((x) => v.p + x) : v.r
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
        packResults(s.results),
        s.total,
        s.createdAt.getTime(),
        s.expiresAt.getTime(),
      ])
    },
    async getSearchSnapshot(storeId, id) {
      const row = await d.get<SnapshotRow>(SQL.get, [storeId, id])
      return row && rowToSnapshot(row)
    },
    async findSearchSnapshot(storeId, q, now) {
      const row = await d.get<SnapshotRow>(SQL.find, [storeId, q.queryHash, q.revision, q.modelId, q.createdSince.getTime(), now.getTime()])
      return row && rowToSnapshot(row)
    },
    async countLiveSearchSnapshots(storeId, now) {
      const row = await d.get<{ n: number | string }>(SQL.countLive, [storeId, now.getTime()])
      return Number(row?.n ?? 0)
    },
    deleteExpiredSearchSnapshots(now, limit) {
      return d.run(SQL.deleteExpired, [now.getTime(), limit])
    },
  }
}
