/**
 * Token-aware evaluation (issue 18, item 7): an evaluation whose context carries the caller's
 * JWT, `context.subject_token`, is a token check (token-checks.ts): the token is verified
 * against the store's token issuers, its `act` chain becomes the delegated check and the
 * issuer's scope map is a ceiling.
 *
 * **The subject rule.** The evaluation still names a subject (AuthZEN requires one), and it
 * must be someone the token speaks for: the token's principal (`user:alice`, from the issuer's
 * subject claim and type) or its current actor (`agent:summarizer`, the outermost `act.sub`).
 * Either way the question asked is the token's (the actor for the chain, for the principal),
 * so naming one or the other gives the same decision. Any other subject is `{"decision":
 * false}` with reason `subject_mismatch` (the token is never applied to someone it does not
 * name), recorded in the decision log as a refused token. E.g. a token `{sub: "alice", act:
 * {sub: "summarizer"}}` with subject `{"type": "user", "id": "bob"}` → denied.
 *
 * A refused token is a denial (`{"decision": false}`, the TokenRejection as `reason` when
 * explaining), never an error. One refusal is also a hint: a token refused only because no
 * scope allows the relation (`scope_missing`), whose holder would be allowed with one of the
 * issuer's scopes that allow it, gets the step-up obligation and `required_scopes`
 * (obligations.ts), explaining or not. That hint tells the end user behind a PEP whether the
 * principal would hold the relation with another scope, and which scope names exist: it is
 * their own access, so this is accepted (docs/authzen.md).
 *
 * **Contextual tuples** (`context.pemba.contextual_tuples`) still apply, but never one whose
 * relation is `acts_for` (pemba-options.ts, token-checks.ts): the act chain must be proven by
 * stored tuples, or anyone writing the context could forge a hop.
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'
import type { CheckService, DecisionMeta } from '../checks.ts'
import type { Consistency } from '../evaluation.ts'
import type { TokenCheckResult, TokenCheckService } from '../token-checks.ts'
import type { TokenIdentity } from '../token-verifier.ts'
import type { TupleKey } from '../../core/tuple.ts'
import { scopeStepUp } from './obligations.ts'
import type { EvaluationOptions } from './pemba-options.ts'
import { checkReasons, tokenRejectionReasons, type Evaluated } from './reasons.ts'

/** The query an evaluation asks besides its subject: as the check takes it. */
export interface EvaluationQuery {
  modelId?: string
  context?: Record<string, unknown>
  consistency?: Consistency
  contextualTuples?: TupleKey[]
  explain?: boolean
}

/** tokenDecision evaluates `tupleKey` (whose user is the evaluation's subject) for the token in `opts`. */
export async function tokenDecision(
  deps: { checks: Pick<CheckService, 'check'>; tokenChecks: Pick<TokenCheckService, 'check'> },
  storeId: string,
  tupleKey: { user: string; relation: string; object: string },
  opts: EvaluationOptions,
  query: EvaluationQuery,
  meta: DecisionMeta | undefined,
): Promise<Evaluated> {
  const t: TokenCheckResult = await deps.tokenChecks.check(
    storeId,
    { ...query, subjectToken: opts.subjectToken!, subject: tupleKey.user, relation: tupleKey.relation, object: tupleKey.object },
    meta,
  )
  const out: Evaluated = { allowed: t.allowed, modelId: t.modelId }
  if (!t.allowed && (t.reason || t.onBehalfOf)) {
    // A refused token, or the actor's delegated check: an approval for the subject cannot lift it.
    out.unrequestable = true
    const denial = t.reason ?? (t.deniedBy ? `denied_by_${t.deniedBy}` : undefined)
    if (denial) out.denial = denial
  }
  if (t.reason === 'scope_missing' && t.token && t.requiredScopes?.length) {
    if (await grantedWithScope(deps.checks, storeId, t.token, tupleKey, { ...query, modelId: t.modelId, explain: undefined })) {
      out.extra = scopeStepUp(t.requiredScopes, opts.supportedObligations)
    }
  }
  if (t.explanation) {
    out.reasons = t.reason ? tokenRejectionReasons(t.reason, t.explanation, tupleKey) : checkReasons(t.explanation, t.deniedBy, tupleKey)
  }
  return out
}

/**
 * grantedWithScope: would the token's check be allowed if its scopes allowed the relation?
 * Not a decision (nothing is recorded): it decides only whether stepping up can help. A check
 * the model refuses (a type the issuer maps to that the model lacks, a principal nothing may
 * act for) cannot be helped by a scope.
 */
async function grantedWithScope(
  checks: Pick<CheckService, 'check'>,
  storeId: string,
  token: TokenIdentity,
  tupleKey: { relation: string; object: string },
  query: EvaluationQuery,
): Promise<boolean> {
  const [actor, ...prior] = token.actors
  try {
    const r = await checks.check(storeId, {
      ...query,
      tupleKey: { user: actor ?? token.subject, relation: tupleKey.relation, object: tupleKey.object },
      onBehalfOf: actor ? [...prior, token.subject] : undefined,
    })
    return r.allowed
  } catch (e) {
    if (e instanceof PembaError) return false
    throw e
  }
}
