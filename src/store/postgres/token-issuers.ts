/**
 * The token_issuers table over PostgreSQL: a store's trusted token issuers. A put locks the
 * store's row first (as a tuple write does), so puts to one store take turns across replicas
 * and the "no other issuer of this store has this `iss`" check cannot race another put.
 *
 * @module
 */
import type pg from 'pg'
import type { TokenIssuerInput, TokenIssuerPut, TokenIssuerRecord } from '../store.ts'

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
  lockLiveStore: 'SELECT 1 FROM stores WHERE id = $1 AND deleted_at IS NULL FOR UPDATE',
  byIssuer: 'SELECT name FROM token_issuers WHERE store_id = $1 AND issuer = $2 AND name <> $3 LIMIT 1',
  count: 'SELECT COUNT(*)::int AS n FROM token_issuers WHERE store_id = $1',
  get: 'SELECT * FROM token_issuers WHERE store_id = $1 AND name = $2',
  list: 'SELECT * FROM token_issuers WHERE store_id = $1 ORDER BY name',
  upsert: `INSERT INTO token_issuers (store_id, name, issuer, config, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (store_id, name) DO UPDATE SET issuer = excluded.issuer, config = excluded.config,
      updated_at = excluded.updated_at`,
  delete: 'DELETE FROM token_issuers WHERE store_id = $1 AND name = $2',
} as const

/** PostgresTokenIssuers runs the queries on the datastore's pool; PostgresDatastore delegates to it. */
export class PostgresTokenIssuers {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async put(input: TokenIssuerInput, now: Date): Promise<TokenIssuerPut> {
    const c = await this.#pool.connect()
    try {
      await c.query('BEGIN')
      const result = await putIn(c, input, now)
      await c.query(result.ok ? 'COMMIT' : 'ROLLBACK')
      return result
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {})
      throw e
    } finally {
      c.release()
    }
  }

  async get(storeId: string, name: string): Promise<TokenIssuerRecord | undefined> {
    const { rows } = await this.#pool.query<TokenIssuerRow>(SQL.get, [storeId, name])
    return rows[0] && rowToIssuer(rows[0])
  }

  async list(storeId: string): Promise<TokenIssuerRecord[]> {
    const { rows } = await this.#pool.query<TokenIssuerRow>(SQL.list, [storeId])
    return rows.map(rowToIssuer)
  }

  async delete(storeId: string, name: string): Promise<boolean> {
    const r = await this.#pool.query(SQL.delete, [storeId, name])
    return (r.rowCount ?? 0) > 0
  }
}

async function putIn(c: pg.PoolClient, input: TokenIssuerInput, now: Date): Promise<TokenIssuerPut> {
  const store = await c.query(SQL.lockLiveStore, [input.storeId])
  if (store.rows.length === 0) return { ok: false, reason: 'store_missing' }
  const other = await c.query<{ name: string }>(SQL.byIssuer, [input.storeId, input.issuer, input.name])
  if (other.rows.length > 0) return { ok: false, reason: 'issuer_taken', by: other.rows[0].name }
  const existing = (await c.query<TokenIssuerRow>(SQL.get, [input.storeId, input.name])).rows[0]
  if (!existing) {
    const { rows } = await c.query<{ n: number }>(SQL.count, [input.storeId])
    if (rows[0].n >= input.limit) return { ok: false, reason: 'limit' }
  }
  const createdAt = existing ? Number(existing.created_at) : now.getTime()
  await c.query(SQL.upsert, [
    input.storeId,
    input.name,
    input.issuer,
    JSON.stringify(input.config),
    createdAt,
    now.getTime(),
  ])
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
