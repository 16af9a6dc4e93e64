/**
 * Domain values to the JSON OpenFGA's gateway emits: every unpopulated field present (`""`,
 * `null`, `[]`, `{}`), oneof members only when set, enums as names, times in RFC 3339.
 *
 * @module
 */
import { tupleToKey, type Subject, type TupleKey } from '../core/tuple.ts'
import type { AuthorizationModel, RelationReference } from '../model/types.ts'
import type { StoreRecord, StoredTuple, TupleChange } from '../store/store.ts'
import { formatTime } from './validation.ts'

export function storeJson(s: StoreRecord, withDeleted = true) {
  const out: Record<string, unknown> = {
    id: s.id,
    name: s.name,
    created_at: formatTime(s.createdAt),
    updated_at: formatTime(s.updatedAt),
  }
  if (withDeleted) out.deleted_at = s.deletedAt ? formatTime(s.deletedAt) : null
  return out
}

export function tupleKeyJson(k: TupleKey) {
  return {
    user: k.user,
    relation: k.relation,
    object: k.object,
    condition: k.condition ? { name: k.condition.name, context: k.condition.context ?? {} } : null,
  }
}

export function storedTupleJson(t: StoredTuple) {
  return { key: tupleKeyJson(tupleToKey(t)), timestamp: formatTime(t.insertedAt) }
}

export function changeJson(c: TupleChange) {
  const key: TupleKey = { user: c.user, relation: c.relation, object: `${c.objectType}:${c.objectId}` }
  if (c.operation === 'write' && c.conditionName) {
    key.condition = { name: c.conditionName, context: c.conditionContext ?? {} }
  }
  return {
    tuple_key: tupleKeyJson(key),
    operation: c.operation === 'write' ? 'TUPLE_OPERATION_WRITE' : 'TUPLE_OPERATION_DELETE',
    timestamp: formatTime(c.timestamp),
  }
}

function referenceJson(r: RelationReference) {
  const out: Record<string, unknown> = { type: r.type }
  if (r.relation) out.relation = r.relation
  if (r.wildcard !== undefined) out.wildcard = {}
  out.condition = r.condition ?? ''
  return out
}

/** modelJson renders a stored model with every unpopulated field, as OpenFGA returns it. */
export function modelJson(m: AuthorizationModel) {
  return {
    id: m.id,
    schema_version: m.schema_version,
    type_definitions: m.type_definitions.map((td) => ({
      type: td.type,
      relations: td.relations ?? {},
      metadata: td.metadata
        ? {
            relations: Object.fromEntries(
              Object.entries(td.metadata.relations ?? {}).map(([name, rm]) => [
                name,
                {
                  directly_related_user_types: (rm.directly_related_user_types ?? []).map(referenceJson),
                  module: rm.module ?? '',
                  source_info: rm.source_info ?? null,
                },
              ]),
            ),
            module: td.metadata.module ?? '',
            source_info: td.metadata.source_info ?? null,
          }
        : null,
    })),
    conditions: Object.fromEntries(
      Object.entries(m.conditions ?? {}).map(([name, c]) => [
        name,
        {
          name: c.name,
          expression: c.expression,
          parameters: Object.fromEntries(
            Object.entries(c.parameters ?? {}).map(([p, t]) => [p, { type_name: t.type_name, generic_types: t.generic_types ?? [] }]),
          ),
          metadata: c.metadata ?? null,
        },
      ]),
    ),
  }
}

/** userJson renders a list-users result as the User oneof. */
export function userJson(s: Subject) {
  if (s.id === '*') return { wildcard: { type: s.type } }
  if (s.relation) return { userset: { type: s.type, id: s.id, relation: s.relation } }
  return { object: { type: s.type, id: s.id } }
}

