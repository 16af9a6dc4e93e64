/**
 * The HTTP layer's dependencies (`AppDeps`) and per-request variables (`AppEnv`), apart from
 * app.ts so the routes and middleware can name them without importing the app that registers them.
 *
 * @module
 */
import type { AccessRequestService } from '../service/access-requests.ts'
import type { AssertionService } from '../service/assertions.ts'
import type { CheckService } from '../service/checks.ts'
import type { EvaluationService } from '../service/evaluation.ts'
import type { ListService } from '../service/lists.ts'
import type { StoreService } from '../service/stores.ts'
import type { WriteService } from '../service/writes.ts'
import type { ModelService } from '../service/models.ts'
import type { TokenCheckService } from '../service/token-checks.ts'
import type { TokenIssuerService } from '../service/token-issuers.ts'
import type { AccessControl } from '../auth/access-control.ts'
import type { Authenticator } from '../auth/authenticate.ts'
import type { DecisionLog } from '../service/decision-log.ts'
import type { ReviewService } from '../service/reviews.ts'

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
}

/**
 * Per-request values: `requestId` (also sent as X-Request-Id) and `client`, the authenticated
 * API client's identity (`client:provisioner`), '' when authentication is off.
 */
export type AppEnv = { Variables: { requestId: string; client: string } }
