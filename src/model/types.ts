/**
 * The authorization model as OpenFGA's API carries it (schema 1.1), in the canonical shape Pemba
 * stores and returns: the rewrite keys are the proto JSON names (`computedUserset`,
 * `tupleToUserset`), every other key is snake_case. Input in either spelling is normalised into
 * this shape by `api/contracts` before anything else sees it.
 *
 * @module
 */

/** ObjectRelation names a relation on the same object (`object` is always "" in schema 1.1). */
export interface ObjectRelation {
  object?: string
  relation: string
}

/** Userset is one rewrite node: exactly one key is set. */
export type Userset =
  | { this: Record<string, never> }
  | { computedUserset: ObjectRelation }
  | { tupleToUserset: { tupleset: ObjectRelation; computedUserset: ObjectRelation } }
  | { union: { child: Userset[] } }
  | { intersection: { child: Userset[] } }
  | { difference: { base: Userset; subtract: Userset } }

/**
 * RelationReference is one entry of a type restriction: `[user]`, `[group#member]`,
 * `[user:*]`, or any of these `with <condition>`. `relation` and `wildcard` are exclusive.
 */
export interface RelationReference {
  type: string
  relation?: string
  wildcard?: Record<string, never>
  condition?: string
}

export interface SourceInfo {
  file?: string
}

export interface RelationMetadata {
  directly_related_user_types?: RelationReference[]
  module?: string
  source_info?: SourceInfo | null
}

export interface TypeMetadata {
  relations?: Record<string, RelationMetadata> | null
  module?: string
  source_info?: SourceInfo | null
}

export interface TypeDefinition {
  type: string
  relations?: Record<string, Userset>
  metadata?: TypeMetadata | null
}

/** The CEL parameter types a condition may declare. */
export type ConditionTypeName =
  | 'TYPE_NAME_UNSPECIFIED'
  | 'TYPE_NAME_ANY'
  | 'TYPE_NAME_BOOL'
  | 'TYPE_NAME_STRING'
  | 'TYPE_NAME_INT'
  | 'TYPE_NAME_UINT'
  | 'TYPE_NAME_DOUBLE'
  | 'TYPE_NAME_DURATION'
  | 'TYPE_NAME_TIMESTAMP'
  | 'TYPE_NAME_MAP'
  | 'TYPE_NAME_LIST'
  | 'TYPE_NAME_IPADDRESS'

export interface ConditionParamTypeRef {
  type_name: ConditionTypeName
  generic_types?: ConditionParamTypeRef[]
}

export interface ConditionMetadata {
  module?: string
  source_info?: SourceInfo | null
}

/** Condition is a named CEL expression over typed parameters, e.g. `x < 100` with `x: int`. */
export interface Condition {
  name: string
  expression: string
  parameters?: Record<string, ConditionParamTypeRef>
  metadata?: ConditionMetadata | null
}

/** AuthorizationModelInput is what a client writes; `AuthorizationModel` adds the minted id. */
export interface AuthorizationModelInput {
  schema_version: string
  type_definitions: TypeDefinition[]
  conditions?: Record<string, Condition>
}

export interface AuthorizationModel extends AuthorizationModelInput {
  id: string
}
