/**
 * HeadRevisions remembers each store's head revision for up to `maxAgeMs`, so that
 * MINIMIZE_LATENCY requests share cache entries without a database round trip; a
 * HIGHER_CONSISTENCY request always reads the head afresh. A replica learns of writes made on
 * other replicas within `maxAgeMs`: that is the staleness bound of MINIMIZE_LATENCY.
 *
 * One instance per Pemba: the writes advance it (read-your-writes on this replica), the
 * queries bind their requests to what it knows.
 *
 * @module
 */
import type { Changelog } from '../store/ports.ts'

/** Where a store's head revision is read when it is not known. */
export type HeadRevisionSource = Pick<Changelog, 'headRevision'>

export class HeadRevisions {
  readonly #source: HeadRevisionSource
  readonly #maxAgeMs: number
  readonly #now: () => number
  readonly #heads = new Map<string, { revision: number; at: number }>()

  /** `now` is the injected clock, in ms. */
  constructor(source: HeadRevisionSource, maxAgeMs: number, now: () => number) {
    this.#source = source
    this.#maxAgeMs = maxAgeMs
    this.#now = now
  }

  /** known is the head revision remembered for the store, if it is still fresh enough. */
  known(storeId: string, now = this.#now()): number | undefined {
    const known = this.#heads.get(storeId)
    return known && now - known.at <= this.#maxAgeMs ? known.revision : undefined
  }

  async get(storeId: string, fresh: boolean, now = this.#now()): Promise<number> {
    const recent = fresh ? undefined : this.known(storeId, now)
    if (recent !== undefined) return recent
    const before = this.#heads.get(storeId)?.revision ?? 0
    const revision = await this.#source.headRevision(storeId)
    this.advance(storeId, revision, now)
    return Math.max(revision, before)
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
