/**
 * MemoizingDispatcher gives each request one answer per subproblem and cuts cycles.
 *
 * - A subproblem already on the current path (`group:a#member` → `group:b#member` →
 *   `group:a#member`) answers false, marked with the index of the ancestor it ran into, instead
 *   of recursing. Answers that depend on an unfinished ancestor are not memoised: the ancestor
 *   may still turn out true along another path. Once the ancestor itself finishes, the cycle is
 *   resolved and its answer is definite.
 * - A settled subproblem is answered from the request memo.
 * - A subproblem being computed by a sibling branch is shared as a promise, unless waiting on
 *   it could close a circle of waits (the sibling, directly or through others it waits on, is
 *   waiting on something on our path): then it is computed again on this path, where the cycle
 *   is seen and cut. Every wait is recorded in a waits-for graph for exactly that test.
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
  type InFlight,
  type PathNode,
} from './dispatch.ts'

function addWait(entry: InFlight | undefined, key: string): void {
  if (entry) entry.waitingOn.set(key, (entry.waitingOn.get(key) ?? 0) + 1)
}

function removeWait(entry: InFlight | undefined, key: string): void {
  if (!entry) return
  const n = (entry.waitingOn.get(key) ?? 1) - 1
  if (n <= 0) entry.waitingOn.delete(key)
  else entry.waitingOn.set(key, n)
}

export class MemoizingDispatcher implements CheckDispatcher {
  readonly #next: CheckDispatcher

  constructor(next: CheckDispatcher) {
    this.#next = next
  }

  async dispatchCheck(req: CheckRequest): Promise<CheckResult> {
    const key = checkKey(req.objectType, req.objectId, req.relation, req.subject)
    const at = pathIndexOf(req.path, key)
    if (at !== -1) return deniedByCycle(at)
    const { memo, inflight } = req.ctx
    const hit = memo.get(key)
    if (hit) return hit

    const parent = req.path ? inflight.get(req.path.key) : undefined
    const running = inflight.get(key)
    if (running && !waitWouldDeadlock(inflight, key, req.path)) {
      addWait(parent, key)
      try {
        const shared = await running.promise
        // The sharer's path differs from ours; a cycle-marked answer is only meaningful there.
        if (shared.cycleAt === NO_CYCLE) return shared
      } finally {
        removeWait(parent, key)
      }
    }

    const index = req.path ? req.path.index + 1 : 0
    const entry: InFlight = { promise: undefined as unknown as Promise<CheckResult>, waitingOn: new Map() }
    entry.promise = this.#next.dispatchCheck({ ...req, path: { key, index, parent: req.path } })
    const owner = !running
    if (owner) inflight.set(key, entry)
    addWait(parent, key)
    let result: CheckResult
    try {
      result = await entry.promise
    } finally {
      removeWait(parent, key)
      if (owner) inflight.delete(key)
    }
    // A cycle back to this very subproblem is resolved now that it is finished.
    if (result.cycleAt !== NO_CYCLE && result.cycleAt >= index) result = { ...result, cycleAt: NO_CYCLE }
    if (result.cycleAt === NO_CYCLE) memo.set(key, result)
    return result
  }
}

/**
 * waitWouldDeadlock tells whether the in-flight subproblem `key` is, directly or through
 * what it waits on, waiting on a subproblem on `path` (which is waiting, through our branch,
 * on whatever we are about to wait for).
 */
function waitWouldDeadlock(inflight: Map<string, InFlight>, key: string, path: PathNode | undefined): boolean {
  if (!path) return false
  const onPath = new Set<string>()
  for (let p: PathNode | undefined = path; p; p = p.parent) onPath.add(p.key)
  const seen = new Set<string>([key])
  const stack = [key]
  while (stack.length) {
    const k = stack.pop()!
    if (onPath.has(k)) return true
    for (const next of inflight.get(k)?.waitingOn.keys() ?? []) {
      if (!seen.has(next)) {
        seen.add(next)
        stack.push(next)
      }
    }
  }
  return false
}
