/**
 * The operator's endpoints: liveness (`GET /healthz`), readiness (`GET /readyz`) and the
 * Prometheus metrics (`GET /metrics`). Health keeps the gRPC health service's
 * `{"status":"SERVING"}` body, which OpenFGA's probes and ours have always read.
 *
 * @module
 */
import type { Hono } from 'hono'
import { route } from '../route-table.ts'
import type { AppDeps, AppEnv } from '../env.ts'

export function registerOperationRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  // Health, as OpenFGA's: SERVING, or NOT_SERVING (503) while the database is known to be down.
  // Only the outage tracker's state is read, never the database, so the answer is immediate
  // under any load and a slow database is not reported as down.
  route(app, 'GET /healthz', (c) => {
    if (deps.readiness.serving()) return c.json({ status: 'SERVING' })
    c.header('Retry-After', '1')
    return c.json({ status: 'NOT_SERVING' }, 503)
  })

  // Readiness: 503 with the component that is not ready (and why, redacted).
  route(app, 'GET /readyz', async (c) => {
    const report = await deps.readiness.check()
    const redact = deps.redact ?? ((text: string) => text)
    const checks = Object.fromEntries(Object.entries(report.checks).map(([name, state]) => [name, redact(state)]))
    return c.json({ status: report.ready ? 'SERVING' : 'NOT_SERVING', checks }, report.ready ? 200 : 503)
  })

  route(app, 'GET /metrics', async (c) => {
    const { contentType, body } = await deps.metricsExposition()
    return c.body(body, 200, { 'content-type': contentType })
  })
}
