/**
 * The MCP gateway's HTTP surface (Hono), for MCP's streamable HTTP transport:
 *
 * - `POST {path}`: one JSON-RPC message or a batch. The bearer token is verified on every request
 *   (401 with `WWW-Authenticate: Bearer resource_metadata="…"` without a good one); the SEP-2243
 *   headers must agree with the body (400); a request on another caller's session is 404; then
 *   each message is decided by the policy. A missing scope answers the whole request 403
 *   `insufficient_scope` with the scopes that would do (the client steps up and retries); denied
 *   messages are answered by the gateway (-32001, -32602, -32603, with the decision id); the rest
 *   go upstream in one request, and the answers come back unchanged except list results, filtered.
 * - `GET {path}` (the server's event stream) and `DELETE {path}` (end a session): token and
 *   session verified, then relayed.
 * - `GET /.well-known/oauth-protected-resource{path}` (and without the path): RFC 9728 metadata.
 *
 * One log line per request (`event: "mcp_request"`): the HTTP method and status, the caller, each
 * message's method, name, verdict and decision ids, the latency until the answer started. Never
 * the token.
 *
 * @module
 */
import { Hono, type Context } from 'hono'
import type { Logger } from 'pino'
import type { CallerAuthentication } from '../caller.ts'
import { McpPolicyFailure, type McpPolicy } from '../policy.ts'
import { MCP_ERROR, type JsonRpcId, type JsonRpcMessage, type JsonRpcResponse, type McpCaller, type McpVerdict } from '../types.ts'
import { checkRoutingHeaders, errorResponse, JSONRPC_ERROR, methodOf, nameOf, parseBody, readBody, RequestRefused, requestIdOf } from './messages.ts'
import { SessionBindings } from './sessions.ts'
import { editAnswer, jsonAnswer, relay, resultIdOf, Upstream, UpstreamUnavailable } from './upstream.ts'

/** JSON-RPC's "server error" code, for what the transport refuses (no token, unknown session). */
const TRANSPORT_ERROR = -32000

export interface GatewayAppOptions {
  /** The MCP endpoint's path, `/mcp`. */
  path: string
  /** The gateway's canonical URI (RFC 9728 `resource`). */
  resource: string
  /** Where the metadata is served, for `WWW-Authenticate`. */
  resourceMetadataUrl: string
  /** The `<server>` of the ids, named in the metadata. */
  server: string
  authorizationServers: string[]
  /** Every scope the issuers map (RFC 9728 `scopes_supported`). */
  scopesSupported: string[]
  callers: { authenticate(bearer: string | undefined): Promise<CallerAuthentication> }
  policy: McpPolicy
  upstream: Upstream
  logger: Logger
  sessions?: SessionBindings
  /** A monotonic clock in ms, for latencies (performance.now by default). */
  now?: () => number
}

/** What the log line says of one message. */
interface MessageLog {
  method?: string
  name?: string
  id?: JsonRpcId
  decision: McpVerdict['kind'] | 'response'
  decision_ids?: string[]
  code?: number
}

/** createGatewayApp builds the gateway's Hono app (see the module comment). */
export function createGatewayApp(o: GatewayAppOptions): Hono {
  const app = new Hono()
  const sessions = o.sessions ?? new SessionBindings()
  const now = o.now ?? (() => performance.now())
  const metadata = {
    resource: o.resource,
    authorization_servers: o.authorizationServers,
    scopes_supported: o.scopesSupported,
    bearer_methods_supported: ['header'],
    resource_name: `MCP server '${o.server}' (through Pemba's MCP gateway)`,
  }
  const wellKnown = '/.well-known/oauth-protected-resource'
  app.get(wellKnown, (c) => c.json(metadata))
  if (o.path !== '/') app.get(`${wellKnown}${o.path}`, (c) => c.json(metadata))

  /** The start of every request on the MCP endpoint: who calls, and on which session. */
  const admit = async (c: Context, log: RequestLog): Promise<McpCaller | Response> => {
    const authorization = c.req.header('authorization')
    const auth = await o.callers.authenticate(authorization)
    if (!auth.ok) {
      log.rejection = auth.reason
      const params = auth.reason === 'token_missing' ? '' : `error="invalid_token", error_description="${auth.reason}", `
      return jsonAnswer(errorResponse(null, { code: TRANSPORT_ERROR, message: `Unauthorized: ${describeRejection(auth.reason)}` }), 401, {
        'www-authenticate': `Bearer ${params}resource_metadata="${o.resourceMetadataUrl}"`,
      })
    }
    log.caller = auth.caller
    const session = c.req.header('mcp-session-id')
    if (session !== undefined && !sessions.owns(session, auth.caller)) {
      // Unknown, or opened by someone else: as MCP answers a session it does not know.
      log.rejection = 'session_not_found'
      return jsonAnswer(errorResponse(null, { code: MCP_ERROR.denied, message: 'Session not found' }), 404)
    }
    return auth.caller
  }

  const handlePost = async (c: Context, log: RequestLog): Promise<Response> => {
    const admitted = await admit(c, log)
    if (admitted instanceof Response) return admitted
    const caller = admitted
    let messages: JsonRpcMessage[]
    let batch: boolean
    let text: string
    try {
      const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase()
      if (type !== 'application/json') throw new RequestRefused(415, JSONRPC_ERROR.invalidRequest, 'Unsupported Media Type: Content-Type must be application/json')
      ;({ messages, batch, text } = parseBody(await readBody(c.req.raw.body, c.req.header('content-length'))))
      checkRoutingHeaders(messages, c.req.header('mcp-method'), c.req.header('mcp-name'))
    } catch (e) {
      if (!(e instanceof RequestRefused)) throw e
      log.rejection = 'bad_request'
      return jsonAnswer(errorResponse(null, { code: e.code, message: e.message }), e.status)
    }
    const verdicts = await Promise.all(messages.map((m) => o.policy.decide(m, caller)))
    log.messages = messages.map((m, i) => messageLog(m, verdicts[i]!))

    const short = verdicts.filter((v): v is Extract<McpVerdict, { kind: 'insufficient_scope' }> => v.kind === 'insufficient_scope')
    if (short.length > 0) {
      const scopes = [...new Set(short.flatMap((v) => v.scopes))]
      const answers = messages.flatMap((m, i) => {
        const v = verdicts[i]!
        const id = requestIdOf(m)
        return v.kind === 'insufficient_scope' && id !== undefined ? [errorResponse(id, v.error)] : []
      })
      const body = batch ? answers : (answers[0] ?? errorResponse(null, short[0]!.error))
      return jsonAnswer(body, 403, {
        'www-authenticate': `Bearer error="insufficient_scope", scope="${scopes.join(' ')}", resource_metadata="${o.resourceMetadataUrl}"`,
      })
    }

    const forwarded: JsonRpcMessage[] = []
    const answers: JsonRpcResponse[] = []
    const lists = new Map<JsonRpcId, string>()
    for (const [i, m] of messages.entries()) {
      const v = verdicts[i]!
      const id = requestIdOf(m)
      if (v.kind === 'deny') {
        // A refused notification has nobody to answer: it is dropped (and logged).
        if (id !== undefined) answers.push(errorResponse(id, v.error))
        continue
      }
      forwarded.push(m)
      const method = methodOf(m)
      if (id !== undefined && method !== undefined && o.policy.isListMethod(method)) lists.set(id, method)
    }
    if (forwarded.length === 0) {
      if (answers.length === 0) return new Response(null, { status: 202 })
      return jsonAnswer(batch ? answers : answers[0], 200)
    }
    const body = forwarded.length === messages.length ? text : JSON.stringify(batch ? forwarded : forwarded[0])
    const upstream = await o.upstream.send(c.req.raw, identityOf(caller), body)
    log.upstreamStatus = upstream.status
    const session = upstream.headers.get('mcp-session-id')
    if (session !== null && upstream.ok && forwarded.some((m) => methodOf(m) === 'initialize')) sessions.bind(session, caller)
    const asked = c.req.header('mcp-session-id')
    if (upstream.status === 404 && asked !== undefined) sessions.forget(asked)
    return editAnswer(upstream, {
      batch,
      answers,
      rewrites: lists.size > 0,
      rewrite: async (message) => {
        const id = resultIdOf(message)
        const method = id === undefined ? undefined : lists.get(id)
        if (method === undefined) return message
        const result = (message as { result: Record<string, unknown> }).result
        try {
          return { ...(message as object), result: await o.policy.filterListResult(method, result, caller) }
        } catch (e) {
          if (e instanceof McpPolicyFailure) return errorResponse(id!, e.error)
          throw e
        }
      },
    })
  }

  /** GET (the server's stream) and DELETE (end the session): admitted, then relayed. */
  const handleRelay = async (c: Context, log: RequestLog): Promise<Response> => {
    const admitted = await admit(c, log)
    if (admitted instanceof Response) return admitted
    const upstream = await o.upstream.send(c.req.raw, identityOf(admitted))
    log.upstreamStatus = upstream.status
    const session = c.req.header('mcp-session-id')
    if (session !== undefined && (upstream.status === 404 || (c.req.method === 'DELETE' && upstream.ok))) sessions.forget(session)
    return relay(upstream)
  }

  /** failed answers what went wrong on the way: the client gone, the upstream unreachable (502), else a logged 500. */
  const failed = (e: unknown, log: RequestLog, client: Request): Response => {
    if (client.signal.aborted) {
      // Nobody is waiting for this answer: the client closed the connection first.
      log.rejection = 'client_closed'
      return new Response(null, { status: 499 })
    }
    if (e instanceof UpstreamUnavailable) {
      log.rejection = 'upstream_unavailable'
      o.logger.warn({ event: 'mcp_upstream_unavailable', err: e }, `MCP gateway: ${e.message}`)
      return jsonAnswer(errorResponse(null, { code: MCP_ERROR.pdpFailure, message: 'Bad Gateway: the MCP server cannot be reached' }), 502)
    }
    o.logger.error({ event: 'mcp_gateway_failed', err: e }, 'MCP gateway: the request failed')
    return jsonAnswer(errorResponse(null, { code: MCP_ERROR.pdpFailure, message: 'Internal error' }), 500)
  }

  const handlers = { POST: handlePost, GET: handleRelay, DELETE: handleRelay }
  for (const [method, handle] of Object.entries(handlers)) {
    app.on(method, o.path, async (c) => {
      const log = new RequestLog(method, now())
      const res = await handle(c, log).catch((e: unknown) => failed(e, log, c.req.raw))
      return log.done(o.logger, res, now())
    })
  }
  app.all(o.path, () =>
    jsonAnswer(errorResponse(null, { code: TRANSPORT_ERROR, message: 'Method Not Allowed' }), 405, { allow: 'GET, POST, DELETE' }),
  )
  app.notFound(() => jsonAnswer({ error: 'not_found', message: `this gateway serves MCP at ${o.path}` }, 404))
  return app
}

/** What the upstream is told of the caller. */
function identityOf(caller: McpCaller): { subject: string; actor?: string } {
  return caller.actors.length > 0 ? { subject: caller.subject, actor: caller.actors[0] } : { subject: caller.subject }
}

function messageLog(m: JsonRpcMessage, v: McpVerdict): MessageLog {
  const method = methodOf(m)
  if (method === undefined) return { decision: 'response' }
  const entry: MessageLog = { method, decision: v.kind }
  const name = nameOf(m)
  if (name !== undefined) entry.name = name.length > 200 ? `${name.slice(0, 200)}…` : name
  const id = requestIdOf(m)
  if (id !== undefined) entry.id = id
  if (v.kind !== 'forward' && v.requestIds.length > 0) entry.decision_ids = v.requestIds
  if (v.kind === 'deny' || v.kind === 'insufficient_scope') entry.code = v.error.code
  return entry
}

/** What each token rejection tells the client (never the token). */
function describeRejection(reason: string): string {
  switch (reason) {
    case 'token_missing':
      return 'a bearer token is required'
    case 'token_expired':
      return 'the token has expired'
    case 'issuer_untrusted':
      return 'the token is not from a trusted issuer'
    case 'issuer_keys_unavailable':
      return "the issuer's keys cannot be fetched"
    case 'delegation_chain_too_long':
      return 'the delegation chain is too long'
    default:
      return 'the token is not valid for this server'
  }
}

/** The facts of one request, logged once its answer is ready. */
class RequestLog {
  caller?: McpCaller
  messages?: MessageLog[]
  rejection?: string
  upstreamStatus?: number

  constructor(
    readonly httpMethod: string,
    readonly started: number,
  ) {}

  done(logger: Logger, res: Response, at: number): Response {
    const line: Record<string, unknown> = { event: 'mcp_request', http_method: this.httpMethod, status: res.status }
    if (this.caller) {
      line.subject = this.caller.subject
      if (this.caller.actors.length > 0) line.actors = this.caller.actors
      line.issuer = this.caller.issuer
    }
    if (this.messages) line.messages = this.messages
    if (this.rejection) line.rejection = this.rejection
    if (this.upstreamStatus !== undefined) line.upstream_status = this.upstreamStatus
    line.latency_ms = Math.round((at - this.started) * 1000) / 1000
    const what = this.messages?.map((m) => (m.name ? `${m.method} ${m.name}: ${m.decision}` : m.method ? `${m.method}: ${m.decision}` : m.decision)).join(', ')
    logger.info(line, `MCP ${this.httpMethod} ${res.status}${what ? ` (${what})` : ''}`)
    return res
  }
}
