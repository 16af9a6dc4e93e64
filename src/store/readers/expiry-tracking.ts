/**
 * ExpiryTrackingReader notes, for one request, the earliest expiry among the tuples it has
 * read. An answer the request caches across requests is only valid until then: an `allowed`
 * granted by `document:1#viewer@user:anne` expiring at 12:00 must not be served at 12:00, and
 * a `denied` that held because `document:1#blocked@user:anne` was still there must not either.
 * The bound is per request, not per subproblem, which is conservative: an entry may expire
 * sooner than strictly needed, never later.
 *
 * @module
 */
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { TupleReader } from '../ports.ts'

/** The part of a request's context that records the earliest expiry it has read (`ctx.validUntil`). */
export interface ExpiryBound {
  validUntil: number
}

export class ExpiryTrackingReader implements TupleReader {
  readonly #base: TupleReader
  readonly #bound: ExpiryBound

  constructor(base: TupleReader, bound: ExpiryBound) {
    this.#base = base
    this.#bound = bound
  }

  #note<T extends Tuple[] | undefined>(tuples: T): T {
    if (tuples) {
      for (const t of tuples) {
        if (t.expiresAt !== undefined && t.expiresAt < this.#bound.validUntil) this.#bound.validUntil = t.expiresAt
      }
    }
    return tuples
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    return this.#note(await this.#base.readObject(objectType, objectId, limit))
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#note(await this.#base.readObjectRelation(objectType, objectId, relation))
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#note(await this.#base.readUsers(objectType, objectId, relation, users))
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#note(await this.#base.readUsersets(objectType, objectId, relation))
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#note(await this.#base.readStartingWithUser(objectType, relation, users))
  }
}
