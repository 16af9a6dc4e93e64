/**
 * ARAP's binding between a denial, the access request it allows, and the approval that
 * follows (AuthZEN Access Request and Approval profile, docs/authzen.md):
 *
 * - **Requestable denial.** A denial of `doc:plan-7#editor@user:maria` is requestable when
 *   Pemba's just-in-time access could grant that tuple: the type defines `editor_approver` or
 *   `approver` (access-requests.ts) and `user:maria` may be written as an `editor` of a `doc`.
 *   Its decision context then says so: `evaluation_id` (a ULID), `evaluated_at`, `reason`, and
 *   `access_request: {expires_at, endpoint, binding_token}`. The binding token is a compact JWS
 *   (ES256, `typ: authzen-binding+jwt`) by this server's keys (signing-keys.ts) whose claims are
 *   `iss` = the PDP, `aud` = its access-request endpoint, `iat`, `exp` = `denial_expires_at` =
 *   `expires_at` (PEMBA_AUTHZEN_DENIAL_TTL after the evaluation), `jti`, `evaluation_id`,
 *   `pemba_store`, `pemba_client` (the API client that evaluated, `''` with authentication off:
 *   only it may submit the denial), and the evaluation inline: `subject`, `action`, `resource`, and `context`,
 *   its authorization-relevant members, named in `binding_context_members`. Those are the
 *   request's `context` without Pemba's and the profiles' own members (`pemba`,
 *   `subject_token`, `approval`, `supported_obligations`, and the denial's `access_request`,
 *   `evaluation_id`, `evaluated_at`, `reason`): the caller's token is a credential, not
 *   something to request, and the rest describe the exchange, not the access. Every other member
 *   is bound, so a submission must echo it unchanged. Nothing is stored: the token is the record.
 * - **verifyBindingToken** (the Access Request Service, arap-requests.ts): key by `kid`,
 *   signature, `typ`, `iss`, `aud`, store; a late token is `expired_denial` (410), anything else
 *   `invalid_denial_binding` (400). Matching it against the submission is bindingMismatch
 *   (arap-structural.ts).
 * - **approvalState**: the `approval.state` of an approved request, a JWS (`typ:
 *   authzen-approval+jwt`) with `iss` = `aud` = the PDP, `sub` = `approval_id` = the request id,
 *   the `subject`, `action` and `resource` it covers, `approved_at`, `approved_until` and `exp`.
 * - **checkApproval**: a re-evaluation's `context.approval`, judged (see ApprovalVerdict).
 *   An applying approval changes nothing in the check: the approval wrote the grant tuple, so
 *   the model decides as always (mandatory conditions still win); the verdict only explains a
 *   denial despite an approval (`reason`, `next_action`). The scope is an exact structural
 *   match (§5.6) with what the request bound: for a request submitted through ARAP, the bound
 *   subject, action, resource (with their properties, `subject.properties.act` aside) and the
 *   bound context as recorded with the submission; for one made through Pemba's own
 *   access-request API (no context bound), the tuple it granted. As the grant is a plain tuple,
 *   an approval for `{region: "eu"}` is `out_of_scope` on a re-evaluation in `{region: "us"}`,
 *   yet the tuple itself is not bound to a context: where a context must restrict the grant, the
 *   relation's condition (evaluated on every check) is what restricts it.
 *
 * @module
 */
import { errors as joseErrors, type JWTPayload } from 'jose'
import type { IdGenerator } from '../../core/ids.ts'
import { validateTuple } from '../../model/tuple-validation.ts'
import type { TypeSystem } from '../../model/typesystem.ts'
import type { TupleStore } from '../../store/ports.ts'
import type { AccessRequestRecord } from '../access-request-store.ts'
import { AccessRequestError, approverRelationOf, type AccessRequestService } from '../access-requests.ts'
import { UnknownSigningKeyError, type PublicJwk, type SigningKeys } from '../signing-keys.ts'
import { ArapError } from './arap-error.ts'
import { structurallyEqual, withoutActor, type BoundRequest } from './arap-structural.ts'
import { RESERVED_CONTEXT_KEYS } from './mapping.ts'
import type { AuthzenAction, AuthzenEntity, AuthzenEvaluation } from './types.ts'

/** The JWS `typ` of a binding token. */
export const BINDING_TYP = 'authzen-binding+jwt'
/** The JWS `typ` of an approval state. */
export const APPROVAL_TYP = 'authzen-approval+jwt'
/** The `retry_after` (seconds) of a re-evaluation whose request still waits for a decision. */
export const GRANT_PENDING_RETRY_SECONDS = 10

/** Context members that are never bound (besides RESERVED_CONTEXT_KEYS): the denial's own. */
const DENIAL_MEMBERS: ReadonlySet<string> = new Set(['access_request', 'evaluation_id', 'evaluated_at', 'reason'])

/** The access-request endpoint of a PDP: the binding token's audience. */
export function requestsEndpoint(pdp: string): string {
  return `${pdp}/access/v1/requests`
}

/**
 * What a re-evaluation's `context.approval` comes to. `applies`: the approval is this PDP's,
 * for exactly this subject, action, resource and bound context, unexpired and its grant still
 * the one it wrote; the check decides (a denial despite it is `policy_denied`, next action
 * `none`). Otherwise why not, with the profile's default next action:
 * - approved requests: `approval_unverifiable` (a forged, foreign or mismatched `state`, or an
 *   id alone without `state`: none); `out_of_scope` (another subject, action, resource or bound
 *   context: request); `approval_expired` (past `approved_until`, or the grant tuple deleted or
 *   replaced by another, i.e. revoked: request);
 * - requests never approved, judged by id (there is no state) and only for exactly the tuple
 *   they ask: `grant_pending` (awaiting a decision: retry after `retryAfter` seconds);
 *   `approval_expired` (expired undecided, or cancelled: request again); `policy_denied` (an
 *   approver denied it: none). For any other tuple, and for an unknown id,
 *   `approval_unverifiable` (none): nothing shows such an id is the caller's.
 */
export type ApprovalVerdict =
  | { applies: true; id: string; approvedUntil: string }
  | {
      applies: false
      reason: 'approval_expired' | 'out_of_scope' | 'grant_pending' | 'policy_denied' | 'approval_unverifiable'
      nextAction: 'request' | 'retry' | 'none'
      retryAfter?: number
    }

/** What the decider asks (decider.ts). */
export interface DenialAdvisor {
  /**
   * requestableDenial: for a denied evaluation, the decision-context members that make it a
   * requestable denial (`evaluation_id`, `evaluated_at`, `reason`, `access_request`), or
   * undefined when the denied relation cannot be requested. `reason` is the denial's code
   * (`no_path` unless given). No I/O unless requestable (then only signing), and no promise
   * either: undefined at once. A signing failure (the key store down) is a plain deny.
   * `client` is the API client that evaluated (`''` with authentication off): the binding token
   * names it (`pemba_client`), and only that client may submit the denial.
   */
  requestableDenial(
    storeId: string,
    e: AuthzenEvaluation,
    ts: TypeSystem,
    pdp: string,
    reason?: string,
    client?: string,
  ): Promise<Record<string, unknown> | undefined> | undefined
  /**
   * isRequestable: would requestableDenial add anything (synchronous, no I/O)? A caller that
   * would throw the answer away (a batch item past its stopper) asks this, or nothing.
   */
  isRequestable(ts: TypeSystem, e: AuthzenEvaluation): boolean
  /** checkApproval judges a re-evaluation's `context.approval` (see ApprovalVerdict); it never throws for a bad approval. */
  checkApproval(storeId: string, e: AuthzenEvaluation, approval: unknown, pdp: string): Promise<ApprovalVerdict>
}

/** A verified binding token's claims (see the module comment). */
export interface BindingClaims {
  jti: string
  evaluation_id: string
  /** RFC 3339; equal to the denial's `access_request.expires_at`. */
  denial_expires_at: string
  subject: AuthzenEntity
  action: AuthzenAction
  resource: AuthzenEntity
  context: Record<string, unknown>
  /** `pemba_client`: the API client whose evaluation was denied (`''` with authentication off). */
  client: string
}

export interface ArapBindingOptions {
  keys: Pick<SigningKeys, 'sign' | 'verify' | 'jwks'>
  accessRequests: Pick<AccessRequestService, 'get'>
  /** Reads the grant tuple of an approval (revoked when gone). */
  tuples: Pick<TupleStore, 'read'>
  ids: IdGenerator
  clock: () => Date
  /** How long a requestable denial may be submitted (PEMBA_AUTHZEN_DENIAL_TTL), ms. */
  denialTtlMs: number
  /** Told when a requestable denial could not be signed (it is then a plain deny). */
  onSigningError?: (err: unknown) => void
}

export class ArapBinding implements DenialAdvisor {
  readonly #o: ArapBindingOptions

  constructor(options: ArapBindingOptions) {
    this.#o = options
  }

  /** jwks: the JWK Set that verifies binding tokens and approval states (`GET …/access/v1/jwks`). */
  jwks(): Promise<{ keys: PublicJwk[] }> {
    return this.#o.keys.jwks()
  }

  isRequestable(ts: TypeSystem, e: AuthzenEvaluation): boolean {
    return requestable(ts, e)
  }

  requestableDenial(
    storeId: string,
    e: AuthzenEvaluation,
    ts: TypeSystem,
    pdp: string,
    reason = 'no_path',
    client = '',
  ): Promise<Record<string, unknown> | undefined> | undefined {
    return requestable(ts, e) ? this.#requestableDenial(storeId, e, pdp, reason, client) : undefined
  }

  async #requestableDenial(
    storeId: string,
    e: AuthzenEvaluation,
    pdp: string,
    reason: string,
    client: string,
  ): Promise<Record<string, unknown> | undefined> {
    const now = this.#o.clock().getTime()
    // Whole seconds, so that `exp` is exactly `denial_expires_at`.
    const expiresAt = Math.floor((now + this.#o.denialTtlMs) / 1000) * 1000
    const evaluationId = this.#o.ids(now)
    const context = boundContext(e.context)
    const claims: JWTPayload = {
      iss: pdp,
      aud: requestsEndpoint(pdp),
      iat: Math.floor(now / 1000),
      exp: expiresAt / 1000,
      jti: this.#o.ids(now),
      evaluation_id: evaluationId,
      denial_expires_at: rfc3339(expiresAt),
      binding_context_members: Object.keys(context),
      pemba_store: storeId,
      pemba_client: client,
      subject: e.subject,
      action: e.action,
      resource: e.resource,
      context,
    }
    let bindingToken: string
    try {
      bindingToken = await this.#o.keys.sign(claims, BINDING_TYP)
    } catch (err) {
      // Still a deny, only not requestable: an outage of the key store never fails a decision.
      this.#o.onSigningError?.(err)
      return undefined
    }
    return {
      evaluation_id: evaluationId,
      evaluated_at: rfc3339(now),
      reason,
      access_request: { expires_at: rfc3339(expiresAt), endpoint: requestsEndpoint(pdp), binding_token: bindingToken },
    }
  }

  /**
   * verifyBindingToken checks a submitted binding token: one of this server's keys (by `kid`)
   * signed it for this PDP's access-request endpoint and this store, and neither its `exp` nor
   * its `denial_expires_at` has passed. Throws ArapError `expired_denial` or
   * `invalid_denial_binding`.
   */
  async verifyBindingToken(storeId: string, token: string, pdp: string): Promise<BindingClaims> {
    let payload: JWTPayload
    try {
      ;({ payload } = await this.#o.keys.verify(token, { typ: BINDING_TYP, issuer: pdp, audience: requestsEndpoint(pdp) }))
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new ArapError('expired_denial', 'the denial has expired: it can no longer be requested')
      if (isTokenError(err)) throw new ArapError('invalid_denial_binding', `the binding token does not verify: ${why(err)}`)
      // The key store failing is an outage (500), not the caller's mistake.
      throw err
    }
    const claims = bindingClaims(payload)
    if (!claims || payload.pemba_store !== storeId) {
      throw new ArapError('invalid_denial_binding', 'the binding token is not a denial of this store')
    }
    if (Date.parse(claims.denial_expires_at) <= this.#o.clock().getTime()) {
      throw new ArapError('expired_denial', `the denial expired at ${claims.denial_expires_at}: it can no longer be requested`)
    }
    return claims
  }

  /** approvalState: the signed `approval.state` of an approved request (see the module comment). */
  async approvalState(storeId: string, record: AccessRequestRecord, pdp: string): Promise<string> {
    const until = record.grantExpiresAt
    if (record.status !== 'approved' || !until) throw new Error(`access request ${record.id} is ${record.status}, not approved`)
    const approvedAt = record.events.find((ev) => ev.type === 'approved')?.at ?? record.createdAt
    const claims: JWTPayload = {
      iss: pdp,
      aud: pdp,
      sub: record.id,
      approval_id: record.id,
      iat: Math.floor(this.#o.clock().getTime() / 1000),
      exp: Math.ceil(until.getTime() / 1000),
      approved_at: rfc3339(approvedAt.getTime()),
      approved_until: rfc3339(until.getTime()),
      pemba_store: storeId,
      ...covered(record),
    }
    return this.#o.keys.sign(claims, APPROVAL_TYP)
  }

  async checkApproval(storeId: string, e: AuthzenEvaluation, approval: unknown, pdp: string): Promise<ApprovalVerdict> {
    const a = isObject(approval) ? approval : {}
    const id = a.id
    if (typeof id !== 'string' || id === '') return UNVERIFIABLE
    const record = await this.#request(storeId, id)
    if (!record) return UNVERIFIABLE
    const sameTuple = structurallyCovers(record, e)
    if (record.status !== 'approved') {
      // Never approved, so there is no state: the id alone says nothing about any other tuple.
      if (!sameTuple) return UNVERIFIABLE
      if (record.status === 'pending') return PENDING
      return record.status === 'denied' ? POLICY_DENIED : EXPIRED
    }
    // A known id alone never authorises: the state must be this PDP's, for this very approval.
    const state = await this.#verifiedState(a.state, id, storeId, pdp)
    if (state === 'unverifiable' || !record.grantExpiresAt) return UNVERIFIABLE
    if (!sameTuple || !boundMatches(record, e)) return OUT_OF_SCOPE
    const until = record.grantExpiresAt.getTime()
    const now = this.#o.clock().getTime()
    if (state === 'expired' || until <= now) return EXPIRED
    // Revoked: the grant tuple is gone, or is another grant now (rewritten with another expiry).
    const grant = await this.#o.tuples.read(
      storeId,
      { objectType: record.objectType, objectId: record.objectId, relation: record.relation, ...userFilter(record.user) },
      { pageSize: 1 },
      now,
    )
    if (grant.items[0]?.expiresAt !== until) return EXPIRED
    return { applies: true, id, approvedUntil: rfc3339(until) }
  }

  /** #request: the access request `id` of the store, undefined when there is none (a store failure throws). */
  async #request(storeId: string, id: string): Promise<AccessRequestRecord | undefined> {
    try {
      return await this.#o.accessRequests.get(storeId, id)
    } catch (err) {
      if (err instanceof AccessRequestError && err.code === 'access_request_not_found') return undefined
      throw err
    }
  }

  /** #verifiedState: 'ok' for a state this PDP signed for approval `id` of this store, 'expired' once its `exp` passed. */
  async #verifiedState(state: unknown, id: string, storeId: string, pdp: string): Promise<'ok' | 'expired' | 'unverifiable'> {
    if (typeof state !== 'string' || state === '') return 'unverifiable'
    let payload: JWTPayload
    let outcome: 'ok' | 'expired' = 'ok'
    try {
      ;({ payload } = await this.#o.keys.verify(state, { typ: APPROVAL_TYP, issuer: pdp, audience: pdp }))
    } catch (err) {
      // jose checks `exp` last: an expired state has a good signature, `typ`, `iss` and `aud`.
      if (!(err instanceof joseErrors.JWTExpired)) {
        if (isTokenError(err)) return 'unverifiable'
        throw err
      }
      payload = err.payload
      outcome = 'expired'
    }
    return payload.approval_id === id && payload.sub === id && payload.pemba_store === storeId ? outcome : 'unverifiable'
  }
}

const UNVERIFIABLE: ApprovalVerdict = Object.freeze({ applies: false, reason: 'approval_unverifiable', nextAction: 'none' })
const OUT_OF_SCOPE: ApprovalVerdict = Object.freeze({ applies: false, reason: 'out_of_scope', nextAction: 'request' })
const EXPIRED: ApprovalVerdict = Object.freeze({ applies: false, reason: 'approval_expired', nextAction: 'request' })
const POLICY_DENIED: ApprovalVerdict = Object.freeze({ applies: false, reason: 'policy_denied', nextAction: 'none' })
const PENDING: ApprovalVerdict = Object.freeze({
  applies: false,
  reason: 'grant_pending',
  nextAction: 'retry',
  retryAfter: GRANT_PENDING_RETRY_SECONDS,
})

/**
 * requestable: could Pemba's JIT access grant what `e` was denied? The relation has approvers
 * (`<relation>_approver` or `approver`), and the tuple `resource#action@subject` may be written
 * as it stands for a single identity (not a wildcard), as an access request requires.
 */
function requestable(ts: TypeSystem, e: AuthzenEvaluation): boolean {
  if (e.subject.id === '*' || !approverRelationOf(ts, e.resource.type, e.action.name)) return false
  const key = { user: `${e.subject.type}:${e.subject.id}`, relation: e.action.name, object: `${e.resource.type}:${e.resource.id}` }
  return validateTuple(ts, key).ok
}

/** boundContext: the authorization-relevant members of an evaluation's context (see the module comment). */
export function boundContext(context: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (!context) return out
  for (const k of Object.keys(context)) {
    if (!RESERVED_CONTEXT_KEYS.has(k) && !DENIAL_MEMBERS.has(k) && context[k] !== undefined) out[k] = context[k]
  }
  return out
}

/** covered: the subject, action and resource an approved request grants, as AuthZEN entities. */
function covered(r: AccessRequestRecord): { subject: AuthzenEntity; action: AuthzenAction; resource: AuthzenEntity } {
  const { userType, userId } = userFilter(r.user)
  return {
    subject: { type: userType, id: userId },
    action: { name: r.relation },
    resource: { type: r.objectType, id: r.objectId },
  }
}

/**
 * boundMatches: for a request submitted through ARAP, is `e` exactly what its denial bound
 * (subject without `properties.act`, action, resource, and the bound context: no member more,
 * none less, none changed)? A request made through Pemba's own API bound nothing more than its
 * tuple, which structurallyCovers compares.
 */
function boundMatches(r: AccessRequestRecord, e: AuthzenEvaluation): boolean {
  const bound = r.submission?.details.binding as BoundRequest | undefined
  if (!isObject(bound)) return true
  return (
    structurallyEqual(withoutActor(bound.subject), withoutActor(e.subject)) &&
    structurallyEqual(bound.action, e.action) &&
    structurallyEqual(bound.resource, e.resource) &&
    structurallyEqual(bound.context ?? {}, boundContext(e.context))
  )
}

/** structurallyCovers: is `e` for exactly the subject, action and resource the request was granted? */
function structurallyCovers(r: AccessRequestRecord, e: AuthzenEvaluation): boolean {
  return (
    r.user === `${e.subject.type}:${e.subject.id}` &&
    r.relation === e.action.name &&
    r.objectType === e.resource.type &&
    r.objectId === e.resource.id
  )
}

/** userFilter: a request's user (`user:maria`, a single identity) as a read filter. */
function userFilter(user: string): { userType: string; userId: string; userRelation: '' } {
  const colon = user.indexOf(':')
  return { userType: user.slice(0, colon), userId: user.slice(colon + 1), userRelation: '' }
}

/** bindingClaims: the payload as BindingClaims, or undefined when a member is missing or of the wrong type. */
function bindingClaims(p: JWTPayload): BindingClaims | undefined {
  const entity = (v: unknown): v is AuthzenEntity => isObject(v) && typeof v.type === 'string' && typeof v.id === 'string'
  if (
    typeof p.jti !== 'string' ||
    typeof p.evaluation_id !== 'string' ||
    typeof p.denial_expires_at !== 'string' ||
    Number.isNaN(Date.parse(p.denial_expires_at)) ||
    !entity(p.subject) ||
    !entity(p.resource) ||
    !isObject(p.action) ||
    typeof p.action.name !== 'string' ||
    !isObject(p.context)
  ) {
    return undefined
  }
  return {
    jti: p.jti,
    evaluation_id: p.evaluation_id,
    denial_expires_at: p.denial_expires_at,
    subject: p.subject,
    action: p.action as unknown as AuthzenAction,
    resource: p.resource,
    context: p.context,
    // Absent only from a token of an older server (minutes old at most): then no client.
    client: typeof p.pemba_client === 'string' ? p.pemba_client : '',
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** rfc3339: an instant as RFC 3339 in UTC, without fractional seconds when there are none. */
export function rfc3339(ms: number): string {
  const s = new Date(ms).toISOString()
  return s.endsWith('.000Z') ? `${s.slice(0, -5)}Z` : s
}

/** isTokenError: the token's fault (malformed, bad signature or claims, unknown key), not an outage. */
function isTokenError(err: unknown): boolean {
  return err instanceof joseErrors.JOSEError || err instanceof UnknownSigningKeyError
}

function why(err: unknown): string {
  if (err instanceof joseErrors.JOSEError) return err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' ? err.message : err.code
  return err instanceof Error ? err.message : String(err)
}
