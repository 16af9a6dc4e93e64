/**
 * Just-in-time access requests, approved by the model itself. An identity asks for one tuple
 * for a while (`namespace:production#deployer@service_account:ci` for `PT1H`, because "hotfix
 * for INC-42"); whoever the model says may approve it does, and the tuple is written with
 * `expires_at = approval time + duration`, in the same transaction that marks the request
 * approved. Nothing outside the model decides who approves:
 *
 * - the approvers of `<type>#<relation>` are those with `<relation>_approver` on the object
 *   when the type defines it (`define deployer_approver: [user, team#member]`), otherwise those
 *   with `approver`; a relation whose type defines neither cannot be requested;
 * - nobody approves their own request: not the requested identity itself, nor an identity it
 *   acts for (`user:alice` may not approve a request of `agent:helper` when
 *   `user:alice#acts_for@agent:helper` holds);
 * - approvers are checked through the engine at HIGHER_CONSISTENCY, so a just-revoked approver
 *   cannot approve.
 *
 * A request waits for a decision for `requestTtlMs` (24 h); after that it is expired, at once
 * by time and, later, in the store when the sweeper marks it. Every state change is kept as an
 * event (who, when, why).
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { ConflictError, PembaError, validationError, type ErrorCode } from '../core/errors.ts'
import type { IdGenerator } from '../core/ids.ts'
import { parseObject, parseSubject, type Subject } from '../core/tuple.ts'
import { ACTS_FOR } from '../engine/delegation.ts'
import { invalidTupleMessage, validateTuple } from '../model/tuple-validation.ts'
import type { TypeSystem } from '../model/typesystem.ts'
import type { Page } from '../store/ports.ts'
import {
  EXPIRY_ACTOR,
  effectiveStatus,
  type AccessRequestRecord,
  type AccessRequestStatus,
  type AccessRequestStore,
  type AccessRequestSubmission,
  type SubmitOutcome,
} from './access-request-store.ts'
import type { CheckService } from './checks.ts'
import type { HeadRevisions } from './head-revisions.ts'
import { formatDuration, parseDuration } from './duration.ts'
import { refuseCredentialId } from './tuple-input.ts'
import type { ModelService } from './models.ts'

export interface AccessRequestServiceOptions {
  datastore: AccessRequestStore
  models: ModelService
  /** Asks whether the approver may approve (HIGHER_CONSISTENCY checks). */
  checks: Pick<CheckService, 'check'>
  /** Told of the revision an approval committed (read-your-writes on this replica). */
  heads: Pick<HeadRevisions, 'advance'>
  ids: IdGenerator
  clock: () => Date
  /** The longest grant a request may ask for (PEMBA_JIT_MAX_DURATION). */
  maxDurationMs: number
  /** How long a request waits for a decision (PEMBA_JIT_REQUEST_TTL). */
  requestTtlMs: number
  /**
   * What a credential-shaped identifier is (core/credentials.ts): a request's user, object,
   * requester or approver of that shape is refused. Default: JWT and Authorization shapes.
   */
  credentials?: CredentialRule
}

export interface CreateAccessRequestInput {
  tupleKey: { user: string; relation: string; object: string }
  /** ISO 8601, e.g. `PT1H`. */
  duration: string
  reason: string
  /** Who asks, for the record; the requested user when unset. */
  requestedBy?: string
}

export interface DecisionInput {
  /** The deciding identity, e.g. `user:bob`. */
  approver: string
  reason?: string
}

/**
 * AccessRequestError is an access-request failure with its own code, so clients can tell
 * "already approved" from "not an approver" without parsing messages.
 */
export class AccessRequestError extends PembaError {
  constructor(code: string, message: string, status: number) {
    // The base code only picks a status; the real code replaces it.
    super('validation_error' as ErrorCode, message, status)
    ;(this as { code: string }).code = code
  }
}

/** The 409 for deciding a request that is no longer pending. */
function notPending(
  id: string,
  status: Exclude<AccessRequestStatus, 'pending'>,
): AccessRequestError {
  const code = {
    approved: 'access_request_already_approved',
    denied: 'access_request_already_denied',
    expired: 'access_request_expired',
    cancelled: 'access_request_cancelled',
  }[status]
  return new AccessRequestError(code, `access request ${id} is ${status}, not pending`, 409)
}

function notFound(id: string): AccessRequestError {
  return new AccessRequestError('access_request_not_found', `access request ${id} not found`, 404)
}

export class AccessRequestService {
  readonly #o: AccessRequestServiceOptions

  constructor(options: AccessRequestServiceOptions) {
    this.#o = options
  }

  /** create validates the request against the store's latest model and stores it, pending. */
  async create(storeId: string, input: CreateAccessRequestInput): Promise<AccessRequestRecord> {
    const record = await this.#prepare(storeId, input)
    await this.#o.datastore.createAccessRequest(record)
    return record
  }

  /**
   * prepareSubmission validates a request submitted through AuthZEN's access-request profile
   * (service/authzen/arap-requests.ts) as create does, and returns it with its `submission`,
   * unstored: submitSubmissions stores it (with the other items of a bulk submission).
   */
  async prepareSubmission(
    storeId: string,
    input: CreateAccessRequestInput,
    submission: AccessRequestSubmission,
  ): Promise<AccessRequestRecord & { submission: AccessRequestSubmission }> {
    return { ...(await this.#prepare(storeId, input)), submission }
  }

  /**
   * submitSubmissions stores prepared submissions together, unless a request with the first's
   * idempotency key or any one's binding `jti` exists: then that one is returned, as of now.
   */
  async submitSubmissions(records: (AccessRequestRecord & { submission: AccessRequestSubmission })[]): Promise<SubmitOutcome> {
    const outcome = await this.#o.datastore.submitAccessRequests(records)
    if (outcome.created) return outcome
    return { ...outcome, existing: present(outcome.existing, this.#o.clock().getTime()) }
  }

  /** #prepare validates a new request against the store's latest model: the record to store. */
  async #prepare(storeId: string, input: CreateAccessRequestInput): Promise<AccessRequestRecord> {
    // The latest model as of now, as for a write: not a replica's cached idea of it.
    const credentials = this.#o.credentials ?? CREDENTIAL_SHAPES
    refuseCredentialId(credentials, 'user', input.tupleKey.user)
    refuseCredentialId(credentials, 'object', input.tupleKey.object)
    if (input.requestedBy !== undefined) refuseCredentialId(credentials, 'requested_by', input.requestedBy)
    const ts = await this.#o.models.resolve(storeId, undefined, { fresh: true })
    const { object, user } = this.#validateTuple(ts, input.tupleKey)
    approverRelation(ts, object.type, input.tupleKey.relation)
    const durationMs = parseDuration(input.duration)
    if (durationMs === undefined || durationMs <= 0) {
      throw validationError(
        `invalid duration '${input.duration}': expected a positive ISO 8601 duration in weeks, days, hours, minutes or seconds, e.g. PT1H`,
      )
    }
    if (durationMs > this.#o.maxDurationMs) {
      throw validationError(
        `duration ${input.duration} exceeds the longest grant allowed, ${formatDuration(this.#o.maxDurationMs)}`,
      )
    }
    const requestedBy = input.requestedBy ?? input.tupleKey.user
    if (!parseSubject(requestedBy)) throw validationError(`invalid requested_by '${requestedBy}'`)
    const now = this.#o.clock()
    const record: AccessRequestRecord = {
      storeId,
      id: this.#o.ids(now.getTime()),
      objectType: object.type,
      objectId: object.id,
      relation: input.tupleKey.relation,
      user: formatUser(user),
      durationMs,
      reason: input.reason,
      status: 'pending',
      createdAt: now,
      pendingUntil: new Date(now.getTime() + this.#o.requestTtlMs),
      grantExpiresAt: null,
      events: [{ type: 'created', actor: requestedBy, at: now, reason: input.reason }],
    }
    return record
  }

  /** get returns a request as of now: a pending one past its deadline reads expired. */
  async get(storeId: string, id: string): Promise<AccessRequestRecord> {
    const r = await this.#o.datastore.getAccessRequest(storeId, id)
    if (!r) throw notFound(id)
    return present(r, this.#o.clock().getTime())
  }

  /** findByIdempotencyKey: the request an AuthZEN submission with this Idempotency-Key made, as of now. */
  async findByIdempotencyKey(storeId: string, key: string): Promise<AccessRequestRecord | undefined> {
    const r = await this.#o.datastore.getAccessRequestByIdempotencyKey(storeId, key)
    return r && present(r, this.#o.clock().getTime())
  }

  async list(
    storeId: string,
    q: { status?: AccessRequestStatus; pageSize: number; after?: string },
  ): Promise<Page<AccessRequestRecord>> {
    const now = this.#o.clock().getTime()
    const page = await this.#o.datastore.listAccessRequests(storeId, { ...q, now })
    return { items: page.items.map((r) => present(r, now)), next: page.next }
  }

  /**
   * approve checks the approver through the model and, if all holds, writes the tuple with
   * its expiry and marks the request approved, atomically. The grant lasts the requested
   * duration, capped by the current maximum (which may have been lowered since the request)
   * and by the absolute end an AuthZEN submission asked for (`requested_until`, kept as the
   * submission's `grant_not_after`): a request approved at or after that end is a 409.
   */
  async approve(storeId: string, id: string, input: DecisionInput): Promise<AccessRequestRecord> {
    const { record, ts, approver } = await this.#authorizeDecision(storeId, id, input)
    const key = tupleKeyOf(record)
    const v = validateTuple(ts, key)
    if (!v.ok) throw validationError(invalidTupleMessage(key, v.reason))
    const now = this.#o.clock()
    let expiresAt = now.getTime() + Math.min(record.durationMs, this.#o.maxDurationMs)
    const notAfter = grantNotAfter(record)
    if (notAfter !== undefined) {
      if (notAfter <= now.getTime()) {
        throw new AccessRequestError(
          'access_request_window_ended',
          `the access requested ended at ${new Date(notAfter).toISOString()}: there is nothing left to grant`,
          409,
        )
      }
      expiresAt = Math.min(expiresAt, notAfter)
    }
    const event = {
      type: 'approved' as const,
      actor: approver,
      at: now,
      reason: input.reason ?? '',
    }
    const tuple = { ...v.tuple, expiresAt }
    const r = await this.#o.datastore.approveAccessRequest(storeId, id, tuple, event, now)
    if (!r.ok) {
      if (r.status === 'missing') throw notFound(id)
      if (r.status === 'pending') throw new ConflictError(`cannot grant the request: ${r.conflict}`)
      throw notPending(id, r.status)
    }
    // Read-your-writes: this replica's next checks see the grant (as after a Write).
    this.#o.heads.advance(storeId, r.revision)
    return this.get(storeId, id)
  }

  /** deny marks a pending request denied; the denier must be an approver too. */
  async deny(storeId: string, id: string, input: DecisionInput): Promise<AccessRequestRecord> {
    const { approver } = await this.#authorizeDecision(storeId, id, input, false)
    const now = this.#o.clock()
    const event = { type: 'denied' as const, actor: approver, at: now, reason: input.reason ?? '' }
    const r = await this.#o.datastore.denyAccessRequest(storeId, id, event, now)
    if (!r.ok) {
      if (r.status === 'missing') throw notFound(id)
      if (r.status !== 'pending') throw notPending(id, r.status)
    }
    return this.get(storeId, id)
  }

  /**
   * cancel withdraws a pending request (AuthZEN's cancel of a task). Whoever may cancel is the
   * caller's decision (the submitter of the task); here only the state: 404, 409 when no longer
   * pending.
   */
  async cancel(storeId: string, id: string, input: { actor: string; reason?: string }): Promise<AccessRequestRecord> {
    const now = this.#o.clock()
    const event = { type: 'cancelled' as const, actor: input.actor, at: now, reason: input.reason ?? '' }
    const r = await this.#o.datastore.cancelAccessRequest(storeId, id, event, now)
    if (!r.ok) {
      if (r.status === 'missing') throw notFound(id)
      if (r.status !== 'pending') throw notPending(id, r.status)
    }
    return this.get(storeId, id)
  }

  /**
   * #authorizeDecision finds the request (404), requires it pending (409), and requires the
   * approver to hold the approver relation (403); for an approval, also that it is not the
   * requester's own (403). Nothing is written here; the datastore re-checks the state
   * atomically, so of two racing approvals one wins and the other gets the 409.
   */
  async #authorizeDecision(storeId: string, id: string, input: DecisionInput, approving = true) {
    const now = this.#o.clock().getTime()
    const stored = await this.#o.datastore.getAccessRequest(storeId, id)
    if (!stored) throw notFound(id)
    const record = present(stored, now)
    if (record.status !== 'pending') throw notPending(id, record.status)
    refuseCredentialId(this.#o.credentials ?? CREDENTIAL_SHAPES, 'approver', input.approver)
    const subject = parseSubject(input.approver)
    if (!subject || subject.relation || subject.id === '*') {
      throw validationError(
        `invalid approver '${input.approver}': expected a single identity such as user:bob`,
      )
    }
    const ts = await this.#o.models.resolve(storeId, undefined, { fresh: true })
    const relation = approverRelation(ts, record.objectType, record.relation)
    const approver = formatUser(subject)
    const object = `${record.objectType}:${record.objectId}`
    const check = (user: string, rel: string, obj: string) =>
      this.#o.checks.check(storeId, {
        modelId: ts.id,
        tupleKey: { user, relation: rel, object: obj },
        consistency: 'HIGHER_CONSISTENCY',
      })
    if (approving) {
      if (approver === record.user) {
        throw new AccessRequestError(
          'self_approval_forbidden',
          `${approver} cannot approve its own access request`,
          403,
        )
      }
      if (ts.hasType(subject.type) && ts.relation(subject.type, ACTS_FOR)) {
        if ((await check(record.user, ACTS_FOR, approver)).allowed) {
          throw new AccessRequestError(
            'self_approval_forbidden',
            `${approver} cannot approve an access request of ${record.user}, which acts for it`,
            403,
          )
        }
      }
    }
    if (!(await check(approver, relation, object)).allowed) {
      throw new AccessRequestError(
        'approver_not_authorized',
        `${approver} does not have '${relation}' on ${object}, so it cannot ${approving ? 'approve' : 'deny'} this request`,
        403,
      )
    }
    return { record, ts, approver }
  }

  /** #validateTuple: the requested tuple must be writable as it stands, for one identity. */
  #validateTuple(ts: TypeSystem, key: { user: string; relation: string; object: string }) {
    const v = validateTuple(ts, key)
    if (!v.ok) throw validationError(invalidTupleMessage(key, v.reason))
    const object = parseObject(key.object)!
    const user = parseSubject(key.user)!
    if (user.relation || user.id === '*') {
      throw validationError(
        `invalid user '${key.user}': an access request is for a single identity, not a userset or wildcard`,
      )
    }
    return { object, user }
  }
}

/**
 * approverRelationOf: the approver relation of `type#relation` (see approverRelation), or
 * undefined when the relation cannot be requested. A model look-up, no I/O: AuthZEN asks it of
 * every denial (is it a requestable one?).
 */
export function approverRelationOf(ts: TypeSystem, type: string, relation: string): string | undefined {
  const specific = `${relation}_approver`
  if (ts.relation(type, specific)) return specific
  if (ts.relation(type, 'approver')) return 'approver'
  return undefined
}

/**
 * approverRelation is the relation whose holders may approve requests for `type#relation`:
 * `<relation>_approver` when the type defines it, else `approver`; otherwise the relation is not
 * requestable (400).
 */
export function approverRelation(ts: TypeSystem, type: string, relation: string): string {
  const found = approverRelationOf(ts, type, relation)
  if (found) return found
  const specific = `${relation}_approver`
  throw new AccessRequestError(
    'relation_not_requestable',
    `relation '${type}#${relation}' cannot be requested: type '${type}' defines neither '${specific}' nor 'approver'`,
    400,
  )
}

/**
 * present is a stored request as seen at `now`: a pending request past its deadline reads
 * expired, with the `expired` event the sweeper will store (by `pemba`, at the deadline), so
 * the answer is the same before and after the sweep.
 */
function present(r: AccessRequestRecord, now: number): AccessRequestRecord {
  const status = effectiveStatus(r.status, r.pendingUntil.getTime(), now)
  if (status === r.status) return r
  return {
    ...r,
    status,
    events: [...r.events, { type: 'expired', actor: EXPIRY_ACTOR, at: r.pendingUntil, reason: '' }],
  }
}

/** grantNotAfter: the absolute end a submission asked for (`details.grant_not_after`, ms), if any. */
function grantNotAfter(r: AccessRequestRecord): number | undefined {
  const v = r.submission?.details.grant_not_after
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  return Number.isNaN(t) ? undefined : t
}

function tupleKeyOf(r: AccessRequestRecord): { user: string; relation: string; object: string } {
  return { user: r.user, relation: r.relation, object: `${r.objectType}:${r.objectId}` }
}

function formatUser(s: Subject): string {
  return s.relation ? `${s.type}:${s.id}#${s.relation}` : `${s.type}:${s.id}`
}
