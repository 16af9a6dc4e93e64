/**
 * The backup file: one portable, logical format for every backend, so a backup of SQLite
 * restores into PostgreSQL and back. It is gzip (two members, which `gunzip`/`zcat` read as one
 * stream) of JSON Lines:
 *
 *     {"format":"pemba-backup","format_version":1,"pemba_version":…,"tables":[…]}   ← the manifest
 *     {"table":"stores","columns":["id","name",…]}                                   ← a table's header
 *     ["01JB…","prod",1764979200000,…]                                              ← its rows
 *     …
 *
 * The manifest comes first (`zcat backup.gz | head -1` shows it; `pemba backup inspect` reads
 * only that far), so the data is written to a temporary gzip first and appended behind the
 * manifest's own gzip member once the counts and checksums are known. A table's `sha256` is
 * over its row lines exactly as stored, each with its newline; its rows are in primary-key
 * order and its values in the column order of tables.ts, so equal data gives equal lines and
 * checksums on either backend.
 *
 * A reader verifies as it goes (readBackup): gzip's own CRC and length, each table's row count
 * and checksum against the manifest, the tables in the manifest's order, nothing after them.
 * Anything wrong is a BackupFileError naming the file and what is wrong.
 *
 * @module
 */
import { createHash, type Hash } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { link, open, rename, rm, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { constants, createGunzip, createGzip, gzipSync } from 'node:zlib'
import type { TableSpec } from './tables.ts'

export const FORMAT = 'pemba-backup'
export const FORMAT_VERSION = 1

/**
 * The gzip level: on the benchmark data set's rows, 3 makes a file 13% larger than the default
 * 6 in half the time (both about 13 times smaller than the JSON: rows repeat a handful of ids
 * and relations).
 */
const GZIP_LEVEL = 3

/** A backup holds every store's whole authorization data: readable by its owner only. */
const FILE_MODE = 0o600

/** One store as of the snapshot: its revision is the last write the backup holds. */
export interface ManifestStore {
  id: string
  name: string
  revision: number
  deleted: boolean
}

/** One table of the backup: its columns, how many rows, and the sha256 of its row lines. */
export interface ManifestTable {
  name: string
  columns: string[]
  rows: number
  sha256: string
}

export interface Manifest {
  format: typeof FORMAT
  format_version: number
  /** The Pemba that wrote it (package.json's version). */
  pemba_version: string
  /** The source's backend (`sqlite`, `postgres`). */
  backend: string
  /** Where it came from: `postgres://user@host:5432/db` (no password, no query string), `sqlite:<file>`. */
  database: string
  /** The source's applied migrations (its backend's journal tags), oldest first. */
  migrations: string[]
  /** When the snapshot was taken (RFC 3339). */
  created_at: string
  /** Whether the decision log is included (`--with-decisions`). */
  decision_log: boolean
  stores: ManifestStore[]
  tables: ManifestTable[]
  /**
   * The sha256 of the manifest's JSON without this field (its last): an edited or damaged
   * manifest is refused like a damaged table. Like every checksum here it detects corruption
   * and careless edits, not tampering: whoever can write the file can recompute them all.
   */
  manifest_sha256: string
}

/** sealManifest returns `m` with its manifest_sha256 (see Manifest). */
export function sealManifest(m: Omit<Manifest, 'manifest_sha256'>): Manifest {
  const { manifest_sha256: _, ...rest } = m as Manifest
  return { ...rest, manifest_sha256: createHash('sha256').update(JSON.stringify(rest)).digest('hex') }
}

/** BackupFileError: the file is not a complete, intact Pemba backup (or cannot be read). */
export class BackupFileError extends Error {
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`)
    this.name = 'BackupFileError'
  }
}

/** A table's rows as a snapshot reads them: arrays of column values, a batch at a time. */
export type RowBatches = AsyncIterable<unknown[][]>

/**
 * BackupWriter writes the data part of a backup (to `data.gz` in `scratch`, a private directory
 * next to `path`, on the same filesystem), then `finish` puts the manifest in front of it and
 * moves the result to `path`. Nothing appears at `path` until the whole backup is written and
 * flushed to disk.
 */
export class BackupWriter {
  readonly #path: string
  readonly #dataPath: string
  readonly #gzip = createGzip({ level: GZIP_LEVEL })
  readonly #file: Writable
  readonly #done: Promise<void>
  readonly tables: ManifestTable[] = []

  readonly #scratch: string

  constructor(path: string, scratch: string) {
    this.#path = path
    this.#scratch = scratch
    this.#dataPath = join(scratch, 'data.gz')
    this.#file = createWriteStream(this.#dataPath, { flags: 'wx', mode: FILE_MODE })
    this.#done = pipeline(this.#gzip, this.#file)
    // A failed write rejects #done; keep that from being unhandled until someone awaits it.
    this.#done.catch(() => {})
  }

  /** table writes one table's header and rows, returning what the manifest says of it. */
  async table(spec: TableSpec, batches: RowBatches, onRow?: (row: unknown[]) => void): Promise<ManifestTable> {
    await this.#write(JSON.stringify({ table: spec.name, columns: spec.columns }) + '\n')
    const hash = createHash('sha256')
    let rows = 0
    for await (const batch of batches) {
      let text = ''
      for (const row of batch) {
        text += JSON.stringify(row) + '\n'
        onRow?.(row)
      }
      rows += batch.length
      hash.update(text)
      await this.#write(text)
    }
    const entry: ManifestTable = { name: spec.name, columns: [...spec.columns], rows, sha256: hash.digest('hex') }
    this.tables.push(entry)
    return entry
  }

  async #write(text: string): Promise<void> {
    if (!this.#gzip.write(text)) await Promise.race([once(this.#gzip, 'drain'), this.#done])
  }

  /**
   * finish writes `path`: the manifest's gzip member, then the data; flushed, then moved into
   * place. Without `overwrite` it is linked in, which fails (EEXIST) if `path` appeared since the
   * caller looked, instead of replacing it; then the directory is flushed too, so the new name
   * survives a crash.
   */
  async finish(manifest: Manifest, overwrite: boolean): Promise<{ bytes: number }> {
    this.#gzip.end()
    await this.#done
    const partial = join(this.#scratch, 'backup.partial')
    try {
      const out = createWriteStream(partial, { flags: 'wx', mode: FILE_MODE })
      out.write(gzipSync(JSON.stringify(manifest) + '\n', { level: constants.Z_BEST_COMPRESSION }))
      await pipeline(createReadStream(this.#dataPath), out)
      const handle = await open(partial, 'r+')
      let bytes: number
      try {
        await handle.sync()
        bytes = (await handle.stat()).size
      } finally {
        await handle.close()
      }
      if (overwrite) {
        await rename(partial, this.#path)
      } else {
        await link(partial, this.#path)
        await unlink(partial)
      }
      const dir = await open(dirname(this.#path), 'r')
      try {
        await dir.sync()
      } finally {
        await dir.close()
      }
      return { bytes }
    } finally {
      await rm(partial, { force: true })
      await rm(this.#dataPath, { force: true })
    }
  }

  /** abort removes the temporary data (after a failure). */
  async abort(): Promise<void> {
    this.#gzip.destroy()
    await this.#done.catch(() => {})
    await rm(this.#dataPath, { force: true })
  }
}

/** Where restored rows go: one loader per table, fed batches of parsed rows. */
export interface TableLoader {
  rows(batch: unknown[][]): Promise<void>
  end(): Promise<void>
}

/** What readBackup hands each table to, when it is given one (a restore); none: verify only. */
export type LoaderFactory = (spec: ManifestTable) => Promise<TableLoader>

/** How many row lines readBackup hands a loader at once. */
const BATCH = 2000

/**
 * readManifest reads the first line of a backup only: its manifest, checked to be a Pemba
 * backup of a format this version reads.
 */
export async function readManifest(path: string): Promise<Manifest> {
  const input = openBackup(path)
  try {
    for await (const line of lines(input.stream, path)) return parseManifest(path, line)
    throw new BackupFileError(path, 'is empty: not a Pemba backup')
  } finally {
    input.close()
  }
}

/**
 * readBackup reads the whole file, verifying every table's row count and sha256 against the
 * manifest, and hands the rows to `load`'s loaders when given (parsed, in batches). Throws
 * BackupFileError at the first problem; a loader has then seen only rows of tables whose
 * checksum was not yet known to be wrong, so a restore runs readBackup once without loaders
 * before it writes anything, and again inside its transaction.
 */
export async function readBackup(path: string, load?: LoaderFactory): Promise<Manifest> {
  const input = openBackup(path)
  try {
    let manifest: Manifest | undefined
    let current: { spec: ManifestTable; hash: Hash; rows: number; loader?: TableLoader; batch: unknown[][]; stores?: unknown[][] } | undefined
    let next = 0
    const endTable = async () => {
      if (!current) return
      const { spec, hash, rows, loader, batch, stores } = current
      const sha = hash.digest('hex')
      if (rows !== spec.rows) {
        const problem = `table ${spec.name} has ${rows} rows, the manifest says ${spec.rows}: the file is corrupt or truncated`
        throw new BackupFileError(path, problem)
      }
      if (sha !== spec.sha256) {
        const problem = `table ${spec.name}: its sha256 is ${sha}, the manifest says ${spec.sha256}: the file is corrupt`
        throw new BackupFileError(path, problem)
      }
      if (stores) checkStores(path, manifest!, spec, stores)
      if (loader) {
        if (batch.length > 0) await loader.rows(batch)
        await loader.end()
      }
      current = undefined
    }
    for await (const line of lines(input.stream, path)) {
      if (!manifest) {
        manifest = parseManifest(path, line)
        continue
      }
      if (line[0] === 0x5b /* [ */) {
        if (!current) throw new BackupFileError(path, 'a row before any table header')
        current.hash.update(line)
        current.rows++
        current.stores?.push(parseRow(path, current.spec, line))
        if (current.loader) {
          current.batch.push(parseRow(path, current.spec, line))
          if (current.batch.length >= BATCH) {
            await current.loader.rows(current.batch)
            current.batch = []
          }
        }
        continue
      }
      await endTable()
      const header = parseJson(path, line) as { table?: unknown; columns?: unknown }
      const spec = manifest.tables[next++]
      if (!spec) throw new BackupFileError(path, `table ${String(header.table)} is not in the manifest`)
      if (header.table !== spec.name || JSON.stringify(header.columns) !== JSON.stringify(spec.columns)) {
        throw new BackupFileError(path, `expected table ${spec.name} next, found ${JSON.stringify(header.table)}`)
      }
      current = { spec, hash: createHash('sha256'), rows: 0, loader: load ? await load(spec) : undefined, batch: [] }
      if (spec.name === 'stores') current.stores = []
    }
    if (!manifest) throw new BackupFileError(path, 'is empty: not a Pemba backup')
    await endTable()
    if (next < manifest.tables.length) {
      throw new BackupFileError(path, `ends before table ${manifest.tables[next].name}: the file is truncated`)
    }
    if (!manifest.tables.some((t) => t.name === 'stores')) checkStores(path, manifest, { name: 'stores', columns: [], rows: 0, sha256: '' }, [])
    return manifest
  } finally {
    input.close()
  }
}

/** The file through gunzip, and how to stop reading it early. */
function openBackup(path: string): { stream: Readable; close(): void } {
  const file = createReadStream(path)
  const gunzip = createGunzip()
  // The file's errors (no such file) reach the reader through gunzip.
  file.on('error', (e) => gunzip.destroy(e))
  file.pipe(gunzip)
  return {
    stream: gunzip,
    close() {
      file.destroy()
      gunzip.destroy()
    },
  }
}

/**
 * lines yields each line of the stream (without its newline, as bytes: hashed as they are) and
 * turns a read or gzip failure into a BackupFileError that says what it means.
 */
async function* lines(stream: Readable, path: string): AsyncGenerator<Buffer> {
  let rest: Buffer | undefined
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const buf = rest ? Buffer.concat([rest, chunk]) : chunk
      let start = 0
      for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        yield buf.subarray(start, nl + 1)
        start = nl + 1
      }
      rest = start < buf.length ? buf.subarray(start) : undefined
    }
  } catch (e) {
    throw readFailure(path, e)
  }
  if (rest) throw new BackupFileError(path, 'its last line is cut short: the file is truncated')
}

function readFailure(path: string, e: unknown): Error {
  if (e instanceof BackupFileError) return e
  const { code, message } = e as { code?: string; message?: string }
  if (code === 'ENOENT') return new BackupFileError(path, 'no such file')
  if (code === 'Z_BUF_ERROR' || /unexpected end of file/i.test(message ?? '')) {
    return new BackupFileError(path, 'the gzip stream ends early: the file is truncated')
  }
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new BackupFileError(path, `is not intact gzip (${message}): the file is corrupt or not a Pemba backup`)
  }
  return e as Error
}

function parseJson(path: string, line: Buffer): unknown {
  try {
    return JSON.parse(line.toString('utf8'))
  } catch {
    throw new BackupFileError(path, `a line is not JSON: ${line.toString('utf8').slice(0, 80)}`)
  }
}

function parseRow(path: string, spec: ManifestTable, line: Buffer): unknown[] {
  const row = parseJson(path, line)
  if (!Array.isArray(row) || row.length !== spec.columns.length) {
    throw new BackupFileError(path, `a row of table ${spec.name} does not have its ${spec.columns.length} columns`)
  }
  return row
}

/**
 * checkStores: the manifest's stores (what inspect shows, with each store's revision) are the
 * stores table's rows. The table is covered by its checksum; this covers the list.
 */
function checkStores(path: string, manifest: Manifest, spec: ManifestTable, rows: unknown[][]): void {
  const col = (name: string) => spec.columns.indexOf(name)
  const [id, name, revision, deleted] = [col('id'), col('name'), col('revision'), col('deleted_at')]
  const fromTable = rows.map((r) => ({ id: r[id], name: r[name], revision: r[revision], deleted: deleted >= 0 && r[deleted] !== null }))
  const listed = manifest.stores.map((s) => ({ id: s.id, name: s.name, revision: s.revision, deleted: s.deleted }))
  if (JSON.stringify(fromTable) !== JSON.stringify(listed)) {
    throw new BackupFileError(path, "the manifest's list of stores differs from the stores table: the file was edited or is corrupt")
  }
}

function parseManifest(path: string, line: Buffer): Manifest {
  const m = parseJson(path, line) as Partial<Manifest>
  if (m?.format !== FORMAT || !Array.isArray(m.tables) || !Array.isArray(m.stores)) {
    throw new BackupFileError(path, 'has no Pemba backup manifest: not a Pemba backup')
  }
  if (m.format_version !== FORMAT_VERSION) {
    throw new BackupFileError(
      path,
      `is a backup of format version ${m.format_version}, written by Pemba ${m.pemba_version}; this Pemba reads version ${FORMAT_VERSION}`,
    )
  }
  if (typeof m.manifest_sha256 !== 'string' || sealManifest(m as Manifest).manifest_sha256 !== m.manifest_sha256) {
    throw new BackupFileError(path, 'its manifest does not match its manifest_sha256: the file was edited or is corrupt')
  }
  return m as Manifest
}
