/**
 * createMcpAuthorizer end to end: the official SDK's Client talking to an McpServer over the
 * web-standard streamable HTTP transport behind Hono on a loopback port (and over the node
 * `StreamableHTTPServerTransport` behind the SDK's Express app), the transport wrapped by
 * `protect`, decisions asked of a real Pemba over HTTP with real tokens.
 */
import { serve, type ServerType } from '@hono/node-server'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import { McpError, type JSONRPCMessage, type MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js'
import { Hono } from 'hono'
import type { Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { DecisionClient } from '../../src/enforce/decisions.ts'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import { createMcpAuthorizer, type McpAuthorizer } from '../../src/enforce/mcp/authorizer.ts'
import { closedPort, mcpWorld, memoryLogger, type McpWorld } from './mcp-fixture.ts'

let world: McpWorld
let authorizer: McpAuthorizer
let down: McpAuthorizer
let http: ServerType
let base: string
/** How often export_customers ran (it must never run for a caller who may not). */
let exportRuns = 0

function crmServer(): McpServer {
  const server = new McpServer({ name: 'crm', version: '1.0.0' })
  server.registerTool('read_customer', { inputSchema: { id: z.string() } }, async ({ id }) => ({ content: [{ type: 'text', text: `customer ${id}: ACME ✓` }] }))
  server.registerTool('export_customers', { inputSchema: {} }, async () => {
    exportRuns++
    return { content: [{ type: 'text', text: 'everything' }] }
  })
  server.registerTool('search_customers', { inputSchema: { limit: z.number().int() } }, async ({ limit }) => ({ content: [{ type: 'text', text: `${limit} found` }] }))
  server.registerTool('count_slowly', { inputSchema: { n: z.number().int() } }, async ({ n }, extra) => {
    for (let i = 1; i <= n; i++) {
      const token = extra._meta?.progressToken
      if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: n } })
    }
    return { content: [{ type: 'text', text: `counted to ${n}` }] }
  })
  server.registerPrompt('summary', { argsSchema: { id: z.string() } }, ({ id }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Summarise ${id}` } }] }))
  server.registerPrompt('other', { argsSchema: { id: z.string() } }, ({ id }) => ({ messages: [{ role: 'user', content: { type: 'text', text: id } }] }))
  for (const uri of ['file:///r/q3.pdf', 'file:///r/secret.pdf']) {
    server.registerResource(uri, uri, { mimeType: 'text/plain' }, async () => ({ contents: [{ uri, mimeType: 'text/plain', text: `report ${uri}` }] }))
  }
  return server
}

/** One stateless MCP endpoint: a server and a protected transport per request. */
function endpoint(app: Hono, path: string, which: () => McpAuthorizer, options: { json?: boolean; noAuthInfo?: boolean } = {}): void {
  app.all(path, async (c) => {
    const a = which()
    const auth = await a.bearerAuthInfo(c.req.header('authorization'))
    if (!auth.ok && !options.noAuthInfo) {
      return c.json({ error: 'invalid_token', error_description: auth.reason }, 401, {
        'WWW-Authenticate': `Bearer error="invalid_token", resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
      })
    }
    const transport = a.protect(new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: options.json ?? false }))
    await crmServer().connect(transport)
    return transport.handleRequest(c.req.raw, options.noAuthInfo || !auth.ok ? {} : { authInfo: auth.authInfo })
  })
}

beforeAll(async () => {
  world = await mcpWorld(['tool:crm/count_slowly#call@user:alice', 'tool:crm/count_slowly#call@agent:*'])
  authorizer = await createMcpAuthorizer({ decisions: world.decisions, server: 'crm', issuers: world.issuers, logger: memoryLogger() })
  down = await createMcpAuthorizer({
    decisions: remoteDecisions({ url: `http://127.0.0.1:${await closedPort()}`, storeId: world.storeId, timeoutMs: 500 }),
    server: 'crm',
    verifier: world.verifier,
    logger: memoryLogger(),
  })
  const app = new Hono()
  endpoint(app, '/mcp', () => authorizer)
  endpoint(app, '/mcp-json', () => authorizer, { json: true })
  endpoint(app, '/mcp-noauth', () => authorizer, { json: true, noAuthInfo: true })
  endpoint(app, '/mcp-down', () => down)
  http = serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch })
  await new Promise<void>((resolve) => (http.listening ? resolve() : http.once('listening', () => resolve())))
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise<void>((resolve) => {
    ;(http as unknown as { closeAllConnections(): void }).closeAllConnections()
    http.close(() => resolve())
  })
  await world?.close()
})

async function connect(token: string, path = '/mcp'): Promise<Client> {
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}${path}`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }))
  return client
}

const agentToken = (claims: Record<string, unknown> = {}) => world.token({ act: { sub: 'assistant' }, client_id: 'assistant-app', ...claims })

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(McpError)
  return e as McpError
}

describe('createMcpAuthorizer with the official SDK', () => {
  it('an agent acting for alice lists only her permitted tools, prompts and resources', async () => {
    const client = await connect(await agentToken())
    // search_customers is alice's only under a condition on its arguments, which a listing cannot know: hidden.
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['count_slowly', 'read_customer'])
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['summary'])
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['file:///r/q3.pdf'])
    await client.close()
  })

  it('§8.47 an allowed call passes through unchanged, streaming progress included', async () => {
    const client = await connect(await agentToken())
    expect(await client.callTool({ name: 'read_customer', arguments: { id: '42' } })).toEqual({ content: [{ type: 'text', text: 'customer 42: ACME ✓' }] })
    const progress: number[] = []
    const r = await client.callTool({ name: 'count_slowly', arguments: { n: 3 } }, undefined, { onprogress: (p) => void progress.push(p.progress) })
    expect(r.content).toEqual([{ type: 'text', text: 'counted to 3' }])
    expect(progress).toEqual([1, 2, 3])
    expect((await client.getPrompt({ name: 'summary', arguments: { id: '7' } })).messages).toHaveLength(1)
    expect((await client.readResource({ uri: 'file:///r/q3.pdf' })).contents[0]).toMatchObject({ text: 'report file:///r/q3.pdf' })
    await client.close()
  })

  it('§8.49 a forbidden call is a JSON-RPC error -32001 with its decision id; the tool never runs', async () => {
    const client = await connect(await agentToken())
    const runs = exportRuns
    const e = await rpcError(client.callTool({ name: 'export_customers', arguments: {} }))
    expect(e.code).toBe(-32001)
    expect(exportRuns).toBe(runs)
    const decisionId = (e.data as { decision_id: string }).decision_id
    const [d] = (await world.decisionLog()).filter((x) => x.request_id === decisionId)
    expect(d).toMatchObject({ user: 'agent:assistant', on_behalf_of: ['user:alice'], object: 'tool:crm/export_customers', allowed: false })
    expect((await rpcError(client.callTool({ name: 'search_customers', arguments: { limit: 500 } }))).code).toBe(-32001)
    expect((await rpcError(client.readResource({ uri: 'file:///r/secret.pdf' }))).code).toBe(-32001)
    await client.close()
  })

  it('§8.46 ping never reaches the PDP; the token is still required', async () => {
    const client = await connect(await agentToken())
    const before = (await world.decisionLog()).length
    await client.ping()
    expect((await world.decisionLog()).length).toBe(before)
    await client.close()
    // No AuthInfo handed to the transport: nothing is delivered, a request gets an error.
    const res = await fetch(`${base}/mcp-noauth`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    })
    expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32001, message: 'Unauthorized: token_missing', data: { reason: 'token_missing' } } })
  })

  it('without a valid token the app answers 401 with the resource metadata', async () => {
    const res = await fetch(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('resource_metadata=')
    const expired = await world.token({ exp: Math.floor(Date.now() / 1000) - 3600 })
    const res2 = await fetch(`${base}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${expired}` }, body: '{}' })
    expect(res2.status).toBe(401)
    expect(await res2.json()).toMatchObject({ error_description: 'token_expired' })
  })

  it('a token lacking the scope gets the scopes it needs', async () => {
    const client = await connect(await agentToken({ scope: 'crm:export' }))
    const e = await rpcError(client.callTool({ name: 'read_customer', arguments: { id: '1' } }))
    expect(e.code).toBe(-32001)
    expect(e.data).toEqual({ reason: 'insufficient_scope', scopes: ['crm:read', 'crm:all'] })
    await client.close()
  })

  it('a revoked acts_for tuple stops the next call', async () => {
    await world.client.request('POST', `/stores/${world.storeId}/write`, { writes: { tuple_keys: [{ user: 'agent:helper', relation: 'acts_for', object: 'user:alice' }] } })
    const client = await connect(await world.token({ act: { sub: 'helper' } }))
    expect((await client.callTool({ name: 'read_customer', arguments: { id: '1' } })).content).toHaveLength(1)
    const res = await world.client.request('POST', `/stores/${world.storeId}/write`, { deletes: { tuple_keys: [{ user: 'agent:helper', relation: 'acts_for', object: 'user:alice' }] } })
    expect(res.status, res.text).toBe(200)
    expect((await rpcError(client.callTool({ name: 'read_customer', arguments: { id: '1' } }))).code).toBe(-32001)
    await client.close()
  })

  it('a batch of JSON-RPC messages is decided per message', async () => {
    const token = await agentToken()
    const res = await fetch(`${base}/mcp-json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'read_customer', arguments: { id: '1' } } },
        { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'export_customers', arguments: {} } },
        { jsonrpc: '2.0', id: 'c', method: 'ping' },
        { jsonrpc: '2.0', id: 'd', method: 'sampling/createMessage', params: {} },
      ]),
    })
    expect(res.status).toBe(200)
    const byId = Object.fromEntries(((await res.json()) as Array<Record<string, any>>).map((m) => [m.id, m]))
    expect(byId.a.result.content[0].text).toBe('customer 1: ACME ✓')
    expect(byId.b.error).toMatchObject({ code: -32001, data: { decision_id: expect.any(String) } })
    expect(byId.c.result).toEqual({})
    expect(byId.d.error).toMatchObject({ code: -32001, data: { reason: 'method_not_allowed' } })
  })

  it('§8.49 Pemba down: calls are -32603 with the request id, lists are errors, never unfiltered', async () => {
    const client = await connect(await agentToken(), '/mcp-down')
    // Before any listing, the tools' declared mappings are unknown: refused, never asked by the default mapping.
    const early = await rpcError(client.callTool({ name: 'read_customer', arguments: { id: '1' } }))
    expect(early.code).toBe(-32603)
    expect(early.data).toEqual({ reason: 'catalogue_unavailable' })
    expect((await rpcError(client.listTools())).code).toBe(-32603)
    // The listing taught the tools (it is filtering that failed): now Pemba is asked, and cannot answer.
    const e = await rpcError(client.callTool({ name: 'read_customer', arguments: { id: '1' } }))
    expect(e.code).toBe(-32603)
    expect(e.data).toEqual({ decision_id: expect.any(String) })
    await client.ping()
    await client.close()
  })

  it('refuses to start without issuers or a verifier, or with a bad mapping', async () => {
    await expect(createMcpAuthorizer({ decisions: world.decisions, server: 'crm' })).rejects.toThrow('issuers (or verifier) is required')
    await expect(createMcpAuthorizer({ decisions: world.decisions, server: 'crm', verifier: world.verifier, tools: { x: { evaluation: {} } as never } })).rejects.toThrow(
      'tools.x: evaluation.action: required',
    )
  })
})

/** A transport pair in memory: the server side protected by `a`, raw messages sent with `token`'s AuthInfo. */
async function inMemory(a: McpAuthorizer, token: string | undefined, serve: (t: InMemoryTransport) => Promise<void>) {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  a.protect(serverSide)
  await serve(serverSide)
  const received: Array<Record<string, any>> = []
  clientSide.onmessage = (m) => void received.push(m as Record<string, any>)
  await clientSide.start()
  const send = (m: Record<string, unknown>) => clientSide.send(m as JSONRPCMessage, token === undefined ? undefined : { authInfo: { token, clientId: '', scopes: [] } })
  const answers = (id: number | string) => received.filter((m) => m.id === id && !('method' in m))
  return { send, received, answers, close: () => clientSide.close() }
}

/** A DecisionClient that holds the first answer back for `ms`. */
function slowFirst(inner: DecisionClient, ms: number): DecisionClient {
  let first = true
  const wait = async () => {
    if (first) {
      first = false
      await new Promise((r) => setTimeout(r, ms))
    }
  }
  return {
    storeId: inner.storeId,
    async evaluate(q, o) {
      await wait()
      return inner.evaluate(q, o)
    },
    async evaluateAll(qs, o) {
      await wait()
      return inner.evaluateAll(qs, o)
    },
    close: () => inner.close(),
  }
}

describe('protect: ids, order and failures on one transport', () => {
  it('C1 a request reusing an in-flight id is refused -32600 and never delivered; the list is still filtered', async () => {
    const t = await inMemory(authorizer, await agentToken(), (s) => crmServer().connect(s))
    // The list first, then a ping with its id while the list is still being decided.
    await t.send({ jsonrpc: '2.0', id: 3, method: 'resources/list' })
    await t.send({ jsonrpc: '2.0', id: 3, method: 'ping' })
    await expect.poll(() => t.answers(3).length).toBe(2)
    const [refused, listed] = [t.answers(3).find((m) => m.error), t.answers(3).find((m) => m.result)]
    expect(refused!.error).toEqual({ code: -32600, message: 'Invalid Request: a request with this id is already in progress' })
    expect(listed!.result.resources.map((r: { uri: string }) => r.uri)).toEqual(['file:///r/q3.pdf'])
    // The other way round: the ping holds the id, the list is refused (never answered unfiltered).
    await t.send({ jsonrpc: '2.0', id: 4, method: 'ping' })
    await t.send({ jsonrpc: '2.0', id: 4, method: 'tools/list' })
    await expect.poll(() => t.answers(4).length).toBe(2)
    expect(t.answers(4).find((m) => m.error)!.error.code).toBe(-32600)
    expect(t.answers(4).find((m) => m.result)!.result).toEqual({})
    // Once answered, an id may be used again.
    await t.send({ jsonrpc: '2.0', id: 3, method: 'tools/list' })
    await expect.poll(() => t.answers(3).length).toBe(3)
    expect(t.answers(3)[2]!.result.tools.map((x: { name: string }) => x.name).sort()).toEqual(['count_slowly', 'read_customer'])
    await t.close()
  })

  it('M5 a handler that throws is logged, and the messages after it are still delivered (no unhandled rejection)', async () => {
    const logger = memoryLogger()
    const a = await createMcpAuthorizer({ decisions: world.decisions, server: 'crm', verifier: world.verifier, logger })
    const delivered: string[] = []
    const t = await inMemory(a, await agentToken(), async (s) => {
      s.onmessage = (m) => {
        const method = (m as { method: string }).method
        if (method === 'notifications/boom') throw new Error('the app failed')
        delivered.push(method)
      }
      await s.start()
    })
    await t.send({ jsonrpc: '2.0', method: 'notifications/boom' })
    await t.send({ jsonrpc: '2.0', method: 'notifications/initialized' })
    await expect.poll(() => delivered).toEqual(['notifications/initialized'])
    expect(logger.lines.some((l) => l.level === 'error' && String(l.msg).includes('failed to take a message'))).toBe(true)
    await t.close()
  })

  it('deliveries keep the order of arrival while decisions run concurrently; an unauthenticated notification is dropped', async () => {
    const a = await createMcpAuthorizer({ decisions: slowFirst(world.decisions, 300), server: 'crm', verifier: world.verifier, logger: memoryLogger(), requireCatalogue: false })
    const delivered: string[] = []
    const t = await inMemory(a, await agentToken(), async (s) => {
      s.onmessage = (m) => void delivered.push((m as { method: string }).method)
      await s.start()
    })
    await t.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_customer', arguments: { id: '1' } } })
    await t.send({ jsonrpc: '2.0', id: 2, method: 'ping' })
    await expect.poll(() => delivered.length).toBe(2)
    expect(delivered).toEqual(['tools/call', 'ping'])
    const anonymous = await inMemory(a, undefined, async (s) => {
      s.onmessage = (m) => void delivered.push(`anonymous ${(m as { method: string }).method}`)
      await s.start()
    })
    await anonymous.send({ jsonrpc: '2.0', method: 'notifications/initialized' })
    await anonymous.send({ jsonrpc: '2.0', id: 9, method: 'ping' })
    await expect.poll(() => anonymous.answers(9).length).toBe(1)
    expect(anonymous.answers(9)[0]!.error).toMatchObject({ code: -32001, data: { reason: 'token_missing' } })
    expect(delivered).toEqual(['tools/call', 'ping'])
    await t.close()
    await anonymous.close()
  })

  it('an onmessage set before connect is chained by the SDK: each message is decided once and reaches both', async () => {
    const seen: string[] = []
    let decided = 0
    const counting: DecisionClient = { ...world.decisions, evaluate: (q, o) => (decided++, world.decisions.evaluate(q, o)), evaluateAll: (q, o) => world.decisions.evaluateAll(q, o), close: () => Promise.resolve(), storeId: world.storeId }
    const a = await createMcpAuthorizer({ decisions: counting, server: 'crm', verifier: world.verifier, logger: memoryLogger(), requireCatalogue: false })
    const t = await inMemory(a, await agentToken(), async (s) => {
      s.onmessage = (m) => void seen.push((m as { method: string }).method)
      await crmServer().connect(s)
    })
    await t.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_customer', arguments: { id: '7' } } })
    await expect.poll(() => t.answers(1).length).toBe(1)
    expect(t.answers(1)[0]!.result.content[0].text).toBe('customer 7: ACME ✓')
    expect(seen).toEqual(['tools/call'])
    expect(decided).toBe(1)
    await t.close()
  })

  it('allow_methods naming a decided method stops the authorizer, naming the option', async () => {
    await expect(createMcpAuthorizer({ decisions: world.decisions, server: 'crm', verifier: world.verifier, allowMethods: ['tools/call'] })).rejects.toThrow(
      "allow_methods: 'tools/call' is decided by the policy",
    )
  })
})

describe('protect with the node StreamableHTTPServerTransport behind Express', () => {
  let express: HttpServer
  let expressBase: string
  /** How often a server's Protocol saw its transport close (the node transport forwards onclose too). */
  let closes = 0

  beforeAll(async () => {
    const app = createMcpExpressApp()
    // `before`: protect, then connect; `after`: connect, then protect (the handlers are already set).
    app.all('/mcp/:order', async (req, res) => {
      const auth = await authorizer.bearerAuthInfo(req.headers.authorization)
      if (!auth.ok) {
        res.status(401).set('WWW-Authenticate', `Bearer error="invalid_token", resource_metadata="${expressBase}/.well-known/oauth-protected-resource/mcp"`).json({ error: 'invalid_token' })
        return
      }
      const server = crmServer()
      server.server.onclose = () => void closes++
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
      res.on('close', () => void transport.close())
      if (req.params.order === 'before') authorizer.protect(transport)
      await server.connect(transport)
      if (req.params.order === 'after') authorizer.protect(transport)
      await transport.handleRequest(Object.assign(req, { auth: auth.authInfo }), res, req.body)
    })
    express = app.listen(0, '127.0.0.1')
    await new Promise<void>((resolve, reject) => express.once('listening', () => resolve()).once('error', reject))
    expressBase = `http://127.0.0.1:${(express.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    express.closeAllConnections()
    await new Promise<void>((resolve) => express.close(() => resolve()))
  })

  for (const order of ['before', 'after']) {
    it(`§8.47 §8.49 protected ${order} connect: the list is filtered, an allowed call runs, a forbidden one is -32001 and never runs`, async () => {
      const closedAtStart = closes
      const client = new Client({ name: 'agent', version: '1.0.0' })
      const token = await agentToken()
      await client.connect(new StreamableHTTPClientTransport(new URL(`${expressBase}/mcp/${order}`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }))
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['count_slowly', 'read_customer'])
      expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['file:///r/q3.pdf'])
      expect(await client.callTool({ name: 'read_customer', arguments: { id: '42' } })).toEqual({ content: [{ type: 'text', text: 'customer 42: ACME ✓' }] })
      const runs = exportRuns
      const e = await rpcError(client.callTool({ name: 'export_customers', arguments: {} }))
      expect(e.code).toBe(-32001)
      expect(e.data).toEqual({ decision_id: expect.any(String) })
      expect(exportRuns).toBe(runs)
      await client.close()
      // Each request's transport closes with its response (at least the 5 POSTs above); its server hears of it through the wrapper.
      await expect.poll(() => closes - closedAtStart).toBeGreaterThanOrEqual(5)
    })
  }
})

/**
 * A transport that keeps its handlers in private fields behind accessors (as a stdio-like custom
 * transport may): its own code never reads `this.onmessage`, so only a chained setter reaches it.
 */
class PrivateHandlerTransport implements Transport {
  #onmessage: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined
  #onclose: (() => void) | undefined
  readonly sent: Array<Record<string, any>> = []
  get onmessage(): ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined {
    return this.#onmessage
  }
  set onmessage(fn: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined) {
    this.#onmessage = fn
  }
  get onclose(): (() => void) | undefined {
    return this.#onclose
  }
  set onclose(fn: (() => void) | undefined) {
    this.#onclose = fn
  }
  async start(): Promise<void> {}
  async send(message: JSONRPCMessage): Promise<void> {
    this.sent.push(message as Record<string, any>)
  }
  async close(): Promise<void> {
    this.#onclose?.()
  }
  /** A line read from the peer. */
  receive(message: Record<string, unknown>, token?: string): void {
    this.#onmessage?.(message as JSONRPCMessage, token === undefined ? undefined : { authInfo: { token, clientId: '', scopes: [] } })
  }
}

describe('protect chains to accessors wherever the transport keeps its handlers', () => {
  it('a transport with private-field accessors: decided, filtered, refused and closed through the wrapper', async () => {
    const transport = new PrivateHandlerTransport()
    const server = crmServer()
    let closed = 0
    server.server.onclose = () => void closed++
    await server.connect(authorizer.protect(transport))
    const token = await agentToken()
    const answer = async (id: number) => {
      await expect.poll(() => transport.sent.filter((m) => m.id === id).length).toBe(1)
      return transport.sent.find((m) => m.id === id)!
    }
    transport.receive({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, token)
    expect((await answer(1)).result.tools.map((t: { name: string }) => t.name).sort()).toEqual(['count_slowly', 'read_customer'])
    transport.receive({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'read_customer', arguments: { id: '5' } } }, token)
    expect((await answer(2)).result.content[0].text).toBe('customer 5: ACME ✓')
    const runs = exportRuns
    transport.receive({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'export_customers', arguments: {} } }, token)
    expect((await answer(3)).error.code).toBe(-32001)
    transport.receive({ jsonrpc: '2.0', id: 4, method: 'ping' })
    expect((await answer(4)).error).toMatchObject({ code: -32001, data: { reason: 'token_missing' } })
    expect(exportRuns).toBe(runs)
    await transport.close()
    expect(closed).toBe(1)
  })

  it('the node transport\'s inner web-standard transport gets the wrapper, set before or after protect', async () => {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
    const innerOf = (t: StreamableHTTPServerTransport) => (t as unknown as { _webStandardTransport: Transport })._webStandardTransport
    authorizer.protect(transport)
    expect(innerOf(transport).onmessage).toBeUndefined()
    const server = crmServer()
    let closed = 0
    server.server.onclose = () => void closed++
    await server.connect(transport)
    expect(innerOf(transport).onmessage).toBe(transport.onmessage)
    expect(innerOf(transport).onclose).toBe(transport.onclose)
    await transport.close()
    expect(closed).toBe(1)
  })

  it('a read-only handler cannot be wrapped: protect says so instead of dropping messages', async () => {
    const readOnly = {
      start: async () => {},
      send: async () => {},
      close: async () => {},
      get onmessage() {
        return undefined
      },
    }
    expect(() => authorizer.protect(readOnly as Transport)).toThrow("protect: the transport's onmessage is read-only")
  })
})
