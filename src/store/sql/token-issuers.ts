/**
 * TokenIssuerStore (service/token-issuer-store.ts) over SQL, for both dialects. A put reads the
 * store's row for update first (as a tuple write does), so puts to one store take turns (across
 * replicas on PostgreSQL; SQLite runs one write transaction at a time) and the "no other issuer
 * of this store has this `iss`" check cannot race another put.
 *
 * @module
 */
import type {
  TokenIssuerInput,
  TokenIssuerPut,
  TokenIssuerRecord,
  TokenIssuerStore,
} from '../../service/token-issuer-store.ts'
import { get, run, type SqlDriver, type Tx } from './driver.ts'

interface TokenIssuerRow {
  store_id: string
  name: string
  issuer: string
  config: string
  created_at: number
  updated_at: number
}

function rowToIssuer(r: TokenIssuerRow): TokenIssuerRecord {
  return {
    storeId: r.store_id,
    name: r.name,
    issuer: r.issuer,
    config: JSON.parse(r.config) as Record<string, unknown>,
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
  }
}

const SQL = {
  liveStore: 'SELECT 1 AS found FROM stores WHERE id = ? AND deleted_at IS NULL',
  byIssuer: 'SELECT name FROM token_issuers WHERE store_id = ? AND issuer = ? AND name <> ? LIMIT 1',
  count: 'SELECT COUNT(*) AS n FROM token_issuers WHERE store_id = ?',
  get: 'SELECT * FROM token_issuers WHERE store_id = ? AND name = ?',
  list: 'SELECT * FROM token_issuers WHERE store_id = ? ORDER BY name',
  upsert: `INSERT INTO token_issuers (store_id, name, issuer, config, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (store_id, name) DO UPDATE SET issuer = excluded.issuer, config = excluded.config,
      updated_at = excluded.updated_at`,
  delete: 'DELETE FROM token_issuers WHERE store_id = ? AND name = ?',
} as const

function* put(d: SqlDriver, input: TokenIssuerInput, now: Date): Tx<TokenIssuerPut> {
  if (!(yield* get(SQL.liveStore + d.forUpdate, [input.storeId]))) return { ok: false, reason: 'store_missing' }
  const other = yield* get<{ name: string }>(SQL.byIssuer, [input.storeId, input.issuer, input.name])
  if (other) return { ok: false, reason: 'issuer_taken', by: other.name }
  const existing = yield* get<TokenIssuerRow>(SQL.get, [input.storeId, input.name])
  if (!existing && Number((yield* get<{ n: number }>(SQL.count, [input.storeId]))!.n) >= input.limit) {
    return { ok: false, reason: 'limit' }
  }
  const createdAt = existing ? Number(existing.created_at) : now.getTime()
  const config = JSON.stringify(input.config)
  yield* run(SQL.upsert, [input.storeId, input.name, input.issuer, config, createdAt, now.getTime()])
  const record: TokenIssuerRecord = {
    storeId: input.storeId,
    name: input.name,
    issuer: input.issuer,
    config: input.config,
    createdAt: new Date(createdAt),
    updatedAt: now,
  }
  return { ok: true, created: !existing, record }
}

/** The token-issuer port over `d`. */
export function sqlTokenIssuers(d: SqlDriver): TokenIssuerStore {
  return {
    putTokenIssuer: (input, now) => d.transaction(() => put(d, input, now)),
    async getTokenIssuer(storeId, name) {
      const row = await d.get<TokenIssuerRow>(SQL.get, [storeId, name])
      return row && rowToIssuer(row)
    },
    async listTokenIssuers(storeId) {
      return (await d.all<TokenIssuerRow>(SQL.list, [storeId])).map(rowToIssuer)
    },
    async deleteTokenIssuer(storeId, name) {
      return (await d.run(SQL.delete, [storeId, name])) > 0
    },
  }
}
