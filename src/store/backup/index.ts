/**
 * Online backup and restore of a whole Pemba database (`pemba backup create|restore|inspect`):
 * every store's models, tuples, changelog, assertions, access requests, token issuers, the
 * system store of API clients' grants, grant usage and decision-log settings; the decision log
 * itself with `withDecisions`. The file format is format.ts's (portable between backends), the
 * consistent read and the transactional write are each backend's (sqlite.ts, postgres.ts).
 *
 * A restore reads the whole file once to verify it before it touches the database, so a corrupt
 * or truncated backup changes nothing; then it writes everything in one transaction, verifying
 * again as it goes (the file could change between the two reads), so a failure half-way leaves
 * the database as it was.
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { migrationStatus } from '../migrations.ts'
import { chooseBackend } from '../sql/backends.ts'
import { BackupRefused, type BackupDialect } from './dialect.ts'
import { BackupFileError, BackupWriter, FORMAT, FORMAT_VERSION, readBackup, readManifest, type Manifest, type ManifestStore } from './format.ts'
import { postgresBackup } from './postgres.ts'
import { sqliteBackup } from './sqlite.ts'
import { TABLES, tableSpec } from './tables.ts'

export { BackupFileError, type Manifest, type ManifestStore, type ManifestTable } from './format.ts'
export { BackupRefused } from './dialect.ts'
export { TABLES, type TableSpec } from './tables.ts'

/** The backends backups support, by SqlBackend name. */
const DIALECTS: readonly BackupDialect[] = [sqliteBackup, postgresBackup]

function dialectFor(url: string): { dialect: BackupDialect; target: object; where: string; migrationsFolder: string } {
  const { backend, target } = chooseBackend(url)
  const dialect = DIALECTS.find((d) => d.name === backend.name)
  if (!dialect) throw new BackupRefused(`backups of ${backend.name} databases are not supported`)
  return { dialect, target, where: backend.redactUrl(url), migrationsFolder: backend.migrationsFolder }
}

export interface CreateOptions {
  /** Include the decision log (it can be larger than everything else together). */
  withDecisions: boolean
  /** Replace `path` if it exists (by default an existing file is refused). */
  overwrite: boolean
  /** The Pemba version recorded in the manifest. */
  pembaVersion: string
  clock: () => Date
}

/**
 * createBackup writes a consistent snapshot of the database at `url` to `path` while servers
 * keep using it. Refuses a database with pending migrations (its tables would not be the ones
 * the backup lists). The file appears at `path` only once complete.
 */
export async function createBackup(url: string, path: string, options: CreateOptions): Promise<{ manifest: Manifest; bytes: number }> {
  const { dialect, target, where } = dialectFor(url)
  if (!options.overwrite && existsSync(path)) throw new BackupRefused(`${path} exists already: name a new file, or pass --overwrite to replace it`)
  if (!existsSync(dirname(resolve(path)))) throw new BackupRefused(`${path}: no such directory`)
  const snapshot = await dialect.openSnapshot(target, `${path}.snapshot-${process.pid}.db`)
  const createdAt = options.clock()
  let writer: BackupWriter | undefined
  try {
    const { applied, pending } = snapshot.migrations
    if (pending.length > 0) {
      throw new BackupRefused(`${where} has ${pending.length} pending migration(s) (${pending.join(', ')}): run 'pemba migrate' against it first`)
    }
    writer = new BackupWriter(path)
    const stores: ManifestStore[] = []
    for (const spec of TABLES) {
      if (spec.optional && !options.withDecisions) continue
      const col = (name: string) => spec.columns.indexOf(name)
      const [id, name, revision, deleted] = [col('id'), col('name'), col('revision'), col('deleted_at')]
      const store = (row: unknown[]) =>
        stores.push({ id: row[id] as string, name: row[name] as string, revision: row[revision] as number, deleted: row[deleted] !== null })
      const onRow = spec.name === 'stores' ? store : undefined
      await writer.table(spec, snapshot.rows(spec), onRow)
    }
    const manifest: Manifest = {
      format: FORMAT,
      format_version: FORMAT_VERSION,
      pemba_version: options.pembaVersion,
      backend: dialect.name,
      database: where,
      migrations: applied,
      created_at: createdAt.toISOString(),
      decision_log: options.withDecisions,
      stores,
      tables: writer.tables,
    }
    const { bytes } = await writer.finish(manifest)
    writer = undefined
    return { manifest, bytes }
  } finally {
    await writer?.abort()
    await snapshot.close()
  }
}

export interface RestoreOptions {
  /** Wipe a non-empty database first (in the restore's transaction) instead of refusing it. */
  force: boolean
}

/**
 * restoreBackup verifies the backup at `path`, then writes it into the database at `url`
 * (migrated first) in one transaction. Refuses a database that holds any row unless `force`,
 * which empties every Pemba table first, the decision log included.
 */
export async function restoreBackup(url: string, path: string, options: RestoreOptions): Promise<{ manifest: Manifest; wiped: boolean }> {
  const { dialect, target, where, migrationsFolder } = dialectFor(url)
  const manifest = await readManifest(path)
  checkReadable(manifest, path, dialect.name, migrationsFolder)
  await readBackup(path)
  const refuse = (found: Record<string, number>) =>
    new BackupRefused(
      `${where} is not empty (${describeOccupied(found)}): restore into an empty database, or pass --force to wipe it first`,
    )
  if (!options.force) {
    const found = await dialect.occupiedBefore(target)
    if (Object.keys(found).length > 0) throw refuse(found)
  }
  const session = await dialect.begin(target)
  try {
    let wiped: boolean
    try {
      // Checked again under the transaction's lock: a server may have written since.
      const found = await session.occupied()
      wiped = Object.keys(found).length > 0
      if (wiped) {
        if (!options.force) throw refuse(found)
        await session.wipe()
      }
      await readBackup(path, (t) => session.load(tableSpec(t.name)!, t.columns))
      await session.commit()
    } catch (e) {
      if (e instanceof BackupRefused || e instanceof BackupFileError) throw e
      throw new BackupRefused(`restoring into ${where} failed, and was rolled back (the database is as it was): ${(e as Error).message}`)
    }
    await session.optimize()
    return { manifest, wiped }
  } finally {
    await session.close()
  }
}

/** inspectBackup reads the manifest, or with `verify` the whole file, checking every table's checksum. */
export function inspectBackup(path: string, verify: boolean): Promise<Manifest> {
  return verify ? readBackup(path) : readManifest(path)
}

/**
 * checkReadable refuses a backup this Pemba cannot restore: a table or column it does not know
 * (a newer Pemba's), or, from the same backend, a migration its journal lacks. A backup from an
 * older Pemba restores: its columns are a subset, the rest take their defaults.
 */
function checkReadable(m: Manifest, path: string, backend: string, migrationsFolder: string): void {
  const newer = `was made by Pemba ${m.pemba_version}, whose schema this Pemba does not know`
  for (const t of m.tables) {
    const spec = tableSpec(t.name)
    if (!spec) throw new BackupRefused(`${path} ${newer} (table ${t.name})`)
    const unknown = t.columns.filter((c) => !spec.columns.includes(c))
    if (unknown.length > 0) throw new BackupRefused(`${path} ${newer} (${t.name}.${unknown.join(`, ${t.name}.`)})`)
  }
  if (m.backend === backend) {
    const known = new Set(migrationStatus(migrationsFolder, undefined).pending)
    const unknown = m.migrations.filter((tag) => !known.has(tag))
    if (unknown.length > 0) throw new BackupRefused(`${path} ${newer} (migrations ${unknown.join(', ')})`)
  }
}

/** `3 stores, and rows in tuples, changelog`. */
function describeOccupied(found: Record<string, number>): string {
  const stores = found.stores ?? 0
  const others = Object.keys(found).filter((t) => t !== 'stores')
  const parts: string[] = []
  if (stores > 0) parts.push(`${stores} store${stores === 1 ? '' : 's'}`)
  if (others.length > 0) parts.push(`rows in ${others.join(', ')}`)
  return parts.join(', and ')
}
