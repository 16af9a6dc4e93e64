/**
 * A real MCP server for the gateway's tests: the official SDK's McpServer over its streamable
 * HTTP transport (node req/res), sessions on, on a loopback port. It records every HTTP request
 * it receives (method and headers), so a test can show what the gateway forwarded and what it
 * kept back (the caller's Authorization).
 *
 * Tools: `read_customer {id}`, `export_customers {limit?}`, `count_slowly {n}` (one progress
 * notification per step when the caller sent a progress token, each its own SSE event, then the
 * result) and `refund_order {order}` (declares an `x-authzen-mapping` in its input schema); the
 * prompt `customer_summary {id}`; the resources `file:///reports/q3.pdf` and
 * `file:///reports/q4.pdf`.
 *
 * `eventStore: true` makes the sessions resumable (the SDK's InMemoryEventStore): every event
 * gets an `id:`, and a GET with `Last-Event-ID` replays the stream's later events, as stored.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { z } from 'zod'

export interface SeenRequest {
  method: string
  headers: IncomingHttpHeaders
  /** A POST's body, exactly as received. */
  body?: string
}

export interface McpUpstream {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  url: string
  /** Every HTTP request received, in order. */
  seen: SeenRequest[]
  /** The open sessions' ids. */
  sessions(): string[]
  /** Tells every open session that the tool list changed (over each session's GET event stream). */
  toolListChanged(): void
  close(): Promise<void>
}

/** The declared mapping `refund_order` carries (COAZ §6.2): the order named by the argument. */
export const REFUND_MAPPING = {
  evaluation: {
    action: { name: 'refund' },
    resource: { type: 'order', id: '$params.arguments.order' },
  },
}

export const REPORTS = ['file:///reports/q3.pdf', 'file:///reports/q4.pdf']

/** The server's tools, prompts and resources, for one session. */
function buildServer(): McpServer {
  const server = new McpServer({ name: 'crm', version: '1.0.0' }, { capabilities: { logging: {} } })
  server.registerTool(
    'read_customer',
    { description: 'Read one customer record', inputSchema: { id: z.string() } },
    async ({ id }) => ({
      content: [{ type: 'text', text: `customer ${id}: ACME Corp, 42 employees, héllo ✓` }],
    }),
  )
  server.registerTool(
    'export_customers',
    { description: 'Export every customer', inputSchema: { limit: z.number().int().optional() } },
    async ({ limit }) => ({ content: [{ type: 'text', text: `exported ${limit ?? 'all'} customers` }] }),
  )
  server.registerTool(
    'count_slowly',
    { description: 'Count to n, reporting progress', inputSchema: { n: z.number().int().min(1).max(20) } },
    async ({ n }, extra) => {
      const token = extra._meta?.progressToken
      for (let i = 1; i <= n; i++) {
        if (token !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: n } })
        }
        await new Promise((r) => setTimeout(r, 5))
      }
      return { content: [{ type: 'text', text: `counted to ${n}` }] }
    },
  )
  server.registerTool(
    'refund_order',
    {
      description: 'Refund an order',
      inputSchema: z.object({ order: z.string() }).meta({ 'x-authzen-mapping': REFUND_MAPPING }),
    },
    async ({ order }) => ({ content: [{ type: 'text', text: `refunded ${order}` }] }),
  )
  server.registerPrompt(
    'customer_summary',
    { description: 'Summarise a customer', argsSchema: { id: z.string() } },
    ({ id }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Summarise customer ${id}` } }] }),
  )
  for (const [i, uri] of REPORTS.entries()) {
    server.registerResource(`report-${i}`, uri, { mimeType: 'text/plain' }, async () => ({
      contents: [{ uri, mimeType: 'text/plain', text: `report ${uri}` }],
    }))
  }
  return server
}

/**
 * startMcpUpstream serves the MCP server on 127.0.0.1 (port 0 unless given); `json: true`
 * answers POSTs with JSON instead of SSE streams (the transport's enableJsonResponse).
 */
export async function startMcpUpstream(options: { json?: boolean; port?: number; eventStore?: boolean } = {}): Promise<McpUpstream> {
  const transports = new Map<string, StreamableHTTPServerTransport>()
  const servers = new Map<string, McpServer>()
  const seen: SeenRequest[] = []
  const http: Server = createServer((req, res) => {
    if (req.method !== 'POST') return handle(req, res, undefined)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      let parsed: unknown
      try {
        parsed = JSON.parse(body)
      } catch {
        seen.push({ method: 'POST', headers: req.headers, body })
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }))
        return
      }
      handle(req, res, { body, parsed })
    })
  })
  const handle = (req: IncomingMessage, res: ServerResponse, post: { body: string; parsed: unknown } | undefined) => {
    seen.push({ method: req.method ?? '', headers: req.headers, ...(post ? { body: post.body } : {}) })
    if ((req.url ?? '').split('?')[0] !== '/mcp') {
      res.writeHead(404).end()
      return
    }
    const sessionId = req.headers['mcp-session-id']
    const existing = typeof sessionId === 'string' ? transports.get(sessionId) : undefined
    if (existing) {
      void existing.handleRequest(req, res, post?.parsed)
      return
    }
    if (sessionId !== undefined || req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }))
      return
    }
    // A new session: the transport answers 400 unless the body is an initialize request.
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: options.json ?? false,
      ...(options.eventStore ? { eventStore: new InMemoryEventStore() } : {}),
      onsessioninitialized: (id) => {
        transports.set(id, transport)
        servers.set(id, server)
      },
      onsessionclosed: (id) => {
        transports.delete(id)
        servers.delete(id)
      },
    })
    const server = buildServer()
    void server.connect(transport).then(() => transport.handleRequest(req, res, post?.parsed))
  }
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const { port } = http.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    sessions: () => [...transports.keys()],
    toolListChanged: () => {
      for (const server of servers.values()) server.sendToolListChanged()
    },
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined)
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    },
  }
}

/** What a scripted upstream answers. */
export interface ScriptedAnswer {
  status?: number
  headers?: Record<string, string>
  body?: string
}

/** A scripted MCP server: answers each request as `answer` says (500 until set), for answers a real server would not give. */
export interface ScriptedUpstream {
  url: string
  seen: SeenRequest[]
  answer: (req: SeenRequest) => ScriptedAnswer
  close(): Promise<void>
}

/** startScriptedUpstream serves a ScriptedUpstream on a loopback port. */
export async function startScriptedUpstream(): Promise<ScriptedUpstream> {
  const scripted: ScriptedUpstream = {
    url: '',
    seen: [],
    answer: () => ({ status: 500, body: 'not scripted' }),
    close: async () => undefined,
  }
  const http = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const seen: SeenRequest = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      scripted.seen.push(seen)
      const a = scripted.answer(seen)
      res.writeHead(a.status ?? 200, a.headers ?? {}).end(a.body ?? '')
    })
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()))
  scripted.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`
  scripted.close = async () => {
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
  }
  return scripted
}
