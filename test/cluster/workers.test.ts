/**
 * `pemba serve` with PEMBA_WORKERS=2 on a SQLite file, as real processes (bin/pemba.js): the
 * primary and its workers. Covers the `listening` line and the workers' log lines, one sweeper
 * for the cluster, the metrics summed over the workers on PEMBA_METRICS_ADDR, writes through
 * different workers (none lost, each seen by every worker), the decision log written by every
 * worker without a lost decision, a killed worker restarted while the others answer, graceful
 * drain on SIGTERM, and a start that cannot succeed stopping the primary instead of forking
 * forever.
 *
 * Which worker a connection lands on is the operating system's choice: the tests open a new
 * connection per request (`Connection: close`), so requests spread over the workers, and they
 * require every answer to be right, whichever worker gave it.
 */
import Database from 'better-sqlite3'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startServer, type PembaProcess } from '../helpers/processes.ts'
import { logEvents, waitFor } from '../helpers/wait.ts'
import { check, decreased, inParallel, monotonicSamples, send, seed, seriesValue, workerPids, writeEachThenCheck } from './cluster-helpers.ts'

/** Two workers start and stop several times per test; on a loaded CI machine that takes a while. */
const SLOW_TEST_MS = 180_000
const running: PembaProcess[] = []
const dirs: string[] = []

afterEach(() => {
  for (const p of running) p.kill()
  running.length = 0
})
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-cluster-'))
  dirs.push(dir)
  return join(dir, 'pemba.db')
}

/** A free TCP port on loopback (for PEMBA_METRICS_ADDR). */
async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

async function startCluster(env: Record<string, string>) {
  const p = await startServer({ PEMBA_WORKERS: '2', ...env }, 60_000)
  running.push(p)
  // The primary says `listening` once both workers serve.
  return p
}

describe('PEMBA_WORKERS=2 on a SQLite file', () => {
  it('serves from both workers, sweeps once, sums the metrics, and drains on SIGTERM', async () => {
    const db = tempDb()
    const metricsPort = await freePort()
    const p = await startCluster({ PEMBA_DATABASE_URL: `sqlite:${db}`, PEMBA_METRICS_ADDR: `127.0.0.1:${metricsPort}` })
    const metricsUrl = `http://127.0.0.1:${metricsPort}`

    // One `listening` line, from the primary, with the worker count; the workers say they serve.
    const listening = logEvents(p.stdout(), 'listening')
    expect(listening).toHaveLength(1)
    expect(listening[0].workers).toBe(2)
    expect(listening[0].worker).toBeUndefined()
    // One warning that the overload limits are each worker's, with the totals.
    const limits = logEvents(p.stdout(), 'per_worker_limits')
    expect(limits).toHaveLength(1)
    expect(limits[0]).toMatchObject({ level: 'warn', workers: 2, totals: { PEMBA_EXPENSIVE_MAX_CONCURRENT: 16 } })
    // (a worker's own line may reach stdout a moment after the primary's)
    await waitFor('both workers to log that they serve', () => workerPids(p.stdout()).size === 2)

    // Health from every worker, over fresh connections.
    const M = 40
    const health = await inParallel(Array.from({ length: M }, (_, i) => i), 4, () => send(p.url, 'GET', '/healthz'))
    expect(health.map((r) => r.status)).toEqual(new Array(M).fill(200))
    const ready = await inParallel(Array.from({ length: 10 }, (_, i) => i), 2, () => send(p.url, 'GET', '/readyz'))
    expect(ready.map((r) => r.status)).toEqual(new Array(10).fill(200))

    // Every worker log line carries its worker; both workers answered.
    const requests = await waitFor('the access log of the health requests', () => {
      const lines = logEvents(p.stdout(), 'request').filter((e) => e.route === '/healthz')
      return lines.length >= M ? lines : undefined
    })
    const served = new Set(requests.map((e) => e.worker))
    expect([...served].every((w) => typeof w === 'number')).toBe(true)
    expect(served.size).toBe(2)

    // One sweeper for the cluster.
    expect(logEvents(p.stdout(), 'sweeper_assigned')).toHaveLength(1)
    await waitFor('the sweeper to start', () => logEvents(p.stdout(), 'sweeper_started').length === 1)

    // The metrics port sums the workers' counters; the API port's /metrics is one worker's.
    const scraped = await send(metricsUrl, 'GET', '/metrics')
    expect(scraped.status).toBe(200)
    const text = scraped.body as string
    expect(seriesValue(text, 'pemba_http_requests_total', 'route="/healthz"')).toBe(M)
    expect(seriesValue(text, 'pemba_workers')).toBe(2)
    expect(seriesValue(text, 'pemba_worker_restarts_total')).toBe(0)
    expect(seriesValue(text, 'pemba_datastore_up')).toBe(1)
    const perWorker = await send(p.url, 'GET', '/metrics')
    expect(perWorker.status).toBe(200)
    const one = seriesValue(perWorker.body as string, 'pemba_http_requests_total', 'route="/healthz"') ?? 0
    expect(one).toBeGreaterThan(0)
    expect(one).toBeLessThan(M)

    // SIGTERM with a request in flight: its headers and half its body sent on a connection
    // the server has accepted; it completes with 200 and `Connection: close` after the signal.
    const store = await seed(p.url)
    const payload = Buffer.from(JSON.stringify({ tuple_key: { user: 'user:anne', relation: 'viewer', object: 'doc:1' } }))
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    await new Promise<void>((resolve, reject) =>
      http.get(new URL('/healthz', p.url), { agent }, (res) => res.resume().on('end', resolve)).on('error', reject),
    )
    const req = http.request(new URL(`/stores/${store}/check`, p.url), {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
    })
    const reply = new Promise<{ status: number; connection?: string; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (d: string) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body }))
      })
      req.on('error', reject)
    })
    req.flushHeaders()
    req.write(payload.subarray(0, 10))
    await new Promise((r) => setTimeout(r, 300))
    expect(req.reusedSocket).toBe(true)
    process.kill(p.proc.pid!, 'SIGTERM')
    await waitFor('both workers to drain', () => logEvents(p.stdout(), 'draining').length >= 3)
    // New connections are refused once every worker has stopped accepting.
    await waitFor(
      'new connections to be refused',
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(Number(new URL(p.url).port), '127.0.0.1')
          s.on('connect', () => (s.destroy(), resolve(false)))
          s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'))
        }),
      10_000,
    )
    req.end(payload.subarray(10))
    const r = await reply
    expect(r.status, r.body).toBe(200)
    expect(JSON.parse(r.body).allowed).toBe(false)
    expect(r.connection).toBe('close')
    agent.destroy()
    expect(await p.exited).toBe(0)
    expect(logEvents(p.stdout(), 'stopped').some((e) => e.worker === undefined && e.code === 0)).toBe(true)
  }, SLOW_TEST_MS)

  it('keeps writes from several workers, each seen by the others, and every decision', async () => {
    const db = tempDb()
    const p = await startCluster({ PEMBA_DATABASE_URL: `sqlite:${db}`, PEMBA_CHECK_CACHE_STALENESS_MS: '300' })
    const store = await seed(p.url)

    // 200 distinct tuples, one write each, 16 clients at once, each on a fresh connection.
    // Every one is there, whichever worker answers.
    const N = 200
    await writeEachThenCheck(p.url, store, N, 16)
    let checks = N

    // A write then a check at once on another connection: HIGHER_CONSISTENCY sees it at once,
    // MINIMIZE_LATENCY within the staleness bound. 20 rounds: the connections spread, so a
    // good share of them check on the worker that did not write.
    for (let i = 0; i < 20; i++) {
      const user = `user:late${i}`
      const w = await send(p.url, 'POST', `/stores/${store}/write`, {
        writes: { tuple_keys: [{ user, relation: 'viewer', object: 'doc:late' }] },
      })
      expect(w.status).toBe(200)
      expect(await check(p.url, store, user, 'doc:late', 'HIGHER_CONSISTENCY')).toBe(true)
      checks++
    }
    await new Promise((r) => setTimeout(r, 600))
    for (let i = 0; i < 20; i++) {
      expect(await check(p.url, store, `user:late${i}`, 'doc:late', 'MINIMIZE_LATENCY')).toBe(true)
      checks++
    }
    // A deletion is seen the same way.
    const del = await send(p.url, 'POST', `/stores/${store}/write`, {
      deletes: { tuple_keys: [{ user: 'user:u0', relation: 'viewer', object: 'doc:d0' }] },
    })
    expect(del.status).toBe(200)
    for (let i = 0; i < 6; i++) {
      expect(await check(p.url, store, 'user:u0', 'doc:d0', 'HIGHER_CONSISTENCY')).toBe(false)
      checks++
    }

    // Both workers wrote decisions into the one file; after the drain every check is there.
    const servedChecks = new Set(logEvents(p.stdout(), 'request').filter((e) => e.route === '/stores/:store/check').map((e) => e.worker))
    expect(servedChecks.size).toBe(2)
    process.kill(p.proc.pid!, 'SIGTERM')
    expect(await p.exited).toBe(0)
    const file = new Database(db, { readonly: true })
    try {
      const row = file.prepare('SELECT count(*) AS n FROM decision_log WHERE store_id = ?').get(store) as { n: number }
      expect(row.n).toBe(checks)
    } finally {
      file.close()
    }
    expect(p.stdout()).not.toContain('"level":"error"')
  }, SLOW_TEST_MS)

  it('restarts a killed worker with its log line, answers meanwhile, and moves the sweeper', async () => {
    const db = tempDb()
    const metricsPort = await freePort()
    const p = await startCluster({ PEMBA_DATABASE_URL: `sqlite:${db}`, PEMBA_METRICS_ADDR: `127.0.0.1:${metricsPort}` })
    const sweeper = logEvents(p.stdout(), 'sweeper_assigned')[0].worker as number
    const pid = workerPids(p.stdout()).get(sweeper)!
    expect(pid).toBeGreaterThan(0)
    // Both workers answer requests and are scraped once: their counters are known to the primary.
    const metricsUrl = `http://127.0.0.1:${metricsPort}`
    await inParallel(Array.from({ length: 20 }, (_, i) => i), 4, () => send(p.url, 'GET', '/healthz'))
    await waitFor('both workers to answer', () => new Set(logEvents(p.stdout(), 'request').map((e) => e.worker)).size === 2)
    const beforeText = (await send(metricsUrl, 'GET', '/metrics')).body as string
    const before = monotonicSamples(beforeText)
    expect(seriesValue(beforeText, 'pemba_http_requests_total', 'route="/healthz"')).toBe(20)

    process.kill(pid, 'SIGKILL')
    // A connection the primary hands to the worker in the instant it dies is lost with it (as
    // its in-flight requests are): the primary stops handing it any once it sees the exit.
    const exited = await waitFor('worker_exited', () => logEvents(p.stdout(), 'worker_exited')[0])
    // The server keeps answering while the worker is restarted.
    const answers: number[] = []
    expect(exited).toMatchObject({ level: 'error', worker: sweeper, pid, signal: 'SIGKILL', code: null })
    // The dead worker's counters stay in the sum: no counter goes down (Prometheus would read a reset).
    const whileDown = monotonicSamples((await send(metricsUrl, 'GET', '/metrics')).body as string)
    expect(decreased(before, whileDown)).toEqual([])
    const replaced = await waitFor(
      'the replacement to serve',
      async () => {
        answers.push((await send(p.url, 'GET', '/healthz')).status)
        return workerPids(p.stdout()).size === 3
      },
      60_000,
    )
    expect(replaced).toBe(true)
    expect(answers.every((s) => s === 200)).toBe(true)
    // Another worker took the sweeper over.
    const assigned = logEvents(p.stdout(), 'sweeper_assigned').map((e) => e.worker)
    expect(assigned).toHaveLength(2)
    expect(assigned[1]).not.toBe(sweeper)
    const text = (await send(`http://127.0.0.1:${metricsPort}`, 'GET', '/metrics')).body as string
    expect(seriesValue(text, 'pemba_workers')).toBe(2)
    expect(seriesValue(text, 'pemba_worker_restarts_total')).toBe(1)
    const after = monotonicSamples(text)
    expect(decreased(before, after)).toEqual([])
    expect(decreased(whileDown, after)).toEqual([])
    // The killed worker's 20 health answers, the survivor's and the replacement's.
    expect(seriesValue(text, 'pemba_http_requests_total', 'route="/healthz"')).toBeGreaterThanOrEqual(20 + answers.length)

    // A second signal does not wait for the drain.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    await new Promise<void>((resolve, reject) =>
      http.get(new URL('/healthz', p.url), { agent }, (res) => res.resume().on('end', resolve)).on('error', reject),
    )
    const req = http.request(new URL('/stores', p.url), {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': 100 },
    })
    req.on('error', () => {})
    req.flushHeaders()
    req.write('{"name"')
    await new Promise((r) => setTimeout(r, 300))
    process.kill(p.proc.pid!, 'SIGTERM')
    await waitFor('draining', () => logEvents(p.stdout(), 'draining').length > 0)
    process.kill(p.proc.pid!, 'SIGINT')
    const started = Date.now()
    expect(await p.exited).toBe(1)
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(logEvents(p.stdout(), 'drain_forced')).toHaveLength(1)
    agent.destroy()
  }, SLOW_TEST_MS)

  it('keeps the healthy worker serving while a replacement cannot start, and leaves no worker when the primary is killed', async () => {
    const db = tempDb()
    const p = await startCluster({ PEMBA_DATABASE_URL: `sqlite:${db}` })
    await waitFor('both workers to log that they serve', () => workerPids(p.stdout()).size === 2)
    const [[victim, victimPid], [survivor, survivorPid]] = [...workerPids(p.stdout())]
    // The database's directory goes away, a file in its place: the workers that run keep their
    // open file, a new one cannot open it (as in a database outage while a worker restarts).
    const dir = dirname(db)
    renameSync(dir, `${dir}-moved`)
    dirs.push(`${dir}-moved`)
    writeFileSync(dir, 'not a directory')
    process.kill(victimPid, 'SIGKILL')
    // Three replacements in a row die before serving: before the fix, that stopped the server.
    const failed = await waitFor(
      'three failed starts of the replacement',
      () => {
        const lines = logEvents(p.stdout(), 'worker_exited').filter((e) => e.served === false)
        return lines.length >= 4 ? lines : undefined
      },
      60_000,
    )
    expect(failed.every((e) => e.worker !== survivor)).toBe(true)
    expect(logEvents(p.stdout(), 'workers_failing')).toHaveLength(0)
    expect(p.proc.exitCode).toBeNull()
    const health = await inParallel(Array.from({ length: 10 }, (_, i) => i), 2, () => send(p.url, 'GET', '/healthz'))
    expect(health.map((r) => r.status)).toEqual(new Array(10).fill(200))
    expect(logEvents(p.stdout(), 'worker_exited').some((e) => e.worker === victim && e.served === true)).toBe(true)

    // The primary killed outright: its workers do not outlive it.
    process.kill(p.proc.pid!, 'SIGKILL')
    await p.exited
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    const pids = [survivorPid, ...logEvents(p.stdout(), 'worker_exited').map((e) => e.pid as number)]
    await waitFor('no worker process left', () => pids.every((pid) => !alive(pid)), 15_000)
  }, SLOW_TEST_MS)

  it('stops, without forking for ever, when the workers cannot listen', async () => {
    const db = tempDb()
    // The port is taken: every worker fails to listen, three in a row stop the server.
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
    try {
      const port = (taken.address() as net.AddressInfo).port
      const { runPemba } = await import('../helpers/processes.ts')
      const p = runPemba(['serve'], {
        PEMBA_WORKERS: '2',
        PEMBA_HOST: '127.0.0.1',
        PEMBA_PORT: String(port),
        PEMBA_DATABASE_URL: `sqlite:${db}`,
      })
      running.push(p)
      expect(await p.exited).toBe(1)
      expect(logEvents(p.stdout(), 'workers_failing')).toHaveLength(1)
      expect(logEvents(p.stdout(), 'worker_exited').length).toBeGreaterThanOrEqual(3)
      expect(logEvents(p.stdout(), 'listening')).toHaveLength(0)
    } finally {
      taken.close()
    }
  }, SLOW_TEST_MS)

  it('refuses to fork when an instance cannot start (migrations pending)', async () => {
    const db = tempDb()
    new Database(db).close()
    const { runPemba } = await import('../helpers/processes.ts')
    const p = runPemba(['serve'], {
      PEMBA_WORKERS: '2',
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite:${db}`,
      PEMBA_MIGRATIONS: 'check',
    })
    running.push(p)
    expect(await p.exited).toBe(1)
    expect(logEvents(p.stdout(), 'migrations_pending')).toHaveLength(1)
    expect(logEvents(p.stdout(), 'starting_workers')).toHaveLength(0)
  }, SLOW_TEST_MS)
})
