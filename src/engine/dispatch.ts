/**
 * The check dispatcher contract. Every subproblem of a check — `folder:f1#viewer@user:anne`
 * reached from `document:d1#viewer` through `viewer from parent` — goes back through a
 * `CheckDispatcher`, so that memoisation, cycle detection and the depth limit wrap every
 * recursive edge as decorators rather than living inside the walker.
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import type { TypeSystem } from '../model/typesystem.ts'
import type { MembershipClosureReader, Revision, TupleReader } from '../store/ports.ts'
import type { TraceNode } from './trace.ts'

/** PathNode is the chain of subproblem keys from the root to the current one (cycle detection). */
export interface PathNode {
  key: string
  /** Position on the path: 0 for the root subproblem. */
  index: number
  parent: PathNode | undefined
}

/**
 * ResolutionContext holds what is constant for one top-level request: the model, the reader
 * bound to a revision (including any contextual tuples), the condition context, and the
 * request-scoped memo of subproblem results.
 */
export interface ResolutionContext {
  storeId: string
  revision: Revision
  typesystem: TypeSystem
  reader: TupleReader
  /** The request's condition context (`context` on check); tuple contexts override it. */
  context: Record<string, unknown> | undefined
  /** Results of subproblems already settled in this request, keyed by `checkKey`. */
  memo: Map<string, CheckResult>
  /** Subproblems being computed in this request (see MemoizingDispatcher). */
  inflight: Map<string, InFlight>
  /** How many sibling subproblems to evaluate at once (1 = one by one, short-circuiting first). */
  concurrency: number
  /** Counts dispatches, for limits and diagnostics. */
  stats: { dispatches: number; reads: number }
  /** An absolute time (ms) after which evaluation stops with a deadline error; 0 = none. */
  deadline: number
  /** Aborted when the client has gone away: the work stops (RequestCancelledError, limits.ts). */
  signal?: AbortSignal
  /**
   * How long this request may hold the event loop before it gives it back (see pacing.ts):
   * short for lists, searches and expansions, longer for checks. Absent: never pauses.
   */
  slice?: Slice
  /**
   * How this request may use the cross-request cache, or undefined when it must not (it has
   * contextual tuples or a condition context). `prefix` binds entries to store, model and
   * revision; `read` is false for HIGHER_CONSISTENCY.
   */
  sharedCache?: { prefix: string; read: boolean; cache: ClosureCache }
  /**
   * The store's membership closures at this revision (Zanzibar's Leopard index,
   * store/readers/membership-closure.ts): the upward walk of userset-closure.ts and
   * list-objects ask it first. Absent when it is off.
   */
  membership?: MembershipClosureReader
  /** Userset closures computed in this request (see userset-closure.ts). */
  closures: Map<string, Promise<Reachable | undefined>>
  /** The resolution depth limit, which the upward userset walk applies itself. */
  maxDepth: number
  /** The request's instant (ms): tuples expired by then do not count. */
  now: number
  /**
   * The earliest expiry among the tuples (and cached answers) this request has used so far;
   * answers it caches are valid until then (see store/readers/expiry-tracking.ts).
   */
  validUntil: number
  /**
   * Set for an explained check: every step then records a trace (see explain.ts). Explained
   * requests never use the cross-request cache, so the trace shows the whole evaluation.
   */
  explain?: boolean
}

/**
 * One request's slice of the event loop (see pacing.ts): the process's shared pacer and how
 * long the loop may be held before this request gives it back.
 */
export interface Slice {
  pacer: { spent(slice: Slice): boolean; claim(): boolean; wait(again: boolean): Promise<void> }
  ms: number
}

/** CheckRequest asks: is `subject` in `objectType:objectId#relation`? */
export interface CheckRequest {
  objectType: string
  objectId: string
  relation: string
  subject: Subject
  /** Rewrite hops taken so far through usersets and tuple-to-usersets. */
  depth: number
  path: PathNode | undefined
  ctx: ResolutionContext
}

/**
 * CheckResult is the answer to one subproblem. `cycleAt` is the path index of the highest
 * ancestor this answer ran into while it was still being computed, or `NO_CYCLE`. Such an answer
 * depends on the unfinished ancestor: it is not memoised, and an exclusion whose subtrahend
 * depends on it denies (`viewer: [user] but not restricted`, `restricted: [document#viewer]`
 * is a paradox, and Pemba, like OpenFGA, answers false). Once the ancestor itself finishes, the
 * cycle is resolved (least fixpoint) and its answer is definite.
 */
export interface CheckResult {
  allowed: boolean
  cycleAt: number
  /**
   * For an allowed answer: the tuples that granted it, from the object towards the subject
   * (`document:d1#parent@folder:f3`, `folder:f3#viewer@group:g7#member`,
   * `group:g7#member@user:u1`); every side of an intersection contributes. The decision log
   * records it and grant usage is maintained from it. Absent when nothing was read (a userset
   * is a member of itself).
   */
  witness?: readonly Tuple[]
  /** Only in an explained request: how this answer was reached (see explain.ts). */
  trace?: TraceNode
}

/** InFlight is a subproblem being computed, and the subproblems it is waiting on (see memoizing.ts). */
export interface InFlight {
  promise: Promise<CheckResult>
  /** Keys this computation waits on, with how many of its branches wait on each. */
  waitingOn: Map<string, number>
}

/**
 * Reachable is what the upward userset walk (userset-closure.ts) found: it maps
 * `type:id#relation` to the level it was found at (0 = a direct tuple).
 * `truncated` says the walk stopped at the depth limit with more to explore: a userset not in
 * the map may still contain the subject further up.
 */
export interface Reachable {
  levels: Map<string, number>
  /**
   * The tuple through which each userset was first reached: for `group:g2#member` reached from
   * `group:g1#member`, the tuple `group:g2#member@group:g1#member`. Following it back to the
   * subject gives the witness of a membership.
   */
  via: Map<string, Tuple>
  truncated: boolean
}

/**
 * ClosureCache is the part of the cross-request cache (CheckCache in caching.ts) a request
 * reaches through its context: userset closures, read and filled by userset-closure.ts. An
 * entry is valid until `until` (ms); `false` records "too many usersets to walk up".
 * Subproblem answers are cached by CachingDispatcher, which holds the cache itself.
 */
export interface ClosureCache {
  getClosure(key: string, now: number): { value: Reachable | false; until: number } | undefined
  setClosure(key: string, value: Reachable | false, until: number): void
}

export const NO_CYCLE = Number.POSITIVE_INFINITY

export interface CheckDispatcher {
  dispatchCheck(req: CheckRequest): Promise<CheckResult>
}

/** checkKey is the canonical name of a subproblem, e.g. `document:1#viewer@group:eng#member`. */
export function checkKey(objectType: string, objectId: string, relation: string, s: Subject): string {
  const user = s.relation ? `${s.type}:${s.id}#${s.relation}` : `${s.type}:${s.id}`
  return `${objectType}:${objectId}#${relation}@${user}`
}

/** pathIndexOf is the position of `key` on the path, or -1. */
export function pathIndexOf(path: PathNode | undefined, key: string): number {
  for (let p = path; p; p = p.parent) if (p.key === key) return p.index
  return -1
}

export const ALLOWED: CheckResult = Object.freeze({ allowed: true, cycleAt: NO_CYCLE })
export const DENIED: CheckResult = Object.freeze({ allowed: false, cycleAt: NO_CYCLE })

/** allowedBy is an allowed answer granted by `witness`. */
export function allowedBy(witness: readonly Tuple[] | undefined, cycleAt = NO_CYCLE): CheckResult {
  if (witness && witness.length) return { allowed: true, cycleAt, witness }
  return cycleAt === NO_CYCLE ? ALLOWED : { allowed: true, cycleAt }
}

/** deniedByCycle is the answer for a subproblem found on the path at `index`. */
export function deniedByCycle(index: number): CheckResult {
  return { allowed: false, cycleAt: index }
}
