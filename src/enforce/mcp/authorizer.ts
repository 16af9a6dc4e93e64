/**
 * In-process MCP enforcement for servers built with the official SDK
 * (`@modelcontextprotocol/sdk`): `createMcpAuthorizer()` wraps the server's transport so that
 * every message the client sends is decided with Pemba before the server sees it, and every list
 * result is filtered before the client sees it. It is the library form of `pemba mcp-gateway`,
 * with the same policy (policy.ts) and the same token rules (caller.ts).
 *
 * `protect` works with every SDK server transport: the web-standard and node streamable HTTP
 * transports, SSE, in-memory, stdio, and custom ones, whether their handlers are plain fields or
 * accessors (see `interceptHandler`), before or after `server.connect`.
 *
 * What `protect(transport)` does:
 * - incoming: the bearer token comes from `extra.authInfo.token`, which the SDK's HTTP transports
 *   fill from `handleRequest(req, {authInfo})`. A message without one is never delivered (a
 *   request is answered with a JSON-RPC error -32001). Then the policy decides: allowed and
 *   forwarded messages are delivered to the server in their order of arrival; a denied request is
 *   answered with its JSON-RPC error (`-32001` denied, `-32602` mapping error, `-32603` Pemba could
 *   not be asked) and never delivered; a denied notification is dropped.
 *   A request whose id is already in flight on the transport is refused (-32600, never
 *   delivered): each response is matched to its request by id, and a second request with the
 *   same id could otherwise take a list's filtering away from it. Deliveries keep the order of
 *   arrival, so a `ping` or `notifications/cancelled` waits behind the decision of an earlier
 *   message (at most the DecisionClient's timeout). A server handler that throws is logged; the
 *   messages after it are still delivered.
 * - outgoing: the results of `tools/list`, `prompts/list`, `resources/list` and
 *   `resources/templates/list` are filtered to what the caller may use (one batch); when Pemba
 *   cannot be asked, the list request is answered with -32603 instead, never unfiltered.
 *
 * Declared mappings: in-process, the authorizer cannot list the server's tools itself, so a
 * tool's own `x-authzen-mapping` is learned from the `tools/list` results it sends (to any
 * caller: the policy is shared by every transport the authorizer protects). Until a tool has been
 * listed, a `tools/call` of it is refused (-32603, `data.reason: "catalogue_unavailable"`,
 * logged) rather than asked with the default tool-level question, which could be broader than the
 * tool's declared one (`requireCatalogue`, on by default). So: put every declared mapping in
 * `tools`, or give the complete tool list at start-up with `authorizer.policy.loadCatalogue(tools)`
 * (a tool missing from it is then -32602 `unknown tool`), or rely on clients listing first, as
 * MCP clients do. `requireCatalogue: false` restores asking by the default mapping before a
 * listing; use it only when no tool declares a mapping.
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
import { heldScopes, staticIssuers, TokenVerifier, type StaticIssuerConfig } from '../../service/token-verifier.ts'
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
  /** Further methods any authenticated caller may use (not one the policy decides, such as `tools/call`). */
  allowMethods?: string[]
  /** Refuse a `tools/call` of a tool not yet listed nor configured (see the module comment). Default true. */
  requireCatalogue?: boolean
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
    requireCatalogue: options.requireCatalogue ?? true,
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
        scopes: [...heldScopes(claims)],
        extra: { subject: a.caller.subject, actors: a.caller.actors, issuer: a.caller.issuer },
      }
      if (typeof claims.exp === 'number') authInfo.expiresAt = claims.exp
      return { ok: true, authInfo, caller: a.caller }
    },
  }
}

type Deliver = (message: JSONRPCMessage, extra?: MessageExtraInfo) => void

/** A request delivered (or being decided) and not yet answered; `caller` once it is delivered. */
interface InFlight {
  method: string
  caller?: McpCaller
}

/** protectTransport installs the wrappers (see the module comment). */
function protectTransport<T extends Transport>(transport: T, policy: McpPolicy, callers: McpCallerVerifier, log: PolicyLogger): T {
  const send = transport.send.bind(transport)
  /** Requests by id, from arrival until answered: list results are filtered for their caller. */
  const inFlight = new Map<JsonRpcId, InFlight>()
  const inner = new HandlerLayers<Parameters<Deliver>>(transport.onmessage as Deliver | undefined)
  const innerClose = new HandlerLayers<[]>(transport.onclose)
  /** Deliveries in order of arrival; the decisions themselves run concurrently. */
  let queue: Promise<void> = Promise.resolve()

  const answer = (id: JsonRpcId, error: JsonRpcErrorObject): Promise<void> =>
    send({ jsonrpc: '2.0', id, error } as JSONRPCMessage, { relatedRequestId: id }).catch((e: unknown) => {
      log.warn({ err: e, id }, 'MCP authorizer: a refusal could not be sent')
    })

  const deliver = (message: JsonRpcMessage, extra: MessageExtraInfo | undefined): void => {
    try {
      inner.run(message as JSONRPCMessage, extra)
    } catch (e) {
      log.error({ err: e, method: (message as { method?: unknown }).method }, 'MCP authorizer: the server failed to take a message')
    }
  }

  /**
   * judge decides one message. `id` is set for a request entered in inFlight; `replyId` is the
   * id a refusal echoes (also for a malformed message that is no request).
   */
  const judge = async (
    message: JsonRpcMessage,
    extra: MessageExtraInfo | undefined,
    id: JsonRpcId | undefined,
    replyId: JsonRpcId | undefined,
  ): Promise<() => Promise<void> | void> => {
    const refuse = (error: JsonRpcErrorObject) => () => {
      if (id !== undefined) inFlight.delete(id)
      return replyId === undefined ? undefined : answer(replyId, error)
    }
    const a = await callers.authenticateToken(extra?.authInfo?.token)
    if (!a.ok) return refuse({ code: MCP_ERROR.denied, message: `Unauthorized: ${a.reason}`, data: { reason: a.reason } })
    const verdict = await policy.decide(message, a.caller)
    if (verdict.kind === 'deny' || verdict.kind === 'insufficient_scope') return refuse(verdict.error)
    return () => {
      const entry = id === undefined ? undefined : inFlight.get(id)
      if (entry) entry.caller = a.caller
      if ((message as { method?: unknown }).method === 'notifications/cancelled') forgetCancelled(message)
      deliver(message, extra)
    }
  }

  /** A cancelled request gets no response (the SDK sends none); a list's entry stays, so that a late result is still filtered. */
  const forgetCancelled = (message: JsonRpcMessage): void => {
    const requestId = (message as { params?: { requestId?: unknown } }).params?.requestId
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return
    const entry = inFlight.get(requestId)
    if (entry && !policy.isListMethod(entry.method)) inFlight.delete(requestId)
  }

  const onmessage: Deliver = (message, extra) => {
    if (inner.reentered(message, extra)) return
    const m = message as JsonRpcMessage
    const method = (m as { method?: unknown }).method
    const rawId = (m as { id?: unknown }).id
    const replyId = typeof rawId === 'string' || typeof rawId === 'number' ? rawId : undefined
    const id = typeof method === 'string' ? replyId : undefined
    let decided: Promise<() => Promise<void> | void>
    if (id !== undefined && inFlight.has(id)) {
      // Not entered in inFlight: the request already there keeps its entry.
      decided = Promise.resolve(() => answer(id, { code: -32600, message: 'Invalid Request: a request with this id is already in progress' }))
    } else {
      if (id !== undefined) inFlight.set(id, { method: method as string })
      decided = judge(m, extra, id, replyId).catch((e: unknown) => {
        // The policy answers Pemba's failures itself; anything else is a bug: still never delivered.
        log.error({ err: e }, 'MCP authorizer: a message could not be decided and is refused')
        return () => {
          if (id !== undefined) inFlight.delete(id)
          return id === undefined ? undefined : answer(id, { code: MCP_ERROR.pdpFailure, message: 'Internal error' })
        }
      })
    }
    queue = queue
      .then(async () => {
        await (await decided)()
      })
      .catch((e: unknown) => {
        log.error({ err: e }, 'MCP authorizer: a message could not be delivered')
      })
  }

  // Absent while nothing is set: InMemoryTransport queues messages until a handler is there.
  interceptHandler(transport, 'onmessage', inner, () => (inner.present ? onmessage : undefined))

  const onclose = (): void => {
    if (innerClose.reentered()) return
    inFlight.clear()
    innerClose.run()
  }
  interceptHandler(transport, 'onclose', innerClose, () => onclose)

  const filteredSend = async (message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> => {
    const m = message as JsonRpcMessage
    if (!('id' in m) || 'method' in m || m.id === null) return send(message, options)
    const pending = inFlight.get(m.id)
    if (!pending) return send(message, options)
    inFlight.delete(m.id)
    if (!('result' in m) || !policy.isListMethod(pending.method)) return send(message, options)
    if (!pending.caller) {
      // A list result for a request never delivered: cannot be filtered, so never sent as it is.
      log.error({ id: m.id, method: pending.method }, 'MCP authorizer: a list result came for a request not delivered; answered with an error')
      return send({ jsonrpc: '2.0', id: m.id, error: { code: MCP_ERROR.pdpFailure, message: 'Internal error' } } as JSONRPCMessage, options)
    }
    try {
      const result = await policy.filterListResult(pending.method, m.result, pending.caller)
      return await send({ ...m, result } as JSONRPCMessage, options)
    } catch (e) {
      if (!(e instanceof McpPolicyFailure)) throw e
      return send({ jsonrpc: '2.0', id: m.id, error: e.error } as JSONRPCMessage, options)
    }
  }
  // An own property, whatever `send` is on the prototype chain: the server's Protocol calls
  // `transport.send` on the object it was given, and an assignment could reach an inherited setter.
  ownProperty(transport, 'send', { configurable: true, enumerable: false, writable: true, value: filteredSend })
  return transport
}

/** The descriptor of `name` on `target` or, failing that, on the nearest prototype that has it. */
function findProperty(target: object, name: PropertyKey): PropertyDescriptor | undefined {
  for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const found = Object.getOwnPropertyDescriptor(o, name)
    if (found) return found
  }
  return undefined
}

/** ownProperty defines `name` on `target`, with an error naming it when the transport forbids that. */
function ownProperty(target: object, name: string, descriptor: PropertyDescriptor): void {
  const own = Object.getOwnPropertyDescriptor(target, name)
  if ((own && !own.configurable) || (!own && !Object.isExtensible(target))) {
    throw new TypeError(`protect: the transport's ${name} cannot be replaced (not configurable); protect the transport before freezing it`)
  }
  Object.defineProperty(target, name, descriptor)
}

/**
 * interceptHandler makes `transport[name]` read as our wrapper and keeps what is assigned to it in
 * `layers`. Where the transport's own code finds the handler matters: a plain field (the
 * web-standard streamable HTTP, SSE, in-memory and stdio transports call `this.onmessage`) is
 * shadowed by the accessor defined here; an accessor (the node `StreamableHTTPServerTransport`
 * forwards `onmessage`/`onclose`/`onerror` to an inner web-standard transport, and a transport may
 * keep its handler in a private field) is chained: after every assignment its original setter gets
 * our wrapper, so whatever the transport calls is the wrapper, never the handler undecided.
 *
 * @example
 * A node transport after `server.connect`: `node.onmessage = h` stores `h` in `layers` and runs
 * the original setter, `inner.onmessage = wrapper`; a POST reaches `inner.onmessage` = the wrapper,
 * which decides, then runs `h`.
 */
function interceptHandler<A extends unknown[]>(transport: object, name: 'onmessage' | 'onclose', layers: HandlerLayers<A>, exposed: () => ((...args: A) => void) | undefined): void {
  const original = findProperty(transport, name)
  const setter = original?.set
  if (original?.get !== undefined && setter === undefined) throw new TypeError(`protect: the transport's ${name} is read-only (a getter without a setter) and cannot be wrapped`)
  const chain = (): void => {
    setter?.call(transport, exposed())
  }
  ownProperty(transport, name, {
    configurable: true,
    enumerable: true,
    get: exposed,
    set: (fn: ((...args: A) => void) | undefined) => {
      layers.set(fn)
      chain()
    },
  })
  chain()
}

/**
 * HandlerLayers holds what was set as a transport's handler (`onmessage`, `onclose`). Code that
 * sets one often chains the one it finds, as the SDK's Protocol does on connect
 * (`const prev = t.onmessage; t.onmessage = (m) => { prev?.(m); … }`); what it finds is our
 * wrapper, so a call of the wrapper from inside a layer, with the same first argument, means
 * "the layer below" (`reentered`), not a new message to decide.
 */
class HandlerLayers<A extends unknown[]> {
  readonly #layers: Array<(...args: A) => void> = []
  #active: { first: unknown; index: number } | undefined

  constructor(initial: ((...args: A) => void) | undefined) {
    if (initial) this.#layers.push(initial)
  }

  get present(): boolean {
    return this.#layers.length > 0
  }

  set(fn: ((...args: A) => void) | undefined): void {
    if (fn) this.#layers.push(fn)
    else this.#layers.length = 0
  }

  /** run calls the handler set last. */
  run(...args: A): void {
    this.#run(this.#layers.length - 1, args)
  }

  /** reentered: when called from inside a layer for the same call, runs the layer below and says true. */
  reentered(...args: A): boolean {
    const active = this.#active
    if (!active || active.first !== args[0]) return false
    if (active.index > 0) this.#run(active.index - 1, args)
    return true
  }

  #run(index: number, args: A): void {
    const saved = this.#active
    this.#active = { first: args[0], index }
    try {
      this.#layers[index]?.(...args)
    } finally {
      this.#active = saved
    }
  }
}

