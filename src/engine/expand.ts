/**
 * expand answers one level of a relation's rewrite for one object, as OpenFGA's UsersetTree:
 * direct users are listed, computed usersets and tuple-to-usersets are named, not followed.
 *
 * @module
 */
import { formatSubject } from '../core/tuple.ts'
import type { Rewrite } from '../model/typesystem.ts'
import type { ResolutionContext } from './dispatch.ts'
import { stopIfDue } from './limits.ts'
import { sliceSpent, yieldTurn } from './pacing.ts'

/**
 * paced: between tuples (every 1024), give the event loop back when the slice is spent, and
 * stop when the client has gone away or the deadline has passed (an object may have very many
 * direct users, all listed in one answer).
 */
async function paced(ctx: ResolutionContext): Promise<void> {
  if (sliceSpent(ctx)) await yieldTurn(ctx)
  stopIfDue(ctx)
}

export type ExpandNode =
  | { name: string; leaf: ExpandLeaf }
  | { name: string; union: { nodes: ExpandNode[] } }
  | { name: string; intersection: { nodes: ExpandNode[] } }
  | { name: string; difference: { base: ExpandNode; subtract: ExpandNode } }

export type ExpandLeaf =
  | { users: { users: string[] } }
  | { computed: { userset: string } }
  | { tupleToUserset: { tupleset: string; computed: { userset: string }[] } }

export async function expand(
  ctx: ResolutionContext,
  objectType: string,
  objectId: string,
  relation: string,
): Promise<ExpandNode> {
  const ts = ctx.typesystem
  const rel = ts.relation(objectType, relation)!
  const object = `${objectType}:${objectId}`
  const name = `${object}#${relation}`

  const walk = async (rw: Rewrite): Promise<ExpandNode> => {
    switch (rw.kind) {
      case 'this': {
        const tuples = await ctx.reader.readObjectRelation(objectType, objectId, relation)
        const users = new Set<string>()
        for (let i = 0; i < tuples.length; i++) {
          if ((i & 1023) === 1023) await paced(ctx)
          const t = tuples[i]
          if (ts.admits(t)) users.add(formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation }))
        }
        return { name, leaf: { users: { users: [...users] } } }
      }
      case 'computed':
        return { name, leaf: { computed: { userset: `${object}#${rw.relation}` } } }
      case 'ttu': {
        const tuples = await ctx.reader.readObjectRelation(objectType, objectId, rw.tupleset)
        const computed: { userset: string }[] = []
        const seen = new Set<string>()
        for (let i = 0; i < tuples.length; i++) {
          if ((i & 1023) === 1023) await paced(ctx)
          const t = tuples[i]
          if (!ts.admits(t) || t.userRelation || t.userId === '*') continue
          if (!ts.relation(t.userType, rw.computed)) continue
          const userset = `${t.userType}:${t.userId}#${rw.computed}`
          if (seen.has(userset)) continue
          seen.add(userset)
          computed.push({ userset })
        }
        return { name, leaf: { tupleToUserset: { tupleset: `${object}#${rw.tupleset}`, computed } } }
      }
      case 'union':
        return { name, union: { nodes: await Promise.all(rw.children.map(walk)) } }
      case 'intersection':
        return { name, intersection: { nodes: await Promise.all(rw.children.map(walk)) } }
      case 'difference':
        return { name, difference: { base: await walk(rw.base), subtract: await walk(rw.subtract) } }
    }
  }
  stopIfDue(ctx)
  return walk(rel.rewrite)
}
