/**
 * Waiting for a SQLite file another process (or the decision-log writer thread) holds the write
 * lock of, without holding the event loop.
 *
 * better-sqlite3 is synchronous: SQLite's own busy_timeout waits inside the call, so a long one
 * stalls every request of the process (health probes included) for as long as the lock is held.
 * The server's connection therefore keeps a busy_timeout of a few milliseconds (a lock held
 * briefly is still waited out in place) and a statement or transaction that still meets
 * SQLITE_BUSY is tried again after a timer: backoff with full jitter, so writers of one file do
 * not retry in lockstep, until the lock-wait budget (5 s) is spent; then the last SQLITE_BUSY is
 * thrown, which the SQL core answers as a strain (503 with Retry-After, sql/unavailable.ts).
 *
 * Trying again is safe: a SQLITE_BUSY means the attempt changed nothing. An IMMEDIATE
 * transaction takes the write lock at BEGIN, so a BUSY there comes before the body runs; in WAL
 * mode a COMMIT needs no further lock (it does not wait for readers), and were it ever refused
 * better-sqlite3 rolls the open transaction back before it rethrows, so the next attempt starts
 * from the committed state. A single statement outside a transaction is its own transaction:
 * refused, it did nothing.
 *
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** How long SQLite itself waits (synchronously) before answering SQLITE_BUSY: short enough to go unnoticed. */
export const SERVING_BUSY_TIMEOUT_MS = 5

/** How long a statement or transaction waits in all for a locked file before it is refused (503). */
export const LOCK_WAIT_BUDGET_MS = 5000

/** The first retry's delay ceiling; it doubles up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 5
const MAX_BACKOFF_MS = 100

/** busy: the error is SQLite's "database is locked" (SQLITE_BUSY and its extended codes). */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY')
}

/**
 * retryWhileBusy runs `attempt` (synchronous, changing nothing when it throws SQLITE_BUSY) and,
 * while it throws SQLITE_BUSY and `budgetMs` is not spent, runs it again after a jittered,
 * growing delay. The first attempt runs at once, so an uncontended call costs one try/catch.
 */
export async function retryWhileBusy<T>(attempt: () => T, budgetMs: number = LOCK_WAIT_BUDGET_MS): Promise<T> {
  try {
    return attempt()
  } catch (e) {
    if (!isBusy(e) || budgetMs <= 0) throw e
  }
  const deadline = performance.now() + budgetMs
  for (let ceiling = FIRST_BACKOFF_MS; ; ceiling = Math.min(ceiling * 2, MAX_BACKOFF_MS)) {
    const left = deadline - performance.now()
    // Full jitter, never past the deadline: the last attempt is made when the budget ends.
    await sleep(Math.max(1, Math.min(left, Math.random() * ceiling)))
    try {
      return attempt()
    } catch (e) {
      if (!isBusy(e) || performance.now() >= deadline) throw e
    }
  }
}
