/**
 * The database outage tracker: one place that knows whether the database is down right now,
 * so that an outage is logged once and `/healthz` can say NOT_SERVING without a database round
 * trip per probe.
 *
 * - The first operation that fails with DatastoreUnavailable (the store reports each one,
 *   src/store/sql/unavailable.ts) starts an outage: one `warn` line `database unavailable` with
 *   the redacted cause. Later failures of the same outage log nothing; they are counted
 *   (`pemba_datastore_unavailable_total`).
 * - During an outage the tracker asks the database itself, with `probe` (a trivial statement),
 *   at most every `probeIntervalMs`, from an unref'd timer: the first answer ends the outage with
 *   one `info` line `database available again` and its duration. Requests never wait for it.
 *
 * @module
 */
import { DatastoreUnavailable } from '../core/errors.ts'
import { reason } from './readiness.ts'

/** The two log calls the tracker makes (pino's signature). */
export interface OutageLog {
  warn(fields: object, message: string): void
  info(fields: object, message: string): void
}

export interface OutageTrackerOptions {
  /** A trivial statement (the datastore's ping): resolves once the database answers again. */
  probe: () => Promise<void>
  log: OutageLog
  /** Hides secrets in the cause before it is logged (the configured redactor). */
  redact?: (text: string) => string
  /** Monotonic ms. Default performance.now. */
  now?: () => number
  /** Time between probes during an outage (ms). Default 1000. */
  probeIntervalMs?: number
}

/** What `/healthz`, `/readyz` and the metrics read. */
export interface OutageState {
  /** The database is known to be unavailable now. */
  down: boolean
  /** Why (the driver's reason, redacted), while down. */
  cause?: string
  /** Operations failed because the database was unavailable, since the process started. */
  unavailableTotal: number
  /** Outages seen since the process started. */
  outages: number
}

export class OutageTracker {
  readonly #o: OutageTrackerOptions
  readonly #now: () => number
  readonly #interval: number
  #downSince: number | undefined
  #cause: string | undefined
  #unavailableTotal = 0
  #outages = 0
  #timer: NodeJS.Timeout | undefined
  #probing = false
  #stopped = false

  constructor(options: OutageTrackerOptions) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
    this.#interval = options.probeIntervalMs ?? 1000
  }

  /** failed: an operation failed because the database is unavailable (`err` is why). */
  failed(err: unknown): void {
    this.#unavailableTotal++
    if (this.#downSince !== undefined || this.#stopped) return
    this.#downSince = this.#now()
    this.#outages++
    const cause = err instanceof DatastoreUnavailable && err.cause !== undefined ? err.cause : err
    const redact = this.#o.redact ?? ((t: string) => t)
    this.#cause = redact(reason(cause))
    const code = (cause as { code?: unknown } | null)?.code
    this.#o.log.warn(
      { event: 'datastore_unavailable', reason: this.#cause, ...(typeof code === 'string' ? { code } : {}) },
      `database unavailable: ${this.#cause}; requests answer 503 until it is back`,
    )
    this.#schedule()
  }

  get state(): OutageState {
    return {
      down: this.#downSince !== undefined,
      ...(this.#cause !== undefined && this.#downSince !== undefined ? { cause: this.#cause } : {}),
      unavailableTotal: this.#unavailableTotal,
      outages: this.#outages,
    }
  }

  /** stop ends the probes (Pemba.close()); an outage then stays as it is. */
  stop(): void {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #schedule(): void {
    if (this.#timer || this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#probeOnce()
    }, this.#interval)
    // The probes never keep the process alive on their own.
    this.#timer.unref()
  }

  async #probeOnce(): Promise<void> {
    if (this.#probing || this.#downSince === undefined) return
    this.#probing = true
    try {
      await this.#o.probe()
      this.#recovered()
    } catch {
      // Still down (the failure was counted as it was reported); ask again later.
      this.#schedule()
    } finally {
      this.#probing = false
    }
  }

  #recovered(): void {
    if (this.#downSince === undefined) return
    const durationMs = Math.round(this.#now() - this.#downSince)
    this.#downSince = undefined
    this.#cause = undefined
    this.#o.log.info(
      { event: 'datastore_available', outage_ms: durationMs },
      `database available again after ${(durationMs / 1000).toFixed(1)} s`,
    )
  }
}
