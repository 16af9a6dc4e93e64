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
 *   at most every `probeIntervalMs`, from an unref'd timer. The outage ends, with one `info` line
 *   `database available again` and its duration, only when a probe answers *and* no operation
 *   reported a failure since the previous probe was scheduled: a trivial read can succeed while
 *   what failed still fails, and a request queued during the outage can fail just after it; either
 *   would otherwise end an outage and start a new one a moment later (a flapping `/healthz`).
 *   Requests never wait for the probe.
 * - A probe that does not settle within `probeTimeoutMs` counts as failed (a connection into a
 *   frozen server or a dropped network can hang for many minutes); the next one is scheduled.
 * - The probe's own failure is not counted as an operation that failed.
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
  /** How long a probe may take before it counts as failed (ms). Default 2000. */
  probeTimeoutMs?: number
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
  readonly #probeTimeout: number
  /** The failures reported while a probe runs: one of them may be the probe's own. */
  #duringProbe: unknown[] | undefined
  /** An operation failed since the last probe was scheduled: the next success does not end the outage. */
  #failedSinceSchedule = false
  #stopped = false

  constructor(options: OutageTrackerOptions) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
    this.#interval = options.probeIntervalMs ?? 1000
    this.#probeTimeout = options.probeTimeoutMs ?? 2000
  }

  /** failed: an operation failed because the database is unavailable (`err` is why). */
  failed(err: unknown): void {
    // Counted once the probe has settled, when it is known whether this was the probe's own.
    if (this.#duringProbe) return void this.#duringProbe.push(err)
    this.#unavailableTotal++
    this.#failedSinceSchedule = true
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
    this.#failedSinceSchedule = false
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#probeOnce()
    }, this.#interval)
    // The probes never keep the process alive on their own.
    this.#timer.unref()
  }

  async #probeOnce(): Promise<void> {
    if (this.#duringProbe || this.#downSince === undefined) return
    const during: unknown[] = []
    this.#duringProbe = during
    let deadline: NodeJS.Timeout | undefined
    let answered = false
    let probeError: unknown
    try {
      await Promise.race([
        this.#o.probe(),
        new Promise<never>((_, reject) => {
          deadline = setTimeout(() => reject(new Error('probe timed out')), this.#probeTimeout)
          deadline.unref()
        }),
      ])
      answered = true
    } catch (err) {
      probeError = err
    } finally {
      clearTimeout(deadline)
      this.#duringProbe = undefined
    }
    // Operations' failures meanwhile count (and keep the outage open); the probe's own does not.
    const others = during.filter((e) => e !== probeError)
    this.#unavailableTotal += others.length
    if (others.length > 0) this.#failedSinceSchedule = true
    if (answered && !this.#failedSinceSchedule) this.#recovered()
    // Still down, or something failed while the probe answered: ask again later.
    else this.#schedule()
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
