/**
 * The MCP gateway's test bench, all real: a Pemba over HTTP (servePemba) holding the CRM model
 * below, an identity provider serving its JWKS, the SDK's MCP server (test/helpers/mcp-upstream.ts),
 * and the gateway built from a YAML configuration exactly as `pemba mcp-gateway` builds it,
 * listening on a loopback port. Tokens are signed by the identity provider's key.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { JWTPayload } from 'jose'
import { expect } from 'vitest'
import { createRedactor } from '../../src/core/redact.ts'
import { parseGatewayConfig, type GatewaySettings } from '../../src/enforce/mcp/gateway/config.ts'
import { buildGateway, listenGateway, type RunningGateway } from '../../src/enforce/mcp/gateway/server.ts'
import { createLogger } from '../../src/telemetry/logger.ts'
import { createStore, tupleKey, writeModel, writeTuples } from '../helpers/fixtures.ts'
import type { TestClient } from '../helpers/client.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { sign, signingKey, startIdentityProvider, type IdentityProvider, type SigningKey } from '../helpers/jwks-server.ts'
import { startMcpUpstream, type McpUpstream } from '../helpers/mcp-upstream.ts'
import { api } from '../helpers/processes.ts'

/**
 * The CRM: alice lets the assistant act for her. Both may read customers and count; only the
 * assistant may export (so acting for alice it may not); refunds are per order (the
 * `refund_order` tool declares that mapping itself); the q3 report and the summary prompt are
 * theirs, the q4 report nobody's.
 */
export const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type tool
  relations
    define call: [user, agent]
type prompt
  relations
    define get: [user, agent]
type resource
  relations
    define read: [user, agent]
type order
  relations
    define refund: [user, agent]
`

export const TUPLES = [
  'user:alice#acts_for@agent:assistant',
  'tool:crm/read_customer#call@user:alice',
  'tool:crm/read_customer#call@agent:assistant',
  'tool:crm/count_slowly#call@user:alice',
  'tool:crm/count_slowly#call@agent:assistant',
  'tool:crm/refund_order#call@user:alice',
  'tool:crm/export_customers#call@agent:assistant',
  'order:o-1#refund@user:alice',
  'order:o-1#refund@agent:assistant',
  'prompt:crm/customer_summary#get@user:alice',
  'prompt:crm/customer_summary#get@agent:assistant',
  // file:///reports/q3.pdf, its `:` percent-encoded (ids hold no `:`).
  'resource:crm/file%3A///reports/q3.pdf#read@user:alice',
  'resource:crm/file%3A///reports/q3.pdf#read@agent:assistant',
]

export const ISSUER = 'https://idp.test'

export interface Bench {
  pemba: ServedPemba
  /** Pemba's API, for writes and the decision log. */
  api: TestClient
  store: string
  idp: IdentityProvider
  key: SigningKey
  upstream: McpUpstream
  gateway: RunningGateway
  /** The gateway's MCP endpoint. */
  mcp: string
  /** Every line the gateway logged, parsed. */
  logs: Record<string, unknown>[]
  /** A token from the identity provider for the gateway: alice, acted by the assistant, scope crm:read, unless overridden. */
  token(claims?: JWTPayload): Promise<string>
  /** An SDK client connected through the gateway with `token`. */
  connect(token: string): Promise<Client>
  close(): Promise<void>
}

/** httpApi: a TestClient over real HTTP (the fixtures' helpers take one). */
export function httpApi(served: ServedPemba): TestClient {
  return {
    pemba: served.pemba,
    async request(method, path, body) {
      const res = await api(served.url, method, path, body)
      return { status: res.status, headers: new Headers(), text: JSON.stringify(res.body), body: res.body }
    },
    close: () => served.close(),
  }
}

/** The gateway's YAML for the bench; `extra` lines are appended (top-level settings). */
export function gatewayYaml(o: { upstream: string; pemba: string; store: string; jwksUri: string; extra?: string; scopes?: string }): string {
  return `listen: 127.0.0.1:0
resource: http://127.0.0.1:8090/mcp
server: crm
upstream:
  url: ${o.upstream}
  headers: {X-Upstream-Key: "\${UPSTREAM_KEY}"}
pemba:
  url: ${o.pemba}
  store: ${o.store}
  timeout_ms: 1000
authorization_servers: [${ISSUER}]
issuers:
  - name: idp
    issuer: ${ISSUER}
    jwks_uri: ${o.jwksUri}
    subject_type: user
    actor_type: agent
    scopes: ${o.scopes ?? '{"crm:read": [call, get, read], "crm:refund": [refund]}'}
${o.extra ?? ''}`
}

/** startGateway builds a gateway from gatewayYaml(o) as `pemba mcp-gateway` does, logging into `logs`. */
export async function startGateway(o: Parameters<typeof gatewayYaml>[0]): Promise<{ gateway: RunningGateway; logs: Record<string, unknown>[]; settings: GatewaySettings }> {
  const logs: Record<string, unknown>[] = []
  const logger = createLogger({
    level: 'info',
    format: 'json',
    redact: createRedactor(['upstream-secret']).text,
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  })
  const settings = parseGatewayConfig(gatewayYaml(o), 'gateway.yaml', { UPSTREAM_KEY: 'upstream-secret' })
  const gateway = await listenGateway(await buildGateway(settings, { logger }), logger)
  // The gateway lists the upstream's tools once it listens: joined here, so tests counting upstream requests start after it.
  await gateway.catalogue.refresh()
  return { gateway, logs, settings }
}

export interface BenchOptions {
  /** The upstream answers JSON instead of event streams. */
  json?: boolean
  /** Extra top-level YAML for the gateway. */
  extra?: string
  /** The upstream stores its events and resumes streams (Last-Event-ID). */
  eventStore?: boolean
}

/** startBench starts everything; close() stops it all. */
export async function startBench(options: BenchOptions = {}): Promise<Bench> {
  const pemba = await servePemba({ decisionLogFlushMs: 5 })
  const api = httpApi(pemba)
  const store = await createStore(api, 'mcp-gateway')
  await writeModel(api, store, MODEL)
  await writeTuples(api, store, TUPLES)
  const key = await signingKey('k1', 'ES256')
  const idp = await startIdentityProvider([key])
  const upstream = await startMcpUpstream({ json: options.json, eventStore: options.eventStore })
  const { gateway, logs, settings } = await startGateway({ upstream: upstream.url, pemba: pemba.url, store, jwksUri: idp.jwksUri, extra: options.extra })
  const mcp = `${gateway.url}/mcp`
  const clients: Client[] = []
  return {
    pemba,
    api,
    store,
    idp,
    key,
    upstream,
    gateway,
    mcp,
    logs,
    token(claims = {}) {
      const now = Math.floor(Date.now() / 1000)
      return sign(key, {
        iss: ISSUER,
        aud: settings.resource,
        sub: 'alice',
        act: { sub: 'assistant' },
        client_id: 'assistant-app',
        scope: 'crm:read',
        iat: now,
        exp: now + 600,
        ...claims,
      })
    },
    async connect(token) {
      const client = new Client({ name: 'gateway-test', version: '1.0.0' })
      const transport = new StreamableHTTPClientTransport(new URL(mcp), { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
      await client.connect(transport)
      clients.push(client)
      return client
    },
    async close() {
      for (const c of clients) await c.close().catch(() => undefined)
      await gateway.stop(0)
      await upstream.close()
      await idp.close()
      await pemba.close()
    },
  }
}

/** decisionLogged finds the decision Pemba logged under `requestId` (the decision log is flushed within ms). */
export async function decisionLogged(b: Bench, requestId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 250; i++) {
    const res = await b.api.request('GET', `/stores/${b.store}/decisions?request_id=${encodeURIComponent(requestId)}`)
    expect(res.status, res.text).toBe(200)
    const found = (res.body.decisions as Record<string, unknown>[] | undefined) ?? []
    if (found.length > 0) return found[0]!
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`no decision logged under ${requestId}`)
}

/** deleteTuple removes one tuple through Pemba's API. */
export async function deleteTuple(b: Bench, tuple: string): Promise<void> {
  const res = await b.api.request('POST', `/stores/${b.store}/write`, { deletes: { tuple_keys: [tupleKey(tuple)] } })
  expect(res.status, res.text).toBe(200)
}

/** post sends a raw JSON-RPC body to the gateway. */
export async function post(
  b: Bench,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string; body: any }> {
  const res = await fetch(b.mcp, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, body: parseAnswer(text, res.headers.get('content-type')) }
}

/** parseAnswer reads a JSON body, or the messages of an event stream (as an array). */
export function parseAnswer(text: string, contentType: string | null): any {
  if (!text) return undefined
  if ((contentType ?? '').startsWith('text/event-stream')) {
    return text
      .split(/\n\n/)
      .map((e) => e.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
      .filter((d) => d !== '')
      .map((d) => JSON.parse(d))
  }
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** The headers of a raw request with `token` on `session`. */
export function authed(token: string, session?: string): Record<string, string> {
  return { authorization: `Bearer ${token}`, 'mcp-protocol-version': '2025-06-18', ...(session ? { 'mcp-session-id': session } : {}) }
}

/** openSession initializes an MCP session through the gateway with raw requests; returns its id. */
export async function openSession(b: Bench, token: string, mcp = b.mcp): Promise<string> {
  const init = await fetch(mcp, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...authed(token) },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  })
  expect(init.status, await init.clone().text()).toBe(200)
  await init.text()
  const session = init.headers.get('mcp-session-id')
  expect(session).toBeTruthy()
  const done = await fetch(mcp, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...authed(token, session!) },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  })
  expect(done.status).toBe(202)
  return session!
}
