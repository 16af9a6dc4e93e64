/**
 * The token_issuers table over SQLite: a store's trusted token issuers. SQLite runs one write
 * transaction at a time, so the "no other issuer of this store has this `iss`" check and the
 * upsert cannot interleave with another put.
 *
 * @module
 */
import type Database from 'better-sqlite3'
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
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  }
}

/** SqliteTokenIssuers holds the prepared statements; SqliteDatastore delegates to it. */
export class SqliteTokenIssuers {
  readonly #db: Database.Database
  readonly #s: ReturnType<typeof prepare>

  constructor(db: Database.Database) {
    this.#db = db
    this.#s = prepare(db)
  }

  put(input: TokenIssuerInput, now: Date): TokenIssuerPut {
    const s = this.#s
    const run = this.#db.transaction((): TokenIssuerPut => {
      if (!s.liveStore.get(input.storeId)) return { ok: false, reason: 'store_missing' }
      const other = s.byIssuer.get(input.storeId, input.issuer, input.name) as { name: string } | undefined
      if (other) return { ok: false, reason: 'issuer_taken', by: other.name }
      const existing = s.get.get(input.storeId, input.name) as TokenIssuerRow | undefined
      if (!existing && (s.count.get(input.storeId) as { n: number }).n >= input.limit) {
        return { ok: false, reason: 'limit' }
      }
      const createdAt = existing ? existing.created_at : now.getTime()
      s.upsert.run(input.storeId, input.name, input.issuer, JSON.stringify(input.config), createdAt, now.getTime())
      const record: TokenIssuerRecord = {
        storeId: input.storeId,
        name: input.name,
        issuer: input.issuer,
        config: input.config,
        createdAt: new Date(createdAt),
        updatedAt: now,
      }
      return { ok: true, created: !existing, record }
    })
    // IMMEDIATE takes the write lock before the reads, so two processes on one file take turns.
    return run.immediate()
  }

  get(storeId: string, name: string): TokenIssuerRecord | undefined {
    const row = this.#s.get.get(storeId, name) as TokenIssuerRow | undefined
    return row && rowToIssuer(row)
  }

  list(storeId: string): TokenIssuerRecord[] {
    return (this.#s.list.all(storeId) as TokenIssuerRow[]).map(rowToIssuer)
  }

  delete(storeId: string, name: string): boolean {
    return this.#s.delete.run(storeId, name).changes > 0
  }
}

function prepare(db: Database.Database) {
  return {
    liveStore: db.prepare('SELECT 1 FROM stores WHERE id = ? AND deleted_at IS NULL'),
    byIssuer: db.prepare('SELECT name FROM token_issuers WHERE store_id = ? AND issuer = ? AND name <> ? LIMIT 1'),
    count: db.prepare('SELECT COUNT(*) AS n FROM token_issuers WHERE store_id = ?'),
    get: db.prepare('SELECT * FROM token_issuers WHERE store_id = ? AND name = ?'),
    list: db.prepare('SELECT * FROM token_issuers WHERE store_id = ? ORDER BY name'),
    upsert: db.prepare(
      `INSERT INTO token_issuers (store_id, name, issuer, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (store_id, name) DO UPDATE SET issuer = excluded.issuer, config = excluded.config,
         updated_at = excluded.updated_at`,
    ),
    delete: db.prepare('DELETE FROM token_issuers WHERE store_id = ? AND name = ?'),
  }
}
