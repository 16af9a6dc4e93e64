/**
 * `npm run bench`: loads the benchmark data set into a fresh Pemba and measures, in one run,
 * bulk import, in-process Check (cache off and warm), batch check, list-objects, Check over
 * loopback HTTP against a server child process (with a minimal Hono server as the baseline), the
 * MCP gateway's added latency per tool call (bench/mcp.ts) and peak memory; checks every answer
 * against bench/expected/. Prints one table and writes every
 * figure to `<out>/bench-<date>.json`. See bench/README.md.
 *
 *   npm run bench -- [--scale 1] [--seed 42] [--quick] [--skip-http] [--out bench/out]
 *                    [--cache-size 100000] [--lookups] [--max-minutes N]
 *                    [--import-only] [--import-rounds N] [--authzen-only] [--mcp-only]
 *                    [--durability-only] [--beyond-memory-only] [--workers-only] [--replicas-only]
 *                    [--index-only] [--index-scales 1,10,30] [--index-baseline /path/to/checkout]
 *                    [--soak] [--soak-minutes 10] [--soak-env NAME=value,…] [--soak-heap-snapshot]
 *
 * This is a benchmark, not a test: it never fails on a slow figure, only on a wrong setup.
 *
 * @module
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, relative } from 'node:path'
import { loadConfig } from '../src/config.ts'
import { createPemba, type Pemba } from '../src/server.ts'
import { IMPORT_CHUNK } from '../src/service/writes.ts'
import { loadOrGenerate, parseFlags, tupleKey, type CheckRequest, type LookupRequest } from './dataset.ts'
import {
  ROOT,
  batches as batchesOf,
  bothFigure,
  cacheEnv,
  cannon as runCannon,
  checkPass as measureChecks,
  correctText,
  gitState,
  guardChildren,
  httpAnswers as judgeOverHttp,
  json,
  judge,
  killAll,
  loadExpected,
  log,
  mib,
  ms,
  num,
  peakRssKiB,
  post,
  request,
  startServer,
  stats,
  stopServer,
  us,
  withTimeout,
  type CheckPass,
  type Correctness,
  type Expected,
  type HttpFigure,
  type Server,
} from './harness.ts'
import { authzenPart } from './authzen.ts'
import { durabilityPart } from './durability.ts'
import { closurePart } from './closure.ts'
import { workersPart } from './workers.ts'
import { replicasPart } from './replicas.ts'
import { beyondMemoryPart } from './beyond-memory.ts'
import { indexMemoryPart } from './index-memory.ts'
import { importPart } from './import.ts'
import { mcpPart } from './mcp.ts'
import { soakPart } from './soak.ts'
import { telemetryPart } from './telemetry.ts'

const BATCH_SIZE = 50
const HTTP_CONNECTIONS = 64
const HTTP_BATCH_CONNECTIONS = 8
const HTTP_WRITE_WORKERS = 4

const flags = parseFlags(process.argv.slice(2), {
  scale: 1,
  seed: 42,
  quick: false,
  skipHttp: false,
  out: 'bench/out',
  /** checkCacheSize of the "cache on" runs (the "cache off" runs use 0). */
  cacheSize: 100_000,
  /** Run the list-objects requests even when no expected answers exist (scale 10). */
  lookups: false,
  maxMinutes: 0,
  /**
   * A PostgreSQL URL: also measure HTTP check with Pemba on PostgreSQL, one replica and two
   * (the data set is loaded into a new store there). Empty: skipped.
   */
  postgres: process.env.PEMBA_BENCH_POSTGRES_URL ?? '',
  /** Only the data set and the import rows (bench/import.ts): old path against bulk path. */
  importOnly: false,
  /** Loads of each import path per backend; 0: 2 below scale 10, else 1. */
  importRounds: 0,
  /** Only the data set, its import and the AuthZEN rows (bench/authzen.ts). */
  authzenOnly: false,
  /** Only the data set and the MCP gateway rows (bench/mcp.ts). */
  mcpOnly: false,
  /** Only the SQLite durability rows (bench/durability.ts): writes under synchronous FULL and NORMAL. */
  durabilityOnly: false,
  /**
   * Only the data set, its import and the all-cores rows (bench/workers.ts): HTTP check with
   * PEMBA_WORKERS=1 and =auto, each against the bare Hono route with as many workers.
   */
  workersOnly: false,
  /**
   * Only the rows of a store 10× the tuple index's budget (bench/beyond-memory.ts): SQLite
   * in-process and, with --postgres (or PEMBA_TEST_POSTGRES_URL), PostgreSQL over HTTP.
   */
  beyondMemoryOnly: false,
  /**
   * Only the read-replica rows (bench/replicas.ts): two replicas reading from a PostgreSQL standby
   * (PEMBA_BENCH_POSTGRES_READ_URL or PEMBA_TEST_POSTGRES_READ_URL) against from the primary.
   */
  replicasOnly: false,
  /**
   * Only the tuple index's memory rows (bench/index-memory.ts): bytes per tuple and build rate at
   * each of `indexScales`, and a server holding the largest in its index.
   */
  indexOnly: false,
  /**
   * Only the data set, its import and the membership closure rows (bench/closure.ts): cold
   * in-process checks with PEMBA_MEMBERSHIP_CLOSURE on and off, alternated, per kind.
   */
  closureOnly: false,
  indexScales: '1,10,30',
  /** Another checkout whose tuple index is measured beside this one's (--index-only), or ''. */
  indexBaseline: '',
  /** Only the memory soak (bench/soak.ts): a server under mixed load, its RSS sampled. */
  soak: false,
  soakMinutes: 10,
  /** Settings added to the soak server's environment: `NAME=value,NAME=value`. */
  soakEnv: '',
  /** Heap snapshots of the soak server early and at the end (bench/heap-summary.ts reads them). */
  soakHeapSnapshot: false,
})
/** The import rows also run on PostgreSQL with the test suite's database. */
const IMPORT_POSTGRES = flags.postgres || process.env.PEMBA_TEST_POSTGRES_URL || ''
const QUICK = flags.quick
const HTTP_SECONDS = QUICK ? 3 : 10
const HTTP_WARMUP_SECONDS = QUICK ? 0.5 : 1
const HTTP_BATCH_SECONDS = QUICK ? 2 : 5
const HTTP_WRITE_SAMPLE = QUICK ? 5_000 : 20_000

// every child is killed, whatever happens (see harness.ts)
const maxMinutes = flags.maxMinutes || (flags.soak ? flags.soakMinutes + 15 : flags.scale > 1 ? 60 : 20)
guardChildren(maxMinutes)

/** The environment of a Pemba server child on the bench's SQLite file. */
function serverEnv(dbPath: string, cacheSize: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: `sqlite:${dbPath}`,
    // Measured warm: the store is in the tuple index before the server listens.
    PEMBA_TUPLE_INDEX_PRELOAD: 'on',
    ...cacheEnv(cacheSize),
    ...extra,
  }
}

// ---- in-process measurements ---------------------------------------------------------------

function pembaConfig(dbPath: string, cacheSize: number, index = true) {
  return loadConfig({
    env: { PEMBA_DATABASE_URL: `sqlite:${dbPath}`, ...cacheEnv(cacheSize, index) },
    argv: [],
  })
}

async function checkPass(
  pemba: Pemba,
  storeId: string,
  checks: CheckRequest[],
): Promise<CheckPass> {
  return measureChecks((id, input) => pemba.checks.check(id, input), storeId, checks)
}

const batches = (checks: CheckRequest[]) => batchesOf(checks, BATCH_SIZE)

async function batchPass(pemba: Pemba, storeId: string, checks: CheckRequest[]) {
  const answers = new Map<string, boolean | string>()
  const t0 = performance.now()
  for (const b of batches(checks)) {
    const r = await pemba.checks.batchCheck(storeId, { checks: b })
    for (const [id, o] of Object.entries(r.result))
      answers.set(id, o.ok ? o.output.allowed : `error: ${(o.error as Error).message}`)
  }
  const wallMs = performance.now() - t0
  return {
    wallMs,
    perSec: checks.length / (wallMs / 1000),
    answers: checks.map((c) => answers.get(String(c.id)) ?? 'missing'),
  }
}

interface LookupFigure {
  id: number
  kind: string
  subject: string
  ms: number
  count: number
  truncated: string
  expectedCount?: number
  match?: boolean
  error?: string
}

async function lookupPass(
  pemba: Pemba,
  storeId: string,
  lookups: LookupRequest[],
  expected: Expected,
) {
  const out: LookupFigure[] = []
  for (const l of lookups) {
    const t = performance.now()
    const f: LookupFigure = {
      id: l.id,
      kind: l.kind,
      subject: l.subject,
      ms: 0,
      count: 0,
      truncated: '',
    }
    try {
      const r = await pemba.lists.listObjects(storeId, {
        type: l.resourceType,
        relation: l.permission,
        user: l.subject,
      })
      f.ms = performance.now() - t
      f.count = r.objects.length
      f.truncated = r.truncated
      const want = expected.lookups?.get(l.id)
      if (want) {
        const prefix = `${l.resourceType}:`
        const got = new Set(
          r.objects.map((o) => (o.startsWith(prefix) ? o.slice(prefix.length) : o)),
        )
        f.expectedCount = want.length
        f.match = got.size === want.length && want.every((id) => got.has(id))
      }
    } catch (e) {
      f.ms = performance.now() - t
      f.error = (e as Error).message
    }
    out.push(f)
  }
  return out
}

// ---- child processes -----------------------------------------------------------------------

const cannon = (url: string, path: string, bodies: string[], connections: number, seconds: number) =>
  runCannon(url, path, bodies, connections, seconds, HTTP_WARMUP_SECONDS)

interface DecisionCounters {
  recorded: number
  dropped: number
  failed: number
}

/** decisionCounters reads the decision log's counters from a server's /metrics (after a flush interval). */
async function decisionCounters(url: string): Promise<DecisionCounters> {
  // Let the last flush land: the default flush interval is 200 ms.
  await new Promise((r) => setTimeout(r, 500))
  const text = await (await fetch(`${url}/metrics`)).text()
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
  return {
    recorded: read('pemba_decisions_recorded_total'),
    dropped: read('pemba_decisions_dropped_total'),
    failed: read('pemba_decisions_write_failed_total'),
  }
}

// ---- the run -------------------------------------------------------------------------------

/**
 * postgresPart measures HTTP check with Pemba on PostgreSQL: the data set is loaded into a new
 * store, then one replica (caches off), two replicas at once (caches off; half the connections
 * on each, answers summed), and two replicas with warm caches.
 */
async function postgresPart(
  http: Record<string, unknown>,
  bodies: string[],
  minimal: HttpFigure,
  keys: { user: string; relation: string; object: string }[],
  modelDsl: string,
  row: (...cells: (string | number)[]) => void,
): Promise<void> {
  const url = flags.postgres
  log('PostgreSQL: loading the data set into a new store ...')
  const pemba = await createPemba(
    loadConfig({ env: { PEMBA_DATABASE_URL: url, ...cacheEnv(0), PEMBA_EXPIRY_SWEEP_INTERVAL_MS: '0' }, argv: [] }),
  )
  let storeId: string
  let importPerSec: number
  try {
    storeId = (await request(pemba, 'POST', '/stores', json({ name: 'bench-postgres' }))).id
    await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, modelDsl, 'text/plain')
    const t0 = performance.now()
    const imported = await pemba.writes.importTuples(storeId, keys)
    importPerSec = imported.written / ((performance.now() - t0) / 1000)
  } finally {
    await pemba.close()
  }
  row('bulk import on PostgreSQL (writes.importTuples, for the HTTP rows)', num(keys.length), '', '', '', `${num(importPerSec)} tuples/s`, '')
  const path = `/stores/${storeId}/check`
  // No preload here: the database keeps the stores of earlier runs, and only this run's is asked
  // about (a first pass warms each replica's tuple index, or its caches).
  const env = (cacheSize: number, index = true) => ({
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: url,
    ...cacheEnv(cacheSize, index),
  })
  const both = async (a: Server, b: Server): Promise<HttpFigure> => {
    const half = HTTP_CONNECTIONS / 2
    const [x, y] = await Promise.all([
      cannon(a.url, path, bodies, half, HTTP_SECONDS),
      cannon(b.url, path, bodies.slice().reverse(), half, HTTP_SECONDS),
    ])
    return bothFigure(HTTP_CONNECTIONS, x, y)
  }
  const show = (label: string, f: HttpFigure) =>
    row(
      label,
      num(f.requests),
      ms(f.p50Ms),
      '',
      ms(f.p99Ms),
      `${num(f.reqPerSec)} req/s`,
      `non-2xx ${f.non2xx}, errors ${f.errors}; ${num((f.reqPerSec / minimal.reqPerSec) * 100, 1)}% of minimal`,
    )
  const figures: Record<string, HttpFigure> = {}
  log('HTTP: Pemba on PostgreSQL, one replica, caches and tuple index off ...')
  let a = await startServer('src/cli/main.ts', ['serve'], env(0, false))
  try {
    figures.oneReplicaCacheAndIndexOff = await cannon(a.url, path, bodies, HTTP_CONNECTIONS, HTTP_SECONDS)
    show(`HTTP check, Pemba on PostgreSQL, 1 replica, cache and index off (${HTTP_CONNECTIONS} conn)`, figures.oneReplicaCacheAndIndexOff)
  } finally {
    await stopServer(a)
  }
  for (const [cacheSize, label] of [[0, 'cache off'], [flags.cacheSize, 'cache on, warm']] as const) {
    log(`HTTP: Pemba on PostgreSQL, two replicas, ${label} ...`)
    a = await startServer('src/cli/main.ts', ['serve'], env(cacheSize))
    const b = await startServer('src/cli/main.ts', ['serve'], env(cacheSize))
    try {
      await both(a, b) // a first pass reads the store into both replicas' indexes (and fills their caches)
      const f = await both(a, b)
      figures[cacheSize > 0 ? 'twoReplicasWarm' : 'twoReplicasCacheOff'] = f
      show(`HTTP check, Pemba on PostgreSQL, 2 replicas, ${label} (${HTTP_CONNECTIONS} conn)`, f)
    } finally {
      await stopServer(a)
      await stopServer(b)
    }
  }
  http.postgres = { importPerSec, ...figures }
}

async function main(): Promise<void> {
  const started = new Date()
  const loadStart = os.loadavg()[0]
  const params = { scale: flags.scale, seed: flags.seed, checks: 2000 }
  const dataRoot = join(ROOT, 'bench-data')
  const modelDsl = readFileSync(join(ROOT, 'bench/model.fga'), 'utf8')
  const rows: string[][] = []
  const row = (...cells: (string | number)[]) => rows.push(cells.map(String))
  const report: Record<string, unknown> = {}

  // 1. the data set
  let t = performance.now()
  const ds = loadOrGenerate(dataRoot, params)
  const datasetMs = performance.now() - t
  const expected = loadExpected(ds)
  log(
    `data set ${relative(ROOT, ds.dir)}: ${num(ds.tuples.length)} tuples, ${ds.checks.length} checks, ` +
      `${ds.lookups.length} lookups (${ds.generated ? 'generated' : 'cached'}, ${num(datasetMs)} ms)`,
  )
  if (expected.verified) log(`sha256 of the data files match ${expected.dir}/manifest.json`)
  else log(`NOT comparing answers: ${expected.mismatch.join('; ')}`)
  const runLookups = flags.lookups || expected.lookups !== undefined
  const importRounds = flags.importRounds || (flags.scale >= 10 ? 1 : 2)
  const importRows = () =>
    importPart({ keys: ds.tuples.map(tupleKey), modelDsl, dataRoot, postgresUrl: IMPORT_POSTGRES, rounds: importRounds, row })
  if (flags.importOnly) {
    mkdirSync(dataRoot, { recursive: true })
    report.importPaths = await importRows()
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId: '', modelId: '' })
  }
  // The MCP gateway's added latency per tools/call (bench/mcp.ts): the MCP example's stack.
  const mcpRows = () =>
    mcpPart({ calls: QUICK ? 300 : 1000, rounds: QUICK ? 4 : 6, warmupCalls: QUICK ? 200 : 500, row })
  if (flags.mcpOnly) {
    report.mcp = await mcpRows()
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId: '', modelId: '' })
  }
  // SQLite's synchronous FULL against NORMAL on writes, same disk, one run (bench/durability.ts).
  const durabilityRows = () =>
    durabilityPart({ dataRoot, seconds: QUICK ? 2 : 5, rounds: QUICK ? 2 : 3, concurrency: 16, row })
  if (flags.durabilityOnly) {
    report.durability = await durabilityRows()
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId: '', modelId: '' })
  }
  if (flags.indexOnly) {
    mkdirSync(dataRoot, { recursive: true })
    report.indexMemory = await indexMemoryPart({
      dataRoot,
      seed: flags.seed,
      scales: flags.indexScales.split(',').map(Number),
      modelDsl,
      baseline: flags.indexBaseline,
      row,
    })
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId: '', modelId: '' })
  }
  if (flags.beyondMemoryOnly) {
    mkdirSync(dataRoot, { recursive: true })
    report.beyondMemory = await beyondMemoryPart({
      dataRoot,
      keys: ds.tuples.map(tupleKey),
      checks: ds.checks,
      expected,
      modelDsl,
      bodies: ds.checks.map((c) => json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } })),
      postgresUrl: IMPORT_POSTGRES,
      httpSeconds: HTTP_SECONDS,
      httpConnections: HTTP_CONNECTIONS,
      row,
    })
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId: '', modelId: '' })
  }
  if (flags.soak) {
    mkdirSync(dataRoot, { recursive: true })
    report.soak = await soakPart({
      ds,
      modelDsl,
      dbPath: join(dataRoot, `soak-${process.pid}.db`),
      minutes: flags.soakMinutes,
      sampleSeconds: 10,
      extraEnv: Object.fromEntries(
        flags.soakEnv
          .split(',')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      ),
      heapSnapshots: flags.soakHeapSnapshot,
      row,
    })
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId: '', modelId: '' })
  }

  // 2. a fresh database, the model and the bulk import
  mkdirSync(dataRoot, { recursive: true })
  const dbPath = join(dataRoot, `pemba-bench-scale-${flags.scale}-seed-${flags.seed}.db`)
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, `${dbPath}-journal`])
    rmSync(f, { force: true })
  let pemba = await createPemba(pembaConfig(dbPath, 0))
  const storeId = (await request(pemba, 'POST', '/stores', json({ name: 'bench' }))).id
  const modelId = (
    await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, modelDsl, 'text/plain')
  ).authorization_model_id
  const keys = ds.tuples.map(tupleKey)
  log(`importing ${num(keys.length)} tuples through writes.importTuples ...`)
  t = performance.now()
  const { written: imported, refused } = await pemba.writes.importTuples(storeId, keys)
  if (refused.length > 0) throw new Error(`the import refused ${refused.length} tuples: ${refused[0].message}`)
  const importMs = performance.now() - t
  const importPerSec = imported / (importMs / 1000)
  const rssAfterImportKiB = process.resourceUsage().maxRSS
  log(`  ${num(imported)} tuples in ${num(importMs)} ms: ${num(importPerSec)} tuples/s`)
  row(
    `bulk import (writes.importTuples, ${num(IMPORT_CHUNK)}-tuple transactions)`,
    num(imported),
    '',
    '',
    '',
    `${num(importPerSec)} tuples/s`,
    `${num(importMs / 1000, 1)} s`,
  )
  report.import = {
    tuples: imported,
    ms: importMs,
    tuplesPerSec: importPerSec,
    dbFile: relative(ROOT, dbPath),
  }
  // AuthZEN against Pemba's own API over HTTP (bench/authzen.ts), on the file just loaded.
  const authzenRows = () =>
    authzenPart({
      dbPath,
      storeId,
      checks: ds.checks,
      expected,
      connections: HTTP_CONNECTIONS,
      batchConnections: HTTP_BATCH_CONNECTIONS,
      batchSize: BATCH_SIZE,
      // Short runs, many rounds: the pairs compared are seconds apart, not minutes.
      seconds: QUICK ? 2 : 5,
      batchSeconds: QUICK ? 2 : 3,
      warmupSeconds: HTTP_WARMUP_SECONDS,
      initialWarmupSeconds: QUICK ? 2 : 5,
      rounds: QUICK ? 3 : 5,
      cacheSize: flags.cacheSize,
      env: (cacheSize) => serverEnv(dbPath, cacheSize),
      row,
    })
  if (flags.replicasOnly) {
    const standbyUrl = process.env.PEMBA_BENCH_POSTGRES_READ_URL || process.env.PEMBA_TEST_POSTGRES_READ_URL || ''
    if (!IMPORT_POSTGRES || !standbyUrl) throw new Error('--replicas-only needs PEMBA_BENCH_POSTGRES_URL and PEMBA_BENCH_POSTGRES_READ_URL (or the PEMBA_TEST_ ones)')
    await pemba.close()
    report.replicas = await replicasPart({
      primaryUrl: IMPORT_POSTGRES,
      standbyUrl,
      keys: ds.tuples.map(tupleKey),
      modelDsl,
      checks: ds.checks,
      expected,
      bodies: ds.checks.map((c) => json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } })),
      connections: HTTP_CONNECTIONS,
      seconds: QUICK ? 3 : HTTP_SECONDS,
      rounds: QUICK ? 3 : 5,
      batchSize: BATCH_SIZE,
      row,
    })
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId, modelId })
  }
  if (flags.authzenOnly) {
    await pemba.close()
    report.authzen = await authzenRows()
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId, modelId })
  }
  // PEMBA_WORKERS=1 and =auto against the bare route at the same worker count (bench/workers.ts).
  if (flags.workersOnly) {
    await pemba.close()
    report.workers = await workersPart({
      dbPath,
      storeId,
      checks: ds.checks,
      expected,
      connections: HTTP_CONNECTIONS,
      seconds: QUICK ? 3 : 5,
      warmupSeconds: HTTP_WARMUP_SECONDS,
      // Each worker fills its own check cache (and may finish its index in the background).
      initialWarmupSeconds: QUICK ? 8 : 10,
      rounds: QUICK ? 3 : 5,
      batchSize: BATCH_SIZE,
      env: serverEnv(dbPath, flags.cacheSize),
      row,
    })
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId, modelId })
  }
  // 2b. the import paths compared: old against bulk, SQLite and PostgreSQL (bench/import.ts)
  if (!flags.closureOnly) {
    report.importPaths = await importRows()
    // 2c. what synchronous = FULL costs on writes (bench/durability.ts)
    report.durability = await durabilityRows()
  }

  // 3. the tuple index: the store read into memory, timed, with the heap it takes
  global.gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  t = performance.now()
  const indexed = await pemba.evaluation.tupleIndexReady(storeId)
  const indexMs = performance.now() - t
  global.gc?.()
  const indexHeapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20
  const indexStats = pemba.evaluation.tupleIndexStats()
  log(`  tuple index: ${indexed ? `${num(indexStats?.tuples ?? 0)} tuples in ${num(indexMs)} ms, heap +${num(indexHeapMiB)} MiB` : 'NOT BUILT'}`)
  row(
    'tuple index build (both directions, in memory)',
    num(indexStats?.tuples ?? 0),
    '',
    '',
    '',
    indexed ? `${num((indexStats!.tuples / indexMs) * 1000)} tuples/s` : 'not built',
    `${num(indexMs / 1000, 1)} s; heap +${num(indexHeapMiB)} MiB${global.gc ? '' : ' (without --expose-gc: approximate)'}`,
  )
  report.tupleIndex = { built: indexed, ms: indexMs, tuples: indexStats?.tuples, heapMiB: indexHeapMiB }
  // The membership closures too (built in the background on first use otherwise).
  await pemba.evaluation.membershipClosuresReady(storeId)
  // Cold checks with the membership closure on and off, alternated (bench/closure.ts).
  const closureRows = () =>
    closurePart({
      dbPath,
      storeId,
      checks: ds.checks,
      kinds: Object.keys(ds.manifest.stats.checkKinds),
      expected,
      rounds: QUICK ? 3 : 5,
      row,
    })
  if (flags.closureOnly) {
    await pemba.close()
    report.closure = await closureRows()
    return finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId, modelId })
  }

  // 4. in-process Check, cache off: passes 1 and 2 warm the JIT (and SQLite's page cache), pass 3
  // is measured. No answer is cached across passes: "cold" is about the caches, not the JIT.
  // the data set's order of kinds (direct-viewer, owner, random, deep-group, ...)
  const kinds = Object.keys(ds.manifest.stats.checkKinds)
  const checkRows = (label: string, p: CheckPass, c: Correctness, perKind: boolean) => {
    row(
      `${label}: mixed`,
      p.mixed.n,
      us(p.mixed.p50Us),
      us(p.mixed.p95Us),
      us(p.mixed.p99Us),
      `${num(p.mixed.perSec)} checks/s`,
      correctText(c),
    )
    if (!perKind) return
    for (const k of kinds) {
      const s = p.byKind[k]
      const kc = judge(
        ds.checks.filter((x) => x.kind === k),
        p.answers.filter((_, i) => ds.checks[i].kind === k),
        expected,
      )
      row(
        `  ${k}`,
        s.n,
        us(s.p50Us),
        us(s.p95Us),
        us(s.p99Us),
        `${num(s.perSec)} checks/s`,
        correctText(kc),
      )
    }
  }
  log('in-process check, cache off ...')
  const offFirst = await checkPass(pemba, storeId, ds.checks)
  await checkPass(pemba, storeId, ds.checks)
  const off = await checkPass(pemba, storeId, ds.checks)
  const offCorrect = judge(ds.checks, off.answers, expected)
  const offFirstCorrect = judge(ds.checks, offFirst.answers, expected)
  log(
    `  first pass ${num(offFirst.wallMs)} ms, measured pass ${num(off.wallMs)} ms; ${correctText(offCorrect)}`,
  )
  checkRows('check in-process, cache off', off, offCorrect, true)

  // 4b. the same with the tuple index off too: every read from SQLite
  log('in-process check, cache and tuple index off ...')
  const sqlitePemba = await createPemba(pembaConfig(dbPath, 0, false))
  await checkPass(sqlitePemba, storeId, ds.checks)
  await checkPass(sqlitePemba, storeId, ds.checks)
  const sqliteOnly = await checkPass(sqlitePemba, storeId, ds.checks)
  await sqlitePemba.close()
  const sqliteOnlyCorrect = judge(ds.checks, sqliteOnly.answers, expected)
  checkRows('check in-process, cache and index off (SQLite reads)', sqliteOnly, sqliteOnlyCorrect, false)

  // 4c. the same cold checks with the membership closure on (the default, as above) and off
  log('in-process check, cache off, membership closure on and off ...')
  report.closure = await closureRows()

  // 5. batch check in-process (cache off)
  log('in-process batch check ...')
  await batchPass(pemba, storeId, ds.checks)
  const batch = await batchPass(pemba, storeId, ds.checks)
  const batchCorrect = judge(ds.checks, batch.answers, expected)
  row(
    `batch check in-process, cache off (${BATCH_SIZE}/batch)`,
    ds.checks.length,
    '',
    '',
    '',
    `${num(batch.perSec)} checks/s`,
    correctText(batchCorrect),
  )

  // 6. list-objects in-process (cache off)
  let lookups: LookupFigure[] = []
  if (runLookups) {
    log('in-process list-objects ...')
    lookups = await lookupPass(pemba, storeId, ds.lookups, expected)
    const l = stats(lookups.map((x) => x.ms))
    const matched = lookups.filter((x) => x.match).length
    const judged = lookups.filter((x) => x.match !== undefined).length
    row(
      'list-objects in-process (p50 / max)',
      lookups.length,
      ms(l.p50Us / 1000),
      '',
      `max ${ms(l.maxUs / 1000)}`,
      '',
      judged ? `${matched}/${judged} equal` : '',
    )
    for (const x of lookups) {
      const verdict = x.error
        ? `error: ${x.error}`
        : x.match === undefined
          ? ''
          : x.match
            ? 'equal'
            : `DIFFERENT (want ${x.expectedCount})`
      row(
        `  ${x.kind} ${x.subject}`,
        x.count,
        ms(x.ms),
        '',
        '',
        '',
        verdict + (x.truncated ? ` truncated: ${x.truncated}` : ''),
      )
    }
  }
  await pemba.close()

  // 7. in-process Check, cache on: a cold pass (that fills the cache), then warm passes
  log(`in-process check, cache on (checkCacheSize ${flags.cacheSize}) ...`)
  pemba = await createPemba(pembaConfig(dbPath, flags.cacheSize))
  await pemba.evaluation.tupleIndexReady(storeId)
  const cold = await checkPass(pemba, storeId, ds.checks)
  // The second pass warms the JIT on the cache-hit path; the third is measured.
  await checkPass(pemba, storeId, ds.checks)
  const warm = await checkPass(pemba, storeId, ds.checks)
  const coldCorrect = judge(ds.checks, cold.answers, expected)
  const warmCorrect = judge(ds.checks, warm.answers, expected)
  await pemba.close()
  checkRows('check in-process, cache on, first pass', cold, coldCorrect, false)
  checkRows('check in-process, cache on, warm', warm, warmCorrect, true)
  const benchRssInProcessKiB = process.resourceUsage().maxRSS
  row(
    'peak RSS, bench process after the in-process part',
    '',
    '',
    '',
    '',
    '',
    mib(benchRssInProcessKiB),
  )

  report.checkInProcess = {
    note:
      'sequential checks through pemba.checks.check; cache off (tuple index on) and cache and ' +
      'index off: the third of three passes; ' +
      'cache on: a first pass, then warm passes (the third is measured)',
    cacheOff: {
      ...off,
      answers: undefined,
      correctness: offCorrect,
      firstPassCorrectness: offFirstCorrect,
      firstPassMs: offFirst.wallMs,
    },
    cacheAndIndexOff: { ...sqliteOnly, answers: undefined, correctness: sqliteOnlyCorrect },
    cacheOnFirstPass: { ...cold, answers: undefined, correctness: coldCorrect },
    cacheOnWarm: { ...warm, answers: undefined, correctness: warmCorrect },
    cacheSize: flags.cacheSize,
  }
  report.batchCheckInProcess = {
    batchSize: BATCH_SIZE,
    checks: ds.checks.length,
    ms: batch.wallMs,
    checksPerSec: batch.perSec,
    correctness: batchCorrect,
  }
  report.listObjectsInProcess = runLookups
    ? lookups
    : 'skipped (no expected answers at this scale; --lookups runs them)'

  // 8. HTTP on loopback, against server child processes
  if (!flags.skipHttp) {
    const checkPath = `/stores/${storeId}/check`
    const bodies = ds.checks.map((c) =>
      json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } }),
    )
    const http: Record<string, unknown> = {
      note: `autocannon in the bench process and the server share the machine's ${os.cpus().length} cores`,
    }
    report.http = http

    log(`HTTP: minimal Hono server, ${HTTP_CONNECTIONS} connections, ${HTTP_SECONDS} s ...`)
    let server = await startServer('bench/minimal-server.ts', [], { PORT: '0' })
    let minimal: HttpFigure
    try {
      minimal = await cannon(server.url, checkPath, bodies, HTTP_CONNECTIONS, HTTP_SECONDS)
      http.minimal = { ...minimal, peakRssKiB: peakRssKiB(server) }
    } finally {
      await stopServer(server)
    }

    /** Every check's answer over HTTP (batch-check, 50 at a time), judged. */
    const httpAnswers = async (url: string): Promise<Correctness> =>
      (await judgeOverHttp(url, storeId, ds.checks, expected, BATCH_SIZE)).correctness
    const pembaEnv = (cacheSize: number, extra: Record<string, string> = {}) => serverEnv(dbPath, cacheSize, extra)
    const httpRow = (label: string, f: HttpFigure, extra = '') =>
      row(
        label,
        num(f.requests),
        ms(f.p50Ms),
        '',
        ms(f.p99Ms),
        `${num(f.reqPerSec)} req/s`,
        `non-2xx ${f.non2xx}, errors ${f.errors}${extra}`,
      )
    httpRow(`HTTP check, minimal Hono route (${HTTP_CONNECTIONS} conn, ${HTTP_SECONDS} s)`, minimal)

    log('HTTP: Pemba, cache off ...')
    server = await startServer('src/cli/main.ts', ['serve'], pembaEnv(0))
    try {
      const httpCorrect = await httpAnswers(server.url)

      const off = await cannon(server.url, checkPath, bodies, HTTP_CONNECTIONS, HTTP_SECONDS)
      httpRow(
        `HTTP check, Pemba, cache off (${HTTP_CONNECTIONS} conn, ${HTTP_SECONDS} s)`,
        off,
        `; ${num((off.reqPerSec / minimal.reqPerSec) * 100, 1)}% of minimal`,
      )

      log('HTTP: Pemba batch check ...')
      const batchBodies = batches(ds.checks).map((b) =>
        json({
          checks: b.map((x) => ({ tuple_key: x.tupleKey, correlation_id: x.correlationId })),
        }),
      )
      const hb = await cannon(
        server.url,
        `/stores/${storeId}/batch-check`,
        batchBodies,
        HTTP_BATCH_CONNECTIONS,
        HTTP_BATCH_SECONDS,
      )
      row(
        `HTTP batch check, Pemba, cache off (${BATCH_SIZE}/batch, ${HTTP_BATCH_CONNECTIONS} conn, ${HTTP_BATCH_SECONDS} s)`,
        num(hb.requests * BATCH_SIZE),
        ms(hb.p50Ms),
        '',
        ms(hb.p99Ms),
        `${num(hb.reqPerSec * BATCH_SIZE)} checks/s`,
        `non-2xx ${hb.non2xx}; ${correctText(httpCorrect)}`,
      )

      log(`HTTP: Pemba write API, ${num(HTTP_WRITE_SAMPLE)} tuples into a second store ...`)
      const store2 = (await post(`${server.url}/stores`, { name: 'bench-http-write' })).id as string
      await post(`${server.url}/stores/${store2}/authorization-models`, modelDsl, 'text/plain')
      const stride = Math.max(1, Math.floor(ds.tuples.length / HTTP_WRITE_SAMPLE))
      const sample: string[] = []
      for (let i = 0; i < ds.tuples.length && sample.length < HTTP_WRITE_SAMPLE; i += stride)
        sample.push(ds.tuples[i])
      const writeBodies: string[] = []
      for (let i = 0; i < sample.length; i += 100) {
        writeBodies.push(json({ writes: { tuple_keys: sample.slice(i, i + 100).map(tupleKey) } }))
      }
      let nextBody = 0
      const tw = performance.now()
      await withTimeout(
        Promise.all(
          Array.from({ length: HTTP_WRITE_WORKERS }, async () => {
            while (nextBody < writeBodies.length)
              await post(`${server.url}/stores/${store2}/write`, writeBodies[nextBody++])
          }),
        ),
        120_000,
        'HTTP write sample',
      )
      const writeMs = performance.now() - tw
      const writePerSec = sample.length / (writeMs / 1000)
      row(
        `HTTP write, Pemba (100 tuples/request, ${HTTP_WRITE_WORKERS} in flight)`,
        num(sample.length),
        '',
        '',
        '',
        `${num(writePerSec)} tuples/s`,
        `${num(writeMs / 1000, 1)} s, ${writeBodies.length} requests`,
      )
      const rss = peakRssKiB(server)
      http.pembaCacheOff = {
        check: off,
        ratioToMinimal: off.reqPerSec / minimal.reqPerSec,
        peakRssKiB: rss,
      }
      http.batchCheck = {
        ...hb,
        batchSize: BATCH_SIZE,
        checksPerSec: hb.reqPerSec * BATCH_SIZE,
        correctness: httpCorrect,
      }
      http.write = {
        tuples: sample.length,
        requests: writeBodies.length,
        inFlight: HTTP_WRITE_WORKERS,
        ms: writeMs,
        tuplesPerSec: writePerSec,
      }
    } finally {
      await stopServer(server)
    }

    log(`HTTP: Pemba, cache on (checkCacheSize ${flags.cacheSize}) ...`)
    server = await startServer('src/cli/main.ts', ['serve'], pembaEnv(flags.cacheSize))
    try {
      // all 2000 answers once over HTTP first: they are judged, and they warm the cache
      const onCorrect = await httpAnswers(server.url)
      const on = await cannon(server.url, checkPath, bodies, HTTP_CONNECTIONS, HTTP_SECONDS)
      httpRow(
        `HTTP check, Pemba, cache on, warm (${HTTP_CONNECTIONS} conn, ${HTTP_SECONDS} s)`,
        on,
        `; ${num((on.reqPerSec / minimal.reqPerSec) * 100, 1)}% of minimal; ${correctText(onCorrect)}`,
      )
      const rss = peakRssKiB(server)
      http.pembaCacheOn = {
        check: on,
        ratioToMinimal: on.reqPerSec / minimal.reqPerSec,
        peakRssKiB: rss,
        cacheSize: flags.cacheSize,
        correctness: onCorrect,
        decisionLog: await decisionCounters(server.url),
      }
    } finally {
      await stopServer(server)
    }

    // The same run with the decision log off (it is on by default, as in every run above): what
    // recording every decision costs on the hottest path, a warm cached check.
    log('HTTP: Pemba, cache on, decision log off ...')
    server = await startServer('src/cli/main.ts', ['serve'], pembaEnv(flags.cacheSize, { PEMBA_DECISION_LOG: 'off' }))
    try {
      const offCorrect = await httpAnswers(server.url)
      const logOff = await cannon(server.url, checkPath, bodies, HTTP_CONNECTIONS, HTTP_SECONDS)
      httpRow(
        `HTTP check, Pemba, cache on, warm, decision log off (${HTTP_CONNECTIONS} conn, ${HTTP_SECONDS} s)`,
        logOff,
        `; ${num((logOff.reqPerSec / minimal.reqPerSec) * 100, 1)}% of minimal; ${correctText(offCorrect)}`,
      )
      const on = (http.pembaCacheOn as { check: HttpFigure; decisionLog: DecisionCounters }).check
      const counters = (http.pembaCacheOn as { decisionLog: DecisionCounters }).decisionLog
      const ratio = on.reqPerSec / logOff.reqPerSec
      row(
        'HTTP check, decision log on / off (cache on, warm)',
        '',
        '',
        '',
        '',
        `${num(ratio, 3)}×`,
        `target ≥ 0.8; on: ${num(counters.recorded)} decisions written, ${num(counters.dropped)} dropped`,
      )
      http.decisionLog = { on, off: logOff, ratio, target: 0.8, counters, correctness: offCorrect }
    } finally {
      await stopServer(server)
    }
    // What the access log and tracing cost (bench/telemetry.ts): three servers, alternated.
    http.telemetry = await telemetryPart({
      dbPath,
      storeId,
      checks: ds.checks,
      expected,
      connections: HTTP_CONNECTIONS,
      // Short runs, many rounds: the pairs compared are seconds apart, not minutes.
      seconds: QUICK ? 2 : 5,
      warmupSeconds: HTTP_WARMUP_SECONDS,
      initialWarmupSeconds: QUICK ? 3 : 10,
      rounds: QUICK ? 3 : 6,
      cacheSize: flags.cacheSize,
      row,
    })
    http.authzen = await authzenRows()
    http.mcp = await mcpRows()
    if (flags.postgres) await postgresPart(http, bodies, minimal, keys, modelDsl, row)
    const pOff = (http.pembaCacheOff as { peakRssKiB?: number }).peakRssKiB
    const pOn = (http.pembaCacheOn as { peakRssKiB?: number }).peakRssKiB
    const pMin = (http.minimal as { peakRssKiB?: number }).peakRssKiB
    if (pOff !== undefined && pOn !== undefined) {
      row(
        'peak RSS, Pemba server child (cache off / on; VmHWM)',
        '',
        '',
        '',
        '',
        '',
        `${mib(pOff)} / ${mib(pOn)}`,
      )
    }
    if (pMin !== undefined)
      row('peak RSS, minimal server child (VmHWM)', '', '', '', '', '', mib(pMin))
  }
  const benchRssKiB = process.resourceUsage().maxRSS
  row(
    'peak RSS, bench process (in-process Pemba + load generator)',
    '',
    '',
    '',
    '',
    '',
    mib(benchRssKiB),
  )
  report.memory = {
    benchPeakRssKiB: benchRssKiB,
    benchPeakRssAfterImportKiB: rssAfterImportKiB,
    benchPeakRssAfterInProcessKiB: benchRssInProcessKiB,
  }

  // 9. the table and the JSON file
  finish({ started, loadStart, ds, datasetMs, expected, params, rows, report, storeId, modelId })
}

/** What the table and the JSON file say about the run. */
interface RunSummary {
  started: Date
  loadStart: number
  ds: ReturnType<typeof loadOrGenerate>
  datasetMs: number
  expected: Expected
  params: { scale: number; seed: number; checks: number }
  rows: string[][]
  report: Record<string, unknown>
  storeId: string
  modelId: string
}

/** finish prints the table and writes every figure to `<out>/bench-<date>.json`. */
function finish(run: RunSummary): void {
  const { started, loadStart, ds, datasetMs, expected, params, rows, report, storeId, modelId } = run
  const loadEnd = os.loadavg()[0]
  const git = gitState()
  const cpus = os.cpus()
  const machine = {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    totalMemGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  }
  const header = ['figure', 'n', 'p50', 'p95', 'p99', 'rate', 'notes']
  const lines = [
    `Pemba bench, ${started.toISOString()}: scale ${flags.scale}, seed ${flags.seed}: ${num(ds.tuples.length)} tuples, ` +
      `${ds.checks.length} checks, ${ds.lookups.length} lookups${QUICK ? ' (--quick)' : ''}`,
    `machine: ${machine.cpuModel}, ${machine.cpuCount} cores, ${machine.totalMemGiB} GiB; Node ${process.version}; ${machine.os}`,
    `code: ${git ? `commit ${git.commit}${git.srcModified ? ' with uncommitted changes in src/' : ''}` : 'unknown'}`,
    `load average (1 min): ${loadStart.toFixed(2)} at the start, ${loadEnd.toFixed(2)} at the end` +
      (loadStart > machine.cpuCount / 2
        ? ' (other work was running: figures are pessimistic)'
        : ''),
    expected.verified
      ? `answers compared with ${expected.dir} (sha256 of the data files verified)`
      : `answers NOT compared: ${expected.mismatch.join('; ')}`,
    flags.importOnly
      ? 'only the import rows (--import-only)'
      : flags.mcpOnly
      ? 'only the MCP gateway rows (--mcp-only)'
      : flags.durabilityOnly
      ? 'only the SQLite durability rows (--durability-only)'
      : flags.beyondMemoryOnly
      ? 'only the rows of a store 10× the index budget (--beyond-memory-only)'
      : flags.closureOnly
      ? 'only the import and the membership closure rows (--closure-only)'
      : flags.indexOnly
      ? `only the tuple index memory rows (--index-only, scales ${flags.indexScales})`
      : flags.soak
      ? `only the memory soak (--soak, ${flags.soakMinutes} min)`
      : flags.authzenOnly
      ? 'only the import and the AuthZEN rows (--authzen-only)'
      : flags.workersOnly
      ? 'only the import and the all-cores rows (--workers-only): autocannon shares the cores with the workers'
      : flags.replicasOnly
      ? 'only the read-replica rows (--replicas-only): autocannon, both replicas and both PostgreSQL servers share the cores'
      : flags.skipHttp
      ? 'HTTP: skipped (--skip-http)'
      : `HTTP: autocannon runs in the bench process and shares the ${machine.cpuCount} cores with the server child`,
    '',
    '| ' + header.join(' | ') + ' |',
    '|' +
      header.map((_, i) => (i === 0 || i === header.length - 1 ? '---' : '---:')).join('|') +
      '|',
    ...rows.map((r) => '| ' + r.join(' | ') + ' |'),
  ]
  console.log(lines.join('\n'))

  const outDir = join(ROOT, flags.out)
  mkdirSync(outDir, { recursive: true })
  const stamp = started.toISOString().replace(/:/g, '').replace(/\..*/, 'Z')
  const outFile = join(outDir, `bench-${stamp}.json`)
  const full = {
    date: started.toISOString(),
    machine,
    node: process.version,
    git,
    loadAverage1m: { start: loadStart, end: loadEnd },
    params: { ...params, quick: QUICK, skipHttp: flags.skipHttp, cacheSize: flags.cacheSize, importOnly: flags.importOnly, authzenOnly: flags.authzenOnly, mcpOnly: flags.mcpOnly, durabilityOnly: flags.durabilityOnly, soak: flags.soak, soakMinutes: flags.soakMinutes },
    dataset: {
      dir: relative(ROOT, ds.dir),
      generated: ds.generated,
      ms: datasetMs,
      stats: ds.manifest.stats,
      sha256: ds.sha256,
      expected: { dir: expected.dir, verified: expected.verified, mismatch: expected.mismatch },
    },
    storeId,
    modelId,
    ...report,
    table: lines.join('\n'),
  }
  writeFileSync(outFile, JSON.stringify(full, null, 2) + '\n')
  log(`\nwrote ${relative(ROOT, outFile)}`)
}

main().then(
  () => {
    killAll()
    process.exit(0)
  },
  (err) => {
    console.error('bench failed:', err)
    killAll()
    process.exit(1)
  },
)
