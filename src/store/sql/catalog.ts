/**
 * The catalog ports over SQL, for both dialects: stores (StoreCatalog), authorization models
 * (ModelStore) and assertions (AssertionStore).
 *
 * @module
 */
import type { AuthorizationModel } from '../../model/types.ts'
import { PembaError } from '../../core/errors.ts'
import { decodeCursor, isStringArray } from '../common.ts'
import type { AssertionStore, ModelStore, Page, StoreCatalog, StoreRecord } from '../ports.ts'
import { get, run, type SqlDriver, type Tx } from './driver.ts'
import { purgeDeletedStores } from './purge.ts'

interface StoreRow {
  id: string
  name: string
  created_at: number
  updated_at: number
  deleted_at: number | null
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

/** pageOf maps the first `pageSize` of `pageSize + 1` rows, with the cursor after the last id. */
function pageOf<R, T extends { id: string }>(rows: R[], pageSize: number, map: (r: R) => T): Page<T> {
  const items = rows.slice(0, pageSize).map(map)
  return { items, next: rows.length > pageSize ? JSON.stringify([items[items.length - 1].id]) : '' }
}

const SQL = {
  insertStore: 'INSERT INTO stores (id, name, created_at, updated_at, deleted_at, revision) VALUES (?, ?, ?, ?, NULL, 0)',
  getStore: 'SELECT * FROM stores WHERE id = ? AND deleted_at IS NULL',
  listStores: 'SELECT * FROM stores WHERE deleted_at IS NULL AND id > ? ORDER BY id LIMIT ?',
  listStoresByName: 'SELECT * FROM stores WHERE deleted_at IS NULL AND name = ? AND id > ? ORDER BY id LIMIT ?',
  deleteStore: 'UPDATE stores SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL',
  /** Taken (for update) before a model or assertions are written, as every write takes it. */
  liveStore: 'SELECT 1 AS found FROM stores WHERE id = ? AND deleted_at IS NULL',
  insertModel:
    'INSERT INTO authorization_models (store_id, id, schema_version, model, created_at) VALUES (?, ?, ?, ?, ?)',
  readModel: 'SELECT model FROM authorization_models WHERE store_id = ? AND id = ?',
  latestModelId: 'SELECT id FROM authorization_models WHERE store_id = ? ORDER BY id DESC LIMIT 1',
  /** Without a cursor: no sentinel id to compare with (collations differ on what sorts last). */
  listModels: 'SELECT id, model FROM authorization_models WHERE store_id = ? ORDER BY id DESC LIMIT ?',
  listModelsAfter: 'SELECT id, model FROM authorization_models WHERE store_id = ? AND id < ? ORDER BY id DESC LIMIT ?',
  writeAssertions: `INSERT INTO assertions (store_id, model_id, assertions) VALUES (?, ?, ?)
    ON CONFLICT (store_id, model_id) DO UPDATE SET assertions = excluded.assertions`,
  readAssertions: 'SELECT assertions FROM assertions WHERE store_id = ? AND model_id = ?',
  /**
   * A store's counts. Its tuples live at an instant are counted up to a limit (the last
   * parameter: the cap plus one, so that reaching it tells there are more): a LIMIT subquery, so
   * the cost is bounded however large the store is (SQLite reads it from the covering index
   * tuples_by_object, which holds expires_at; PostgreSQL reads at most that many rows).
   */
  storeStats: `SELECT
    (SELECT COUNT(*) FROM authorization_models WHERE store_id = ?) AS model_count,
    (SELECT id FROM authorization_models WHERE store_id = ? ORDER BY id DESC LIMIT 1) AS latest_model_id,
    (SELECT MAX(created_at) FROM changelog WHERE store_id = ?) AS last_change_at,
    (SELECT COUNT(*) FROM (SELECT 1 AS live FROM tuples
      WHERE store_id = ? AND (expires_at IS NULL OR expires_at > ?) LIMIT ?) counted) AS live_tuples`,
} as const

interface StatsRow {
  model_count: number | string
  latest_model_id: string | null
  last_change_at: number | string | null
  live_tuples: number | string
}

/**
 * inLiveStore runs `sql` after taking the store row as every write does (PostgreSQL: for update),
 * so a model or assertions written while the store is being deleted either commit before the
 * deletion or are refused after it: store_id_not_found, nothing written.
 */
function* inLiveStore(d: SqlDriver, storeId: string, sql: string, params: readonly unknown[]): Tx<void> {
  if (!(yield* get(SQL.liveStore + d.forUpdate, [storeId]))) throw new PembaError('store_id_not_found', 'Store ID not found')
  yield* run(sql, params)
}

/** The catalog ports (StoreCatalog, ModelStore, AssertionStore) over `d`. */
export function sqlCatalog(d: SqlDriver): StoreCatalog & ModelStore & AssertionStore {
  return {
    async createStore(id, name, now) {
      await d.run(SQL.insertStore, [id, name, now.getTime(), now.getTime()])
      return { id, name, createdAt: now, updatedAt: now, deletedAt: null }
    },

    async getStore(id) {
      const row = await d.get<StoreRow>(SQL.getStore, [id])
      return row && rowToStore(row)
    },

    async storeStats(id, now, tupleCountCap) {
      const cap = Math.max(0, Math.floor(tupleCountCap))
      const r = (await d.get<StatsRow>(SQL.storeStats, [id, id, id, id, now, cap + 1]))!
      const live = Number(r.live_tuples)
      return {
        modelCount: Number(r.model_count),
        latestModelId: r.latest_model_id ?? undefined,
        tupleCount: Math.min(live, cap),
        tupleCountCapped: live > cap,
        lastChangeAt: r.last_change_at === null ? undefined : new Date(Number(r.last_change_at)),
      }
    },

    async listStores(q) {
      const after = decodeCursor(q.after, isStringArray(1))?.[0] ?? ''
      const rows =
        q.name !== undefined
          ? await d.all<StoreRow>(SQL.listStoresByName, [q.name, after, q.pageSize + 1])
          : await d.all<StoreRow>(SQL.listStores, [after, q.pageSize + 1])
      return pageOf(rows, q.pageSize, rowToStore)
    },

    async deleteStore(id, now) {
      await d.run(SQL.deleteStore, [now.getTime(), now.getTime(), id])
    },

    purgeDeletedStores: (deletedBefore, limit, beforeRemove) => purgeDeletedStores(d, deletedBefore, limit, beforeRemove),

    async writeModel(storeId, model, now) {
      const { id, ...body } = model
      const params = [storeId, id, model.schema_version, JSON.stringify(body), now.getTime()]
      await d.transaction(() => inLiveStore(d, storeId, SQL.insertModel, params))
    },

    async readModel(storeId, id) {
      const row = await d.get<{ model: string }>(SQL.readModel, [storeId, id])
      return row === undefined ? undefined : { id, ...JSON.parse(row.model) }
    },

    async latestModelId(storeId) {
      return (await d.get<{ id: string }>(SQL.latestModelId, [storeId]))?.id
    },

    async listModels(storeId, q): Promise<Page<AuthorizationModel>> {
      const after = decodeCursor(q.after, isStringArray(1))?.[0]
      const rows =
        after === undefined
          ? await d.all<{ id: string; model: string }>(SQL.listModels, [storeId, q.pageSize + 1])
          : await d.all<{ id: string; model: string }>(SQL.listModelsAfter, [storeId, after, q.pageSize + 1])
      return pageOf(rows, q.pageSize, (r): AuthorizationModel => ({ id: r.id, ...JSON.parse(r.model) }))
    },

    async writeAssertions(storeId, modelId, assertions) {
      const params = [storeId, modelId, JSON.stringify(assertions)]
      await d.transaction(() => inLiveStore(d, storeId, SQL.writeAssertions, params))
    },

    async readAssertions(storeId, modelId) {
      const row = await d.get<{ assertions: string }>(SQL.readAssertions, [storeId, modelId])
      return row === undefined ? undefined : JSON.parse(row.assertions)
    },
  }
}
