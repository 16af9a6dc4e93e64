/**
 * Admission control for expensive queries (list-objects, streamed list-objects, list-users,
 * expand, the AuthZEN searches, access reviews, reach: the route table marks them). Their cost
 * grows with the data a subject reaches, so a flood of them could take every CPU cycle and
 * starve the cheap checks; this bounds how many run at once.
 *
 * - At most `maxConcurrent` run in the process, and at most `maxConcurrentPerClient` for one
 *   API client (its id when authentication is on, its peer address when it is off).
 * - One more waits in a FIFO queue of at most `queueMax` entries, for at most `queueWaitMs`;
 *   one client may hold at most half of the queue's entries (rounded up).
 *   A released slot goes to the oldest waiter whose client is under its own bound, so one
 *   client's backlog does not hold back another client queued behind it.
 * - A full queue refuses at once, a wait that runs out refuses then: `Overloaded`, 429
 *   `rate_limited` with `Retry-After`. A waiter whose client goes away (its AbortSignal) leaves
 *   the queue without taking a slot.
 *
 * Cheap requests never come here, so they never wait behind a list. The timers are injected
 * (`AdmissionTimers`), so the queue's waits are tested on a fake clock.
 *
 * @module
 */
import { Overloaded } from '../core/errors.ts'
import { RequestCancelledError } from '../engine/limits.ts'

export interface AdmissionTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const NODE_TIMERS: AdmissionTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

export interface AdmissionOptions {
  /** PEMBA_EXPENSIVE_MAX_CONCURRENT */
  maxConcurrent: number
  /** PEMBA_EXPENSIVE_MAX_CONCURRENT_PER_CLIENT */
  maxConcurrentPerClient: number
  /** PEMBA_EXPENSIVE_QUEUE_MAX (0: nothing waits, a query beyond the bounds is refused at once) */
  queueMax: number
  /** PEMBA_EXPENSIVE_QUEUE_WAIT_MS */
  queueWaitMs: number
  /** The seconds a refusal's `Retry-After` names; default 1. */
  retryAfterSeconds?: number
  timers?: AdmissionTimers
}

/** Why a query was refused: the queue was full, or its wait ran out. */
export type RefusalReason = 'queue_full' | 'queue_timeout'

export interface AdmissionStats {
  /** Expensive queries running now. */
  inFlight: number
  /** Expensive queries waiting for a slot. */
  queued: number
  /** Refusals since start, by reason. */
  refused: Record<RefusalReason, number>
}

/** A held slot: release it exactly once when the query's work (or its stream) is over. */
export interface AdmissionSlot {
  release(): void
}

interface Waiter {
  client: string
  grant: (slot: AdmissionSlot) => void
  timer: unknown
  onAbort?: () => void
  signal?: AbortSignal
}

export class Admission {
  readonly #o: Required<AdmissionOptions>
  #running = 0
  /** Running queries per client; a client with none has no entry (the map stays bounded). */
  readonly #perClient = new Map<string, number>()
  readonly #queue: Waiter[] = []
  /** Queued queries per client (entries deleted at 0): no client may hold more than half the queue. */
  readonly #queuedPerClient = new Map<string, number>()
  readonly #refused: Record<RefusalReason, number> = { queue_full: 0, queue_timeout: 0 }

  constructor(options: AdmissionOptions) {
    this.#o = { retryAfterSeconds: 1, timers: NODE_TIMERS, ...options }
  }

  /**
   * acquire resolves with a slot for `client`'s query, at once or after a wait in the queue;
   * it rejects with Overloaded when the queue is full or the wait runs out, and with
   * RequestCancelledError when the client goes away first.
   */
  acquire(client: string, signal?: AbortSignal): Promise<AdmissionSlot> {
    if (signal?.aborted) return Promise.reject(new RequestCancelledError())
    if (this.#hasRoom(client)) return Promise.resolve(this.#take(client))
    // One client may fill at most half the queue (rounded up), so that it cannot refuse every
    // other client's queries at once by keeping the queue full.
    const share = Math.ceil(this.#o.queueMax / 2)
    if (this.#queue.length >= this.#o.queueMax || (this.#queuedPerClient.get(client) ?? 0) >= share) {
      this.#refused.queue_full++
      return Promise.reject(
        new Overloaded(
          `too many expensive queries (list, expand, search, review) are running and waiting; try again later`,
          this.#o.retryAfterSeconds,
        ),
      )
    }
    return new Promise<AdmissionSlot>((resolve, reject) => {
      const waiter: Waiter = { client, grant: resolve, timer: undefined, signal }
      waiter.timer = this.#o.timers.setTimeout(() => {
        this.#leave(waiter)
        this.#refused.queue_timeout++
        reject(
          new Overloaded(
            `too many expensive queries (list, expand, search, review) are running: this one waited ${this.#o.queueWaitMs} ms for its turn; try again later`,
            this.#o.retryAfterSeconds,
          ),
        )
      }, this.#o.queueWaitMs)
      if (signal) {
        waiter.onAbort = () => {
          this.#leave(waiter)
          this.#o.timers.clearTimeout(waiter.timer)
          reject(new RequestCancelledError())
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      this.#queue.push(waiter)
      this.#queuedPerClient.set(client, (this.#queuedPerClient.get(client) ?? 0) + 1)
    })
  }

  stats(): AdmissionStats {
    return { inFlight: this.#running, queued: this.#queue.length, refused: { ...this.#refused } }
  }

  #hasRoom(client: string): boolean {
    return this.#running < this.#o.maxConcurrent && (this.#perClient.get(client) ?? 0) < this.#o.maxConcurrentPerClient
  }

  #take(client: string): AdmissionSlot {
    this.#running++
    this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.#running--
        const n = (this.#perClient.get(client) ?? 1) - 1
        if (n <= 0) this.#perClient.delete(client)
        else this.#perClient.set(client, n)
        this.#grantWaiting()
      },
    }
  }

  /** #grantWaiting hands free slots to the oldest waiters whose clients are under their bound. */
  #grantWaiting(): void {
    for (let i = 0; i < this.#queue.length && this.#running < this.#o.maxConcurrent; ) {
      const w = this.#queue[i]
      if (!this.#hasRoom(w.client)) {
        i++
        continue
      }
      this.#queue.splice(i, 1)
      this.#dequeued(w.client)
      this.#o.timers.clearTimeout(w.timer)
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort)
      w.grant(this.#take(w.client))
    }
  }

  #leave(w: Waiter): void {
    const i = this.#queue.indexOf(w)
    if (i >= 0) {
      this.#queue.splice(i, 1)
      this.#dequeued(w.client)
    }
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort)
  }

  #dequeued(client: string): void {
    const n = (this.#queuedPerClient.get(client) ?? 1) - 1
    if (n <= 0) this.#queuedPerClient.delete(client)
    else this.#queuedPerClient.set(client, n)
  }
}
