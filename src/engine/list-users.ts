/**
 * listUsers finds the users of one filter type (`user`, or a userset kind like `group#member`)
 * related to an object, in two phases: a forward walk from `object#relation` over tuples
 * collects candidates (objects, wildcards `user:*`, usersets `group:eng#member`), then check
 * confirms each one with the request's shared memo, so the answer always agrees with check.
 *
 * The walk evaluates each tuple's condition as it goes, as OpenFGA does: a false condition
 * prunes the edge, and one that cannot be evaluated (a missing parameter) fails the request,
 * even when the user is also reachable another way, because the list would otherwise be
 * silently incomplete.
 *
 * When the filter type has a wildcard anywhere in the model, the subtrahends of exclusions are
 * walked too, for candidates only. `r2: [user:*] but not (r1 from parent but not r0 from
 * parent)` grants everyone who is in r0 of the parent, even though only `user:*` is written on
 * r2 itself, and that wildcard is excluded: `user:u1` of `doc:3#r0@user:u1` must be a candidate.
 * There, an unevaluable condition keeps the edge (a superset is safe: check decides).
 *
 * @module
 */
import type { Subject, Tuple } from '../core/tuple.ts'
import type { Rewrite, TypeSystem } from '../model/typesystem.ts'
import type { CheckDispatcher, ResolutionContext } from './dispatch.ts'
import { deadlinePassed, DeadlineExceededError, RequestCancelledError } from './limits.ts'
import { sliceSpent, yieldTurn } from './pacing.ts'
import { tupleConditionHolds } from './tuple-conditions.ts'

export interface ListUsersRequest {
  objectType: string
  objectId: string
  relation: string
  filter: { type: string; relation: string }
  ctx: ResolutionContext
  maxResults: number
}

export interface ListUsersResult {
  users: Subject[]
  truncated: '' | 'max_results' | 'deadline'
}

export async function listUsers(dispatcher: CheckDispatcher, req: ListUsersRequest): Promise<ListUsersResult> {
  const { ctx, filter } = req
  const ts = ctx.typesystem
  const seen = new Set<string>()
  const queue: Subject[] = []
  const candidates = new Map<string, Subject>()
  const addCandidate = (s: Subject) => {
    const key = s.relation ? `${s.type}:${s.id}#${s.relation}` : `${s.type}:${s.id}`
    if (!candidates.has(key)) candidates.set(key, s)
  }
  // Nodes reached only through a subtrahend: walked for candidates, leniently (see above).
  const lenient = new Set<string>()
  const enqueue = (s: Subject, onlyCandidates = false) => {
    const key = `${s.type}:${s.id}#${s.relation}`
    if (seen.has(key)) {
      // Reached strictly after a lenient visit: walk it again, strictly.
      if (onlyCandidates || !lenient.delete(key)) return
    } else {
      seen.add(key)
      if (onlyCandidates) lenient.add(key)
    }
    queue.push(s)
    if (filter.relation && s.type === filter.type && s.relation === filter.relation) addCandidate(s)
  }
  enqueue({ type: req.objectType, id: req.objectId, relation: req.relation })
  const walkSubtrahends = !filter.relation && wildcardAdmitted(ts.types, filter.type)

  let truncated: ListUsersResult['truncated'] = ''
  // The walk and the confirmations give the event loop back whenever their slice is spent, and
  // stop when the client has gone away (thrown) or the deadline has passed (a partial answer).
  const mustStop = () => deadlinePassed(ctx)
  for (let i = 0; i < queue.length; i++) {
    const spent = sliceSpent(ctx)
    if (spent) await yieldTurn(ctx)
    if ((spent || (i & 63) === 0) && mustStop()) {
      truncated = 'deadline'
      break
    }
    const node = queue[i]
    const rel = ts.relation(node.type, node.relation)
    if (!rel) continue
    const nodeLenient = lenient.has(`${node.type}:${node.id}#${node.relation}`)
    const holds = (t: Tuple, candidateOnly: boolean) => {
      if (!candidateOnly) return tupleConditionHolds(ctx, t)
      try {
        return tupleConditionHolds(ctx, t)
      } catch {
        return true
      }
    }
    const visit = async (rw: Rewrite, candidateOnly: boolean): Promise<void> => {
      switch (rw.kind) {
        case 'this': {
          ctx.stats.reads++
          const tuples = await ctx.reader.readObjectRelation(node.type, node.id, node.relation)
          for (const t of tuples) {
            if (!ts.admits(t) || !holds(t, candidateOnly)) continue
            if (t.userRelation) {
              enqueue({ type: t.userType, id: t.userId, relation: t.userRelation }, candidateOnly)
            } else if (!filter.relation && t.userType === filter.type) {
              addCandidate({ type: t.userType, id: t.userId, relation: '' })
            }
          }
          return
        }
        case 'computed':
          enqueue({ type: node.type, id: node.id, relation: rw.relation }, candidateOnly)
          return
        case 'ttu': {
          ctx.stats.reads++
          const tuples = await ctx.reader.readObjectRelation(node.type, node.id, rw.tupleset)
          for (const t of tuples) {
            if (!ts.admits(t) || t.userRelation || t.userId === '*') continue
            if (!holds(t, candidateOnly)) continue
            if (ts.relation(t.userType, rw.computed)) {
              enqueue({ type: t.userType, id: t.userId, relation: rw.computed }, candidateOnly)
            }
          }
          return
        }
        case 'union':
        case 'intersection':
          for (const c of rw.children) await visit(c, candidateOnly)
          return
        case 'difference':
          await visit(rw.base, candidateOnly)
          if (walkSubtrahends) await visit(rw.subtract, true)
          return
      }
    }
    await visit(rel.rewrite, nodeLenient)
  }

  const users: Subject[] = []
  let firstError: unknown
  for (const candidate of candidates.values()) {
    if (req.maxResults && users.length >= req.maxResults) {
      truncated = 'max_results'
      break
    }
    // Here, not only in the dispatcher's limits: a candidate answered from the caches dispatches
    // nothing, so a long run of them would never meet the dispatcher's periodic deadline test.
    if (sliceSpent(ctx)) await yieldTurn(ctx)
    if (mustStop()) {
      truncated = 'deadline'
      break
    }
    try {
      const r = await dispatcher.dispatchCheck({
        objectType: req.objectType,
        objectId: req.objectId,
        relation: req.relation,
        subject: candidate,
        depth: 0,
        path: undefined,
        ctx,
      })
      if (r.allowed) users.push(candidate)
    } catch (e) {
      if (e instanceof DeadlineExceededError) {
        truncated = 'deadline'
        break
      }
      if (e instanceof RequestCancelledError) throw e
      firstError ??= e
    }
  }
  // As OpenFGA does: a candidate whose condition cannot be evaluated fails the whole answer,
  // since leaving it out would present a partial list as complete.
  if (firstError !== undefined) throw firstError
  return { users, truncated }
}

/** wildcardAdmitted: does any relation of the model admit `<type>:*`? */
function wildcardAdmitted(types: TypeSystem['types'], type: string): boolean {
  for (const t of types.values()) {
    for (const rel of t.relations.values()) if (rel.admitted.has(`${type}:*`)) return true
  }
  return false
}
