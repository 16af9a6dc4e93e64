/**
 * In-process MCP enforcement for servers built with the official SDK
 * (`@modelcontextprotocol/sdk`): `createMcpAuthorizer()` wraps the server's transport so that
 * every message the client sends is decided with Pemba before the server sees it, and every list
 * result is filtered before the client sees it. It is the library form of `pemba mcp-gateway`,
 * with the same policy (policy.ts) and the same token rules (caller.ts).
 *
 * What `protect(transport)` does:
 * - incoming: the bearer token comes from `extra.authInfo.token`, which the SDK's HTTP transports
 *   fill from `handleRequest(req, {authInfo})`. A message without one is never delivered (a
 *   request is answered with a JSON-RPC error -32001). Then the policy decides: allowed and
 *   forwarded messages are delivered to the server in their order of arrival; a denied request is
 *   answered with its JSON-RPC error (`-32001` denied, `-32602` mapping error, `-32603` Pemba could
 *   not be asked) and never delivered; a denied notification is dropped.
 * - outgoing: the results of `tools/list`, `prompts/list`, `resources/list` and
 *   `resources/templates/list` are filtered to what the caller may use (one batch); when Pemba
 *   cannot be asked, the list request is answered with -32603 instead, never unfiltered.
 *
 * A tool's own `x-authzen-mapping` is learned from the `tools/list` results that pass through
 * (policy.ts); a call that comes before any listing is decided by the default mapping. To be
 * certain a tool is always asked about with its declared mapping, give it in `tools` too.
 *
 * The HTTP layer should still answer 401 (`WWW-Authenticate: Bearer resource_metadata=…`) for a
 * missing or invalid token, as the MCP authorisation spec requires: `bearerAuthInfo` verifies the
 * `Authorization` header and gives the `AuthInfo` to hand to the transport.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono'
 * import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
 * import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
 * import { z } from 'zod'
 * import { createMcpAuthorizer, remoteDecisions } from 'pemba'   // createMcpAuthorizer also from 'pemba/mcp'
 *
 * const authorizer = await createMcpAuthorizer({
 *   decisions: remoteDecisions({ url: 'http://127.0.0.1:8080', storeId: '01J…', apiKey: process.env.PEMBA_API_KEY }),
 *   server: 'crm',                       // tools are tool:crm/<name>
 *   issuers: [{ name: 'idp', issuer: 'https://idp.example.com', audience: 'http://127.0.0.1:3000/mcp',
 *               jwks_uri: 'https://idp.example.com/jwks', subject_type: 'user', actor_type: 'agent',
 *               scopes: { 'crm:read': ['call', 'get', 'read'] } }],
 * })
 * const app = new Hono()
 * app.all('/mcp', async (c) => {
 *   const auth = await authorizer.bearerAuthInfo(c.req.header('authorization'))
 *   if (!auth.ok) {
 *     return c.json({ error: 'invalid_token' }, 401, {
 *       'WWW-Authenticate': `Bearer error="invalid_token", resource_metadata="http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp"`,
 *     })
 *   }
 *   const server = new McpServer({ name: 'crm', version: '1.0.0' })
 *   server.registerTool('read_customer', { inputSchema: { id: z.string() } }, async ({ id }) => ({ content: [{ type: 'text', text: id }] }))
 *   const transport = authorizer.protect(new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true }))
 *   await server.connect(transport)
 *   return transport.handleRequest(c.req.raw, { authInfo: auth.authInfo })
 * })
 * ```
 * An agent token `{sub: "alice", act: {sub: "assistant"}}` calling `read_customer` asks Pemba
 * whether `agent:assistant` may `call` `tool:crm/read_customer` on behalf of `user:alice`, with
 * the arguments as `resource_args_*` for conditions.
 *
 * @module
 */
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js'
import { pino } from 'pino'
import { JwksCache } from '../../service/jwks.ts'
import { staticIssuers, TokenVerifier, type StaticIssuerConfig } from '../../service/token-verifier.ts'
import type { DecisionClient } from '../decisions.ts'
import { McpCallerVerifier } from './caller.ts'
import type { CompiledMapping } from './coaz.ts'
import { McpPolicy, McpPolicyFailure, type PolicyLogger } from './policy.ts'
import { MCP_ERROR, type CallerRejection, type CoazMapping, type JsonRpcErrorObject, type JsonRpcId, type JsonRpcMessage, type McpCaller } from './types.ts'

export { compileMapping, type CompiledMapping } from './coaz.ts'
export { McpPolicy, McpPolicyFailure, type PolicyLogger } from './policy.ts'
export type { StaticIssuerConfig }
export type { CallerRejection, CoazMapping, McpCaller, McpVerdict } from './types.ts'

export interface McpAuthorizerOptions {
  /** The Pemba to ask (remoteDecisions, embeddedDecisions, perhaps cachedDecisions). */
  decisions: DecisionClient
  /** The `<server>` in `tool:<server>/<name>`. */
  server: string
  /** The token issuers to trust (as in `PUT /stores/{store}/token-issuers/{name}`, plus a name)… */
  issuers?: StaticIssuerConfig[]
  /** …or a verifier of your own. */
  verifier?: TokenVerifier
  /** Declared mappings by tool name (they win over a tool's `x-authzen-mapping`). */
  tools?: Record<string, CoazMapping | CompiledMapping>
  /** Further methods any authenticated caller may use. */
  allowMethods?: string[]
  /** `log`: denials are asked again with `explain` and the explanation logged. */
  explain?: 'off' | 'log'
  /** Where the authorizer logs (Pemba unavailable, denials explained); pino to stderr by default. */
  logger?: PolicyLogger
  /** For `issuers`: the clock tokens are checked against, the skew allowed and the longest `act` chain. */
  clock?: () => Date
  clockSkewSeconds?: number
  maxDelegationChain?: number
}

export interface McpAuthorizer {
  /**
   * protect wraps an SDK transport (before or after `server.connect`) and returns it: incoming
   * messages are decided before delivery, list results filtered before sending.
   */
  protect<T extends Transport>(transport: T): T
  /**
   * bearerAuthInfo verifies an `Authorization` header value (`Bearer eyJ…`) and gives the
   * `AuthInfo` for the transport's `handleRequest(req, {authInfo})`: the token, `clientId`
   * (`client_id`), `scopes` (`scope`/`scp`), `expiresAt` and `extra` (`subject`, `actors`,
   * `issuer`). Answer 401 when it is not ok.
   */
  bearerAuthInfo(authorization: string | undefined): Promise<{ ok: true; authInfo: AuthInfo; caller: McpCaller } | { ok: false; reason: CallerRejection }>
  readonly policy: McpPolicy
  readonly callers: McpCallerVerifier
}

/**
 * createMcpAuthorizer builds the policy and the token verifier once. Throws, naming the option,
 * when they cannot work (no issuers and no verifier, a bad issuer, a bad mapping, a bad server).
 */
export async function createMcpAuthorizer(options: McpAuthorizerOptions): Promise<McpAuthorizer> {
  const log = options.logger ?? pino({ name: 'pemba-mcp-authorizer' }, pino.destination(2))
  let verifier = options.verifier
  if (!verifier) {
    if (!options.issuers || options.issuers.length === 0) throw new Error('createMcpAuthorizer: issuers (or verifier) is required: no token could be trusted')
    verifier = new TokenVerifier({
      issuers: await staticIssuers(options.issuers, new JwksCache()),
      clock: options.clock ?? (() => new Date()),
      clockSkewSeconds: options.clockSkewSeconds ?? 30,
      maxDelegationChain: options.maxDelegationChain ?? 4,
    })
  }
  const callers = new McpCallerVerifier({ verifier, clock: options.clock })
  const policy = new McpPolicy({
    decisions: options.decisions,
    server: options.server,
    tools: options.tools,
    allowMethods: options.allowMethods,
    explain: options.explain,
    log,
  })
  return {
    policy,
    callers,
    protect: (transport) => protectTransport(transport, policy, callers, log),
    async bearerAuthInfo(authorization) {
      const a = await callers.authenticate(authorization)
      if (!a.ok) return a
      const { claims } = a.caller
      const authInfo: AuthInfo = {
        token: authorization!.trim().replace(/^bearer\s+/i, ''),
        clientId: typeof claims.client_id === 'string' ? claims.client_id : '',
        scopes: scopesOf(claims),
        extra: { subject: a.caller.subject, actors: a.caller.actors, issuer: a.caller.issuer },
      }
      if (typeof claims.exp === 'number') authInfo.expiresAt = claims.exp
      return { ok: true, authInfo, caller: a.caller }
    },
  }
}

type Deliver = (message: JSONRPCMessage, extra?: MessageExtraInfo) => void

/** protectTransport installs the two wrappers (see the module comment). */
function protectTransport<T extends Transport>(transport: T, policy: McpPolicy, callers: McpCallerVerifier, log: PolicyLogger): T {
  const send = transport.send.bind(transport)
  /** List requests delivered and not yet answered: their results are filtered for their caller. */
  const pendingLists = new Map<JsonRpcId, { method: string; caller: McpCaller }>()
  let inner: Deliver | undefined = transport.onmessage as Deliver | undefined
  /** Deliveries in order of arrival; the decisions themselves run concurrently. */
  let queue: Promise<void> = Promise.resolve()

  const answer = (id: JsonRpcId, error: JsonRpcErrorObject): Promise<void> =>
    send({ jsonrpc: '2.0', id, error } as JSONRPCMessage, { relatedRequestId: id }).catch((e: unknown) => {
      log.warn({ err: e, id }, 'MCP authorizer: a refusal could not be sent')
    })

  const judge = async (message: JsonRpcMessage, extra: MessageExtraInfo | undefined): Promise<() => Promise<void> | void> => {
    const id = 'id' in message ? message.id : undefined
    const isRequest = 'method' in message && id !== undefined && id !== null
    const refuse = (error: JsonRpcErrorObject) => () => (isRequest ? answer(id!, error) : undefined)
    const a = await callers.authenticate(extra?.authInfo?.token)
    if (!a.ok) return refuse({ code: MCP_ERROR.denied, message: `Unauthorized: ${a.reason}`, data: { reason: a.reason } })
    const verdict = await policy.decide(message, a.caller)
    if (verdict.kind === 'deny' || verdict.kind === 'insufficient_scope') return refuse(verdict.error)
    return () => {
      if (isRequest && policy.isListMethod((message as { method: string }).method)) {
        pendingLists.set(id!, { method: (message as { method: string }).method, caller: a.caller })
      }
      inner?.(message as JSONRPCMessage, extra)
    }
  }

  const onmessage: Deliver = (message, extra) => {
    const decided = judge(message as JsonRpcMessage, extra).catch((e: unknown) => {
      // The policy answers Pemba's failures itself; anything else is a bug: still never delivered.
      log.error({ err: e }, 'MCP authorizer: a message could not be decided and is refused')
      const id = (message as { id?: JsonRpcId }).id
      return () => (id !== undefined && 'method' in message ? answer(id, { code: MCP_ERROR.pdpFailure, message: 'Internal error' }) : undefined)
    })
    queue = queue.then(async () => {
      await (await decided)()
    })
  }

  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: () => (inner ? onmessage : undefined),
    set: (fn: Deliver | undefined) => {
      inner = fn
    },
  })

  transport.send = async (message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> => {
    const m = message as JsonRpcMessage
    if (!('id' in m) || 'method' in m || m.id === null) return send(message, options)
    const pending = pendingLists.get(m.id)
    if (!pending) return send(message, options)
    pendingLists.delete(m.id)
    if (!('result' in m)) return send(message, options)
    try {
      const result = await policy.filterListResult(pending.method, m.result, pending.caller)
      return await send({ ...m, result } as JSONRPCMessage, options)
    } catch (e) {
      if (!(e instanceof McpPolicyFailure)) throw e
      return send({ jsonrpc: '2.0', id: m.id, error: e.error } as JSONRPCMessage, options)
    }
  }
  return transport
}

/** The scopes a token holds (`scope`, space-separated, or `scp`). */
function scopesOf(claims: Record<string, unknown>): string[] {
  const out = new Set<string>()
  if (typeof claims.scope === 'string') for (const s of claims.scope.split(' ')) if (s) out.add(s)
  const scp = claims.scp
  if (typeof scp === 'string') for (const s of scp.split(' ')) if (s) out.add(s)
  if (Array.isArray(scp)) for (const s of scp) if (typeof s === 'string') out.add(s)
  return [...out]
}
