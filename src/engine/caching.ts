/**
 * CachingDispatcher shares subproblem answers across requests. Keys are
 * `<store>/<model>/<revision>/<subproblem>`, so a write (which moves the store to a new
 * revision) can never make a cached answer reachable for a request bound to the newer
 * revision: old entries simply stop being asked for and age out of the LRU.
 *
 * Which requests use it is decided when the request's context is built (see AuthzService):
 * - only requests without contextual tuples and without a request `context`, since an answer
 *   that depended on either must not be reused for another request;
 * - HIGHER_CONSISTENCY requests never read from it (they may fill it);
 * - answers that depend on an unfinished ancestor (cycles) are never stored, nor are errors.
 *
 * A cached answer may have been computed at a shallower depth than the one asking; it is the
 * same answer, so it is reused regardless (the depth limit bounds work, it does not change
 * truth).
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import {
  NO_CYCLE,
  checkKey,
  type CheckDispatcher,
  type CheckRequest,
  type CheckResult,
} from './dispatch.ts'
import type { Reachable } from './userset-closure.ts'

/** CheckCache is the shared store of settled subproblem answers, with hit/miss counters. */
export class CheckCache {
  readonly #lru: LRUCache<string, boolean>
  /** Userset closures (see userset-closure.ts); false records "too many to walk up". */
  readonly #closures: LRUCache<string, Reachable | false>
  hits = 0
  misses = 0

  constructor(maxEntries: number) {
    this.#lru = new LRUCache({ max: Math.max(1, maxEntries) })
    // A closure holds up to a few thousand entries; bound them by total size, not count.
    this.#closures = new LRUCache({
      maxSize: Math.max(1000, maxEntries),
      sizeCalculation: (v) => 1 + (v ? v.levels.size : 0),
    })
  }

  getClosure(key: string): Reachable | false | undefined {
    const v = this.#closures.get(key)
    if (v === undefined) this.misses++
    else this.hits++
    return v
  }

  setClosure(key: string, value: Reachable | false): void {
    this.#closures.set(key, value)
  }

  get(key: string): boolean | undefined {
    const v = this.#lru.get(key)
    if (v === undefined) this.misses++
    else this.hits++
    return v
  }

  set(key: string, allowed: boolean): void {
    this.#lru.set(key, allowed)
  }

  get size(): number {
    return this.#lru.size
  }

  clear(): void {
    this.#lru.clear()
    this.#closures.clear()
  }
}

const ALLOWED_CACHED: CheckResult = Object.freeze({ allowed: true, cycleAt: NO_CYCLE })
const DENIED_CACHED: CheckResult = Object.freeze({ allowed: false, cycleAt: NO_CYCLE })

export class CachingDispatcher implements CheckDispatcher {
  readonly #next: CheckDispatcher
  readonly #cache: CheckCache

  constructor(next: CheckDispatcher, cache: CheckCache) {
    this.#next = next
    this.#cache = cache
  }

  async dispatchCheck(req: CheckRequest): Promise<CheckResult> {
    const policy = req.ctx.sharedCache
    if (!policy) return this.#next.dispatchCheck(req)
    const key = policy.prefix + checkKey(req.objectType, req.objectId, req.relation, req.subject)
    if (policy.read) {
      const hit = this.#cache.get(key)
      if (hit !== undefined) return hit ? ALLOWED_CACHED : DENIED_CACHED
    }
    const result = await this.#next.dispatchCheck(req)
    if (result.cycleAt === NO_CYCLE) this.#cache.set(key, result.allowed)
    return result
  }
}
