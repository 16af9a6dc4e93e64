/**
 * PostgreSQL's schema and connection facts: applying or checking the migrations under a
 * per-schema advisory lock (prepareSchema), which connection errors may pass by themselves
 * (unreachable), and URLs as messages may show them (redact).
 *
 * @module
 */
import pg from 'pg'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import {
  MigrationsPendingError,
  migrationsFolder,
  migrationStatus,
  type MigrationStatus,
  type MigrationsMode,
} from '../migrations.ts'
import { datastoreUnreachable } from '../sql/unavailable.ts'

/** The drizzle migrations folder of the PostgreSQL schema. */
export const POSTGRES_MIGRATIONS = migrationsFolder('postgres')

/** How long a request waits for a pooled connection before failing instead of queueing forever. */
export const CONNECT_TIMEOUT_MS = 10_000

/** The advisory lock that serialises migrations of one schema across replicas starting at once. */
const MIGRATION_LOCK = 0x70656d62 // 'pemb'

/**
 * unreachable: an error of connecting that may pass by itself: a refused, reset or timed-out
 * connection, a name not resolving yet, a server starting or shutting down (SQLSTATE
 * 57P01-57P03), out of connections (53300) or a connection exception (class 08); the same
 * classification that makes a running server answer 503 (sql/unavailable.ts). A wrong password
 * (28P01) or a missing database (3D000) will not pass, nor will an error of a statement.
 */
export function unreachable(err: unknown): boolean {
  return datastoreUnreachable(err)
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'the PostgreSQL database'
  }
}

/**
 * prepareSchema applies (auto) or checks (check) the migrations on a dedicated connection. The
 * migration runs under a per-schema advisory lock, so replicas starting together apply it once:
 * the others wait, then find nothing pending. The migrations table sits in the same schema as
 * the tables, so schemas side by side in one database (one per test run, say) migrate apart.
 */
export async function prepareSchema(url: string, mode: MigrationsMode | 'status'): Promise<MigrationStatus> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'pemba-migrate',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  })
  // A connection error surfaces as the pending query's rejection; this keeps it from also being
  // an unhandled 'error' event that would end the process.
  client.on('error', () => {})
  await client.connect()
  try {
    // Migrations may take longer than a request's statement budget; waiting for the lock too.
    await client.query('SET statement_timeout = 0')
    const one = async <T>(text: string, values: unknown[] = []): Promise<T> =>
      Object.values((await client.query(text, values)).rows[0])[0] as T
    const schema = await one<string | null>('SELECT current_schema()')
    if (!schema) {
      throw new Error(
        `${redact(url)}: no schema to keep Pemba's tables in (search_path names no existing schema)`,
      )
    }
    const readStatus = async (): Promise<MigrationStatus> => {
      const table = `${client.escapeIdentifier(schema)}.__drizzle_migrations`
      let newest: number | undefined
      if (await one<string | null>('SELECT to_regclass($1)', [table])) {
        const max = await one<string | null>(`SELECT MAX(created_at)::text FROM ${table}`)
        newest = max === null ? undefined : Number(max)
      }
      return migrationStatus(POSTGRES_MIGRATIONS, newest)
    }
    if (mode !== 'auto') {
      const status = await readStatus()
      if (mode === 'check' && status.pending.length > 0) {
        throw new MigrationsPendingError(`${redact(url)} (schema ${schema})`, status.pending)
      }
      return status
    }
    await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, schema])
    try {
      // Read under the lock: what this process applies, not what a replica applied meanwhile.
      const before = await readStatus()
      await migrate(drizzle({ client }), {
        migrationsFolder: POSTGRES_MIGRATIONS,
        migrationsSchema: schema,
        migrationsTable: '__drizzle_migrations',
      })
      return before
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, schema])
    }
  } finally {
    await client.end()
  }
}
