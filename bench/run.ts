/**
 * `npm run bench`: loads the benchmark data set into a fresh Pemba and measures, in one run,
 * bulk import, in-process Check (cache off and warm), batch check, list-objects, Check over
 * loopback HTTP against a server child process (with a minimal Hono server as the baseline) and
 * peak memory; checks every answer against bench/expected/. Prints one table and writes every
 * figure to `<out>/bench-<date>.json`. See bench/README.md.
 *
 *   npm run bench -- [--scale 1] [--seed 42] [--quick] [--skip-http] [--out bench/out]
 *                    [--cache-size 100000] [--lookups] [--max-minutes N]
 *
 * This is a benchmark, not a test: it never fails on a slow figure, only on a wrong setup.
 *
 * @module
 */
import autocannon, { type Result as CannonResult } from 'autocannon'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../src/config.ts'
import { createPemba, type Pemba } from '../src/server.ts'
import {
  DATA_FILES,
  loadOrGenerate,
  parseFlags,
  tupleKey,
  type CheckRequest,
  type LoadedDataset,
  type LookupRequest,
  type Manifest,
} from './dataset.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const TSX = join(ROOT, 'node_modules/.bin/tsx')
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
})
const QUICK = flags.quick
const HTTP_SECONDS = QUICK ? 3 : 10
const HTTP_WARMUP_SECONDS = QUICK ? 0.5 : 1
const HTTP_BATCH_SECONDS = QUICK ? 2 : 5
const HTTP_WRITE_SAMPLE = QUICK ? 5_000 : 20_000

// ---- process hygiene: every child is killed, whatever happens ----------------------------

const children = new Set<ChildProcess>()

function killAll(): void {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid, 'SIGKILL') // the child's own process group (tsx runs node under it)
      } catch {
        // already gone
      }
    }
  }
  children.clear()
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping the children and exiting`)
    killAll()
    process.exit(130)
  })
}
const maxMinutes = flags.maxMinutes || (flags.scale > 1 ? 60 : 20)
setTimeout(() => {
  console.error(`bench: gave up after ${maxMinutes} minutes (--max-minutes)`)
  killAll()
  process.exit(1)
}, maxMinutes * 60_000).unref()

// ---- small helpers -------------------------------------------------------------------------

const log = (s: string) => console.error(s)

interface LatencyStats {
  n: number
  p50Us: number
  p95Us: number
  p99Us: number
  maxUs: number
  meanUs: number
  /** n / (sum of the latencies): sequential throughput. */
  perSec: number
}

function stats(samplesMs: number[]): LatencyStats {
  const s = Float64Array.from(samplesMs).sort()
  const n = s.length
  const at = (q: number) => (n ? s[Math.min(n - 1, Math.ceil(q * n) - 1)] * 1000 : 0)
  const sum = s.reduce((a, b) => a + b, 0)
  return {
    n,
    p50Us: at(0.5),
    p95Us: at(0.95),
    p99Us: at(0.99),
    maxUs: n ? s[n - 1] * 1000 : 0,
    meanUs: n ? (sum / n) * 1000 : 0,
    perSec: sum ? n / (sum / 1000) : 0,
  }
}

const num = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
const us = (x: number) =>
  x < 1000 ? `${num(x)} µs` : x < 100_000 ? `${num(x / 1000, 2)} ms` : `${num(x / 1000)} ms`
const ms = (x: number) => us(x * 1000)
const mib = (kib: number) => `${num(kib / 1024)} MiB`

function json(x: unknown): string {
  return JSON.stringify(x)
}

async function withTimeout<T>(p: Promise<T>, msTimeout: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${msTimeout} ms`)),
      msTimeout,
    )
  })
  try {
    return await Promise.race([p, t])
  } finally {
    clearTimeout(timer)
  }
}

/** The code measured: the commit, and whether src/ differs from it. */
function gitState(): { commit: string; srcModified: boolean } | undefined {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim()
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      srcModified: git('status', '--porcelain', 'src').length > 0,
    }
  } catch {
    return undefined
  }
}

// ---- expected answers ----------------------------------------------------------------------

interface Expected {
  dir: string
  /** The data set's files hash to what the expected answers were computed on. */
  verified: boolean
  mismatch: string[]
  checks?: Map<number, boolean>
  lookups?: Map<number, string[]>
}

function loadExpected(ds: LoadedDataset): Expected {
  const { scale, seed, checks } = ds.manifest.params
  const dir = join(ROOT, 'bench/expected', `scale-${scale}-seed-${seed}`)
  const out: Expected = { dir: relative(ROOT, dir), verified: false, mismatch: [] }
  if (checks !== 2000 || !existsSync(join(dir, 'manifest.json'))) {
    out.mismatch.push('no expected answers for these parameters')
    return out
  }
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest
  for (const name of DATA_FILES) {
    if (m.sha256[name] !== ds.sha256[name])
      out.mismatch.push(`${name}: ${ds.sha256[name]} != ${m.sha256[name]}`)
  }
  if (out.mismatch.length) return out
  out.verified = true
  const rows = (file: string) =>
    readFileSync(join(dir, file), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  if (existsSync(join(dir, 'checks.expected.jsonl'))) {
    out.checks = new Map(
      rows('checks.expected.jsonl').map((r: CheckRequest & { expected: boolean }) => [
        r.id,
        r.expected,
      ]),
    )
  }
  if (existsSync(join(dir, 'lookups.expected.jsonl'))) {
    out.lookups = new Map(
      rows('lookups.expected.jsonl').map((r: LookupRequest & { resourceIds: string[] }) => [
        r.id,
        r.resourceIds,
      ]),
    )
  }
  return out
}

interface Correctness {
  compared: boolean
  correct: number
  wrong: number
  errors: number
  of: number
  /** The first few wrong or failed checks. */
  examples: string[]
}

function judge(
  checks: CheckRequest[],
  answers: (boolean | string)[],
  expected: Expected,
): Correctness {
  const c: Correctness = {
    compared: false,
    correct: 0,
    wrong: 0,
    errors: 0,
    of: checks.length,
    examples: [],
  }
  answers.forEach((a) => {
    if (typeof a === 'string') c.errors++
  })
  if (!expected.checks) return c
  c.compared = true
  checks.forEach((ch, i) => {
    const a = answers[i]
    const want = expected.checks!.get(ch.id)
    if (a === want) return void c.correct++
    if (typeof a === 'boolean') c.wrong++
    if (c.examples.length < 5) {
      c.examples.push(
        `#${ch.id} ${ch.kind} ${ch.resource}#${ch.permission}@${ch.subject}: ${a} (want ${want})`,
      )
    }
  })
  return c
}

const correctText = (c: Correctness) =>
  c.compared
    ? `${c.correct}/${c.of} correct${c.errors ? `, ${c.errors} errors` : ''}`
    : c.errors
      ? `${c.errors} errors`
      : ''

// ---- in-process measurements ---------------------------------------------------------------

/**
 * "cache off" turns off every cross-request cache of answers or query results (the check cache
 * and the tuple cache); the tuple index, a replica of the tuples kept in step with every write,
 * stays on as it is by default. "index off" turns it off too: each check then reads SQLite.
 * "cache on" is the defaults with `cacheSize` check entries.
 */
function cacheEnv(cacheSize: number, index = true): Record<string, string> {
  const indexEnv: Record<string, string> = index ? {} : { PEMBA_TUPLE_INDEX_MAX_TUPLES: '0' }
  return cacheSize === 0
    ? { PEMBA_CHECK_CACHE_SIZE: '0', PEMBA_TUPLE_CACHE_SIZE: '0', ...indexEnv }
    : { PEMBA_CHECK_CACHE_SIZE: String(cacheSize), ...indexEnv }
}

function pembaConfig(dbPath: string, cacheSize: number, index = true) {
  return loadConfig({
    env: { PEMBA_DATABASE_URL: `sqlite:${dbPath}`, ...cacheEnv(cacheSize, index) },
    argv: [],
  })
}

async function request(
  pemba: Pemba,
  method: string,
  path: string,
  body: string,
  type = 'application/json',
) {
  const res = await pemba.app.request(path, { method, body, headers: { 'content-type': type } })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text) as Record<string, string>
}

interface CheckPass {
  wallMs: number
  mixed: LatencyStats
  byKind: Record<string, LatencyStats>
  answers: (boolean | string)[]
}

async function checkPass(
  pemba: Pemba,
  storeId: string,
  checks: CheckRequest[],
): Promise<CheckPass> {
  const all: number[] = []
  const byKind = new Map<string, number[]>()
  const answers: (boolean | string)[] = []
  const t0 = performance.now()
  for (const c of checks) {
    const tupleKey = { user: c.subject, relation: c.permission, object: c.resource }
    const t = performance.now()
    let answer: boolean | string
    try {
      answer = (await pemba.authz.check(storeId, { tupleKey })).allowed
    } catch (e) {
      answer = `error: ${(e as Error).message}`
    }
    const dt = performance.now() - t
    all.push(dt)
    let k = byKind.get(c.kind)
    if (!k) byKind.set(c.kind, (k = []))
    k.push(dt)
    answers.push(answer)
  }
  const wallMs = performance.now() - t0
  const mixed = { ...stats(all), perSec: checks.length / (wallMs / 1000) }
  return {
    wallMs,
    mixed,
    byKind: Object.fromEntries([...byKind].map(([k, v]) => [k, stats(v)])),
    answers,
  }
}

function batches(checks: CheckRequest[]) {
  const out: {
    correlationId: string
    tupleKey: { user: string; relation: string; object: string }
  }[][] = []
  for (let i = 0; i < checks.length; i += BATCH_SIZE) {
    out.push(
      checks.slice(i, i + BATCH_SIZE).map((c) => ({
        correlationId: String(c.id),
        tupleKey: { user: c.subject, relation: c.permission, object: c.resource },
      })),
    )
  }
  return out
}

async function batchPass(pemba: Pemba, storeId: string, checks: CheckRequest[]) {
  const answers = new Map<string, boolean | string>()
  const t0 = performance.now()
  for (const b of batches(checks)) {
    const r = await pemba.authz.batchCheck(storeId, { checks: b })
    for (const [id, o] of Object.entries(r.result))
      answers.set(id, 'allowed' in o ? o.allowed : `error: ${o.error.message}`)
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
      const r = await pemba.authz.listObjects(storeId, {
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

interface Server {
  child: ChildProcess
  script: string
  url: string
  stderr: string[]
}

async function startServer(
  script: string,
  args: string[],
  env: Record<string, string>,
): Promise<Server> {
  const child = spawn(TSX, [script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so that the whole tree can be killed by the group id
  })
  children.add(child)
  const stderr: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 50) stderr.push(d)
  })
  const url = await withTimeout(
    new Promise<string>((resolve, reject) => {
      let buf = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d
        const m = /listening on (http:\/\/\S+)/.exec(buf)
        if (m) resolve(m[1])
      })
      child.on('exit', (code) =>
        reject(new Error(`${script} exited (${code}) before listening: ${stderr.join('')}`)),
      )
    }),
    60_000,
    `${script} start`,
  ).catch((e) => {
    void stopServer({ child, script, url: '', stderr })
    throw e
  })
  return { child, script, url, stderr }
}

/**
 * The process that serves: the deepest descendant of the tsx launcher whose command line names
 * the script (tsx runs it in a child node process, which may itself start helpers, e.g. esbuild).
 */
function servingPid(pid: number, script: string): number {
  const childrenOf = (p: number): number[] => {
    try {
      return readdirSync(`/proc/${p}/task`).flatMap((t) =>
        readFileSync(`/proc/${p}/task/${t}/children`, 'utf8')
          .split(' ')
          .filter(Boolean)
          .map(Number),
      )
    } catch {
      return []
    }
  }
  const cmdline = (p: number): string => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')
    } catch {
      return ''
    }
  }
  let best = pid
  let level = [pid]
  for (let depth = 0; depth < 6 && level.length; depth++) {
    level = level.flatMap(childrenOf)
    for (const p of level) if (cmdline(p).includes(script)) best = p
  }
  return best
}

/** Peak resident set (VmHWM) of the serving process, in KiB; undefined off Linux. */
function peakRssKiB(server: Server): number | undefined {
  if (server.child.pid === undefined) return undefined
  try {
    const status = readFileSync(
      `/proc/${servingPid(server.child.pid, server.script)}/status`,
      'utf8',
    )
    const m = /VmHWM:\s+(\d+) kB/.exec(status)
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

async function stopServer(server: Server): Promise<void> {
  const { child } = server
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    children.delete(child)
    return
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  try {
    process.kill(-child.pid, 'SIGTERM')
  } catch {
    // gone
  }
  await withTimeout(exited, 5_000, 'server stop').catch(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // gone
    }
  })
  children.delete(child)
}

interface HttpFigure {
  connections: number
  seconds: number
  requests: number
  reqPerSec: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  non2xx: number
  errors: number
  timeouts: number
}

async function cannon(
  url: string,
  path: string,
  bodies: string[],
  connections: number,
  seconds: number,
): Promise<HttpFigure> {
  let next = 0
  const r: CannonResult = await autocannon({
    url,
    connections,
    duration: seconds,
    timeout: 30,
    warmup: { connections, duration: HTTP_WARMUP_SECONDS },
    requests: [
      {
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json' },
        // every request takes the next body, so that all connections together cycle the set
        setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }),
      },
    ],
  })
  return {
    connections,
    seconds: r.duration,
    requests: r.requests.total,
    reqPerSec: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  }
}

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

async function post(
  url: string,
  body: unknown,
  type = 'application/json',
): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': type },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${text}`)
  return JSON.parse(text) as Record<string, unknown>
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
    const imported = await pemba.authz.importTuples(storeId, keys)
    importPerSec = imported / ((performance.now() - t0) / 1000)
  } finally {
    await pemba.close()
  }
  row('bulk import on PostgreSQL (authz.importTuples)', num(keys.length), '', '', '', `${num(importPerSec)} tuples/s`, '')
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
    return {
      connections: HTTP_CONNECTIONS,
      seconds: Math.max(x.seconds, y.seconds),
      requests: x.requests + y.requests,
      reqPerSec: x.reqPerSec + y.reqPerSec,
      p50Ms: Math.max(x.p50Ms, y.p50Ms),
      p90Ms: Math.max(x.p90Ms, y.p90Ms),
      p99Ms: Math.max(x.p99Ms, y.p99Ms),
      maxMs: Math.max(x.maxMs, y.maxMs),
      non2xx: x.non2xx + y.non2xx,
      errors: x.errors + y.errors,
      timeouts: x.timeouts + y.timeouts,
    }
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
  log(`importing ${num(keys.length)} tuples through authz.importTuples ...`)
  t = performance.now()
  const imported = await pemba.authz.importTuples(storeId, keys)
  const importMs = performance.now() - t
  const importPerSec = imported / (importMs / 1000)
  const rssAfterImportKiB = process.resourceUsage().maxRSS
  log(`  ${num(imported)} tuples in ${num(importMs)} ms: ${num(importPerSec)} tuples/s`)
  row(
    'bulk import (authz.importTuples, 10k-tuple transactions)',
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

  // 3. the tuple index: the store read into memory, timed, with the heap it takes
  global.gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  t = performance.now()
  const indexed = await pemba.authz.tupleIndexReady(storeId)
  const indexMs = performance.now() - t
  global.gc?.()
  const indexHeapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20
  const indexStats = pemba.authz.tupleIndexStats()
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
  await pemba.authz.tupleIndexReady(storeId)
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
      'sequential checks through pemba.authz.check; cache off (tuple index on) and cache and ' +
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
    const httpAnswers = async (url: string): Promise<Correctness> => {
      const answers = new Map<string, boolean | string>()
      for (const b of batches(ds.checks)) {
        const r = (await post(`${url}/stores/${storeId}/batch-check`, {
          checks: b.map((x) => ({ tuple_key: x.tupleKey, correlation_id: x.correlationId })),
        })) as { result: Record<string, { allowed?: boolean; error?: { message: string } }> }
        for (const [id, o] of Object.entries(r.result))
          answers.set(id, o.error ? `error: ${o.error.message}` : !!o.allowed)
      }
      return judge(
        ds.checks,
        ds.checks.map((c) => answers.get(String(c.id)) ?? 'missing'),
        expected,
      )
    }
    const pembaEnv = (cacheSize: number, extra: Record<string, string> = {}) => ({
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite:${dbPath}`,
      // Measured warm: the store is in the tuple index before the server listens.
      PEMBA_TUPLE_INDEX_PRELOAD: 'on',
      ...cacheEnv(cacheSize),
      ...extra,
    })
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

  // 8. the table and the JSON file
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
    flags.skipHttp
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
    params: { ...params, quick: QUICK, skipHttp: flags.skipHttp, cacheSize: flags.cacheSize },
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
