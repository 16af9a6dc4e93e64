/**
 * The MCP gateway on the wire (raw fetch against the gateway, a real MCP server behind it, a
 * real Pemba deciding): authentication and RFC 9728 metadata, step-up on a missing scope,
 * batches decided per message, the SEP-2243 headers, session binding, what reaches the
 * upstream, and failing closed when the upstream or Pemba is down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closedPort } from './mcp-fixture.ts'
import { authed, openSession, parseAnswer, post, startBench, startGateway, type Bench } from './mcp-gateway-fixture.ts'

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } })
const PRM = 'http://127.0.0.1:8090/.well-known/oauth-protected-resource/mcp'

for (const [mode, json] of [
  ['event streams', false],
  ['JSON answers', true],
] as const) {
  describe(`the MCP gateway on the wire (upstream answering with ${mode})`, () => {
    let b: Bench
    beforeAll(async () => {
      b = await startBench({ json })
    })
    afterAll(async () => {
      await b?.close()
    })

    it('§8.46 §8.49 a batch is decided per message: ping and notifications unasked, an unknown method denied, the rest as Pemba says', async () => {
      const token = await b.token()
      const session = await openSession(b, token)
      const res = await post(
        b,
        [
          call(1, 'read_customer', { id: '7' }),
          call(2, 'export_customers', { limit: 5 }),
          { jsonrpc: '2.0', id: 3, method: 'ping' },
          { jsonrpc: '2.0', id: 4, method: 'tools/list' },
          { jsonrpc: '2.0', id: 5, method: 'tasks/frobnicate' },
          { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } },
        ],
        authed(token, session),
      )
      expect(res.status, res.text).toBe(200)
      const byId = new Map((res.body as any[]).map((m) => [m.id, m]))
      expect(byId.size).toBe(5)
      expect(byId.get(1).result.content[0].text).toBe('customer 7: ACME Corp, 42 employees, héllo ✓')
      expect(byId.get(2).error).toMatchObject({ code: -32001, data: { decision_id: expect.stringMatching(/^[0-9A-Z]{26}$/) } })
      expect(byId.get(3).result).toEqual({})
      expect(byId.get(4).result.tools.map((t: any) => t.name).sort()).toEqual(['count_slowly', 'read_customer'])
      // §8.46: an unknown method is denied
      expect(byId.get(5).error.code).toBe(-32001)
      const line = b.logs.findLast((l) => l.event === 'mcp_request' && l.http_method === 'POST')!
      expect((line.messages as any[]).map((m) => m.decision)).toEqual(['allow', 'deny', 'forward', 'forward', 'deny', 'forward'])
      // nothing was asked for ping, the list request (its result is filtered instead) or the notification
      expect((line.messages as any[]).map((m) => m.decision_ids?.length ?? 0)).toEqual([1, 1, 0, 0, 0, 0])
    })

    it('an allowed call is answered byte for byte as the server answers it', async () => {
      const token = await b.token()
      const viaGateway = await openSession(b, token)
      const direct = await openSession(b, token, b.upstream.url)
      const body = JSON.stringify(call(7, 'read_customer', { id: 'é-42' }))
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
      const through = await fetch(b.mcp, { method: 'POST', headers: { ...headers, ...authed(token, viaGateway) }, body })
      const straight = await fetch(b.upstream.url, { method: 'POST', headers: { ...headers, ...authed(token, direct) }, body })
      expect(through.status).toBe(straight.status)
      expect(through.headers.get('content-type')).toBe(straight.headers.get('content-type'))
      expect(Buffer.from(await through.arrayBuffer()).equals(Buffer.from(await straight.arrayBuffer()))).toBe(true)
    })

    it('a batch refused whole is answered by the gateway alone', async () => {
      const token = await b.token()
      const session = await openSession(b, token)
      const before = b.upstream.seen.length
      const res = await post(
        b,
        [call(1, 'export_customers'), { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///reports/q4.pdf' } }],
        authed(token, session),
      )
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^application\/json/)
      expect((res.body as any[]).map((m) => [m.id, m.error.code])).toEqual([
        [1, -32001],
        [2, -32001],
      ])
      expect(b.upstream.seen.length).toBe(before)
    })
  })
}

describe('the MCP gateway on the wire', () => {
  let b: Bench
  beforeAll(async () => {
    b = await startBench()
  })
  afterAll(async () => {
    await b?.close()
  })

  it('no token: 401 with resource_metadata, and the metadata document is served', async () => {
    const before = b.upstream.seen.length
    const res = await post(b, call(1, 'read_customer', { id: '1' }))
    expect(res.status).toBe(401)
    // MCP: the scopes to ask for (the least privileged ones for calls, gets and reads)
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${PRM}", scope="crm:read"`)
    expect(res.body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000 } })
    expect(b.upstream.seen.length).toBe(before)
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const prm = await fetch(`${b.gateway.url}${path}`)
      expect(prm.status).toBe(200)
      expect(await prm.json()).toEqual({
        resource: 'http://127.0.0.1:8090/mcp',
        authorization_servers: ['https://idp.test'],
        scopes_supported: ['crm:read', 'crm:refund'],
        bearer_methods_supported: ['header'],
        resource_name: "MCP server 'crm' (through Pemba's MCP gateway)",
      })
    }
  })

  it('a token that cannot be trusted: 401 invalid_token, for every method', async () => {
    const expired = await b.token({ exp: Math.floor(Date.now() / 1000) - 3600 })
    const wrongAudience = await b.token({ aud: 'http://elsewhere/mcp' })
    for (const [token, reason] of [
      [expired, 'token_expired'],
      [wrongAudience, 'token_invalid'],
    ] as const) {
      const res = await post(b, call(1, 'read_customer', { id: '1' }), authed(token))
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe(`Bearer error="invalid_token", error_description="${reason}", resource_metadata="${PRM}", scope="crm:read"`)
      for (const method of ['GET', 'DELETE']) {
        const r = await fetch(b.mcp, { method, headers: authed(token, 'some-session') })
        expect(r.status).toBe(401)
      }
    }
  })

  it('a token lacking a scope: 403 insufficient_scope naming the scopes that would do, nothing forwarded', async () => {
    const token = await b.token({ scope: 'profile' })
    const before = b.upstream.seen.length
    const res = await post(b, call(9, 'read_customer', { id: '1' }), authed(token))
    expect(res.status).toBe(403)
    expect(res.headers.get('www-authenticate')).toBe(`Bearer error="insufficient_scope", scope="crm:read", resource_metadata="${PRM}"`)
    expect(res.body).toMatchObject({ id: 9, error: { code: -32001, data: { scopes: ['crm:read'] } } })
    // a batch: the union of what its messages need
    const both = await post(b, [call(1, 'read_customer', { id: '1' }), { jsonrpc: '2.0', id: 2, method: 'prompts/get', params: { name: 'customer_summary' } }], authed(await b.token({ scope: 'crm:refund' })))
    expect(both.status).toBe(403)
    expect(both.headers.get('www-authenticate')).toContain('scope="crm:read"')
    expect(b.upstream.seen.length).toBe(before)
  })

  it('Mcp-Method and Mcp-Name must agree with the body (SEP-2243)', async () => {
    const token = await b.token()
    const session = await openSession(b, token)
    const h = authed(token, session)
    const agree = await post(b, call(1, 'read_customer', { id: '1' }), { ...h, 'mcp-method': 'tools/call', 'mcp-name': 'read_customer' })
    expect(agree.status).toBe(200)
    const encoded = `=?base64?${Buffer.from('read_customer').toString('base64')}?=`
    expect((await post(b, call(2, 'read_customer', { id: '1' }), { ...h, 'mcp-name': encoded })).status).toBe(200)
    const before = b.upstream.seen.length
    const mismatches: Record<string, string>[] = [{ 'mcp-method': 'tools/list' }, { 'mcp-name': 'export_customers' }, { 'mcp-name': `=?base64?${Buffer.from('export_customers').toString('base64')}?=` }]
    for (const headers of mismatches) {
      const res = await post(b, call(3, 'read_customer', { id: '1' }), { ...h, ...headers })
      expect(res.status).toBe(400)
      expect(res.body.error.code).toBe(-32600)
    }
    expect(b.upstream.seen.length).toBe(before)
  })

  it("a session is its opener's: another token on it gets 404 and never reaches the server", async () => {
    const alice = await b.token()
    const session = await openSession(b, alice)
    const before = b.upstream.seen.length
    for (const other of [await b.token({ sub: 'bob' }), await b.token({ act: undefined }), await b.token({ act: { sub: 'planner' } })]) {
      const res = await post(b, { jsonrpc: '2.0', id: 1, method: 'ping' }, authed(other, session))
      expect(res.status).toBe(404)
      expect(res.body.error.message).toBe('Session not found')
      for (const method of ['GET', 'DELETE']) expect((await fetch(b.mcp, { method, headers: authed(other, session) })).status).toBe(404)
    }
    expect((await post(b, { jsonrpc: '2.0', id: 1, method: 'ping' }, authed(alice, 'made-up-session'))).status).toBe(404)
    expect(b.upstream.seen.length).toBe(before)
    // the opener ends it; it is then unknown
    expect((await fetch(b.mcp, { method: 'DELETE', headers: authed(alice, session) })).status).toBe(200)
    expect((await post(b, { jsonrpc: '2.0', id: 1, method: 'ping' }, authed(alice, session))).status).toBe(404)
  })

  it("the caller's Authorization never reaches the server; who is calling does, with the gateway's own credential", async () => {
    const token = await b.token()
    const client = await b.connect(token)
    await client.callTool({ name: 'read_customer', arguments: { id: '3' } })
    await client.ping()
    expect(b.upstream.seen.length).toBeGreaterThan(3)
    for (const r of b.upstream.seen) {
      expect(r.headers.authorization).toBeUndefined()
      expect(JSON.stringify(r.headers)).not.toContain(token)
      expect(r.headers['x-upstream-key']).toBe('upstream-secret')
    }
    const last = b.upstream.seen.at(-1)!
    expect(last.headers['x-pemba-subject']).toBe('user:alice')
    expect(last.headers['x-pemba-actor']).toBe('agent:assistant')
    expect(JSON.stringify(b.logs)).not.toContain('upstream-secret')
    expect(JSON.stringify(b.logs)).not.toContain(token)
  })

  it('bad bodies are JSON-RPC errors: not JSON, too large, not JSON-RPC, not application/json', async () => {
    const h = authed(await b.token())
    const bad = await post(b, '{"jsonrpc":', h)
    expect([bad.status, bad.body.error.code]).toEqual([400, -32700])
    const big = await post(b, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(4 * 1024 * 1024) } }), h)
    expect([big.status, big.body.error.code]).toEqual([413, -32700])
    for (const body of [[], [1], { jsonrpc: '1.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: {}, method: 'ping' }]) {
      const res = await post(b, body, h)
      expect([res.status, res.body.error.code]).toEqual([400, -32600])
    }
    const text = await fetch(b.mcp, { method: 'POST', headers: { ...h, 'content-type': 'text/plain' }, body: '{}' })
    expect(text.status).toBe(415)
    expect((await fetch(b.mcp, { method: 'PUT', headers: h })).status).toBe(405)
  })
})

describe('the MCP gateway for operators', () => {
  let b: Bench
  beforeAll(async () => {
    b = await startBench({ extra: 'explain: log\n' })
  })
  afterAll(async () => {
    await b?.close()
  })

  it('explain: log explains a denial in the log under its decision id, never to the client', async () => {
    const token = await b.token()
    const session = await openSession(b, token)
    const res = await post(b, call(1, 'export_customers'), authed(token, session))
    expect(res.body.error.code).toBe(-32001)
    expect(res.text).not.toMatch(/explanation|principal|acts_for/)
    const decisionId = res.body.error.data.decision_id as string
    let line: Record<string, unknown> | undefined
    for (let i = 0; i < 100 && !line; i++) {
      line = b.logs.find((l) => l.decision_id === decisionId && String(l.msg).includes('denial explained'))
      if (!line) await new Promise((r) => setTimeout(r, 20))
    }
    expect(line).toBeDefined()
    expect(JSON.stringify(line)).toContain('tool:crm/export_customers')
  })
})

describe('the MCP gateway when what it needs is down', () => {
  let b: Bench
  beforeAll(async () => {
    b = await startBench()
  })
  afterAll(async () => {
    await b?.close()
  })

  it('the MCP server down: 502 with a JSON-RPC error naming nothing secret, and a warning; tool calls fail closed (-32603)', async () => {
    const port = await closedPort()
    const { gateway, logs } = await startGateway({ upstream: `http://127.0.0.1:${port}/mcp`, pemba: b.pemba.url, store: b.store, jwksUri: b.idp.jwksUri })
    try {
      const send = async (message: unknown) =>
        fetch(`${gateway.url}/mcp`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...authed(await b.token()) },
          body: JSON.stringify(message),
        })
      const res = await send({ jsonrpc: '2.0', id: 1, method: 'ping' })
      expect(res.status).toBe(502)
      const body = (await res.json()) as { error: unknown }
      expect(body.error).toEqual({ code: -32603, message: 'Bad Gateway: the MCP server cannot be reached' })
      // No tool catalogue can be listed: a call is never decided by the default mapping.
      const refused = await send(call(2, 'read_customer', { id: '1' }))
      expect(refused.status).toBe(200)
      expect(await refused.json()).toMatchObject({ id: 2, error: { code: -32603, data: { reason: 'catalogue_unavailable' } } })
      expect(logs.some((l) => l.event === 'mcp_catalogue_unavailable')).toBe(true)
      expect(logs.find((l) => l.event === 'mcp_upstream_unavailable')).toMatchObject({ level: 'warn' })
      expect(JSON.stringify(logs)).not.toContain('upstream-secret')
    } finally {
      await gateway.stop(0)
    }
  })

  it('§8.49 Pemba down: -32603 per message with the request id, lists never passed on unfiltered, a clear log line', async () => {
    const port = await closedPort()
    const { gateway, logs } = await startGateway({ upstream: b.upstream.url, pemba: `http://127.0.0.1:${port}`, store: b.store, jwksUri: b.idp.jwksUri })
    try {
      const mcp = `${gateway.url}/mcp`
      const token = await b.token()
      const session = await openSession(b, token, mcp)
      const res = await fetch(mcp, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...authed(token, session) },
        body: JSON.stringify([call(1, 'read_customer', { id: '1' }), { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { jsonrpc: '2.0', id: 3, method: 'ping' }]),
      })
      expect(res.status).toBe(200)
      const byId = new Map((parseAnswer(await res.text(), res.headers.get('content-type')) as any[]).map((m) => [m.id, m]))
      expect(byId.get(1).error).toMatchObject({ code: -32603, data: { decision_id: expect.any(String) } })
      expect(byId.get(2).error.code).toBe(-32603)
      expect(byId.get(2).result).toBeUndefined()
      expect(byId.get(3).result).toEqual({})
      expect(logs.some((l) => (l.level === 'error' || l.level === 'warn') && String(l.msg).includes('Pemba could not be asked'))).toBe(true)
    } finally {
      await gateway.stop(0)
    }
  })
})
