/**
 * listObjects finds every object of a type the subject has a relation with, in two phases:
 * a reverse walk from the subject over the relation graph collects candidates (a superset:
 * intersections, exclusions and conditions are not decided there), then each candidate is
 * confirmed by check with the request's shared memo. So list-objects agrees with check by
 * construction, and its cost is bounded by what the subject can reach, not by the number of
 * objects of the type.
 *
 * @module
 */
import type { Subject } from '../core/tuple.ts'
import type { CheckDispatcher, ResolutionContext } from './dispatch.ts'
import { subjectReferenceKey } from '../model/typesystem.ts'
import { reverseGraph } from './graph.ts'
import { deadlinePassed, DeadlineExceededError, RequestCancelledError } from './limits.ts'
import { sliceSpent, yieldTurn } from './pacing.ts'

export interface ListObjectsRequest {
  objectType: string
  relation: string
  subject: Subject
  ctx: ResolutionContext
  /** Stop after this many results (0 = no limit). */
  maxResults: number
  /** Called for each confirmed object id, as soon as it is known (for streaming). */
  onObject?: (id: string) => void
  /**
   * Confirms a candidate instead of checking `subject` on it, e.g. for a delegated list whose
   * answer is what every identity of the chain can reach. Candidates still come from the
   * walk from `subject`, so `confirm` must imply that `subject` has the relation.
   */
  confirm?: (objectId: string) => Promise<boolean>
}

export interface ListObjectsResult {
  objects: string[]
  /** Why the answer is incomplete, if it is: 'max_results' or 'deadline'. */
  truncated: '' | 'max_results' | 'deadline'
}

export async function listObjects(dispatcher: CheckDispatcher, req: ListObjectsRequest): Promise<ListObjectsResult> {
  const { ctx, subject } = req
  const ts = ctx.typesystem
  const graph = reverseGraph(ts)
  const target = `${req.objectType}#${req.relation}`

  const seen = new Set<string>()
  const queue: Subject[] = []
  const candidates: string[] = []
  const candidateSet = new Set<string>()
  const enqueue = (s: Subject) => {
    const key = s.relation ? `${s.type}:${s.id}#${s.relation}` : `${s.type}:${s.id}`
    if (seen.has(key)) return
    seen.add(key)
    queue.push(s)
    if (s.relation && `${s.type}#${s.relation}` === target && !candidateSet.has(s.id)) {
      candidateSet.add(s.id)
      candidates.push(s.id)
    }
  }
  enqueue(subject)
  if (!subject.relation && subject.id !== '*') enqueue({ type: subject.type, id: '*', relation: '' })
  const covered = seedFromClosures(ctx, subject, enqueue)

  let truncated: ListObjectsResult['truncated'] = ''
  // Level by level: all nodes of one kind that meet the same edge are read with one query,
  // e.g. the documents in any of 300 folders as `document:?#parent@{folder:a, folder:b, …}`.
  let level = 0
  // The walk and the confirmations give the event loop back whenever their slice is spent, and
  // stop when the client has gone away (thrown) or the deadline has passed (a partial answer).
  const mustStop = () => deadlinePassed(ctx)
  walk: while (level < queue.length) {
    if (mustStop()) {
      truncated = 'deadline'
      break
    }
    const end = queue.length
    const byKind = new Map<string, Subject[]>()
    for (let i = level; i < end; i++) {
      const node = queue[i]
      const kind = subjectReferenceKey(node)
      const list = byKind.get(kind)
      if (list) list.push(node)
      else byKind.set(kind, [node])
    }
    level = end
    for (const [kind, nodes] of byKind) {
      for (const edge of graph.get(kind) ?? []) {
        if (sliceSpent(ctx)) {
          await yieldTurn(ctx)
          if (mustStop()) {
            truncated = 'deadline'
            break walk
          }
        }
        if (edge.kind === 'computed') {
          for (const node of nodes) enqueue({ type: edge.type, id: node.id, relation: edge.relation })
          continue
        }
        // A tuple-to-userset edge reads the tupleset's tuples, whose user is the bare object:
        // folder:x#viewer leads to `document:?#parent@folder:x`.
        const relation = edge.kind === 'direct' ? edge.relation : edge.tupleset
        let users = edge.kind === 'direct' ? nodes : nodes.map((n) => ({ type: n.type, id: n.id, relation: '' }))
        // A membership edge from a node the closure covered: its usersets are enqueued already.
        const done = edge.kind === 'direct' ? covered?.get(`${edge.type}#${edge.relation}`) : undefined
        if (done) {
          users = users.filter((n) => !done.has(n.relation ? `${n.type}:${n.id}#${n.relation}` : `${n.type}:${n.id}`))
          if (users.length === 0) continue
        }
        ctx.stats.reads++
        const tuples = await ctx.reader.readStartingWithUser(edge.type, relation, users)
        for (const t of tuples) {
          if (!ts.admits(t)) continue
          enqueue({ type: t.objectType, id: t.objectId, relation: edge.relation })
        }
      }
    }
  }

  const objects: string[] = []
  let firstError: unknown
  // Farthest candidates first. Their checks fill the memo with subproblems answered deeper in
  // the walk, i.e. with less of the depth budget left, so a memoised answer reused later is one
  // a fresh check would also reach. Nearest-first would let `folder:0`, 40 parents away from
  // the subject, be confirmed on the back of `folder:1`'s answer although a check of folder:0
  // exceeds the resolve node limit; farthest-first, list-objects meets that limit as check does.
  for (let i = candidates.length - 1; i >= 0; i--) {
    const id = candidates[i]
    if (req.maxResults && objects.length >= req.maxResults) {
      truncated = 'max_results'
      break
    }
    if (sliceSpent(ctx)) await yieldTurn(ctx)
    if (mustStop()) {
      truncated = 'deadline'
      break
    }
    try {
      const allowed = req.confirm
        ? await req.confirm(id)
        : (
            await dispatcher.dispatchCheck({
              objectType: req.objectType,
              objectId: id,
              relation: req.relation,
              subject,
              depth: 0,
              path: undefined,
              ctx,
            })
          ).allowed
      if (allowed) {
        objects.push(`${req.objectType}:${id}`)
        req.onObject?.(`${req.objectType}:${id}`)
      }
    } catch (e) {
      if (e instanceof DeadlineExceededError) {
        truncated = 'deadline'
        break
      }
      if (e instanceof RequestCancelledError) throw e
      firstError ??= e
    }
  }
  if (firstError !== undefined) throw firstError
  return { objects, truncated }
}

/**
 * seedFromClosures enqueues, for each recursive membership family the subject enters directly
 * (`group#member: [user, group#member]`), every userset of it containing the subject, from the
 * store's membership closure (store/readers/membership-closure.ts) instead of walking up one
 * level per round. Returns, for each relation of a family so answered, the nodes whose edges
 * into it need no walk: the subject, its wildcard and the usersets enqueued (what they lead to
 * through the family is among those usersets). Families the closure cannot answer are walked.
 */
function seedFromClosures(
  ctx: ResolutionContext,
  subject: Subject,
  enqueue: (s: Subject) => void,
): Map<string, Set<string>> | undefined {
  const membership = ctx.membership
  if (!membership) return undefined
  const ts = ctx.typesystem
  const graph = reverseGraph(ts)
  const own = subject.relation ? `${subject.type}:${subject.id}#${subject.relation}` : `${subject.type}:${subject.id}`
  const kinds = [subjectReferenceKey(subject)]
  // A plain subject's closure includes what its type's wildcard is in (as the walk from both).
  if (!subject.relation && subject.id !== '*') kinds.push(`${subject.type}:*`)
  let covered: Map<string, Set<string>> | undefined
  for (const kind of kinds) {
    for (const edge of graph.get(kind) ?? []) {
      if (edge.kind !== 'direct' || covered?.has(`${edge.type}#${edge.relation}`)) continue
      const family = ts.usersetClosure(edge.type, edge.relation)
      if (!family) continue
      // No depth limit here: the candidates are confirmed by check, which applies it.
      const reach = membership.reachable(family, subject, Number.POSITIVE_INFINITY, ctx)
      if (!reach) continue
      const nodes = new Set<string>([own, `${subject.type}:*`])
      for (const [key, t] of reach.via) {
        nodes.add(key)
        enqueue({ type: t.objectType, id: t.objectId, relation: t.relation })
      }
      covered ??= new Map()
      for (const r of family.relations) if (!covered.has(r)) covered.set(r, nodes)
    }
  }
  return covered
}
