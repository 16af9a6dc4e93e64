/**
 * buildCheckDispatcher wires the decorator chain into a loop, cheapest first:
 * limits → memo/cycles → local evaluation → (back to limits for every subproblem).
 *
 * @module
 */
import type { CheckDispatcher } from './dispatch.ts'
import { LimitingDispatcher, type Limits } from './limits.ts'
import { LocalChecker } from './local-checker.ts'
import { MemoizingDispatcher } from './memoizing.ts'

export function buildCheckDispatcher(limits: Limits): CheckDispatcher {
  const local = new LocalChecker()
  const head = new LimitingDispatcher(new MemoizingDispatcher(local), limits)
  local.setDelegate(head)
  return head
}
