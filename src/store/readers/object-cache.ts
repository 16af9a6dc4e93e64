/**
 * The tuple cache shared across requests (OpenFGA calls its equivalent the check iterator
 * cache): whole small objects, as `readObject` returns them, keyed by store, revision and
 * object (`<store>/<revision>/document:d1`). A write moves the store to a new revision, so an
 * entry is never asked for again once anything in its store has changed; entries age out of
 * the LRU, which is bounded by the number of tuples it holds.
 *
 * Tuples are kept with their expiry and filtered again by the reading request's clock, so a
 * cached tuple stops counting at the instant it expires, as a read from the database would.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { TupleReader } from '../ports.ts'

export class ObjectCache {
  readonly #lru: LRUCache<string, Tuple[] | false>
  hits = 0
  misses = 0

  constructor(maxTuples: number) {
    this.#lru = new LRUCache({ maxSize: Math.max(1, maxTuples), sizeCalculation: (v) => (v ? v.length + 1 : 1) })
  }

  get(key: string): Tuple[] | false | undefined {
    const v = this.#lru.get(key)
    if (v === undefined) this.misses++
    else this.hits++
    return v
  }

  set(key: string, tuples: Tuple[] | false): void {
    this.#lru.set(key, tuples)
  }

  get size(): number {
    return this.#lru.size
  }

  /** The tuples held (each object's list counts its tuples and one), the unit of the bound. */
  get tuples(): number {
    return this.#lru.calculatedSize
  }

  /** The most tuples held (PEMBA_TUPLE_CACHE_SIZE). */
  get capacity(): number {
    return this.#lru.maxSize
  }

  /** dropStore forgets one store's objects (deleted): keys begin with `<store>/`. */
  dropStore(storeId: string): void {
    const doomed: string[] = []
    for (const key of this.#lru.keys()) if (key.startsWith(`${storeId}/`)) doomed.push(key)
    for (const key of doomed) this.#lru.delete(key)
  }
}

/**
 * CachedObjectReader answers `readObject` from the shared cache when it may; every other read
 * goes to the reader underneath. The base reader must not filter by expiry differently from
 * `now` here (both use the request's clock).
 */
export class CachedObjectReader implements TupleReader {
  readonly #base: TupleReader
  readonly #cache: ObjectCache
  readonly #prefix: string
  readonly #read: boolean
  readonly #now: number

  constructor(base: TupleReader, cache: ObjectCache, options: { prefix: string; read: boolean; now: number }) {
    this.#base = base
    this.#cache = cache
    this.#prefix = options.prefix
    this.#read = options.read
    this.#now = options.now
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const key = `${this.#prefix}${limit}/${objectType}:${objectId}`
    if (this.#read) {
      const hit = this.#cache.get(key)
      if (hit === false) return undefined
      if (hit) return hit.some((t) => t.expiresAt !== undefined) ? hit.filter((t) => t.expiresAt === undefined || t.expiresAt > this.#now) : hit
    }
    const tuples = await this.#base.readObject(objectType, objectId, limit)
    this.#cache.set(key, tuples ?? false)
    return tuples
  }

  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#base.readObjectRelation(objectType, objectId, relation)
  }

  readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#base.readUsers(objectType, objectId, relation, users)
  }

  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#base.readUsersets(objectType, objectId, relation)
  }

  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#base.readStartingWithUser(objectType, relation, users)
  }
}
