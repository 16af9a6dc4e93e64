/**
 * LocalChecker evaluates one subproblem against the model's rewrite for the relation, handing
 * every recursive subproblem back to its delegate dispatcher (which is wrapped in memoisation,
 * cycle detection and the depth limit). The rewrite `switch` lives here and only here.
 *
 * Every allowed answer carries its witness (the tuples that granted it). In an explained
 * request (`ctx.explain`) every step also returns a trace node (see explain.ts); outside one,
 * the tracing costs one property read per step.
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import type { Rewrite, UsersetClosure } from '../model/typesystem.ts'
import { ResolutionTooComplexError, stopIfDue } from './limits.ts'
import { sliceSpent, yieldTurn } from './pacing.ts'
import { precomputedReach, reachableUsersets, witnessChain } from './userset-closure.ts'
import { tupleConditionHolds } from './tuple-conditions.ts'
import {
  ALLOWED,
  DENIED,
  allowedBy,
  type CheckDispatcher,
  type CheckRequest,
  type CheckResult,
  type ResolutionContext,
} from './dispatch.ts'
import {
  SKIPPED,
  conditionTrace,
  errorTrace,
  subproblemLabel,
  traceOf,
  tupleLabel,
  withTrace,
} from './explain.ts'
import type { TraceNode, TraceStep } from './trace.ts'
import { difference, intersection, union, unionOver, type Branch } from './reducers.ts'

/** Past this many usersets containing the subject, walking down is the cheaper direction. */
const MAX_CLOSURE_NODES = 2000

type Reducer = (branches: Branch[], concurrency: number) => Promise<CheckResult>

export class LocalChecker implements CheckDispatcher {
  #delegate: CheckDispatcher | undefined

  /** setDelegate closes the loop: subproblems go to the head of the decorator chain. */
  setDelegate(d: CheckDispatcher): void {
    this.#delegate = d
  }

  get delegate(): CheckDispatcher {
    if (!this.#delegate) throw new Error('pemba bug: LocalChecker has no delegate')
    return this.#delegate
  }

  async dispatchCheck(req: CheckRequest): Promise<CheckResult> {
    const { subject } = req
    // A userset is always a member of itself: `document:1#viewer` is a viewer of document:1.
    if (
      subject.relation === req.relation &&
      subject.type === req.objectType &&
      subject.id === req.objectId
    ) {
      return req.ctx.explain ? withTrace(ALLOWED, checkNode(req, true, [], 'a userset is a member of itself')) : ALLOWED
    }
    const rel = req.ctx.typesystem.relation(req.objectType, req.relation)
    if (!rel) {
      return req.ctx.explain ? withTrace(DENIED, checkNode(req, false, [], 'the relation is not defined')) : DENIED
    }
    const r = await this.rewrite(req, rel.rewrite)
    return req.ctx.explain ? withTrace(r, checkNode(req, r.allowed, [traceOf(r)])) : r
  }

  private rewrite(req: CheckRequest, rw: Rewrite): Promise<CheckResult> {
    switch (rw.kind) {
      case 'this':
        return this.direct(req)
      case 'computed': {
        if (!req.ctx.explain && req.ctx.typesystem.relation(req.objectType, rw.relation)?.rewrite.kind === 'this') {
          // `viewer` in `view: viewer or owner`, where viewer is only direct tuples: evaluated
          // here rather than dispatched. Its own recursion (through userset tuples) still goes
          // through the dispatcher, so cycles and limits are seen there; what is saved is the
          // memo and limit bookkeeping of a step that reads two lists.
          const direct = { ...req, relation: rw.relation }
          return isSelf(req.subject, direct) ? Promise.resolve(ALLOWED) : this.direct(direct)
        }
        // Same object, another relation: no extra depth, as OpenFGA counts it.
        const r = this.delegate.dispatchCheck({ ...req, relation: rw.relation })
        return req.ctx.explain ? wrapTrace(r, 'computed', `computed from ${rw.relation}`) : r
      }
      case 'ttu':
        return this.tupleToUserset(req, rw.tupleset, rw.computed)
      case 'union':
        if (!req.ctx.explain && req.ctx.concurrency <= 1) return unionOver(rw.children, (c) => this.rewrite(req, c))
        return this.combine(req, 'union', 'union', union, rw.children.map((c) => () => this.rewrite(req, c)))
      case 'intersection':
        return this.combine(req, 'intersection', 'intersection', intersection, rw.children.map((c) => () => this.rewrite(req, c)))
      case 'difference': {
        const base = () => this.rewrite(req, rw.base)
        const subtract = () => this.rewrite(req, rw.subtract)
        if (!req.ctx.explain) return difference(base, subtract)
        return this.combine(req, 'exclusion', `but not ${describeRewrite(rw.subtract)}`, (bs) => difference(bs[0], bs[1]), [base, subtract])
      }
    }
  }

  /**
   * combine applies a set operator to branches. In an explained request it also records each
   * branch's trace (a branch the operator never started shows as skipped).
   */
  private async combine(req: CheckRequest, step: TraceStep, label: string, reduce: Reducer, branches: Branch[], concurrency = req.ctx.concurrency): Promise<CheckResult> {
    if (!req.ctx.explain) return reduce(branches, concurrency)
    const traces: TraceNode[] = branches.map(() => SKIPPED)
    const traced = branches.map((b, i) => async () => {
      try {
        const r = await b()
        traces[i] = traceOf(r)
        return r
      } catch (e) {
        traces[i] = errorTrace(e)
        throw e
      }
    })
    const r = await reduce(traced, concurrency)
    return withTrace(r, { step, allowed: r.allowed, label, children: flattenGroups(traces) })
  }

  /**
   * direct resolves `this`: a tuple naming the subject itself (or its type's wildcard), or a
   * userset tuple whose members include the subject, e.g. `document:1#viewer@group:eng#member`
   * with `group:eng#member@user:anne`.
   */
  private async direct(req: CheckRequest): Promise<CheckResult> {
    const { ctx, subject } = req
    const ts = ctx.typesystem
    const rel = ts.relation(req.objectType, req.relation)!
    const branches: Branch[] = []

    const exact: Subject[] = []
    const admittedKinds = rel.admittedByUser.get(subject.type)
    if (admittedKinds?.has(subject.id === '*' ? '*' : subject.relation)) exact.push(subject)
    if (!subject.relation && subject.id !== '*' && admittedKinds?.has('*')) {
      exact.push({ type: subject.type, id: '*', relation: '' })
    }
    const hasUsersetTypes = rel.directTypes.some((r) => r.relation)
    /** Set (explaining) when no tuple names the subject: its empty group leaves no trace node. */
    let noDirectTuple = false
    if (exact.length > 0) {
      branches.push(async () => {
        if (sliceSpent(ctx)) await pause(ctx)
        ctx.stats.reads++
        const im = ctx.reader.immediate
        const tuples = im
          ? im.readUsersNow(req.objectType, req.objectId, req.relation, exact)
          : await ctx.reader.readUsers(req.objectType, req.objectId, req.relation, exact)
        if (!ctx.explain) return firstHolding(ctx, tuples)
        const leaves = tuples.filter((t) => ts.admits(t)).map((t) => () => this.directTuple(req, t))
        noDirectTuple = leaves.length === 0
        return this.combine(req, 'union', '', union, leaves, 1)
      })
    }

    if (hasUsersetTypes) {
      branches.push(async () => {
        if (sliceSpent(ctx)) await pause(ctx)
        ctx.stats.reads++
        const im = ctx.reader.immediate
        const tuples = im
          ? im.readUsersetsNow(req.objectType, req.objectId, req.relation)
          : await ctx.reader.readUsersets(req.objectType, req.objectId, req.relation)
        if (tuples.length === 0 && !ctx.explain) return DENIED
        const byKind = new Map<string, Tuple[]>()
        for (const t of tuples) {
          if (!ts.admits(t) || isSubject(t, subject)) continue
          const kind = `${t.userType}#${t.userRelation}`
          const list = byKind.get(kind)
          if (list) list.push(t)
          else byKind.set(kind, [t])
        }
        const perKind: Branch[] = []
        for (const [kind, list] of byKind) {
          // An explanation walks down, so that it can show each userset that was looked into.
          const family = ctx.explain ? undefined : ts.usersetClosure(list[0].userType, list[0].userRelation)
          perKind.push(family ? () => this.viaClosure(req, kind, family, list) : () => this.downward(req, list))
        }
        return this.combine(req, 'union', '', union, perKind, 1)
      })
    }
    const r = await this.combine(req, 'direct', `direct: ${req.relation}`, union, branches, 1)
    if (r.trace && !r.allowed && !r.trace.children?.length) {
      r.trace.reason = `no tuple ${req.objectType}:${req.objectId}#${req.relation}@${describeSubjects(subject, exact, hasUsersetTypes)}`
    } else if (r.trace && !r.allowed && noDirectTuple) {
      // Beside the usersets tried, say that no tuple names the subject itself, too.
      const reason = `no tuple ${req.objectType}:${req.objectId}#${req.relation}@${describeSubjects(subject, exact, false)}`
      r.trace.children = [{ step: 'direct', allowed: false, label: r.trace.label, reason }, ...(r.trace.children ?? [])]
    }
    return r
  }

  /** directTuple: a tuple naming the subject grants if its condition (if any) holds. */
  private directTuple(req: CheckRequest, t: Tuple): Promise<CheckResult> {
    const { ctx } = req
    if (!ctx.explain) return Promise.resolve(tupleConditionHolds(ctx, t) ? allowedBy([t]) : DENIED)
    const condition = conditionTrace(ctx, t)
    const node = (allowed: boolean): TraceNode => ({ step: 'tuple', allowed, label: tupleLabel(t), tuple: tupleLabel(t), condition })
    try {
      // Throws the same error as the unexplained path when the condition cannot be evaluated.
      const holds = tupleConditionHolds(ctx, t)
      return Promise.resolve(withTrace(holds ? allowedBy([t]) : DENIED, node(holds)))
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** downward checks each userset tuple's userset for the subject, through the dispatcher. */
  private downward(req: CheckRequest, tuples: Tuple[]): Promise<CheckResult> {
    const { ctx, subject } = req
    return this.combine(
      req,
      'union',
      '',
      union,
      tuples.map((t) => () =>
        this.conditioned(t, req, 'userset', () =>
          this.delegate.dispatchCheck({
            objectType: t.userType,
            objectId: t.userId,
            relation: t.userRelation,
            subject,
            depth: req.depth + 1,
            path: req.path,
            ctx,
          }),
        ),
      ),
    )
  }

  /**
   * viaClosure decides userset tuples of one closure family (`group#member`) by walking up from
   * the subject once (see userset-closure.ts) and looking the usersets up in what it reached.
   * A userset reached only deeper than the depth limit allows is the same error the downward
   * walk would meet.
   */
  private async viaClosure(req: CheckRequest, kind: string, family: UsersetClosure, tuples: Tuple[]): Promise<CheckResult> {
    const { ctx } = req
    // The membership closure answers without a promise; the walk (or its memo) otherwise.
    const known = precomputedReach(ctx, family, req.subject, ctx.maxDepth, MAX_CLOSURE_NODES)
    const reach = known === undefined ? await reachableUsersets(ctx, kind, family, req.subject, ctx.maxDepth, MAX_CLOSURE_NODES) : known || undefined
    if (!reach) return this.downward(req, tuples)
    const branches: Branch[] = []
    const unresolved: Tuple[] = []
    for (const t of tuples) {
      const userset = `${t.userType}:${t.userId}#${t.userRelation}`
      const level = reach.levels.get(userset)
      if (level === undefined) {
        // Past the depth limit the walk up proves nothing; walking down reports the limit.
        if (reach.truncated) unresolved.push(t)
        continue
      }
      if (req.depth + 1 + level >= ctx.maxDepth) {
        branches.push(() => Promise.reject(new ResolutionTooComplexError()))
      } else {
        branches.push(() => this.conditioned(t, req, 'userset', () => Promise.resolve(allowedBy(witnessChain(reach, userset)))))
      }
    }
    if (unresolved.length) branches.push(() => this.downward(req, unresolved))
    return union(branches, 1)
  }

  /**
   * tupleToUserset resolves `computed from tupleset`, e.g. `viewer from parent`: for each
   * `document:1#parent@folder:f1`, is the subject a viewer of folder:f1?
   */
  private async tupleToUserset(req: CheckRequest, tupleset: string, computed: string): Promise<CheckResult> {
    const { ctx } = req
    const ts = ctx.typesystem
    // A fan-out starts only within the deadline (one clock read), and after a pause when the
    // loop has been held for the slice: its read and its subproblems can be many.
    if (sliceSpent(ctx)) await pause(ctx)
    else stopIfDue(ctx)
    ctx.stats.reads++
    const im = ctx.reader.immediate
    const tuples = im
      ? im.readObjectRelationNow(req.objectType, req.objectId, tupleset)
      : await ctx.reader.readObjectRelation(req.objectType, req.objectId, tupleset)
    if (!ctx.explain && ctx.concurrency <= 1) {
      return unionOver(tuples, (t) => {
        if (!ts.admits(t) || t.userRelation || t.userId === '*' || !ts.relation(t.userType, computed)) return Promise.resolve(DENIED)
        return this.conditioned(t, req, 'tupleset', () => this.#parentCheck(req, t, computed))
      })
    }
    const branches: Branch[] = []
    for (const t of tuples) {
      if (!ts.admits(t) || t.userRelation || t.userId === '*') continue
      if (!ts.relation(t.userType, computed)) continue
      branches.push(() => this.conditioned(t, req, 'tupleset', () => this.#parentCheck(req, t, computed)))
    }
    const r = await this.combine(req, 'tuple_to_userset', `${computed} from ${tupleset}`, union, branches)
    if (r.trace && !branches.length) r.trace.reason = `no ${req.objectType}:${req.objectId}#${tupleset} tuple leads to a ${computed}`
    return r
  }

  /** #parentCheck: is the subject `computed` of the tupleset tuple's user (`folder:f1#viewer`)? */
  #parentCheck(req: CheckRequest, t: Tuple, computed: string): Promise<CheckResult> {
    return this.delegate.dispatchCheck({
      objectType: t.userType,
      objectId: t.userId,
      relation: computed,
      subject: req.subject,
      depth: req.depth + 1,
      path: req.path,
      ctx: req.ctx,
    })
  }

  /**
   * conditioned combines a tuple's condition with the subproblem it leads to: both must hold.
   * A condition that cannot be evaluated only fails the branch if the subproblem is true. The
   * tuple joins the witness of an allowed answer, ahead of what it led to.
   */
  private async conditioned(t: Tuple, req: CheckRequest, step: TraceStep, next: Branch): Promise<CheckResult> {
    if (req.ctx.explain) return this.conditionedTraced(t, req, step, next)
    if (!t.conditionName) return prepend(t, await next())
    let holds: boolean
    try {
      holds = tupleConditionHolds(req.ctx, t)
    } catch (e) {
      const r = await next()
      if (!r.allowed) return r
      throw e
    }
    return holds ? prepend(t, await next()) : DENIED
  }

  private async conditionedTraced(t: Tuple, req: CheckRequest, step: TraceStep, next: Branch): Promise<CheckResult> {
    const condition = conditionTrace(req.ctx, t)
    const node = (allowed: boolean, children: TraceNode[]): TraceNode => ({
      step,
      allowed,
      label: tupleLabel(t),
      tuple: tupleLabel(t),
      condition,
      children,
    })
    if (condition?.result === 'false') return withTrace(DENIED, node(false, [SKIPPED]))
    const r = await next()
    // A condition that cannot be evaluated fails an allowed branch with the unexplained path's error.
    if (condition?.result === 'error' && r.allowed) tupleConditionHolds(req.ctx, t)
    return withTrace(prepend(t, r), node(r.allowed, [traceOf(r)]))
  }
}

/**
 * firstHolding: the first tuple naming the subject that the model admits and whose condition
 * holds grants; a condition that cannot be evaluated only matters when none holds.
 */
function firstHolding(ctx: CheckRequest['ctx'], tuples: Tuple[]): CheckResult {
  let failed = false
  let error: unknown
  for (const t of tuples) {
    if (!ctx.typesystem.admits(t)) continue
    try {
      if (tupleConditionHolds(ctx, t)) return allowedBy([t])
    } catch (e) {
      if (!failed) {
        failed = true
        error = e
      }
    }
  }
  if (failed) throw error
  return DENIED
}

function prepend(t: Tuple, r: CheckResult): CheckResult {
  if (!r.allowed) return r
  const w = r.witness ? [t, ...r.witness] : [t]
  return r.trace ? { ...allowedBy(w, r.cycleAt), trace: r.trace } : allowedBy(w, r.cycleAt)
}

function checkNode(req: CheckRequest, allowed: boolean, children: TraceNode[], reason?: string): TraceNode {
  const node: TraceNode = {
    step: 'check',
    allowed,
    label: subproblemLabel(req.objectType, req.objectId, req.relation, req.subject),
    children,
  }
  if (reason) node.reason = reason
  return node
}

async function wrapTrace(p: Promise<CheckResult>, step: TraceStep, label: string): Promise<CheckResult> {
  const r = await p
  return withTrace(r, { step, allowed: r.allowed, label, children: [traceOf(r)] })
}

/** flattenGroups lifts the children of unlabeled grouping unions into their parent. */
function flattenGroups(nodes: TraceNode[]): TraceNode[] {
  const out: TraceNode[] = []
  for (const n of nodes) {
    if (n.step === 'union' && n.label === '') out.push(...flattenGroups(n.children ?? []))
    else out.push(n)
  }
  return out
}

function describeRewrite(rw: Rewrite): string {
  switch (rw.kind) {
    case 'this':
      return 'direct'
    case 'computed':
      return rw.relation
    case 'ttu':
      return `${rw.computed} from ${rw.tupleset}`
    default:
      return `(${rw.kind})`
  }
}

function describeSubjects(subject: Subject, exact: Subject[], usersets: boolean): string {
  const names = exact.map((s) => (s.relation ? `${s.type}:${s.id}#${s.relation}` : `${s.type}:${s.id}`))
  if (usersets) names.push('<a userset containing it>')
  if (names.length === 0) {
    return `${subject.relation ? `${subject.type}:${subject.id}#${subject.relation}` : `${subject.type}:${subject.id}`} (its type is not allowed here)`
  }
  return names.join(' or ')
}

function isSubject(t: Tuple, s: Subject): boolean {
  return t.userType === s.type && t.userId === s.id && t.userRelation === s.relation
}

/** isSelf: the subject is the userset being asked about (`document:1#viewer` of document:1#viewer). */
function isSelf(s: Subject, req: { objectType: string; objectId: string; relation: string }): boolean {
  return s.relation === req.relation && s.type === req.objectType && s.id === req.objectId
}

/**
 * pause gives the event loop back before a read, once this request or others have held it for
 * the slice (pacing.ts): a read can be large (a document in 20k folders, read whole), and the
 * items of a batch reach their reads one after another in the same turn. Then it stops the
 * request if its deadline passed or its client left meanwhile.
 */
async function pause(ctx: ResolutionContext): Promise<void> {
  await yieldTurn(ctx)
  stopIfDue(ctx)
}
