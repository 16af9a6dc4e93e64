/**
 * The optional per-client rate limit (PEMBA_RATE_LIMIT_PER_CLIENT, PEMBA_RATE_LIMIT_BURST): a
 * token bucket per API client (its id, or its peer address when authentication is off). A
 * bucket holds up to `burst` tokens, refills at `perSecond` tokens a second, and each request
 * takes one; a request that finds none is refused with `Overloaded` (429 `rate_limited`) and a
 * `Retry-After` of the seconds until a token is back.
 *
 * The buckets of the `maxClients` most recently seen clients are kept (an LRU map), so a flood
 * of distinct peer addresses cannot grow memory; a client whose bucket was dropped starts again
 * with a full one, which only ever errs towards letting a request through.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import { Overloaded } from '../core/errors.ts'

/** Buckets kept at most (about 100 bytes each). */
export const RATE_LIMIT_CLIENTS_MAX = 10_000

export interface RateLimitOptions {
  /** Tokens a second (> 0). */
  perSecond: number
  /** The bucket's size; 0 = one second's worth (at least 1). */
  burst: number
  /** Milliseconds, monotonic enough for refills (injected: tests use a fake clock). */
  now: () => number
  maxClients?: number
}

interface Bucket {
  tokens: number
  at: number
}

export class RateLimiter {
  readonly #perMs: number
  readonly #size: number
  readonly #now: () => number
  readonly #buckets: LRUCache<string, Bucket>
  #refused = 0

  constructor(o: RateLimitOptions) {
    this.#perMs = o.perSecond / 1000
    this.#size = o.burst > 0 ? o.burst : Math.max(1, Math.ceil(o.perSecond))
    this.#now = o.now
    this.#buckets = new LRUCache({ max: o.maxClients ?? RATE_LIMIT_CLIENTS_MAX })
  }

  /** take spends one of `client`'s tokens, or throws Overloaded when it has none. */
  take(client: string): void {
    const b = this.#bucket(client)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return
    }
    this.#refuse(b, `this client's request rate is over its limit (PEMBA_RATE_LIMIT_PER_CLIENT); try again later`)
  }

  /**
   * ensure throws Overloaded when `client` has no token left, without spending one; `spend`
   * then spends one if there is any. Failed authentication is charged so (after the fact) to
   * its peer address (src/api/admission.ts).
   */
  ensure(client: string, message: string): void {
    const b = this.#bucket(client)
    if (b.tokens < 1) this.#refuse(b, message)
  }

  /** spend takes one of `client`'s tokens if it has one; never throws. */
  spend(client: string): void {
    const b = this.#bucket(client)
    if (b.tokens >= 1) b.tokens -= 1
  }

  #bucket(client: string): Bucket {
    const now = this.#now()
    let b = this.#buckets.get(client)
    if (!b) {
      b = { tokens: this.#size, at: now }
      this.#buckets.set(client, b)
    } else {
      b.tokens = Math.min(this.#size, b.tokens + Math.max(0, now - b.at) * this.#perMs)
      b.at = now
    }
    return b
  }

  #refuse(b: Bucket, message: string): never {
    this.#refused++
    const waitSeconds = Math.max(1, Math.ceil((1 - b.tokens) / this.#perMs / 1000))
    throw new Overloaded(message, waitSeconds)
  }

  /** Requests refused since start, and buckets held. */
  stats(): { refused: number; clients: number } {
    return { refused: this.#refused, clients: this.#buckets.size }
  }
}
