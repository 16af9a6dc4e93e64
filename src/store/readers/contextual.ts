/**
 * ContextualTupleReader lays a request's contextual tuples over a stored reader: they count as
 * if written, for this request only (e.g. the groups of an incoming token, passed as
 * `group:eng#member@user:anne`, without being stored). A contextual tuple may expire like a
 * stored one: with `expires_at` at or before the request's `now` it counts for nothing, as the
 * stored reader underneath (bound to the same `now`) hides expired stored tuples.
 *
 * @module
 */
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { TupleReader } from '../ports.ts'

export class ContextualTupleReader implements TupleReader {
  readonly #base: TupleReader
  readonly #byObject = new Map<string, Tuple[]>()
  readonly #byUser = new Map<string, Tuple[]>()

  constructor(base: TupleReader, contextual: Tuple[], now: number) {
    this.#base = base
    const seen = new Set<string>()
    for (const t of contextual) {
      if (t.expiresAt !== undefined && t.expiresAt <= now) continue
      const id = `${t.objectType}:${t.objectId}#${t.relation}@${t.userType}:${t.userId}#${t.userRelation}|${t.conditionName}|${JSON.stringify(t.conditionContext ?? null)}`
      if (seen.has(id)) continue
      seen.add(id)
      push(this.#byObject, `${t.objectType}:${t.objectId}#${t.relation}`, t)
      push(this.#byUser, `${t.objectType}#${t.relation}@${t.userType}:${t.userId}#${t.userRelation}`, t)
    }
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const stored = await this.#base.readObject(objectType, objectId, limit)
    if (!stored) return undefined
    const prefix = `${objectType}:${objectId}#`
    const extra: Tuple[] = []
    for (const [k, list] of this.#byObject) if (k.startsWith(prefix)) extra.push(...list)
    const all = stored.concat(extra)
    return all.length <= limit ? all : undefined
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const stored = await this.#base.readObjectRelation(objectType, objectId, relation)
    const extra = this.#byObject.get(`${objectType}:${objectId}#${relation}`)
    return extra ? stored.concat(extra) : stored
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const stored = await this.#base.readUsers(objectType, objectId, relation, users)
    const extra = this.#byObject.get(`${objectType}:${objectId}#${relation}`)
    if (!extra) return stored
    const matching = extra.filter((t) =>
      users.some((u) => u.type === t.userType && u.id === t.userId && u.relation === t.userRelation),
    )
    return stored.concat(matching)
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const stored = await this.#base.readUsersets(objectType, objectId, relation)
    const extra = this.#byObject.get(`${objectType}:${objectId}#${relation}`)
    return extra ? stored.concat(extra.filter((t) => t.userRelation !== '')) : stored
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const stored = await this.#base.readStartingWithUser(objectType, relation, users)
    const extra: Tuple[] = []
    for (const u of users) {
      const found = this.#byUser.get(`${objectType}#${relation}@${u.type}:${u.id}#${u.relation}`)
      if (found) extra.push(...found)
    }
    return extra.length ? stored.concat(extra) : stored
  }
}

function push(m: Map<string, Tuple[]>, k: string, t: Tuple): void {
  const list = m.get(k)
  if (list) list.push(t)
  else m.set(k, [t])
}
