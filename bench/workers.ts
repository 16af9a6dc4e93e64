/**
 * The all-cores rows of `npm run bench` (issue 20, item 1): HTTP check with PEMBA_WORKERS=1 and
 * with PEMBA_WORKERS=auto (one worker per available core), each as a ratio to the bare Hono
 * route (bench/minimal-server.ts) run with the same number of worker processes, the same
 * node:cluster scheduling. Issue target: at `auto`, Pemba ≥ 0.6 × the bare route.
 *
 * Pemba runs as `pemba serve` on the bench's SQLite file, the store preloaded into the tuple
 * index, the check cache on and warm (a warm-up load on every connection before the first
 * round: with several workers each has its own cache to fill), the decision log on. Every
 * check is asked once over HTTP first and the answers judged against bench/expected/.
 *
 * The four servers (bare and Pemba at each worker count) run side by side; round after round,
 * each is driven in turn by autocannon in the bench process, so the figures compared are
 * seconds apart. autocannon shares the machine's cores with the servers: with `auto` on a
 * 2-core machine, two workers, the cluster's primary and the load generator compete for two
 * cores, so the absolute rates say little and the ratio at the same worker count is the
 * figure. Each row gives the median over the rounds and the CPU time per request of the whole
 * server (primary and workers).
 *
 * `npm run bench -- --workers-only` runs only the data set, its import and this part.
 *
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import {
  cannon,
  correctText,
  httpAnswers,
  json,
  log,
  median,
  ms,
  num,
  startServer,
  stopServer,
  type Correctness,
  type HttpBenchOptions,
  type HttpFigure,
  type Server,
} from './harness.ts'

/** Checks each worker answers before the rounds (5 passes over the scale-1 checks). */
const WARMUP_REQUESTS_PER_WORKER = 10_000
/** At most this many warm-up loads of `initialWarmupSeconds` per server. */
const MAX_WARMUP_ROUNDS = 4

/** initialWarmupSeconds: every worker's JIT and check cache warm. */
export interface WorkersBenchOptions extends HttpBenchOptions {
  batchSize: number
  /** Pemba's environment (run.ts's serverEnv with the cache on), PEMBA_WORKERS added here. */
  env: Record<string, string>
}

interface Variant {
  name: string
  workers: number
  server?: Server
  runs: (HttpFigure & { cpuUsPerRequest?: number })[]
  correctness?: Correctness
}

/** CPU seconds (user + system) of a process and all its descendants; undefined off Linux. */
function treeCpuSeconds(pid: number): number | undefined {
  let total = 0
  const visit = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12])) / 100
      for (const t of readdirSync(`/proc/${p}/task`)) {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) visit(Number(c))
      }
    } catch {
      // gone, or not Linux
    }
  }
  visit(pid)
  return total > 0 ? total : undefined
}

export async function workersPart(o: WorkersBenchOptions): Promise<Record<string, unknown>> {
  const auto = os.availableParallelism()
  const checkPath = `/stores/${o.storeId}/check`
  const bodies = o.checks.map((c) => json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } }))
  const counts = auto > 1 ? [1, auto] : [1]
  const variants: Variant[] = counts.flatMap((w) => [
    { name: `bare Hono route, ${w} worker${w > 1 ? 's' : ''}`, workers: w, runs: [] },
    { name: `Pemba, PEMBA_WORKERS=${w === 1 ? '1' : `auto (${w})`}`, workers: w, runs: [] },
  ])
  const isPemba = (v: Variant) => v.name.startsWith('Pemba')
  /**
   * warmUp loads a server until each of its workers has answered about WARMUP_REQUESTS_PER_WORKER
   * checks (or MAX_WARMUP_ROUNDS loads of initialWarmupSeconds have passed). A fixed time is not
   * enough: a Pemba worker's CPU per request falls ~8× over its first ~10,000 requests (JIT tier-up,
   * its own check cache and membership closure), and on a loaded machine 8 s at `auto` gave each
   * worker only a few thousand, so the rounds measured warm-up, not the server.
   */
  const warmUp = async (v: Variant, url: string) => {
    const started = performance.now()
    let served = 0
    for (let i = 0; i < MAX_WARMUP_ROUNDS && served < WARMUP_REQUESTS_PER_WORKER * v.workers; i++)
      served += (await cannon(url, checkPath, bodies, o.connections, o.initialWarmupSeconds, 0)).requests
    log(`workers: ${v.name} warmed up with ${num(served)} checks in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
  const loadStart = os.loadavg()[0]
  try {
    for (const v of variants) {
      log(`workers: starting ${v.name} ...`)
      v.server = isPemba(v)
        ? await startServer('src/cli/main.ts', ['serve'], { ...o.env, PEMBA_WORKERS: String(v.workers), PEMBA_DECISION_LOG: 'on' })
        : await startServer('bench/minimal-server.ts', [], { PORT: '0', WORKERS: String(v.workers) })
      if (isPemba(v)) v.correctness = (await httpAnswers(v.server.url, o.storeId, o.checks, o.expected, o.batchSize)).correctness
      if (o.initialWarmupSeconds > 0) await warmUp(v, v.server.url)
    }
    for (let round = 0; round < o.rounds; round++) {
      // The order alternates by round: neither side always runs first.
      const order = round % 2 === 0 ? variants : [...variants].reverse()
      for (const v of order) {
        log(`workers: round ${round + 1}/${o.rounds}, ${v.name}, ${o.connections} connections, ${o.seconds} s ...`)
        const server = v.server!
        if (o.warmupSeconds > 0) await cannon(server.url, checkPath, bodies, o.connections, o.warmupSeconds, 0)
        const before = treeCpuSeconds(server.child.pid!)
        const f = await cannon(server.url, checkPath, bodies, o.connections, o.seconds, 0)
        const after = treeCpuSeconds(server.child.pid!)
        const cpuUsPerRequest = before !== undefined && after !== undefined && f.requests > 0 ? ((after - before) / f.requests) * 1e6 : undefined
        v.runs.push({ ...f, cpuUsPerRequest })
      }
    }
  } finally {
    for (const v of variants) if (v.server) await stopServer(v.server)
  }
  const loadEnd = os.loadavg()[0]
  const rate = (v: Variant) => median(v.runs.map((r) => r.reqPerSec))
  const cpu = (v: Variant) => median(v.runs.map((r) => r.cpuUsPerRequest ?? NaN))
  const figures: Record<string, unknown> = {
    note:
      'four servers side by side (bare Hono route and Pemba, at 1 worker and at auto); each driven in turn by autocannon ' +
      'in the bench process, round after round, order alternating; medians over the rounds; CPU per request of the whole ' +
      'process tree (primary and workers)',
    availableParallelism: auto,
    loadAverage1m: { start: loadStart, end: loadEnd },
  }
  for (const v of variants) {
    const r = rate(v)
    const c = cpu(v)
    o.row(
      `HTTP check, ${v.name} (${o.connections} conn, median of ${o.rounds} × ${o.seconds} s)`,
      num(v.runs.reduce((s, x) => s + x.requests, 0)),
      ms(median(v.runs.map((x) => x.p50Ms))),
      '',
      ms(median(v.runs.map((x) => x.p99Ms))),
      `${num(r)} req/s`,
      `CPU ${Number.isNaN(c) ? '?' : num(c)} µs/request; non-2xx ${v.runs.reduce((s, x) => s + x.non2xx, 0)}, errors ${v.runs.reduce((s, x) => s + x.errors, 0)}` +
        (v.correctness ? `; ${correctText(v.correctness)}` : ''),
    )
    figures[v.name] = { workers: v.workers, runs: v.runs, medianReqPerSec: r, cpuUsPerRequest: c, correctness: v.correctness }
  }
  for (const w of counts) {
    const [bare, pemba] = variants.filter((v) => v.workers === w)
    const perRound = pemba.runs.map((r, i) => r.reqPerSec / bare.runs[i].reqPerSec)
    const ratio = rate(pemba) / rate(bare)
    o.row(
      `HTTP check, Pemba / bare Hono route, ${w} worker${w > 1 ? 's' : ''}`,
      '',
      '',
      '',
      '',
      `${num(ratio, 2)}×`,
      `per round ${perRound.map((x) => num(x, 2)).join(', ')}; load average ${loadStart.toFixed(2)} → ${loadEnd.toFixed(2)}` +
        (w > 1 ? '; target ≥ 0.6×' : ''),
    )
    figures[`ratio${w === 1 ? 'One' : 'Auto'}`] = { workers: w, ratio, perRound }
  }
  if (counts.length > 1) {
    const [one, many] = counts.map((w) => rate(variants.find((v) => isPemba(v) && v.workers === w)!))
    o.row(`HTTP check, Pemba at auto (${auto}) / at 1 worker`, '', '', '', '', `${num(many / one, 2)}×`, 'same run; autocannon shares the cores')
    figures.scaling = many / one
  }
  return figures
}
