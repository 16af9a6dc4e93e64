/**
 * What the request telemetry costs on the hottest path, HTTP Check with the cache on and warm:
 * three server children started once, driven in turn by autocannon, round after round with the
 * order rotating, so that the ratios come from one run (this machine's figures drift by 20–30 %
 * between processes and minutes):
 *
 * - `access log off`: `PEMBA_ACCESS_LOG=off`;
 * - `access log on`: the default, one JSON line per request written to a real file (the child's
 *   stdout, see startServer in harness.ts);
 * - `access log on + tracing`: also `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP
 *   receiver in the bench process, which reads every export and counts its spans.
 *
 * The table shows each variant's median req/s over the rounds and its server's CPU time per
 * request, and the ratios on/off (the issue's target: ≥ 0.9) and tracing/no tracing, from the
 * rates and from the CPU time per request (which other work on the machine disturbs far less). `run.ts` calls {@link telemetryPart} in its HTTP
 * part; run alone (loads the data set and a SQLite file of its own):
 *
 *   node --expose-gc --import tsx bench/telemetry.ts [--quick] [--rounds 6] [--seconds 5]
 *
 * @module
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../src/config.ts'
import { createPemba } from '../src/server.ts'
import { loadOrGenerate, parseFlags, tupleKey } from './dataset.ts'
import {
  ROOT,
  cacheEnv,
  cannon,
  correctText,
  cpuSeconds,
  gitState,
  guardChildren,
  httpAnswers,
  json,
  killAll,
  loadExpected,
  log,
  median,
  ms,
  num,
  request,
  startServer,
  stopServer,
  type Correctness,
  type HttpBenchOptions,
  type HttpFigure,
  type Server,
} from './harness.ts'

/**
 * initialWarmupSeconds: the JIT warms the logging and tracing paths over tens of thousands of
 * requests. row: figure, n, p50, p95, p99, rate, notes.
 */
export interface TelemetryBenchOptions extends HttpBenchOptions {
  cacheSize: number
}

interface Variant {
  name: string
  env: Record<string, string>
  server?: Server
  correctness?: Correctness
  runs: (HttpFigure & { cpuUsPerRequest?: number })[]
}

/** An OTLP/HTTP receiver: answers every export, counting requests, bytes and spans. */
async function startReceiver() {
  const counts = { exports: 0, bytes: 0, spans: 0 }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      counts.exports++
      counts.bytes += body.length
      // Each span has one spanId; counting them is cheaper than parsing the export.
      for (let i = body.indexOf('"spanId"'); i >= 0; i = body.indexOf('"spanId"', i + 8)) counts.spans++
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, counts, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

/** telemetryPart measures the three variants (see the module comment) and adds their rows. */
export async function telemetryPart(o: TelemetryBenchOptions): Promise<Record<string, unknown>> {
  const receiver = await startReceiver()
  const base = {
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: `sqlite:${o.dbPath}`,
    PEMBA_TUPLE_INDEX_PRELOAD: 'on',
    PEMBA_LOG_FORMAT: 'json',
    PEMBA_LOG_LEVEL: 'info',
    ...cacheEnv(o.cacheSize),
  }
  const variants: Variant[] = [
    { name: 'access log off', env: { ...base, PEMBA_ACCESS_LOG: 'off' }, runs: [] },
    { name: 'access log on', env: { ...base, PEMBA_ACCESS_LOG: 'on' }, runs: [] },
    {
      name: 'access log on + tracing',
      env: { ...base, PEMBA_ACCESS_LOG: 'on', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'pemba-bench' },
      runs: [],
    },
  ]
  const path = `/stores/${o.storeId}/check`
  const bodies = o.checks.map((c) => json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } }))
  let requestsTraced = 0
  let logBytes = 0
  let logRequests = 0
  try {
    for (const v of variants) {
      log(`telemetry: starting Pemba, ${v.name} ...`)
      v.server = await startServer('src/cli/main.ts', ['serve'], v.env)
      // Every answer once (judged), which also fills the check cache: the runs below are warm.
      v.correctness = (await httpAnswers(v.server.url, o.storeId, o.checks, o.expected, 50)).correctness
    }
    for (const v of variants) {
      log(`telemetry: warming ${v.name} for ${o.initialWarmupSeconds} s ...`)
      await cannon(v.server!.url, path, bodies, o.connections, o.initialWarmupSeconds, 0)
    }
    for (let round = 0; round < o.rounds; round++) {
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(round + k) % variants.length]
        log(`telemetry: round ${round + 1}/${o.rounds}, ${v.name}, ${o.connections} connections, ${o.seconds} s ...`)
        const server = v.server!
        if (o.warmupSeconds > 0) await cannon(server.url, path, bodies, o.connections, o.warmupSeconds, 0)
        const cpuBefore = cpuSeconds(server)
        const f = await cannon(server.url, path, bodies, o.connections, o.seconds, 0)
        const cpuAfter = cpuSeconds(server)
        const cpuUsPerRequest = cpuBefore !== undefined && cpuAfter !== undefined ? ((cpuAfter - cpuBefore) * 1e6) / f.requests : undefined
        v.runs.push({ ...f, cpuUsPerRequest })
        // Its spans arrive in batches (up to 5 s later, the rest when the server stops).
        if (v.env.OTEL_EXPORTER_OTLP_ENDPOINT) requestsTraced += f.requests
      }
    }
    const logged = variants[1].server!
    logBytes = statSync(logged.logFile).size
    logRequests = readFileSync(logged.logFile, 'utf8').split('\n').filter((l) => l.includes('"event":"request"')).length
  } finally {
    for (const v of variants) if (v.server) await stopServer(v.server)
    // Stopping a server exports its last spans (Pemba.close()); let the receiver read them.
    await new Promise((r) => setTimeout(r, 500))
    await receiver.close()
  }

  const rate = (v: Variant) => median(v.runs.map((r) => r.reqPerSec))
  const cpu = (v: Variant) => median(v.runs.map((r) => r.cpuUsPerRequest ?? NaN))
  const [off, on, traced] = variants
  const logRatio = rate(on) / rate(off)
  const traceRatio = rate(traced) / rate(on)
  // The same ratios from the server's CPU time per request (off / on: what a CPU-bound server's rate would do).
  const logCpuRatio = cpu(off) / cpu(on)
  const traceCpuRatio = cpu(on) / cpu(traced)
  const perRound = (a: Variant, b: Variant) => a.runs.map((r, i) => num(r.reqPerSec / b.runs[i].reqPerSec, 2)).join(', ')
  for (const v of variants) {
    const p50 = median(v.runs.map((r) => r.p50Ms))
    const p99 = median(v.runs.map((r) => r.p99Ms))
    const non2xx = v.runs.reduce((n, r) => n + r.non2xx + r.errors, 0)
    o.row(
      `HTTP check, cache on, warm, ${v.name} (${o.connections} conn, median of ${o.rounds} × ${o.seconds} s)`,
      num(v.runs.reduce((n, r) => n + r.requests, 0)),
      ms(p50),
      '',
      ms(p99),
      `${num(rate(v))} req/s`,
      `server CPU ${num(cpu(v))} µs/request; non-2xx/errors ${non2xx}; ${correctText(v.correctness!)}`,
    )
  }
  o.row(
    'HTTP check, access log on / off (cache on, warm)',
    '',
    '',
    '',
    '',
    `${num(logRatio, 3)}×`,
    `target ≥ 0.9; per round ${perRound(on, off)}; from server CPU per request ${num(logCpuRatio, 3)}×; ${num(logRequests)} lines, ${num(logRequests ? logBytes / logRequests : 0)} bytes/line written to a file`,
  )
  o.row(
    'HTTP check, tracing on / off (access log on, cache on, warm)',
    '',
    '',
    '',
    '',
    `${num(traceRatio, 3)}×`,
    `per round ${perRound(traced, on)}; from server CPU per request ${num(traceCpuRatio, 3)}×; ${num(receiver.counts.spans)} spans received (warm-ups included) in ${num(receiver.counts.exports)} exports, ${num(requestsTraced)} requests measured`,
  )
  return {
    note: 'three servers started once, driven in turn with the order rotating by round; ratios of the medians',
    variants: variants.map((v) => ({ name: v.name, env: Object.keys(v.env).filter((k) => k.startsWith('OTEL') || k === 'PEMBA_ACCESS_LOG'), runs: v.runs, medianReqPerSec: rate(v), correctness: v.correctness })),
    accessLogOnOff: logRatio,
    accessLogOnOffFromCpu: logCpuRatio,
    accessLogTarget: 0.9,
    tracingOnOff: traceRatio,
    tracingOnOffFromCpu: traceCpuRatio,
    accessLog: { lines: logRequests, bytes: logBytes },
    receiver: { ...receiver.counts, requestsTraced },
  }
}

// ---- run alone ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { scale: 1, seed: 42, quick: false, rounds: 0, seconds: 0, cacheSize: 100_000, out: 'bench/out' })
  guardChildren(30, 'bench telemetry')
  const started = new Date()
  const loadStart = os.loadavg()[0]
  const ds = loadOrGenerate(join(ROOT, 'bench-data'), { scale: flags.scale, seed: flags.seed, checks: 2000 })
  const expected = loadExpected(ds)
  const dbPath = join(ROOT, 'bench-data', `telemetry-scale-${flags.scale}-seed-${flags.seed}.db`)
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) rmSync(f, { force: true })
  const pemba = await createPemba(loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${dbPath}`, PEMBA_LOG_LEVEL: 'warn' }, argv: [] }))
  const storeId = (await request(pemba, 'POST', '/stores', json({ name: 'bench-telemetry' }))).id
  await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, readFileSync(join(ROOT, 'bench/model.fga'), 'utf8'), 'text/plain')
  log(`importing ${num(ds.tuples.length)} tuples ...`)
  await pemba.writes.importTuples(storeId, ds.tuples.map(tupleKey))
  await pemba.close()
  const rows: string[][] = []
  // Short runs, many rounds: the pairs compared are seconds apart, not minutes.
  const seconds = flags.seconds || (flags.quick ? 2 : 5)
  const rounds = flags.rounds || (flags.quick ? 3 : 6)
  const report = await telemetryPart({
    dbPath,
    storeId,
    checks: ds.checks,
    expected,
    connections: 64,
    seconds,
    warmupSeconds: flags.quick ? 0.5 : 1,
    initialWarmupSeconds: flags.quick ? 3 : 10,
    rounds,
    cacheSize: flags.cacheSize,
    row: (...cells) => rows.push(cells.map(String)),
  })
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) rmSync(f, { force: true })
  const cpus = os.cpus()
  const git = gitState()
  const lines = [
    `Pemba bench (telemetry), ${started.toISOString()}: scale ${flags.scale}, seed ${flags.seed}, ${rounds} rounds of ${seconds} s`,
    `machine: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores; Node ${process.version}; ${os.type()} ${os.release()} ${os.arch()}`,
    `code: ${git ? `commit ${git.commit}${git.srcModified ? ' with uncommitted changes in src/' : ''}` : 'unknown'}`,
    `load average (1 min): ${loadStart.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end`,
    '',
    '| figure | n | p50 | p95 | p99 | rate | notes |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => '| ' + r.join(' | ') + ' |'),
  ]
  console.log(lines.join('\n'))
  const outDir = join(ROOT, flags.out)
  mkdirSync(outDir, { recursive: true })
  const outFile = join(outDir, `telemetry-${started.toISOString().replace(/:/g, '').replace(/\..*/, 'Z')}.json`)
  writeFileSync(outFile, JSON.stringify({ date: started.toISOString(), node: process.version, git, params: flags, ...report, table: lines.join('\n') }, null, 2) + '\n')
  log(`\nwrote ${relative(ROOT, outFile)}`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => {
      killAll()
      process.exit(0)
    },
    (err) => {
      console.error('bench telemetry failed:', err)
      killAll()
      process.exit(1)
    },
  )
}
