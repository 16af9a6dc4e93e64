/**
 * The import rows of `npm run bench` (issue 17, item 5): the data set loaded into an empty
 * store by the old path and by the bulk path, on SQLite and (with a PostgreSQL URL) on
 * PostgreSQL, in one run, so their ratio is measured under the same load of the machine.
 *
 * - old path: what `writes.importTuples` did before the bulk loader, kept here as the baseline:
 *   every tuple validated (parseWrite), then Write's transaction (`datastore.write`, the write
 *   planner) over chunks of 10,000 tuples with `onDuplicate: 'ignore'`;
 * - bulk path: `writes.importTuples` (validation, then the datastore's bulk loader,
 *   src/store/sql/bulk.ts) with its default chunk of IMPORT_CHUNK tuples.
 *
 * SQLite loads into a new file each time; PostgreSQL into a new store of the database given,
 * deleted after its load (dropStore). The paths alternate, `rounds` times each; the
 * best run of each counts (the machine is shared: the best is the least disturbed).
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { loadConfig } from '../src/config.ts'
import type { TupleKey } from '../src/core/tuple.ts'
import { createPemba, type Pemba } from '../src/server.ts'
import { parseWrite } from '../src/service/tuple-input.ts'
import { IMPORT_CHUNK } from '../src/service/writes.ts'
import { cacheEnv, json, log, num, request } from './harness.ts'

/** The old path's chunk: importTuples' default before the bulk loader. */
const WRITE_PATH_CHUNK = 10_000

type ImportPath = 'write' | 'bulk'

/** One load of the data set. */
export interface ImportRun {
  backend: 'sqlite' | 'postgres'
  path: ImportPath
  tuples: number
  ms: number
  tuplesPerSec: number
  /** The bench process's CPU time during the load (user + system; PostgreSQL's own is not in it). */
  cpuMs: number
  /** Tuples per CPU-second of the bench process: what other work on the machine disturbs far less than a rate. */
  tuplesPerCpuSec: number
  /**
   * PostgreSQL: the CPU time of the server processes serving the bench process's connections
   * during the load (from /proc, so only for a server on this machine; undefined otherwise).
   * The server's index maintenance is most of a PostgreSQL load, and the load average of the
   * shared machine disturbs this far less than the wall time.
   */
  serverCpuMs?: number
}

export interface ImportPartOptions {
  keys: TupleKey[]
  modelDsl: string
  /** Where the SQLite files go (each removed after its load). */
  dataRoot: string
  /** A PostgreSQL URL, or '' to skip PostgreSQL (said in the table). */
  postgresUrl: string
  /** Loads of each path per backend. */
  rounds: number
  row: (...cells: (string | number)[]) => void
}

/** The old path: validate everything, then Write's transaction per 10,000 tuples. */
async function writePath(pemba: Pemba, storeId: string, keys: TupleKey[]): Promise<number> {
  const ts = await pemba.models.resolve(storeId, undefined, { fresh: true })
  const now = Date.now()
  const tuples = keys.map((k) => parseWrite(ts, k, now))
  for (let i = 0; i < tuples.length; i += WRITE_PATH_CHUNK) {
    const writes = tuples.slice(i, i + WRITE_PATH_CHUNK)
    await pemba.datastore.write(storeId, { writes, deletes: [], onDuplicate: 'ignore', onMissing: 'ignore' }, new Date())
  }
  return tuples.length
}

/** The bulk path; every tuple must be written (a refusal means a broken setup). */
async function bulkPath(pemba: Pemba, storeId: string, keys: TupleKey[]): Promise<number> {
  const r = await pemba.writes.importTuples(storeId, keys)
  if (r.refused.length > 0 || r.written !== keys.length) {
    throw new Error(`bulk import wrote ${r.written} of ${keys.length} (${r.refused.length} refused, first: ${r.refused[0]?.message})`)
  }
  return r.written
}

/** load: one path's load of the data set into a new store of the database at `url`. */
async function load(backend: ImportRun['backend'], url: string, path: ImportPath, o: ImportPartOptions): Promise<ImportRun> {
  const env = { PEMBA_DATABASE_URL: url, ...cacheEnv(0), PEMBA_EXPIRY_SWEEP_INTERVAL_MS: '0', PEMBA_DECISION_LOG: 'off' }
  const pemba = await createPemba(loadConfig({ env: { ...env, PEMBA_LOG_LEVEL: 'warn' }, argv: [] }))
  let storeId: string | undefined
  try {
    storeId = (await request(pemba, 'POST', '/stores', json({ name: `bench-import-${path}` }))).id as string
    await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
    const server = backend === 'postgres' ? await ServerCpu.open(url) : undefined
    try {
      global.gc?.()
      const server0 = await server?.sample()
      const t0 = performance.now()
      const cpu0 = process.cpuUsage()
      const tuples = await (path === 'write' ? writePath : bulkPath)(pemba, storeId, o.keys)
      const ms = performance.now() - t0
      const cpu = process.cpuUsage(cpu0)
      const serverCpuMs = server0 && (await server?.since(server0))
      const cpuMs = (cpu.user + cpu.system) / 1000
      return { backend, path, tuples, ms, tuplesPerSec: tuples / (ms / 1000), cpuMs, tuplesPerCpuSec: tuples / (cpuMs / 1000), serverCpuMs }
    } finally {
      await server?.close()
    }
  } finally {
    await pemba.close()
    if (backend === 'postgres' && storeId !== undefined) await dropStore(url, storeId)
  }
}

/**
 * dropStore deletes a PostgreSQL load's store and every row of it (each table with a
 * `store_id`, then `stores`): the database is shared (the test suite's), and every run would
 * otherwise leave four stores of the data set in it.
 */
async function dropStore(url: string, storeId: string): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const tables = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns
       WHERE column_name = 'store_id' AND table_schema = current_schema() AND table_name <> 'stores'`,
    )
    for (const { table_name } of tables.rows) await client.query(`DELETE FROM "${table_name}" WHERE store_id = $1`, [storeId])
    await client.query('DELETE FROM stores WHERE id = $1', [storeId])
  } finally {
    await client.end()
  }
}

/**
 * ServerCpu reads the CPU time of the PostgreSQL backends serving this process's connections:
 * pg_stat_activity names each backend's pid and client port, /proc/self/fd and /proc/net/tcp
 * this process's sockets, and /proc/<pid>/stat a backend's user + system time. Only for a
 * server on this machine (Linux); `open` answers undefined where it cannot read them.
 */
class ServerCpu {
  readonly #client: pg.Client
  readonly #ticksMs = 10 // USER_HZ 100, as on every Linux this bench runs on

  private constructor(client: pg.Client) {
    this.#client = client
  }

  static async open(url: string): Promise<ServerCpu | undefined> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    const probe = new ServerCpu(client)
    if ((await probe.sample()).size > 0) return probe
    await client.end()
    return undefined
  }

  /** The CPU milliseconds of each backend serving this process (but the probe's own). */
  async sample(): Promise<Map<number, number>> {
    const out = new Map<number, number>()
    try {
      const sockets = new Set<string>()
      for (const fd of readdirSync('/proc/self/fd')) {
        const link = (() => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`)
          } catch {
            return ''
          }
        })()
        if (link.startsWith('socket:[')) sockets.add(link.slice(8, -1))
      }
      const ports = new Set<number>()
      for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
          const f = line.trim().split(/\s+/)
          if (f.length > 9 && sockets.has(f[9])) ports.add(Number.parseInt(f[1].split(':').at(-1) ?? '', 16))
        }
      }
      const own = (this.#client as unknown as { processID: number }).processID
      const backends = await this.#client.query<{ pid: number; client_port: number }>(
        'SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL',
      )
      for (const { pid, client_port } of backends.rows) {
        if (pid === own || !ports.has(client_port)) continue
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
        out.set(pid, (Number(stat[11]) + Number(stat[12])) * this.#ticksMs)
      }
    } catch {
      return new Map()
    }
    return out
  }

  /** The backends' CPU milliseconds since `before` (a backend opened since counts from 0). */
  async since(before: Map<number, number>): Promise<number> {
    let ms = 0
    for (const [pid, cpu] of await this.sample()) ms += cpu - (before.get(pid) ?? 0)
    return ms
  }

  close(): Promise<void> {
    return this.#client.end()
  }
}

/** sqliteFile: a fresh SQLite URL for one load, and the removal of its files. */
function sqliteFile(dataRoot: string, path: ImportPath): { url: string; remove: () => void } {
  const file = join(dataRoot, `import-${path}.db`)
  const remove = () => {
    for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) rmSync(f, { force: true })
  }
  remove()
  return { url: `sqlite:${file}`, remove }
}

/**
 * importPart loads the data set by both paths on each backend, adds its rows to the table and
 * returns its figures for the JSON report.
 */
export async function importPart(o: ImportPartOptions): Promise<Record<string, unknown>> {
  const report: Record<string, unknown> = { writePathChunk: WRITE_PATH_CHUNK, bulkChunk: IMPORT_CHUNK, rounds: o.rounds }
  const backends: [ImportRun['backend'], () => { url: string; remove: () => void }][] = []
  backends.push(['sqlite', () => sqliteFile(o.dataRoot, 'write')])
  if (o.postgresUrl) backends.push(['postgres', () => ({ url: o.postgresUrl, remove: () => {} })])
  for (const [backend, target] of backends) {
    const runs: ImportRun[] = []
    for (let round = 0; round < o.rounds; round++) {
      for (const path of ['write', 'bulk'] as const) {
        log(`import, ${backend}, ${path} path, round ${round + 1} of ${o.rounds}: ${num(o.keys.length)} tuples ...`)
        const t = target()
        try {
          const r = await load(backend, t.url, path, o)
          const server = r.serverCpuMs === undefined ? '' : `; PostgreSQL's CPU ${num(r.serverCpuMs / 1000, 1)} s`
          log(`  ${num(r.tuplesPerSec)} tuples/s (${num(r.ms / 1000, 1)} s; ${num(r.tuplesPerCpuSec)} tuples per CPU-second of the bench process${server})`)
          runs.push(r)
        } finally {
          t.remove()
        }
      }
    }
    const best = (path: ImportPath) => runs.filter((r) => r.path === path).reduce((a, b) => (b.tuplesPerSec > a.tuplesPerSec ? b : a))
    const write = best('write')
    const bulk = best('bulk')
    const ratio = bulk.tuplesPerSec / write.tuplesPerSec
    const of = `best of ${o.rounds}`
    const cpu = (r: ImportRun) =>
      backend === 'sqlite'
        ? `; ${num(r.tuplesPerCpuSec)} per CPU-second`
        : `; Node's CPU ${num(r.cpuMs / 1000, 1)} s, ` +
          (r.serverCpuMs === undefined ? "the server's not measured (not on this machine)" : `the server's ${num(r.serverCpuMs / 1000, 1)} s`)
    o.row(
      `import, ${backend}, old path (Write per ${num(WRITE_PATH_CHUNK)} tuples)`,
      num(write.tuples),
      '',
      '',
      '',
      `${num(write.tuplesPerSec)} tuples/s`,
      `${num(write.ms / 1000, 1)} s, ${of}${cpu(write)}`,
    )
    o.row(
      `import, ${backend}, bulk path (writes.importTuples, ${num(IMPORT_CHUNK)} a chunk)`,
      num(bulk.tuples),
      '',
      '',
      '',
      `${num(bulk.tuplesPerSec)} tuples/s`,
      `${num(bulk.ms / 1000, 1)} s, ${of}${cpu(bulk)}; ${num(ratio, 2)}× the old path; target ≥ 100,000 tuples/s`,
    )
    report[backend] = { write, bulk, ratio, runs }
  }
  if (!o.postgresUrl) {
    o.row('import, postgres', '', '', '', '', '', 'skipped: set PEMBA_BENCH_POSTGRES_URL or PEMBA_TEST_POSTGRES_URL')
    report.postgres = 'skipped (no PEMBA_BENCH_POSTGRES_URL or PEMBA_TEST_POSTGRES_URL)'
  }
  return report
}
