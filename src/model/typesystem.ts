/**
 * TypeSystem is a compiled, validated authorization model: the one thing the engine consults
 * to learn how a relation is rewritten and which users a relation admits. It is built once per
 * model id and cached; the engine never sees DSL or raw JSON.
 *
 * @module
 */
import type { AuthorizationModel, RelationReference, Userset } from './types.ts'
import type { Subject, Tuple } from '../core/tuple.ts'
import { compileConditions, type CompiledCondition } from './conditions.ts'

/** Rewrite is the normalised rewrite tree of one relation. */
export type Rewrite =
  | { kind: 'this' }
  | { kind: 'computed'; relation: string }
  | { kind: 'ttu'; tupleset: string; computed: string }
  | { kind: 'union'; children: Rewrite[] }
  | { kind: 'intersection'; children: Rewrite[] }
  | { kind: 'difference'; base: Rewrite; subtract: Rewrite }

/** CompiledRelation is one relation of one type, e.g. `document#viewer`. */
export interface CompiledRelation {
  type: string
  name: string
  rewrite: Rewrite
  /** The type restriction: which users a tuple `type:x#name@user` may carry. */
  directTypes: RelationReference[]
  /** Fast membership for tuple admission: keys like `user`, `user:*`, `group#member`, each with its allowed condition names ('' = no condition). */
  admitted: Map<string, Set<string>>
}

export interface CompiledType {
  name: string
  relations: Map<string, CompiledRelation>
}

/** referenceKey names a type-restriction entry independent of its condition. */
export function referenceKey(ref: { type: string; relation?: string; wildcard?: unknown }): string {
  if (ref.wildcard !== undefined) return `${ref.type}:*`
  if (ref.relation) return `${ref.type}#${ref.relation}`
  return ref.type
}

/** subjectReferenceKey is the restriction key a concrete subject needs, e.g. `group:eng#member` → `group#member`. */
export function subjectReferenceKey(s: Subject): string {
  if (s.id === '*') return `${s.type}:*`
  if (s.relation) return `${s.type}#${s.relation}`
  return s.type
}

export function compileRewrite(u: Userset): Rewrite {
  if ('this' in u) return { kind: 'this' }
  if ('computedUserset' in u) return { kind: 'computed', relation: u.computedUserset.relation }
  if ('tupleToUserset' in u)
    return {
      kind: 'ttu',
      tupleset: u.tupleToUserset.tupleset.relation,
      computed: u.tupleToUserset.computedUserset.relation,
    }
  if ('union' in u) return { kind: 'union', children: u.union.child.map(compileRewrite) }
  if ('intersection' in u)
    return { kind: 'intersection', children: u.intersection.child.map(compileRewrite) }
  return {
    kind: 'difference',
    base: compileRewrite(u.difference.base),
    subtract: compileRewrite(u.difference.subtract),
  }
}

export class TypeSystem {
  readonly id: string
  readonly model: AuthorizationModel
  readonly types: Map<string, CompiledType>
  readonly conditions: Map<string, CompiledCondition>

  constructor(model: AuthorizationModel, options: { maxConditionCost?: number } = {}) {
    this.id = model.id
    this.model = model
    this.conditions = compileConditions(model.conditions, { maxCost: options.maxConditionCost })
    this.types = new Map()
    for (const td of model.type_definitions) {
      const relations = new Map<string, CompiledRelation>()
      for (const [name, userset] of Object.entries(td.relations ?? {})) {
        const directTypes = td.metadata?.relations?.[name]?.directly_related_user_types ?? []
        const admitted = new Map<string, Set<string>>()
        for (const ref of directTypes) {
          const key = referenceKey(ref)
          let conds = admitted.get(key)
          if (!conds) admitted.set(key, (conds = new Set()))
          conds.add(ref.condition ?? '')
        }
        relations.set(name, {
          type: td.type,
          name,
          rewrite: compileRewrite(userset),
          directTypes,
          admitted,
        })
      }
      this.types.set(td.type, { name: td.type, relations })
    }
  }

  hasType(type: string): boolean {
    return this.types.has(type)
  }

  relation(type: string, relation: string): CompiledRelation | undefined {
    return this.types.get(type)?.relations.get(relation)
  }

  /**
   * admits tells whether the current model lets a stored tuple count: its object type and
   * relation exist, its user matches the relation's type restriction, and its condition (or
   * the lack of one) is one the restriction names. Tuples written under an older model that
   * fail this are ignored by evaluation, never an error.
   */
  admits(t: Tuple): boolean {
    const rel = this.relation(t.objectType, t.relation)
    if (!rel) return false
    const key =
      t.userId === '*' ? `${t.userType}:*` : t.userRelation ? `${t.userType}#${t.userRelation}` : t.userType
    const conds = rel.admitted.get(key)
    if (!conds || !conds.has(t.conditionName)) return false
    if (t.conditionName && !this.conditions.has(t.conditionName)) return false
    return true
  }
}
