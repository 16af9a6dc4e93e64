/**
 * Delegated checks: an actor acting on behalf of a principal, possibly through a chain
 * (`agent:summarizer` for `agent:planner` for `user:alice`). The actor may do something only if
 *
 * 1. every hop is delegated: `agent:summarizer acts_for agent:planner` and
 *    `agent:planner acts_for user:alice` (the `acts_for` relation of each principal's type, which
 *    may itself be conditional, expiring or reached through groups like any other relation); and
 * 2. every identity in the chain, the actor included, has the relation on the object.
 *
 * So an agent can never do more than the person it works for, nor more than its own grants,
 * nor act for someone who did not delegate to it: the confused-deputy problem, closed.
 *
 * @module
 */
import { formatSubject, type Subject, type Tuple } from '../core/tuple.ts'
import type { CheckDispatcher, CheckResult, ResolutionContext } from './dispatch.ts'
import { traceOf } from './explain.ts'
import type { TraceNode } from './trace.ts'

/** The relation a principal's type defines to say who may act for it. */
export const ACTS_FOR = 'acts_for'

/** Which part of a delegated check failed. */
export type DeniedBy = 'delegation' | 'principal' | 'actor'

export interface DelegatedCheckResult {
  allowed: boolean
  deniedBy?: DeniedBy
  /** For an allowed answer: the tuples of every hop and every grant it needed. */
  witness?: Tuple[]
  /** In an explained request: one node per question asked, in order. */
  steps?: TraceNode[]
}

/**
 * delegatedCheck decides whether `actor`, acting through `chain` (nearest principal first),
 * has `relation` on `objectType:objectId`. Delegation hops are checked first (they are cheap
 * and most often what is missing), then the principals, then the actor.
 */
export async function delegatedCheck(
  dispatcher: CheckDispatcher,
  ctx: ResolutionContext,
  object: { type: string; id: string },
  relation: string,
  actor: Subject,
  chain: Subject[],
  /** Only check the delegation hops (for list-objects, which checks the rest per object). */
  hopsOnly = false,
): Promise<DelegatedCheckResult> {
  const witness: Tuple[] = []
  const steps: TraceNode[] | undefined = ctx.explain ? [] : undefined
  const ask = async (label: string, objectType: string, objectId: string, rel: string, subject: Subject) => {
    const r: CheckResult = await dispatcher.dispatchCheck({ objectType, objectId, relation: rel, subject, depth: 0, path: undefined, ctx })
    if (r.witness) witness.push(...r.witness)
    steps?.push({ step: 'delegation', allowed: r.allowed, label, children: [traceOf(r)] })
    return r
  }
  const denied = (deniedBy: DeniedBy): DelegatedCheckResult => (steps ? { allowed: false, deniedBy, steps } : { allowed: false, deniedBy })
  let acting = actor
  for (const principal of chain) {
    const label = `delegation: ${formatSubject(acting)} acts for ${formatSubject(principal)}`
    const hop = await ask(label, principal.type, principal.id, ACTS_FOR, acting)
    if (!hop.allowed) return denied('delegation')
    acting = principal
  }
  if (hopsOnly) return { allowed: true }
  for (let i = chain.length - 1; i >= 0; i--) {
    const label = `principal ${formatSubject(chain[i])} has ${relation} on ${object.type}:${object.id}`
    const r = await ask(label, object.type, object.id, relation, chain[i])
    if (!r.allowed) return denied('principal')
  }
  const own = await ask(`actor ${formatSubject(actor)} has ${relation} on ${object.type}:${object.id}`, object.type, object.id, relation, actor)
  if (!own.allowed) return denied('actor')
  return steps ? { allowed: true, witness, steps } : { allowed: true, witness }
}
