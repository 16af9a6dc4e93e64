/**
 * Readiness (`GET /readyz`): whether this instance can answer queries now, as a load balancer or
 * Kubernetes asks before sending it traffic. Liveness (`/healthz`) only says the process
 * answers; readiness asks the parts a query needs:
 *
 * - `database`: the database answers a trivial statement within PEMBA_READY_TIMEOUT_MS;
 * - `migrations`: its schema has every migration of this version applied (checked when the
 *   database answers; a current schema is remembered for a few seconds, as it only changes
 *   forward, by `pemba migrate` or another replica);
 * - `tuple_index`: with PEMBA_TUPLE_INDEX_PRELOAD=on, the preload has finished.
 *
 * Each check is `ok` or the reason it fails; the whole answer never takes much longer than the
 * timeout, however the database misbehaves (a dropped packet, a pool waiting for a connection).
 *
 * @module
 */
import type { DatastoreHealth } from '../store/ports.ts'

export interface ReadinessOptions {
  datastore: Pick<DatastoreHealth, 'ping' | 'pendingMigrations'>
  /** PEMBA_READY_TIMEOUT_MS: the database's budget for the whole probe. */
  timeoutMs: number
  /**
   * The tuple index preload's state: undefined when no preload was asked for, else `ok` or why
   * it is not ready (`loading`).
   */
  tupleIndexPreload?: () => string
  /** How long a current schema is remembered (ms); default 10 s. */
  migrationsCacheMs?: number
  /** Monotonic ms, for the cache. */
  now?: () => number
  /**
   * The outage tracker's view (datastore-outage.ts): while the database is known to be down,
   * `/readyz` says so without asking it, and `/healthz` answers NOT_SERVING.
   */
  outage?: () => { down: boolean; cause?: string }
}

export interface ReadinessReport {
  ready: boolean
  /** Each component's state: `ok`, or why it is not ready. */
  checks: Record<string, string>
}

const OK = 'ok'

export class ReadinessService {
  readonly #o: ReadinessOptions
  readonly #now: () => number
  /** Until when (ms) the schema is known to be current. */
  #schemaCurrentUntil = -Infinity

  constructor(options: ReadinessOptions) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
  }

  /**
   * serving: what `/healthz` says. The process answers, and the database is not known to be
   * down: read from the outage tracker, never a database round trip per probe.
   */
  serving(): boolean {
    return !(this.#o.outage?.().down ?? false)
  }

  /** check asks every component; `ready` when all are `ok`. */
  async check(): Promise<ReadinessReport> {
    const checks: Record<string, string> = {}
    const deadline = this.#now() + this.#o.timeoutMs
    const outage = this.#o.outage?.()
    if (outage?.down) {
      // Known down: the tracker probes it in the background; asking again would only wait.
      checks.database = `unavailable: ${outage.cause ?? 'the database does not answer'}`
    } else try {
      await withDeadline(this.#o.datastore.ping(), this.#o.timeoutMs)
      checks.database = OK
    } catch (e) {
      checks.database = `unreachable: ${reason(e)}`
    }
    if (checks.database === OK) checks.migrations = await this.#migrations(deadline)
    if (this.#o.tupleIndexPreload) checks.tuple_index = this.#o.tupleIndexPreload()
    return { ready: Object.values(checks).every((c) => c === OK), checks }
  }

  async #migrations(deadline: number): Promise<string> {
    if (this.#now() < this.#schemaCurrentUntil) return OK
    try {
      const pending = await withDeadline(this.#o.datastore.pendingMigrations(), Math.max(1, deadline - this.#now()))
      if (pending.length > 0) {
        return `${pending.length} pending migration(s) (${pending.join(', ')}): run 'pemba migrate'`
      }
      this.#schemaCurrentUntil = this.#now() + (this.#o.migrationsCacheMs ?? 10_000)
      return OK
    } catch (e) {
      return `cannot be read: ${reason(e)}`
    }
  }
}

/**
 * reason: an error's message on one line (the HTTP layer redacts it). A refused connection to a
 * name with several addresses is an AggregateError without a message: its first error's, or
 * its code, then.
 */
export function reason(e: unknown): string {
  const err = (e ?? {}) as { message?: unknown; code?: unknown; name?: unknown; errors?: unknown }
  const first = Array.isArray(err.errors) ? (err.errors[0] as { message?: unknown } | undefined) : undefined
  for (const candidate of [err.message, first?.message, err.code, err.name]) {
    const text = typeof candidate === 'string' ? candidate.replace(/\s+/g, ' ').trim() : ''
    if (text) return text
  }
  return String(e)
}

/** withDeadline settles as `p`, or rejects after `ms`. */
async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  p.catch(() => {})
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(ms)} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
