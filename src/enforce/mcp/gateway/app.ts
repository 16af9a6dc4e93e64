/**
 * The MCP gateway's HTTP surface (Hono), for MCP's streamable HTTP transport:
 *
 * - `POST {path}`: one JSON-RPC message or a batch. The bearer token is verified on every request
 *   (401 with `WWW-Authenticate: Bearer resource_metadata="…"` without a good one); the SEP-2243
 *   headers must agree with the body (400); a request on another caller's session is 404; then
 *   each message is decided by the policy. A missing scope answers the whole request 403
 *   `insufficient_scope` with the scopes that would do (the client steps up and retries); denied
 *   messages are answered by the gateway (-32001, -32602, -32603, with the decision id); the rest
 *   go upstream in one request, re-serialised from what was decided (never the client's bytes),
 *   and the answers come back unchanged unless a list request is outstanding (answers.ts). A
 *   `tools/call` is decided once the tool catalogue is up to date (catalogue.ts).
 * - `GET {path}` (the server's event stream): token and session verified, then relayed through
 *   answers.ts: a result passes only when it answers a request forwarded on the session, a list
 *   result filtered (a stream resumed with `Last-Event-ID` may replay stored answers).
 * - `DELETE {path}` (end a session): token and session verified, then relayed. `HEAD` and every
 *   other method: 405.
 * - An upstream answering 401, 403 or a redirect refused the gateway's own credential (or is
 *   misconfigured): the client gets 502, never the upstream's challenge, and an error is logged.
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
import type { McpPolicy } from '../policy.ts'
import { MCP_ERROR, type JsonRpcId, type JsonRpcMessage, type JsonRpcResponse, type McpCaller, type McpVerdict } from '../types.ts'
import { answerRewriter, editAnswer, INTERNAL_ERROR } from './answers.ts'
import type { ToolCatalogue } from './catalogue.ts'
import { checkContentType, checkRoutingHeaders, errorResponse, idKey, methodOf, nameOf, parseBody, readBody, RequestRefused, requestIdOf } from './messages.ts'
import { SessionBindings } from './sessions.ts'
import { jsonAnswer, relay, Upstream, UpstreamTimeout, UpstreamUnavailable } from './upstream.ts'

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
  /** The scopes a 401 names (`scope="…"`): what the basic actions need, least privileged (absent: none named). */
  challengeScopes?: string[]
  /** The upstream's tool catalogue, brought up to date before a `tools/call` is decided. */
  catalogue?: ToolCatalogue
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
  // A session forgotten by a bound or an expiry is ended upstream too, so it does not leak there.
  sessions.onEvict = (id, caller) => {
    o.logger.info({ event: 'mcp_session_evicted', subject: caller.subject }, 'MCP gateway: a session was evicted; it is ended upstream')
    void o.upstream.endSession(id, caller)
  }
  const challengeScope = o.challengeScopes?.length ? `, scope="${o.challengeScopes.join(' ')}"` : ''
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
        'www-authenticate': `Bearer ${params}resource_metadata="${o.resourceMetadataUrl}"${challengeScope}`,
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
    try {
      checkContentType(c.req.header('content-type'))
      ;({ messages, batch } = parseBody(await readBody(c.req.raw, c.req.header('content-length'))))
      checkRoutingHeaders(messages, c.req.header('mcp-method'), c.req.header('mcp-name'))
    } catch (e) {
      if (!(e instanceof RequestRefused)) throw e
      log.rejection = 'bad_request'
      return jsonAnswer(errorResponse(null, { code: e.code, message: e.message }), e.status)
    }
    if (o.catalogue) {
      const called = new Set(messages.flatMap((m) => (methodOf(m) === 'tools/call' && typeof nameOf(m) === 'string' ? [nameOf(m)!] : [])))
      for (const tool of called) await o.catalogue.beforeCall(tool)
    }
    const verdicts = await Promise.all(messages.map((m) => o.policy.decide(m, caller)))
    log.messages = messages.map((m, i) => messageLog(m, verdicts[i]!))

    const short = verdicts.filter((v): v is Extract<McpVerdict, { kind: 'insufficient_scope' }> => v.kind === 'insufficient_scope')
    if (short.length > 0) {
      // RFC 6750: `scope` names what is required. Of the alternatives that would do (least
      // privileged first), the least privileged; every alternative is in error.data.scopes.
      const scopes = [...new Set(short.flatMap((v) => v.scopes.slice(0, 1)))]
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
    /** The forwarded requests, by id key: only their answers are passed on while a list is outstanding. */
    const requests = new Map<string, string>()
    const listIds: JsonRpcId[] = []
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
      if (id === undefined || method === undefined) continue
      requests.set(idKey(id), method)
      if (o.policy.isListMethod(method)) listIds.push(id)
    }
    if (forwarded.length === 0) {
      if (answers.length === 0) return new Response(null, { status: 202 })
      return jsonAnswer(batch ? answers : answers[0], 200)
    }
    // The upstream parses exactly what was decided: no charset, duplicate key or BOM of the client's.
    const body = JSON.stringify(batch ? forwarded : forwarded[0])
    const asked = c.req.header('mcp-session-id')
    if (asked !== undefined) sessions.remember(asked, requests)
    const upstream = await o.upstream.send(c.req.raw, caller, body)
    log.upstreamStatus = upstream.status
    const refused = await refusedUpstream(upstream)
    if (refused) return refused
    const session = upstream.headers.get('mcp-session-id')
    if (session !== null && upstream.ok && forwarded.some((m) => methodOf(m) === 'initialize')) {
      sessions.bind(session, caller)
      sessions.remember(session, requests)
    }
    if (upstream.status === 404 && asked !== undefined) sessions.forget(asked)
    return editAnswer(upstream, {
      batch,
      answers,
      rewrites: listIds.length > 0,
      listIds,
      rewrite: answerRewriter({ policy: o.policy, caller, requests, logger: o.logger, onToolListChanged: () => o.catalogue?.markStale() }),
      logger: o.logger,
    })
  }

  /**
   * GET: the server's event stream, on which a resumed stream (`Last-Event-ID`) may replay stored
   * answers: only answers to requests forwarded on this session pass, list results filtered.
   */
  const handleGet = async (c: Context, log: RequestLog): Promise<Response> => {
    // Hono answers HEAD with the GET route: the gateway does not relay HEAD.
    if (c.req.raw.method === 'HEAD') return methodNotAllowed()
    const admitted = await admit(c, log)
    if (admitted instanceof Response) return admitted
    const session = c.req.header('mcp-session-id')
    const upstream = await o.upstream.send(c.req.raw, admitted)
    log.upstreamStatus = upstream.status
    const refused = await refusedUpstream(upstream)
    if (refused) return refused
    if (session !== undefined && upstream.status === 404) sessions.forget(session)
    const type = (upstream.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
    // An error without a stream or JSON (405: no stream offered) carries no answers: relayed.
    if (!upstream.ok && type !== 'text/event-stream' && type !== 'application/json') return relay(upstream)
    return editAnswer(upstream, {
      batch: false,
      answers: [],
      rewrites: true,
      listIds: [],
      rewrite: answerRewriter({
        policy: o.policy,
        caller: admitted,
        requests: sessions.requests(session),
        logger: o.logger,
        onToolListChanged: () => o.catalogue?.markStale(),
      }),
      logger: o.logger,
    })
  }

  /** DELETE (end the session): admitted, then relayed. */
  const handleDelete = async (c: Context, log: RequestLog): Promise<Response> => {
    const admitted = await admit(c, log)
    if (admitted instanceof Response) return admitted
    const upstream = await o.upstream.send(c.req.raw, admitted)
    log.upstreamStatus = upstream.status
    const refused = await refusedUpstream(upstream)
    if (refused) return refused
    const session = c.req.header('mcp-session-id')
    if (session !== undefined && (upstream.status === 404 || upstream.ok)) sessions.forget(session)
    return relay(upstream)
  }

  /**
   * refusedUpstream: a 401, 403 or redirect from the upstream is about the gateway's own
   * credential (`upstream.headers`), never the caller's: the client gets 502, not the upstream's
   * challenge (which would send an MCP client into OAuth against the wrong server).
   */
  const refusedUpstream = async (upstream: Response): Promise<Response | undefined> => {
    const s = upstream.status
    if (s !== 401 && s !== 403 && !(s >= 300 && s < 400)) return undefined
    await upstream.body?.cancel().catch(() => undefined)
    o.logger.error(
      { event: 'mcp_upstream_refused', upstream_status: s },
      s >= 300 && s < 400
        ? `MCP gateway: the MCP server answered with a redirect (${s}): check upstream.url`
        : `MCP gateway: the MCP server refused the gateway's credential (${s}): check upstream.headers`,
    )
    return jsonAnswer(errorResponse(null, { code: INTERNAL_ERROR, message: 'Bad Gateway: the MCP server refused the request' }), 502)
  }

  /** failed answers what went wrong on the way: the client gone, the upstream unreachable (502), else a logged 500. */
  const failed = (e: unknown, log: RequestLog, client: Request): Response => {
    if (client.signal.aborted) {
      // Nobody is waiting for this answer: the client closed the connection first.
      log.rejection = 'client_closed'
      return new Response(null, { status: 499 })
    }
    if (e instanceof UpstreamUnavailable || e instanceof UpstreamTimeout) {
      const timeout = e instanceof UpstreamTimeout
      log.rejection = timeout ? 'upstream_timeout' : 'upstream_unavailable'
      o.logger.warn({ event: timeout ? 'mcp_upstream_timeout' : 'mcp_upstream_unavailable', err: e }, `MCP gateway: ${e.message}`)
      const message = timeout ? 'Gateway Timeout: the MCP server did not answer in time' : 'Bad Gateway: the MCP server cannot be reached'
      return jsonAnswer(errorResponse(null, { code: INTERNAL_ERROR, message }), timeout ? 504 : 502)
    }
    o.logger.error({ event: 'mcp_gateway_failed', err: e }, 'MCP gateway: the request failed')
    return jsonAnswer(errorResponse(null, { code: INTERNAL_ERROR, message: 'Internal error' }), 500)
  }

  const methodNotAllowed = () => jsonAnswer(errorResponse(null, { code: TRANSPORT_ERROR, message: 'Method Not Allowed' }), 405, { allow: 'GET, POST, DELETE' })
  const handlers = { POST: handlePost, GET: handleGet, DELETE: handleDelete }
  for (const [method, handle] of Object.entries(handlers)) {
    app.on(method, o.path, async (c) => {
      const log = new RequestLog(method, now())
      const res = await handle(c, log).catch((e: unknown) => failed(e, log, c.req.raw))
      return log.done(o.logger, res, now())
    })
  }
  app.all(o.path, () => methodNotAllowed())
  app.notFound(() => jsonAnswer({ error: 'not_found', message: `this gateway serves MCP at ${o.path}` }, 404))
  return app
}

function messageLog(m: JsonRpcMessage, v: McpVerdict): MessageLog {
  const method = methodOf(m)
  if (method === undefined) return { decision: 'response' }
  const entry: MessageLog = { method, decision: v.kind }
  // A URI's query may hold a presigned credential: it is never logged.
  const name = nameOf(m)?.replace(/^([a-z][a-z0-9+.-]*:[^?#]*)[?#][\s\S]*$/i, '$1')
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
