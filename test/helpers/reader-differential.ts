/**
 * The pieces shared by the differential tests of the readers that mirror a datastore (the tuple
 * index, its compact form, the working set, the membership closure): a seeded generator, tuples
 * and subjects written as strings (`document:d1`, `group:g1#member`), a canonical form of a
 * read's answer, every read the engine makes over a small universe, and random write requests.
 * Each test keeps its own universe and its own random tuple, so what it covers is said there.
 */
import { afterEach, beforeEach, expect } from 'vitest'
import type { Subject, Tuple } from '../../src/core/tuple.ts'
import type { Datastore, TupleIdentity, TupleReader } from '../../src/store/store.ts'

export const T0 = new Date('2026-01-01T00:00:00Z')
export const NOW = T0.getTime()

/** A deterministic generator (mulberry32), so a failure names its seed. */
export function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `group:g1#member` → { type: 'group', id: 'g1', relation: 'member' }; `user:anne` has relation ''. */
export function subjectOf(user: string): Subject {
  const [u, relation = ''] = user.split('#')
  const [type, id] = u.split(':')
  return { type, id, relation }
}

/** tupleOf('document:d1', 'viewer', 'group:g1#member'), with no condition unless `extra` says. */
export function tupleOf(object: string, relation: string, user: string, extra: Partial<Tuple> = {}): Tuple {
  const [objectType, objectId] = object.split(':')
  const s = subjectOf(user)
  return { objectType, objectId, relation, userType: s.type, userId: s.id, userRelation: s.relation, conditionName: '', conditionContext: undefined, ...extra }
}

export const identity = (t: Tuple): TupleIdentity => ({
  objectType: t.objectType,
  objectId: t.objectId,
  relation: t.relation,
  userType: t.userType,
  userId: t.userId,
  userRelation: t.userRelation,
})
export const idKey = (t: TupleIdentity) => `${t.objectType}:${t.objectId}#${t.relation}@${t.userType}:${t.userId}#${t.userRelation}`
/** A tuple with its condition, context and expiry: two answers are equal when these are. */
export const full = (t: Tuple) => `${idKey(t)}|${t.conditionName}|${JSON.stringify(t.conditionContext ?? null)}|${t.expiresAt ?? ''}`
/** An answer in a canonical order (readers need not agree on order); undefined is 'TOO MANY'. */
export const canon = (ts: Tuple[] | undefined) => (ts === undefined ? 'TOO MANY' : ts.map(full).sort())
/** One turn of the event loop. */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** The objects, relations and users a differential test reads, and how it reads them. */
export interface ReadUniverse {
  objects: string[]
  relations: string[]
  /** Users asked about together (readUsers, readStartingWithUser with all of them). */
  users: string[]
  /** Users asked about one at a time by readUsers (default: all of `users`). */
  usersOneByOne?: string[]
  /** Object types readStartingWithUser is asked about. */
  types: string[]
  /** The small limit readObject is asked with (besides 1000). */
  smallLimit: number
  /** Yield to the event loop after each object and each type (reads then land between merges). */
  yieldBetween?: boolean
  /** Where the reader has immediate twins of its reads, assert they answer as the promised ones. */
  checkImmediate?: boolean
}

/** Every read the engine makes, for every object, relation and user of the universe, canonical. */
export async function everyRead(reader: TupleReader, u: ReadUniverse): Promise<unknown[]> {
  const out: unknown[] = []
  const asked = u.users.map(subjectOf)
  const oneByOne = (u.usersOneByOne ?? u.users).map(subjectOf)
  const immediate = u.checkImmediate ? reader.immediate : undefined
  for (const object of u.objects) {
    const [type, id] = object.split(':')
    out.push(canon(await reader.readObject(type, id, u.smallLimit)), canon(await reader.readObject(type, id, 1000)))
    for (const relation of u.relations) {
      const all = canon(await reader.readObjectRelation(type, id, relation))
      const usersets = canon(await reader.readUsersets(type, id, relation))
      const users = canon(await reader.readUsers(type, id, relation, asked))
      out.push(all, usersets, users)
      for (const s of oneByOne) out.push(canon(await reader.readUsers(type, id, relation, [s])))
      if (immediate) {
        // The immediate reads answer as their promised twins.
        expect(canon(immediate.readObjectRelationNow(type, id, relation))).toEqual(all)
        expect(canon(immediate.readUsersetsNow(type, id, relation))).toEqual(usersets)
        expect(canon(immediate.readUsersNow(type, id, relation, asked))).toEqual(users)
      }
    }
    if (u.yieldBetween) await turn()
  }
  for (const type of u.types) {
    for (const relation of u.relations) {
      const reached = canon(await reader.readStartingWithUser(type, relation, asked))
      out.push(reached)
      if (immediate) expect(canon(immediate.readStartingWithUserNow(type, relation, asked))).toEqual(reached)
      for (const s of asked) out.push(canon(await reader.readStartingWithUser(type, relation, [s])))
    }
    if (u.yieldBetween) await turn()
  }
  return out
}

/**
 * Random writes and deletes in one request to `store`, as a client would send them, with
 * `live` (the test's model of the store) kept in step. Returns the revision written.
 */
export async function randomWrite(ds: Datastore, store: string, rnd: () => number, live: Map<string, Tuple>, randomTuple: (rnd: () => number) => Tuple): Promise<number> {
  const deletes: TupleIdentity[] = []
  const writes: Tuple[] = []
  const touched = new Set<string>()
  // An expired tuple cannot be deleted (it is already gone for every reader).
  const known = [...live.values()].filter((t) => t.expiresAt === undefined || t.expiresAt > NOW)
  for (let i = 0; i < 1 + Math.floor(rnd() * 6); i++) {
    if (known.length && rnd() < 0.4) {
      const t = known[Math.floor(rnd() * known.length)]
      if (touched.has(idKey(t))) continue
      touched.add(idKey(t))
      deletes.push(identity(t))
      // Sometimes the same tuple again with another condition or expiry: a replacement.
      if (rnd() < 0.3) writes.push({ ...randomTuple(rnd), ...identity(t) })
    } else {
      const t = randomTuple(rnd)
      if (touched.has(idKey(t)) || live.has(idKey(t))) continue
      touched.add(idKey(t))
      writes.push(t)
    }
  }
  const revision = await ds.write(store, { writes, deletes, onDuplicate: 'error', onMissing: 'error' }, T0)
  for (const d of deletes) live.delete(idKey(d))
  for (const w of writes) live.set(idKey(w), w)
  return revision
}

/**
 * Before each test, two handles on one fresh, empty database (`primary` feeds the reader under
 * test, `other` writes behind its back) with `store` created through `primary`, handed to `set`;
 * after each, both closed.
 */
export function useDatastorePair(
  open: () => Promise<{ primary: Datastore; other: Datastore }>,
  store: string,
  storeName: string,
  set: (pair: { primary: Datastore; other: Datastore }) => void,
): void {
  let pair: { primary: Datastore; other: Datastore }
  beforeEach(async () => {
    pair = await open()
    set(pair)
    await pair.primary.createStore(store, storeName, T0)
  })
  afterEach(async () => {
    await pair.other.close()
    await pair.primary.close()
  })
}
