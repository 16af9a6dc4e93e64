/**
 * The cases every middleware adapter (Hono, Express, Fastify) must pass, run by
 * middleware-{hono,express,fastify}.test.ts against a real app of that framework on a loopback
 * port, asking a real Pemba over HTTP (servePemba) and the same instance embedded in-process.
 *
 * Each framework's `serveApp(options)` builds its app with `pemba(options)` and these routes:
 *
 * | route | rule |
 * |---|---|
 * | `GET /docs/:id` | `reader` on `doc:<id>`, user = header `x-user` |
 * | `GET /agent/docs/:id` | the same, `onBehalfOf` = header `x-on-behalf-of` (comma-separated) |
 * | `GET /office/docs/:id` | `office_reader` on `doc:<id>`, context `{ip: header x-ip}` |
 * | `GET /fresh/docs/:id` | `reader`, `consistency: 'HIGHER_CONSISTENCY'` |
 * | `GET /attrs/docs/:id` | `office_reader`, context = `JSON.parse(header x-attributes)`: the app bug of copying client input wholesale |
 * | `GET /answered/docs/:id` | `reader`; the rule's `user` first answers 504 `{early: true}` itself, as a request timeout firing while Pemba is asked would |
 *
 * and each handler answers `{ok: true, id, decision_id: authz.decisionOf(req)?.requestId ?? null}`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EnforcementLogEntry, PembaOptions } from '../../src/enforce/middleware/core.ts'
import type { Pemba } from '../../src/server.ts'
import { loadConfig } from '../../src/config.ts'
import { createPemba } from '../../src/server.ts'
import { serveHttp, type HttpClient } from '../authzen/core-fixture.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { closedPort, decisionsByRequestId, rawServer, ULID } from './decisions-fixture.ts'

export interface MiddlewareApp {
  url: string
  close(): Promise<void>
  /** What the framework itself logged at warn level or above (Fastify: "Reply was already sent"), when it logs. */
  frameworkWarnings?: string[]
}

/** Builds and starts the framework's app with the routes above. */
export type ServeApp = (options: PembaOptions) => Promise<MiddlewareApp>

export const MIDDLEWARE_MODEL = `model
  schema 1.1
type doc
  relations
    define reader: [user, agent]
    define office_reader: [user with in_office]
type user
  relations
    define acts_for: [agent]
type agent
condition in_office(ip: string) {
  ip == "10.0.0.7"
}`

const TUPLES = ['doc:1#reader@user:alice', 'doc:1#reader@agent:assistant', 'user:alice#acts_for@agent:assistant']

/** A store id no store has. */
const UNKNOWN_STORE = '01JZZZZZZZZZZZZZZZZZZZZZZZ'
const API_KEY = 'mw-secret-key-0123456789abcdef'

interface Answer {
  status: number
  headers: Headers
  body: any
  ms: number
}

async function get(app: MiddlewareApp, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const started = performance.now()
  const res = await fetch(app.url + path, { headers })
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: res.status, headers: res.headers, body, ms: performance.now() - started }
}

/** expectProblem checks an RFC 9457 answer of the middleware. */
function expectProblem(a: Answer, status: number, code: string, instance: string): void {
  expect(a.status, JSON.stringify(a.body)).toBe(status)
  expect(a.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  expect(a.body).toMatchObject({ type: 'about:blank', status, code, instance })
  expect(typeof a.body.title).toBe('string')
  expect(typeof a.body.detail).toBe('string')
  expect(a.body.ok).toBeUndefined()
}

/** describeMiddleware runs every case against `serveApp`. */
export function describeMiddleware(framework: string, serveApp: ServeApp): void {
  describe(`${framework} middleware`, () => {
    let pemba: HttpClient
    let storeId: string
    const apps: MiddlewareApp[] = []
    /** start serves an app and closes it after the file. */
    const start = async (options: PembaOptions) => {
      const app = await serveApp(options)
      apps.push(app)
      return app
    }

    /** The decision Pemba logged under `requestId`. */
    const loggedUnder = (requestId: string) => decisionsByRequestId({ http: pemba, url: pemba.url, storeId, close: async () => {} }, requestId)

    beforeAll(async () => {
      pemba = await serveHttp({ decisionLogFlushMs: 5 })
      storeId = await createStore(pemba, 'middleware')
      await writeModel(pemba, storeId, MIDDLEWARE_MODEL)
      await writeTuples(pemba, storeId, TUPLES)
      const res = await pemba.request('POST', `/stores/${storeId}/write`, {
        writes: { tuple_keys: [{ user: 'user:alice', relation: 'office_reader', object: 'doc:1', condition: { name: 'in_office' } }] },
      })
      expect(res.status, res.text).toBe(200)
    })
    afterAll(async () => {
      for (const app of apps) await app.close()
      await pemba?.close()
    })

    describe.each(['remote', 'embedded'] as const)('asking Pemba %s', (mode) => {
      let app: MiddlewareApp
      const logs: EnforcementLogEntry[] = []
      /** How many questions reached Pemba: counted at its HTTP client (remote) or its decider (embedded). */
      let asked = 0
      beforeAll(async () => {
        const counting: typeof fetch = (input, init) => {
          asked++
          return fetch(input, init)
        }
        const decider: Pick<Pemba, 'authzen'> = {
          authzen: { decide: (...args: Parameters<Pemba['authzen']['decide']>) => (asked++, pemba.pemba.authzen.decide(...args)) } as Pemba['authzen'],
        }
        // No decision cache: every question that is sent is counted.
        const where = mode === 'remote' ? { url: pemba.url, storeId, fetch: counting, cacheTtlMs: 0 } : { embedded: decider, storeId }
        app = await start({ ...where, log: (e) => logs.push(e) })
      })

      it('allowed: the handler runs, and sees the decision id', async () => {
        const a = await get(app, '/docs/1', { 'x-user': 'user:alice' })
        expect(a.status, JSON.stringify(a.body)).toBe(200)
        expect(a.body).toMatchObject({ ok: true, id: '1' })
        expect(a.body.decision_id).toMatch(ULID)
        const [logged] = await loggedUnder(a.body.decision_id)
        expect(logged).toMatchObject({ allowed: true, user: 'user:alice', relation: 'reader', object: 'doc:1' })
      })

      it('denied: 403 problem+json whose decision_id finds the decision in the log', async () => {
        const a = await get(app, '/docs/1?token=not-in-the-answer', { 'x-user': 'user:bob' })
        expectProblem(a, 403, 'forbidden', '/docs/1')
        expect(a.body.title).toBe('Forbidden')
        // Generic: the object may be an id the caller must not learn (the decision log has it).
        expect(a.body.detail).toBe('reader is required')
        expect(a.body.decision_id).toMatch(ULID)
        expect(a.headers.get('x-pemba-decision-id')).toBe(a.body.decision_id)
        const [logged] = await loggedUnder(a.body.decision_id)
        expect(logged).toMatchObject({ allowed: false, user: 'user:bob', relation: 'reader', object: 'doc:1', request_id: a.body.decision_id })
      })

      it('no user: 401 with a Bearer challenge, Pemba not asked', async () => {
        const before = asked
        const a = await get(app, '/docs/1')
        expectProblem(a, 401, 'unauthenticated', '/docs/1')
        expect(a.headers.get('www-authenticate')).toBe('Bearer')
        expect(a.body.decision_id).toBeUndefined()
        expect(asked).toBe(before)
        // The counter counts: an allowed request is one question.
        await get(app, '/docs/1', { 'x-user': 'user:alice' })
        expect(asked).toBe(before + 1)
      })

      it('an object that is no Pemba id: 400 naming the member, not its value; Pemba not asked', async () => {
        const before = asked
        const a = await get(app, '/docs/a%23b', { 'x-user': 'user:alice' })
        expectProblem(a, 400, 'invalid_request', '/docs/a%23b')
        expect(a.body.detail).toBe("the request's object is not a valid Pemba id")
        expect(asked).toBe(before)
        expect(logs.find((l) => l.event === 'invalid_question')).toMatchObject({ level: 'warn', error: expect.stringContaining("'a#b'") })
      })

      it('a context holding a reserved key (pemba, subject_token, approval, supported_obligations): 503, logged, never sent to Pemba', async () => {
        const grant = { pemba: { contextual_tuples: [{ user: 'user:mallory', relation: 'office_reader', object: 'doc:1' }] }, ip: '10.0.0.7' }
        const attacks = [
          grant,
          { subject_token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.', ip: '10.0.0.7' },
          { approval: { token: 'x' }, ip: '10.0.0.7' },
          { supported_obligations: ['x'], ip: '10.0.0.7' },
        ]
        const before = asked
        for (const attributes of attacks) {
          const a = await get(app, '/attrs/docs/1', { 'x-user': 'user:mallory', 'x-attributes': JSON.stringify(attributes) })
          expectProblem(a, 503, 'authorization_unavailable', '/attrs/docs/1')
          expect(a.headers.get('retry-after')).toBeNull()
        }
        expect(asked).toBe(before)
        const lines = logs.filter((l) => l.event === 'invalid_rule')
        expect(lines.map((l) => /reserved key '(\w+)'/.exec(l.error ?? '')?.[1])).toEqual(['pemba', 'subject_token', 'approval', 'supported_obligations'])
        expect(lines[0]).toMatchObject({ level: 'error', route: 'GET /attrs/docs/:id' })
        expect(JSON.stringify(lines)).not.toContain('eyJ')
        // The same route with harmless attributes is decided as usual.
        expect((await get(app, '/attrs/docs/1', { 'x-user': 'user:alice', 'x-attributes': '{"ip":"10.0.0.7"}' })).status).toBe(200)
        expectProblem(await get(app, '/attrs/docs/1', { 'x-user': 'user:mallory', 'x-attributes': '{"ip":"10.0.0.7"}' }), 403, 'forbidden', '/attrs/docs/1')
        expect(asked).toBe(before + 2)
      })

      it('a response sent while Pemba was asked stands: no second answer, no crash', async () => {
        const rejections: unknown[] = []
        const onRejection = (e: unknown) => rejections.push(e)
        process.on('unhandledRejection', onRejection)
        try {
          const before = asked
          const a = await get(app, '/answered/docs/1', { 'x-user': 'user:bob' })
          expect(a.status).toBe(504)
          expect(a.body).toEqual({ early: true })
          expect(a.headers.get('x-pemba-decision-id')).toBeNull()
          // The denial arrives after the early answer; give a late write the time to fail.
          for (let i = 0; i < 100 && asked === before; i++) await new Promise((r) => setTimeout(r, 10))
          expect(asked).toBe(before + 1)
          await new Promise((r) => setTimeout(r, 100))
          expect(rejections).toEqual([])
          expect(app.frameworkWarnings?.filter((w) => /already sent/i.test(w)) ?? []).toEqual([])
          expect((await get(app, '/docs/1', { 'x-user': 'user:alice' })).status).toBe(200)
        } finally {
          process.off('unhandledRejection', onRejection)
        }
      })

      it('delegated: the agent may read for alice, who delegated to it, not for bob', async () => {
        const forAlice = await get(app, '/agent/docs/1', { 'x-user': 'agent:assistant', 'x-on-behalf-of': 'user:alice' })
        expect(forAlice.status, JSON.stringify(forAlice.body)).toBe(200)
        const [logged] = await loggedUnder(forAlice.body.decision_id)
        expect(logged).toMatchObject({ allowed: true, user: 'agent:assistant' })
        const forBob = await get(app, '/agent/docs/1', { 'x-user': 'agent:assistant', 'x-on-behalf-of': 'user:bob' })
        expectProblem(forBob, 403, 'forbidden', '/agent/docs/1')
      })

      it('context: the request reaches the condition', async () => {
        expect((await get(app, '/office/docs/1', { 'x-user': 'user:alice', 'x-ip': '10.0.0.7' })).status).toBe(200)
        expectProblem(await get(app, '/office/docs/1', { 'x-user': 'user:alice', 'x-ip': '192.0.2.1' }), 403, 'forbidden', '/office/docs/1')
      })
    })

    describe('Pemba unavailable: fail closed', () => {
      it('connection refused: 503 and a log line naming the route, never the key', async () => {
        const logs: EnforcementLogEntry[] = []
        const app = await start({ url: await closedPort(), storeId, apiKey: API_KEY, log: (e) => logs.push(e) })
        const a = await get(app, '/docs/1', { 'x-user': 'user:alice' })
        expectProblem(a, 503, 'authorization_unavailable', '/docs/1')
        expect(a.headers.get('retry-after')).toBe('1')
        const line = logs.find((l) => l.event === 'pemba_unavailable')!
        expect(line).toMatchObject({ level: 'error', route: 'GET /docs/:id', request_id: a.body.decision_id })
        expect(line.message).toContain('GET /docs/:id')
        expect(line.message).toContain('denied (fail closed)')
        expect(line.error).toContain('ECONNREFUSED')
        expect(JSON.stringify(logs)).not.toContain(API_KEY)
      })

      it('a Pemba that never answers: 503 after timeoutMs', async () => {
        const hanging = await rawServer(() => {})
        try {
          const logs: EnforcementLogEntry[] = []
          const app = await start({ url: hanging.url, storeId, timeoutMs: 300, log: (e) => logs.push(e) })
          const a = await get(app, '/docs/1', { 'x-user': 'user:alice' })
          expectProblem(a, 503, 'authorization_unavailable', '/docs/1')
          expect(a.ms).toBeGreaterThanOrEqual(280)
          expect(a.ms).toBeLessThan(3000)
          expect(logs.find((l) => l.event === 'pemba_unavailable')?.error).toContain('no answer within 300 ms')
        } finally {
          await hanging.close()
        }
      })

      it('a stopped embedded instance: 503', async () => {
        const stopped = await createPemba({ ...loadConfig({ env: {} }), databaseUrl: 'sqlite::memory:', logLevel: 'silent' }, { sweeper: false })
        await stopped.close()
        const logs: EnforcementLogEntry[] = []
        const app = await start({ embedded: stopped, storeId, log: (e) => logs.push(e) })
        expectProblem(await get(app, '/docs/1', { 'x-user': 'user:alice' }), 503, 'authorization_unavailable', '/docs/1')
        expect(logs.map((l) => l.event)).toContain('pemba_unavailable')
      })

      it("whenUnavailable: 'allow' lets the request through, logged as an error every time", async () => {
        const logs: EnforcementLogEntry[] = []
        const app = await start({ url: await closedPort(), storeId, whenUnavailable: 'allow', log: (e) => logs.push(e) })
        expect(logs[0]).toMatchObject({ level: 'warn', event: 'fail_open_configured' })
        const a = await get(app, '/docs/1', { 'x-user': 'user:alice' })
        expect(a.status).toBe(200)
        expect(a.body.decision_id).toBeNull()
        const line = logs.find((l) => l.event === 'pemba_unavailable')
        expect(line).toMatchObject({ level: 'error', kind: 'network' })
        expect(line?.message).toContain('ALLOWED WITHOUT A DECISION')
      })

      it("whenUnavailable: 'allow' never opens on an answer that shows misconfiguration or a failed question", async () => {
        // A wrong url (another service answering 200 HTML), a redirect, and Pemba's own 500 (a deadline a caller can provoke).
        const answers: Array<[number, Record<string, string>, string, string]> = [
          [200, { 'content-type': 'text/html' }, '<html>welcome</html>', 'bad_answer'],
          [302, { location: '/login' }, '', 'bad_answer'],
          [500, { 'content-type': 'application/json' }, '{"code":"deadline_exceeded","message":"Request Deadline Exceeded"}', 'server_error'],
        ]
        let next = 0
        const other = await rawServer((_req, res) => {
          const [status, headers, body] = answers[next++ % answers.length]
          res.writeHead(status, headers).end(body)
        })
        try {
          const logs: EnforcementLogEntry[] = []
          const app = await start({ url: other.url, storeId, whenUnavailable: 'allow', cacheTtlMs: 0, log: (e) => logs.push(e) })
          for (const [status, , , kind] of answers) {
            const a = await get(app, '/docs/1', { 'x-user': 'user:alice' })
            expectProblem(a, 503, 'authorization_unavailable', '/docs/1')
            const line = logs.filter((l) => l.event === 'pemba_unavailable').at(-1)
            expect(line, String(status)).toMatchObject({ level: 'error', kind })
            expect(line?.message).toContain("whenUnavailable 'allow' opens only when Pemba is out of reach")
          }
          expect(next).toBe(answers.length)
          expect(logs.filter((l) => l.event === 'pemba_unavailable').at(0)?.message).toContain("check the middleware's url")
        } finally {
          await other.close()
        }
      })

      it("a question Pemba refuses (unknown store): 503 even with whenUnavailable 'allow', logged through a pino-like logger", async () => {
        const lines: Array<{ level: string; fields: any; message: string }> = []
        const logger = {
          error: (fields: object, message: string) => lines.push({ level: 'error', fields, message }),
          warn: (fields: object, message: string) => lines.push({ level: 'warn', fields, message }),
        }
        const app = await start({ url: pemba.url, storeId: UNKNOWN_STORE, whenUnavailable: 'allow', logger })
        const a = await get(app, '/docs/1', { 'x-user': 'user:alice' })
        expectProblem(a, 503, 'authorization_unavailable', '/docs/1')
        const line = lines.find((l) => l.fields.event === 'pemba_rejected')!
        expect(line.level).toBe('error')
        expect(line.fields).toMatchObject({ route: 'GET /docs/:id', status: 400, code: expect.stringMatching(/not_found$/) })
        expect(line.message).toContain("check the middleware's configuration")
      })
    })

    describe('decision cache', () => {
      it('an answer is reused for cacheTtlMs; HIGHER_CONSISTENCY always asks', async () => {
        let now = Date.parse('2026-01-01T00:00:00Z')
        let asked = 0
        const counting: typeof fetch = (input, init) => {
          asked++
          return fetch(input, init)
        }
        const app = await start({ url: pemba.url, storeId, cacheTtlMs: 1000, fetch: counting, clock: () => new Date(now) })
        await writeTuples(pemba, storeId, ['doc:2#reader@user:carol', 'doc:3#reader@user:carol'])
        const carol = { 'x-user': 'user:carol' }

        const first = await get(app, '/docs/2', carol)
        expect(first.status).toBe(200)
        expect(asked).toBe(1)
        const again = await get(app, '/docs/2', carol)
        expect(again.status).toBe(200)
        expect(asked).toBe(1)
        // A cached answer keeps the id it was decided (and logged) under.
        expect(again.body.decision_id).toBe(first.body.decision_id)

        const revoke = (doc: string) => pemba.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [{ user: 'user:carol', relation: 'reader', object: doc }] } })
        expect((await revoke('doc:2')).status).toBe(200)
        expect((await get(app, '/docs/2', carol)).status).toBe(200) // still cached
        expect(asked).toBe(1)
        now += 1001
        expectProblem(await get(app, '/docs/2', carol), 403, 'forbidden', '/docs/2')
        expect(asked).toBe(2)

        expect((await get(app, '/fresh/docs/3', carol)).status).toBe(200)
        expect((await get(app, '/fresh/docs/3', carol)).status).toBe(200)
        expect(asked).toBe(4)
        expect((await revoke('doc:3')).status).toBe(200)
        expectProblem(await get(app, '/fresh/docs/3', carol), 403, 'forbidden', '/fresh/docs/3')
        expect(asked).toBe(5)
      })
    })

    it('misconfigured options stop the app at start, naming the option', async () => {
      await expect(serveApp({ url: pemba.url, storeId, whenUnavailable: 'maybe' as 'deny' })).rejects.toThrow(/option whenUnavailable/)
      await expect(serveApp({ storeId } as PembaOptions)).rejects.toThrow(/exactly one of the options url, embedded, decisions/)
      await expect(serveApp({ url: 'localhost:8080', storeId })).rejects.toThrow(/option url/)
      await expect(serveApp({ url: pemba.url, storeId, cacheTtlMs: -1 })).rejects.toThrow(/option cacheTtlMs/)
    })
  })
}
