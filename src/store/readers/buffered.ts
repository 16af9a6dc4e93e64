/**
 * BufferedTupleReader reads a small object whole, once per request. A check of
 * `document:d1#view` asks for d1's viewers, owners, blocked users and parents in turn; when d1
 * has at most `objectLimit` tuples, one read answers all of those questions (and those of
 * every other relation of d1 the request visits) from memory. Objects with more tuples than
 * that are read relation by relation, as before, so a group with a million members is never
 * loaded whole.
 *
 * It lives for one request: it never serves data older than the request's own reads. Expiry
 * needs nothing here: the reader underneath is bound to the request's `now` and already hides
 * expired tuples, and the whole request is evaluated at that one instant.
 *
 * @module
 */
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { TupleReader } from '../ports.ts'

export class BufferedTupleReader implements TupleReader {
  readonly #base: TupleReader
  readonly #limit: number
  /** Per object: its tuples grouped by relation, or null when it has too many to buffer. */
  readonly #objects = new Map<string, Promise<Map<string, Tuple[]> | null>>()

  constructor(base: TupleReader, objectLimit: number) {
    this.#base = base
    this.#limit = objectLimit
  }

  #object(objectType: string, objectId: string): Promise<Map<string, Tuple[]> | null> {
    const key = `${objectType}:${objectId}`
    let p = this.#objects.get(key)
    if (!p) {
      p = this.#base.readObject(objectType, objectId, this.#limit).then((tuples) => {
        if (!tuples) return null
        const byRelation = new Map<string, Tuple[]>()
        for (const t of tuples) {
          const list = byRelation.get(t.relation)
          if (list) list.push(t)
          else byRelation.set(t.relation, [t])
        }
        return byRelation
      })
      this.#objects.set(key, p)
    }
    return p
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const buffered = await this.#object(objectType, objectId)
    if (buffered) {
      const all = [...buffered.values()].flat()
      return all.length <= limit ? all : undefined
    }
    return this.#base.readObject(objectType, objectId, limit)
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const buffered = await this.#object(objectType, objectId)
    if (buffered) return buffered.get(relation) ?? []
    return this.#base.readObjectRelation(objectType, objectId, relation)
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const buffered = await this.#object(objectType, objectId)
    if (!buffered) return this.#base.readUsers(objectType, objectId, relation, users)
    const out: Tuple[] = []
    for (const t of buffered.get(relation) ?? []) {
      for (const u of users) {
        if (t.userType === u.type && t.userId === u.id && t.userRelation === u.relation) {
          out.push(t)
          break
        }
      }
    }
    return out
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const buffered = await this.#object(objectType, objectId)
    if (!buffered) return this.#base.readUsersets(objectType, objectId, relation)
    return (buffered.get(relation) ?? []).filter((t) => t.userRelation !== '')
  }

  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#base.readStartingWithUser(objectType, relation, users)
  }
}
