/**
 * remoteDecisions against a real Pemba over HTTP: answers, delegated checks, batches in order
 * (past one chunk), the decision found again by its request id, and failing closed: a server
 * that never answers, a refused connection, a 5xx, an answer that is not AuthZEN, a 4xx.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DecisionRejected, DecisionUnavailable } from '../../src/enforce/decisions.ts'
import { embeddedDecisions } from '../../src/enforce/embedded.ts'
import { BATCH_CHUNK, remoteDecisions } from '../../src/enforce/remote.ts'
import { closedPort, decisionsByRequestId, q, rawServer, startDecisionsPemba, ULID, type DecisionsPemba } from './decisions-fixture.ts'

let p: DecisionsPemba

beforeAll(async () => {
  p = await startDecisionsPemba()
})
afterAll(async () => {
  await p?.close()
})

const client = () => remoteDecisions({ url: p.url, storeId: p.storeId })

describe('remoteDecisions', () => {
  it('allows and denies, each answer with the ULID it was asked under', async () => {
    const c = client()
    const allowed = await c.evaluate(q('user:alice', 'read_customer'))
    expect(allowed).toMatchObject({ decision: true })
    expect(allowed.requestId).toMatch(ULID)
    const denied = await c.evaluate(q('user:alice', 'export_customers'))
    expect(denied.decision).toBe(false)
    expect(denied.requestId).not.toBe(allowed.requestId)
    expect(c.storeId).toBe(p.storeId)
  })

  it('asks the delegated check with onBehalfOf: the agent may do only what the person it acts for may', async () => {
    const c = client()
    const forAlice = { onBehalfOf: ['user:alice'] }
    expect((await c.evaluate(q('agent:assistant', 'read_customer'), forAlice)).decision).toBe(true)
    // The assistant may export itself, alice may not: acting for her, it may not either.
    expect((await c.evaluate(q('agent:assistant', 'export_customers'))).decision).toBe(true)
    expect((await c.evaluate(q('agent:assistant', 'export_customers'), forAlice)).decision).toBe(false)
    // Bob may export but never delegated to the assistant.
    expect((await c.evaluate(q('agent:assistant', 'export_customers'), { onBehalfOf: ['user:bob'] })).decision).toBe(false)
  })

  it('answers a batch larger than one chunk in the questions\' order, under one request id', async () => {
    const questions = Array.from({ length: BATCH_CHUNK + 13 }, (_, i) =>
      q(['user:alice', 'user:bob', 'user:carol'][i % 3], i % 2 ? 'read_customer' : 'export_customers'),
    )
    const want = questions.map((x) => (x.subject.id === 'alice' && x.resource.id.endsWith('read_customer')) || (x.subject.id === 'bob' && x.resource.id.endsWith('export_customers')))
    const answers = await client().evaluateAll(questions, { requestId: 'batch-order-1' })
    expect(answers.map((a) => a.decision)).toEqual(want)
    expect(new Set(answers.map((a) => a.requestId))).toEqual(new Set(['batch-order-1']))
    expect(await client().evaluateAll([])).toEqual([])
  })

  it('answers a batch item Pemba cannot evaluate as a denial with context.error, the others as usual', async () => {
    const bad = { subject: { type: 'user', id: 'alice' }, action: { name: 'call' }, resource: { type: 'nope', id: 'x' } }
    const answers = await client().evaluateAll([q('user:alice', 'read_customer'), bad, q('user:alice', 'export_customers')])
    expect(answers.map((a) => a.decision)).toEqual([true, false, false])
    expect(answers[1].context).toMatchObject({ error: { status: 400 } })
    expect(answers[2].context).toBeUndefined()
  })

  it('gives the same answers as embeddedDecisions on the same questions', async () => {
    const questions = [
      q('user:alice', 'read_customer'),
      q('user:alice', 'export_customers'),
      q('user:bob', 'export_customers'),
      q('agent:assistant', 'read_customer'),
      { subject: { type: 'user', id: 'alice' }, action: { name: 'call' }, resource: { type: 'nope', id: 'x' } },
    ]
    const remote = client()
    const embedded = embeddedDecisions(p.http.pemba, p.storeId)
    for (const options of [undefined, { onBehalfOf: ['user:alice'] }]) {
      const strip = (as: { decision: boolean; context?: Record<string, unknown> }[]) => as.map(({ decision, context }) => ({ decision, context }))
      expect(strip(await remote.evaluateAll(questions, options))).toEqual(strip(await embedded.evaluateAll(questions, options)))
      for (const x of questions.slice(0, 4)) {
        expect((await remote.evaluate(x, options)).decision).toBe((await embedded.evaluate(x, options)).decision)
      }
    }
  })

  it('logs the decision under the request id it sends, found again with ?request_id=', async () => {
    const c = client()
    const d = await c.evaluate(q('agent:assistant', 'export_customers'), { onBehalfOf: ['user:alice'] })
    const [logged] = await decisionsByRequestId(p, d.requestId)
    expect(logged).toMatchObject({
      request_id: d.requestId,
      user: 'agent:assistant',
      on_behalf_of: ['user:alice'],
      relation: 'call',
      object: 'tool:crm/export_customers',
      allowed: false,
      detail: { authzen: true },
    })
    // The caller's own id, when Pemba would log it as sent.
    const mine = await c.evaluate(q('user:alice', 'read_customer'), { requestId: 'gw-7f3a.1:2' })
    expect(mine.requestId).toBe('gw-7f3a.1:2')
    expect((await decisionsByRequestId(p, 'gw-7f3a.1:2'))[0]).toMatchObject({ allowed: true, user: 'user:alice' })
    // One it would replace is replaced by a ULID (so the id shown always finds the decision).
    const odd = await c.evaluate(q('user:alice', 'read_customer'), { requestId: 'has space' })
    expect(odd.requestId).toMatch(ULID)
  })

  it('puts consistency and explain into context.pemba', async () => {
    const d = await client().evaluate(q('user:alice', 'export_customers'), { explain: true, consistency: 'HIGHER_CONSISTENCY' })
    expect(d.decision).toBe(false)
    expect(d.context?.reason).toEqual(expect.any(String))
    const [logged] = await decisionsByRequestId(p, d.requestId)
    expect(logged.consistency).toBe('HIGHER_CONSISTENCY')
  })

  it('is DecisionRejected with Pemba\'s code for an unknown store (a 4xx: misconfiguration)', async () => {
    const c = remoteDecisions({ url: p.url, storeId: '01ARZ3NDEKTSV4RRFFQ69G5FAV' })
    const e = await c.evaluate(q('user:alice', 'read_customer')).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DecisionRejected)
    // As a check on a store without a model: OpenFGA's code.
    expect(e).toMatchObject({ status: 400, code: 'latest_authorization_model_not_found' })
    expect((e as Error).message).toContain(p.url)
    expect((e as DecisionRejected).requestId).toMatch(ULID)
    await expect(c.evaluateAll([q('user:alice', 'read_customer')])).rejects.toBeInstanceOf(DecisionRejected)
  })

  it('fails closed with DecisionUnavailable within about timeoutMs when the server never answers', async () => {
    const hanging = await rawServer(() => {})
    try {
      const c = remoteDecisions({ url: hanging.url, storeId: p.storeId, timeoutMs: 300 })
      const started = performance.now()
      const e = await c.evaluate(q('user:alice', 'read_customer')).catch((x: unknown) => x)
      const took = performance.now() - started
      expect(e).toBeInstanceOf(DecisionUnavailable)
      expect((e as DecisionUnavailable).kind).toBe('timeout')
      expect((e as Error).message).toContain(hanging.url)
      expect((e as Error).message).toContain('no answer within 300 ms')
      expect(took).toBeGreaterThanOrEqual(290)
      expect(took).toBeLessThan(1500)
      await expect(c.evaluateAll([q('user:alice', 'read_customer')])).rejects.toBeInstanceOf(DecisionUnavailable)
    } finally {
      await hanging.close()
    }
  })

  it('fails closed with DecisionUnavailable on a refused connection, naming the URL', async () => {
    const url = await closedPort()
    const e = await remoteDecisions({ url, storeId: p.storeId }).evaluate(q('user:alice', 'read_customer')).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DecisionUnavailable)
    expect((e as DecisionUnavailable).kind).toBe('network')
    expect((e as Error).message).toMatch(new RegExp(`^Pemba at ${url} cannot be asked: ECONNREFUSED`))
  })

  it('fails closed with DecisionUnavailable on a 3xx, a 5xx and an answer that is not AuthZEN, each with its kind', async () => {
    const answers: Array<[number, string, string, string]> = [
      [503, '{"code":"unavailable","message":"draining"}', 'overloaded', 'it answered HTTP 503'],
      [502, '<html>bad gateway</html>', 'overloaded', 'it answered HTTP 502'],
      [429, '{"code":"rate_limited","message":"slow down"}', 'overloaded', 'it answered HTTP 429'],
      [500, '{"code":"deadline_exceeded","message":"Request Deadline Exceeded"}', 'server_error', 'it answered HTTP 500'],
      [302, '', 'bad_answer', 'it answered HTTP 302'],
      [200, '<html>proxy login</html>', 'bad_answer', 'not an AuthZEN decision'],
      [200, '{"decision":"yes"}', 'bad_answer', 'not an AuthZEN decision'],
      [200, '{"evaluations":[{"decision":true}]}', 'bad_answer', 'not an AuthZEN decision'],
    ]
    let next = 0
    const odd = await rawServer((_req, res) => {
      const [status, body] = answers[next++]
      res.writeHead(status, status === 302 ? { location: '/login' } : { 'content-type': 'application/json' }).end(body)
    })
    try {
      const c = remoteDecisions({ url: odd.url, storeId: p.storeId })
      for (const [status, , kind, message] of answers.slice(0, -1)) {
        const e = await c.evaluate(q('user:alice', 'read_customer')).catch((x: unknown) => x)
        expect(e, String(status)).toBeInstanceOf(DecisionUnavailable)
        expect((e as DecisionUnavailable).kind, String(status)).toBe(kind)
        expect((e as Error).message).toContain(message)
      }
      // A batch answer with fewer decisions than questions.
      const e = await c.evaluateAll([q('user:alice', 'read_customer'), q('user:bob', 'read_customer')]).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(DecisionUnavailable)
      expect((e as DecisionUnavailable).kind).toBe('bad_answer')
      expect(next).toBe(answers.length)
    } finally {
      await odd.close()
    }
  })

  it('sends the API key as a bearer token; a refused key is DecisionRejected whose message never holds the key', async () => {
    const key = 'key-gateway-0123456789abcdef'
    const admin = 'key-admin-0123456789abcdef'
    const authed = await startDecisionsPemba(
      { authMode: 'preshared', authPresharedKeys: `admin=${admin},gateway=${key}`, authAdminClients: 'admin,gateway' },
      { authorization: `Bearer ${admin}` },
    )
    try {
      const ok = remoteDecisions({ url: authed.url, storeId: authed.storeId, apiKey: key })
      const d = await ok.evaluate(q('user:alice', 'read_customer'))
      expect(d.decision).toBe(true)
      expect((await decisionsByRequestId(authed, d.requestId))[0].client).toBe('client:gateway')
      const wrong = 'key-wrong-0123456789abcdef'
      for (const apiKey of [wrong, undefined]) {
        const e = await remoteDecisions({ url: authed.url, storeId: authed.storeId, apiKey }).evaluate(q('user:alice', 'read_customer')).catch((x: unknown) => x)
        expect(e).toBeInstanceOf(DecisionRejected)
        expect((e as DecisionRejected).status).toBe(401)
        expect((e as Error).message).not.toContain(wrong)
      }
    } finally {
      await authed.close()
    }
  })

  it('keeps one connection alive across questions, and releases it on close()', async () => {
    const pdp = await rawServer((req, res) => {
      req.resume()
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"decision":true}'))
    })
    let connections = 0
    let open = 0
    pdp.server.on('connection', (socket) => {
      connections++
      open++
      socket.on('close', () => open--)
    })
    try {
      const c = remoteDecisions({ url: pdp.url, storeId: p.storeId })
      for (let i = 0; i < 5; i++) expect((await c.evaluate(q('user:alice', 'read_customer'))).decision).toBe(true)
      expect(await c.evaluateAll([q('user:alice', 'read_customer'), q('user:bob', 'read_customer')]).catch((e: Error) => e.message)).toMatch(/not an AuthZEN decision/)
      expect(connections).toBe(1)
      await c.close()
      for (let i = 0; i < 100 && open > 0; i++) await new Promise((r) => setTimeout(r, 10))
      expect(open).toBe(0)
    } finally {
      await pdp.close()
    }
  })

  it('refuses bad options at construction, naming the option', () => {
    expect(() => remoteDecisions({ url: 'not a url', storeId: p.storeId })).toThrow(/option url/)
    expect(() => remoteDecisions({ url: 'ftp://127.0.0.1', storeId: p.storeId })).toThrow(/option url must use http or https/)
    expect(() => remoteDecisions({ url: 'http://u:pw@127.0.0.1', storeId: p.storeId })).toThrow(/option url must not carry credentials/)
    expect(() => remoteDecisions({ url: p.url, storeId: 'my-store' })).toThrow(/option storeId/)
    expect(() => remoteDecisions({ url: p.url, storeId: p.storeId, timeoutMs: 0 })).toThrow(/option timeoutMs/)
    expect(() => remoteDecisions({ url: p.url, storeId: p.storeId, apiKey: 'two words' })).toThrow(/option apiKey/)
  })

  it('accepts a base URL with a path prefix and a trailing slash', async () => {
    const seen: string[] = []
    const c = remoteDecisions({
      url: `${p.url}/`,
      storeId: p.storeId,
      fetch: (input, init) => {
        seen.push(String(input))
        return fetch(input, init)
      },
    })
    expect((await c.evaluate(q('user:alice', 'read_customer'))).decision).toBe(true)
    expect(seen).toEqual([`${p.url}/stores/${p.storeId}/access/v1/evaluation`])
    await c.close()
    await expect(c.evaluate(q('user:alice', 'read_customer'))).rejects.toMatchObject({ name: 'DecisionUnavailable', kind: 'closed', message: expect.stringMatching(/closed/) })
  })
})
