/**
 * LocalChecker evaluates one subproblem against the model's rewrite for the relation, handing
 * every recursive subproblem back to its delegate dispatcher (which is wrapped in memoisation,
 * cycle detection and the depth limit). The rewrite `switch` lives here and only here.
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import { subjectReferenceKey, type Rewrite, type UsersetClosure } from '../model/typesystem.ts'
import { ResolutionTooComplexError } from './limits.ts'
import { reachableUsersets } from './userset-closure.ts'
import { tupleConditionHolds } from './tuple-conditions.ts'
import {
  ALLOWED,
  DENIED,
  type CheckDispatcher,
  type CheckRequest,
  type CheckResult,
} from './dispatch.ts'
import { difference, intersection, union, type Branch } from './reducers.ts'

/** Past this many usersets containing the subject, walking down is the cheaper direction. */
const MAX_CLOSURE_NODES = 2000

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
      return ALLOWED
    }
    const rel = req.ctx.typesystem.relation(req.objectType, req.relation)
    if (!rel) return DENIED
    return this.rewrite(req, rel.rewrite)
  }

  private rewrite(req: CheckRequest, rw: Rewrite): Promise<CheckResult> {
    switch (rw.kind) {
      case 'this':
        return this.direct(req)
      case 'computed':
        // Same object, another relation: no extra depth, as OpenFGA counts it.
        return this.delegate.dispatchCheck({ ...req, relation: rw.relation })
      case 'ttu':
        return this.tupleToUserset(req, rw.tupleset, rw.computed)
      case 'union':
        return union(
          rw.children.map((c) => () => this.rewrite(req, c)),
          req.ctx.concurrency,
        )
      case 'intersection':
        return intersection(
          rw.children.map((c) => () => this.rewrite(req, c)),
          req.ctx.concurrency,
        )
      case 'difference':
        return difference(
          () => this.rewrite(req, rw.base),
          () => this.rewrite(req, rw.subtract),
        )
    }
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
    const subjectKey = subjectReferenceKey(subject)
    if (rel.admitted.has(subjectKey)) exact.push(subject)
    if (!subject.relation && subject.id !== '*' && rel.admitted.has(`${subject.type}:*`)) {
      exact.push({ type: subject.type, id: '*', relation: '' })
    }
    if (exact.length > 0) {
      branches.push(async () => {
        ctx.stats.reads++
        const tuples = await ctx.reader.readUsers(req.objectType, req.objectId, req.relation, exact)
        return union(
          tuples.filter((t) => ts.admits(t)).map((t) => async () => (tupleConditionHolds(ctx, t) ? ALLOWED : DENIED)),
          1,
        )
      })
    }

    const hasUsersetTypes = rel.directTypes.some((r) => r.relation)
    if (hasUsersetTypes) {
      branches.push(async () => {
        ctx.stats.reads++
        const tuples = await ctx.reader.readUsersets(req.objectType, req.objectId, req.relation)
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
          const family = ts.usersetClosure(list[0].userType, list[0].userRelation)
          perKind.push(family ? () => this.viaClosure(req, kind, family, list) : () => this.downward(req, list))
        }
        return union(perKind, 1)
      })
    }
    return union(branches, 1)
  }

  /** downward checks each userset tuple's userset for the subject, through the dispatcher. */
  private downward(req: CheckRequest, tuples: Tuple[]): Promise<CheckResult> {
    const { ctx, subject } = req
    return union(
      tuples.map((t) => () =>
        this.conditioned(t, req, () =>
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
      ctx.concurrency,
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
    const reach = await reachableUsersets(ctx, kind, family, req.subject, ctx.maxDepth, MAX_CLOSURE_NODES)
    if (!reach) return this.downward(req, tuples)
    const branches: Branch[] = []
    const unresolved: Tuple[] = []
    for (const t of tuples) {
      const level = reach.levels.get(`${t.userType}:${t.userId}#${t.userRelation}`)
      if (level === undefined) {
        // Past the depth limit the walk up proves nothing; walking down reports the limit.
        if (reach.truncated) unresolved.push(t)
        continue
      }
      if (req.depth + 1 + level >= ctx.maxDepth) {
        branches.push(() => Promise.reject(new ResolutionTooComplexError()))
      } else {
        branches.push(() => this.conditioned(t, req, () => Promise.resolve(ALLOWED)))
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
    ctx.stats.reads++
    const tuples = await ctx.reader.readObjectRelation(req.objectType, req.objectId, tupleset)
    const branches: Branch[] = []
    for (const t of tuples) {
      if (!ts.admits(t) || t.userRelation || t.userId === '*') continue
      if (!ts.relation(t.userType, computed)) continue
      branches.push(() =>
        this.conditioned(t, req, () =>
          this.delegate.dispatchCheck({
            objectType: t.userType,
            objectId: t.userId,
            relation: computed,
            subject: req.subject,
            depth: req.depth + 1,
            path: req.path,
            ctx,
          }),
        ),
      )
    }
    return union(branches, ctx.concurrency)
  }

  /**
   * conditioned combines a tuple's condition with the subproblem it leads to: both must hold.
   * A condition that cannot be evaluated only fails the branch if the subproblem is true.
   */
  private async conditioned(t: Tuple, req: CheckRequest, next: Branch): Promise<CheckResult> {
    if (!t.conditionName) return next()
    let holds: boolean
    try {
      holds = tupleConditionHolds(req.ctx, t)
    } catch (e) {
      const r = await next()
      if (!r.allowed) return r
      throw e
    }
    return holds ? next() : DENIED
  }
}

function isSubject(t: Tuple, s: Subject): boolean {
  return t.userType === s.type && t.userId === s.id && t.userRelation === s.relation
}

