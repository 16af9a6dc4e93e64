/**
 * Domain values to the JSON OpenFGA's gateway emits: every unpopulated field present (`""`,
 * `null`, `[]`, `{}`), oneof members only when set, enums as names, times in RFC 3339.
 *
 * @module
 */
import { formatExpiry, tupleToKey, type Subject, type TupleKey } from '../core/tuple.ts'
import type { AuthorizationModel, RelationReference } from '../model/types.ts'
import type { AccessRequestRecord, StoreRecord, StoredTuple, TupleChange } from '../store/store.ts'
import { formatDuration } from '../service/duration.ts'
import type { BatchCheckItemResult } from '../service/checks.ts'
import type { MixedBatchCheckItemResult } from '../service/token-checks.ts'
import { batchItemError, type ErrorContext } from './errors.ts'
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

/**
 * tupleKeyJson renders a tuple key as OpenFGA does, plus `expires_at` (Pemba) only when the
 * tuple has one: a tuple without an expiry reads exactly as in OpenFGA.
 */
export function tupleKeyJson(k: TupleKey) {
  const out: Record<string, unknown> = {
    user: k.user,
    relation: k.relation,
    object: k.object,
    condition: k.condition ? { name: k.condition.name, context: k.condition.context ?? {} } : null,
  }
  if (k.expires_at) out.expires_at = k.expires_at
  return out
}

export function storedTupleJson(t: StoredTuple) {
  return { key: tupleKeyJson(tupleToKey(t)), timestamp: formatTime(t.insertedAt) }
}

export function changeJson(c: TupleChange) {
  const key: TupleKey = { user: c.user, relation: c.relation, object: `${c.objectType}:${c.objectId}` }
  if (c.operation === 'write' && c.conditionName) {
    key.condition = { name: c.conditionName, context: c.conditionContext ?? {} }
  }
  if (c.operation === 'write' && c.expiresAt !== undefined) {
    key.expires_at = formatExpiry(c.expiresAt)
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
          metadata: c.metadata ? { module: c.metadata.module ?? '', source_info: c.metadata.source_info ?? null } : null,
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

/**
 * accessRequestJson renders a just-in-time access request (as presented at the request's
 * instant, so a pending one past its deadline reads `expired`).
 */
export function accessRequestJson(r: AccessRequestRecord) {
  return {
    id: r.id,
    tuple_key: { user: r.user, relation: r.relation, object: `${r.objectType}:${r.objectId}` },
    duration: formatDuration(r.durationMs),
    reason: r.reason,
    status: r.status,
    created_at: formatTime(r.createdAt),
    pending_until: formatTime(r.pendingUntil),
    grant_expires_at: r.grantExpiresAt ? formatTime(r.grantExpiresAt) : null,
    events: r.events.map((e) => ({
      type: e.type,
      actor: e.actor,
      at: formatTime(e.at),
      reason: e.reason,
    })),
  }
}

/**
 * batchCheckResultJson renders a batch-check's `result`, item by item in the order they were
 * answered: `{allowed}` as OpenFGA (Pemba adds `denied_by` to a delegated denial, `witness` and
 * `explanation` to an explained item), or `{error}` (batchItemError).
 */
export function batchCheckResultJson(result: Record<string, BatchCheckItemResult>, ctx: ErrorContext) {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [id, item] of Object.entries(result)) out[id] = batchCheckItemJson(item, ctx)
  return out
}

function batchCheckItemJson(item: BatchCheckItemResult, ctx: ErrorContext): Record<string, unknown> {
  if (!item.ok) return { error: batchItemError(item.error, ctx) }
  const r = item.output
  const out: Record<string, unknown> = r.deniedBy ? { allowed: false, denied_by: r.deniedBy } : { allowed: r.allowed }
  if (r.explanation) {
    out.witness = r.witness
    out.explanation = r.explanation
  }
  return out
}

/**
 * mixedBatchCheckResultJson renders a batch whose items may carry `subject_token`: as
 * batchCheckResultJson, with the verified `token` after the answer, and a token refused (or a
 * chain nothing can act for) as `{allowed: false, reason | denied_by, token, explanation}`.
 */
export function mixedBatchCheckResultJson(result: Record<string, MixedBatchCheckItemResult>, ctx: ErrorContext) {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [id, item] of Object.entries(result)) {
    if ('unevaluated' in item) {
      const u = item.unevaluated
      const json: Record<string, unknown> = { allowed: false }
      if (u.reason) json.reason = u.reason
      if (u.deniedBy) json.denied_by = u.deniedBy
      if (u.token) json.token = u.token
      if (u.explanation) json.explanation = u.explanation
      out[id] = json
      continue
    }
    const json = batchCheckItemJson(item, ctx)
    if (item.token) json.token = item.token
    out[id] = json
  }
  return out
}
