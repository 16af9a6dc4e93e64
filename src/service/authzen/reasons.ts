/**
 * Reasons in the decision context (issue 18, item 5), only when the caller asks (explaining):
 * made from the check's explanation (engine/explain.ts), in the shape of the reference's §3.
 *
 * A denial, explained to a caller that may read the store's tuples (the `reader` permission,
 * or authentication off; decider.ts `canSeeDetails`):
 *
 * ```json
 * {"decision": false, "context": {
 *   "reason": "no_path",
 *   "reason_user": {"403": "access denied"},
 *   "reason_admin": {"403": "doc:plan-7#can_edit@user:maria: doc:plan-7#can_edit › direct: no tuple …"},
 *   "pemba": {"explanation": {
 *     "failed": [{"operator": "direct", "object": "doc:plan-7", "relation": "editor", "cause": "no_tuple",
 *                 "detail": "no tuple doc:plan-7#editor@user:maria"}],
 *     "reasons": ["doc:plan-7#can_edit@user:maria › …"], "tree": {…}}}}}
 * ```
 *
 * `reason` is a machine code: `no_path` (no branch of the rewrite reached the subject),
 * `denied_by_delegation` / `denied_by_principal` / `denied_by_actor` (a delegated check, with
 * `pemba.denied_by`), or the token's TokenRejection (`scope_missing`, `token_expired`, …).
 * `failed` lists the failed branches, each with its rewrite operator (`direct`, `computed`,
 * `tuple_to_userset`, `union`, `intersection`, `exclusion`, `condition`, or `delegation`,
 * `token`, `cycle`, `error`), the object and relation it was about, a `cause` code and the
 * human `detail`. An allowed decision carries `pemba.explanation: {path, tree}`, its witness.
 *
 * Any other caller that explains gets `reason` and `reason_user` only: the admin text and the
 * tree name stored tuples (`doc:d1#parent@folder:f1`) and condition inputs, which a checker
 * cannot otherwise read. `reason_user` is generic on purpose: a PEP may show it to end users.
 *
 * @module
 */
import type { DeniedBy } from '../../engine/delegation.ts'
import type { Explanation } from '../checks.ts'
import type { TokenRejection } from '../token-verifier.ts'
import type { TraceNode } from '../../engine/explain.ts'

/** The `reason_user` text of every explained denial: generic, safe to show an end user. */
export const REASON_USER_TEXT = 'access denied'

/** What an explained decision adds to its context (see the module comment). */
export interface DecisionReasons {
  /** The machine code of a denial; absent for a permit. */
  reason?: string
  /** The human text for administrators (`reason_admin: {"403": …}`); absent for a permit. */
  reasonAdmin?: string
  /** `pemba.explanation`: the witness of a permit, the failed branches of a denial. */
  explanation: Record<string, unknown>
}

/** The outcome of the check an evaluation asked, before the profiles add to it (decider.ts). */
export interface Evaluated {
  allowed: boolean
  modelId: string
  /** Only when explaining. */
  reasons?: DecisionReasons
  /** Decision-context members that are part of the decision (obligations, required scopes). */
  extra?: Record<string, unknown>
  /**
   * Set for a refused token or a delegated check (an act chain, `on_behalf_of`): an access
   * request binds the subject alone, so it cannot lift that denial and none is advertised.
   */
  unrequestable?: boolean
  /** With `unrequestable`: the denial's machine code when known without explaining (`token_expired`). */
  denial?: string
}

/**
 * One failed branch of a denial, machine-readable: the operator that failed (`direct`: no
 * tuple; `tuple_to_userset`: no tupleset tuple; `condition`: a tuple's condition false or
 * not evaluable; `exclusion`: the `but not` side held; `cycle`, `error`, `token`), the
 * operators it sat under from the top (`via`: `["union", "computed"]`), the subproblem it was
 * part of (`object`, `relation`), a `cause` code and the human `detail`.
 */
export interface FailedBranch {
  operator: string
  via: string[]
  object: string
  relation: string
  cause: string
  detail: string
  /** For a condition: its name and the inputs it saw. */
  condition?: { name: string; inputs: Record<string, unknown>; result: string; error?: string }
}

/** The rewrite operators a branch can sit under (trace steps that are not bookkeeping). */
const OPERATORS: ReadonlySet<string> = new Set(['direct', 'computed', 'tuple_to_userset', 'union', 'intersection', 'exclusion', 'delegation', 'token'])

/** subproblemOf reads `doc:d1#viewer@user:alice` (a check node's label) as its object and relation. */
function subproblemOf(label: string): { object: string; relation: string } | undefined {
  const hash = label.indexOf('#')
  const at = label.indexOf('@', hash)
  if (hash < 0 || at < 0) return undefined
  return { object: label.slice(0, hash), relation: label.slice(hash + 1, at) }
}

/**
 * failedBranches lists the failed leaves of a denied (collapsed) trace; see FailedBranch. A
 * union or intersection failed because of its failed branches, so only those are listed, each
 * with the operators above it in `via`.
 */
export function failedBranches(tree: TraceNode, asked: { object: string; relation: string }): FailedBranch[] {
  const out: FailedBranch[] = []
  const visit = (n: TraceNode, via: string[], at: { object: string; relation: string }) => {
    if (n.step === 'skipped' || n.allowed) return
    const here = n.step === 'check' ? (subproblemOf(n.label) ?? at) : at
    const push = (operator: string, cause: string, detail: string, extra?: Partial<FailedBranch>) =>
      out.push({ operator, via, object: here.object, relation: here.relation, cause, detail, ...extra })
    const c = n.condition
    if (c && c.result !== 'true') {
      const cause = c.result === 'false' ? 'condition_false' : /missing .*parameters/.test(c.error ?? '') ? 'condition_missing_parameters' : 'condition_error'
      const detail = c.result === 'false' ? `condition ${c.name} is false on ${n.tuple ?? n.label}` : `condition ${c.name} could not be evaluated on ${n.tuple ?? n.label}: ${c.error ?? ''}`
      push('condition', cause, detail, { condition: { ...c } })
      return
    }
    const kids = (n.children ?? []).filter((k) => k.step !== 'skipped')
    const below = OPERATORS.has(n.step) ? [...via, n.step] : via
    if (n.step === 'exclusion') {
      const [base, subtract] = n.children ?? []
      if (base && !base.allowed) visit(base, below, here)
      if (subtract && subtract.step !== 'skipped' && subtract.allowed) {
        push('exclusion', 'excluded', `${n.label.replace(/^but not /, '')} holds, so ${n.label}`)
      }
      return
    }
    if (kids.length === 0) {
      switch (n.step) {
        case 'direct':
          return push('direct', 'no_tuple', n.reason ?? n.label)
        case 'tuple_to_userset':
          return push('tuple_to_userset', 'no_tupleset_tuple', n.reason ?? n.label)
        case 'cycle':
          return push('cycle', 'cycle', n.reason ?? n.label)
        case 'token':
          return push('token', (n.reason ?? 'token').split(':')[0], n.reason ?? n.label)
        default:
          return push(n.step, n.step === 'error' ? 'error' : 'denied', n.reason ? `${n.label}: ${n.reason}` : n.label)
      }
    }
    for (const k of kids) visit(k, below, here)
  }
  visit(tree, [], asked)
  return out
}

/** checkReasons: the reasons of an explained check (plain, delegated or a token's evaluated check). */
export function checkReasons(
  e: Explanation,
  deniedBy: DeniedBy | undefined,
  tupleKey: { user: string; relation: string; object: string },
): DecisionReasons {
  if (e.allowed) return { explanation: { path: e.path ?? [], tree: e.tree } }
  const reasons = e.reasons ?? []
  const explanation: Record<string, unknown> = { failed: failedBranches(e.tree, tupleKey), reasons, tree: e.tree }
  if (deniedBy) explanation.denied_by = deniedBy
  const asked = `${tupleKey.object}#${tupleKey.relation}@${tupleKey.user}`
  return { reason: deniedBy ? `denied_by_${deniedBy}` : 'no_path', reasonAdmin: `${asked} is not granted: ${reasons.join('; ')}`, explanation }
}

/** tokenRejectionReasons: the reasons of a token refused before any relationship was read. */
export function tokenRejectionReasons(
  reason: TokenRejection,
  e: Explanation,
  tupleKey: { user: string; relation: string; object: string },
): DecisionReasons {
  const reasons = e.reasons ?? []
  return {
    reason,
    reasonAdmin: reasons.join('; '),
    explanation: { failed: failedBranches(e.tree, tupleKey), reasons, tree: e.tree },
  }
}
