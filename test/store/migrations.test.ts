/**
 * PEMBA_MIGRATIONS on SQLite and the settings around it: `check` compares drizzle's
 * `__drizzle_migrations` with the journal and refuses (without creating or changing the file)
 * while anything is pending. The PostgreSQL twin is in postgres.test.ts and
 * test/e2e/replicas-postgres.test.ts.
 */
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, parseDatabaseUrl } from '../../src/config.ts'
import { openDatastore } from '../../src/server.ts'
import { MIGRATION_FOLDERS } from '../../src/store/sql/backends.ts'
import { MigrationsPendingError, pendingMigrations } from '../../src/store/migrations.ts'
import { SqliteDatastore, checkSqliteMigrations } from '../../src/store/sqlite/index.ts'
import { oldMigrations } from '../helpers/migrations.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-migrations-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('PEMBA_MIGRATIONS=check on SQLite', () => {
  it('refuses a file that does not exist yet, without creating it', () => {
    const file = join(dir, 'missing.db')
    expect(() => checkSqliteMigrations(file)).toThrow(MigrationsPendingError)
    expect(() => checkSqliteMigrations(file)).toThrow(/6 pending migration\(s\) \(0000_init, 0001_expiry_and_access_requests, 0002_audit_and_token_issuers, 0003_decision_log_write_optimized, 0004_authzen, 0005_covering_reads\).*pemba migrate/)
    expect(existsSync(file)).toBe(false)
  })

  it('refuses an in-memory database, which always starts empty', () => {
    expect(() => checkSqliteMigrations(':memory:')).toThrow(MigrationsPendingError)
  })

  it('accepts a migrated file, and openDatastore follows the setting', async () => {
    const file = join(dir, 'migrated.db')
    const config = loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${file}`, PEMBA_MIGRATIONS: 'check' }, argv: [] })
    await expect(openDatastore(config)).rejects.toBeInstanceOf(MigrationsPendingError)
    expect(existsSync(file)).toBe(false)
    await new SqliteDatastore({ filename: file }).close()
    expect(() => checkSqliteMigrations(file)).not.toThrow()
    const ds = await openDatastore(config)
    expect(ds.dialect).toBe('sqlite')
    await ds.close()
  })

  it('counts as pending every journal entry newer than the newest applied one', () => {
    const all = pendingMigrations(MIGRATION_FOLDERS.sqlite, undefined)
    expect(all[0]).toBe('0000_init')
    expect(pendingMigrations(MIGRATION_FOLDERS.sqlite, Number.MAX_SAFE_INTEGER)).toEqual([])
    expect(pendingMigrations(MIGRATION_FOLDERS.postgres, undefined)[0]).toBe('0000_init')
  })
})

describe('upgrading an existing database', () => {
  it('applies the expiry and access-request migration on top of 0000_init, keeping the data', async () => {
    const file = join(dir, 'upgraded.db')
    const db = new Database(file)
    migrate(drizzle(db), { migrationsFolder: oldMigrations('sqlite', 1, join(dir, 'sqlite-0000')) })
    db.prepare("INSERT INTO stores (id, name, created_at, updated_at, revision) VALUES ('01HZZZZZZZZZZZZZZZZZZZZZZZ', 'old', 0, 0, 1)").run()
    db.prepare(
      "INSERT INTO tuples (store_id, object_type, object_id, relation, user_type, user_id, revision, inserted_at) VALUES ('01HZZZZZZZZZZZZZZZZZZZZZZZ', 'doc', '1', 'viewer', 'user', 'anne', 1, 0)",
    ).run()
    db.close()
    expect(() => checkSqliteMigrations(file)).toThrow(/5 pending migration\(s\) \(0001_expiry_and_access_requests, 0002_audit_and_token_issuers, 0003_decision_log_write_optimized, 0004_authzen, 0005_covering_reads\)/)

    const ds = new SqliteDatastore({ filename: file })
    try {
      expect(() => checkSqliteMigrations(file)).not.toThrow()
      const old = await ds.reader('01HZZZZZZZZZZZZZZZZZZZZZZZ', 1, Date.now()).readObjectRelation('doc', '1', 'viewer')
      expect(old.map((t) => [t.userId, t.expiresAt])).toEqual([['anne', undefined]])
      const write = { deletes: [], onDuplicate: 'error' as const, onMissing: 'error' as const }
      const bob = { ...old[0], userId: 'bob', expiresAt: Date.now() + 60_000 }
      expect(await ds.write('01HZZZZZZZZZZZZZZZZZZZZZZZ', { ...write, writes: [bob] }, new Date())).toBe(2)
      expect(await ds.sweepExpired(new Date(Date.now() + 120_000), 10)).toBe(1)
    } finally {
      await ds.close()
    }
  })
})

describe('database settings', () => {
  it('reads PEMBA_MIGRATIONS, the pool size and the statement timeout from env and flags', () => {
    const c = loadConfig({
      env: { PEMBA_MIGRATIONS: 'check', PEMBA_PG_POOL_SIZE: '4' },
      argv: ['--pg-statement-timeout-ms', '250'],
    })
    expect([c.migrations, c.pgPoolSize, c.pgStatementTimeoutMs]).toEqual(['check', 4, 250])
    expect(loadConfig({ env: {}, argv: ['--migrations=auto'] }).migrations).toBe('auto')
    const d = loadConfig({ env: {}, argv: [] })
    expect([d.migrations, d.pgPoolSize, d.pgStatementTimeoutMs]).toEqual(['auto', 10, 5000])
    expect(() => loadConfig({ env: { PEMBA_MIGRATIONS: 'later' }, argv: [] })).toThrow(ConfigError)
    expect(() => loadConfig({ env: { PEMBA_PG_POOL_SIZE: '0' }, argv: [] })).toThrow(/at least 1/)
  })

  it('selects PostgreSQL for postgres:// and postgresql:// URLs', () => {
    expect(parseDatabaseUrl('postgres://pemba:pemba@127.0.0.1:5432/pemba')).toEqual({
      dialect: 'postgres',
      url: 'postgres://pemba:pemba@127.0.0.1:5432/pemba',
    })
    expect(parseDatabaseUrl('postgresql://db.internal/pemba').dialect).toBe('postgres')
    expect(parseDatabaseUrl('sqlite:./data/pemba.db')).toEqual({ dialect: 'sqlite', filename: './data/pemba.db' })
    expect(() => parseDatabaseUrl('mysql://x/y')).toThrow(/postgres:\/\//)
  })
})
