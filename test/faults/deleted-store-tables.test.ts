/**
 * The purge of deleted stores (src/store/sql/purge.ts) removes the rows of every table in
 * STORE_TABLES. Here that list is tied to both migrated schemas: every table with a `store_id`
 * column is in it, or named below as not holding a store's own rows, and every table in it
 * exists with a `store_id` column. A migration that adds a per-store table fails here until the
 * purge (and the deleted-store tests, which count rows through STORE_TABLES) covers it.
 */
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { postgresBackend } from '../../src/store/postgres/index.ts'
import { STORE_TABLES } from '../../src/store/sql/purge.ts'
import { sqliteBackend } from '../../src/store/sqlite/index.ts'
import { createTestSchema, describePostgres, probePostgres } from '../helpers/postgres.ts'

/**
 * Tables with a `store_id` column whose rows are not a store's own, so the purge leaves them:
 * none today. A table named here must say why (e.g. it outlives the store on purpose).
 */
const NOT_PER_STORE: readonly string[] = []

/** What the schema must show: the purged tables and the exempt ones, sorted. */
const expected = [...STORE_TABLES, ...NOT_PER_STORE].sort()

describe('the tables a deleted store is purged from', () => {
  it('are no table twice, and none is both purged and exempt', () => {
    expect(new Set(expected).size).toBe(expected.length)
  })

  it('are every table with a store_id column of the migrated SQLite schema', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pemba-purge-tables-'))
    try {
      const filename = join(dir, 'schema.db')
      await sqliteBackend.migrate({ filename })
      const db = new Database(filename, { readonly: true })
      try {
        const names = db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
          .pluck()
          .all() as string[]
        // The check would pass on an empty schema: the known per-store tables must be there.
        expect(names).toContain('tuples')
        const withStoreId = names.filter((name) =>
          (db.prepare(`PRAGMA table_info("${name}")`).all() as { name: string }[]).some((c) => c.name === 'store_id'),
        )
        expect(withStoreId.sort()).toEqual(expected)
      } finally {
        db.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

const target = await probePostgres()
describePostgres('the tables a deleted store is purged from, on PostgreSQL', target, () => {
  it('are every table with a store_id column of the migrated PostgreSQL schema', async () => {
    const schema = await createTestSchema(target.url!)
    const client = new pg.Client({ connectionString: schema.url })
    try {
      await postgresBackend.migrate({ url: schema.url })
      await client.connect()
      const all = await client.query<{ table: string }>(
        `SELECT table_name AS table FROM information_schema.tables WHERE table_schema = current_schema()`,
      )
      expect(all.rows.map((r) => r.table)).toContain('tuples')
      const withStoreId = await client.query<{ table: string }>(
        `SELECT table_name AS table FROM information_schema.columns
         WHERE table_schema = current_schema() AND column_name = 'store_id' ORDER BY table_name`,
      )
      expect(withStoreId.rows.map((r) => r.table).sort()).toEqual(expected)
    } finally {
      await client.end().catch(() => {})
      await schema.drop()
    }
  })
})
