/**
 * The model's relation graph read backwards, for list-objects: which (type, relation) usersets
 * can directly contain a subject of a given kind. Built once per compiled model and cached.
 *
 * Example, for `type document / define viewer: [user, group#member] or editor / define parent:
 * [folder] / define can_read: viewer from parent`: a node of kind `user` feeds
 * `direct document#viewer`; a node of kind `group#member` feeds `direct document#viewer`;
 * a node of kind `document#editor` feeds `computed document#viewer`.
 *
 * @module
 */
import type { Rewrite, TypeSystem } from '../model/typesystem.ts'

/** ReverseEdge says how a node of some kind leads to members of `type#relation`. */
export type ReverseEdge =
  /** tuples `type:?#relation@<node>` */
  | { kind: 'direct'; type: string; relation: string }
  /** the same object: `type:id#<from>` ⊆ `type:id#relation` */
  | { kind: 'computed'; type: string; relation: string }
  /** tuples `type:?#tupleset@<node object>` lead to `type:?#relation` */
  | { kind: 'ttu'; type: string; relation: string; tupleset: string }

/**
 * Node kinds: `user` (an object of type user), `user:*` (the wildcard), `group#member`
 * (a userset).
 */
export type ReverseGraph = Map<string, ReverseEdge[]>

const graphs = new WeakMap<TypeSystem, ReverseGraph>()

export function reverseGraph(ts: TypeSystem): ReverseGraph {
  let g = graphs.get(ts)
  if (!g) graphs.set(ts, (g = buildReverseGraph(ts)))
  return g
}

function buildReverseGraph(ts: TypeSystem): ReverseGraph {
  const g: ReverseGraph = new Map()
  const add = (from: string, e: ReverseEdge) => {
    let list = g.get(from)
    if (!list) g.set(from, (list = []))
    if (!list.some((x) => JSON.stringify(x) === JSON.stringify(e))) list.push(e)
  }
  for (const [typeName, type] of ts.types) {
    for (const [relName, rel] of type.relations) {
      const visit = (rw: Rewrite): void => {
        switch (rw.kind) {
          case 'this':
            for (const ref of rel.directTypes) {
              const kind = ref.wildcard !== undefined ? `${ref.type}:*` : ref.relation ? `${ref.type}#${ref.relation}` : ref.type
              add(kind, { kind: 'direct', type: typeName, relation: relName })
            }
            return
          case 'computed':
            add(`${typeName}#${rw.relation}`, { kind: 'computed', type: typeName, relation: relName })
            return
          case 'ttu': {
            const tupleset = type.relations.get(rw.tupleset)
            for (const ref of tupleset?.directTypes ?? []) {
              if (ref.relation || ref.wildcard !== undefined) continue
              if (!ts.relation(ref.type, rw.computed)) continue
              add(`${ref.type}#${rw.computed}`, { kind: 'ttu', type: typeName, relation: relName, tupleset: rw.tupleset })
            }
            return
          }
          case 'union':
          case 'intersection':
            // Every child may admit a candidate; check() decides which really are members.
            rw.children.forEach(visit)
            return
          case 'difference':
            visit(rw.base)
            return
        }
      }
      visit(rel.rewrite)
    }
  }
  return g
}
