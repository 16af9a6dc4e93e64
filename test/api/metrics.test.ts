/**
 * Prometheus metrics: the RED series per route pattern, check outcomes and latency, the
 * datastore's operations, the process's default metrics and the services' historical series,
 * scraped after real requests; the PEMBA_METRICS_ADDR listener (no API auth) beside the API
 * port's /metrics (behind auth); and `pemba serve` starting and serving that listener.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { startMetricsListener } from '../../src/telemetry/metrics-listener.ts'
import { createPresharedClient, keyOf, SMALL_MODEL, type AuthedClient } from '../helpers/auth.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { runPemba, startServer } from '../helpers/processes.ts'

/** sample: the value of one series line (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const quiet = { logger: silentLogger() }

async function storeWithTuples(c: TestClient, auth: Record<string, string> = {}): Promise<string> {
  const store = (await c.request('POST', '/stores', { name: 'metrics' }, auth)).body.id as string
  expect((await c.request('POST', `/stores/${store}/authorization-models`, SMALL_MODEL, auth)).status).toBe(201)
  const write = { writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'document:1' }] } }
  expect((await c.request('POST', `/stores/${store}/write`, write, auth)).status).toBe(200)
  return store
}

const check = (user: string) => ({ tuple_key: { user, relation: 'viewer', object: 'document:1' } })

describe('GET /metrics', () => {
  let c: TestClient
  let store: string
  let text: string
  let contentType: string | null

  beforeAll(async () => {
    c = await createTestClient({ accessLog: 'off', checkCacheSize: 0 }, quiet)
    store = await storeWithTuples(c)
    for (const user of ['user:anne', 'user:anne', 'user:bob']) {
      expect((await c.request('POST', `/stores/${store}/check`, check(user))).status).toBe(200)
    }
    // A check the model refuses (no such relation): an error outcome, a 400.
    const unknownRelation = { tuple_key: { user: 'user:anne', relation: 'owner', object: 'document:1' } }
    expect((await c.request('POST', `/stores/${store}/check`, unknownRelation)).status).toBe(400)
    expect((await c.request('POST', `/stores/${store}/list-objects`, { type: 'document', relation: 'viewer', user: 'user:anne' })).status).toBe(200)
    const res = await c.request('GET', '/metrics')
    expect(res.status).toBe(200)
    text = res.text
    contentType = res.headers.get('content-type')
  })
  afterAll(() => c.close())

  it('is Prometheus text from the registry', () => {
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(text).toMatch(/^# HELP pemba_http_requests_total HTTP requests answered/m)
    expect(text).toMatch(/^# TYPE pemba_http_request_duration_seconds histogram$/m)
  })

  it('counts requests per route pattern, method and status, never a raw path or a store id', () => {
    expect(sample(text, 'pemba_http_requests_total{route="/stores/:store/check",method="POST",status="200"}')).toBe(3)
    expect(sample(text, 'pemba_http_requests_total{route="/stores/:store/check",method="POST",status="400"}')).toBe(1)
    expect(sample(text, 'pemba_http_requests_total{route="/stores",method="POST",status="201"}')).toBe(1)
    expect(sample(text, 'pemba_http_request_duration_seconds_count{route="/stores/:store/check",method="POST"}')).toBe(4)
    const sum = sample(text, 'pemba_http_request_duration_seconds_sum{route="/stores/:store/check",method="POST"}')!
    expect(sum).toBeGreaterThan(0)
    expect(sum).toBeLessThan(10)
    // Buckets are cumulative and end with +Inf = count.
    expect(sample(text, 'pemba_http_request_duration_seconds_bucket{route="/stores/:store/check",method="POST",le="+Inf"}')).toBe(4)
    expect(text).not.toContain(store)
  })

  it('counts check outcomes, and the other queries by kind', () => {
    expect(sample(text, 'pemba_check_total{outcome="allowed"}')).toBe(2)
    expect(sample(text, 'pemba_check_total{outcome="denied"}')).toBe(1)
    expect(sample(text, 'pemba_check_total{outcome="error"}')).toBe(1)
    expect(sample(text, 'pemba_check_duration_seconds_count')).toBe(4)
    expect(sample(text, 'pemba_query_total{kind="write",outcome="ok"}')).toBe(1)
    expect(sample(text, 'pemba_query_total{kind="list_objects",outcome="ok"}')).toBe(1)
    expect(sample(text, 'pemba_query_duration_seconds_count{kind="list_objects"}')).toBe(1)
    expect(sample(text, 'pemba_query_dispatches_count{kind="check"}')).toBeGreaterThanOrEqual(3)
  })

  it('times the datastore by operation', () => {
    expect(sample(text, 'pemba_datastore_query_duration_seconds_count{operation="write"}')).toBeGreaterThanOrEqual(1)
    // The system store's and the test's.
    expect(sample(text, 'pemba_datastore_query_duration_seconds_count{operation="createStore"}')).toBe(2)
    expect(text).toMatch(/^# TYPE pemba_datastore_query_errors_total counter$/m)
    // SQLite: no pool.
    expect(text).not.toContain('pemba_datastore_pool_connections')
  })

  it("keeps today's series under their names, and adds the process's default metrics", () => {
    for (const name of [
      'pemba_check_cache_hits_total',
      'pemba_check_cache_misses_total',
      'pemba_check_cache_entries',
      'pemba_tuple_index_stores',
      'pemba_tuple_index_tuples',
      'pemba_tuple_index_builds_total',
      'pemba_tuple_index_changes_applied_total',
      'pemba_tuple_index_fallbacks_total',
      'pemba_decisions_recorded_total',
      'pemba_decisions_dropped_total',
      'pemba_decisions_write_failed_total',
      'pemba_decisions_buffered',
    ]) {
      expect(sample(text, name), name).toBeGreaterThanOrEqual(0)
    }
    expect(sample(text, 'pemba_tuple_index_stores')).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m)
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m)
  })

  it('keeps each instance its own counts', async () => {
    const other = await createTestClient({ accessLog: 'off' }, quiet)
    try {
      const mine = (await other.request('GET', '/metrics')).text
      expect(sample(mine, 'pemba_check_total{outcome="allowed"}')).toBe(0)
      expect(mine).not.toContain('route="/stores/:store/check"')
    } finally {
      await other.close()
    }
  })
})

describe('the metrics listener (PEMBA_METRICS_ADDR)', () => {
  let t: AuthedClient
  let listener: Server
  let url: string

  beforeAll(async () => {
    t = await createPresharedClient(['root'], { authAdminClients: 'root', accessLog: 'off' })
    const store = await storeWithTuples(t, { authorization: `Bearer ${keyOf('root')}` })
    expect((await t.as('root', 'POST', `/stores/${store}/check`, check('user:anne'))).body.allowed).toBe(true)
    listener = await startMetricsListener('127.0.0.1:0', t.pemba.metrics, silentLogger())
    url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise((resolve) => listener.close(resolve))
    await t.close()
  })

  it('serves /metrics without the API token', async () => {
    const res = await fetch(`${url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const text = await res.text()
    expect(sample(text, 'pemba_check_total{outcome="allowed"}')).toBe(1)
    expect(text).toContain('process_cpu_user_seconds_total')
  })

  it('answers 404 to anything else', async () => {
    for (const path of ['/', '/healthz', '/stores', '/metrics/x']) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(404)
    }
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(404)
  })

  it("while the API port's /metrics needs the token", async () => {
    expect((await t.request('GET', '/metrics')).status).toBe(401)
    const authed = await t.as('root', 'GET', '/metrics')
    expect(authed.status).toBe(200)
    expect(authed.text).toContain('pemba_http_requests_total')
  })

  it('refuses a malformed PEMBA_METRICS_ADDR at start, naming it', () => {
    for (const bad of ['9464', 'localhost', 'host:port', '127.0.0.1:70000']) {
      expect(() => loadConfig({ env: { PEMBA_METRICS_ADDR: bad }, argv: [] }), bad).toThrow(/PEMBA_METRICS_ADDR/)
    }
  })
})

describe('pemba serve with PEMBA_METRICS_ADDR', () => {
  it('starts the listener beside the API, with auth on the API port only', async () => {
    const server = await startServer({
      PEMBA_DATABASE_URL: 'sqlite::memory:',
      PEMBA_AUTH_MODE: 'preshared',
      PEMBA_AUTH_PRESHARED_KEYS: `ops=${keyOf('ops')}`,
      PEMBA_METRICS_ADDR: '127.0.0.1:0',
    })
    try {
      const line = server.stdout().split('\n').find((l) => l.includes('"event":"metrics_listening"'))
      expect(line).toBeDefined()
      const metricsUrl = JSON.parse(line!).url as string
      expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      const scraped = await fetch(metricsUrl)
      expect(scraped.status).toBe(200)
      expect(await scraped.text()).toContain('pemba_http_requests_total')
      expect((await fetch(`${server.url}/metrics`)).status).toBe(401)
      const authed = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${keyOf('ops')}` } })
      expect(authed.status).toBe(200)
      // SIGTERM closes both listeners.
      server.proc.kill('SIGTERM')
      expect(await server.exited).toBe(0)
      await expect(fetch(metricsUrl)).rejects.toThrow()
    } finally {
      server.kill()
    }
  })

  it('stops at start, naming the setting, when the address is taken', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const addr = `127.0.0.1:${(taken.address() as AddressInfo).port}`
    const p = runPemba(['serve'], { PEMBA_HOST: '127.0.0.1', PEMBA_PORT: '0', PEMBA_DATABASE_URL: 'sqlite::memory:', PEMBA_METRICS_ADDR: addr })
    try {
      expect(await p.exited).toBe(1)
      expect(p.stdout()).toContain(`cannot listen on PEMBA_METRICS_ADDR=${addr}: listen EADDRINUSE`)
      expect(p.stdout()).not.toMatch(/listening on http/)
    } finally {
      p.kill()
      await new Promise((resolve) => taken.close(resolve))
    }
  })
})
