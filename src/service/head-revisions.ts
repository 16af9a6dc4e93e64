/**
 * HeadRevisions remembers each store's head revision for up to `maxAgeMs`, so that
 * MINIMIZE_LATENCY requests share cache entries without a database round trip; a
 * HIGHER_CONSISTENCY request always reads the head afresh. A replica learns of writes made on
 * other replicas within `maxAgeMs`: that is the staleness bound of MINIMIZE_LATENCY.
 *
 * One instance per Pemba: the writes advance it (read-your-writes on this replica), the
 * queries bind their requests to what it knows.
 *
 * It also knows which stores are deleted, from the same read of the store row: a deleted store
 * is refused (store_id_not_found) by `get` and `requireLive`. A deletion made on this replica
 * counts at once (`markDeleted`), one made on another replica within `maxAgeMs` (at once for a
 * fresh read), so "is this store live" costs the hot path nothing it did not already pay.
 * Either way `onDeleted` is told, so every replica releases the store's memory.
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'
import type { Changelog } from '../store/ports.ts'

/** Where a store's head revision (and deletion) is read when it is not known. */
export type HeadRevisionSource = Pick<Changelog, 'storeHead'>

/** The answer for a deleted store, on every store route. */
export function storeNotFound(): PembaError {
  return new PembaError('store_id_not_found', 'Store ID not found')
}

/** How many deleted stores are remembered; past it the oldest are read again when asked about. */
const DELETED_REMEMBERED = 10_000

export class HeadRevisions {
  readonly #source: HeadRevisionSource
  readonly #maxAgeMs: number
  readonly #now: () => number
  readonly #heads = new Map<string, { revision: number; at: number }>()
  /** Stores known to be deleted (a deletion is final: a store id never comes back). */
  readonly #deleted = new Set<string>()

  /** Told once of each deletion this replica learns of, to release what it holds for the store. */
  readonly #onDeleted: (storeId: string) => void

  /**
   * `now` is the injected clock, in ms. `onDeleted` is told of every deletion recorded here,
   * whether this replica made it or a read found it (another replica's): each replica then
   * releases the store's tuple index and caches, not only the one that answered the DELETE.
   */
  constructor(source: HeadRevisionSource, maxAgeMs: number, now: () => number, onDeleted: (storeId: string) => void = () => {}) {
    this.#source = source
    this.#maxAgeMs = maxAgeMs
    this.#now = now
    this.#onDeleted = onDeleted
  }

  /** isDeleted: the store is known here to be deleted (no read; see requireLive for one that reads). */
  isDeleted(storeId: string): boolean {
    return this.#deleted.has(storeId)
  }

  /** known is the head revision remembered for the store, if it is still fresh enough. */
  known(storeId: string, now = this.#now()): number | undefined {
    const known = this.#heads.get(storeId)
    return known && now - known.at <= this.#maxAgeMs ? known.revision : undefined
  }

  /** get is the store's head revision; store_id_not_found when the store is known to be deleted. */
  async get(storeId: string, fresh: boolean, now = this.#now()): Promise<number> {
    if (this.#deleted.has(storeId)) throw storeNotFound()
    const recent = fresh ? undefined : this.known(storeId, now)
    if (recent !== undefined) return recent
    const before = this.#heads.get(storeId)?.revision ?? 0
    // Not fresh: a read replica lagging within the bound may answer, and its head counts as
    // read as long ago as it may lag, so what is kept here is never older than the bound.
    const head = await this.#source.storeHead(storeId, fresh ? undefined : this.#maxAgeMs)
    if (head.deleted) {
      this.markDeleted(storeId)
      throw storeNotFound()
    }
    this.advance(storeId, head.revision, now - (head.lagMs ?? 0))
    return Math.max(head.revision, before)
  }

  /**
   * requireLive throws store_id_not_found for a store known to be deleted; it reads the store
   * row only when what is known is older than `maxAgeMs` (then `get` finds it fresh). Returns
   * undefined rather than a promise when it needs no read: the hot path pays no await.
   */
  requireLive(storeId: string, now = this.#now()): Promise<unknown> | undefined {
    if (this.#deleted.has(storeId)) throw storeNotFound()
    if (this.known(storeId, now) !== undefined) return undefined
    return this.get(storeId, false, now)
  }

  /**
   * markDeleted records a deletion (this replica's, or one a read found): the store is refused
   * from now on, and `onDeleted` is told the first time.
   */
  markDeleted(storeId: string): void {
    this.#heads.delete(storeId)
    if (this.#deleted.has(storeId)) return
    if (this.#deleted.size >= DELETED_REMEMBERED) this.#deleted.delete(this.#deleted.values().next().value!)
    this.#deleted.add(storeId)
    this.#onDeleted(storeId)
  }

  /**
   * advance records a revision this replica knows to be committed (its own write, or a JIT
   * approval), so later requests here read their own writes; it never moves back.
   */
  advance(storeId: string, revision: number, at = this.#now()): void {
    const known = this.#heads.get(storeId)
    if (!known || revision >= known.revision) this.#heads.set(storeId, { revision, at })
    if (this.#heads.size > 100_000) this.#heads.clear()
  }
}
