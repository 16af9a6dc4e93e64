/**
 * The HTTP layer's dependencies (`AppDeps`) and per-request variables (`AppEnv`), apart from
 * app.ts so the routes and middleware can name them without importing the app that registers them.
 *
 * @module
 */
import type { AccessRequestService } from '../service/access-requests.ts'
import type { ConsoleAssets } from './console-assets.ts'
import type { AssertionService } from '../service/assertions.ts'
import type { CheckService } from '../service/checks.ts'
import type { EvaluationService } from '../service/evaluation.ts'
import type { ListService } from '../service/lists.ts'
import type { SearchService } from '../service/authzen/search.ts'
import type { AuthzenDecider } from '../service/authzen/decider.ts'
import type { ArapBinding } from '../service/authzen/arap-binding.ts'
import type { ArapRequestService } from '../service/authzen/arap-requests.ts'
import type { AuthzenEvaluations } from '../service/authzen/evaluations.ts'
import type { SigningKeys } from '../service/signing-keys.ts'
import type { StoreService } from '../service/stores.ts'
import type { WriteService } from '../service/writes.ts'
import type { ModelService } from '../service/models.ts'
import type { TokenCheckService } from '../service/token-checks.ts'
import type { TokenIssuerService } from '../service/token-issuers.ts'
import type { AccessControl } from '../auth/access-control.ts'
import type { Authenticator } from '../auth/authenticate.ts'
import type { DecisionLog } from '../service/decision-log.ts'
import type { ReviewService } from '../service/reviews.ts'
import type { ReadinessService } from '../service/readiness.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { RequestMetrics } from '../telemetry/request-metrics.ts'
import type { Tracing } from '../telemetry/tracing.ts'
import type { RequestObservation } from '../telemetry/request-observation.ts'
import type { AuthzenSettings } from './authzen/settings.ts'
import type { GatewayService } from '../service/gateway/gateway.ts'
import type { Admission } from '../service/admission.ts'
import type { RateLimiter } from '../service/rate-limit.ts'

export interface AppDeps {
  models: ModelService
  /** The caches' and the tuple index's counters (/metrics). */
  evaluation: EvaluationService
  checks: CheckService
  lists: ListService
  writes: WriteService
  stores: StoreService
  assertions: AssertionService
  accessRequests: AccessRequestService
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
  /** What `GET /readyz` asks: the database, the migrations, the tuple index preload. */
  readiness: ReadinessService
  /** The Prometheus exposition `GET /metrics` answers (src/telemetry/metrics.ts). */
  metricsExposition: () => Promise<{ contentType: string; body: string }>
  /**
   * Browsers (cors.ts, host-check.ts): PEMBA_CORS_ORIGINS, PEMBA_ALLOWED_HOSTS and PEMBA_HOST
   * as configured. Absent: CORS off, cross-origin writes refused, Host checked against
   * localhost and IP literals when authentication is off.
   */
  browser?: { corsOrigins: string; allowedHosts: string; listenHost: string }
  /** The built web console served at /console (console.ts); absent: off (PEMBA_CONSOLE), /console answers 404. */
  console?: ConsoleAssets
  /** Where each request's and each query's outcome and latency are counted (src/telemetry/request-metrics.ts). */
  metrics?: RequestMetrics
  /** The access log: one line per request (observe.ts); absent when PEMBA_ACCESS_LOG=off. */
  accessLog?: Logger
  /** OpenTelemetry tracing (src/telemetry/tracing.ts); absent when off, and then free. */
  tracing?: Tracing
  /** AuthZEN: one evaluation → one decision, with reasons, obligations and ARAP hooks (src/service/authzen/decider.ts). */
  authzenDecider: AuthzenDecider
  /** ARAP: requestable denials' binding tokens, approval states, and the JWK Set that verifies both (src/service/authzen/arap-binding.ts). */
  authzenBinding: ArapBinding
  /** ARAP's Access Request Service: submissions, task status, cancel (src/service/authzen/arap-requests.ts). */
  authzenRequests: ArapRequestService
  /** AuthZEN batches: defaults, the three semantics, the item cap (src/service/authzen/evaluations.ts). */
  authzenEvaluations: AuthzenEvaluations
  /** Signs the discovery document's `signed_metadata` with the server's keys (those of `jwks_uri`). */
  authzenMetadataSigner: Pick<SigningKeys, 'sign'>
  /** AuthZEN subject, resource and action search, paged (src/service/authzen/search.ts). */
  authzenSearch: SearchService
  /** AuthZEN: PEMBA_PUBLIC_URL, PEMBA_TRUST_PROXY, PEMBA_AUTHZEN_DEFAULT_STORE and _DISCOVERY (src/api/authzen/base-url.ts). */
  authzenSettings: AuthzenSettings
  /** Admission control of the expensive routes (src/service/admission.ts); absent: none. */
  admission?: Admission
  /** The per-client rate limit (src/service/rate-limit.ts); absent: none (PEMBA_RATE_LIMIT_PER_CLIENT=0). */
  rateLimiter?: RateLimiter
  /**
   * The same limit on failed authentication, per peer address (src/api/admission.ts): present
   * with the rate limit when authentication is on.
   */
  authFailureLimiter?: RateLimiter
  /** The gateway decision for nginx and Envoy (src/service/gateway/); absent: it answers 404 `gateway_not_configured`. */
  gateway?: GatewayService
}

/**
 * Per-request values: `requestId` (also sent as X-Request-Id), `client`, the authenticated
 * API client's identity (`client:provisioner`), '' when authentication is off, and
 * `observation`, the request's timing, trace context and query facts (observe.ts), and
 * `queryDone`, set by a streamed answer's handler: settles when the query behind the stream has
 * finished its work (admission releases the query's slot then, src/api/admission.ts).
 */
export type AppEnv = {
  Variables: { requestId: string; client: string; observation: RequestObservation; queryDone?: Promise<unknown> }
}
