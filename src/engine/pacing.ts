/**
 * Long queries give the event loop back. With the tuple index, every read a query makes is
 * answered from memory, so a list-objects over ~10k results, or a check whose tupleset fans out
 * to 20k parents, would otherwise run as one unbroken chain of microtasks: no other request,
 * health probe or timer could run meanwhile.
 *
 * Every query carries a slice (`ctx.slice`): lists, searches, expansions and reach a short one
 * (PEMBA_LIST_SLICE_MS), checks a longer one (CHECK_SLICE_MS), since a check that needs it is
 * rare and its pauses would only add latency. The slice bounds how long *the event loop* has been
 * held, not how long this query has run: one `Pacer` per process is shared by every query, so
 * with k queries paused at once, one resumes per turn for one slice and the others wait for later
 * turns (round robin). A turn therefore lasts about one slice plus one step of work (64
 * dispatches, a candidate, a read), rather than k slices.
 *
 * At their loops' natural steps (a candidate confirmed, a node walked, every 64 dispatches) the
 * queries ask `sliceSpent` (one clock read) and, once it is, `yieldTurn` (a `setImmediate`:
 * pending I/O and other requests run first). After each turn, and regularly besides,
 * `stopReason` tells whether the deadline has passed or the client has gone away, so a paused
 * query stops rather than resumes.
 *
 * @module
 */
import type { ResolutionContext, Slice } from './dispatch.ts'

/** The default list slice: long enough that the pauses cost nothing measurable, short enough for a 100 ms probe. */
export const LIST_SLICE_MS = 5

/**
 * The check slice: a check passes it only when it fans out widely (a document in thousands of
 * folders); its deadline is its real bound, the slice keeps the server answering meanwhile.
 */
export const CHECK_SLICE_MS = 20

/**
 * Pacer measures how long the event loop has been held by paced work since it last went round,
 * and queues the paused queries. The first query to ask in a turn marks the turn's start (and
 * may run: every turn makes progress); every query asking before the turn ends measures from the
 * same start. Paused queries resume in FIFO order, one per turn: the one that ran goes to the
 * back; those that were not let run keep their place, so none starves.
 */
export class Pacer {
  #heldSince = 0
  #turnOpen = false
  /** Queries that found the turn spent on resuming: first in the next turn, in their order. */
  #again: (() => void)[] = []
  /** Queries that ran their slice: after those. */
  #paused: (() => void)[] = []
  #scheduled = false
  /** Whether a paused query has resumed since the queue was last released: it runs; the others wait. */
  #resumed = false
  readonly #endTurn = (): void => {
    this.#turnOpen = false
  }
  readonly #resume = (): void => {
    this.#scheduled = false
    this.#turnOpen = false
    this.#resumed = false
    const batch = this.#again.length ? this.#again.concat(this.#paused) : this.#paused
    this.#again = []
    this.#paused = []
    for (const resolve of batch) resolve()
  }

  /** A slice of `ms` on this pacer, for one query. */
  slice(ms: number): Slice {
    return { pacer: this, ms }
  }

  /** spent: has the loop been held for `slice.ms` since it last went round? */
  spent(slice: Slice): boolean {
    const now = performance.now()
    if (!this.#turnOpen) {
      this.#turnOpen = true
      this.#heldSince = now
      setImmediate(this.#endTurn)
      return false
    }
    return now - this.#heldSince >= slice.ms
  }

  /**
   * claim: may this just-resumed query run now? Only the first of a released queue does, with a
   * fresh slice; the others wait for a later turn, keeping their place. (Were they all let go,
   * each would do one step before any found the turn spent, and a step can be a large read.)
   */
  claim(): boolean {
    if (this.#resumed) return false
    this.#resumed = true
    this.#heldSince = performance.now()
    if (!this.#turnOpen) {
      this.#turnOpen = true
      setImmediate(this.#endTurn)
    }
    return true
  }

  /** wait: resume in a later turn (`again`: keep this query's place in the queue). */
  wait(again: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      ;(again ? this.#again : this.#paused).push(resolve)
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(this.#resume)
      }
    })
  }
}

/** sliceSpent: should this query give the event loop back now? */
export function sliceSpent(ctx: ResolutionContext): boolean {
  const s = ctx.slice
  return s !== undefined && s.pacer.spent(s)
}

/**
 * yieldTurn gives the event loop back until the query's turn comes (pending I/O and other
 * requests run first); it returns once the query may run, or must stop (stopReason).
 */
export async function yieldTurn(ctx: ResolutionContext): Promise<void> {
  const s = ctx.slice
  if (!s) return new Promise<void>((resolve) => setImmediate(resolve))
  await s.pacer.wait(false)
  while (!s.pacer.claim() && !stopReason(ctx)) await s.pacer.wait(true)
}

/** stopReason: why the query must stop now (its client went away, its deadline passed), or undefined. */
export function stopReason(ctx: ResolutionContext): 'cancelled' | 'deadline' | undefined {
  if (ctx.signal?.aborted) return 'cancelled'
  if (ctx.deadline && Date.now() > ctx.deadline) return 'deadline'
  return undefined
}
