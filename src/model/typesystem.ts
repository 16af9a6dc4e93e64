/**
 * TypeSystem is a compiled, validated authorization model: the one thing the engine consults
 * to learn how a relation is rewritten and which users a relation admits. It is built once per
 * model id and cached; the engine never sees DSL or raw JSON.
 *
 * @module
 */
import type { AuthorizationModel, RelationReference, Userset } from './types.ts'
import type { Subject, Tuple } from '../core/tuple.ts'
import { compileConditions, type CompiledCondition } from './conditions/compile.ts'

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
  /**
   * The same, by user type and then `''` (a plain user), a relation (a userset) or `*` (the
   * wildcard): what `admits` looks up for every tuple read, without building a key string.
   */
  admittedByUser: Map<string, Map<string, Set<string>>>
}

/**
 * UsersetClosure describes a family of relations whose membership is plain reachability over
 * tuples: each is direct-only (`this`), has no conditions, and its usersets point only into the
 * family, e.g. `group#member: [user, group#member]`. Membership of a subject in any of them can
 * be computed by walking up from the subject (`user:anne` → `group:backend#member` →
 * `group:eng#member`), which touches only the groups the subject is in, instead of walking
 * down every nested group of a document's viewers.
 */
export interface UsersetClosure {
  /** The relations of the family, as `type#relation`. */
  relations: Set<string>
  /** For a subject kind (`user`, `user:*`, `group#member`): the family relations that admit it directly. */
  edges: Map<string, { type: string; relation: string }[]>
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
        const admittedByUser = new Map<string, Map<string, Set<string>>>()
        for (const ref of directTypes) {
          const key = referenceKey(ref)
          let conds = admitted.get(key)
          if (!conds) admitted.set(key, (conds = new Set()))
          conds.add(ref.condition ?? '')
          let byKind = admittedByUser.get(ref.type)
          if (!byKind) admittedByUser.set(ref.type, (byKind = new Map()))
          // The same Set: both views stay one.
          byKind.set(ref.wildcard !== undefined ? '*' : (ref.relation ?? ''), conds)
        }
        relations.set(name, {
          type: td.type,
          name,
          rewrite: compileRewrite(userset),
          directTypes,
          admitted,
          admittedByUser,
        })
      }
      this.types.set(td.type, { name: td.type, relations })
    }
  }

  #closures: Map<string, UsersetClosure | undefined> | undefined

  /**
   * usersetClosure returns the closure family containing `type#relation`, or undefined when
   * membership there needs the full rewrite evaluation.
   */
  usersetClosure(type: string, relation: string): UsersetClosure | undefined {
    this.#closures ??= this.#buildClosures()
    return this.#closures.get(`${type}#${relation}`)
  }

  #buildClosures(): Map<string, UsersetClosure | undefined> {
    // Candidates: direct-only relations without conditions; then drop, until nothing changes,
    // those whose usersets point outside the candidates.
    const candidates = new Set<string>()
    for (const [typeName, t] of this.types) {
      for (const [name, rel] of t.relations) {
        if (rel.rewrite.kind === 'this' && rel.directTypes.length > 0 && rel.directTypes.every((r) => !r.condition)) {
          candidates.add(`${typeName}#${name}`)
        }
      }
    }
    let changed = true
    while (changed) {
      changed = false
      for (const key of candidates) {
        const [type, name] = key.split('#')
        const rel = this.relation(type, name)!
        if (rel.directTypes.some((r) => r.relation && !candidates.has(`${r.type}#${r.relation}`))) {
          candidates.delete(key)
          changed = true
        }
      }
    }
    const out = new Map<string, UsersetClosure | undefined>()
    for (const key of candidates) {
      if (out.has(key)) continue
      // The family of `key`: everything reachable through its usersets.
      const relations = new Set<string>([key])
      const stack = [key]
      while (stack.length) {
        const [type, name] = stack.pop()!.split('#')
        for (const r of this.relation(type, name)!.directTypes) {
          if (!r.relation) continue
          const k = `${r.type}#${r.relation}`
          if (!relations.has(k)) {
            relations.add(k)
            stack.push(k)
          }
        }
      }
      const edges = new Map<string, { type: string; relation: string }[]>()
      for (const k of relations) {
        const [type, name] = k.split('#')
        for (const r of this.relation(type, name)!.directTypes) {
          const kind = referenceKey(r)
          let list = edges.get(kind)
          if (!list) edges.set(kind, (list = []))
          if (!list.some((e) => e.type === type && e.relation === name)) list.push({ type, relation: name })
        }
      }
      // Only recursive families (`group#member: [user, group#member]`) take the upward walk:
      // a chain of distinct relations has a bounded depth already, and walking down it
      // reports the depth limit exactly as OpenFGA does.
      const [keyType, keyName] = key.split('#')
      const recursive = this.relation(keyType, keyName)!.directTypes.some(
        (r) => r.relation && reaches(this, `${r.type}#${r.relation}`, key),
      )
      out.set(key, recursive ? { relations, edges } : undefined)
    }
    return out
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
    const conds = rel.admittedByUser.get(t.userType)?.get(t.userId === '*' ? '*' : t.userRelation)
    if (!conds || !conds.has(t.conditionName)) return false
    if (t.conditionName && !this.conditions.has(t.conditionName)) return false
    return true
  }
}

/** reaches tells whether `to` is reachable from `from` through type-restriction usersets. */
function reaches(ts: TypeSystem, from: string, to: string): boolean {
  const seen = new Set<string>([from])
  const stack = [from]
  while (stack.length) {
    const k = stack.pop()!
    if (k === to) return true
    const [type, name] = k.split('#')
    for (const r of ts.relation(type, name)?.directTypes ?? []) {
      if (!r.relation) continue
      const next = `${r.type}#${r.relation}`
      if (!seen.has(next)) {
        seen.add(next)
        stack.push(next)
      }
    }
  }
  return false
}
