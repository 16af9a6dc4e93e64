/**
 * buildCheckDispatcher wires the decorator chain into a loop, cheapest first:
 * limits → cross-request cache → request memo/cycles → local evaluation → (back to limits for
 * every subproblem). The cross-request cache sits above the memo so that it only sees answers
 * whose cycles the memo has already resolved.
 *
 * @module
 */
import { CachingDispatcher, type CheckCache } from './caching.ts'
import type { CheckDispatcher } from './dispatch.ts'
import { LimitingDispatcher, type Limits } from './limits.ts'
import { LocalChecker } from './local-checker.ts'
import { MemoizingDispatcher } from './memoizing.ts'

export function buildCheckDispatcher(limits: Limits, cache?: CheckCache): CheckDispatcher {
  const local = new LocalChecker()
  const memo = new MemoizingDispatcher(local)
  const head = new LimitingDispatcher(cache ? new CachingDispatcher(memo, cache) : memo, limits)
  local.setDelegate(head)
  return head
}
