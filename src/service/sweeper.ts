/**
 * Sweeper removes what has expired. Expired tuples already grant nothing (every reader filters
 * `expires_at > now`), so sweeping is housekeeping with one visible effect: each removed tuple
 * appears in the change feed as a TUPLE_OPERATION_DELETE, so a consumer mirroring the store
 * (`GET /changes`) sees `namespace:prod#deployer@service_account:ci` go away within one interval
 * of its expiry. It also marks access requests that nobody decided on in time as expired, and
 * removes AuthZEN search snapshots (paged searches' answers) whose page tokens have expired,
 * and purges the stores deleted longer ago than the retention period (PEMBA_DELETED_STORE_RETENTION):
 * every row they own, then the store row, and what grants on them may be left.
 *
 * Each run works in bounded batches (one transaction each), so a backlog never holds a lock
 * for long; several replicas may sweep the same database at once (the datastore makes that
 * safe). Runs are scheduled `intervalMs` apart, start to start.
 *
 * @module
 */
import type { StoreCatalog, TupleWriter } from '../store/ports.ts'
import type { AccessRequestStore } from './access-request-store.ts'
import type { SearchSnapshotStore } from './search-snapshot-store.ts'

export interface SweeperOptions {
  /** Where expired tuples are deleted and overdue access requests marked expired. */
  datastore: Pick<TupleWriter, 'sweepExpired'> &
    Pick<AccessRequestStore, 'expireAccessRequests'> &
    Pick<SearchSnapshotStore, 'deleteExpiredSearchSnapshots'> &
    Pick<StoreCatalog, 'purgeDeletedStores'>
  clock: () => Date
  /** How long a deleted store's data is kept (ms): stores deleted longer ago are purged. */
  deletedStoreRetentionMs: number
  /**
   * Called for each store being purged, once its rows are gone and before its store row goes:
   * removes what grants on it are left (idempotent). If it fails the store stays due, so the
   * next run calls it again.
   */
  onStorePurged?: (storeId: string) => Promise<void>
  /** Time between the starts of two runs; 0 or less: no timer (runOnce still works). */
  intervalMs: number
  /** Tuples (or access requests) per transaction. Default 1000. */
  batchSize?: number
  /** AuthZEN search snapshots per transaction: rows of up to megabytes each, so few. Default 50. */
  snapshotBatchSize?: number
  /** Where a failed run is reported; the next run tries again. */
  logError: (err: unknown) => void
}

export interface SweepResult {
  /** Expired tuples deleted (and recorded in the change feed). */
  tuples: number
  /** Pending access requests marked expired. */
  accessRequests: number
  /** Expired AuthZEN search snapshots deleted. */
  searchSnapshots: number
  /** Rows of deleted stores purged (their store rows included). */
  purgedRows: number
  /** The stores purged to the last row. */
  purgedStores: string[]
}

export class Sweeper {
  readonly #o: SweeperOptions
  readonly #batch: number
  readonly #snapshotBatch: number
  #timer: NodeJS.Timeout | undefined
  #running: Promise<SweepResult> | undefined
  #stopped = false

  constructor(options: SweeperOptions) {
    this.#o = options
    this.#batch = options.batchSize ?? 1000
    this.#snapshotBatch = options.snapshotBatchSize ?? 50
  }

  /** start schedules runs every `intervalMs` until stop(); a no-op when the interval is 0. */
  start(): void {
    if (this.#o.intervalMs <= 0 || this.#timer || this.#stopped) return
    this.#schedule(this.#o.intervalMs)
  }

  /**
   * runOnce sweeps everything expired at the clock's current time, batch after batch, and
   * resolves with what it removed. A call while a run is in flight waits for it and then runs
   * again, so the caller's own clock instant is always covered (tests advance a fake clock and
   * call this instead of waiting for the timer).
   */
  async runOnce(): Promise<SweepResult> {
    while (this.#running) await this.#running.catch(() => undefined)
    const run = this.#sweep()
    this.#running = run
    try {
      return await run
    } finally {
      if (this.#running === run) this.#running = undefined
    }
  }

  /** stop cancels the timer and waits for a run in flight (which stops between batches). */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#running?.catch(() => undefined)
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const started = Date.now()
      this.runOnce()
        .catch((err) => this.#o.logError(err))
        .finally(() => {
          if (!this.#stopped)
            this.#schedule(Math.max(0, this.#o.intervalMs - (Date.now() - started)))
        })
    }, delayMs)
    // The sweeper never keeps the process alive on its own.
    this.#timer.unref()
  }

  async #sweep(): Promise<SweepResult> {
    const now = this.#o.clock()
    const ds = this.#o.datastore
    const result: SweepResult = { tuples: 0, accessRequests: 0, searchSnapshots: 0, purgedRows: 0, purgedStores: [] }
    for (;;) {
      const n = await ds.sweepExpired(now, this.#batch)
      result.tuples += n
      if (n < this.#batch || this.#stopped) break
    }
    for (;;) {
      const n = await ds.expireAccessRequests(now, this.#batch)
      result.accessRequests += n
      if (n < this.#batch || this.#stopped) break
    }
    for (;;) {
      const n = await ds.deleteExpiredSearchSnapshots(now, this.#snapshotBatch)
      result.searchSnapshots += n
      if (n < this.#snapshotBatch || this.#stopped) break
    }
    const deletedBefore = new Date(now.getTime() - this.#o.deletedStoreRetentionMs)
    for (;;) {
      const { rows, stores } = await ds.purgeDeletedStores(deletedBefore, this.#batch, this.#o.onStorePurged)
      result.purgedRows += rows
      result.purgedStores.push(...stores)
      if (rows < this.#batch || this.#stopped) break
    }
    return result
  }
}
