/**
 * The MCP gateway fails closed where review C found it open: duplicate request ids (C1), answers
 * replayed on a resumed GET stream (C2), bodies the upstream could read differently (C3), a
 * `tools/call` before any listing (C4), odd SSE line endings (M1), identities that are not plain
 * ASCII (M2), `allow_methods` naming a decided method (M3), answers that match no forwarded list
 * request (M4), one caller's sessions pushing out another's (M5), and the scopes a challenge
 * names (M6). A real Pemba, the SDK's MCP server (with an event store where resumption matters)
 * or a scripted one for answers a real server would not give.
 */
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeHeaderValue } from '../../src/core/header-value.ts'
import { GatewayConfigError, parseGatewayConfig } from '../../src/enforce/mcp/gateway/config.ts'
import { SessionBindings } from '../../src/enforce/mcp/gateway/sessions.ts'
import type { McpCaller } from '../../src/enforce/mcp/types.ts'
import { startScriptedUpstream, type ScriptedUpstream } from '../helpers/mcp-upstream.ts'
import { authed, gatewayYaml, openSession, post, startBench, startGateway, type Bench } from './mcp-gateway-fixture.ts'

const SSE = { 'content-type': 'text/event-stream' }
const JSON_TYPE = { 'content-type': 'application/json' }
const TOOLS = [
  { name: 'read_customer', inputSchema: { type: 'object' } },
  { name: 'export_customers', inputSchema: { type: 'object' } },
]
const names = (m: any): string[] => (m.result.tools as { name: string }[]).map((t) => t.name)

/** Reads a stream for at most `ms`, or until `until` holds; then cancels it. */
async function readFor(res: Response, ms: number, until: (t: string) => boolean): Promise<string> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + ms
  while (Date.now() < deadline && !until(text)) {
    const timeout = new Promise<{ done: true; value: undefined }>((r) => setTimeout(() => r({ done: true, value: undefined }), Math.max(0, deadline - Date.now())))
    const r = await Promise.race([reader.read(), timeout])
    if (r.done) break
    text += decoder.decode(r.value, { stream: true })
  }
  await reader.cancel().catch(() => undefined)
  return text
}

describe('the MCP gateway fails closed (SDK upstream with an event store)', () => {
  let b: Bench
  beforeAll(async () => {
    b = await startBench({ eventStore: true })
  })
  afterAll(async () => {
    await b?.close()
  })

  it("C4 a tool's declared mapping decides its calls before anyone lists the tools", async () => {
    // A fresh gateway: nobody has listed. alice may call refund_order; she may refund only o-1.
    const alone = await b.connect(await b.token({ act: undefined, scope: 'crm:read crm:refund' }))
    const e = await alone.callTool({ name: 'refund_order', arguments: { order: 'o-2' } }).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(e).toBeInstanceOf(McpError)
    expect((e as McpError).code).toBe(-32001)
    expect((await alone.callTool({ name: 'refund_order', arguments: { order: 'o-1' } })).content).toEqual([{ type: 'text', text: 'refunded o-1' }])
    expect(b.logs.some((l) => l.event === 'mcp_catalogue_loaded')).toBe(true)
    // a tool the catalogue lacks (listed again once, rate-limited): -32602, Pemba not asked
    const unknown = await post(b, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } }, authed(await b.token()))
    expect(unknown.body.error).toMatchObject({ code: -32602, message: expect.stringContaining("unknown tool 'no_such_tool'") })
    // the gateway listed as itself, with its own credential, and ended its session
    const own = b.upstream.seen.filter((r) => r.headers['x-pemba-subject'] === 'gateway:crm')
    expect(own.length).toBeGreaterThan(0)
    expect(own.every((r) => r.headers['x-upstream-key'] === 'upstream-secret')).toBe(true)
    expect(own.some((r) => r.method === 'DELETE')).toBe(true)
  })

  it('C1 two requests with one id in a batch (1 and "1" alike) are refused whole, nothing forwarded', async () => {
    const token = await b.token()
    const session = await openSession(b, token)
    const before = b.upstream.seen.length
    for (const ids of [
      [1, 1],
      [1, '1'],
    ]) {
      const res = await post(
        b,
        [
          { jsonrpc: '2.0', id: ids[0], method: 'tools/list' },
          { jsonrpc: '2.0', id: ids[1], method: 'prompts/list' },
        ],
        authed(token, session),
      )
      expect(res.status).toBe(400)
      expect(res.body.error).toMatchObject({ code: -32600, message: expect.stringContaining('duplicate request id') })
    }
    expect(b.upstream.seen.length).toBe(before)
  })

  it('C2 a stream resumed with Last-Event-ID replays the list filtered, as the POST answered it', async () => {
    const token = await b.token()
    const session = await openSession(b, token)
    const h = { ...authed(token, session), 'mcp-protocol-version': '2025-11-25' }
    const listed = await post(b, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, h)
    expect(listed.status).toBe(200)
    expect(names((listed.body as any[]).find((m) => m.id === 2)).sort()).toEqual(['count_slowly', 'read_customer'])
    const primed = /^id: (.+)$/m.exec(listed.text)
    expect(primed, listed.text).not.toBeNull()
    const resumed = await fetch(b.mcp, { headers: { ...h, accept: 'text/event-stream', 'last-event-id': primed![1]!.trim() } })
    expect(resumed.status).toBe(200)
    const text = await readFor(resumed, 3000, (t) => t.includes('"id":2'))
    expect(text).toContain('read_customer')
    expect(text).not.toContain('export_customers')
    expect(text).not.toContain('refund_order')
  })

  it('C3 only UTF-8 JSON is read, and the upstream gets the JSON that was decided, re-serialised', async () => {
    const token = await b.token()
    const session = await openSession(b, token)
    const h = authed(token, session)
    const before = b.upstream.seen.length
    const utf7 =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_customer","arguments":{"x":"+ACIAfQ-,+ACI-name+ACI-:+ACI-export+AF8-customers+ACI-,+ACI-a+ACI-:+AHsAIg-b+ACI-:+ACI-"}}}'
    for (const type of ['application/json; charset=utf-7', 'application/json; charset=latin1', 'application/json; boundary=x']) {
      const res = await fetch(b.mcp, { method: 'POST', headers: { ...h, 'content-type': type, accept: 'application/json, text/event-stream' }, body: utf7 })
      expect(res.status, type).toBe(415)
    }
    expect(b.upstream.seen.length).toBe(before)
    // duplicate keys: JSON.parse keeps the last, and that is what the upstream parses too
    const dup = '\uFEFF{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"export_customers","arguments":{}},"method":"ping"}'
    const res = await fetch(b.mcp, { method: 'POST', headers: { ...h, 'content-type': 'application/json; charset=UTF-8', accept: 'application/json, text/event-stream' }, body: dup })
    expect(res.status).toBe(200)
    const seen = b.upstream.seen.at(-1)!
    expect(seen.headers['content-type']).toBe('application/json')
    expect(seen.body).toBe('{"jsonrpc":"2.0","id":5,"method":"ping","params":{"name":"export_customers","arguments":{}}}')
    // keys that differ only in case are refused
    const clash = await post(b, '{"jsonrpc":"2.0","id":6,"method":"ping","Method":"tools/call"}', h)
    expect([clash.status, clash.body.error.code]).toEqual([400, -32600])
  })

  it('M2 identities reach the upstream encoded and decodable, with the whole actor chain and the issuer', async () => {
    for (const sub of ['josé', '用户', 'a,b']) {
      await openSession(b, await b.token({ sub, act: undefined }))
      const seen = b.upstream.seen.findLast((r) => r.method === 'POST' && r.body?.includes('"initialize"'))!
      const subject = seen.headers['x-pemba-subject'] as string
      expect(subject).toMatch(/^[\x21-\x7e]+$/)
      expect(decodeHeaderValue(subject)).toBe(`user:${sub}`)
      expect(seen.headers['x-pemba-issuer']).toBe('idp')
    }
    await openSession(b, await b.token({ act: { sub: 'assistant', act: { sub: 'planner' } } }))
    const seen = b.upstream.seen.findLast((r) => r.method === 'POST' && r.body?.includes('"initialize"'))!
    expect(seen.headers['x-pemba-actor']).toBe('agent:assistant')
    expect(seen.headers['x-pemba-actors']).toBe('agent:assistant,agent:planner')
  })

  it('M5 one caller past its bound loses its own oldest session (ended upstream), not anyone else\'s', async () => {
    const bob = await b.token({ sub: 'bob', act: undefined })
    const bobs = await openSession(b, bob)
    const carol = await b.token({ sub: 'carol', act: undefined })
    const first = await openSession(b, carol)
    for (let i = 0; i < 50; i++) await openSession(b, carol)
    expect((await post(b, { jsonrpc: '2.0', id: 1, method: 'ping' }, authed(carol, first))).status).toBe(404)
    for (let i = 0; i < 100 && b.upstream.sessions().includes(first); i++) await new Promise((r) => setTimeout(r, 10))
    expect(b.upstream.sessions()).not.toContain(first)
    expect((await post(b, { jsonrpc: '2.0', id: 1, method: 'ping' }, authed(bob, bobs))).status).toBe(200)
  })

  it('HEAD is not relayed: 405', async () => {
    const token = await b.token()
    const session = await openSession(b, token)
    const before = b.upstream.seen.length
    const res = await fetch(b.mcp, { method: 'HEAD', headers: authed(token, session) })
    expect(res.status).toBe(405)
    expect(b.upstream.seen.length).toBe(before)
  })
})

describe('the MCP gateway fails closed on answers a real server would not give', () => {
  let b: Bench
  let up: ScriptedUpstream
  let mcp: string
  let stop: () => Promise<void>
  beforeAll(async () => {
    b = await startBench()
    up = await startScriptedUpstream()
    const g = await startGateway({ upstream: up.url, pemba: b.pemba.url, store: b.store, jwksUri: b.idp.jwksUri })
    mcp = `${g.gateway.url}/mcp`
    stop = () => g.gateway.stop(0)
  })
  afterAll(async () => {
    await stop?.()
    await up?.close()
    await b?.close()
  })

  const send = async (body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(mcp, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...authed(await b.token()), ...headers },
      body: JSON.stringify(body),
    })
    return { status: res.status, headers: res.headers, text: await res.text() }
  }
  const list = (id: number | string, extra: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, result: { tools: TOOLS }, ...extra })

  it('C1 M4 list results are filtered by their shape, a re-typed id matches, an unmatched result is dropped', async () => {
    // a tools array under a prompts/list id, a result carrying a method, a re-typed id, an id nobody asked
    up.answer = () => ({ headers: JSON_TYPE, body: JSON.stringify([list(1, { result: { prompts: [], tools: TOOLS } }), list('2', { method: 'x' }), list(3)]) })
    const res = await send([
      { jsonrpc: '2.0', id: 1, method: 'prompts/list' },
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
    ])
    expect(res.status).toBe(200)
    const out = JSON.parse(res.text) as any[]
    expect(out.map((m) => m.id)).toEqual([1, '2'])
    for (const m of out) expect(names(m)).toEqual(['read_customer'])
  })

  it('M4 an error status while a list is outstanding: read and filtered, or replaced by -32603', async () => {
    up.answer = () => ({ status: 500, headers: JSON_TYPE, body: JSON.stringify(list(1)) })
    const json = await send({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    expect(json.status).toBe(500)
    expect(names(JSON.parse(json.text))).toEqual(['read_customer'])
    up.answer = () => ({ status: 500, headers: { 'content-type': 'text/plain' }, body: JSON.stringify(list(1)) })
    const text = await send({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    expect(text.status).toBe(502)
    expect(text.text).not.toContain('export_customers')
    expect(JSON.parse(text.text)).toMatchObject({ id: 1, error: { code: -32603 } })
  })

  it('M1 a list event ending LF then CRLF is filtered', async () => {
    up.answer = () => ({ headers: SSE, body: `event: message\ndata: ${JSON.stringify(list(1))}\n\r\n` })
    const res = await send({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
    expect(res.text).toContain('read_customer')
    expect(res.text).not.toContain('export_customers')
  })

  it('C2 a GET stream passes notifications but no answer to a request not forwarded on the session', async () => {
    up.answer = (r) =>
      r.method === 'GET'
        ? { headers: SSE, body: `id: 7\ndata: ${JSON.stringify(list(1))}\n\ndata: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n` }
        : { status: 500 }
    const res = await fetch(mcp, { headers: { ...authed(await b.token()), accept: 'text/event-stream', 'last-event-id': '6' } })
    const text = await res.text()
    expect(text).toContain('notifications/tools/list_changed')
    expect(text).not.toContain('read_customer')
  })

  it("an upstream refusing the gateway's credential is a 502, never its challenge", async () => {
    up.answer = () => ({ status: 401, headers: { 'www-authenticate': 'Bearer realm="upstream"', ...JSON_TYPE }, body: '{}' })
    const res = await send({ jsonrpc: '2.0', id: 1, method: 'ping' })
    expect(res.status).toBe(502)
    expect(res.headers.get('www-authenticate')).toBeNull()
  })
})

describe('M3 M6 configuration and challenges', () => {
  const base = { upstream: 'http://127.0.0.1:9/mcp', pemba: 'http://127.0.0.1:8080', store: '01HZZZZZZZZZZZZZZZZZZZZZZZ', jwksUri: 'http://127.0.0.1:9/jwks' }

  it('M3 allow_methods may not name a method Pemba decides', () => {
    for (const m of ['tools/call', 'resources/read', 'prompts/get', 'completion/complete', 'resources/subscribe', 'tools/list', 'resources/templates/list']) {
      const yaml = gatewayYaml({ ...base, extra: `allow_methods: [tasks/get, ${m}]\n` })
      expect(() => parseGatewayConfig(yaml, 'gateway.yaml', { UPSTREAM_KEY: 'k' })).toThrow(GatewayConfigError)
      expect(() => parseGatewayConfig(yaml, 'gateway.yaml', { UPSTREAM_KEY: 'k' })).toThrow(`allow_methods[1]: '${m}' is decided by Pemba and cannot be allowed unconditionally`)
    }
    expect(parseGatewayConfig(gatewayYaml({ ...base, extra: 'allow_methods: [tasks/get]\n' }), 'g', { UPSTREAM_KEY: 'k' }).allowMethods).toEqual(['tasks/get'])
  })

  it('M6 a 403 names the least privileged scope that would do; error.data keeps every alternative', async () => {
    const b = await startBench()
    const { gateway } = await startGateway({
      upstream: b.upstream.url,
      pemba: b.pemba.url,
      store: b.store,
      jwksUri: b.idp.jwksUri,
      scopes: '{"crm:admin": [call, get, read, refund, export], "crm:read": [call, get, read]}',
    })
    try {
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
      const body = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'read_customer', arguments: { id: '1' } } })
      const res = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: { ...headers, ...authed(await b.token({ scope: 'profile' })) }, body })
      expect(res.status).toBe(403)
      expect(res.headers.get('www-authenticate')).toContain('scope="crm:read"')
      expect(((await res.json()) as any).error.data.scopes).toEqual(['crm:read', 'crm:admin'])
      const anon = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers, body })
      expect(anon.headers.get('www-authenticate')).toContain('scope="crm:read"')
    } finally {
      await gateway.stop(0)
      await b.close()
    }
  })
})

describe('M5 session bindings', () => {
  const caller = (subject: string, client?: string): McpCaller => ({
    subject,
    actors: [],
    claims: client ? { client_id: client } : {},
    issuer: 'idp',
    missingScopes: () => undefined,
  })

  it('each caller holds at most maxPerCaller sessions; the oldest is evicted and reported, others keep theirs', () => {
    const evicted: string[] = []
    const s = new SessionBindings({ maxPerCaller: 2, onEvict: (id) => evicted.push(id) })
    s.bind('b1', caller('user:bob'))
    for (const id of ['a1', 'a2', 'a3']) s.bind(id, caller('user:alice'))
    expect(evicted).toEqual(['a1'])
    expect([s.owns('a1', caller('user:alice')), s.owns('a3', caller('user:alice')), s.owns('b1', caller('user:bob'))]).toEqual([false, true, true])
    // the OAuth client is part of who owns a session
    expect(s.owns('a3', caller('user:alice', 'other-app'))).toBe(false)
    s.forget('a3')
    expect(evicted).toEqual(['a1'])
  })

  it('the global bound evicts the least recently used and reports it', () => {
    const evicted: string[] = []
    const s = new SessionBindings({ maxSessions: 2, onEvict: (id) => evicted.push(id) })
    for (const id of ['x', 'y', 'z']) s.bind(id, caller(`user:${id}`))
    expect(evicted).toEqual(['x'])
  })
})
