/**
 * Shaping an explained check's answer (`POST check` with `explain: true`, docs/explanations.md)
 * into what the check page draws: the API's trace tree with every node given an id, whether it
 * lies on the witness path (allowed answers), whether it starts open, and its reason in words.
 *
 * Pure data in, data out: no DOM, so the unit tests run it on answers captured from Pemba.
 */

/** One step of the API's trace (src/engine/trace.ts, as the API sends it). */
export interface TraceNode {
  step: string
  allowed: boolean
  label: string
  reason?: string
  tuple?: string
  condition?: { name: string; inputs: Record<string, unknown>; result: 'true' | 'false' | 'error'; error?: string }
  children?: TraceNode[]
}

export interface TupleRef {
  object: string
  relation: string
  user: string
  /** The condition's name, when the tuple carries one. */
  condition?: string
}

/** The answer of an explained check (allowed, or denied, or a token that was refused). */
export interface CheckAnswer {
  allowed: boolean
  resolution?: string
  /** Pemba: a delegated denial names the part that failed: delegation, principal or actor. */
  denied_by?: string
  /** Pemba: why a subject token was refused (token_invalid, token_expired, …). */
  reason?: string
  token?: { issuer: string; subject: string; actors: string[] }
  witness?: { user: string; relation: string; object: string; condition?: { name: string; context?: Record<string, unknown> } | null }[]
  explanation?: { allowed: boolean; path?: string[]; reasons?: string[]; tree?: TraceNode }
}

/** How a node reads in the drawn tree. */
export type NodeRole =
  /** On the path that granted an allowed check. */
  | 'witness'
  /** Evaluated to false where false was needed: the excluded side of `but not` in an allowed check. */
  | 'not-excluded'
  /** A branch that failed. */
  | 'failed'
  /** A branch that held but did not decide the answer (a true side of a denied intersection, or what excluded). */
  | 'held'
  /** What excluded a denied check: the `but not` side that held, and what made it hold. */
  | 'excluding'
  /** Not evaluated (the answer was already known). */
  | 'skipped'

export interface ViewNode {
  /** The node's position, `0`, `0.1`, `0.1.0`: stable for one answer, used for keys and ids. */
  id: string
  step: string
  allowed: boolean
  label: string
  /** The tuple this step read (without its condition's suffix), when it read one. */
  tuple?: TupleRef
  /** Why it failed, or what its condition saw, in words (as the API gives them). */
  reason?: string
  role: NodeRole
  /** Whether the node starts expanded. */
  open: boolean
  depth: number
  children: ViewNode[]
}

const TUPLE_STEPS = new Set(['tuple', 'userset', 'tupleset'])

/**
 * parseTupleLabel reads `object#relation@user` (a user may be a userset, `group:g1#member`),
 * with an optional ` (with <condition>)` suffix. Answers undefined for anything else.
 */
export function parseTupleLabel(text: string): TupleRef | undefined {
  let s = text.trim()
  let condition: string | undefined
  const m = /^(.*) \(with ([^()]+)\)$/.exec(s)
  if (m) {
    s = m[1]
    condition = m[2]
  }
  const hash = s.indexOf('#')
  if (hash <= 0) return undefined
  const at = s.indexOf('@', hash)
  if (at < 0) return undefined
  const object = s.slice(0, hash)
  const relation = s.slice(hash + 1, at)
  const user = s.slice(at + 1)
  if (!object.includes(':') || relation === '' || user === '') return undefined
  return condition ? { object, relation, user, condition } : { object, relation, user }
}

/** conditionText: a condition's outcome with the inputs it was evaluated with. */
export function conditionText(c: NonNullable<TraceNode['condition']>): string {
  const inputs = JSON.stringify(c.inputs)
  if (c.result === 'error') return `condition ${c.name} could not be evaluated: ${c.error ?? 'error'} (inputs ${inputs})`
  return `condition ${c.name} is ${c.result} for ${inputs}`
}

/** STEP_NAMES: a short name of each kind of step, shown beside its label. */
export const STEP_NAMES: Record<string, string> = {
  check: 'subproblem',
  direct: 'direct',
  tuple: 'tuple',
  userset: 'userset',
  computed: 'computed',
  tuple_to_userset: 'from parent',
  tupleset: 'parent tuple',
  union: 'any of',
  intersection: 'all of',
  exclusion: 'but not',
  delegation: 'delegation',
  token: 'token',
  cycle: 'cycle',
  error: 'error',
  skipped: 'skipped',
}

/**
 * shapeTree gives every node of the trace its role and open state.
 *
 * For an allowed answer the API's tree is the witness: the branch that granted it at every
 * union, every side of an intersection, and for `but not` the base plus the excluded side
 * (false, as it must be). The witness nodes are open, the excluded side closed.
 *
 * For a denied answer the tree holds every branch tried: each failed node starts open (so every
 * reason shows), and so does what excluded it (the `but not` side that held, down to its
 * tuples); a branch that held without deciding (a true side of an intersection) starts closed.
 */
export function shapeTree(tree: TraceNode, answerAllowed: boolean): ViewNode {
  const visit = (n: TraceNode, id: string, depth: number, parentRole: NodeRole | undefined, siblingIndex: number, parentStep?: string): ViewNode => {
    let role: NodeRole
    if (n.step === 'skipped') role = 'skipped'
    else if (answerAllowed) {
      if (parentRole === undefined || parentRole === 'witness') {
        // The second side of a `but not` is the excluded relation: false, as it had to be.
        if (parentStep === 'exclusion' && siblingIndex === 1) role = 'not-excluded'
        else role = n.allowed ? 'witness' : 'failed'
      } else role = n.allowed ? 'held' : parentRole === 'not-excluded' ? 'not-excluded' : 'failed'
    } else if (n.allowed && ((parentStep === 'exclusion' && siblingIndex === 1) || parentRole === 'excluding')) role = 'excluding'
    else role = n.allowed ? 'held' : 'failed'
    const tuple = n.tuple !== undefined && TUPLE_STEPS.has(n.step) ? parseTupleLabel(n.tuple) : undefined
    // A condition always shows its inputs: why it held is as useful on a witness as why it failed.
    const reason = n.condition ? conditionText(n.condition) : n.reason
    const kids = n.children ?? []
    const children = kids.map((k, i) => visit(k, `${id}.${i}`, depth + 1, role, i, n.step))
    const open = children.length > 0 && (role === 'witness' || role === 'failed' || role === 'excluding')
    return { id, step: n.step, allowed: n.allowed, label: n.label, tuple, reason, role, open, depth, children }
  }
  return visit(tree, '0', 0, undefined, 0)
}

/**
 * witnessTuples lists the tuples on the witness path of a shaped allowed tree, object first
 * (depth first, as the API builds `witness`): it equals the API's `witness` but for contextual
 * tuples, which the API leaves out of it.
 */
export function witnessTuples(root: ViewNode): TupleRef[] {
  const out: TupleRef[] = []
  const visit = (n: ViewNode) => {
    if (n.role !== 'witness') return
    if (n.tuple && n.allowed) out.push(n.tuple)
    n.children.forEach(visit)
  }
  visit(root)
  return out
}

/**
 * failedLeaves lists the failed nodes with nothing beneath them: where each denied branch ended.
 * As the engine's reasons do, it does not look inside a branch that held (a union's earlier
 * failed branch under a base that held decided nothing) or inside what excluded the check.
 */
export function failedLeaves(root: ViewNode): ViewNode[] {
  const out: ViewNode[] = []
  const visit = (n: ViewNode) => {
    if (n.role === 'skipped' || n.role === 'held' || n.role === 'excluding') return
    if (n.children.length === 0) {
      if (n.role === 'failed') out.push(n)
      return
    }
    n.children.forEach(visit)
  }
  visit(root)
  return out
}

/** countNodes: how many nodes the tree has (the page says how much it draws). */
export function countNodes(root: ViewNode): number {
  let n = 0
  const visit = (v: ViewNode) => {
    n++
    v.children.forEach(visit)
  }
  visit(root)
  return n
}

/** summarise: one sentence on the answer, with `denied_by` and a refused token's reason. */
export function summarise(a: CheckAnswer): string {
  if (a.allowed) return 'Allowed'
  if (a.reason) return `Denied: the subject token was refused (${a.reason})`
  if (a.denied_by === 'delegation') return 'Denied: a hop of the delegation chain has no acts_for (denied_by delegation)'
  if (a.denied_by === 'principal') return 'Denied: a principal of the chain lacks the relation (denied_by principal)'
  if (a.denied_by === 'actor') return 'Denied: the acting identity lacks the relation (denied_by actor)'
  return 'Denied'
}
