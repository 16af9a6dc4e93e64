/**
 * Long queries give the event loop back. With the tuple index, every read a list makes is
 * answered from memory, so a list-objects over ~10k results would otherwise run ~0.4 s as one
 * unbroken chain of microtasks: no other request, health probe or timer could run meanwhile.
 * A list (list-objects, list-users, the searches built on them, reach) and an expansion carry
 * a time slice in their context; at their loops' natural steps (a candidate confirmed, a node
 * walked, a batch of dispatches) they ask `sliceSpent` (one clock read) and, once the slice is
 * spent, `yieldTurn` (a `setImmediate`: pending I/O and other requests run first). After each
 * turn, and regularly besides, `stopReason` tells whether the deadline has passed or the
 * client has gone away, so a paused query stops rather than resumes.
 *
 * @module
 */
import type { ResolutionContext } from './dispatch.ts'

/** The default slice: long enough that the pauses cost nothing measurable, short enough for a 100 ms probe. */
export const LIST_SLICE_MS = 5

/** sliceSpent: has this query held the event loop for its whole slice? */
export function sliceSpent(ctx: ResolutionContext): boolean {
  return ctx.slice !== undefined && performance.now() >= ctx.slice.until
}

/** yieldTurn gives the event loop back until its next check phase, then starts a new slice. */
export async function yieldTurn(ctx: ResolutionContext): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve))
  if (ctx.slice) ctx.slice.until = performance.now() + ctx.slice.ms
}

/** stopReason: why the query must stop now (its client went away, its deadline passed), or undefined. */
export function stopReason(ctx: ResolutionContext): 'cancelled' | 'deadline' | undefined {
  if (ctx.signal?.aborted) return 'cancelled'
  if (ctx.deadline && Date.now() > ctx.deadline) return 'deadline'
  return undefined
}
