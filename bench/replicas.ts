/**
 * The read-replica rows of `npm run bench` (issue 20, item 5): two Pemba replicas (`pemba serve`
 * children) reading from a PostgreSQL streaming standby (PEMBA_DATABASE_READ_URL) against the
 * same two reading from the primary, HTTP checks/s at 64 connections (32 on each replica), in
 * one run. Cache and tuple index off, so that every check reads the database (the case
 * replicas are for), then once more with the index on (warm: the database then serves only the
 * head revisions and the index's catch-ups). `npm run bench -- --replicas-only` runs just these.
 *
 * The primary is PEMBA_BENCH_POSTGRES_URL (or --postgres, or PEMBA_TEST_POSTGRES_URL), the standby
 * PEMBA_BENCH_POSTGRES_READ_URL (or PEMBA_TEST_POSTGRES_READ_URL: .ci/standby starts one). The
 * data set is loaded into a new store on the primary, and the bench waits until the standby has
 * replayed it. Each variant's answers are judged against bench/expected/ first (over HTTP, one
 * replica). Rounds alternate the order of the variants; each figure is the median over rounds.
 * Beside each rate: the CPU time of each PostgreSQL (its postmaster and every backend, from
 * /proc) per check, when the bench can read its processes (same machine, same user or root).
 * On one 2-core machine the load generator, both replicas and both PostgreSQL servers share the
 * cores: the ratio of the variants in one run is the figure, not the absolute rates.
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { loadConfig } from '../src/config.ts'
import { createPemba } from '../src/server.ts'
import type { CheckRequest } from './dataset.ts'
import {
  bothFigure,
  cacheEnv,
  cannon,
  correctText,
  httpAnswers,
  json,
  log,
  median,
  ms,
  num,
  request,
  startServer,
  stopServer,
  type Correctness,
  type Expected,
  type HttpFigure,
  type Server,
} from './harness.ts'

export interface ReplicasBenchOptions {
  primaryUrl: string
  standbyUrl: string
  keys: { user: string; relation: string; object: string }[]
  modelDsl: string
  checks: CheckRequest[]
  expected: Expected
  bodies: string[]
  connections: number
  seconds: number
  rounds: number
  batchSize: number
  row: (...cells: (string | number)[]) => void
}

interface Variant {
  name: string
  standby: boolean
  index: boolean
  servers: Server[]
  runs: (HttpFigure & { primaryCpuUs?: number; standbyCpuUs?: number })[]
  correctness?: Correctness
}

/**
 * postmasterPid: the postmaster listening on the URL's port on this machine, found in /proc: a
 * `postgres` process runs in its data directory, whose postmaster.pid names its port (4th line).
 * Undefined when there is none to read (another machine, another user's processes).
 */
function postmasterPid(url: string): number | undefined {
  const port = new URL(url).port || '5432'
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue
      const lines = readFileSync(join(readlinkSync(`/proc/${entry}/cwd`), 'postmaster.pid'), 'utf8').split('\n')
      if (lines[0] === entry && lines[3]?.trim() === port) return Number(entry)
    } catch {
      // not ours to read, or gone
    }
  }
  return undefined
}

/**
 * CPU seconds (user + system) a PostgreSQL server has used: the postmaster's own and its reaped
 * children's (cutime, cstime: backends that exited), plus each live child's. Undefined off Linux.
 */
function serverCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  const times = (p: number, reaped: boolean): number => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
    // After the command name: utime, stime, cutime, cstime are the 14th to 17th fields of the line.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number)
    return (f[11] + f[12] + (reaped ? f[13] + f[14] : 0)) / 100
  }
  try {
    let total = times(pid, true)
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) {
        try {
          total += times(Number(c), false)
        } catch {
          // exited meanwhile: counted in the postmaster's cutime from now on
        }
      }
    }
    return total
  } catch {
    return undefined
  }
}

/** waitForReplay: until the standby has replayed what the primary had written when called. */
async function waitForReplay(primaryUrl: string, standbyUrl: string): Promise<number> {
  const p = new pg.Client({ connectionString: primaryUrl })
  const s = new pg.Client({ connectionString: standbyUrl })
  await Promise.all([p.connect(), s.connect()])
  const t0 = performance.now()
  try {
    const lsn = (await p.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l
    while ((await s.query<{ b: boolean }>('SELECT pg_last_wal_replay_lsn() < $1::pg_lsn AS b', [lsn])).rows[0].b) {
      if (performance.now() - t0 > 300_000) throw new Error('the standby did not catch up within 5 minutes')
      await new Promise((r) => setTimeout(r, 50))
    }
    return performance.now() - t0
  } finally {
    await Promise.all([p.end(), s.end()])
  }
}

export async function replicasPart(o: ReplicasBenchOptions): Promise<Record<string, unknown>> {
  log('replicas: loading the data set into a new store on the primary ...')
  const loader = await createPemba(
    loadConfig({ env: { PEMBA_DATABASE_URL: o.primaryUrl, ...cacheEnv(0), PEMBA_EXPIRY_SWEEP_INTERVAL_MS: '0' }, argv: [] }),
  )
  let storeId: string
  try {
    storeId = (await request(loader, 'POST', '/stores', json({ name: 'bench-replicas' }))).id
    await request(loader, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
    await loader.writes.importTuples(storeId, o.keys)
  } finally {
    await loader.close()
  }
  const replayMs = await waitForReplay(o.primaryUrl, o.standbyUrl)
  log(`replicas: the standby replayed the import ${Math.round(replayMs)} ms after it committed`)
  const [primaryPid, standbyPid] = [postmasterPid(o.primaryUrl), postmasterPid(o.standbyUrl)]

  const path = `/stores/${storeId}/check`
  const env = (v: Variant) => ({
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: o.primaryUrl,
    ...(v.standby ? { PEMBA_DATABASE_READ_URL: o.standbyUrl } : {}),
    ...cacheEnv(0, v.index),
    PEMBA_DECISION_LOG: 'off',
    PEMBA_EXPIRY_SWEEP_INTERVAL_MS: '0',
  })
  const variants: Variant[] = [false, true].flatMap((index) =>
    [false, true].map((standby) => ({
      name: `2 replicas reading from the ${standby ? 'standby' : 'primary'}, cache off, index ${index ? 'on' : 'off'}`,
      standby,
      index,
      servers: [],
      runs: [],
    })),
  )
  const half = o.connections / 2
  const both = async (v: Variant): Promise<HttpFigure> => {
    const [a, b] = v.servers
    const [x, y] = await Promise.all([
      cannon(a.url, path, o.bodies, half, o.seconds, 0),
      cannon(b.url, path, o.bodies.slice().reverse(), half, o.seconds, 0),
    ])
    return bothFigure(o.connections, x, y)
  }
  const loadStart = os.loadavg()[0]
  try {
    for (const v of variants) {
      log(`replicas: starting ${v.name} ...`)
      v.servers = [await startServer('src/cli/main.ts', ['serve'], env(v)), await startServer('src/cli/main.ts', ['serve'], env(v))]
      v.correctness = (await httpAnswers(v.servers[0].url, storeId, o.checks, o.expected, o.batchSize)).correctness
      // A first pass: the index (when on) read into both replicas, connections and plans warm.
      await both(v)
    }
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse()
      for (const v of order) {
        log(`replicas: round ${round + 1}/${o.rounds}, ${v.name}, ${o.connections} connections, ${o.seconds} s ...`)
        const before = [serverCpuSeconds(primaryPid), serverCpuSeconds(standbyPid)]
        const f = await both(v)
        const after = [serverCpuSeconds(primaryPid), serverCpuSeconds(standbyPid)]
        const per = (i: number) =>
          before[i] !== undefined && after[i] !== undefined && f.requests > 0 ? ((after[i]! - before[i]!) / f.requests) * 1e6 : undefined
        v.runs.push({ ...f, primaryCpuUs: per(0), standbyCpuUs: per(1) })
      }
    }
  } finally {
    for (const v of variants) for (const s of v.servers) await stopServer(s)
  }
  const loadEnd = os.loadavg()[0]
  const rate = (v: Variant) => median(v.runs.map((r) => r.reqPerSec))
  const cpu = (v: Variant, k: 'primaryCpuUs' | 'standbyCpuUs') => {
    const xs = v.runs.map((r) => r[k]).filter((x): x is number => x !== undefined)
    return xs.length ? num(median(xs)) : '?'
  }
  const figures: Record<string, unknown> = {
    note:
      'two pemba serve replicas per variant, 32 connections each; variants alternate by round; medians over rounds; CPU per ' +
      'check of each PostgreSQL (postmaster and backends) from /proc; the load generator shares the cores',
    storeTuples: o.keys.length,
    standbyReplayOfImportMs: replayMs,
    loadAverage1m: { start: loadStart, end: loadEnd },
  }
  for (const v of variants) {
    o.row(
      `HTTP check, Pemba on PostgreSQL, ${v.name} (${o.connections} conn, median of ${o.rounds} × ${o.seconds} s)`,
      num(v.runs.reduce((s, x) => s + x.requests, 0)),
      ms(median(v.runs.map((x) => x.p50Ms))),
      '',
      ms(median(v.runs.map((x) => x.p99Ms))),
      `${num(rate(v))} req/s`,
      `CPU µs/check: primary ${cpu(v, 'primaryCpuUs')}, standby ${cpu(v, 'standbyCpuUs')}; non-2xx ${v.runs.reduce((s, x) => s + x.non2xx, 0)}, ` +
        `errors ${v.runs.reduce((s, x) => s + x.errors, 0)}; ${v.correctness ? correctText(v.correctness) : ''}`,
    )
    figures[v.name] = { runs: v.runs, medianReqPerSec: rate(v), correctness: v.correctness }
  }
  for (const index of [false, true]) {
    const [fromPrimary, fromStandby] = variants.filter((v) => v.index === index)
    const perRound = fromStandby.runs.map((r, i) => r.reqPerSec / fromPrimary.runs[i].reqPerSec)
    const ratio = rate(fromStandby) / rate(fromPrimary)
    o.row(
      `HTTP check, 2 replicas, from the standby / from the primary, index ${index ? 'on' : 'off'}`,
      '',
      '',
      '',
      '',
      `${num(ratio, 2)}×`,
      `per round ${perRound.map((x) => num(x, 2)).join(', ')}; load average ${loadStart.toFixed(2)} → ${loadEnd.toFixed(2)}`,
    )
    figures[`ratioIndex${index ? 'On' : 'Off'}`] = { ratio, perRound }
  }
  return figures
}
