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
  // Liveness: the process answers. Nothing else is asked, so a slow database never gets a
  // live process restarted.
  route(app, 'GET /healthz', (c) => c.json({ status: 'SERVING' }))

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
