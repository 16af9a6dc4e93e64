/**
 * Userset membership by walking up from the subject. For a closure family such as
 * `group#member: [user, group#member]`, the groups containing `user:anne` are found by reading
 * `group:?#member@user:anne`, then `group:?#member@group:<each>#member`, and so on: the walk
 * touches only the groups anne is in. Checking `document:1#viewer@group:eng#member` then costs
 * one set look-up instead of a walk down every group nested in group:eng.
 *
 * The walk records at which level it found each userset, so the depth limit applies exactly as
 * it would to the downward walk (the level is the length of the shortest path). It gives up
 * (and the caller walks down instead) when the subject is in more usersets than `maxNodes`.
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import { subjectReferenceKey, type UsersetClosure } from '../model/typesystem.ts'
import type { Reachable, ResolutionContext } from './dispatch.ts'

/**
 * witnessChain is the tuples proving the subject is in `userset`, from the userset down to the
 * subject: `group:g2#member@group:g1#member`, `group:g1#member@user:anne`.
 */
export function witnessChain(reach: Reachable, userset: string): Tuple[] {
  const chain: Tuple[] = []
  let key: string | undefined = userset
  // Each step goes one level down, so the chain is at most as long as the number of levels.
  for (let guard = reach.via.size; key !== undefined && guard >= 0; guard--) {
    const t = reach.via.get(key)
    if (!t) break
    chain.push(t)
    key = t.userRelation ? `${t.userType}:${t.userId}#${t.userRelation}` : undefined
  }
  return chain
}


/**
 * precomputedReach answers from the store's membership closure (Zanzibar's Leopard index, kept
 * beside the tuple index and maintained from the changelog), without a read and without a
 * promise: what `reachableUsersets` would find, or undefined when the closure cannot answer
 * exactly (being built, contextual tuples in the family, …) and the walk must run. A subject
 * in more than `maxNodes` usersets gives `false`: walk down instead, as after the walk.
 */
export function precomputedReach(
  ctx: ResolutionContext,
  family: UsersetClosure,
  subject: Subject,
  maxLevel: number,
  maxNodes: number,
): Reachable | false | undefined {
  const reach = ctx.membership?.reachable(family, subject, maxLevel, ctx)
  if (!reach) return undefined
  return reach.levels.size > maxNodes ? false : reach
}

/**
 * reachableUsersets returns every userset of the family that contains `subject`, or undefined
 * when there are more than `maxNodes` of them, by walking up (after precomputedReach could not
 * answer). Memoised per request and, when the request may share, across requests at the same
 * revision.
 */
export function reachableUsersets(
  ctx: ResolutionContext,
  familyKey: string,
  family: UsersetClosure,
  subject: Subject,
  maxLevel: number,
  maxNodes: number,
): Promise<Reachable | undefined> {
  const s = subject.relation ? `${subject.type}:${subject.id}#${subject.relation}` : `${subject.type}:${subject.id}`
  const key = `closure:${familyKey}@${s}`
  const memoised = ctx.closures.get(key)
  if (memoised) return memoised
  const shared = ctx.sharedCache
  if (shared?.read) {
    const hit = shared.cache.getClosure(shared.prefix + key, ctx.now)
    if (hit !== undefined) {
      if (hit.until < ctx.validUntil) ctx.validUntil = hit.until
      const p = Promise.resolve(hit.value || undefined)
      ctx.closures.set(key, p)
      return p
    }
  }
  const p = walkUp(ctx, family, subject, maxLevel, maxNodes).then((r) => {
    shared?.cache.setClosure(shared.prefix + key, r ?? false, ctx.validUntil)
    return r
  })
  ctx.closures.set(key, p)
  return p
}

async function walkUp(
  ctx: ResolutionContext,
  family: UsersetClosure,
  subject: Subject,
  maxLevel: number,
  maxNodes: number,
): Promise<Reachable | undefined> {
  const ts = ctx.typesystem
  const reached = new Map<string, number>()
  const via = new Map<string, Tuple>()
  let frontier: Subject[] = [subject]
  if (!subject.relation && subject.id !== '*' && family.edges.has(`${subject.type}:*`)) {
    frontier.push({ type: subject.type, id: '*', relation: '' })
  }
  for (let level = 0; frontier.length > 0 && level < maxLevel; level++) {
    // One read per edge for the whole frontier: `group:?#member@{group:a#member, group:b#member}`.
    const byKind = new Map<string, Subject[]>()
    for (const node of frontier) {
      const kind = subjectReferenceKey(node)
      const list = byKind.get(kind)
      if (list) list.push(node)
      else byKind.set(kind, [node])
    }
    const next: Subject[] = []
    for (const [kind, nodes] of byKind) {
      for (const edge of family.edges.get(kind) ?? []) {
        ctx.stats.reads++
        const im = ctx.reader.immediate
        const tuples = im
          ? im.readStartingWithUserNow(edge.type, edge.relation, nodes)
          : await ctx.reader.readStartingWithUser(edge.type, edge.relation, nodes)
        for (const t of tuples) {
          if (!ts.admits(t)) continue
          const k = `${t.objectType}:${t.objectId}#${t.relation}`
          if (reached.has(k)) continue
          reached.set(k, level)
          via.set(k, t)
          if (reached.size > maxNodes) return undefined
          next.push({ type: t.objectType, id: t.objectId, relation: t.relation })
        }
      }
    }
    frontier = next
  }
  return { levels: reached, via, truncated: frontier.length > 0 }
}
