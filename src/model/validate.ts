/**
 * Semantic validation of an authorization model before it is stored, following OpenFGA's
 * `typesystem.NewAndValidate` (pkg/typesystem/typesystem.go) so that a model Pemba accepts is one
 * OpenFGA accepts and vice versa, with the same `invalid_authorization_model` messages where the
 * upstream wording already names the type and relation.
 *
 * The checks run in phases, each assuming the previous ones passed:
 *
 *  1. shape and names: every rewrite node has exactly one well-formed operator; type, relation
 *     and condition names match the API's patterns (upstream enforces these in the proto layer);
 *  2. schema version, duplicate types, reserved names, metadata for undefined relations;
 *  3. per relation (types and relations in sorted order, as upstream, so the first error reported
 *     is deterministic): rewrite references and type restrictions;
 *  4. per relation: entrypoints (can any concrete user ever be related?) and computed-userset
 *     cycles;
 *  5. conditions: the map key equals the condition's name.
 *
 * Deliberate differences from upstream, all of them about models no client writes on purpose:
 *  - entrypoints are the least fixpoint over the whole model rather than upstream's depth-first
 *    walk, which has had false "no entrypoints" rejections of satisfiable models
 *    (openfga/openfga#1260, #1385, #1475). Every relation upstream's walk accepts is accepted
 *    here, and more: it also accepts satisfiable models the walk still refuses (see the test).
 *  - a `union` or `intersection` with no children is rejected (upstream treats an empty
 *    intersection as always satisfiable).
 *  - metadata describing a relation that the type does not define is rejected (upstream ignores
 *    it).
 *  - a CEL expression is not compiled here; that belongs to the condition evaluator.
 *
 * Pure and linear-ish in the size of the model: it runs on every model write. Its errors are
 * `InvalidModelError`s (PembaErrors) naming the type, relation or condition at fault, so that
 * `pemba model validate` can point at the line of a model file.
 *
 * @module
 */

import { bug } from '../core/errors.ts'
import { InvalidModelError, type ModelSubject } from './model-error.ts'
import type {
  AuthorizationModelInput,
  RelationReference,
  TypeDefinition,
  Userset,
} from './types.ts'

/** Schema versions OpenFGA accepts on write (`typesystem.IsSchemaVersionSupported`). */
const SUPPORTED_SCHEMA_VERSIONS = new Set(['1.1', '1.2'])

/**
 * The API's name patterns. Upstream's are Go RE2 `^[^:#@\s]{1,254}$`, where `\s` is only
 * `[\t\n\f\r ]` and the length counts code points; the `u` flag makes `{1,254}` count code points
 * too, and the class is spelled out so that e.g. a no-break space stays a legal character.
 */
const TYPE_NAME_PATTERN = /^[^:#@\t\n\f\r ]{1,254}$/u
const RELATION_NAME_PATTERN = /^[^:#@\t\n\f\r ]{1,50}$/u
const CONDITION_NAME_PATTERN = RELATION_NAME_PATTERN
const TYPE_NAME_PATTERN_TEXT = '^[^:#@\\s]{1,254}$'
const RELATION_NAME_PATTERN_TEXT = '^[^:#@\\s]{1,50}$'

const RESERVED_NAMES = new Set(['self', 'this'])

// Upstream error texts (pkg/typesystem/error.go).
const ERR_INVALID_USERSET_REWRITE = 'invalid userset rewrite definition'
const ERR_RESERVED_KEYWORDS = 'self and this are reserved keywords'
const ERR_CYCLE = 'an authorization model cannot contain a cycle'
const ERR_NO_ENTRYPOINTS = 'no entrypoints defined'
const ERR_NO_ENTRYPOINTS_LOOP = 'potential loop'

/** One rewrite node with its operator resolved, so the walks below never re-inspect keys. */
type RewriteNode =
  | { kind: 'this' }
  | { kind: 'computed'; relation: string }
  | { kind: 'ttu'; tupleset: string; computed: string }
  | { kind: 'union' | 'intersection'; children: Userset[] }
  | { kind: 'difference'; base: Userset; subtract: Userset }

interface RelationInfo {
  type: string
  name: string
  rewrite: Userset
  /** `metadata.relations[name].directly_related_user_types`, i.e. the type restrictions. */
  directTypes: RelationReference[]
}

/** type → relation → info; built once the names are known to be unique and well formed. */
type Index = Map<string, Map<string, RelationInfo>>

/**
 * validateAuthorizationModel throws `PembaError('invalid_authorization_model', …)` for the first
 * rule the model breaks and returns normally for a valid model. It does not modify the model.
 */
export function validateAuthorizationModel(model: AuthorizationModelInput): void {
  checkShapeAndNames(model)

  if (!SUPPORTED_SCHEMA_VERSIONS.has(model.schema_version)) fail('invalid schema version')

  const seen = new Set<string>()
  for (const td of model.type_definitions) {
    if (seen.has(td.type)) {
      fail(`an authorization model cannot contain duplicate types: '${td.type}'`, { type: td.type })
    }
    seen.add(td.type)
  }

  for (const td of model.type_definitions) {
    if (RESERVED_NAMES.has(td.type)) {
      fail(
        `the definition of type '${td.type}' is invalid: ${ERR_RESERVED_KEYWORDS}`,
        { type: td.type },
      )
    }
    for (const relation of Object.keys(td.relations ?? {})) {
      if (RESERVED_NAMES.has(relation)) {
        fail(invalidRelation(td.type, relation, ERR_RESERVED_KEYWORDS), { type: td.type, relation })
      }
    }
    for (const relation of Object.keys(td.metadata?.relations ?? {})) {
      if (!Object.hasOwn(td.relations ?? {}, relation)) {
        fail(
          `the metadata of relation '${relation}' in object type '${td.type}' describes a ` +
            'relation that the type does not define',
          { type: td.type, relation },
        )
      }
    }
  }

  const index = buildIndex(model.type_definitions)
  const conditions = model.conditions ?? {}
  const ordered = orderedRelations(index)

  const tuplesets = new Map<string, Set<string>>()
  for (const rel of ordered) {
    checkRewriteReferences(index, rel, rel.rewrite)
    checkTypeRestrictions(index, conditions, tuplesets, rel)
  }

  const entrypoints = computeEntrypoints(index, ordered)
  const cycles = new Map<string, boolean>()
  for (const rel of ordered) {
    if (!entrypoints.has(key(rel.type, rel.name))) {
      const loop = failsThroughLoop(index, entrypoints, rel)
      fail(
        invalidRelation(rel.type, rel.name, loop ? ERR_NO_ENTRYPOINTS_LOOP : ERR_NO_ENTRYPOINTS),
        at(rel),
      )
    }
    if (reachesComputedCycle(index, rel.type, rel.name, cycles, new Set())) {
      fail(invalidRelation(rel.type, rel.name, ERR_CYCLE), at(rel))
    }
  }

  for (const name of Object.keys(conditions).sort(compareStrings)) {
    const condition = conditions[name]
    if (condition.name !== name) {
      fail(
        `condition key '${name}' does not match condition name '${condition.name}'`,
        { condition: name },
      )
    }
  }
}

/** fail refuses the model; `subject` names what the rule is about, for positions in a file. */
function fail(message: string, subject?: ModelSubject): never {
  throw new InvalidModelError(message, subject)
}

const at = (rel: RelationInfo): ModelSubject => ({ type: rel.type, relation: rel.name })

function invalidRelation(type: string, relation: string, cause: string): string {
  return `the definition of relation '${relation}' in object type '${type}' is invalid: ${cause}`
}

/** Upstream's `InvalidRelationTypeError`, plus the reason it leaves out. */
function invalidRelationType(rel: RelationInfo, ref: RelationReference, reason: string): string {
  return (
    `the relation type '${referenceString(ref)}' on '${rel.name}' in object type ` +
    `'${rel.type}' is not valid: ${reason}`
  )
}

/** `user`, `user:*`, `group#member`, each optionally ` with cond` – the DSL spelling. */
function referenceString(ref: RelationReference): string {
  let s = ref.type
  if (ref.relation) s += `#${ref.relation}`
  else if (ref.wildcard) s += ':*'
  return ref.condition ? `${s} with ${ref.condition}` : s
}

function key(type: string, relation: string): string {
  return `${type}#${relation}`
}

/** Code-unit order: Go's `sort.Strings` order for every name without astral characters. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const REWRITE_KEYS = [
  'this',
  'computedUserset',
  'tupleToUserset',
  'union',
  'intersection',
  'difference',
] as const

/**
 * nodeOf resolves a rewrite's operator, or returns undefined when the node is malformed (no
 * operator, several operators, or an operator with missing operands), which the protobuf layer
 * rejects upstream.
 */
function nodeOf(u: unknown): RewriteNode | undefined {
  if (!isObject(u)) return undefined
  let op: (typeof REWRITE_KEYS)[number] | undefined
  for (const k of REWRITE_KEYS) {
    if (u[k] === undefined || u[k] === null) continue
    if (op !== undefined) return undefined
    op = k
  }
  if (op === undefined) return undefined
  const value = u[op]
  if (!isObject(value)) return undefined
  switch (op) {
    case 'this':
      return { kind: 'this' }
    case 'computedUserset':
      return typeof value.relation === 'string'
        ? { kind: 'computed', relation: value.relation }
        : undefined
    case 'tupleToUserset': {
      const tupleset = value.tupleset
      const computed = value.computedUserset
      if (!isObject(tupleset) || !isObject(computed)) return undefined
      if (typeof tupleset.relation !== 'string' || typeof computed.relation !== 'string') {
        return undefined
      }
      return { kind: 'ttu', tupleset: tupleset.relation, computed: computed.relation }
    }
    case 'union':
    case 'intersection':
      // An empty child list is rejected: a union of nothing can never be satisfied and an
      // intersection of nothing would be satisfied by everyone.
      return Array.isArray(value.child) && value.child.length > 0
        ? { kind: op, children: value.child as Userset[] }
        : undefined
    case 'difference':
      return isObject(value.base) && isObject(value.subtract)
        ? { kind: 'difference', base: value.base as Userset, subtract: value.subtract as Userset }
        : undefined
  }
}

/** node is nodeOf for rewrites already checked by checkShapeAndNames. */
function node(u: Userset): RewriteNode {
  const n = nodeOf(u)
  return n ?? bug('an unchecked rewrite reached model validation')
}

function childrenOf(n: RewriteNode): Userset[] {
  if (n.kind === 'union' || n.kind === 'intersection') return n.children
  if (n.kind === 'difference') return [n.base, n.subtract]
  return []
}

/**
 * Phase 1: everything the later phases take for granted – the JSON shape, well-formed rewrites
 * and type restrictions, and names matching the API's patterns (`user:1` or `can view` cannot
 * be a type or relation because `:`, `#`, `@` and spaces delimit tuple fields).
 */
function checkShapeAndNames(model: AuthorizationModelInput): void {
  if (!isObject(model)) fail('the authorization model must be an object')
  if (typeof model.schema_version !== 'string') fail('invalid schema version')
  if (!Array.isArray(model.type_definitions) || model.type_definitions.length === 0) {
    fail('an authorization model must contain at least one type definition')
  }
  for (const td of model.type_definitions as unknown[]) {
    if (!isObject(td) || typeof td.type !== 'string') {
      fail('every type definition must have a string `type`')
    }
    const type = td.type
    if (!TYPE_NAME_PATTERN.test(type)) {
      fail(
        `invalid type name '${type}': value does not match regex pattern ` +
          `"${TYPE_NAME_PATTERN_TEXT}"`,
        { type },
      )
    }
    const relations = optionalObject(td.relations, `the relations of object type '${type}'`)
    for (const [relation, rewrite] of Object.entries(relations)) {
      if (!RELATION_NAME_PATTERN.test(relation)) {
        fail(
          `invalid relation name '${relation}' in object type '${type}': value does not match ` +
            `regex pattern "${RELATION_NAME_PATTERN_TEXT}"`,
          { type, relation },
        )
      }
      checkRewriteShape(type, relation, rewrite)
    }
    const metadata = optionalObject(td.metadata, `the metadata of object type '${type}'`)
    const metaRelations = optionalObject(
      metadata.relations,
      `the relation metadata of object type '${type}'`,
    )
    for (const [relation, meta] of Object.entries(metaRelations)) {
      checkRelationMetadataShape(type, relation, meta)
    }
  }
  const conditions = optionalObject(model.conditions, 'the conditions of an authorization model')
  for (const [name, condition] of Object.entries(conditions)) {
    if (!CONDITION_NAME_PATTERN.test(name)) {
      fail(
        `invalid condition name '${name}': value does not match regex pattern ` +
          `"${RELATION_NAME_PATTERN_TEXT}"`,
        { condition: name },
      )
    }
    if (!isObject(condition) || typeof condition.name !== 'string') {
      fail(`condition '${name}' must be an object with a string name`, { condition: name })
    }
  }
}

/** optionalObject treats null and undefined as `{}` (protobuf's unset message or map). */
function optionalObject(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {}
  if (!isObject(v)) fail(`${what} must be an object`)
  return v
}

function checkRewriteShape(type: string, relation: string, rewrite: unknown): void {
  const n = nodeOf(rewrite)
  if (!n) fail(invalidRelation(type, relation, ERR_INVALID_USERSET_REWRITE), { type, relation })
  for (const child of childrenOf(n)) checkRewriteShape(type, relation, child)
}

function checkRelationMetadataShape(type: string, relation: string, meta: unknown): void {
  const where = `relation '${relation}' in object type '${type}'`
  if (meta === null || meta === undefined) return
  if (!isObject(meta)) fail(`the metadata of ${where} must be an object`, { type, relation })
  const refs = meta.directly_related_user_types
  if (refs === undefined || refs === null) return
  if (!Array.isArray(refs)) fail(
    `the directly related user types of ${where} must be a list`,
    { type, relation },
  )
  for (const ref of refs as unknown[]) {
    if (!isObject(ref) || typeof ref.type !== 'string') {
      fail(
        `every directly related user type of ${where} must have a string \`type\``,
        { type, relation },
      )
    }
    if (ref.relation !== undefined && ref.relation !== null && typeof ref.relation !== 'string') {
      fail(
        `the type restriction '${ref.type}' on ${where} has a non-string relation`,
        { type, relation },
      )
    }
    if (
      ref.condition !== undefined &&
      ref.condition !== null &&
      typeof ref.condition !== 'string'
    ) {
      fail(
        `the type restriction '${ref.type}' on ${where} has a non-string condition`,
        { type, relation },
      )
    }
    const hasWildcard = ref.wildcard !== undefined && ref.wildcard !== null
    if (ref.relation && hasWildcard) {
      fail(
        `the relation type '${ref.type}#${ref.relation}' on '${relation}' in object type ` +
          `'${type}' is not valid: a type restriction cannot be both a userset and a wildcard`,
        { type, relation },
      )
    }
  }
}

function buildIndex(typeDefinitions: TypeDefinition[]): Index {
  const index: Index = new Map()
  for (const td of typeDefinitions) {
    const relations = new Map<string, RelationInfo>()
    const metadata = td.metadata?.relations ?? {}
    for (const [name, rewrite] of Object.entries(td.relations ?? {})) {
      const directTypes = Object.hasOwn(metadata, name)
        ? (metadata[name]?.directly_related_user_types ?? [])
        : []
      relations.set(name, { type: td.type, name, rewrite, directTypes })
    }
    index.set(td.type, relations)
  }
  return index
}

function orderedRelations(index: Index): RelationInfo[] {
  const out: RelationInfo[] = []
  for (const type of [...index.keys()].sort(compareStrings)) {
    const relations = index.get(type)!
    for (const name of [...relations.keys()].sort(compareStrings)) out.push(relations.get(name)!)
  }
  return out
}

function lookup(index: Index, type: string, relation: string): RelationInfo | undefined {
  return index.get(type)?.get(relation)
}

/**
 * Phase 3a (upstream `isUsersetRewriteValid`): every relation a rewrite names must exist.
 *
 * A tupleset is read as plain tuples (`document:1#parent@folder:x`), so it must be a purely
 * direct relation, and the TTU's computed relation must exist on at least one type the tupleset
 * allows: `define viewer: viewer from parent` needs `viewer` on `folder` when
 * `define parent: [folder]`.
 */
function checkRewriteReferences(index: Index, rel: RelationInfo, rewrite: Userset): void {
  const n = node(rewrite)
  const referencedBy = `(referenced by relation '${rel.name}' in object type '${rel.type}')`
  switch (n.kind) {
    case 'this':
      return
    case 'computed':
      if (n.relation === rel.name) {
        fail(invalidRelation(rel.type, rel.name, ERR_INVALID_USERSET_REWRITE), at(rel))
      }
      if (!lookup(index, rel.type, n.relation)) {
        fail(`'${rel.type}#${n.relation}' relation is undefined ${referencedBy}`, at(rel))
      }
      return
    case 'ttu': {
      const tupleset = lookup(index, rel.type, n.tupleset)
      if (!tupleset) fail(
        `'${rel.type}#${n.tupleset}' relation is undefined ${referencedBy}`,
        at(rel),
      )
      if (node(tupleset.rewrite).kind !== 'this') {
        fail(
          `the '${rel.type}#${n.tupleset}' relation is referenced in at least one tupleset and ` +
            'thus must be a direct relation',
          at(rel),
        )
      }
      if (!tupleset.directTypes.some((ref) => lookup(index, ref.type, n.computed))) {
        const types = tupleset.directTypes.map(referenceString).join(', ')
        fail(
          `undefined relation: ${n.computed} does not appear as a relation in any of the ` +
            `directly related user types [${types}] of tupleset '${rel.type}#${n.tupleset}' ` +
            referencedBy,
          at(rel),
        )
      }
      return
    }
    default:
      for (const child of childrenOf(n)) checkRewriteReferences(index, rel, child)
  }
}

function containsThis(rewrite: Userset): boolean {
  const n = node(rewrite)
  return n.kind === 'this' || childrenOf(n).some(containsThis)
}

/** tuplesetRelations lists the relations of `type` used as the tupleset of some `X from Y`. */
function tuplesetRelations(index: Index, type: string): Set<string> {
  const out = new Set<string>()
  const walk = (rewrite: Userset): void => {
    const n = node(rewrite)
    if (n.kind === 'ttu') out.add(n.tupleset)
    for (const child of childrenOf(n)) walk(child)
  }
  for (const rel of index.get(type)!.values()) walk(rel.rewrite)
  return out
}

/**
 * Phase 3b (upstream `validateTypeRestrictions`): a relation has type restrictions exactly when
 * its rewrite contains `this`; each restriction names an existing type (and relation, for
 * `group#member`) and an existing condition; a tupleset only allows plain object types, since
 * `document:1#parent@folder:x#viewer` or `@folder:*` cannot name a parent object.
 * `tuplesets` caches `tuplesetRelations` per type across calls.
 */
function checkTypeRestrictions(
  index: Index,
  conditions: NonNullable<AuthorizationModelInput['conditions']>,
  tuplesets: Map<string, Set<string>>,
  rel: RelationInfo,
): void {
  const assignable = containsThis(rel.rewrite)
  if (assignable && rel.directTypes.length === 0) {
    fail(
      `the assignable relation '${rel.name}' in object type '${rel.type}' must contain at ` +
        'least one relation type',
      at(rel),
    )
  }
  if (!assignable && rel.directTypes.length !== 0) {
    fail(
      `the non-assignable relation '${rel.name}' in object type '${rel.type}' should not ` +
        'contain a relation type',
      at(rel),
    )
  }
  for (const ref of rel.directTypes) {
    if (!index.has(ref.type)) fail(invalidRelationType(rel, ref, 'undefined object type'), at(rel))
    if (ref.relation || ref.wildcard) {
      let ofType = tuplesets.get(rel.type)
      if (!ofType) {
        ofType = tuplesetRelations(index, rel.type)
        tuplesets.set(rel.type, ofType)
      }
      if (ofType.has(rel.name)) {
        fail(
          invalidRelationType(
            rel,
            ref,
            'a relation used as a tupleset may only allow object types, not usersets or wildcards',
          ),
          at(rel),
        )
      }
      if (ref.relation && !lookup(index, ref.type, ref.relation)) {
        fail(invalidRelationType(rel, ref, 'undefined relation'), at(rel))
      }
    }
    if (ref.condition && !Object.hasOwn(conditions, ref.condition)) {
      fail(
        `condition ${ref.condition} is undefined for relation ${rel.name} in object type ` +
          `'${rel.type}'`,
        at(rel),
      )
    }
  }
}

/**
 * satisfiable says whether a rewrite node can relate some concrete user, given which relations
 * are already known to (`entrypoints`). A direct `[user]` or `[user:*]` is an entrypoint by
 * itself; `[group#member]` only if `group#member` is; a TTU if the computed relation is on at
 * least one allowed parent type; union any child, intersection every child, and difference both
 * operands (upstream requires the subtrahend to be satisfiable too).
 */
function satisfiable(
  index: Index,
  entrypoints: Set<string>,
  rel: RelationInfo,
  rewrite: Userset,
): boolean {
  const n = node(rewrite)
  switch (n.kind) {
    case 'this':
      return rel.directTypes.some(
        (ref) => !ref.relation || entrypoints.has(key(ref.type, ref.relation)),
      )
    case 'computed':
      return entrypoints.has(key(rel.type, n.relation))
    case 'ttu': {
      const tupleset = lookup(index, rel.type, n.tupleset)!
      return tupleset.directTypes.some((ref) => entrypoints.has(key(ref.type, n.computed)))
    }
    case 'union':
      return n.children.some((c) => satisfiable(index, entrypoints, rel, c))
    case 'intersection':
      return n.children.every((c) => satisfiable(index, entrypoints, rel, c))
    case 'difference':
      return (
        satisfiable(index, entrypoints, rel, n.base) &&
        satisfiable(index, entrypoints, rel, n.subtract)
      )
  }
}

/**
 * computeEntrypoints returns every `type#relation` that some finite chain of tuples can satisfy:
 * the least fixpoint of `satisfiable`. `define a: b` + `define b: a` never enter the set, nor does
 * `define viewer: viewer from parent` without a direct branch. Each relation is evaluated once,
 * then again only when a relation it depends on joins the set, so the cost stays proportional to
 * the number of references in the model whatever order the relations come in.
 */
function computeEntrypoints(index: Index, relations: RelationInfo[]): Set<string> {
  const dependents = new Map<string, RelationInfo[]>()
  for (const rel of relations) {
    for (const dependency of dependenciesOf(index, rel, rel.rewrite)) {
      const list = dependents.get(dependency)
      if (list) list.push(rel)
      else dependents.set(dependency, [rel])
    }
  }
  const entrypoints = new Set<string>()
  const queue = [...relations]
  while (queue.length > 0) {
    const rel = queue.pop()!
    const k = key(rel.type, rel.name)
    if (entrypoints.has(k) || !satisfiable(index, entrypoints, rel, rel.rewrite)) continue
    entrypoints.add(k)
    for (const dependent of dependents.get(k) ?? []) queue.push(dependent)
  }
  return entrypoints
}

/** dependenciesOf lists the `type#relation` keys whose entrypoints `satisfiable` consults. */
function dependenciesOf(index: Index, rel: RelationInfo, rewrite: Userset): string[] {
  const n = node(rewrite)
  switch (n.kind) {
    case 'this':
      return rel.directTypes
        .filter((ref) => ref.relation)
        .map((ref) => key(ref.type, ref.relation!))
    case 'computed':
      return [key(rel.type, n.relation)]
    case 'ttu':
      return lookup(index, rel.type, n.tupleset)!.directTypes.map((ref) =>
        key(ref.type, n.computed),
      )
    default:
      return childrenOf(n).flatMap((child) => dependenciesOf(index, rel, child))
  }
}

/**
 * failsThroughLoop picks upstream's wording for a relation without entrypoints: "potential loop"
 * when the failing branch runs around a cycle of computed usersets on the same type
 * (`define a: b` + `define b: a`), "no entrypoints defined" otherwise (e.g. a TTU or `[x#rel]`
 * that leads nowhere). It follows only unsatisfiable branches, as upstream's walk does.
 */
function failsThroughLoop(index: Index, entrypoints: Set<string>, rel: RelationInfo): boolean {
  const onPath = new Set<string>([rel.name])
  const done = new Map<string, boolean>()
  const walk = (current: RelationInfo, rewrite: Userset): boolean => {
    const n = node(rewrite)
    switch (n.kind) {
      case 'this':
      case 'ttu':
        return false
      case 'computed': {
        if (onPath.has(n.relation)) return true
        const memo = done.get(n.relation)
        if (memo !== undefined) return memo
        const target = lookup(index, current.type, n.relation)!
        onPath.add(n.relation)
        const result = walk(target, target.rewrite)
        onPath.delete(n.relation)
        done.set(n.relation, result)
        return result
      }
      case 'union':
        return n.children.some((c) => walk(current, c))
      case 'intersection':
      case 'difference': {
        const failing = childrenOf(n).find((c) => !satisfiable(index, entrypoints, current, c))
        return failing !== undefined && walk(current, failing)
      }
    }
  }
  return walk(rel, rel.rewrite)
}

/**
 * reachesComputedCycle is upstream's `HasCycle`: following computed usersets (through unions,
 * intersections and differences, but not TTUs or direct assignments, which consume a tuple per
 * step) from `type#relation` reaches a relation twice. Upstream rejects such relations even when
 * they have an entrypoint, e.g. `define viewer: [user] or editor` with `define editor: viewer`.
 * `memo` caches finished relations (key `type#relation`) across calls.
 */
function reachesComputedCycle(
  index: Index,
  type: string,
  relation: string,
  memo: Map<string, boolean>,
  onPath: Set<string>,
): boolean {
  const k = key(type, relation)
  if (onPath.has(k)) return true
  const cached = memo.get(k)
  if (cached !== undefined) return cached
  onPath.add(k)
  let result = false
  const walk = (rewrite: Userset): void => {
    if (result) return
    const n = node(rewrite)
    if (n.kind === 'computed') {
      if (reachesComputedCycle(index, type, n.relation, memo, onPath)) result = true
      return
    }
    for (const child of childrenOf(n)) walk(child)
  }
  walk(lookup(index, type, relation)!.rewrite)
  onPath.delete(k)
  memo.set(k, result)
  return result
}
