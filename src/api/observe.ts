/**
 * The per-request middleware, first in the chain: the request id, the trace context, one access
 * log line, the request's metrics and, when tracing is on, its server span. The query routes
 * report their query through `c.get('observation')` (`beginQuery` / `endQuery`, see
 * src/telemetry/request-observation.ts): its outcome, latency and engine facts go to the metrics
 * and to a child span.
 *
 * - Request id: the response echoes an incoming `X-Request-Id` exactly as sent (AuthZEN §2.7:
 *   the same id back) when it is 1–256 printable ASCII characters (space included, no control
 *   characters) and holds nothing the redactor hides; a longer, other or credential-like one
 *   (a configured key, a JWT, `Bearer …`) is answered with a new UUID, since proxies and APM
 *   agents log response headers. The id the server logs, traces and records with decisions is
 *   the incoming one only when it is 1–128 characters from `[A-Za-z0-9._:-]` and not a secret
 *   the redactor hides, else a new UUID (the one echoed when the echo was replaced): an odd id
 *   goes back to its sender but never into the logs.
 * - Trace context: a W3C `traceparent` is honoured. With tracing on, the request's span is its
 *   child (`tracestate` kept); with tracing off, its trace id still goes into the access log.
 * - Access log (`event: "request"`): method, route pattern (never the raw path: ids stay out),
 *   status, latency, store, API client, request id, trace id. Never a body, a header value, a
 *   token or a key; the logger also redacts every serialised line (src/telemetry/logger.ts).
 *   Requests that never reach a handler (404, 413, refused authentication) are logged too,
 *   with the route table's pattern of the path, or `unmatched`.
 *
 * Cheap by construction: one object per request, one clock pair, headers set before `next()`
 * (touching `c.res.headers` afterwards would turn node-server's lightweight response into a
 * full one, see cors.ts), and nothing at all for tracing when it is off.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import { SpanKind, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api'
import { parseTraceParent } from '@opentelemetry/core'
import { ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE } from '@opentelemetry/semantic-conventions'
import { RequestObservation, type ObserveOptions } from '../telemetry/request-observation.ts'
import type { Tracing } from '../telemetry/tracing.ts'
import type { AppEnv } from './env.ts'

/** An incoming request id is kept (logged, recorded) when it is this: bounded, and safe to log. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** An incoming request id is echoed as sent when it is this: bounded printable ASCII, no control characters. */
const ECHOED_REQUEST_ID = /^[\x20-\x7e]{1,256}$/
/** A store id as the routes accept it (a ULID); anything else in the path is not logged. */
const STORE_ID = /^[0-9A-Z]{26}$/
const STORES_PREFIX = '/stores/'
/** The route pattern of a request that matches no route. */
const UNMATCHED = 'unmatched'

/**
 * holdsSecret: whether the redactor hides something in an incoming id (a configured key sent as
 * `X-Request-Id` would otherwise be echoed, logged and stored with the request's decisions). The
 * redactor runs only when the header is sent.
 */
function holdsSecret(id: string, redact: ((text: string) => string) | undefined): boolean {
  return redact !== undefined && redact(id) !== id
}

/** Reads request headers for the W3C propagator. */
const HEADERS_GETTER = {
  get: (h: Headers, key: string) => h.get(key) ?? undefined,
  keys: (h: Headers) => [...h.keys()],
}

/** observeRequests is the middleware (see the module comment). */
export function observeRequests(options: ObserveOptions): MiddlewareHandler<AppEnv> {
  const { accessLog, metrics, tracing, redact } = options
  return async function observe(c, next) {
    const incoming = c.req.header('x-request-id')
    const secret = incoming !== undefined && holdsSecret(incoming, redact)
    const requestId = incoming !== undefined && !secret && SAFE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID()
    // The echo is the caller's own id whenever it is a sane header value holding no secret, even one not logged.
    const echoed = incoming === undefined || secret || requestId === incoming || !ECHOED_REQUEST_ID.test(incoming) ? requestId : incoming
    const observation = new RequestObservation(options, requestId)
    c.set('requestId', requestId)
    c.set('client', '')
    c.set('observation', observation)
    // Set before the handler runs, so it is part of the response as it is built.
    c.header('X-Request-Id', echoed)
    const route = routePattern(c)
    if (tracing) startRequestSpan(c, observation, tracing, route)
    else {
      const traceparent = c.req.header('traceparent')
      if (traceparent !== undefined) observation.traceId = parseTraceParent(traceparent)?.traceId
    }
    let status: number
    try {
      await next()
      status = c.res.status
      // A handler that threw was answered by the error mapper; its query ended as an error.
      if (c.error !== undefined) observation.failQuery(c.error)
    } catch (e) {
      observation.failQuery(e)
      finish(c, observation, route, 500)
      throw e
    }
    finish(c, observation, route, status)
  }

  function finish(c: Context<AppEnv>, o: RequestObservation, route: string, status: number): void {
    const seconds = (performance.now() - o.started) / 1000
    const method = c.req.method
    metrics?.observeHttp(route, method, status, seconds)
    const client = c.get('client') || undefined
    const span = o.span
    if (span) {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
      if (client) span.setAttribute('pemba.client', client)
      if (status >= 500) {
        span.setAttribute(ATTR_ERROR_TYPE, String(status))
        span.setStatus({ code: SpanStatusCode.ERROR })
      }
      span.end()
    }
    if (accessLog) {
      accessLog.info(
        {
          event: 'request',
          method,
          route,
          status,
          latency_ms: Math.round(seconds * 1e6) / 1000,
          store: storeOf(c.req.path),
          client,
          request_id: o.requestId,
          trace_id: o.traceId,
        },
        `${method} ${route} ${status}`,
      )
    }
  }
}

/** startRequestSpan starts the request's server span, a child of the incoming traceparent when there is one. */
function startRequestSpan(c: Context<AppEnv>, o: RequestObservation, tracing: Tracing, route: string): void {
  const method = c.req.method
  const headers = c.req.raw.headers
  const parent = headers.get('traceparent') !== null ? tracing.propagator.extract(tracing.root, headers, HEADERS_GETTER) : tracing.root
  const attributes: Attributes = { [ATTR_HTTP_REQUEST_METHOD]: method, 'pemba.request_id': o.requestId }
  if (route !== UNMATCHED) attributes[ATTR_HTTP_ROUTE] = route
  const store = storeOf(c.req.path)
  if (store) attributes['pemba.store_id'] = store
  const span = tracing.tracer.startSpan(route === UNMATCHED ? method : `${method} ${route}`, { kind: SpanKind.SERVER, attributes }, parent)
  o.span = span
  o.context = trace.setSpan(parent, span)
  o.traceId = span.spanContext().traceId
}

/**
 * routePattern: the pattern of the route the request matched (`/stores/:store/check`), known
 * before any middleware runs (hono routes first), or `unmatched`. Middleware is registered on
 * `*`; a route's pattern is the last match.
 */
function routePattern(c: Context<AppEnv>): string {
  const routes = matchedRoutes(c)
  const last = routes[routes.length - 1]?.path
  return last === undefined || last.endsWith('*') ? UNMATCHED : last
}

/** storeOf: the store id a `/stores/{id}…` path names, when it is a well-formed one. */
function storeOf(path: string): string | undefined {
  if (!path.startsWith(STORES_PREFIX)) return undefined
  const end = path.indexOf('/', STORES_PREFIX.length)
  const id = path.slice(STORES_PREFIX.length, end < 0 ? undefined : end)
  return STORE_ID.test(id) ? id : undefined
}
