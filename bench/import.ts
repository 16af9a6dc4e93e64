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
 * SQLite loads into a new file each time; PostgreSQL into a new store of the database given
 * (its tables keep the stores of earlier runs). The paths alternate, `rounds` times each; the
 * best run of each counts (the machine is shared: the best is the least disturbed).
 *
 * @module
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
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
  try {
    const storeId = (await request(pemba, 'POST', '/stores', json({ name: `bench-import-${path}` }))).id
    await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
    global.gc?.()
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const tuples = await (path === 'write' ? writePath : bulkPath)(pemba, storeId, o.keys)
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const cpuMs = (cpu.user + cpu.system) / 1000
    return { backend, path, tuples, ms, tuplesPerSec: tuples / (ms / 1000), cpuMs, tuplesPerCpuSec: tuples / (cpuMs / 1000) }
  } finally {
    await pemba.close()
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
          log(`  ${num(r.tuplesPerSec)} tuples/s (${num(r.ms / 1000, 1)} s; ${num(r.tuplesPerCpuSec)} tuples per CPU-second of the bench process)`)
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
      backend === 'sqlite' ? `; ${num(r.tuplesPerCpuSec)} per CPU-second` : `; Node's CPU ${num(r.cpuMs / 1000, 1)} s (the server's not counted)`
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
