/**
 * Token-native checks: a check whose subject is a signed token (`subject_token`) instead of a
 * `user` string. Pemba verifies the token against the store's trusted issuers (see
 * token-issuers.ts) and asks the ordinary check, or the delegated one, about what it names:
 *
 * - the principal is `<subject_type>:<claims[subject_claim]>`;
 * - RFC 8693 `act` claims name the actors: the outermost `act.sub` is the current actor, each
 *   nested `act` a prior one, each `<actor_type>:<sub>`;
 * - no `act`: a plain check with the principal as user; with `act`: the delegated check with
 *   user = the current actor and on_behalf_of = [prior actors…, principal], nearest first. So
 *   `{sub: "alice", act: {sub: "summarizer", act: {sub: "planner"}}}` asks whether
 *   `agent:summarizer` may act for `agent:planner`, who acts for `user:alice`;
 * - when the issuer maps scopes, the relation asked about must also be one that a scope in the
 *   token's `scope` (space-separated) or `scp` (array) claim allows: scopes are a ceiling, never
 *   a grant.
 *
 * A token that cannot be trusted is an answer, not an error: `{allowed: false, reason}` with
 * one of TokenRejection. The token itself is never echoed. Malformed requests (an unknown
 * relation, a bad object) stay 400s, as for any check.
 *
 * @module
 */
import type { CredentialRule } from '../core/credentials.ts'
import { PembaError, validationError } from '../core/errors.ts'
import { parseObject, type TupleKey } from '../core/tuple.ts'
import { ACTS_FOR, type DeniedBy } from '../engine/delegation.ts'
import type { TypeSystem } from '../model/typesystem.ts'
import type { BatchCheckItem, CheckOutput, CheckService, Explanation } from './checks.ts'
import type { Consistency } from './evaluation.ts'
import { NO_DECISIONS, type DecisionSink, type RequestMeta } from './decision-sink.ts'
import type { ModelService } from './models.ts'
import type { TokenIssuerService } from './token-issuers.ts'
import { TokenVerifier, missingScopes, type TokenIdentity, type TokenRejection } from './token-verifier.ts'
import { MAX_CONTEXTUAL_TUPLES, validateBatch } from './tuple-input.ts'

export interface TokenCheckInput {
  subjectToken: string
  relation: string
  object: string
  modelId?: string
  contextualTuples?: TupleKey[]
  context?: Record<string, unknown>
  consistency?: Consistency
  /** Return an explanation: the token's reading, then the check's own explanation. */
  explain?: boolean
  /**
   * The subject the caller names beside the token (an AuthZEN evaluation's `type:id`): it must
   * be the token's principal or its current actor, else `subject_mismatch`.
   */
  subject?: string
}

/**
 * The outcome of one token check, with what a decision log records (kind `token_check`):
 * `reason` when the token was refused, `token` once it verified, and the check as evaluated:
 * `user` and `onBehalfOf`.
 */
export interface TokenCheckResult {
  modelId: string
  allowed: boolean
  reason?: TokenRejection
  /** With `scope_missing`: the issuer's scopes that would allow the relation (any one suffices). */
  requiredScopes?: string[]
  deniedBy?: DeniedBy
  token?: TokenIdentity
  /** The user the check asked about: the current actor, or the principal without actors. */
  user?: string
  onBehalfOf?: string[]
  /** Only when `explain` was asked for. */
  explanation?: Explanation
}

/** One batch-check item: a `user` (as ever) or a `subject_token`. */
export interface MixedBatchCheckItem {
  correlationId: string
  tupleKey: { user?: string; relation: string; object: string }
  subjectToken?: string
  contextualTuples?: TupleKey[]
  context?: Record<string, unknown>
  onBehalfOf?: string[]
  explain?: boolean
}

/**
 * One item of a mixed batch: evaluated (a plain item, or a token item whose check ran: the
 * check's output, with the token that named its user), answered without evaluating (a refused
 * token, or a chain nothing can act for), or what it threw (with the token, if it verified).
 * The API layer renders them.
 */
export type MixedBatchCheckItemResult =
  | { ok: true; output: CheckOutput; token?: TokenIdentity }
  | { ok: true; unevaluated: Unevaluated }
  | { ok: false; error: unknown; token?: TokenIdentity }

/** A token item answered `allowed: false` before any relationship was read. */
export interface Unevaluated {
  reason?: TokenRejection
  deniedBy?: 'delegation'
  token?: TokenIdentity
  explanation?: Explanation
}

export interface TokenCheckServiceOptions {
  checks: Pick<CheckService, 'check' | 'batchCheck'>
  models: ModelService
  issuers: TokenIssuerService
  clock: () => Date
  /** Leeway for `exp` and `nbf` (seconds), for clocks that disagree a little. */
  clockSkewSeconds: number
  /** PEMBA_MAX_DELEGATION_CHAIN: the most `act` hops a token may carry. */
  maxDelegationChain: number
  maxChecksPerBatch: number
  /**
   * Where refused tokens are recorded (kind `token_check`, with the reason); evaluated token
   * checks are recorded by CheckService as the same kind.
   */
  decisions?: DecisionSink
  /** What a credential-shaped correlation id is (core/credentials.ts); the shapes alone when not given. */
  credentials?: CredentialRule
}

/** A token resolved to the check it asks: or why it asks none. */
type Resolved =
  | { ok: true; token: TokenIdentity; user: string; onBehalfOf?: string[]; brokenChain: boolean }
  | { ok: false; reason: TokenRejection; token?: TokenIdentity; requiredScopes?: string[] }

export class TokenCheckService {
  readonly #o: TokenCheckServiceOptions

  constructor(options: TokenCheckServiceOptions) {
    this.#o = options
  }

  /**
   * check answers one token check; with `meta` (an API request) the decision is recorded, with
   * `meta.detail` (the caller's own, e.g. AuthZEN's `{authzen: true}`) beside the token's.
   */
  async check(storeId: string, input: TokenCheckInput, meta?: RequestMeta & { detail?: Record<string, unknown> }): Promise<TokenCheckResult> {
    const started = performance.now()
    refuseContextualDelegation(input.contextualTuples)
    const fresh = input.consistency === 'HIGHER_CONSISTENCY'
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh })
    validateTarget(ts, input.relation, input.object)
    const r = await this.#resolve(storeId, ts, input.subjectToken, input.relation, fresh, input.subject)
    if (!r.ok || r.brokenChain) {
      const out: TokenCheckResult = r.ok
        ? { modelId: ts.id, allowed: false, deniedBy: 'delegation', token: r.token, user: r.user, onBehalfOf: r.onBehalfOf }
        : { modelId: ts.id, allowed: false, reason: r.reason, token: r.token }
      if (!r.ok && r.requiredScopes) out.requiredScopes = r.requiredScopes
      // A mismatch records the subject that was named too: the token's holder did not ask for it.
      const named = out.reason === 'subject_mismatch' ? { named_subject: input.subject } : undefined
      if (meta) this.#recordUnevaluated(storeId, ts.id, input, out, meta, started, named)
      if (input.explain) out.explanation = unevaluatedExplanation(out)
      return out
    }
    const asked = { token: r.token, user: r.user, onBehalfOf: r.onBehalfOf }
    const out = await this.#o.checks.check(
      storeId,
      {
        modelId: ts.id,
        tupleKey: { user: r.user, relation: input.relation, object: input.object },
        onBehalfOf: r.onBehalfOf,
        contextualTuples: input.contextualTuples,
        context: input.context,
        consistency: input.consistency,
        explain: input.explain,
      },
      meta ? { ...meta, kind: 'token_check', detail: { ...meta.detail, ...tokenDetail(r.token) } } : undefined,
    )
    const result: TokenCheckResult = { modelId: out.modelId, allowed: out.allowed, deniedBy: out.deniedBy, ...asked }
    if (out.explanation) result.explanation = withTokenStep(out.explanation, r.token)
    return result
  }

  /**
   * identify verifies a token and names its principal and actors without checking any
   * relationship (an AuthZEN access request verifies a claimed actor chain with it). `relation`
   * is what the token is used for: an issuer's scope ceiling applies as in a check.
   */
  async identify(
    storeId: string,
    token: string,
    relation: string,
  ): Promise<{ ok: true; token: TokenIdentity } | { ok: false; reason: TokenRejection }> {
    const ts = await this.#o.models.resolve(storeId, undefined, { fresh: true })
    const r = await this.#resolve(storeId, ts, token, relation, true)
    return r.ok ? { ok: true, token: r.token } : { ok: false, reason: r.reason }
  }

  /**
   * #recordUnevaluated records a token check answered without evaluating relationships: a
   * refused token (with its reason) or a chain whose principal type no one can act for.
   */
  #recordUnevaluated(
    storeId: string,
    modelId: string,
    input: { relation: string; object: string; consistency?: Consistency },
    out: { reason?: TokenRejection; deniedBy?: DeniedBy; token?: TokenIdentity; user?: string; onBehalfOf?: string[] },
    meta: RequestMeta & { detail?: Record<string, unknown> },
    started: number,
    extra?: Record<string, unknown>,
  ): void {
    const sink = this.#o.decisions ?? NO_DECISIONS
    if (sink === NO_DECISIONS) return
    const detail: Record<string, unknown> = { ...meta.detail, ...(out.token ? tokenDetail(out.token) : {}), ...extra }
    if (out.reason) detail.reason = out.reason
    if (out.deniedBy) detail.denied_by = out.deniedBy
    sink.record({
      kind: 'token_check',
      storeId,
      modelId,
      client: meta.client,
      requestId: meta.requestId,
      // A refused token may name no one that can be trusted: recorded as such.
      subject: out.user ?? out.token?.actors[0] ?? out.token?.subject ?? '',
      onBehalfOf: out.onBehalfOf,
      relation: input.relation,
      object: input.object,
      allowed: false,
      latencyUs: (performance.now() - started) * 1000,
      consistency: input.consistency ?? 'UNSPECIFIED',
      at: this.#o.clock().getTime(),
      detail,
    })
  }

  /**
   * batchCheck answers a batch whose items may carry `subject_token`: each token item is
   * verified and resolved on its own (a refused token answers that item only), then every item
   * still to evaluate goes through the ordinary batch check together.
   */
  async batchCheck(
    storeId: string,
    input: { modelId?: string; consistency?: Consistency; checks: MixedBatchCheckItem[] },
    meta?: RequestMeta,
  ): Promise<{ result: Record<string, MixedBatchCheckItemResult>; modelId: string }> {
    // The batch's own limits first, as the ordinary batch check states them.
    validateBatch(input.checks, this.#o.maxChecksPerBatch, this.#o.credentials)
    const fresh = input.consistency === 'HIGHER_CONSISTENCY'
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh })
    // Items in the order they were answered: those answered without evaluation, then the rest.
    const result: Record<string, MixedBatchCheckItemResult> = {}
    const tokens = new Map<string, TokenIdentity>()
    const evaluate: BatchCheckItem[] = []
    await Promise.all(
      input.checks.map(async (c, i) => {
        const started = performance.now()
        const common = { correlationId: c.correlationId, contextualTuples: c.contextualTuples, context: c.context, explain: c.explain }
        if (c.subjectToken === undefined) {
          evaluate.push({ ...common, tupleKey: { ...c.tupleKey, user: c.tupleKey.user ?? '' }, onBehalfOf: c.onBehalfOf })
          return
        }
        let r: Resolved
        try {
          validateTarget(ts, c.tupleKey.relation, c.tupleKey.object)
          refuseContextualDelegation(c.contextualTuples, `checks[${i}].contextual_tuples.tuple_keys`)
          r = await this.#resolve(storeId, ts, c.subjectToken, c.tupleKey.relation, fresh)
        } catch (e) {
          // An item's own mistake answers that item, as in the ordinary batch check.
          if (!(e instanceof PembaError)) throw e
          result[c.correlationId] = { ok: false, error: e }
          return
        }
        const { relation, object } = c.tupleKey
        const item = { relation, object, consistency: input.consistency }
        if (!r.ok) {
          const unevaluated: Unevaluated = r.token ? { reason: r.reason, token: r.token } : { reason: r.reason }
          if (c.explain) unevaluated.explanation = unevaluatedExplanation({ reason: r.reason, token: r.token })
          result[c.correlationId] = { ok: true, unevaluated }
          if (meta) this.#recordUnevaluated(storeId, ts.id, item, r, meta, started, { correlation_id: c.correlationId })
          return
        }
        tokens.set(c.correlationId, r.token)
        if (r.brokenChain) {
          const asked = { deniedBy: 'delegation' as const, token: r.token, user: r.user, onBehalfOf: r.onBehalfOf }
          const unevaluated: Unevaluated = { deniedBy: 'delegation', token: r.token }
          if (c.explain) unevaluated.explanation = unevaluatedExplanation(asked)
          result[c.correlationId] = { ok: true, unevaluated }
          if (meta) this.#recordUnevaluated(storeId, ts.id, item, asked, meta, started, { correlation_id: c.correlationId })
          return
        }
        evaluate.push({
          ...common,
          tupleKey: { user: r.user, relation, object },
          onBehalfOf: r.onBehalfOf,
          decision: { kind: 'token_check', detail: tokenDetail(r.token) },
        })
      }),
    )
    if (evaluate.length > 0) {
      const out = await this.#o.checks.batchCheck(storeId, { modelId: ts.id, consistency: input.consistency, checks: evaluate }, meta)
      for (const [id, item] of Object.entries(out.result)) {
        const token = tokens.get(id)
        if (!token) result[id] = item
        else if (!item.ok) result[id] = { ok: false, error: item.error, token }
        else {
          const output = item.output.explanation ? { ...item.output, explanation: withTokenStep(item.output.explanation, token) } : item.output
          result[id] = { ok: true, output, token }
        }
      }
    }
    return { result, modelId: ts.id }
  }

  /**
   * #resolve verifies a token and turns it into the check it asks. `brokenChain` is set when a
   * principal's type defines no `acts_for` (nothing can act for it, so the delegated check
   * would deny with `delegation`); an issuer whose types the model no longer has is a 400, as
   * the store's configuration and model disagree.
   */
  async #resolve(storeId: string, ts: TypeSystem, token: string, relation: string, fresh: boolean, named?: string): Promise<Resolved> {
    const verified = await this.#verifier(storeId).verify(token, fresh)
    if (!verified.ok) return verified
    const { issuer, claims, identity } = verified
    const c = issuer.config
    const { subject, actors } = identity
    if (named !== undefined && named !== subject && named !== actors[0]) return { ok: false, reason: 'subject_mismatch', token: identity }
    const requiredScopes = missingScopes(c, claims, relation)
    if (requiredScopes) return { ok: false, reason: 'scope_missing', token: identity, requiredScopes }
    for (const type of [c.subject_type, ...(actors.length ? [c.actor_type!] : [])]) {
      if (!ts.hasType(type)) {
        throw validationError(
          `token issuer '${issuer.name}' maps tokens to type '${type}', which model ${ts.id} does not define`,
        )
      }
    }
    if (actors.length === 0) return { ok: true, token: identity, user: subject, brokenChain: false }
    // The current actor acts for the prior actors, who act for the principal: nearest first.
    const onBehalfOf = [...actors.slice(1), subject]
    const brokenChain = onBehalfOf.some((p) => !ts.relation(p.slice(0, p.indexOf(':')), ACTS_FOR))
    return { ok: true, token: identity, user: actors[0], onBehalfOf, brokenChain }
  }

  /** #verifier verifies tokens against the store's issuers (through this replica's recent view of them). */
  #verifier(storeId: string): TokenVerifier {
    const { issuers, clock, clockSkewSeconds, maxDelegationChain } = this.#o
    return new TokenVerifier({ issuers: (iss, fresh) => issuers.byIssuer(storeId, iss, fresh), clock, clockSkewSeconds, maxDelegationChain })
  }
}

/**
 * refuseContextualDelegation: the contextual tuples a token check may carry. At most
 * MAX_CONTEXTUAL_TUPLES, and none whose relation is `acts_for`: the token's act chain must be
 * proven by stored tuples, or whoever writes the request could forge a hop
 * (`user:alice#acts_for@agent:bot` beside a token of alice acted by the bot). A 400 naming the tuple.
 */
export function refuseContextualDelegation(tuples: readonly TupleKey[] | undefined, field = 'contextual_tuples.tuple_keys'): void {
  if (!tuples) return
  if (tuples.length > MAX_CONTEXTUAL_TUPLES) throw validationError(`invalid ${field}: at most ${MAX_CONTEXTUAL_TUPLES} contextual tuples`)
  const i = tuples.findIndex((t) => t.relation === ACTS_FOR)
  if (i >= 0) {
    throw validationError(
      `invalid ${field}[${i}]: a contextual tuple cannot grant '${ACTS_FOR}' beside a subject_token (the token's act chain must be proven by stored tuples)`,
    )
  }
}

/** What the decision log records of a verified token. */
function tokenDetail(t: TokenIdentity): Record<string, unknown> {
  return { token_issuer: t.issuer, token_subject: t.subject, token_actors: t.actors }
}

const REJECTION_TEXT: Record<TokenRejection, string> = {
  token_invalid: 'the token is not a valid token of its issuer (signature, format, audience, nbf or claims)',
  token_expired: 'the token has expired',
  issuer_untrusted: "the token's issuer is not one this store trusts",
  issuer_keys_unavailable: "the issuer's keys could not be fetched, so nothing it signed can be verified",
  delegation_chain_too_long: 'the token names more actors than PEMBA_MAX_DELEGATION_CHAIN allows',
  scope_missing: "no scope of the token allows this relation (scopes are a ceiling, never a grant)",
  subject_mismatch: "the subject named is neither the token's principal nor its current actor",
}

function tokenLine(t: TokenIdentity): string {
  const acting = t.actors.length ? `, actors ${t.actors.join(' for ')} for ${t.subject}` : ''
  return `token of issuer '${t.issuer}': principal ${t.subject}${acting}`
}

/** unevaluatedExplanation explains a token check answered before any relationship was read. */
function unevaluatedExplanation(out: {
  reason?: TokenRejection
  deniedBy?: DeniedBy
  token?: TokenIdentity
  user?: string
  onBehalfOf?: string[]
}): Explanation {
  const why = out.reason
    ? `${out.reason}: ${REJECTION_TEXT[out.reason]}`
    : `delegation: nothing can act for ${out.onBehalfOf?.join(', ')} (no acts_for relation on its type)`
  const label = out.token ? tokenLine(out.token) : 'subject_token'
  return { allowed: false, reasons: [`${label} › ${why}`], tree: { step: 'token', allowed: false, label, reason: why } }
}

/** withTokenStep puts the token's reading ahead of the check's own explanation. */
function withTokenStep(e: Explanation, t: TokenIdentity): Explanation {
  const label = tokenLine(t)
  const out: Explanation = { ...e, tree: { step: 'token', allowed: e.allowed, label, children: [e.tree] } }
  if (e.path) out.path = [label, ...e.path]
  if (e.reasons) out.reasons = e.reasons.map((r) => `${label} › ${r}`)
  return out
}

/**
 * validateTarget checks the object and relation of a token check against the model, with the
 * messages an ordinary check gives.
 */
function validateTarget(ts: TypeSystem, relation: string, objectText: string): void {
  const object = parseObject(objectText)
  if (!object || object.id === '*') throw validationError(`invalid 'object' field format: '${objectText}'`)
  if (!ts.hasType(object.type)) throw validationError(`type '${object.type}' not found`)
  if (!ts.relation(object.type, relation)) throw validationError(`relation '${object.type}#${relation}' not found`)
}
