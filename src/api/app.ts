/**
 * createApp builds the HTTP surface: OpenFGA's routes (no `/v1` prefix), a request id on every
 * response, CORS only for the configured origins (cors.ts), a Host check when authentication
 * is off (host-check.ts), a body size limit, and the error handler that turns
 * every failure into `{code, message}` with the status OpenFGA would send (errors.ts, the one
 * error mapper). Routes are thin: zod in (contracts.ts), one service call, JSON out; each is
 * registered against the route table (route-table.ts), the one list of endpoints.
 *
 * @module
 */
import { Hono } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { errorContext, setRetryAfter, wireError } from './errors.ts'
import { isKnownPath, route } from './route-table.ts'
import { bodySizeLimit } from './body-limit.ts'
import { browserOrigins, parseCorsOrigins } from './cors.ts'
import { hostCheck, parseAllowedHosts } from './host-check.ts'
import { authMiddleware } from './auth.ts'
import { liveStores } from './live-store.ts'
import { limitFailedAuth, rateLimit, registerAdmission } from './admission.ts'
import { observeRequests } from './observe.ts'
import { registerAccessRequestRoutes } from './routes/access-requests.ts'
import { registerAuditRoutes } from './routes/audit.ts'
import { registerAuthzenSearchRoutes } from './authzen/search.ts'
import { BEARER_CHALLENGE } from './authzen/access.ts'
import { registerAuthzenDiscoveryRoutes } from './authzen/discovery.ts'
import { registerAuthzenRequestRoutes } from './authzen/requests.ts'
import { registerAuthzenJwksRoutes } from './authzen/jwks.ts'
import { registerAuthzenEvaluationRoutes } from './authzen/routes-evaluation.ts'
import { authzenRootPaths } from './authzen/root-paths.ts'
import { registerGrantRoutes } from './routes/grants.ts'
import { registerAssertionRoutes } from './routes/assertions.ts'
import { registerModelRoutes } from './routes/models.ts'
import { registerOperationRoutes } from './routes/operations.ts'
import { registerQueryRoutes } from './routes/queries.ts'
import { MODEL_HEADER, TRUNCATED_HEADER } from './contracts.ts'
import { registerStoreRoutes } from './routes/stores.ts'
import { registerTokenIssuerRoutes } from './routes/token-checks.ts'
import { registerTupleRoutes } from './routes/tuples.ts'
import { registerGatewayRoutes } from './gateway/routes.ts'
import { isGatewayPath } from './gateway/access.ts'
import { rawPathGuard } from './raw-path.ts'
import { registerConsoleRoutes } from './console.ts'
import { registerConsoleSupportRoutes } from './routes/console-support.ts'
import type { AppDeps, AppEnv } from './env.ts'

export type { AppDeps, AppEnv } from './env.ts'

export function createApp(deps: AppDeps): Hono<AppEnv> {
  // PEMBA_AUTHZEN_DEFAULT_STORE serves one store's AuthZEN API at the root too, and a path in
  // PEMBA_PUBLIC_URL moves the discovery documents' RFC 8615 location (authzen/root-paths.ts).
  const app = new Hono<AppEnv>(authzenRootPaths(deps.authzenSettings))

  // First: the request id, the trace context, the access log line and the request's metrics,
  // also for requests refused by what follows (observe.ts).
  app.use('*', observeRequests({ accessLog: deps.accessLog, metrics: deps.metrics, tracing: deps.tracing, redact: deps.redact }))
  // Before anything routes it: a raw path with dot segments, which the URL parser would resolve
  // onto another route (`…/gateway/authorize/x/../../healthz`), is refused (raw-path.ts).
  app.use('*', rawPathGuard())
  // Browsers (cors.ts, host-check.ts): with authentication off, a Host that is a foreign DNS
  // name is refused first (DNS rebinding); then CORS, and cross-origin writes refused.
  const browser = deps.browser ?? { corsOrigins: '', allowedHosts: '', listenHost: '' }
  if (deps.authenticator.mode === 'none') app.use('*', hostCheck(parseAllowedHosts(browser.allowedHosts), browser.listenHost))
  // Not on the gateway decision paths: a proxy's check is never a browser's request, and a
  // preflight answered 204 there would be a 2xx without a decision (an Envoy "allow").
  const cors = browserOrigins(parseCorsOrigins(browser.corsOrigins), ['X-Request-Id', MODEL_HEADER, TRUNCATED_HEADER])
  app.use('*', (c, next) => (isGatewayPath(c.req.path) ? next() : cors(c, next)))
  app.use('*', bodySizeLimit(deps.bodyLimitBytes))
  // After CORS (preflights carry no credentials) and the body limit (a type-limited writer's
  // Write body is read here), before any handler.
  if (deps.authenticator.mode !== 'none') {
    // A peer whose authentication keeps failing is refused before its credentials are verified.
    if (deps.authFailureLimiter) app.use('*', limitFailedAuth(deps.authFailureLimiter, deps))
    app.use('*', authMiddleware({
      app,
      authenticator: deps.authenticator,
      access: deps.access,
      publicDiscovery: deps.authzenSettings.discovery === 'public',
    }))
  }

  // Overload (admission.ts): after authentication, which names the client a request counts
  // against; the rate limit on every route but the probes, admission on the expensive ones.
  if (deps.rateLimiter) app.use('*', rateLimit(deps.rateLimiter, deps))
  if (deps.admission) registerAdmission(app, deps.admission)

  // Deleted means gone: a route naming a deleted store answers 404 store_id_not_found before
  // its handler runs (live-store.ts); after authentication, which refuses strangers first.
  app.use('*', liveStores(deps))

  registerOperationRoutes(app, deps)
  registerStoreRoutes(app, deps)
  registerModelRoutes(app, deps)
  registerTupleRoutes(app, deps)
  registerQueryRoutes(app, deps)
  registerAssertionRoutes(app, deps)
  registerAccessRequestRoutes(app, deps)
  registerGrantRoutes(app, deps)
  registerTokenIssuerRoutes(app, deps)
  registerAuditRoutes(app, deps)
  registerAuthzenSearchRoutes(app, deps)
  registerAuthzenEvaluationRoutes(app, deps)
  registerAuthzenDiscoveryRoutes(app, deps)
  registerAuthzenRequestRoutes(app, deps)
  registerAuthzenJwksRoutes(app, deps)
  registerGatewayRoutes(app, deps)
  registerConsoleSupportRoutes(app, deps)
  registerConsoleRoutes(app, deps.console, deps.redact)

  app.notFound((c) => {
    const known = isKnownPath(new URL(c.req.url).pathname)
    return c.json(
      known ? { code: 'unimplemented', message: 'Method Not Allowed' } : { code: 'undefined_endpoint', message: 'Not Found' },
      404,
    )
  })

  app.onError((err, c) => {
    const wire = wireError(err, errorContext(deps, c.get('requestId') ?? ''))
    // Every 401 says how to authenticate (RFC 6750; AuthZEN requires it).
    if (wire.status === 401) c.header('WWW-Authenticate', BEARER_CHALLENGE)
    // A 503 (the database unavailable) or 429 (admission control) says when to try again.
    setRetryAfter((name, value) => c.header(name, value), wire)
    return c.json(wire.body, wire.status as ContentfulStatusCode)
  })

  return app
}
