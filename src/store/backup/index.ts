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
import { existsSync, rmSync, statSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { migrationStatus } from '../migrations.ts'
import { BACKENDS, chooseBackend } from '../sql/backends.ts'
import { BackupInterrupted, BackupRefused, type BackupDialect } from './dialect.ts'
import {
  BackupFileError,
  BackupWriter,
  FORMAT,
  FORMAT_VERSION,
  readBackup,
  readManifest,
  sealManifest,
  type Manifest,
  type ManifestStore,
  type RowBatches,
} from './format.ts'
import { postgresBackup } from './postgres.ts'
import { sqliteBackup } from './sqlite.ts'
import { TABLES, tableSpec } from './tables.ts'

export { BackupFileError, type Manifest, type ManifestStore, type ManifestTable } from './format.ts'
export { BackupInterrupted, BackupRefused } from './dialect.ts'
export { TABLES, type TableSpec } from './tables.ts'

/** The backends backups support, by SqlBackend name. */
const DIALECTS: readonly BackupDialect[] = [sqliteBackup, postgresBackup]

function dialectFor(url: string): { dialect: BackupDialect; target: object; where: string } {
  const { backend, target } = chooseBackend(url)
  const dialect = DIALECTS.find((d) => d.name === backend.name)
  if (!dialect) throw new BackupRefused(`backups of ${backend.name} databases are not supported`)
  return { dialect, target, where: backend.redactUrl(url) }
}

/**
 * sourceName: the database as the manifest records it, `scheme://user@host:port/database`:
 * no password, and no query string (`?password=…`, `options=…` can carry credentials too).
 * A SQLite URL names a file and nothing else.
 */
export function sourceName(url: string): string {
  if (url.startsWith('sqlite:')) return url
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`
  } catch {
    return 'the database'
  }
}

/** sameFile: `a` and `b` name one file (the same path, or links to the same inode). */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true
  try {
    const [x, y] = [statSync(a), statSync(b)]
    return x.dev === y.dev && x.ino === y.ino
  } catch {
    return false
  }
}

export interface CreateOptions {
  /** Include the decision log (it can be larger than everything else together). */
  withDecisions: boolean
  /** Replace `path` if it exists (by default an existing file is refused). */
  overwrite: boolean
  /** The Pemba version recorded in the manifest. */
  pembaVersion: string
  clock: () => Date
  /**
   * Aborting it (the CLI does on SIGINT/SIGTERM) removes the private scratch directory at once
   * (the snapshot copy and the partial file: a full copy of the database) and stops the backup.
   */
  signal?: AbortSignal
}

/**
 * createBackup writes a consistent snapshot of the database at `url` to `path` while servers
 * keep using it. Refuses a database with pending migrations (its tables would not be the ones
 * the backup lists). The file appears at `path` only once complete.
 */
export async function createBackup(url: string, path: string, options: CreateOptions): Promise<{ manifest: Manifest; bytes: number }> {
  const { dialect, target, where } = dialectFor(url)
  const { signal } = options
  if (dialect.databaseFiles(target).some((f) => sameFile(f, path))) {
    throw new BackupRefused(`${path} is the database being backed up (or one of its files): name another file`)
  }
  if (!existsSync(dirname(resolve(path)))) throw new BackupRefused(`${path}: no such directory`)
  if (!options.overwrite && existsSync(path)) throw new BackupRefused(`${path} exists already: name a new file, or pass --overwrite to replace it`)
  signal?.throwIfAborted()
  // Everything temporary (a copy of a SQLite database, the data before its manifest, the
  // partial file) goes in one directory only its owner can enter (mkdtemp: mode 700), next to
  // the backup so the last step is a rename on one filesystem. An abort removes it at once.
  const scratch = await mkdtemp(join(dirname(resolve(path)), `.${basename(path)}.pemba-backup-`))
  const removeScratch = () => rmSync(scratch, { recursive: true, force: true })
  signal?.addEventListener('abort', removeScratch, { once: true })
  let writer: BackupWriter | undefined
  let snapshot: Awaited<ReturnType<BackupDialect['openSnapshot']>> | undefined
  try {
    snapshot = await dialect.openSnapshot(target, join(scratch, 'snapshot.db'))
    const createdAt = options.clock()
    signal?.throwIfAborted()
    const { applied, pending } = snapshot.migrations
    if (pending.length > 0) {
      throw new BackupRefused(`${where} has ${pending.length} pending migration(s) (${pending.join(', ')}): run 'pemba migrate' against it first`)
    }
    writer = new BackupWriter(path, scratch)
    const stores: ManifestStore[] = []
    for (const spec of TABLES) {
      if (spec.optional && !options.withDecisions) continue
      const col = (name: string) => spec.columns.indexOf(name)
      const [id, name, revision, deleted] = [col('id'), col('name'), col('revision'), col('deleted_at')]
      const store = (row: unknown[]) =>
        stores.push({ id: row[id] as string, name: row[name] as string, revision: row[revision] as number, deleted: row[deleted] !== null })
      const onRow = spec.name === 'stores' ? store : undefined
      await writer.table(spec, untilAborted(snapshot.rows(spec), signal), onRow)
    }
    const manifest = sealManifest({
      format: FORMAT,
      format_version: FORMAT_VERSION,
      pemba_version: options.pembaVersion,
      backend: dialect.name,
      database: sourceName(url),
      migrations: applied,
      created_at: createdAt.toISOString(),
      decision_log: options.withDecisions,
      stores,
      tables: writer.tables,
    })
    signal?.throwIfAborted()
    const { bytes } = await writer.finish(manifest, options.overwrite).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e
      throw new BackupRefused(`${path} appeared while the backup was written: it was left alone; name a new file, or pass --overwrite`)
    })
    writer = undefined
    return { manifest, bytes }
  } catch (e) {
    // Whatever the abort broke (a file removed under the snapshot copy) failed because of it.
    throw signal?.aborted ? signal.reason : e
  } finally {
    await writer?.abort()
    await snapshot?.close()
    signal?.removeEventListener('abort', removeScratch)
    removeScratch()
  }
}

/** The batches, stopping at the first one after `signal` is aborted (with its reason). */
async function* untilAborted(batches: RowBatches, signal: AbortSignal | undefined): RowBatches {
  for await (const batch of batches) {
    signal?.throwIfAborted()
    yield batch
  }
}

export interface RestoreOptions {
  /** Wipe a non-empty database first (in the restore's transaction) instead of refusing it. */
  force: boolean
  /** Aborting it stops the restore at its next batch of rows, rolled back (see restoreBackup). */
  signal?: AbortSignal
}

/**
 * restoreBackup verifies the backup at `path`, then writes it into the database at `url`
 * (migrated first) in one transaction. Refuses a database that holds any row unless `force`,
 * which empties every Pemba table first, the decision log included. A failure rolls the
 * transaction back and removes a SQLite file the restore created; migrations it applied to an
 * existing database stay, and the error says so. `warnings`: what failed after the commit
 * (refreshing statistics), which does not undo the restore.
 */
export async function restoreBackup(
  url: string,
  path: string,
  options: RestoreOptions,
): Promise<{ manifest: Manifest; wiped: boolean; warnings: string[] }> {
  const { dialect, target, where } = dialectFor(url)
  const { signal } = options
  const manifest = await readManifest(path)
  checkReadable(manifest, path)
  await readBackup(path)
  signal?.throwIfAborted()
  const refuse = (found: Record<string, number>) =>
    new BackupRefused(
      `${where} is not empty (${describeOccupied(found)}): restore into an empty database, or pass --force to wipe it first`,
    )
  if (!options.force) {
    const found = await dialect.occupiedBefore(target)
    if (Object.keys(found).length > 0) throw refuse(found)
  }
  const session = await dialect.begin(target)
  let wiped = false
  try {
    // Checked again under the transaction's lock: a server may have written since.
    const found = await session.occupied()
    wiped = Object.keys(found).length > 0
    if (wiped) {
      if (!options.force) throw refuse(found)
      await session.wipe()
    }
    await readBackup(path, async (t) => {
      const loader = await session.load(tableSpec(t.name)!, t.columns)
      return {
        rows: (batch) => (signal?.throwIfAborted(), loader.rows(batch)),
        end: () => (signal?.throwIfAborted(), loader.end()),
      }
    })
    signal?.throwIfAborted()
    await session.commit()
  } catch (e) {
    await session.close()
    await session.discard()
    throw rolledBack(signal?.aborted ? signal.reason : e, where, session)
  }
  const warnings: string[] = []
  try {
    await session.optimize()
  } catch (e) {
    warnings.push(`the restore is committed, but refreshing ${where}'s statistics after it failed: ${(e as Error).message}`)
  } finally {
    await session.close()
  }
  return { manifest, wiped, warnings }
}

/** The error a failed restore reports: what failed, and what state it left the database in. */
function rolledBack(e: unknown, where: string, session: { created: boolean; migrated: readonly string[] }): Error {
  if (e instanceof BackupFileError || (e instanceof BackupRefused && !(e instanceof BackupInterrupted))) {
    if (!session.created && session.migrated.length === 0) return e
  }
  const state = session.created
    ? 'the database file it had created is removed'
    : session.migrated.length > 0
      ? `no row was written, but the ${session.migrated.length} migration(s) applied before it stay applied`
      : 'the database is as it was'
  const why = (e as Error).message
  if (e instanceof BackupInterrupted) return new BackupInterrupted(`${why}: the restore into ${where} was rolled back (${state})`)
  if (e instanceof BackupRefused || e instanceof BackupFileError) return new BackupRefused(`${why} (rolled back: ${state})`)
  return new BackupRefused(`restoring into ${where} failed, and was rolled back (${state}): ${why}`)
}

/** inspectBackup reads the manifest, or with `verify` the whole file, checking every table's checksum. */
export function inspectBackup(path: string, verify: boolean): Promise<Manifest> {
  return verify ? readBackup(path) : readManifest(path)
}

/**
 * checkReadable refuses a backup this Pemba cannot restore: a table or column it does not know
 * (a newer Pemba's), a backend it does not know, or a migration missing from that backend's
 * journal. A backup from an older Pemba restores: its columns are a subset, the rest take their
 * defaults.
 */
function checkReadable(m: Manifest, path: string): void {
  const newer = `was made by Pemba ${m.pemba_version}, whose schema this Pemba does not know`
  for (const t of m.tables) {
    const spec = tableSpec(t.name)
    if (!spec) throw new BackupRefused(`${path} ${newer} (table ${t.name})`)
    const unknown = t.columns.filter((c) => !spec.columns.includes(c))
    if (unknown.length > 0) throw new BackupRefused(`${path} ${newer} (${t.name}.${unknown.join(`, ${t.name}.`)})`)
  }
  const source = BACKENDS.find((b) => b.name === m.backend)
  if (!source) throw new BackupRefused(`${path} ${newer} (a backup of a ${m.backend} database)`)
  // Every migration of the source's backend, as tags (none applied yet: all pending).
  const known = new Set(migrationStatus(source.migrationsFolder, undefined).pending)
  const unknown = m.migrations.filter((tag) => !known.has(tag))
  if (unknown.length > 0) throw new BackupRefused(`${path} ${newer} (migrations ${unknown.join(', ')})`)
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
