/**
 * The pieces behind a database outage, in-process: which driver errors are an outage or a strain (both
 * dialects' real errors where they can be had: a real SQLite file locked by another
 * connection), the outage tracker's one line per outage and its probe, the 503 with
 * `Retry-After` on the OpenFGA routes, the access-request routes (problem+json) and `/healthz`,
 * and the decision log keeping its buffer through an outage. The real PostgreSQL outages are in
 * postgres-restart.test.ts and postgres-terminate.test.ts.
 */
import Database from 'better-sqlite3'
import { Hono } from 'hono'
import pino from 'pino'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { batchItemError, errorContext, problemDetails, problemResponse, setRetryAfter, wireError } from '../../src/api/errors.ts'
import { DatastoreUnavailable, PembaError } from '../../src/core/errors.ts'
import { OutageTracker } from '../../src/service/datastore-outage.ts'
import { DecisionLog } from '../../src/service/decision-log.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { asDatastoreError, connectionLost, datastoreStrained, datastoreUnreachable } from '../../src/store/sql/unavailable.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { createTestClient } from '../helpers/client.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-outage-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** An error as a driver raises it: a message and a code. */
function driverError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code })
}

describe('which driver errors are an outage', () => {
  it('PostgreSQL: refused, reset, terminated, class 08, 57P01-03, out of connections, the pool timeout', () => {
    const outages = [
      driverError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      driverError('read ECONNRESET', 'ECONNRESET'),
      driverError('terminating connection due to administrator command', '57P01'),
      driverError('terminating connection due to crash of another server process', '57P02'),
      driverError('the database system is starting up', '57P03'),
      driverError('sorry, too many clients already', '53300'),
      driverError('connection failure', '08006'),
      driverError('Connection terminated unexpectedly'),
      driverError('timeout exceeded when trying to connect'),
      Object.assign(new AggregateError([driverError('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')]), {}),
    ]
    for (const e of outages) expect(datastoreUnreachable(e), e.message).toBe(true)
    const faults = [
      driverError('syntax error at or near "SELEC"', '42601'),
      driverError('duplicate key value violates unique constraint', '23505'),
      driverError('password authentication failed for user "pemba"', '28P01'),
      driverError('database "pemba" is being dropped', '57P04'),
      new TypeError('Cannot read properties of undefined'),
      // A SQLSTATE decides: a statement error whose text happens to read like a lost connection is not one.
      driverError('invalid input syntax: "x not queryable"', '22P02'),
      driverError('duplicate key value: Connection terminated', '23505'),
    ]
    for (const e of faults) {
      expect(datastoreUnreachable(e), e.message).toBe(false)
      expect(asDatastoreError(e), e.message).toBe(e)
    }
    // A statement timeout is no outage either, but a strain (below).
    expect(datastoreUnreachable(driverError('canceling statement due to statement timeout', '57014'))).toBe(false)
    expect(connectionLost(driverError('invalid input syntax: "x not queryable"', '22P02'))).toBe(false)
  })

  it('PostgreSQL: a statement or lock timeout, a read-only standby, no disk or memory are a strain: 503, no outage', () => {
    for (const code of ['57014', '55P03', '25006', '53100', '53200']) {
      const e = driverError('x', code)
      expect(datastoreStrained(e), code).toBe(true)
      expect(datastoreUnreachable(e), code).toBe(false)
      const wrapped = asDatastoreError(e)
      expect(wrapped, code).toBeInstanceOf(DatastoreUnavailable)
      expect((wrapped as DatastoreUnavailable).retryAfterSeconds).toBe(1)
      // Wrapped, it is still no outage (the store reports only outages to the tracker).
      expect(datastoreUnreachable(wrapped), code).toBe(false)
    }
    for (const code of ['57P01', '08006', '53300', '23505', '42601']) expect(datastoreStrained(driverError('x', code)), code).toBe(false)
  })

  it('PostgreSQL: only a connection broken under a statement is "lost" (a read may be asked again)', () => {
    expect(connectionLost(driverError('terminating connection due to administrator command', '57P01'))).toBe(true)
    expect(connectionLost(driverError('Connection terminated unexpectedly'))).toBe(true)
    expect(connectionLost(driverError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'))).toBe(false)
    expect(connectionLost(driverError('timeout exceeded when trying to connect'))).toBe(false)
  })

  it('SQLite: I/O errors, a full disk, a read-only or missing file; the lock held elsewhere is a strain; not a constraint', () => {
    for (const code of ['SQLITE_IOERR_WRITE', 'SQLITE_FULL', 'SQLITE_CANTOPEN', 'SQLITE_READONLY_DBMOVED']) {
      expect(datastoreUnreachable(driverError('x', code)), code).toBe(true)
    }
    for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT']) {
      expect(datastoreUnreachable(driverError('x', code)), code).toBe(false)
      expect(datastoreStrained(driverError('x', code)), code).toBe(true)
    }
    for (const code of ['SQLITE_CONSTRAINT_PRIMARYKEY', 'SQLITE_ERROR', 'SQLITE_CORRUPT', 'SQLITE_MISMATCH']) {
      expect(datastoreUnreachable(driverError('Connection terminated', code)), code).toBe(false)
    }
  })

  it('asDatastoreError wraps an outage once, with the driver error as its cause, and passes a fault on', () => {
    const refused = driverError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')
    const wrapped = asDatastoreError(refused)
    expect(wrapped).toBeInstanceOf(DatastoreUnavailable)
    expect((wrapped as DatastoreUnavailable).cause).toBe(refused)
    expect((wrapped as DatastoreUnavailable).message).toBe('the database is unavailable; try again later')
    expect(asDatastoreError(wrapped)).toBe(wrapped)
    const fault = driverError('syntax error', '42601')
    expect(asDatastoreError(fault)).toBe(fault)
  })
})

/** A log that keeps its lines. */
function recordingLog() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = []
  return {
    lines,
    warn: (fields: object, message: string) => lines.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
    info: (fields: object, message: string) => lines.push({ level: 'info', fields: fields as Record<string, unknown>, message }),
  }
}

describe('the error mapper', () => {
  const ctx = errorContext({ logError: () => expect.unreachable('an outage is not logged as a fault') }, 'r1')

  it('carries Retry-After for an outage: the contract error, problem+json and a batch item', () => {
    const outage = new DatastoreUnavailable(driverError('connect ECONNREFUSED', 'ECONNREFUSED'))
    expect(wireError(outage, ctx)).toEqual({
      status: 503,
      body: { code: 'unavailable', message: 'the database is unavailable; try again later' },
      retryAfterSeconds: 1,
    })
    expect(problemDetails(outage, ctx)).toMatchObject({ status: 503, retryAfterSeconds: 1, body: { code: 'unavailable', type: 'about:blank' } })
    expect(batchItemError(outage, ctx)).toEqual({ internal_error: 'unavailable', message: 'the database is unavailable; try again later' })
    const headers: Record<string, string> = {}
    setRetryAfter((name, value) => (headers[name] = value), { retryAfterSeconds: 0.2 })
    setRetryAfter((name, value) => (headers.other = value), {})
    expect(headers).toEqual({ 'Retry-After': '1' })
  })

  it('sends every problem+json refusal through one helper that sets Retry-After when the refusal has one', async () => {
    const app = new Hono()
    app.get('/outage', (c) => problemResponse(c, problemDetails(new DatastoreUnavailable(driverError('x', '57014')), ctx)))
    app.get('/gone', (c) => problemResponse(c, problemDetails(new PembaError('store_id_not_found', 'store not found'), ctx)))
    const outage = await app.request('/outage')
    expect(outage.status).toBe(503)
    expect(outage.headers.get('content-type')).toBe('application/problem+json')
    expect(outage.headers.get('retry-after')).toBe('1')
    expect(await outage.json()).toMatchObject({ status: 503, code: 'unavailable', type: 'about:blank' })
    const gone = await app.request('/gone')
    expect(gone.status).toBe(404)
    expect(gone.headers.get('content-type')).toBe('application/problem+json')
    expect(gone.headers.get('retry-after')).toBeNull()
  })

  it('answers a request whose client went away as 499, never a logged fault', () => {
    const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
    expect(wireError(aborted, ctx).status).toBe(499)
    const logged: unknown[] = []
    const fault = wireError(new Error('boom'), errorContext({ logError: (e) => logged.push(e) }, 'r2'))
    expect(fault.status).toBe(500)
    expect(logged).toHaveLength(1)
  })
})

describe('the outage tracker', () => {
  it('logs the first failure once (redacted), counts the rest, probes until the database answers, then logs the recovery once', async () => {
    const log = recordingLog()
    let now = 1000
    let answers = false
    let probes = 0
    const tracker = new OutageTracker({
      probe: async () => {
        probes++
        if (!answers) throw new DatastoreUnavailable(driverError('connect ECONNREFUSED', 'ECONNREFUSED'))
      },
      log,
      redact: (t) => t.replaceAll('hunter2', '***'),
      now: () => now,
      probeIntervalMs: 20,
    })
    try {
      expect(tracker.state).toEqual({ down: false, unavailableTotal: 0, outages: 0 })
      const cause = driverError('password hunter2 refused: connect ECONNREFUSED', 'ECONNREFUSED')
      for (let i = 0; i < 50; i++) tracker.failed(new DatastoreUnavailable(cause))
      expect(tracker.state).toMatchObject({ down: true, unavailableTotal: 50, outages: 1 })
      expect(tracker.state.cause).not.toContain('hunter2')
      expect(log.lines).toHaveLength(1)
      expect(log.lines[0]).toMatchObject({ level: 'warn', fields: { event: 'datastore_unavailable', code: 'ECONNREFUSED' } })
      expect(log.lines[0].message).toMatch(/^database unavailable: password \*\*\* refused/)

      await new Promise((r) => setTimeout(r, 100))
      expect(probes).toBeGreaterThanOrEqual(2)
      expect(tracker.state.down).toBe(true)

      now = 3500
      answers = true
      for (let i = 0; i < 100 && tracker.state.down; i++) await new Promise((r) => setTimeout(r, 10))
      expect(tracker.state.down).toBe(false)
      expect(log.lines).toHaveLength(2)
      expect(log.lines[1]).toMatchObject({ level: 'info', fields: { event: 'datastore_available', outage_ms: 2500 } })
      expect(log.lines[1].message).toBe('database available again after 2.5 s')
      const probesWhenUp = probes
      await new Promise((r) => setTimeout(r, 60))
      expect(probes).toBe(probesWhenUp)

      // The next outage is a new one.
      tracker.failed(new DatastoreUnavailable(cause))
      expect(tracker.state).toMatchObject({ down: true, outages: 2 })
      expect(log.lines).toHaveLength(3)
    } finally {
      tracker.stop()
    }
  })

  it('does not end an outage while operations keep failing, even though its probe answers', async () => {
    const log = recordingLog()
    let probes = 0
    const tracker = new OutageTracker({
      probe: async () => {
        probes++
        await new Promise((r) => setTimeout(r, 5))
      },
      log,
      probeIntervalMs: 20,
    })
    const cause = new DatastoreUnavailable(driverError('disk I/O error', 'SQLITE_IOERR_WRITE'))
    try {
      tracker.failed(cause)
      // Failures keep arriving, between probes and while they run, for more than two probe intervals.
      const started = Date.now()
      let reported = 1
      while (Date.now() - started < 150) {
        tracker.failed(cause)
        reported++
        await new Promise((r) => setTimeout(r, 3))
      }
      expect(probes).toBeGreaterThanOrEqual(2)
      expect(tracker.state).toMatchObject({ down: true, outages: 1 })
      expect(log.lines).toHaveLength(1)
      // The failures stop: the next probe after a clean interval ends the outage, once.
      for (let i = 0; i < 100 && tracker.state.down; i++) await new Promise((r) => setTimeout(r, 10))
      expect(tracker.state).toMatchObject({ down: false, outages: 1, unavailableTotal: reported })
      expect(log.lines.map((l) => l.fields.event)).toEqual(['datastore_unavailable', 'datastore_available'])
    } finally {
      tracker.stop()
    }
  })

  it("does not count its probe's own failure as an operation that failed", async () => {
    let probes = 0
    const tracker: OutageTracker = new OutageTracker({
      // As the server's probe (the datastore's ping) does: it reports its failure, then rejects.
      probe: async () => {
        probes++
        const e = new DatastoreUnavailable(driverError('connect ECONNREFUSED', 'ECONNREFUSED'))
        tracker.failed(e)
        throw e
      },
      log: recordingLog(),
      probeIntervalMs: 10,
    })
    try {
      tracker.failed(new DatastoreUnavailable(driverError('connect ECONNREFUSED', 'ECONNREFUSED')))
      for (let i = 0; i < 100 && probes < 3; i++) await new Promise((r) => setTimeout(r, 10))
      expect(probes).toBeGreaterThanOrEqual(3)
      expect(tracker.state).toMatchObject({ down: true, unavailableTotal: 1 })
    } finally {
      tracker.stop()
    }
  })

  it('gives up on a probe that hangs (a frozen server, a dropped network) and probes again', async () => {
    let probes = 0
    const tracker = new OutageTracker({
      // The first probe never settles; the next ones answer.
      probe: () => (++probes === 1 ? new Promise<void>(() => {}) : Promise.resolve()),
      log: recordingLog(),
      probeIntervalMs: 10,
      probeTimeoutMs: 30,
    })
    try {
      tracker.failed(new DatastoreUnavailable(driverError('connect ETIMEDOUT', 'ETIMEDOUT')))
      for (let i = 0; i < 100 && tracker.state.down; i++) await new Promise((r) => setTimeout(r, 10))
      expect(tracker.state.down).toBe(false)
      expect(probes).toBeGreaterThanOrEqual(2)
    } finally {
      tracker.stop()
    }
  })
})

describe('a strain over HTTP (a SQLite file locked past the lock-wait budget)', () => {
  it('waits for the lock on a timer: /healthz answers meanwhile; 503 unavailable with Retry-After after 5 s, /healthz stays SERVING and no outage is logged; 200 once the lock is released in time', async () => {
    const file = join(dir, 'locked.db')
    const lines: string[] = []
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) })
    const c = await createTestClient({ accessLog: 'off', databaseUrl: `sqlite:${file}` }, { logger })
    const other = new Database(file)
    try {
      const store = (await c.request('POST', '/stores', { name: 'locked' })).body.id as string
      expect((await c.request('POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
      // Another process holds the write lock: Pemba waits up to 5 s for it, then refuses.
      other.pragma('busy_timeout = 0')
      other.exec('BEGIN IMMEDIATE')
      const write = { writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'document:1' }] } }
      const startWrite = () =>
        Promise.resolve(
          c.pemba.app.request(`/stores/${store}/write`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(write),
          }),
        )
      /**
       * Probes /healthz every 50 ms until `done`, and returns the longest time one pause plus one
       * probe took. A wait for the lock that held the event loop (SQLite's own busy_timeout in
       * better-sqlite3 is synchronous) would make one of them take the whole 5 s; 500 ms is a
       * generous bound for an answer the issue requires within 100 ms, on a shared, loaded machine.
       */
      const health = new Map<number, number>()
      const probeUntil = async (done: () => boolean) => {
        let slowest = 0
        while (!done()) {
          const started = performance.now()
          await new Promise((r) => setTimeout(r, 50))
          const status = (await c.request('GET', '/healthz')).status
          slowest = Math.max(slowest, performance.now() - started)
          health.set(status, (health.get(status) ?? 0) + 1)
        }
        return slowest
      }
      // Each write waits out the 5 s budget, then fails; during it and after it, /healthz is
      // watched for more than two of the tracker's probe intervals (1 s each): a tracker that
      // heard of the refusals would say NOT_SERVING, end the "outage" on its next probe (a read
      // works under the lock), and start another with the next write.
      for (let i = 0; i < 2; i++) {
        const started = performance.now()
        let answered = false
        const pending = startWrite().finally(() => (answered = true))
        expect(await probeUntil(() => answered)).toBeLessThan(500)
        const refused = await pending
        // Not refused before the budget is spent (the bound has slack for timer granularity).
        expect(performance.now() - started).toBeGreaterThan(4_500)
        expect(refused.status).toBe(503)
        expect(refused.headers.get('retry-after')).toBe('1')
        expect(await refused.json()).toEqual({ code: 'unavailable', message: 'the database is unavailable; try again later' })
        const watched = Date.now()
        expect(await probeUntil(() => Date.now() - watched > 2_200)).toBeLessThan(500)
      }
      expect([...health.keys()]).toEqual([200])
      expect(health.get(200)).toBeGreaterThan(40)
      expect((await c.request('GET', '/readyz')).status).toBe(200)
      expect(lines.filter((l) => l.includes('"event":"datastore_unavailable"'))).toEqual([])
      expect(lines.filter((l) => l.includes('"event":"internal_error"') || l.includes('"stack"'))).toEqual([])

      // The lock released within the budget: the waiting write goes through, once.
      let answered = false
      const pending = startWrite().finally(() => (answered = true))
      await new Promise((r) => setTimeout(r, 500))
      expect(answered).toBe(false)
      other.exec('ROLLBACK')
      expect(await probeUntil(() => answered)).toBeLessThan(500)
      expect((await pending).status).toBe(200)
      const read = await c.request('POST', `/stores/${store}/read`, { tuple_key: { object: 'document:1' } })
      expect(read.body.tuples).toHaveLength(1)
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK')
      other.close()
      await c.close()
    }
  }, 60_000)
})

describe('the SQLite driver waiting for a locked file', () => {
  it('waits on a timer (the event loop keeps turning), refuses with SQLITE_BUSY as a strain once its budget is spent, having changed nothing, and goes through once the lock is released', async () => {
    const file = join(dir, 'budget.db')
    const reported: unknown[] = []
    const ds = new SqliteDatastore({ filename: file, lockWaitMs: 400, onUnavailable: (e) => reported.push(e) })
    const other = new Database(file)
    const T0 = new Date('2026-12-01T09:00:00Z')
    try {
      other.pragma('busy_timeout = 0')
      other.exec('BEGIN IMMEDIATE')
      // createStore is one statement outside a transaction; the HTTP test above waits in a transaction (a Write).
      let ticks = 0
      const ticker = setInterval(() => ticks++, 10)
      const started = performance.now()
      const refused = await ds.createStore('01JDSTORE0000000000000000B', 'b', T0).then(
        () => expect.unreachable('created under a lock held elsewhere'),
        (e: unknown) => e,
      )
      const waited = performance.now() - started
      clearInterval(ticker)
      expect(refused).toBeInstanceOf(DatastoreUnavailable)
      expect((refused as DatastoreUnavailable).cause).toMatchObject({ code: 'SQLITE_BUSY' })
      expect(datastoreUnreachable(refused)).toBe(false)
      expect(waited).toBeGreaterThanOrEqual(350)
      // A wait inside SQLite would have held the loop: no tick at all. Generous: a quarter of them.
      expect(ticks).toBeGreaterThan(waited / 10 / 4)
      other.exec('ROLLBACK')
      expect(await ds.getStore('01JDSTORE0000000000000000B')).toBeUndefined()

      // Released within the budget: the waiting transaction commits, once.
      other.exec('BEGIN IMMEDIATE')
      const pending = ds.createStore('01JDSTORE0000000000000000B', 'b', T0)
      await new Promise((r) => setTimeout(r, 100))
      other.exec('ROLLBACK')
      await pending
      expect(await ds.getStore('01JDSTORE0000000000000000B')).toMatchObject({ name: 'b' })
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK')
      other.close()
      await ds.close()
    }
  })
})

describe('the decision log through an outage', () => {
  it('keeps the batch the database could not take (bounded), logs nothing, and writes it once the database is back', async () => {
    const file = join(dir, 'decisions.db')
    const reported: unknown[] = []
    const ds = new SqliteDatastore({ filename: file, onUnavailable: (e) => reported.push(e) })
    const logged: unknown[] = []
    const T0 = Date.parse('2026-12-01T09:00:00Z')
    const log = new DecisionLog({
      datastore: ds,
      clock: () => new Date(T0),
      enabled: true,
      batchSize: 100,
      flushIntervalMs: 50,
      bufferMax: 30,
      retentionMs: 86_400_000,
      sweepIntervalMs: 0,
      logError: (e) => logged.push(e),
    })
    const other = new Database(file)
    try {
      await ds.createStore('01JDSTORE0000000000000000A', 's', new Date(T0))
      await log.flush()
      other.pragma('busy_timeout = 0')
      other.exec('BEGIN IMMEDIATE')
      const record = (n: number) =>
        log.record({
          kind: 'check',
          storeId: '01JDSTORE0000000000000000A',
          modelId: 'm',
          client: '',
          requestId: `r${n}`,
          subject: 'user:alice',
          relation: 'reader',
          object: `doc:${n}`,
          allowed: false,
          latencyUs: 1,
          consistency: '',
          at: T0 + n,
        })
      for (let n = 0; n < 20; n++) record(n)
      await log.flush()
      // Not written, not lost: back in the buffer; not logged, and (contention, no outage) not reported to the tracker.
      expect(log.metrics()).toMatchObject({ recorded: 0, failed: 0, buffered: 20, dropped: 0 })
      expect(reported).toEqual([])
      expect(logged).toEqual([])
      // More than the buffer holds arrives meanwhile: the excess is dropped and counted.
      for (let n = 20; n < 40; n++) record(n)
      expect(log.metrics()).toMatchObject({ buffered: 30, dropped: 10 })

      other.exec('ROLLBACK')
      for (let i = 0; i < 200 && log.metrics().recorded < 30; i++) await new Promise((r) => setTimeout(r, 50))
      expect(log.metrics()).toMatchObject({ recorded: 30, failed: 0, buffered: 0, dropped: 10 })
      expect(logged).toEqual([])
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK')
      other.close()
      await log.close()
      await ds.close()
    }
  }, 60_000)
})
