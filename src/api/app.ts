/**
 * createApp builds the HTTP surface: OpenFGA's routes (no `/v1` prefix), a request id on every
 * response, CORS as OpenFGA's defaults, a body size limit, and one error mapper that turns
 * every failure into `{code, message}` with the status OpenFGA would send. Routes are thin:
 * zod in, service call, JSON out.
 *
 * @module
 */
import { Hono } from 'hono'
import { redactSecrets } from '../core/redact.ts'
import { PembaError } from '../core/errors.ts'
import { bodySizeLimit } from './body-limit.ts'
import { openfgaCors } from './cors.ts'
import type { AccessRequestService } from '../service/access-requests.ts'
import type { AuthzService } from '../service/authz.ts'
import type { ModelService } from '../service/models.ts'
import type { TokenCheckService } from '../service/token-checks.ts'
import type { TokenIssuerService } from '../service/token-issuers.ts'
import type { Datastore } from '../store/store.ts'
import type { IdGenerator } from '../core/ids.ts'
import type { AccessControl } from '../auth/access-control.ts'
import type { Authenticator } from '../auth/authenticate.ts'
import { authMiddleware } from './auth.ts'
import { registerAccessRequestRoutes } from './routes/access-requests.ts'
import { registerAuditRoutes } from './routes/audit.ts'
import { decisionLogMetricLines, type DecisionLog } from '../service/decision-log.ts'
import type { ReviewService } from '../service/reviews.ts'
import { registerGrantRoutes } from './routes/grants.ts'
import { registerAssertionRoutes } from './routes/assertions.ts'
import { registerModelRoutes } from './routes/models.ts'
import { registerQueryRoutes, TRUNCATED_HEADER } from './routes/queries.ts'
import { registerStoreRoutes } from './routes/stores.ts'
import { registerTokenIssuerRoutes } from './routes/token-checks.ts'
import { registerTupleRoutes } from './routes/tuples.ts'
import type { TupleIndexStats } from '../store/tuple-index.ts'

export interface AppDeps {
  datastore: Datastore
  models: ModelService
  authz: AuthzService
  accessRequests: AccessRequestService
  ids: IdGenerator
  clock: () => Date
  bodyLimitBytes: number
  /** Where internal faults are reported (never the caller). */
  logError: (err: unknown, requestId: string) => void
  /**
   * Hides credentials in text echoed to the caller (error messages quote their input); see
   * src/core/redact.ts. Defaults to the redactor without configured secrets.
   */
  redact?: (text: string) => string
  /** A store's trusted token issuers, and checks whose subject is a token. */
  tokenIssuers: TokenIssuerService
  tokenChecks: TokenCheckService
  /** API clients' permissions (system store); enforced unless authentication is off. */
  access: AccessControl
  /** Turns the Authorization header into `c.var.client` (mode `none`: nothing to do). */
  authenticator: Authenticator
  /** The decision log (records, settings, metrics). */
  decisions: DecisionLog
  /** Least-privilege reviews and reach. */
  reviews: ReviewService
}

/**
 * Per-request values: `requestId` (also sent as X-Request-Id) and `client`, the authenticated
 * API client's identity (`client:provisioner`), '' when authentication is off.
 */
export type AppEnv = { Variables: { requestId: string; client: string } }

/** Known paths, so a wrong method answers `unimplemented` rather than `undefined_endpoint`. */
const KNOWN_PATHS = [
  /^\/healthz$/,
  /^\/metrics$/,
  /^\/stores$/,
  /^\/stores\/[^/]+$/,
  /^\/stores\/[^/]+\/(authorization-models|write|read|changes|check|batch-check|expand|list-objects|streamed-list-objects|list-users)$/,
  /^\/stores\/[^/]+\/authorization-models\/[^/]+$/,
  /^\/stores\/[^/]+\/assertions\/[^/]+$/,
  /^\/stores\/[^/]+\/access-requests$/,
  /^\/stores\/[^/]+\/access-requests\/[^/]+(\/approve|\/deny)?$/,
  /^\/stores\/[^/]+\/token-issuers(\/[^/]+)?$/,
  /^\/system\/grants$/,
  /^\/stores\/[^/]+\/(decisions|decision-log-settings|access-review|reach)$/,
]

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const redact = deps.redact ?? redactSecrets
  const app = new Hono<AppEnv>()

  app.use('*', async (c, next) => {
    const requestId = crypto.randomUUID()
    c.set('requestId', requestId)
    c.set('client', '')
    // Set before the handler runs, so it is part of the response as it is built; touching
    // c.res.headers afterwards would turn node-server's lightweight response into a full one.
    c.header('X-Request-Id', requestId)
    await next()
  })
  app.use('*', openfgaCors(['X-Request-Id', 'Openfga-Authorization-Model-Id', TRUNCATED_HEADER]))
  app.use('*', bodySizeLimit(deps.bodyLimitBytes))
  // After CORS (preflights carry no credentials) and the body limit (a type-limited writer's
  // Write body is read here), before any handler.
  if (deps.authenticator.mode !== 'none') {
    app.use('*', authMiddleware({ app, authenticator: deps.authenticator, access: deps.access }))
  }

  app.get('/healthz', (c) => c.json({ status: 'SERVING' }))
  // Prometheus text format: the cross-request cache's counters.
  app.get('/metrics', (c) => {
    const s = deps.authz.cacheStats()
    const lines = [
      '# HELP pemba_check_cache_hits_total Subproblem answers served from the cross-request cache.',
      '# TYPE pemba_check_cache_hits_total counter',
      `pemba_check_cache_hits_total ${s.hits}`,
      '# HELP pemba_check_cache_misses_total Cross-request cache look-ups that found nothing.',
      '# TYPE pemba_check_cache_misses_total counter',
      `pemba_check_cache_misses_total ${s.misses}`,
      '# HELP pemba_check_cache_entries Entries in the cross-request cache.',
      '# TYPE pemba_check_cache_entries gauge',
      `pemba_check_cache_entries ${s.entries}`,
      ...tupleIndexMetricLines(deps.authz.tupleIndexStats()),
      ...decisionLogMetricLines(deps.decisions),
    ]
    return c.text(lines.join('\n') + '\n', 200, { 'content-type': 'text/plain; version=0.0.4' })
  })
  registerStoreRoutes(app, deps)
  registerModelRoutes(app, deps)
  registerTupleRoutes(app, deps)
  registerQueryRoutes(app, deps)
  registerAssertionRoutes(app, deps)
  registerAccessRequestRoutes(app, deps)
  registerGrantRoutes(app, deps)
  registerTokenIssuerRoutes(app, deps)
  registerAuditRoutes(app, deps)

  app.notFound((c) => {
    const path = new URL(c.req.url).pathname
    const known = KNOWN_PATHS.some((p) => p.test(path))
    return c.json(
      known ? { code: 'unimplemented', message: 'Method Not Allowed' } : { code: 'undefined_endpoint', message: 'Not Found' },
      404,
    )
  })

  app.onError((err, c) => {
    if (err instanceof PembaError) {
      return c.json({ code: err.code, message: redact(err.message) }, err.status as 400)
    }
    deps.logError(err, c.get('requestId') ?? '')
    return c.json({ code: 'internal_error', message: 'Internal Server Error' }, 500)
  })

  return app
}

/** The tuple index's counters, in Prometheus text format (nothing when the index is off). */
function tupleIndexMetricLines(s: TupleIndexStats | undefined): string[] {
  if (!s) return []
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    `${name} ${value}`,
  ]
  return [
    ...metric('pemba_tuple_index_stores', 'gauge', 'Stores answered from the in-memory tuple index.', s.stores),
    ...metric('pemba_tuple_index_tuples', 'gauge', 'Tuples held by the tuple index.', s.tuples),
    ...metric('pemba_tuple_index_builds_total', 'counter', 'Stores read into the tuple index.', s.builds),
    ...metric('pemba_tuple_index_changes_applied_total', 'counter', 'Changelog entries applied to the tuple index.', s.changesApplied),
    ...metric('pemba_tuple_index_fallbacks_total', 'counter', 'Requests that read the database because their store was not indexed.', s.fallbacks),
  ]
}
