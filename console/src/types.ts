/**
 * The API's JSON as the console reads it (docs/api.md). Only the shared shapes live here; a page
 * declares the answers only it reads next to itself.
 */

export interface Store {
  id: string
  name: string
  created_at: string
  updated_at: string
  deleted_at?: string | null
}

/** GET /stores/{store}/summary (Pemba): what the stores page shows of each store. */
export interface StoreSummary extends Store {
  model_count: number
  latest_model_id: string | null
  tuple_count: number
  /** The count stopped at its cap (1,000,000): there are at least that many. */
  tuple_count_capped: boolean
  last_change_at: string | null
}

export interface Condition {
  name: string
  context?: Record<string, unknown>
}

export interface TupleKey {
  user: string
  relation: string
  object: string
  condition?: Condition | null
  expires_at?: string
}

export interface Tuple {
  key: TupleKey
  timestamp: string
}

export interface TupleChange {
  tuple_key: TupleKey
  operation: 'TUPLE_OPERATION_WRITE' | 'TUPLE_OPERATION_DELETE'
  timestamp: string
}

export interface RelationReference {
  type: string
  relation?: string
  wildcard?: Record<string, never>
  condition?: string
}

export interface Userset {
  this?: Record<string, never>
  computedUserset?: { relation: string }
  tupleToUserset?: { tupleset: { relation: string }; computedUserset: { relation: string } }
  union?: { child: Userset[] }
  intersection?: { child: Userset[] }
  difference?: { base: Userset; subtract: Userset }
}

export interface TypeDefinition {
  type: string
  relations?: Record<string, Userset>
  metadata?: {
    relations?: Record<string, { directly_related_user_types?: RelationReference[] }>
  } | null
}

export interface ConditionDefinition {
  name: string
  expression: string
  parameters?: Record<string, { type_name: string }>
}

export interface AuthorizationModel {
  id: string
  schema_version: string
  type_definitions: TypeDefinition[]
  conditions?: Record<string, ConditionDefinition>
}
