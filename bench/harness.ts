/**
 * What the bench scripts share: latency statistics and number formatting, the expected answers
 * and their judging, one in-process check pass, server child processes (started in their own
 * process group, so that the whole tsx → node tree can be killed) and the autocannon wrapper.
 * `bench/run.ts` (`npm run bench`) and `bench/ab.ts` (the A/B of two checkouts) import it; it
 * runs nothing at import.
 *
 * @module
 */
import autocannon, { type Result as CannonResult } from 'autocannon'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DATA_FILES, type CheckRequest, type LoadedDataset, type LookupRequest, type Manifest } from './dataset.ts'

/** This checkout's root (bench/..). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

export const log = (s: string) => console.error(s)

// ---- process hygiene: every child is killed, whatever happens ----------------------------

const children = new Set<ChildProcess>()

/** killAll kills every server child still running, with its whole process group. */
export function killAll(): void {
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

/**
 * guardChildren kills the children on exit, on SIGINT/SIGTERM, and after `maxMinutes` (then
 * exits 1): a bench run never leaves a server behind, however it ends.
 */
export function guardChildren(maxMinutes: number, name = 'bench'): void {
  process.on('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping the children and exiting`)
      killAll()
      process.exit(130)
    })
  }
  setTimeout(() => {
    console.error(`${name}: gave up after ${maxMinutes} minutes (--max-minutes)`)
    killAll()
    process.exit(1)
  }, maxMinutes * 60_000).unref()
}

// ---- small helpers -------------------------------------------------------------------------

export interface LatencyStats {
  n: number
  p50Us: number
  p95Us: number
  p99Us: number
  maxUs: number
  meanUs: number
  /** n / (sum of the latencies): sequential throughput. */
  perSec: number
}

export function stats(samplesMs: number[]): LatencyStats {
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

/** median of a non-empty list (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export const num = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
export const us = (x: number) =>
  x < 1000 ? `${num(x)} µs` : x < 100_000 ? `${num(x / 1000, 2)} ms` : `${num(x / 1000)} ms`
export const ms = (x: number) => us(x * 1000)
export const mib = (kib: number) => `${num(kib / 1024)} MiB`

export function json(x: unknown): string {
  return JSON.stringify(x)
}

export async function withTimeout<T>(p: Promise<T>, msTimeout: number, what: string): Promise<T> {
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

/** The code measured in checkout `root`: the commit, and whether src/ differs from it. */
export function gitState(root = ROOT): { commit: string; srcModified: boolean } | undefined {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim()
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      srcModified: git('status', '--porcelain', 'src').length > 0,
    }
  } catch {
    return undefined
  }
}

// ---- expected answers ----------------------------------------------------------------------

export interface Expected {
  dir: string
  /** The data set's files hash to what the expected answers were computed on. */
  verified: boolean
  mismatch: string[]
  checks?: Map<number, boolean>
  lookups?: Map<number, string[]>
}

export function loadExpected(ds: LoadedDataset): Expected {
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

export interface Correctness {
  compared: boolean
  correct: number
  wrong: number
  errors: number
  of: number
  /** The first few wrong or failed checks. */
  examples: string[]
}

export function judge(
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

export const correctText = (c: Correctness) =>
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
export function cacheEnv(cacheSize: number, index = true): Record<string, string> {
  const indexEnv: Record<string, string> = index ? {} : { PEMBA_TUPLE_INDEX_MAX_TUPLES: '0' }
  return cacheSize === 0
    ? { PEMBA_CHECK_CACHE_SIZE: '0', PEMBA_TUPLE_CACHE_SIZE: '0', ...indexEnv }
    : { PEMBA_CHECK_CACHE_SIZE: String(cacheSize), ...indexEnv }
}

/** The part of a Pemba instance that {@link request} needs: its HTTP app. */
export interface HasApp {
  app: { request(path: string, init: RequestInit): Response | Promise<Response> }
}

/** request sends one request to an in-process Pemba's HTTP app and returns its JSON body. */
export async function request(
  pemba: HasApp,
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

/** One Check through a service, e.g. `(storeId, input) => pemba.checks.check(storeId, input)`. */
export type CheckFn = (
  storeId: string,
  input: { tupleKey: { user: string; relation: string; object: string } },
) => Promise<{ allowed: boolean }>

export interface CheckPass {
  wallMs: number
  mixed: LatencyStats
  byKind: Record<string, LatencyStats>
  /** Each check's answer, or `error: <message>`. */
  answers: (boolean | string)[]
}

/** checkPass runs the checks one at a time through `check`, timing each. */
export async function checkPass(
  check: CheckFn,
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
      answer = (await check(storeId, { tupleKey })).allowed
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

/** batches cuts the checks into batch-check items of `size`, correlated by the check's id. */
export function batches(checks: CheckRequest[], size: number) {
  const out: {
    correlationId: string
    tupleKey: { user: string; relation: string; object: string }
  }[][] = []
  for (let i = 0; i < checks.length; i += size) {
    out.push(
      checks.slice(i, i + size).map((c) => ({
        correlationId: String(c.id),
        tupleKey: { user: c.subject, relation: c.permission, object: c.resource },
      })),
    )
  }
  return out
}

// ---- child processes -----------------------------------------------------------------------

export interface Server {
  child: ChildProcess
  script: string
  url: string
  stderr: string[]
  /** The file the child's stdout (its log, one JSON line per event and request) goes to. */
  logFile: string
}

let serverCount = 0

/**
 * startServer runs `tsx <script> <args>` in checkout `cwd` (with that checkout's tsx) in its own
 * process group and resolves with the URL it logs (`listening on <url>`). Its stdout goes to a
 * file under bench-data/logs/ (removed when it stops), not to a pipe: the server then writes
 * its log (an access log line per request, by default) as it would to a file in production,
 * and the bench process, which runs the load generator, does not have to read it.
 */
export async function startServer(
  script: string,
  args: string[],
  env: Record<string, string>,
  cwd = ROOT,
  /** Node's own flags (`--trace-gc`), which tsx hands to the node process it starts. */
  nodeArgs: string[] = [],
): Promise<Server> {
  const logDir = join(ROOT, 'bench-data/logs')
  mkdirSync(logDir, { recursive: true })
  const logFile = join(logDir, `${process.pid}-${++serverCount}-${basename(script, '.ts')}.log`)
  const out = openSync(logFile, 'w')
  const child = spawn(join(cwd, 'node_modules/.bin/tsx'), [...nodeArgs, script, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', out, 'pipe'],
    detached: true, // its own process group, so that the whole tree can be killed by the group id
  })
  closeSync(out)
  children.add(child)
  const stderr: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 50) stderr.push(d)
  })
  const server: Server = { child, script, url: '', stderr, logFile }
  server.url = await withTimeout(
    new Promise<string>((resolve, reject) => {
      const poll = setInterval(() => {
        // The JSON line (`"msg":"listening on http://…"`) or a plain one.
        const m = /listening on (http:\/\/[^\s"]+)/.exec(readFileSync(logFile, 'utf8'))
        if (m) {
          clearInterval(poll)
          resolve(m[1])
        }
      }, 50)
      child.on('exit', (code) => {
        clearInterval(poll)
        reject(new Error(`${script} exited (${code}) before listening: ${stderr.join('')}${readFileSync(logFile, 'utf8').slice(0, 2000)}`))
      })
    }),
    60_000,
    `${script} start`,
  ).catch((e) => {
    void stopServer(server)
    throw e
  })
  return server
}

/**
 * The process that serves: the deepest descendant of the tsx launcher whose command line names
 * the script (tsx runs it in a child node process, which may itself start helpers, e.g. esbuild).
 */
export function servingPid(pid: number, script: string): number {
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

/**
 * CPU time (user + system, every thread) the serving process has used so far, in seconds;
 * undefined off Linux. The difference over a run, per request, is a figure that other work on
 * the machine disturbs far less than a rate does.
 */
export function cpuSeconds(server: Server): number | undefined {
  if (server.child.pid === undefined) return undefined
  try {
    const stat = readFileSync(`/proc/${servingPid(server.child.pid, server.script)}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces, inside parentheses): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (USER_HZ, 100 on Linux).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** Peak resident set (VmHWM) of the serving process, in KiB; undefined off Linux. */
export function peakRssKiB(server: Server): number | undefined {
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

/** stopServer sends SIGTERM to the server's process group, SIGKILL after 5 s. */
export async function stopServer(server: Server): Promise<void> {
  const { child } = server
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    children.delete(child)
    rmSync(server.logFile, { force: true })
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
  rmSync(server.logFile, { force: true })
}

/**
 * What the HTTP bench parts (workers, telemetry, AuthZEN) are given: the data set's store and
 * checks with their expected answers, the load, and where a table row goes.
 */
export interface HttpBenchOptions {
  dbPath: string
  storeId: string
  checks: CheckRequest[]
  expected: Expected
  connections: number
  seconds: number
  /** Load before each measured run. */
  warmupSeconds: number
  /** Load on each server before the first round, so that the JIT and caches are warm. */
  initialWarmupSeconds: number
  rounds: number
  /** Adds one table row. */
  row: (...cells: (string | number)[]) => void
}

export interface HttpFigure {
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

/**
 * Two loads run at once on two servers (half the connections each) as one figure: counts and
 * rates summed, each latency the worse of the two.
 */
export function bothFigure(connections: number, x: HttpFigure, y: HttpFigure): HttpFigure {
  return {
    connections,
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

/**
 * cannon drives `POST <url><path>` with autocannon: `connections` connections for `seconds`
 * after a warm-up of `warmupSeconds`, each request taking the next of `bodies`.
 */
export async function cannon(
  url: string,
  path: string,
  bodies: string[],
  connections: number,
  seconds: number,
  warmupSeconds: number,
): Promise<HttpFigure> {
  let next = 0
  const r: CannonResult = await autocannon({
    url,
    connections,
    duration: seconds,
    timeout: 30,
    ...(warmupSeconds > 0 ? { warmup: { connections, duration: warmupSeconds } } : {}),
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

export async function post(
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

/**
 * httpAnswers asks a server every check once over `/batch-check` (`batchSize` at a time) and
 * judges the answers; it also fills the server's check cache when that is on.
 */
export async function httpAnswers(
  url: string,
  storeId: string,
  checks: CheckRequest[],
  expected: Expected,
  batchSize: number,
): Promise<{ correctness: Correctness; answers: (boolean | string)[] }> {
  const answers = new Map<string, boolean | string>()
  for (const b of batches(checks, batchSize)) {
    const r = (await post(`${url}/stores/${storeId}/batch-check`, {
      checks: b.map((x) => ({ tuple_key: x.tupleKey, correlation_id: x.correlationId })),
    })) as { result: Record<string, { allowed?: boolean; error?: { message: string } }> }
    for (const [id, o] of Object.entries(r.result))
      answers.set(id, o.error ? `error: ${o.error.message}` : !!o.allowed)
  }
  const list = checks.map((c) => answers.get(String(c.id)) ?? 'missing')
  return { correctness: judge(checks, list, expected), answers: list }
}
