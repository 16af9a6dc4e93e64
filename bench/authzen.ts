/**
 * What AuthZEN costs against Pemba's own API, over HTTP, in one run: the same 2000 questions
 * of the data set asked as `POST /stores/{id}/check` and as `POST /stores/{id}/access/v1/evaluation`
 * (issue 18's target: the evaluation at ≥ 0.95× the check's rate), and the same batches of 50
 * as `/batch-check` and as `/access/v1/evaluations` (`execute_all`, the default semantic).
 *
 * One server child per cache setting (cache off, and cache on and warm), started once; on each,
 * the two endpoints of a pair are driven in turn by autocannon, round after round with the
 * order alternating, so that a pair's figures are seconds apart on the same process (this
 * machine's figures drift by 20–30 % between processes and minutes). Each row gives the median
 * rate over the rounds and the serving process's CPU time per request; the ratio rows give
 * AuthZEN / Pemba's API from the medians, per round, and from the CPU time per request (which
 * other work on the machine disturbs far less than a rate). Before it is measured, every
 * question is asked once through each AuthZEN endpoint and the answers are judged against
 * bench/expected/.
 *
 * `run.ts` calls {@link authzenPart} at the end of its HTTP part; `npm run bench --
 * --authzen-only` runs only the data set, its import and this part.
 *
 * @module
 */
import type { CheckRequest } from './dataset.ts'
import {
  cannon,
  correctText,
  cpuSeconds,
  json,
  judge,
  log,
  median,
  ms,
  num,
  post,
  startServer,
  stopServer,
  type Correctness,
  type HttpBenchOptions,
  type HttpFigure,
  type Server,
} from './harness.ts'

/** initialWarmupSeconds: the JIT warms both paths. row: figure, n, p50, p95, p99, rate, notes. */
export interface AuthzenBenchOptions extends HttpBenchOptions {
  /** Connections of the single-request runs (the HTTP check rows use 64). */
  connections: number
  /** Connections of the batch runs (the HTTP batch-check row uses 8). */
  batchConnections: number
  batchSize: number
  batchSeconds: number
  /** `checkCacheSize` of the "cache on" server (the "cache off" one uses 0). */
  cacheSize: number
  /** The server's environment for a cache size (run.ts's pembaEnv). */
  env: (cacheSize: number) => Record<string, string>
}

/** One endpoint of a pair: where it is, its bodies, and how many questions one request asks. */
interface Side {
  name: string
  path: string
  bodies: string[]
  perRequest: number
  connections: number
  seconds: number
  runs: (HttpFigure & { cpuUsPerRequest?: number })[]
}

/** The AuthZEN evaluation of a data-set check: `document:d1#view@user:u2` as entities. */
export function evaluationOf(c: CheckRequest) {
  const split = (s: string) => {
    const i = s.indexOf(':')
    return { type: s.slice(0, i), id: s.slice(i + 1) }
  }
  return { subject: split(c.subject), action: { name: c.permission }, resource: split(c.resource) }
}

/**
 * authzenAnswers asks every question once through `/access/v1/evaluation` (8 in flight) and once
 * through `/access/v1/evaluations` (`batchSize` items a request) and judges both sets of answers.
 */
async function authzenAnswers(url: string, o: AuthzenBenchOptions): Promise<{ single: Correctness; batch: Correctness }> {
  const base = `${url}/stores/${o.storeId}/access/v1`
  const single: (boolean | string)[] = new Array(o.checks.length)
  let next = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < o.checks.length) {
        const i = next++
        try {
          const r = (await post(`${base}/evaluation`, evaluationOf(o.checks[i]))) as { decision?: unknown }
          single[i] = typeof r.decision === 'boolean' ? r.decision : `error: no boolean decision in ${JSON.stringify(r)}`
        } catch (e) {
          single[i] = `error: ${(e as Error).message}`
        }
      }
    }),
  )
  const batch: (boolean | string)[] = []
  for (let i = 0; i < o.checks.length; i += o.batchSize) {
    const part = o.checks.slice(i, i + o.batchSize)
    try {
      const r = (await post(`${base}/evaluations`, { evaluations: part.map(evaluationOf) })) as { evaluations?: { decision?: unknown }[] }
      part.forEach((_, k) => {
        const d = r.evaluations?.[k]?.decision
        batch.push(typeof d === 'boolean' ? d : `error: item ${k}: ${JSON.stringify(r.evaluations?.[k])}`)
      })
    } catch (e) {
      for (const _ of part) batch.push(`error: ${(e as Error).message}`)
    }
  }
  return { single: judge(o.checks, single, o.expected), batch: judge(o.checks, batch, o.expected) }
}

/** measure drives one side for `seconds`, with the serving process's CPU time per request. */
async function measure(server: Server, side: Side, warmupSeconds: number) {
  if (warmupSeconds > 0) await cannon(server.url, side.path, side.bodies, side.connections, warmupSeconds, 0)
  const before = cpuSeconds(server)
  const f = await cannon(server.url, side.path, side.bodies, side.connections, side.seconds, 0)
  const after = cpuSeconds(server)
  const cpuUsPerRequest = before !== undefined && after !== undefined && f.requests > 0 ? ((after - before) * 1e6) / f.requests : undefined
  side.runs.push({ ...f, cpuUsPerRequest })
}

const rate = (s: Side) => median(s.runs.map((r) => r.reqPerSec)) * s.perRequest
const cpu = (s: Side) => median(s.runs.map((r) => r.cpuUsPerRequest ?? NaN)) / s.perRequest

/** authzenPart measures the pairs on both servers (see the module comment) and adds their rows. */
export async function authzenPart(o: AuthzenBenchOptions): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {
    note: 'one server per cache setting; the two endpoints of a pair driven in turn, the order alternating by round; ratios of the medians',
    target: 0.95,
  }
  const checkBodies = o.checks.map((c) => json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } }))
  const evaluationBodies = o.checks.map((c) => json(evaluationOf(c)))
  const batchCheckBodies: string[] = []
  const evaluationsBodies: string[] = []
  for (let i = 0; i < o.checks.length; i += o.batchSize) {
    const part = o.checks.slice(i, i + o.batchSize)
    batchCheckBodies.push(
      json({ checks: part.map((c) => ({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource }, correlation_id: String(c.id) })) }),
    )
    evaluationsBodies.push(json({ evaluations: part.map(evaluationOf) }))
  }
  for (const [cacheSize, label] of [
    [0, 'cache off'],
    [o.cacheSize, 'cache on, warm'],
  ] as const) {
    const key = cacheSize === 0 ? 'cacheOff' : 'cacheOn'
    const side = (name: string, path: string, bodies: string[], perRequest: number, batch: boolean): Side => ({
      name,
      path: `/stores/${o.storeId}${path}`,
      bodies,
      perRequest,
      connections: batch ? o.batchConnections : o.connections,
      seconds: batch ? o.batchSeconds : o.seconds,
      runs: [],
    })
    const pairs: [Side, Side][] = [
      [side('/check', '/check', checkBodies, 1, false), side('/access/v1/evaluation', '/access/v1/evaluation', evaluationBodies, 1, false)],
      [
        side(`/batch-check (${o.batchSize} checks)`, '/batch-check', batchCheckBodies, o.batchSize, true),
        side(`/access/v1/evaluations (${o.batchSize} items, execute_all)`, '/access/v1/evaluations', evaluationsBodies, o.batchSize, true),
      ],
    ]
    log(`AuthZEN: starting Pemba, ${label} ...`)
    const server = await startServer('src/cli/main.ts', ['serve'], o.env(cacheSize))
    let correctness: { single: Correctness; batch: Correctness }
    try {
      // Every answer once through each AuthZEN endpoint (judged), which also fills the cache.
      correctness = await authzenAnswers(server.url, o)
      for (const s of pairs.flat()) {
        log(`AuthZEN, ${label}: warming ${s.name} for ${o.initialWarmupSeconds} s ...`)
        await cannon(server.url, s.path, s.bodies, s.connections, o.initialWarmupSeconds, 0)
      }
      for (let round = 0; round < o.rounds; round++) {
        for (const pair of pairs) {
          for (const s of round % 2 === 0 ? pair : [pair[1], pair[0]]) {
            log(`AuthZEN, ${label}: round ${round + 1}/${o.rounds}, ${s.name}, ${s.connections} connections, ${s.seconds} s ...`)
            await measure(server, s, o.warmupSeconds)
          }
        }
      }
    } finally {
      await stopServer(server)
    }
    const figures: Record<string, unknown> = { correctness }
    for (const [pemba, authzen] of pairs) {
      const batch = pemba.perRequest > 1
      const unit = batch ? 'checks/s' : 'req/s'
      for (const s of [pemba, authzen]) {
        const non2xx = s.runs.reduce((n, r) => n + r.non2xx + r.errors, 0)
        const judged = s === authzen ? `; ${correctText(batch ? correctness.batch : correctness.single)}` : ''
        o.row(
          `HTTP ${s.name}, ${label} (${s.connections} conn, median of ${o.rounds} × ${s.seconds} s)`,
          num(s.runs.reduce((n, r) => n + r.requests, 0) * s.perRequest),
          ms(median(s.runs.map((r) => r.p50Ms))),
          '',
          ms(median(s.runs.map((r) => r.p99Ms))),
          `${num(rate(s))} ${unit}`,
          `server CPU ${num(cpu(s), 1)} µs/${batch ? 'check' : 'request'}; non-2xx/errors ${non2xx}${judged}`,
        )
      }
      const ratio = rate(authzen) / rate(pemba)
      const cpuRatio = cpu(pemba) / cpu(authzen)
      const perRound = authzen.runs.map((r, i) => num(r.reqPerSec / pemba.runs[i].reqPerSec, 2)).join(', ')
      o.row(
        `HTTP AuthZEN / Pemba API, ${batch ? `batch of ${o.batchSize}` : 'single'}, ${label}`,
        '',
        '',
        '',
        '',
        `${num(ratio, 3)}×`,
        `${batch ? '' : 'target ≥ 0.95; '}per round ${perRound}; from server CPU per ${batch ? 'check' : 'request'} ${num(cpuRatio, 3)}×`,
      )
      figures[batch ? 'batch' : 'single'] = {
        pemba: { path: pemba.path, runs: pemba.runs, median: rate(pemba), cpuUs: cpu(pemba) },
        authzen: { path: authzen.path, runs: authzen.runs, median: rate(authzen), cpuUs: cpu(authzen) },
        unit,
        ratio,
        ratioFromCpu: cpuRatio,
      }
    }
    out[key] = figures
  }
  return out
}
