/**
 * Explanations. An explained check (`"explain": true`) runs the same evaluator with
 * `ctx.explain` set: every step then returns, beside its answer, a trace node saying what it
 * looked at. Nothing is decided differently — the trace is a by-product of the same rewrite
 * walk, without the cross-request cache (so nothing is hidden behind a cached answer) and one
 * branch at a time (so the trace is deterministic).
 *
 * The API shows an allowed answer as its witness path: the winning branch of every union, every
 * side of an intersection, the base of an exclusion (with the subtrahend shown false), e.g.
 *
 *   document:d1#viewer
 *   ← viewer from parent: document:d1#parent@folder:f3
 *   ← folder:f3#viewer
 *   ← folder:f3#viewer@group:g7#member
 *   ← group:g7#member@user:u1
 *
 * and a denied answer as every branch tried and why it failed (no tuple, excluded by
 * `blocked`, an intersection side false, a condition false or missing a parameter, a cycle).
 *
 * @module
 */
import { formatObject, formatSubject, type Subject, type Tuple } from '../core/tuple.ts'
import type { CheckResult, ResolutionContext } from './dispatch.ts'
import type { ConditionTrace, TraceNode } from './trace.ts'

/** The trace's shape, for the callers that render an explanation (the service). */
export type { TraceNode } from './trace.ts'

/** tupleLabel renders a tuple as `object#relation@user` (with its condition's name). */
export function tupleLabel(t: Tuple): string {
  const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
  const s = `${formatObject(t.objectType, t.objectId)}#${t.relation}@${user}`
  return t.conditionName ? `${s} (with ${t.conditionName})` : s
}

export function subproblemLabel(objectType: string, objectId: string, relation: string, subject: Subject): string {
  return `${objectType}:${objectId}#${relation}@${formatSubject(subject)}`
}

/** withTrace returns `r` carrying `trace` (the shared ALLOWED/DENIED values are frozen). */
export function withTrace(r: CheckResult, trace: TraceNode): CheckResult {
  return { ...r, trace }
}

/**
 * traceOf is a branch's trace. A branch answered without one was cut as a cycle by the memo
 * (the only answers that carry no trace in an explained request).
 */
export function traceOf(r: CheckResult, label = ''): TraceNode {
  if (r.trace) return r.trace
  return {
    step: 'cycle',
    allowed: r.allowed,
    label,
    reason: 'already being evaluated higher on this path: a cycle, which grants nothing by itself',
  }
}

export function errorTrace(e: unknown, label = ''): TraceNode {
  return { step: 'error', allowed: false, label, reason: e instanceof Error ? e.message : String(e) }
}

export const SKIPPED: TraceNode = Object.freeze({
  step: 'skipped',
  allowed: false,
  label: '',
  reason: 'not evaluated: the answer was already known',
}) as TraceNode

/**
 * conditionTrace evaluates a tuple's condition again for the record. Evaluation is pure, so
 * this sees exactly what the check saw.
 */
export function conditionTrace(ctx: ResolutionContext, t: Tuple): ConditionTrace | undefined {
  if (!t.conditionName) return undefined
  const cond = ctx.typesystem.conditions.get(t.conditionName)
  if (!cond) return { name: t.conditionName, inputs: {}, result: 'false', error: 'condition no longer in the model' }
  const inputs: Record<string, unknown> = {}
  for (const name of cond.parameterNames) {
    const fromTuple = t.conditionContext?.[name]
    const value = fromTuple !== undefined ? fromTuple : ctx.context?.[name]
    if (value !== undefined) inputs[name] = value
  }
  const outcome = cond.evaluate(ctx.context, t.conditionContext)
  if (outcome.kind === 'true') return { name: t.conditionName, inputs, result: 'true' }
  if (outcome.kind === 'false') return { name: t.conditionName, inputs, result: 'false' }
  return { name: t.conditionName, inputs, result: 'error', error: outcome.message }
}

// --- what the API shows ---------------------------------------------------------------------

/**
 * witnessTree keeps, of an allowed trace, only what granted it: the first allowed branch of a
 * union, every side of an intersection, the base of an exclusion plus its (false) subtrahend.
 */
export function witnessTree(n: TraceNode): TraceNode {
  const kids = n.children ?? []
  let keep: TraceNode[]
  switch (n.step) {
    case 'union':
    case 'direct':
    case 'tuple_to_userset': {
      const winner = kids.find((k) => k.allowed)
      keep = winner ? [winner] : []
      break
    }
    case 'exclusion':
      keep = kids.filter((k) => k.step !== 'skipped')
      return { ...n, children: keep.map((k, i) => (i === 0 ? witnessTree(k) : collapseDenied(k))) }
    default:
      keep = kids.filter((k) => k.allowed)
  }
  return keep.length ? { ...n, children: keep.map(witnessTree) } : stripChildren(n)
}

/** collapseDenied shows a denied subtree without the branches that were never evaluated. */
export function collapseDenied(n: TraceNode): TraceNode {
  const kids = (n.children ?? []).filter((k) => k.step !== 'skipped')
  return kids.length ? { ...n, children: kids.map(collapseDenied) } : stripChildren(n)
}

function stripChildren(n: TraceNode): TraceNode {
  const { children: _omit, ...rest } = n
  return rest
}

/**
 * witnessPath flattens a witness tree into the lines of its path, object first, e.g.
 * `document:d1#viewer`, `viewer from parent: document:d1#parent@folder:f3`, … Intersections
 * show each side in turn, indented by the side's position.
 */
export function witnessPath(n: TraceNode): string[] {
  const lines: string[] = []
  const visit = (node: TraceNode, prefix: string) => {
    const line = describe(node)
    // A direct tuple reads exactly like the subproblem it answers: say it once.
    if (line && lines[lines.length - 1] !== prefix + line) lines.push(prefix + line)
    const kids = node.children ?? []
    if (node.step === 'intersection' && kids.length > 1) {
      kids.forEach((k, i) => visit(k, `${prefix}[${i + 1}/${kids.length}] `))
    } else if (node.step === 'exclusion') {
      if (kids[0]) visit(kids[0], prefix)
      if (kids[1]) lines.push(`${prefix}${node.label}: false`)
    } else {
      for (const k of kids) visit(k, prefix)
    }
  }
  visit(n, '')
  return lines
}

function describe(n: TraceNode): string {
  const cond = n.condition
    ? ` [condition ${n.condition.name}(${JSON.stringify(n.condition.inputs)}) = ${n.condition.result}]`
    : ''
  switch (n.step) {
    case 'check':
      return n.label
    case 'tuple':
    case 'userset':
    case 'tupleset':
      return `${n.tuple ?? n.label}${cond}`
    case 'computed':
    case 'tuple_to_userset':
      return n.label
    case 'delegation':
      return n.label
    default:
      return n.reason && !n.children?.length ? `${n.label}: ${n.reason}` : ''
  }
}

/** witnessTuples lists the tuples of a witness tree, object first. */
function witnessTuples(n: TraceNode): string[] {
  const out: string[] = []
  const visit = (node: TraceNode) => {
    if (node.tuple && node.allowed) out.push(node.tuple)
    for (const k of node.children ?? []) visit(k)
  }
  visit(n)
  return out
}

/**
 * denialReasons lists, for a denied trace, each failed leaf with where it sits
 * (`document:d1#viewer › direct: no tuple`).
 */
export function denialReasons(n: TraceNode): string[] {
  const out: string[] = []
  const visit = (node: TraceNode, where: string) => {
    if (node.step === 'skipped') return
    const here = node.step === 'check' ? node.label : where
    const kids = node.children ?? []
    if (kids.length === 0) {
      const what = node.step === 'check' ? '' : `${node.step === 'tuple' || node.step === 'userset' || node.step === 'tupleset' ? node.tuple : node.label}: `
      const reason = node.condition && node.condition.result !== 'true'
        ? node.condition.result === 'error'
          ? `condition ${node.condition.name} could not be evaluated: ${node.condition.error}`
          : `condition ${node.condition.name} is false for ${JSON.stringify(node.condition.inputs)}`
        : (node.reason ?? (node.allowed ? 'true' : 'false'))
      if (!node.allowed || node.step === 'exclusion') out.push(`${here} › ${what}${reason}`.replace(' › : ', ' › '))
      return
    }
    if (node.step === 'exclusion') {
      const [base, subtract] = kids
      if (base && !base.allowed) visit(base, here)
      if (subtract && subtract.step !== 'skipped' && (subtract.allowed || subtract.step === 'cycle')) {
        const what = node.label.replace(/^but not /, '')
        const by = subtract.allowed ? witnessTuples(witnessTree(subtract)) : []
        const via = by.length ? ` (${by.join(', ')})` : subtract.allowed ? '' : ' (undecided: a cycle)'
        out.push(`${here} › excluded: ${what} holds${via}`)
      }
      return
    }
    if (node.step === 'intersection') {
      for (const k of kids) if (!k.allowed) visit(k, here)
      return
    }
    for (const k of kids) if (!k.allowed) visit(k, here)
  }
  visit(n, n.label)
  return out
}
