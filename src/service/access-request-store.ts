/**
 * The port the access-request service (access-requests.ts) owns: how just-in-time access
 * requests are kept. The datastores implement it (store/sql/access-requests.ts); this file
 * imports only from core, so the store depends on the service's port and never the reverse.
 *
 * @module
 */
import type { Tuple } from '../core/tuple.ts'

/**
 * The states of a just-in-time access request. `cancelled`: withdrawn by whoever submitted it
 * through AuthZEN's access-request profile before anyone decided.
 */
export type AccessRequestStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled'

/** AccessRequestEvent is one state change of an access request: what, who, when, why. */
export interface AccessRequestEvent {
  type: 'created' | 'approved' | 'denied' | 'expired' | 'cancelled'
  /** Who: the requester, the approver, the canceller, or `pemba` for expiry. */
  actor: string
  at: Date
  reason: string
}

/**
 * AccessRequestRecord is a just-in-time access request as stored: the tuple it asks for
 * (`namespace:production#deployer@service_account:ci`), for how long, and its history. `status`
 * is as stored: a `pending` request whose `pendingUntil` has passed is expired even before the
 * sweeper marks it so (the service presents it that way).
 */
export interface AccessRequestRecord {
  storeId: string
  id: string
  objectType: string
  objectId: string
  relation: string
  /** The requested user, a single identity (`service_account:ci`). */
  user: string
  durationMs: number
  reason: string
  status: AccessRequestStatus
  createdAt: Date
  /** When a request still pending expires. */
  pendingUntil: Date
  /** Once approved: when the granted tuple expires. */
  grantExpiresAt: Date | null
  /** Oldest first; the first is always `created`. */
  events: AccessRequestEvent[]
  /** Set when the request was submitted through AuthZEN's access-request profile (ARAP). */
  submission?: AccessRequestSubmission
}

/**
 * AccessRequestSubmission is what an AuthZEN access-request submission adds to a request: the
 * `Idempotency-Key` it came with and the hash of what was submitted (the same key with another
 * body is refused), the `jti` of the denial's binding token (one denial, one request: unique per
 * store), and the submission's details as JSON (the submitting API client, the AuthZEN `client`,
 * the bound evaluation, `requested_until`).
 */
export interface AccessRequestSubmission {
  idempotencyKey: string | null
  requestHash: string
  bindingJti: string
  details: Record<string, unknown>
}

/**
 * What submitting found: stored, or an earlier request with the same idempotency key or the
 * same binding `jti` (nothing stored).
 */
export type SubmitOutcome =
  | { created: true }
  | { created: false; clash: 'idempotency_key' | 'binding_jti'; existing: AccessRequestRecord }

/**
 * What approving or denying found: done (at `revision`, the store's revision after the grant),
 * or the request was not pending at `now` (its effective status says why, `missing` when there
 * is no such request), or (approve only) the tuple already exists with a condition, which a
 * grant must not silently replace.
 */
export type AccessRequestDecision =
  | { ok: true; revision: number }
  | { ok: false; status: Exclude<AccessRequestStatus, 'pending'> | 'missing' }
  | { ok: false; status: 'pending'; conflict: string }

/** Who expires a request nobody decided on in time (the actor of its `expired` event). */
export const EXPIRY_ACTOR = 'pemba'

/**
 * effectiveStatus is a stored status as of `now` (ms): a pending request past its
 * `pendingUntil` is expired, whether or not the sweeper has marked it so yet.
 */
export function effectiveStatus(
  status: AccessRequestStatus,
  pendingUntil: number,
  now: number,
): AccessRequestStatus {
  return status === 'pending' && pendingUntil <= now ? 'expired' : status
}

export interface AccessRequestQuery {
  /**
   * Effective status at `now`: `pending` excludes requests past their `pendingUntil`, and
   * `expired` includes them.
   */
  status?: AccessRequestStatus
  now: number
  pageSize: number
  after?: string
}

/** A page of access requests; `next` is an opaque cursor, or '' when there is nothing more. */
export interface AccessRequestPage {
  items: AccessRequestRecord[]
  next: string
}

export interface AccessRequestStore {
  createAccessRequest(r: AccessRequestRecord): Promise<void>
  /** getAccessRequest returns the stored request with its events, or undefined. */
  getAccessRequest(storeId: string, id: string): Promise<AccessRequestRecord | undefined>
  /** getAccessRequestByIdempotencyKey: the request submitted with this Idempotency-Key, or undefined. */
  getAccessRequestByIdempotencyKey(storeId: string, key: string): Promise<AccessRequestRecord | undefined>
  /** listAccessRequests pages a store's requests, oldest first, by effective status. */
  listAccessRequests(storeId: string, q: AccessRequestQuery): Promise<AccessRequestPage>
  /**
   * approveAccessRequest, in one transaction: if the request is pending at `now`, grants
   * `tuple` (which carries its `expiresAt`) under a new revision recorded in the changelog, marks
   * the request approved with `grantExpiresAt = tuple.expiresAt` and appends `event`; otherwise
   * changes nothing. Granting a tuple that already exists without a condition keeps the later
   * expiry (an unexpiring tuple stays as it is); an expired one not yet swept is replaced.
   */
  approveAccessRequest(
    storeId: string,
    id: string,
    tuple: Tuple,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision>
  /**
   * submitAccessRequests stores the requests of one submission (one, or the items of a bulk
   * one), each carrying its `submission`, all in one transaction, unless the store already holds
   * one with the first's idempotency key (checked first) or with any one's binding `jti`: then
   * it stores nothing and returns that one.
   */
  submitAccessRequests(rs: (AccessRequestRecord & { submission: AccessRequestSubmission })[]): Promise<SubmitOutcome>
  /** denyAccessRequest marks a request pending at `now` denied and appends `event`. */
  denyAccessRequest(
    storeId: string,
    id: string,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision>
  /** cancelAccessRequest marks a request pending at `now` cancelled and appends `event`. */
  cancelAccessRequest(
    storeId: string,
    id: string,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision>
  /**
   * expireAccessRequests marks up to `limit` requests still pending at `now` past their
   * `pendingUntil` as expired, each with an `expired` event by `pemba` at its `pendingUntil`.
   * Returns how many it marked.
   */
  expireAccessRequests(now: Date, limit: number): Promise<number>
}
