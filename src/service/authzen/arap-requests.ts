/**
 * The Access Request Service of AuthZEN's Access Request and Approval profile (ARAP §5.4–5.5):
 * submission, task status and cancellation, mapped onto Pemba's just-in-time access requests
 * (access-requests.ts). A task IS an access request: its id is the request's id, approvers
 * decide it with Pemba's own `POST /stores/{store}/access-requests/{id}/approve|deny` (approvers
 * named by the model, self-approval refused, the grant written with its expiry in the same
 * transaction as the approval).
 *
 * A submission of `{subject, action, resource, context, denial: {expires_at, binding_token}}`
 * (the denial echoed from a requestable deny) is accepted only when:
 *
 * - the binding token verifies (binding service: key, signature, `aud`, `exp`) and binds exactly
 *   this subject, action and resource and the bound context members (arap-structural.ts;
 *   `subject.properties.act` ignored), and the echoed `expires_at` is the one it protects;
 * - it arrives before the earlier of the token's `exp` and `denial_expires_at` (`expired_denial`);
 * - the API client submitting it is the one that evaluated (the token's `pemba_client`; with
 *   authentication off both are `''`, so any caller may submit any denial it holds);
 * - no task was made from the same token (`jti`) already;
 * - any actor chain it names (`client.actor`, `subject.properties.act`) is carried by a
 *   verified `context.subject_token` of the store's token issuers, actor by actor, whose
 *   principal is the subject;
 * - the relation is still requestable (`not_requestable` otherwise).
 *
 * `requested_access.requested_until` sets the grant's duration (from now; capped by
 * PEMBA_JIT_MAX_DURATION), PT1H when absent, and is an absolute end too: however late the
 * approval, the grant ends by then (and an approval after it is refused). `context.justification`
 * (or `context.reason`) is the request's reason. With an `Idempotency-Key` (per API client: the
 * stored key is a hash of client and key), the same key and body answer the same task, and the
 * same key with another body is `duplicate_request`.
 *
 * Bulk: `items[]` of `{resource, action, denial?, requested_access?}` (each denial its own: a
 * binding token binds one evaluation; the top-level `denial` and `requested_access` are the
 * items' defaults) make one task of several access requests, stored together or not at all; its
 * status is the aggregate (any pending → `pending`; all alike → that; else `partial`) and
 * `task.items` gives each item's status and, once approved, its own `result`. Cancelling it
 * cancels the items still pending. The task's id is its first item's request id.
 *
 * Not supported, and refused with 400 `invalid_request`: `callback` (poll the status
 * endpoint). A denial with only an `evaluation_id` is `invalid_denial_binding`: Pemba keeps no
 * evaluation state, so the binding token is what a submission is checked against.
 *
 * Tasks are visible only to the API client that submitted them (anyone when authentication is
 * off); to any other caller they do not exist (`unknown_task`). A pending task's `expires_at` is
 * its request's decision deadline (PEMBA_JIT_REQUEST_TTL); at that instant it becomes `expired`,
 * a terminal status like `approved`, `denied` and `cancelled`. A terminal task stays readable
 * for TASK_RETENTION_MS after it ended, an approved one at least while its grant lasts (then its
 * `expires_at`), and is `task_expired` (410) after; its Idempotency-Key stays used.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { decodeJwt } from 'jose'
import { PembaError } from '../../core/errors.ts'
import type { AccessRequestRecord, AccessRequestStatus, AccessRequestSubmission } from '../access-request-store.ts'
import { AccessRequestError, type AccessRequestService } from '../access-requests.ts'
import type { TokenIdentity, TokenRejection } from '../token-verifier.ts'
import { formatDuration } from '../duration.ts'
import { ArapError } from './arap-error.ts'
import { rfc3339, type ArapBinding, type BindingClaims } from './arap-binding.ts'
import { bindingMismatch } from './arap-structural.ts'
import { tupleKeyOf } from './mapping.ts'
import type { AuthzenAction, AuthzenEntity } from './types.ts'

/** The binding service: verifies binding tokens, signs approval states. */
export type BindingService = Pick<ArapBinding, 'verifyBindingToken' | 'approvalState'>

/** Verifies a caller's token against the store's issuers (TokenCheckService.identify). */
export interface TokenIdentifier {
  identify(
    storeId: string,
    token: string,
    relation: string,
  ): Promise<{ ok: true; token: TokenIdentity } | { ok: false; reason: TokenRejection }>
}

/** The echoed denial of a submission. */
export interface SubmittedDenial {
  evaluation_id?: string
  evaluated_at?: string
  expires_at: string
  reason?: string
  binding_token?: string
  template?: string
}

/** One item of a bulk submission: its own resource and action, and its own denial. */
export interface SubmissionItem {
  resource: AuthzenEntity
  action: AuthzenAction
  denial?: SubmittedDenial
  requested_access?: { requested_until?: string; emergency?: boolean }
}

/** A submission (§5.4), as the route parsed it: one resource and action, or bulk `items`. */
export interface Submission {
  subject: AuthzenEntity
  action?: AuthzenAction
  resource?: AuthzenEntity
  items?: SubmissionItem[]
  context?: Record<string, unknown>
  denial?: SubmittedDenial
  requested_access?: { requested_until?: string; emergency?: boolean }
  callback?: unknown
  client?: { id?: string; name?: string; actor?: Record<string, unknown>; source?: Record<string, unknown> }
}

/** Who asks, and where: the API client (`''` with authentication off) and the store's PDP identifier. */
export interface TaskCaller {
  client: string
  pdp: string
}

/** A task's status is its access request's; a bulk task's the aggregate of its items' (`partial`: mixed ends). */
export type TaskStatus = AccessRequestStatus | 'partial'

/** An approved request's `result`: re-evaluate with this `approval`. */
export interface TaskResult {
  mode: 'reevaluate'
  approval: { id: string; approved_at: string; approved_until: string; state: string }
}

/** A task handle with its result (§5.5), as the routes answer it. */
export interface TaskView {
  task: {
    id: string
    status: TaskStatus
    status_endpoint: string
    expires_at: string
    links?: { cancel: string }
    /** Bulk: each item in submission order, an approved one with its own result. */
    items?: { resource: AuthzenEntity; action: AuthzenAction; status: AccessRequestStatus; result?: TaskResult }[]
  }
  /** A single task's, once approved (never for a bulk task: each item has its own). */
  result?: TaskResult
}

/** How long a task that ended stays readable (and its idempotency key answers): 24 h. */
export const TASK_RETENTION_MS = 24 * 3_600_000
/** The grant asked for when a submission names no `requested_until`. */
export const DEFAULT_GRANT_MS = 3_600_000
/** The `Retry-After` of a pending task, seconds. */
export const POLL_AFTER_SECONDS = 5
/** The longest actor chain read from a submission (a token's own limit applies too). */
const MAX_CLAIMED_ACTORS = 32
/** The most items of a bulk submission. */
export const MAX_BULK_ITEMS = 50
/** Longest accepted Idempotency-Key. */
const MAX_IDEMPOTENCY_KEY = 255

export interface ArapRequestServiceOptions {
  accessRequests: Pick<AccessRequestService, 'prepareSubmission' | 'submitSubmissions' | 'get' | 'cancel' | 'findByIdempotencyKey'>
  binding: BindingService
  tokens: TokenIdentifier
  clock: () => Date
  /** PEMBA_JIT_MAX_DURATION: the longest grant (a longer `requested_until` is capped). */
  maxDurationMs: number
}

const invalid = (detail: string) => new ArapError('invalid_request', detail)

export class ArapRequestService {
  readonly #o: ArapRequestServiceOptions

  constructor(options: ArapRequestServiceOptions) {
    this.#o = options
  }

  /**
   * submit turns a requestable denial into a pending task (see the module comment). Answers
   * the task; `replayed` when an Idempotency-Key named one already made from the same body.
   */
  async submit(
    storeId: string,
    s: Submission,
    caller: TaskCaller & { idempotencyKey?: string },
  ): Promise<{ view: TaskView; replayed: boolean }> {
    const given = checkIdempotencyKey(caller.idempotencyKey)
    // Keys are per API client: another client's key is neither readable nor claimable.
    const key = given === undefined ? undefined : sha256(`${caller.client}\n${given}`)
    const requestHash = sha256(canonicalJson({ client: caller.client, submission: s }))
    // A retry finds its task before anything else is checked (its denial may have expired since).
    const earlier = key === undefined ? undefined : await this.#o.accessRequests.findByIdempotencyKey(storeId, key)
    if (earlier) return { view: await this.#replay(storeId, earlier, requestHash, caller), replayed: true }
    if (s.callback !== undefined) throw invalid("callbacks are not supported: poll the task's status_endpoint")
    const now = this.#o.clock()
    const records: PreparedRequest[] = []
    for (const [i, item] of itemsOf(s).entries()) {
      const where = s.items ? `items[${i}].` : ''
      const r = await this.#prepareItem(storeId, s, item, where, caller, now)
      r.submission.requestHash = requestHash
      if (records.some((p) => p.submission.bindingJti === r.submission.bindingJti)) {
        throw new ArapError('invalid_denial_binding', `${where}denial: its binding token is another item's; a denial makes one access request`)
      }
      records.push(r)
    }
    records[0].submission.idempotencyKey = key ?? null
    // A bulk task is its first item's request; the first lists them all, the others name it.
    if (s.items) {
      records[0].submission.details.items = records.map((r) => r.id)
      for (const r of records.slice(1)) r.submission.details.task = records[0].id
    }
    const out = await this.#o.accessRequests.submitSubmissions(records)
    if (!out.created) {
      if (out.clash === 'binding_jti') {
        throw new ArapError('invalid_denial_binding', 'this denial has already been submitted: a binding token makes one access request')
      }
      return { view: await this.#replay(storeId, out.existing, requestHash, caller), replayed: true }
    }
    return { view: await this.#view(storeId, records[0], caller), replayed: false }
  }

  /**
   * #prepareItem checks one resource and action of a submission against its denial (binding,
   * expiry, the actor chain) and returns the access request to store, unstored. `where` prefixes
   * the messages of a bulk item (`items[2].`).
   */
  async #prepareItem(
    storeId: string,
    s: Submission,
    item: SubmissionItem,
    where: string,
    caller: TaskCaller,
    now: Date,
  ): Promise<PreparedRequest> {
    if (!item.denial) throw invalid(`${where}denial is required: the denial access is requested after (expires_at, binding_token)`)
    if (item.denial.binding_token === undefined) {
      throw new ArapError(
        'invalid_denial_binding',
        `${where}denial.binding_token is required: Pemba records no evaluation state, so an evaluation_id alone cannot be verified`,
      )
    }
    const submitted = { subject: s.subject, action: item.action, resource: item.resource, context: s.context }
    const tupleKey = tupleKeyOf(submitted)
    const claims = await this.#o.binding.verifyBindingToken(storeId, item.denial.binding_token, caller.pdp)
    checkDenial(item.denial, claims, now, where)
    if (claims.client !== caller.client) {
      throw new ArapError('invalid_denial_binding', `${where}denial: it was issued to another API client; only the client that evaluated may request it`)
    }
    const mismatch = bindingMismatch(claims, submitted)
    if (mismatch) {
      throw new ArapError('invalid_denial_binding', `the submission's ${where}${mismatch} is not what the denial's binding token binds`)
    }
    const actors = await this.#verifiedActors(storeId, s, tupleKey.relation)
    const { durationMs, notAfter } = this.#grantDuration(item.requested_access?.requested_until, now, where)
    const details: Record<string, unknown> = {
      client: caller.client,
      evaluation_id: claims.evaluation_id,
      binding: { subject: claims.subject, action: claims.action, resource: claims.resource, context: claims.context },
    }
    if (s.client) details.authzen_client = s.client
    if (actors.length) details.actors = actors
    if (item.requested_access) details.requested_access = item.requested_access
    // The absolute end asked for: the approval caps the grant there (AccessRequestService.approve).
    if (notAfter !== undefined) details.grant_not_after = rfc3339(notAfter)
    try {
      return await this.#o.accessRequests.prepareSubmission(
        storeId,
        { tupleKey, duration: formatDuration(durationMs), reason: justification(s.context), requestedBy: caller.client || undefined },
        { idempotencyKey: null, requestHash: '', bindingJti: claims.jti, details },
      )
    } catch (e) {
      if (e instanceof AccessRequestError && e.code === 'relation_not_requestable') throw new ArapError('not_requestable', `${where}${e.message}`)
      throw e
    }
  }

  /** status: the task as it stands; `retryAfter` (seconds) while it is pending. */
  async status(storeId: string, taskId: string, caller: TaskCaller): Promise<{ view: TaskView; retryAfter?: number }> {
    const record = await this.#visible(storeId, taskId, caller)
    const view = await this.#view(storeId, record, caller)
    return view.task.status === 'pending' ? { view, retryAfter: POLL_AFTER_SECONDS } : { view }
  }

  /**
   * cancel withdraws a pending task (a bulk one: its pending items): 200 `cancelled`; a terminal
   * one is `invalid_task_state`.
   */
  async cancel(storeId: string, taskId: string, body: { reason?: string; comment?: string }, caller: TaskCaller): Promise<TaskView> {
    const head = await this.#visible(storeId, taskId, caller)
    const records = await this.#records(storeId, head)
    const pending = records.filter((r) => r.status === 'pending')
    if (pending.length === 0) throw terminal(head.id, aggregate(records))
    const input = { actor: caller.client || head.user, reason: [body.reason, body.comment].filter((v) => v).join(': ') }
    const outcomes = await Promise.all(
      pending.map((r) =>
        this.#o.accessRequests.cancel(storeId, r.id, input).then(
          () => true,
          (e: unknown) => {
            // Decided (or expired) between the read and the cancel.
            if (e instanceof AccessRequestError && e.status === 409) return false
            throw e
          },
        ),
      ),
    )
    const view = await this.#view(storeId, await this.#o.accessRequests.get(storeId, head.id), caller)
    if (!outcomes.some((ok) => ok)) throw terminal(head.id, view.task.status)
    return view
  }

  /** #replay answers an Idempotency-Key seen before: the same body is its task, another a 409. */
  async #replay(storeId: string, existing: AccessRequestRecord, requestHash: string, caller: TaskCaller): Promise<TaskView> {
    if (existing.submission?.requestHash !== requestHash) {
      throw new ArapError('duplicate_request', 'this Idempotency-Key was used for another submission')
    }
    return this.#view(storeId, existing, caller)
  }

  /**
   * #visible: the task, if this caller may see it: one submitted through this profile, by this
   * API client, not past its retention. Anything else is `unknown_task`, so nobody learns of
   * another client's tasks.
   */
  async #visible(storeId: string, taskId: string, caller: TaskCaller): Promise<AccessRequestRecord> {
    const unknown = () => new ArapError('unknown_task', `task ${taskId} not found`)
    let record: AccessRequestRecord
    try {
      record = await this.#o.accessRequests.get(storeId, taskId)
    } catch (e) {
      if (e instanceof AccessRequestError && e.code === 'access_request_not_found') throw unknown()
      throw e
    }
    // A bulk task's other items are reached through its first.
    const s = record.submission
    if (!s || s.details.client !== caller.client || s.details.task !== undefined) throw unknown()
    return record
  }

  /** #records: a task's access requests, in submission order (a bulk task's items, else the one). */
  async #records(storeId: string, head: AccessRequestRecord): Promise<AccessRequestRecord[]> {
    const ids = head.submission?.details.items
    if (!Array.isArray(ids)) return [head]
    const rest = await Promise.all(ids.slice(1).map((id) => this.#o.accessRequests.get(storeId, String(id))))
    return [head, ...rest]
  }

  /** #view renders a task; past its retention it is `task_expired`. */
  async #view(storeId: string, head: AccessRequestRecord, caller: TaskCaller): Promise<TaskView> {
    const now = this.#o.clock().getTime()
    const endpoint = `${caller.pdp}/access/v1/requests/${head.id}`
    const records = await this.#records(storeId, head)
    const status = aggregate(records)
    let expiresAt = head.pendingUntil.getTime()
    if (status !== 'pending') {
      // An approval stays readable while its grant lasts, even a grant longer than the retention.
      expiresAt = Math.max(...records.map((r) => Math.max(endedAt(r) + TASK_RETENTION_MS, r.grantExpiresAt?.getTime() ?? 0)))
      if (expiresAt <= now) throw new ArapError('task_expired', `task ${head.id} ended more than ${formatDuration(TASK_RETENTION_MS)} ago`)
    }
    const view: TaskView = { task: { id: head.id, status, status_endpoint: endpoint, expires_at: rfc3339(expiresAt) } }
    if (status === 'pending') view.task.links = { cancel: `${endpoint}/cancel` }
    if (!Array.isArray(head.submission?.details.items)) {
      if (head.status === 'approved') view.result = await this.#result(storeId, head, caller.pdp)
      return view
    }
    view.task.items = await Promise.all(
      records.map(async (r) => {
        const bound = r.submission!.details.binding as { resource: AuthzenEntity; action: AuthzenAction }
        const item = { resource: bound.resource, action: bound.action, status: r.status }
        return r.status === 'approved' ? { ...item, result: await this.#result(storeId, r, caller.pdp) } : item
      }),
    )
    return view
  }

  /** #result: an approved request's result, with its signed approval state. */
  async #result(storeId: string, r: AccessRequestRecord, pdp: string): Promise<TaskResult> {
    const approved = r.events.find((e) => e.type === 'approved')!
    return {
      mode: 'reevaluate',
      approval: {
        id: r.id,
        approved_at: rfc3339(approved.at.getTime()),
        approved_until: rfc3339(r.grantExpiresAt!.getTime()),
        state: await this.#o.binding.approvalState(storeId, r, pdp),
      },
    }
  }

  /**
   * #verifiedActors: the actor chain a submission names (`client.actor`, `subject.properties.act`),
   * each covered by the verified `context.subject_token`: its principal is the subject and its
   * `act` chain names exactly these actors, outermost (current) first. Empty when none is named.
   */
  async #verifiedActors(storeId: string, s: Submission, relation: string): Promise<string[]> {
    const chains: [string, ClaimedActor[]][] = []
    if (s.client?.actor !== undefined) chains.push(['client.actor', actorChain(s.client.actor, 'client.actor', 'id')])
    const act = s.subject.properties?.act
    if (act !== undefined) chains.push(['subject.properties.act', actorChain(act, 'subject.properties.act', 'sub')])
    if (chains.length === 0) return []
    const token = s.context?.subject_token
    if (typeof token !== 'string' || token === '') {
      throw invalid(`${chains[0][0]} names actors, but no context.subject_token carries them: an unverified actor chain is refused`)
    }
    const r = await this.#o.tokens.identify(storeId, token, relation)
    if (!r.ok) {
      // The issuer's key set unreachable is an outage, not the caller's mistake: retry later.
      if (r.reason === 'issuer_keys_unavailable') throw new PembaError('unavailable', "the subject_token issuer's key set could not be fetched", 503)
      throw invalid(`context.subject_token does not verify (${r.reason}), so the actor chain cannot be verified`)
    }
    const subject = `${s.subject.type}:${s.subject.id}`
    if (r.token.subject !== subject) {
      throw invalid(`context.subject_token speaks for ${r.token.subject}, not for the subject ${subject}`)
    }
    const verified = r.token.actors.map((a) => a.slice(a.indexOf(':') + 1))
    // identify checked `iss` against the issuer's configuration: the claim is the verified issuer.
    const issuer = decodeJwt(token).iss
    const covers = (c: ClaimedActor, i: number) => {
      const actor = r.token.actors[i]
      const type = actor.slice(0, actor.indexOf(':'))
      if (c.id !== verified[i] && c.id !== actor) return false
      return (c.type === undefined || c.type === type) && (c.issuer === undefined || c.issuer === issuer)
    }
    for (const [field, claimed] of chains) {
      if (claimed.length !== verified.length || !claimed.every(covers)) {
        const names = claimed.map((c) => `${c.type ? `${c.type}:` : ''}${c.id}`)
        throw invalid(
          `${field} names the actors [${names.join(', ')}], which context.subject_token's act chain [${r.token.actors.join(', ')}] from ${issuer} does not cover (id, type and issuer)`,
        )
      }
    }
    return r.token.actors
  }

  /**
   * #grantDuration: from now until `requested_until` (capped by the maximum), else
   * DEFAULT_GRANT_MS; and `requested_until` itself, the end no grant outlasts however late it
   * is approved.
   */
  #grantDuration(requestedUntil: string | undefined, now: Date, where: string): { durationMs: number; notAfter?: number } {
    if (requestedUntil === undefined) return { durationMs: Math.min(DEFAULT_GRANT_MS, this.#o.maxDurationMs) }
    const until = parseTime(requestedUntil)
    if (until === undefined) throw invalid(`${where}requested_access.requested_until '${requestedUntil}' is not an RFC 3339 date-time`)
    const ms = until - now.getTime()
    if (ms <= 0) throw invalid(`${where}requested_access.requested_until ${requestedUntil} is not in the future`)
    // Whole seconds: a duration Pemba prints and reads back unchanged.
    return { durationMs: Math.min(Math.ceil(ms / 1000) * 1000, this.#o.maxDurationMs), notAfter: until }
  }
}

type PreparedRequest = AccessRequestRecord & { submission: AccessRequestSubmission }

/**
 * itemsOf: what a submission asks for, item by item: its one resource and action, or its bulk
 * `items`, each with its own denial (or the top-level one) and requested access.
 */
function itemsOf(s: Submission): SubmissionItem[] {
  if (s.items === undefined) {
    if (!s.action || !s.resource) throw invalid('a submission needs subject, action and resource (or items)')
    return [{ resource: s.resource, action: s.action, denial: s.denial, requested_access: s.requested_access }]
  }
  if (s.action || s.resource) throw invalid('a bulk submission names its resources and actions in items, not at the top level')
  if (s.items.length === 0 || s.items.length > MAX_BULK_ITEMS) throw invalid(`items: 1 to ${MAX_BULK_ITEMS} items`)
  return s.items.map((i) => ({ ...i, denial: i.denial ?? s.denial, requested_access: i.requested_access ?? s.requested_access }))
}

/**
 * checkDenial: the echoed `expires_at` is the one the token protects, the echoed
 * `evaluation_id` (if any) the bound one, and the submission is on time (before the earlier of
 * the token's `exp`, checked by the binding service, and `denial_expires_at`).
 */
function checkDenial(d: SubmittedDenial, claims: BindingClaims, now: Date, where: string): void {
  const echoed = parseTime(d.expires_at)
  const bound = parseTime(claims.denial_expires_at)
  if (echoed === undefined || bound === undefined || echoed !== bound) {
    throw new ArapError('invalid_denial_binding', `${where}denial.expires_at is not the expiry the denial's binding token protects`)
  }
  if (d.evaluation_id !== undefined && d.evaluation_id !== claims.evaluation_id) {
    throw new ArapError('invalid_denial_binding', `${where}denial.evaluation_id is not the evaluation the denial's binding token binds`)
  }
  if (bound <= now.getTime()) throw new ArapError('expired_denial', `the denial expired at ${claims.denial_expires_at}`)
}

/** A claimed actor: its id, and the type and issuer it claims, if any (each must match the token's). */
interface ClaimedActor {
  id: string
  type?: string
  issuer?: string
}

/**
 * actorChain reads an actor chain, outermost first: `{id, act: {sub, act: {sub}}}` as in
 * `client.actor` (`first` = `id`), or `{sub, iss, act: {…}}` as in `subject.properties.act`.
 */
function actorChain(v: unknown, field: string, first: 'id' | 'sub'): ClaimedActor[] {
  const ids: ClaimedActor[] = []
  let node = v
  let name = first
  while (node !== undefined) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) throw invalid(`${field}: an actor is an object`)
    const o = node as Record<string, unknown>
    const id = o[name] ?? o.sub ?? o.id
    if (typeof id !== 'string' || id === '') throw invalid(`${field}: every actor needs a non-empty '${name}'`)
    if (ids.length === MAX_CLAIMED_ACTORS) throw invalid(`${field}: more than ${MAX_CLAIMED_ACTORS} actors`)
    const type = o.type
    const issuer = o.issuer ?? o.iss
    if ((type !== undefined && typeof type !== 'string') || (issuer !== undefined && typeof issuer !== 'string')) {
      throw invalid(`${field}: an actor's type and issuer are strings`)
    }
    ids.push({ id, type, issuer })
    node = o.act
    name = 'sub'
  }
  return ids
}

function checkIdempotencyKey(key: string | undefined): string | undefined {
  if (key === undefined) return undefined
  if (key === '' || key.length > MAX_IDEMPOTENCY_KEY || !/^[\x21-\x7e]+$/.test(key)) {
    throw invalid(`the Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY} visible ASCII characters`)
  }
  return key
}

/** The request's reason: `context.justification`, else `context.reason`, else ''. */
function justification(context: Record<string, unknown> | undefined): string {
  for (const k of ['justification', 'reason']) {
    const v = context?.[k]
    if (typeof v === 'string') return v.slice(0, 1024)
  }
  return ''
}

/** When a terminal request ended: its last event (the deadline, for one that expired undecided). */
function endedAt(r: AccessRequestRecord): number {
  return r.events[r.events.length - 1].at.getTime()
}

function terminal(id: string, status: TaskStatus): ArapError {
  return new ArapError('invalid_task_state', `task ${id} is ${status}: only a pending task can be cancelled`)
}

/** aggregate: a task's status from its requests' (§5.5): any pending → pending; all alike → that; else partial. */
function aggregate(records: AccessRequestRecord[]): TaskStatus {
  const statuses = records.map((r) => r.status)
  if (statuses.includes('pending')) return 'pending'
  return statuses.every((x) => x === statuses[0]) ? statuses[0] : 'partial'
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

function parseTime(s: string): number | undefined {
  if (!RFC3339.test(s)) return undefined
  const t = Date.parse(s)
  return Number.isNaN(t) ? undefined : t
}

/** canonicalJson: JSON with object keys sorted (RFC 8785's order), so member order does not count. */
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}
