/**
 * Backups of PostgreSQL. The snapshot is one `REPEATABLE READ READ ONLY` transaction: every
 * table is streamed out of the same MVCC snapshot with `COPY (SELECT … ORDER BY key) TO STDOUT`
 * (pg-copy-streams), while the servers keep reading and writing; a read-only repeatable-read
 * transaction takes no locks that block them. COPY's text format is decoded here into the
 * backup's portable rows (tables.ts's column types).
 *
 * A restore migrates the database, then in one transaction locks every Pemba table against
 * writers (EXCLUSIVE: readers go on), checks it is empty and loads each table with `COPY … FROM
 * STDIN`; the planner's statistics are refreshed (ANALYZE) after the commit. With `--force` it
 * empties the tables first with TRUNCATE, whose ACCESS EXCLUSIVE lock blocks readers too until
 * the restore commits or rolls back (the servers are meant to be stopped for a restore; DELETE
 * would keep readers going but rewrite every row of a large database). The migrations are not
 * part of the transaction: a failed restore leaves them applied, and says so.
 *
 * @module
 */
import { once } from 'node:events'
import pg from 'pg'
import { from as copyFrom, to as copyTo } from 'pg-copy-streams'
import { migrationStatus } from '../migrations.ts'
import { postgresBackend, type PostgresTarget } from '../postgres/index.ts'
import { SNAPSHOT_BATCH, type BackupDialect, type RestoreSession, type Snapshot } from './dialect.ts'
import type { TableLoader } from './format.ts'
import { quoteName, selectRows, TABLES, type ColumnType, type TableSpec } from './tables.ts'

const ALL_TABLES = TABLES.map((t) => quoteName(t.name)).join(', ')

async function connect(target: object, application: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: (target as PostgresTarget).url, application_name: application })
  // A lost connection rejects the pending query; this keeps it from also being an unhandled event.
  client.on('error', () => {})
  await client.connect()
  return client
}

/** The tables of the connection's schema that hold rows: `stores` with its count, the others with 1. */
async function occupied(client: pg.Client): Promise<Record<string, number>> {
  const found: Record<string, number> = {}
  const { rows } = await client.query<{ name: string }>(
    'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ANY($1)',
    [TABLES.map((t) => t.name)],
  )
  const present = new Set(rows.map((r) => r.name))
  for (const t of TABLES) {
    if (!present.has(t.name)) continue
    const table = quoteName(t.name)
    const sql = t.name === 'stores' ? `SELECT COUNT(*)::int AS n FROM ${table}` : `SELECT COUNT(*)::int AS n FROM (SELECT 1 FROM ${table} LIMIT 1) x`
    const n = (await client.query<{ n: number }>(sql)).rows[0].n
    if (n > 0) found[t.name] = n
  }
  return found
}

/** COPY's text format: `\N` is null; a backslash escapes \\, \n, \r, \t, \b, \f, \v. */
const UNESCAPE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' }

function decodeField(field: string, type: ColumnType): unknown {
  if (field === '\\N') return null
  if (type !== 'text') return Number(field)
  return field.includes('\\') ? field.replace(/\\(.)/gs, (_, c: string) => UNESCAPE[c] ?? c) : field
}

/** A value as a field of COPY's text format (the inverse of decodeField). */
function encodeField(value: unknown): string {
  if (value === null || value === undefined) return '\\N'
  if (typeof value === 'number') return String(value)
  return String(value).replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'))
}

class PostgresSnapshot implements Snapshot {
  constructor(
    readonly client: pg.Client,
    readonly migrations: { applied: string[]; pending: string[] },
  ) {}

  async *rows(spec: TableSpec): AsyncGenerator<unknown[][]> {
    const stream = this.client.query(copyTo(`COPY (${selectRows(spec)}) TO STDOUT`))
    // Bytes, not text: pg-copy-streams hands over CopyData as it arrives from the socket, so a
    // chunk can end inside a row and inside a multi-byte character. Only whole rows are decoded
    // (a row never holds a raw newline: COPY escapes it, and 0x0a is never part of a UTF-8
    // multi-byte sequence), so a character split between two chunks is decoded whole.
    let rest: Buffer | undefined
    let batch: unknown[][] = []
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const buf = rest ? Buffer.concat([rest, chunk]) : chunk
      let start = 0
      for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        const fields = buf.toString('utf8', start, nl).split('\t')
        const row = new Array<unknown>(fields.length)
        for (let i = 0; i < fields.length; i++) row[i] = decodeField(fields[i], spec.types[i])
        batch.push(row)
        start = nl + 1
      }
      rest = start < buf.length ? buf.subarray(start) : undefined
      if (batch.length >= SNAPSHOT_BATCH) {
        yield batch
        batch = []
      }
    }
    if (rest) throw new Error(`COPY of ${spec.name} ended inside a row`)
    if (batch.length > 0) yield batch
  }

  /** Ends the connection, and so the read-only transaction, even in the middle of a COPY. */
  async close(): Promise<void> {
    await this.client.end()
  }
}

class PostgresRestore implements RestoreSession {
  readonly created = false

  constructor(
    readonly client: pg.Client,
    readonly migrated: readonly string[],
  ) {}

  occupied(): Promise<Record<string, number>> {
    return occupied(this.client)
  }

  /** TRUNCATE: from here until the commit or rollback, readers of these tables wait too. */
  async wipe(): Promise<void> {
    await this.client.query(`TRUNCATE ${ALL_TABLES}`)
  }

  async load(spec: TableSpec, columns: readonly string[]): Promise<TableLoader> {
    const stream = this.client.query(copyFrom(`COPY ${quoteName(spec.name)} (${columns.map(quoteName).join(', ')}) FROM STDIN`))
    let failed: Error | undefined
    const failure = new Promise<never>((_, reject) =>
      stream.once('error', (e) => {
        failed = e
        reject(e)
      }),
    )
    failure.catch(() => {})
    return {
      async rows(batch) {
        if (failed) throw failed
        let text = ''
        for (const row of batch) {
          for (let i = 0; i < row.length; i++) text += (i === 0 ? '' : '\t') + encodeField(row[i])
          text += '\n'
        }
        if (!stream.write(text)) await Promise.race([once(stream, 'drain'), failure])
      },
      async end() {
        if (failed) throw failed
        stream.end()
        await Promise.race([once(stream, 'finish'), failure])
      },
    }
  }

  async commit(): Promise<void> {
    await this.client.query('COMMIT')
  }

  /** A bulk load leaves the planner without statistics for the new rows until autovacuum runs. */
  async optimize(): Promise<void> {
    await this.client.query(`ANALYZE ${ALL_TABLES}`)
  }

  /**
   * Ends the connection: PostgreSQL rolls back a transaction whose connection ends, even one
   * stopped in the middle of a COPY (where a ROLLBACK would wait behind the COPY forever).
   */
  async close(): Promise<void> {
    await this.client.end()
  }

  /** A server's database is never created by a restore: nothing to remove. */
  async discard(): Promise<void> {}
}

export const postgresBackup: BackupDialect = {
  name: postgresBackend.name,

  async openSnapshot(target) {
    const client = await connect(target, 'pemba-backup')
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      // A table's COPY can take longer than any request's budget, and the snapshot stays open
      // between tables while the file is written.
      await client.query('SET LOCAL statement_timeout = 0')
      await client.query('SET LOCAL idle_in_transaction_session_timeout = 0')
      // The first query fixes the snapshot: the migrations are read from it too.
      const one = async (sql: string) => Object.values((await client.query(sql)).rows[0])[0] as string | null
      const table = await one("SELECT to_regclass(quote_ident(current_schema()) || '.__drizzle_migrations')::text")
      const newest = table === null ? null : await one(`SELECT MAX(created_at)::text FROM ${table}`)
      const migrations = migrationStatus(postgresBackend.migrationsFolder, newest === null ? undefined : Number(newest))
      return new PostgresSnapshot(client, migrations)
    } catch (e) {
      await client.end().catch(() => {})
      throw e
    }
  },

  async occupiedBefore(target) {
    const client = await connect(target, 'pemba-restore')
    try {
      return await occupied(client)
    } finally {
      await client.end()
    }
  },

  databaseFiles: () => [],

  async begin(target) {
    const migrated = await postgresBackend.migrate(target as PostgresTarget)
    const client = await connect(target, 'pemba-restore')
    try {
      await client.query('BEGIN')
      await client.query('SET LOCAL statement_timeout = 0')
      // Servers may go on reading (until a --force TRUNCATE); none writes until the restore commits or rolls back.
      await client.query(`LOCK TABLE ${ALL_TABLES} IN EXCLUSIVE MODE`)
    } catch (e) {
      await client.end().catch(() => {})
      throw e
    }
    return new PostgresRestore(client, migrated)
  },
}
