/**
 * LocalChecker evaluates one subproblem against the model's rewrite for the relation, handing
 * every recursive subproblem back to its delegate dispatcher (which is wrapped in memoisation,
 * cycle detection and the depth limit). The rewrite `switch` lives here and only here.
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import type { Rewrite } from '../model/typesystem.ts'
import { tupleConditionHolds } from './tuple-conditions.ts'
import {
  ALLOWED,
  DENIED,
  type CheckDispatcher,
  type CheckRequest,
  type CheckResult,
} from './dispatch.ts'
import { difference, intersection, union, type Branch } from './reducers.ts'

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
    const subjectKey = subject.id === '*' ? `${subject.type}:*` : subject.relation ? `${subject.type}#${subject.relation}` : subject.type
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
        const usable = tuples.filter((t) => ts.admits(t) && !isSubject(t, subject))
        return union(
          usable.map((t) => () =>
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
      })
    }
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

