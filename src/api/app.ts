/**
 * createApp builds the HTTP surface: OpenFGA's routes (no `/v1` prefix), a request id on every
 * response, CORS as OpenFGA's defaults, a body size limit, and the error handler that turns
 * every failure into `{code, message}` with the status OpenFGA would send (errors.ts, the one
 * error mapper). Routes are thin: zod in (contracts.ts), one service call, JSON out; each is
 * registered against the route table (route-table.ts), the one list of endpoints.
 *
 * @module
 */
import { Hono } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { errorContext, wireError } from './errors.ts'
import { isKnownPath, route } from './route-table.ts'
import { bodySizeLimit } from './body-limit.ts'
import { openfgaCors } from './cors.ts'
import { authMiddleware } from './auth.ts'
import { registerAccessRequestRoutes } from './routes/access-requests.ts'
import { registerAuditRoutes } from './routes/audit.ts'
import { decisionLogMetricLines } from '../service/decision-log.ts'
import { registerGrantRoutes } from './routes/grants.ts'
import { registerAssertionRoutes } from './routes/assertions.ts'
import { registerModelRoutes } from './routes/models.ts'
import { registerQueryRoutes } from './routes/queries.ts'
import { MODEL_HEADER, TRUNCATED_HEADER } from './contracts.ts'
import { registerStoreRoutes } from './routes/stores.ts'
import { registerTokenIssuerRoutes } from './routes/token-checks.ts'
import { registerTupleRoutes } from './routes/tuples.ts'
import type { TupleIndexStats } from '../service/evaluation.ts'
import type { AppDeps, AppEnv } from './env.ts'

export type { AppDeps, AppEnv } from './env.ts'

export function createApp(deps: AppDeps): Hono<AppEnv> {
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
  app.use('*', openfgaCors(['X-Request-Id', MODEL_HEADER, TRUNCATED_HEADER]))
  app.use('*', bodySizeLimit(deps.bodyLimitBytes))
  // After CORS (preflights carry no credentials) and the body limit (a type-limited writer's
  // Write body is read here), before any handler.
  if (deps.authenticator.mode !== 'none') {
    app.use('*', authMiddleware({ app, authenticator: deps.authenticator, access: deps.access }))
  }

  route(app, 'GET /healthz', (c) => c.json({ status: 'SERVING' }))
  // Prometheus text format: the cross-request cache's counters.
  route(app, 'GET /metrics', (c) => {
    const s = deps.evaluation.cacheStats()
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
      ...tupleIndexMetricLines(deps.evaluation.tupleIndexStats()),
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
    const known = isKnownPath(new URL(c.req.url).pathname)
    return c.json(
      known ? { code: 'unimplemented', message: 'Method Not Allowed' } : { code: 'undefined_endpoint', message: 'Not Found' },
      404,
    )
  })

  app.onError((err, c) => {
    const wire = wireError(err, errorContext(deps, c.get('requestId') ?? ''))
    return c.json(wire.body, wire.status as ContentfulStatusCode)
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
