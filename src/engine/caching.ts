/**
 * CachingDispatcher shares subproblem answers across requests. Keys are
 * `<store>/<model>/<revision>/<subproblem>`, so a write (which moves the store to a new
 * revision) can never make a cached answer reachable for a request bound to the newer
 * revision: old entries simply stop being asked for and age out of the LRU.
 *
 * Which requests use it is decided when the request's context is built (service/evaluation.ts):
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
  ALLOWED,
  DENIED,
  NO_CYCLE,
  checkKey,
  type CheckDispatcher,
  type CheckRequest,
  type CheckResult,
  type Reachable,
} from './dispatch.ts'

/**
 * cacheScope is the part of every shared-cache key that binds an entry to a store, model and
 * revision, `01HX…/01HY…/42/`; a request's context carries it (`sharedCache.prefix`).
 */
export function cacheScope(storeId: string, modelId: string, revision: number): string {
  return `${storeId}/${modelId}/${revision}/`
}

/**
 * cacheKey is the shared-cache key of a subproblem's answer: its scope (cacheScope) and its name
 * in checkKey's form, `01HX…/01HY…/42/document:1#viewer@user:anne`. The one place a key is
 * built, for the dispatcher below and for the service's look-up of a whole check.
 */
export function cacheKey(scope: string, subproblem: string): string {
  return scope + subproblem
}

/** A cached answer, valid until `until` (ms; Infinity when nothing it read expires). */
interface Entry<T> {
  value: T
  until: number
}

/** dropPrefixed deletes the keys of `lru` that begin with `prefix` (a scan: for rare events, a deletion). */
export function dropPrefixed(lru: { keys(): Iterable<string>; delete(key: string): unknown }, prefix: string): void {
  const doomed: string[] = []
  for (const key of lru.keys()) if (key.startsWith(prefix)) doomed.push(key)
  for (const key of doomed) lru.delete(key)
}

/** CheckCache is the shared store of settled subproblem answers, with hit/miss counters. */
export class CheckCache {
  readonly #lru: LRUCache<string, Entry<CheckResult>>
  /** Userset closures (see userset-closure.ts); false records "too many to walk up". */
  readonly #closures: LRUCache<string, Entry<Reachable | false>>
  hits = 0
  misses = 0

  constructor(maxEntries: number) {
    this.#lru = new LRUCache({ max: Math.max(1, maxEntries) })
    // A closure holds up to a few thousand entries; bound them by total size, not count.
    this.#closures = new LRUCache({
      maxSize: Math.max(1000, maxEntries),
      sizeCalculation: (e) => 1 + (e.value ? e.value.levels.size : 0),
    })
  }

  #hit<T>(e: Entry<T> | undefined, now: number): Entry<T> | undefined {
    if (e === undefined || e.until <= now) {
      this.misses++
      return undefined
    }
    this.hits++
    return e
  }

  /** get returns a settled answer (with its witness), never one marked by a cycle or a trace. */
  get(key: string, now: number): Entry<CheckResult> | undefined {
    return this.#hit(this.#lru.get(key), now)
  }

  set(key: string, result: CheckResult, until: number): void {
    const value: CheckResult = result.witness
      ? { allowed: result.allowed, cycleAt: NO_CYCLE, witness: result.witness }
      : result.allowed
        ? ALLOWED
        : DENIED
    this.#lru.set(key, { value, until })
  }

  getClosure(key: string, now: number): Entry<Reachable | false> | undefined {
    return this.#hit(this.#closures.get(key), now)
  }

  setClosure(key: string, value: Reachable | false, until: number): void {
    this.#closures.set(key, { value, until })
  }

  get size(): number {
    return this.#lru.size
  }

  /** The most answers held (PEMBA_CHECK_CACHE_SIZE). */
  get capacity(): number {
    return this.#lru.max
  }

  /** The closures' size in the unit of their bound (one per closure and per level it holds). */
  get closureSize(): number {
    return this.#closures.calculatedSize
  }

  get closureCapacity(): number {
    return this.#closures.maxSize
  }

  clear(): void {
    this.#lru.clear()
    this.#closures.clear()
  }

  /** dropStore forgets every answer of one store (deleted): its keys begin with cacheScope's `<store>/`. */
  dropStore(storeId: string): void {
    dropPrefixed(this.#lru, `${storeId}/`)
    dropPrefixed(this.#closures, `${storeId}/`)
  }
}

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
    const key = cacheKey(policy.prefix, checkKey(req.objectType, req.objectId, req.relation, req.subject))
    const ctx = req.ctx
    if (policy.read) {
      const hit = this.#cache.get(key, ctx.now)
      if (hit !== undefined) {
        // What this request builds on the hit is valid no longer than the hit itself.
        if (hit.until < ctx.validUntil) ctx.validUntil = hit.until
        return hit.value
      }
    }
    const result = await this.#next.dispatchCheck(req)
    if (result.cycleAt === NO_CYCLE) this.#cache.set(key, result, ctx.validUntil)
    return result
  }
}
