/**
 * MemoizingDispatcher gives each request one answer per subproblem and cuts cycles. A
 * subproblem already on the current path (`group:a#member` → `group:b#member` →
 * `group:a#member`) answers false-with-cycle instead of recursing; a settled subproblem is
 * answered from the request memo. Cycle-tainted results are not memoised: the parent of the
 * cycle may still resolve them to true along another path.
 *
 * In-flight subproblems are shared only through the path-free memo of settled results, never by
 * awaiting another branch's promise: two sibling branches waiting on each other's unfinished
 * subproblems would deadlock.
 *
 * @module
 */
import {
  NO_CYCLE,
  checkKey,
  deniedByCycle,
  pathIndexOf,
  type CheckDispatcher,
  type CheckRequest,
  type CheckResult,
} from './dispatch.ts'

export class MemoizingDispatcher implements CheckDispatcher {
  readonly #next: CheckDispatcher

  constructor(next: CheckDispatcher) {
    this.#next = next
  }

  async dispatchCheck(req: CheckRequest): Promise<CheckResult> {
    const key = checkKey(req.objectType, req.objectId, req.relation, req.subject)
    const at = pathIndexOf(req.path, key)
    if (at !== -1) return deniedByCycle(at)
    const memo = req.ctx.memo
    const hit = memo.get(key)
    if (hit) return hit
    const index = req.path ? req.path.index + 1 : 0
    let result = await this.#next.dispatchCheck({ ...req, path: { key, index, parent: req.path } })
    // A cycle back to this very subproblem is resolved now that it is finished.
    if (result.cycleAt >= index && result.cycleAt !== NO_CYCLE) result = { allowed: result.allowed, cycleAt: NO_CYCLE }
    if (result.cycleAt === NO_CYCLE) memo.set(key, result)
    return result
  }
}
