/**
 * The model as a graph (pure, no DOM): what the graph tab draws with cytoscape and lists in its
 * accessible table, from the same element data.
 *
 * Nodes: each type (a compound node), each relation as its child (`document#view`), and each
 * rewrite operator (union `or`, intersection `and`, exclusion `but not`) as a small child node of
 * the type, so nested rewrites keep their shape. Edges go from a relation (or operator) to what
 * it is made of:
 *   direct        `[user]` → the type; `[user:*]` (wildcard) → the type; `[group#member]` →
 *                 group#member; `with cond` on the edge it restricts
 *   computed      `viewer` → document#viewer
 *   ttu           `view from parent` → folder#view, for each type `parent` may hold
 *   operand       an operator to each operand (`base` / `subtract` for `but not`)
 *   rewrite       a relation (or operator) to the operator it is made of, tagged `into`
 */
import type { AuthorizationModel, RelationReference, Userset } from '../types.ts'

export type NodeKind = 'type' | 'relation' | 'operator'
export type Operator = 'union' | 'intersection' | 'exclusion'
export type EdgeKind = 'rewrite' | 'direct' | 'wildcard' | 'userset' | 'computed' | 'ttu' | 'tupleset'

export interface GraphNode {
  id: string
  label: string
  kind: NodeKind
  /** The type this node belongs to (itself for a type). */
  type: string
  /** The compound parent (relations and operators: their type). */
  parent?: string
  operator?: Operator
}

export interface GraphEdge {
  id: string
  source: string
  target: string
  kind: EdgeKind
  label: string
  /** The operator this edge leaves, when it leaves one. */
  operator?: Operator
  /** For a `rewrite` edge: the operator it leads into (what its colour shows). */
  into?: Operator
  /** For an exclusion's operands: which side. */
  side?: 'base' | 'subtract'
  /** The condition a direct grant needs (`[user with in_office]`). */
  condition?: string
}

export interface ModelGraph {
  nodes: GraphNode[]
  edges: GraphEdge[]
}

export const OPERATOR_LABEL: Record<Operator, string> = { union: 'or', intersection: 'and', exclusion: 'but not' }

/** buildGraph: the nodes and edges of a model (see the file comment). */
export function buildGraph(model: Pick<AuthorizationModel, 'type_definitions'>): ModelGraph {
  const nodes: GraphNode[] = []
  const edges: GraphEdge[] = []
  const ids = new Set<string>()
  const relationsOf = new Map<string, Set<string>>()
  for (const td of model.type_definitions) relationsOf.set(td.type, new Set(Object.keys(td.relations ?? {})))
  const hasNode = (id: string) => ids.has(id)
  const addNode = (n: GraphNode) => {
    ids.add(n.id)
    nodes.push(n)
  }
  const edgeIds = new Map<string, number>()
  const addEdge = (e: Omit<GraphEdge, 'id'>) => {
    const base = `${e.source}->${e.target}:${e.kind}`
    const n = edgeIds.get(base) ?? 0
    edgeIds.set(base, n + 1)
    edges.push({ id: n === 0 ? base : `${base}:${n}`, ...e })
  }
  // A node for a type or relation the model names but does not define (so no edge dangles).
  const ensure = (id: string) => {
    if (hasNode(id)) return
    const [type, relation] = id.split('#')
    if (!hasNode(type)) addNode({ id: type, label: type, kind: 'type', type })
    if (relation !== undefined && !hasNode(id)) addNode({ id, label: relation, kind: 'relation', type, parent: type })
  }

  for (const td of model.type_definitions) {
    addNode({ id: td.type, label: td.type, kind: 'type', type: td.type })
    for (const relation of Object.keys(td.relations ?? {})) {
      addNode({ id: `${td.type}#${relation}`, label: relation, kind: 'relation', type: td.type, parent: td.type })
    }
  }

  for (const td of model.type_definitions) {
    const directOf = (relation: string): RelationReference[] =>
      td.metadata?.relations?.[relation]?.directly_related_user_types ?? []
    let opCount = 0
    const walk = (relation: string, from: string, u: Userset, via?: { operator: Operator; side?: 'base' | 'subtract' }) => {
      const tag = via ? { operator: via.operator, ...(via.side ? { side: via.side } : {}) } : {}
      const sideLabel = via?.side === 'subtract' ? 'not ' : ''
      if (u.this) {
        for (const ref of directOf(relation)) {
          const condition = ref.condition && ref.condition !== '' ? ref.condition : undefined
          const withText = condition ? ` with ${condition}` : ''
          if (ref.wildcard) {
            ensure(ref.type)
            addEdge({ source: from, target: ref.type, kind: 'wildcard', label: `${sideLabel}[${ref.type}:*${withText}]`, ...tag, ...(condition ? { condition } : {}) })
          } else if (ref.relation) {
            const target = `${ref.type}#${ref.relation}`
            ensure(target)
            addEdge({ source: from, target, kind: 'userset', label: `${sideLabel}[${target}${withText}]`, ...tag, ...(condition ? { condition } : {}) })
          } else {
            ensure(ref.type)
            addEdge({ source: from, target: ref.type, kind: 'direct', label: `${sideLabel}[${ref.type}${withText}]`, ...tag, ...(condition ? { condition } : {}) })
          }
        }
      } else if (u.computedUserset) {
        const target = `${td.type}#${u.computedUserset.relation}`
        ensure(target)
        addEdge({ source: from, target, kind: 'computed', label: `${sideLabel}${u.computedUserset.relation}`, ...tag })
      } else if (u.tupleToUserset) {
        const tupleset = u.tupleToUserset.tupleset.relation
        const computed = u.tupleToUserset.computedUserset.relation
        const label = `${sideLabel}${computed} from ${tupleset}`
        const targets = directOf(tupleset)
          .filter((ref) => !ref.relation && !ref.wildcard && relationsOf.get(ref.type)?.has(computed))
          .map((ref) => `${ref.type}#${computed}`)
        if (targets.length === 0) {
          // The tupleset holds no type with that relation (or no metadata): point at the tupleset.
          const target = `${td.type}#${tupleset}`
          ensure(target)
          addEdge({ source: from, target, kind: 'tupleset', label, ...tag })
        }
        for (const target of [...new Set(targets)]) addEdge({ source: from, target, kind: 'ttu', label, ...tag })
      } else {
        const operator: Operator | undefined = u.union ? 'union' : u.intersection ? 'intersection' : u.difference ? 'exclusion' : undefined
        if (!operator) return
        const id = `${td.type}#${relation}/${OPERATOR_LABEL[operator].replace(' ', '-')}${opCount++}`
        addNode({ id, label: OPERATOR_LABEL[operator], kind: 'operator', type: td.type, parent: td.type, operator })
        addEdge({ source: from, target: id, kind: 'rewrite', label: via?.side === 'subtract' ? 'not' : (via?.side ?? ''), ...tag, into: operator })
        if (u.difference) {
          walk(relation, id, u.difference.base, { operator, side: 'base' })
          walk(relation, id, u.difference.subtract, { operator, side: 'subtract' })
        } else {
          for (const child of (u.union ?? u.intersection)!.child) walk(relation, id, child, { operator })
        }
      }
    }
    for (const [relation, rewrite] of Object.entries(td.relations ?? {})) walk(relation, `${td.type}#${relation}`, rewrite)
  }
  return { nodes, edges }
}

/** The conditions the graph's edges name, each with the edges it restricts. */
export function conditionsOf(graph: ModelGraph): Map<string, GraphEdge[]> {
  const out = new Map<string, GraphEdge[]>()
  for (const e of graph.edges) if (e.condition) out.set(e.condition, [...(out.get(e.condition) ?? []), e])
  return out
}
