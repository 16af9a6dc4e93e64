/**
 * AuthzenDecider: one AuthZEN evaluation → one decision. The evaluation becomes a Pemba check
 * (mapping.ts: `doc:plan-7#can_edit@user:maria`, properties and context as condition
 * parameters), and the decision is `{"decision": <allowed>}`: nothing else on the plain path,
 * which costs what `/check` costs (no context: the check's cached fast path).
 *
 * The decision context grows only when something asks for it:
 *
 * - `context.pemba` (pemba-options.ts): `explain`, `consistency`, `contextual_tuples`,
 *   `on_behalf_of` (a delegated check);
 * - reasons (reasons.ts), only when explaining (`context.pemba.explain: true` or the
 *   `Pemba-Explain: true` header): `reason` and `reason_user`, and for a caller that may read
 *   the store's tuples (`canSeeDetails`) `reason_admin` and `pemba.explanation`;
 * - `context.subject_token` (token-evaluation.ts): the caller's JWT, verified against the
 *   store's token issuers, its `act` chain and scope ceiling applied; a token whose only fault
 *   is a missing scope, for a check its holder would otherwise pass, carries an obligation to
 *   step up and `required_scopes` (obligations.ts), always;
 * - ARAP (the DenialAdvisor): a denial that can be requested (of the subject itself, not of a
 *   delegation chain or a refused token) advertises `access_request`, always;
 *   `context.approval` is checked, a permit echoes `approval.approved_until`, a denial despite
 *   it says why and what to do next (`reason`, `next_action`).
 *
 * Errors: the caller's mistakes (an unknown type or relation, a bad id, a malformed
 * `context.pemba`) throw PembaError; the API maps them (a 400, or a batch item's error).
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'
import type { TypeSystem } from '../../model/typesystem.ts'
import type { CheckService, DecisionMeta } from '../checks.ts'
import type { ModelService } from '../models.ts'
import type { TokenCheckService } from '../token-checks.ts'
import type { ApprovalVerdict, DenialAdvisor } from './arap-binding.ts'
import { conditionContext, RESERVED_CONTEXT_KEYS, tupleKeyOf } from './mapping.ts'
import { evaluationOptions, type EvaluationOptions } from './pemba-options.ts'
import { checkReasons, REASON_USER_TEXT, type DecisionReasons, type Evaluated } from './reasons.ts'
import { tokenDecision } from './token-evaluation.ts'
import type { AuthzenDecision, AuthzenEvaluation } from './types.ts'

export interface DecideOptions {
  /** The `Openfga-Authorization-Model-Id` header: the model to evaluate against (else the latest). */
  modelId?: string
  /** The `Pemba-Explain: true` header (OR'd with `context.pemba.explain`). */
  explain?: boolean
  /** Who asked, for the decision log: every evaluation is recorded as a check (or token check). */
  meta?: DecisionMeta
  /**
   * The PDP identifier of the request (base-url.ts `pdpIdentifier`): the ARAP tokens' audience.
   * Built on first use: only a requestable denial or an approval needs it (and the Host). A
   * function, not a getter in the caller's options literal: such an accessor cost ~40 µs of
   * garbage collection per HTTP evaluation (measured in-process, 100k requests).
   */
  pdp: () => string
  /**
   * May the caller see an explained decision's details, `reason_admin` and
   * `pemba.explanation`? They show stored tuples and condition inputs, so only a caller that may
   * read the store's tuples (the `reader` permission, or authentication off) sees them; everyone
   * who explains gets `reason` and a generic `reason_user`. Called only when explaining, at most
   * once. Absent: the details are withheld.
   */
  canSeeDetails?: () => Promise<boolean>
  /**
   * A batch item past a known stopper (evaluations.ts) is no longer wanted: its answer will not
   * be returned, so its denial is not made requestable (no binding token signed). Absent: wanted.
   */
  wanted?: () => boolean
}

export interface AuthzenDeciderOptions {
  checks: Pick<CheckService, 'check'>
  tokenChecks: Pick<TokenCheckService, 'check'>
  models: Pick<ModelService, 'known' | 'resolve'>
  /** ARAP: requestable denials and approvals. Absent: no denial is requestable, approvals are ignored. */
  advisor?: DenialAdvisor
}

/** What the decision log records an AuthZEN evaluation with (`detail.authzen`). Shared: never mutated. */
export const AUTHZEN_DETAIL: Readonly<Record<string, unknown>> = Object.freeze({ authzen: true })

export class AuthzenDecider {
  readonly #o: AuthzenDeciderOptions

  constructor(options: AuthzenDeciderOptions) {
    this.#o = options
  }

  /** decide answers one evaluation (see the module comment). */
  async decide(storeId: string, e: AuthzenEvaluation, o: DecideOptions): Promise<AuthzenDecision> {
    const context = e.context
    const advisor = this.#o.advisor
    if (!o.explain && (context === undefined || !hasReservedKey(context))) {
      // The plain path (no context, or condition parameters only): the check and its boolean.
      const r = await this.#o.checks.check(storeId, { tupleKey: tupleKeyOf(e), context: conditionContext(e), modelId: o.modelId }, withDetail(o.meta))
      if (r.allowed || !advisor) return { decision: r.allowed }
      // A denial nobody can request stays bare, decided synchronously (the model is cached).
      const ts = this.#o.models.known(storeId, r.modelId)
      if (ts && !advisor.isRequestable(ts, e)) return { decision: false }
      return this.#finish(storeId, e, o, { allowed: false, modelId: r.modelId }, undefined)
    }
    const opts = evaluationOptions(context ?? {}, o.explain === true)
    if (opts.approval === undefined || !advisor) return this.#finish(storeId, e, o, await this.#evaluate(storeId, e, o, opts), undefined)
    // Settled together; an approval that fails to verify never throws past its verdict.
    const approval = advisor.checkApproval(storeId, e, opts.approval, o.pdp())
    const [evaluated, verdict] = await Promise.all([this.#evaluate(storeId, e, o, opts), approval])
    return this.#finish(storeId, e, o, evaluated, verdict)
  }

  /** #evaluate runs the check an evaluation with options asks: plain, delegated or token-aware. */
  async #evaluate(storeId: string, e: AuthzenEvaluation, o: DecideOptions, opts: EvaluationOptions): Promise<Evaluated> {
    const tupleKey = tupleKeyOf(e)
    const query = {
      modelId: o.modelId,
      context: conditionContext(e),
      consistency: opts.consistency,
      contextualTuples: opts.contextualTuples,
      explain: opts.explain || undefined,
    }
    if (opts.subjectToken !== undefined) {
      return tokenDecision(this.#o, storeId, tupleKey, opts, query, withDetail(o.meta))
    }
    const r = await this.#o.checks.check(storeId, { ...query, tupleKey, onBehalfOf: opts.onBehalfOf }, withDetail(o.meta))
    const out: Evaluated = { allowed: r.allowed, modelId: r.modelId }
    if (r.explanation) out.reasons = checkReasons(r.explanation, r.deniedBy, tupleKey)
    if (!r.allowed && opts.onBehalfOf) {
      // A delegated check: an approval for the subject would not lift a denial of the chain.
      out.unrequestable = true
      if (r.deniedBy) out.denial = `denied_by_${r.deniedBy}`
    }
    return out
  }

  /**
   * #finish builds the decision: the check's answer, the reasons when explaining, what the
   * profiles add (obligations, ARAP's requestable denial and approval outcome).
   */
  async #finish(
    storeId: string,
    e: AuthzenEvaluation,
    o: DecideOptions,
    r: Evaluated,
    verdict: ApprovalVerdict | undefined,
  ): Promise<AuthzenDecision> {
    let ctx: Record<string, unknown> | undefined = r.extra ? { ...r.extra } : undefined
    if (r.reasons) ctx = { ...ctx, ...reasonMembers(r.reasons, o.canSeeDetails ? await o.canSeeDetails() : false) }
    const advisor = this.#o.advisor
    if (r.allowed) {
      if (verdict?.applies) ctx = { ...ctx, approval: { approved_until: verdict.approvedUntil } }
      return ctx ? { decision: true, context: ctx } : { decision: true }
    }
    if (verdict && r.unrequestable) {
      // An approval beside a denial no approval can lift (a refused token, a delegated chain):
      // the denial's own reason, and nothing to do.
      const reason = ctx?.reason ?? r.denial ?? (verdict.applies ? 'policy_denied' : verdict.reason)
      ctx = { ...ctx, reason, next_action: 'none' }
    }
    if (advisor && !r.unrequestable) {
      let advertise = true
      if (verdict) {
        // A denial despite an approval: why, and what the PEP should do next.
        const why = verdict.applies ? { reason: 'policy_denied', next_action: 'none' } : verdictMembers(verdict)
        ctx = { ...ctx, ...why }
        advertise = why.next_action === 'request'
      }
      if (advertise && o.wanted?.() !== false) {
        const pdp = pdpOrNone(o)
        if (pdp !== undefined) {
          const ts = await this.#model(storeId, r.modelId)
          // The denial's own reason code (explaining, or the approval's), else the advisor's `no_path`.
          const requestable = await advisor.requestableDenial(storeId, e, ts, pdp, ctx?.reason as string | undefined, o.meta?.client)
          if (requestable) ctx = { ...ctx, ...requestable }
        }
      }
    }
    return ctx ? { decision: false, context: ctx } : { decision: false }
  }

  #model(storeId: string, modelId: string): TypeSystem | Promise<TypeSystem> {
    return this.#o.models.known(storeId, modelId) ?? this.#o.models.resolve(storeId, modelId)
  }
}

/**
 * withDetail marks the decision log's record of an evaluation as AuthZEN's (`detail.authzen`).
 * Built as a literal: a spread of `meta` measured several microseconds slower per evaluation.
 */
/**
 * pdpOrNone: the request's PDP identifier, or undefined when none can be built (no usable Host
 * and no PEMBA_PUBLIC_URL): the decision stands, only the access-request link cannot be given.
 */
function pdpOrNone(o: DecideOptions): string | undefined {
  try {
    return o.pdp()
  } catch (e) {
    if (e instanceof PembaError) return undefined
    throw e
  }
}

function withDetail(meta: DecisionMeta | undefined): DecisionMeta | undefined {
  if (!meta || meta.detail) return meta
  return { requestId: meta.requestId, client: meta.client, kind: meta.kind, detail: AUTHZEN_DETAIL }
}

/**
 * reasonMembers: the decision-context members of an explained decision (reasons.ts): `reason`
 * and `reason_user` for every caller; `reason_admin` and `pemba.explanation` only with
 * `details` (DecideOptions.canSeeDetails).
 */
function reasonMembers(r: DecisionReasons, details: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (r.reason) {
    out.reason = r.reason
    out.reason_user = { '403': REASON_USER_TEXT }
  }
  if (!details) return out
  if (r.reasonAdmin) out.reason_admin = { '403': r.reasonAdmin }
  out.pemba = { explanation: r.explanation }
  return out
}

/** hasReservedKey: does a context carry a member that is not a condition parameter (mapping.ts)? */
function hasReservedKey(context: Record<string, unknown>): boolean {
  for (const k in context) if (RESERVED_CONTEXT_KEYS.has(k)) return true
  return false
}

/** verdictMembers: why an approval did not apply, in ARAP's words (`reason`, `next_action`). */
function verdictMembers(v: Extract<ApprovalVerdict, { applies: false }>): Record<string, unknown> {
  const out: Record<string, unknown> = { reason: v.reason, next_action: v.nextAction }
  if (v.retryAfter !== undefined) out.retry_after = v.retryAfter
  return out
}
