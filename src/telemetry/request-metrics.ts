/**
 * What the HTTP layer reports per request and per query, for the metrics to count. The
 * Prometheus implementation is in src/telemetry/metrics.ts; the HTTP layer sees only this
 * interface, so an app built without metrics (tests) passes none and pays nothing.
 *
 * @module
 */

/** The queries whose outcome and latency are measured. */
export type QueryKind = 'check' | 'batch_check' | 'expand' | 'list_objects' | 'list_users' | 'write' | 'read'

/** What one query did, as the HTTP layer saw it. */
export interface QueryObservation {
  kind: QueryKind
  /** `allowed` / `denied` for a check, `ok` for the others, `error` when it failed. */
  outcome: 'allowed' | 'denied' | 'ok' | 'error'
  seconds: number
  /** Subproblems dispatched, when the query reports it (checks, lists). */
  dispatches?: number
  /** A check answered from the cross-request cache. */
  cacheHit?: boolean
}

export interface RequestMetrics {
  /** One finished HTTP request: `route` is the route pattern (`/stores/:store/check`), never the raw path. */
  observeHttp(route: string, method: string, status: number, seconds: number): void
  /** One finished query. */
  observeQuery(q: QueryObservation): void
}
