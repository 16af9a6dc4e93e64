/**
 * The trace an explained check records (see explain.ts, which builds and renders it). These are
 * plain data types, kept apart from explain.ts so that the dispatcher contract (dispatch.ts),
 * whose `CheckResult` carries a trace, depends on no decorator or evaluator.
 *
 * @module
 */
export type TraceStep =
  /** One subproblem: is `user` in `object#relation`? */
  | 'check'
  /** `[user, group#member]`: tuples on the object itself. */
  | 'direct'
  /** A tuple naming the subject (or its type's wildcard). */
  | 'tuple'
  /** A userset tuple (`document:1#viewer@group:eng#member`) and the membership it leads to. */
  | 'userset'
  /** `viewer: editor`. */
  | 'computed'
  /** `viewer from parent`, with one `tupleset` child per parent tuple. */
  | 'tuple_to_userset'
  /** One tupleset tuple (`document:1#parent@folder:f1`) and the check on its object. */
  | 'tupleset'
  | 'union'
  | 'intersection'
  | 'exclusion'
  /** A delegated check's hop, principal or actor (see delegation.ts). */
  | 'delegation'
  /** A token-native check: what the token was read as, or why it was refused. */
  | 'token'
  /** A subproblem already being evaluated higher on the same path. */
  | 'cycle'
  /** A branch whose evaluation failed (a condition that cannot be evaluated, the depth limit). */
  | 'error'
  /** A branch not evaluated because the answer was already known. */
  | 'skipped'

/** ConditionTrace: a condition evaluated for a tuple, with the inputs it saw. */
export interface ConditionTrace {
  name: string
  /** The condition's parameters as evaluated: the request context overlaid by the tuple's. */
  inputs: Record<string, unknown>
  result: 'true' | 'false' | 'error'
  /** Why it could not be evaluated, e.g. `tuple 'x' is missing context parameters 'y'`. */
  error?: string
}

/**
 * TraceNode is one step of an explained check: what it looked at, its answer and, for a
 * rewrite, the steps beneath it (`union` over `direct` and `computed`, a `tupleset` per parent).
 */
export interface TraceNode {
  step: TraceStep
  allowed: boolean
  /** What the step is about: `folder:f3#viewer@user:u1`, `viewer from parent`, a tuple. */
  label: string
  /** Why a denied step failed (or an allowed one needed no tuple). */
  reason?: string
  tuple?: string
  condition?: ConditionTrace
  children?: TraceNode[]
}
