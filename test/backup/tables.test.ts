/**
 * The tables a backup holds (src/store/backup/tables.ts) are exactly the tables of both
 * migrated schemas: the same names, columns, column types and primary keys. A migration that
 * adds a table or a column fails here until backups carry it.
 */
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { NOT_BACKED_UP, TABLES } from '../../src/store/backup/tables.ts'
import { postgresBackend } from '../../src/store/postgres/index.ts'
import { sqliteBackend } from '../../src/store/sqlite/index.ts'
import { createTestSchema, describePostgres, probePostgres } from '../helpers/postgres.ts'

/** A table as both databases describe it: columns by name with their type, and the key in order. */
type Shape = Record<string, { columns: Record<string, string>; key: string[] }>

const expected: Shape = Object.fromEntries(
  [...TABLES, ...NOT_BACKED_UP].map((t) => [t.name, { columns: Object.fromEntries(t.columns.map((c, i) => [c, t.types[i]])), key: [...t.key] }]),
)

describe('the tables of a backup', () => {
  it('are those of the migrated SQLite schema', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pemba-backup-tables-'))
    try {
      const filename = join(dir, 'schema.db')
      await sqliteBackend.migrate({ filename })
      const db = new Database(filename, { readonly: true })
      const shape: Shape = {}
      const names = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__drizzle_migrations'")
        .pluck()
        .all() as string[]
      for (const name of names) {
        const info = db.prepare(`PRAGMA table_info("${name}")`).all() as { name: string; type: string; pk: number }[]
        const type = (t: string) => ({ text: 'text', integer: 'int', real: 'real' })[t.toLowerCase()] ?? t
        shape[name] = {
          columns: Object.fromEntries(info.map((c) => [c.name, type(c.type)])),
          key: info.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name),
        }
      }
      db.close()
      expect(shape).toEqual(expected)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

const target = await probePostgres()
describePostgres('the tables of a backup on PostgreSQL', target, () => {
  it('are those of the migrated PostgreSQL schema', async () => {
    const schema = await createTestSchema(target.url!)
    const client = new pg.Client({ connectionString: schema.url })
    try {
      await postgresBackend.migrate({ url: schema.url })
      await client.connect()
      const columns = await client.query<{ table: string; column: string; type: string }>(
        `SELECT table_name AS table, column_name AS column, data_type AS type FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> '__drizzle_migrations'`,
      )
      const keys = await client.query<{ table: string; column: string }>(
        `SELECT k.table_name AS table, k.column_name AS column FROM information_schema.table_constraints c
         JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema
         WHERE c.table_schema = current_schema() AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.table_name, k.ordinal_position`,
      )
      const type = (t: string) => ({ text: 'text', bigint: 'int', integer: 'int', 'double precision': 'real' })[t] ?? t
      const shape: Shape = {}
      for (const c of columns.rows) (shape[c.table] ??= { columns: {}, key: [] }).columns[c.column] = type(c.type)
      for (const k of keys.rows) if (shape[k.table]) shape[k.table].key.push(k.column)
      expect(shape).toEqual(expected)
    } finally {
      await client.end().catch(() => {})
      await schema.drop()
    }
  })
})
