/**
 * The example's MCP server: a tiny CRM with three tools over an in-memory customer table,
 * built with the official SDK (`McpServer`) and served over its streamable HTTP transport (the
 * web-standard one, from a Hono route) on a loopback port. It knows nothing about authorisation: `pemba mcp-gateway` stands in front of
 * it and decides every message with Pemba (gateway.yaml).
 *
 *   read_customer    {id}                    one customer
 *   update_customer  {id, field, value}      changes a customer's email or phone
 *   export_customers {}                      every customer, as CSV
 *
 * Sessions are stateful (`Mcp-Session-Id`), one `McpServer` per session, as the SDK expects.
 *
 * With `inProcess` (an authorizer from `createMcpAuthorizer()`, the library form of the
 * gateway), the same server enforces Pemba's decisions itself: a request without a valid bearer
 * token is answered 401 with its RFC 9728 metadata URL, and each session's transport is wrapped
 * by `authorizer.protect()`, so every message is decided before the tools see it and list
 * results are filtered before the client does.
 *
 * Run alone with `tsx examples/mcp/server.ts [--port 9000]` (add `--pemba <url> --store <id>
 * --issuer <url>` to enforce in process); run.ts starts it in its own process, the benchmark
 * (bench/mcp.ts) as a child process.
 *
 * @module
 */
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { createMcpAuthorizer, remoteDecisions, type McpAuthorizer } from '../../src/index.ts'

export interface Customer {
  id: string
  name: string
  email: string
  phone: string
}

/** The table every session shares; `update_customer` changes it in place. */
export function seedCustomers(): Map<string, Customer> {
  const rows: Customer[] = [
    { id: 'c-1001', name: 'Acme Ltd', email: 'ops@acme.example', phone: '+44 20 7946 0001' },
    { id: 'c-1002', name: 'Globex plc', email: 'it@globex.example', phone: '+44 20 7946 0002' },
    { id: 'c-1003', name: 'Initech', email: 'help@initech.example', phone: '+44 20 7946 0003' },
  ]
  return new Map(rows.map((c) => [c.id, c]))
}

const text = (value: unknown) => ({ type: 'text' as const, text: typeof value === 'string' ? value : JSON.stringify(value) })

/** crmServer builds one session's MCP server over the shared table. */
export function crmServer(customers: Map<string, Customer>): McpServer {
  const server = new McpServer({ name: 'crm', version: '1.0.0' })
  const notFound = (id: string) => ({ isError: true, content: [text(`no customer ${id}`)] })

  server.registerTool(
    'read_customer',
    { description: 'Reads one customer by id.', inputSchema: { id: z.string() } },
    async ({ id }) => {
      const c = customers.get(id)
      return c ? { content: [text(c)], structuredContent: { ...c } } : notFound(id)
    },
  )
  server.registerTool(
    'update_customer',
    {
      description: "Changes a customer's email or phone.",
      inputSchema: { id: z.string(), field: z.enum(['email', 'phone']), value: z.string().min(1) },
    },
    async ({ id, field, value }) => {
      const c = customers.get(id)
      if (!c) return notFound(id)
      c[field] = value
      return { content: [text(c)], structuredContent: { ...c } }
    },
  )
  server.registerTool(
    'export_customers',
    { description: 'Exports every customer as CSV.', inputSchema: {} },
    async () => {
      const csv = ['id,name,email,phone', ...[...customers.values()].map((c) => `${c.id},${c.name},${c.email},${c.phone}`)]
      return { content: [text(csv.join('\n'))] }
    },
  )
  return server
}

/** In-process enforcement: the authorizer, and what the 401 and the metadata name. */
export interface InProcessEnforcement {
  authorizer: McpAuthorizer
  /** This endpoint's canonical URI (the tokens' audience): `http://127.0.0.1:<port>/mcp`. */
  resource: string
  authorizationServers: string[]
  scopes: string[]
  /** Releases what the authorizer holds (its decision client), when the server closes. */
  close?: () => Promise<void>
}

/**
 * pembaEnforcement is the `inProcess` option for a Pemba server, a store and the example's
 * issuer: an authorizer asking `pembaUrl` (remoteDecisions), trusting the issuer as gateway.yaml
 * does, with this endpoint as the tokens' audience.
 */
export function pembaEnforcement(o: { pembaUrl: string; storeId: string; issuerUrl: string }) {
  return async (port: number): Promise<InProcessEnforcement> => {
    const resource = `http://127.0.0.1:${port}/mcp`
    const decisions = remoteDecisions({ url: o.pembaUrl, storeId: o.storeId })
    const authorizer = await createMcpAuthorizer({
      decisions,
      server: 'crm',
      issuers: [
        {
          name: 'example',
          issuer: o.issuerUrl,
          audience: resource,
          jwks_uri: `${o.issuerUrl}/jwks`,
          subject_type: 'user',
          actor_type: 'agent',
          scopes: { crm: ['call'] },
        },
      ],
    })
    return { authorizer, resource, authorizationServers: [o.issuerUrl], scopes: ['crm'], close: () => decisions.close() }
  }
}

export interface RunningCrm {
  /** The MCP endpoint: `http://127.0.0.1:<port>/mcp`. */
  url: string
  customers: Map<string, Customer>
  close(): Promise<void>
}

/** An error outside any session, as the SDK's transports answer them (JSON-RPC, id null). */
const rpcError = (status: number, message: string) =>
  Response.json({ jsonrpc: '2.0', id: null, error: { code: -32000, message } }, { status })

/**
 * startCrm serves the CRM at `http://<host>:<port>/mcp` (port 0: any free one). A POST without
 * `Mcp-Session-Id` must be `initialize` and opens a session; later requests name theirs.
 * `inProcess` is called with the port once it listens and returns the enforcement to apply.
 */
export async function startCrm(
  options: { host?: string; port?: number; inProcess?: (port: number) => Promise<InProcessEnforcement> } = {},
): Promise<RunningCrm> {
  const customers = seedCustomers()
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>()
  let enforcement: InProcessEnforcement | undefined
  const app = new Hono()

  app.get('/.well-known/oauth-protected-resource/mcp', (c) => {
    if (!enforcement) return c.json({ error: 'not found' }, 404)
    const { resource, authorizationServers, scopes } = enforcement
    return c.json({ resource, authorization_servers: authorizationServers, scopes_supported: scopes, bearer_methods_supported: ['header'] })
  })

  app.all('/mcp', async (c) => {
    let authInfo: AuthInfo | undefined
    // Never unprotected: until the authorizer is ready, nothing is served.
    if (options.inProcess && !enforcement) return rpcError(503, 'starting')
    if (enforcement) {
      const verified = await enforcement.authorizer.bearerAuthInfo(c.req.header('authorization'))
      if (!verified.ok) {
        const metadata = `${new URL(enforcement.resource).origin}/.well-known/oauth-protected-resource/mcp`
        const error = verified.reason === 'token_missing' ? '' : 'error="invalid_token", '
        return c.json({ error: verified.reason }, 401, { 'WWW-Authenticate': `Bearer ${error}resource_metadata="${metadata}"` })
      }
      // The transport hands it to the server as `extra.authInfo`, where the authorizer reads the token.
      authInfo = verified.authInfo
    }
    const sessionId = c.req.header('mcp-session-id')
    const existing = sessionId === undefined ? undefined : sessions.get(sessionId)
    // GET (the server-to-client stream) and DELETE (end the session) need a known session.
    if (c.req.method !== 'POST') return existing ? existing.handleRequest(c.req.raw, { authInfo }) : rpcError(400, 'no such session')
    let parsedBody: unknown
    try {
      parsedBody = await c.req.json()
    } catch {
      return rpcError(400, 'the body is not JSON')
    }
    if (existing) return existing.handleRequest(c.req.raw, { authInfo, parsedBody })
    if (sessionId !== undefined) return rpcError(404, 'no such session')
    if (!isInitializeRequest(parsedBody)) return rpcError(400, 'a new session starts with initialize')
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, transport),
    })
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId)
    }
    enforcement?.authorizer.protect(transport)
    await crmServer(customers).connect(transport)
    return transport.handleRequest(c.req.raw, { authInfo, parsedBody })
  })
  app.notFound(() => rpcError(404, 'not found'))

  const http: ServerType = serve({ fetch: app.fetch, hostname: options.host ?? '127.0.0.1', port: options.port ?? 0 })
  await new Promise<void>((resolve, reject) => {
    if (http.listening) return resolve()
    http.once('listening', () => resolve())
    http.once('error', reject)
  })
  const { address, port } = http.address() as AddressInfo
  const close = async () => {
    await Promise.all([...sessions.values()].map((t) => t.close()))
    ;(http as unknown as { closeAllConnections(): void }).closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
    await enforcement?.close?.()
  }
  try {
    enforcement = await options.inProcess?.(port)
  } catch (err) {
    await close()
    throw err
  }
  return { url: `http://${address}:${port}/mcp`, customers, close }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // --pemba, --store and --issuer together: enforce in process (see pembaEnforcement).
  const { values: v } = parseArgs({
    options: { port: { type: 'string', default: '9000' }, pemba: { type: 'string' }, store: { type: 'string' }, issuer: { type: 'string' } },
    strict: true,
  })
  const enforce = v.pemba || v.store || v.issuer
  if (enforce && !(v.pemba && v.store && v.issuer)) {
    console.error('server.ts: --pemba, --store and --issuer go together')
    process.exit(2)
  }
  const crm = await startCrm({
    port: Number(v.port),
    inProcess: enforce ? pembaEnforcement({ pembaUrl: v.pemba!, storeId: v.store!, issuerUrl: v.issuer! }) : undefined,
  })
  console.log(`CRM MCP server listening on ${crm.url}`)
}
