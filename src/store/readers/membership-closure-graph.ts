/**
 * FamilyClosure: the transitive closure of one closure family of one store (Zanzibar's Leopard
 * index), e.g. for `group#member: [user, group#member]` with the tuples
 * `group:eng#member@group:backend#member` and `group:backend#member@user:anne`:
 *
 *   up:       user:anne → { group:backend#member at level 0, group:eng#member at level 1 }
 *             group:backend#member → { group:eng#member at level 0 }
 *   children: group:eng#member → { group:backend#member }, group:backend#member → { user:anne }
 *
 * Each entry of `up` is exactly what the engine's upward walk (engine/userset-closure.ts) finds
 * from that subject: the level is the length of the shortest path, and `via` holds the tuple
 * each userset was first reached through, so that the witness chain can be followed back down
 * to the subject. The subject's type wildcard (`user:*`) is a node of its own, merged in when a
 * request asks (see `reach`).
 *
 * Only tuples the model admits into the family count: a relation of the family, a user kind
 * its type restriction names, and no condition (a family has none; `admits`).
 *
 * Maintenance. A change to a tuple `G@S` can only alter the closures of S and of every node
 * whose closure holds S (found by walking `children` down from S, before the change): any new
 * or lost path to a node passes through the changed tuple. Those nodes are recomputed by a walk
 * over the in-memory parents,
 * which serves adds and deletes alike (a delete may leave a longer path, or none). A node's
 * closure is replaced, never changed in place, so a request holding it across an `await` keeps
 * one state of it.
 *
 * @module
 */
import type { Tuple } from '../../core/tuple.ts'
import { tupleOfChange } from './changelog-follower.ts'
import type { UsersetClosure } from '../../model/typesystem.ts'
import type { MembershipReach, TupleChange } from '../store.ts'

/** One subject's closure, with the level of its farthest userset (-1 when empty). */
export interface ClosureReach extends MembershipReach {
  deepest: number
}

const EMPTY_REACH: ClosureReach = Object.freeze({
  levels: new Map<string, number>(),
  via: new Map<string, Tuple>(),
  truncated: false,
  deepest: -1,
}) as ClosureReach

/** signatureOf names what a closure is built for: the family's relations and the user kinds each admits. */
const signatures = new WeakMap<UsersetClosure, string>()
export function signatureOf(family: UsersetClosure): string {
  let s = signatures.get(family)
  if (s === undefined) {
    const parts: string[] = []
    for (const [kind, targets] of family.edges) for (const t of targets) parts.push(`${kind}>${t.type}#${t.relation}`)
    s = parts.sort().join(',')
    signatures.set(family, s)
  }
  return s
}

/** The key of a subject: `user:anne`, `user:*`, `group:eng#member`. */
export function subjectKey(type: string, id: string, relation: string): string {
  return relation ? `${type}:${id}#${relation}` : `${type}:${id}`
}

export class FamilyClosure {
  /** The family's relations (`group#member`) → the user kinds each admits (`user`, `group#member`). */
  readonly #admitted = new Map<string, Set<string>>()
  /** user key → the family's tuples naming it as their user, by object key (`group:eng#member`). */
  readonly #parents = new Map<string, Map<string, Tuple>>()
  /** subject key → its closure (only subjects in at least one userset). */
  readonly #up = new Map<string, ClosureReach>()
  /** type → the closure of its wildcard (`user:*`), when it is in a userset: merged into its users'. */
  readonly #wildcards = new Map<string, ClosureReach>()
  /**
   * userset key → the users of its tuples (`group:eng#member` → `group:backend#member`): who is
   * in it directly. Kept per tuple rather than per closure entry, to find who is in it
   * transitively (`members`) at the cost of a walk.
   */
  readonly #children = new Map<string, Set<string>>()
  /** Expiring tuples of the family (by identity) and when each expires. */
  readonly #expiring = new Map<string, number>()
  /**
   * A min-heap of (expiry, tuple identity); an entry whose tuple was deleted (or rewritten with
   * another expiry) is dropped lazily when it reaches the top, so the sweeper deleting N expired
   * tuples oldest first costs O(N log N), not a rescan of every expiring tuple per delete.
   */
  readonly #expiryHeap: Array<[number, string]> = []
  /**
   * Subjects whose closure may be out of date after the changes applied (`applyAll` over its
   * `inlineLimit`): recomputed by `drain`, a slice at a time; the closure answers nothing meanwhile.
   */
  readonly #pending = new Set<string>()
  /** Entries across every closure (a subject in a userset counts once). */
  entries = 0
  /** Tuples of the family held. */
  tuples = 0

  /** The earliest expiry among the family's tuples (Infinity: none expires). */
  get minExpiry(): number {
    const heap = this.#expiryHeap
    while (heap.length > 0) {
      const [at, id] = heap[0]
      if (this.#expiring.get(id) === at) return at
      heapPop(heap)
    }
    return Number.POSITIVE_INFINITY
  }

  /** Subjects still to recompute after a large change (see `drain`): while any, the closure cannot answer. */
  get pending(): number {
    return this.#pending.size
  }

  constructor(family: UsersetClosure) {
    for (const [kind, targets] of family.edges) {
      for (const t of targets) {
        const rel = `${t.type}#${t.relation}`
        let kinds = this.#admitted.get(rel)
        if (!kinds) this.#admitted.set(rel, (kinds = new Set()))
        kinds.add(kind)
      }
    }
  }

  /** The family's relations (`group#member`), for the reads of a build. */
  relations(): string[] {
    return [...this.#admitted.keys()]
  }

  /** admits: the tuple counts in the family under the model it was built for. */
  admits(t: Tuple): boolean {
    if (t.conditionName !== '') return false
    const kinds = this.#admitted.get(`${t.objectType}#${t.relation}`)
    if (!kinds) return false
    const kind = t.userId === '*' ? `${t.userType}:*` : t.userRelation ? `${t.userType}#${t.userRelation}` : t.userType
    return kinds.has(kind)
  }

  /** add records a tuple while building (before `computeAll`); false when the family does not admit it. */
  add(t: Tuple): boolean {
    if (!this.admits(t)) return false
    this.#set(t)
    return true
  }

  /** The subjects to compute after the tuples are added: every user of a family tuple. */
  subjects(): string[] {
    return [...this.#parents.keys()]
  }

  /** compute sets one subject's closure from the parents (while building, or after changes). */
  compute(key: string): void {
    const before = this.#up.get(key) ?? EMPTY_REACH
    const after = this.#walk(key)
    if (after.levels.size === 0) this.#up.delete(key)
    else this.#up.set(key, after)
    if (key.endsWith(':*')) {
      const type = key.slice(0, -2)
      if (after.levels.size === 0) this.#wildcards.delete(type)
      else this.#wildcards.set(type, after)
    }
    this.entries += after.levels.size - before.levels.size
  }

  /**
   * applyAll applies changelog entries (a write sets the tuple to what it says, a delete
   * removes it, so replaying a change already read is harmless), then recomputes the closures
   * they can reach. Returns how many closures were recomputed.
   */
  applyAll(changes: readonly TupleChange[], inlineLimit = Number.POSITIVE_INFINITY): number {
    // A set of this batch's own (not `#pending`): a subject already in it has had its members
    // collected, which does not hold for a pending subject whose members `drain` has done.
    const affected = new Set<string>()
    for (const c of changes) {
      if (!this.#admitted.has(`${c.objectType}#${c.relation}`)) continue
      const t = tupleOfChange(c)
      const user = { type: t.userType, id: t.userId, relation: t.userRelation }
      const userKey = subjectKey(user.type, user.id, user.relation)
      // Who may see a path change: the user itself and whoever is in it (before this batch).
      if (!affected.has(userKey)) {
        affected.add(userKey)
        this.#collectMembers(userKey, affected)
      }
      this.#unset(t, userKey)
      if (c.operation === 'write' && this.admits(t)) this.#set(t)
    }
    for (const key of affected) this.#pending.add(key)
    const n = this.#pending.size
    // Over the limit: left to `drain` (in slices, off the request path), the tuples are applied.
    if (n <= inlineLimit) this.drain(n)
    return affected.size
  }

  /** drain recomputes up to `max` of the pending subjects; returns how many are left. */
  drain(max: number): number {
    let done = 0
    for (const key of this.#pending) {
      if (done++ >= max) break
      this.#pending.delete(key)
      this.compute(key)
    }
    return this.#pending.size
  }

  /**
   * reach: the usersets of the family containing the subject, as the upward walk from it finds
   * them; a plain subject (`user:anne`) also reaches what its type's wildcard (`user:*`) is in,
   * at the shorter of the two levels. Never changed afterwards: the caller may keep it.
   */
  reach(type: string, id: string, relation: string): ClosureReach {
    const own = this.#up.get(subjectKey(type, id, relation)) ?? EMPTY_REACH
    if (relation || id === '*') return own
    const wild = this.#wildcards.get(type)
    if (!wild) return own
    return merge(own, wild)
  }

  /** members: every subject whose closure holds `userset` (`group:eng#member`): who is in it, transitively. */
  members(userset: string): ReadonlySet<string> {
    const out = new Set<string>()
    this.#collectMembers(userset, out)
    return out
  }

  /** #collectMembers adds to `into` everyone in `userset` transitively (walking the children down). */
  #collectMembers(userset: string, into: Set<string>): void {
    const stack = [userset]
    while (stack.length) {
      for (const child of this.#children.get(stack.pop()!) ?? []) {
        if (into.has(child)) continue
        into.add(child)
        stack.push(child)
      }
    }
  }

  #set(t: Tuple): void {
    const userKey = subjectKey(t.userType, t.userId, t.userRelation)
    let ps = this.#parents.get(userKey)
    if (!ps) this.#parents.set(userKey, (ps = new Map()))
    const objectKey = `${t.objectType}:${t.objectId}#${t.relation}`
    if (!ps.has(objectKey)) {
      this.tuples++
      let children = this.#children.get(objectKey)
      if (!children) this.#children.set(objectKey, (children = new Set()))
      children.add(userKey)
    }
    ps.set(objectKey, t)
    if (t.expiresAt !== undefined) {
      const id = `${objectKey}@${userKey}`
      if (this.#expiring.get(id) !== t.expiresAt) {
        this.#expiring.set(id, t.expiresAt)
        heapPush(this.#expiryHeap, [t.expiresAt, id])
        // Entries of deleted tuples below the top: compact once they are most of the heap.
        if (this.#expiryHeap.length > 2 * this.#expiring.size + 64) {
          this.#expiryHeap.length = 0
          for (const [i, at] of this.#expiring) heapPush(this.#expiryHeap, [at, i])
        }
      }
    }
  }

  #unset(t: Tuple, userKey: string): void {
    const ps = this.#parents.get(userKey)
    const objectKey = `${t.objectType}:${t.objectId}#${t.relation}`
    if (!ps?.delete(objectKey)) return
    this.tuples--
    if (ps.size === 0) this.#parents.delete(userKey)
    const children = this.#children.get(objectKey)
    if (children?.delete(userKey) && children.size === 0) this.#children.delete(objectKey)
    // Its heap entry goes when it reaches the top (`minExpiry`).
    this.#expiring.delete(`${objectKey}@${userKey}`)
  }

  /** #walk: breadth first from the subject over the parents, as the engine's upward walk. */
  #walk(key: string): ClosureReach {
    const levels = new Map<string, number>()
    const via = new Map<string, Tuple>()
    let deepest = -1
    let frontier = [key]
    for (let level = 0; frontier.length > 0; level++) {
      const next: string[] = []
      for (const node of frontier) {
        const ps = this.#parents.get(node)
        if (!ps) continue
        for (const [objectKey, t] of ps) {
          if (levels.has(objectKey)) continue
          levels.set(objectKey, level)
          via.set(objectKey, t)
          next.push(objectKey)
          deepest = level
        }
      }
      frontier = next
    }
    return levels.size === 0 ? EMPTY_REACH : { levels, via, truncated: false, deepest }
  }
}

/** merge: the closure of two starting points (a subject and its type's wildcard): the shorter level wins, the subject's on a tie. */
function merge(a: ClosureReach, b: ClosureReach): ClosureReach {
  const levels = new Map(a.levels)
  const via = new Map(a.via)
  let deepest = -1
  for (const [k, level] of b.levels) {
    const mine = levels.get(k)
    if (mine !== undefined && mine <= level) continue
    levels.set(k, level)
    via.set(k, b.via.get(k)!)
  }
  for (const level of levels.values()) if (level > deepest) deepest = level
  return { levels, via, truncated: false, deepest }
}

/** heapPush / heapPop: a binary min-heap of (expiry, id), by expiry. */
function heapPush(heap: Array<[number, string]>, e: [number, string]): void {
  let i = heap.push(e) - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (heap[p][0] <= e[0]) break
    heap[i] = heap[p]
    i = p
  }
  heap[i] = e
}

function heapPop(heap: Array<[number, string]>): void {
  const last = heap.pop()!
  if (heap.length === 0) return
  let i = 0
  for (;;) {
    const l = 2 * i + 1
    if (l >= heap.length) break
    const c = l + 1 < heap.length && heap[l + 1][0] < heap[l][0] ? l + 1 : l
    if (heap[c][0] >= last[0]) break
    heap[i] = heap[c]
    i = c
  }
  heap[i] = last
}
