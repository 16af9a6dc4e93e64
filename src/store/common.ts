/**
 * What the SQL core and its drivers share: cursor decoding, the canonical form of a condition
 * context, and the row mapping of tuples and access requests (both dialects return the same rows).
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'
import type { Tuple } from '../core/tuple.ts'
import type {
  AccessRequestEvent,
  AccessRequestRecord,
  AccessRequestStatus,
} from '../service/access-request-store.ts'

export function invalidCursor(): PembaError {
  return new PembaError('invalid_continuation_token', 'Invalid continuation token')
}

/** decodeCursor parses a store cursor (JSON) and checks its shape; anything else is a 400. */
export function decodeCursor<T>(after: string | undefined, check: (v: unknown) => v is T): T | undefined {
  if (after === undefined || after === '') return undefined
  let v: unknown
  try {
    v = JSON.parse(after)
  } catch {
    throw invalidCursor()
  }
  if (!check(v)) throw invalidCursor()
  return v
}

export const isStringArray =
  (n: number) =>
  (v: unknown): v is string[] =>
    Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'string')

/** A change-feed position: [revision, seq]. */
export const isChangePosition = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => Number.isSafeInteger(x) && x >= 0)

/** The stored context text: null when there is none, so `{}` and no context are the same tuple. */
export function canonicalContext(ctx: Record<string, unknown> | undefined): string | null {
  if (ctx === undefined || Object.keys(ctx).length === 0) return null
  return JSON.stringify(ctx)
}

export interface AccessRequestRow {
  store_id: string
  id: string
  object_type: string
  object_id: string
  relation: string
  user: string
  duration_ms: number
  reason: string
  status: AccessRequestStatus
  created_at: number
  pending_until: number
  grant_expires_at: number | null
  /** AuthZEN submissions only (all null otherwise); `submission` is JSON. */
  idempotency_key: string | null
  request_hash: string | null
  binding_jti: string | null
  submission: string | null
}

export interface EventRow {
  request_id: string
  seq: number
  type: AccessRequestEvent['type']
  actor: string
  at: number
  reason: string
}

export function rowToAccessRequest(r: AccessRequestRow, events: EventRow[]): AccessRequestRecord {
  return {
    storeId: r.store_id,
    id: r.id,
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    user: r.user,
    durationMs: r.duration_ms,
    reason: r.reason,
    status: r.status,
    createdAt: new Date(r.created_at),
    pendingUntil: new Date(r.pending_until),
    grantExpiresAt: r.grant_expires_at === null ? null : new Date(r.grant_expires_at),
    events: events.map((e) => ({
      type: e.type,
      actor: e.actor,
      at: new Date(e.at),
      reason: e.reason,
    })),
    ...(r.request_hash !== null && r.binding_jti !== null
      ? {
          submission: {
            idempotencyKey: r.idempotency_key,
            requestHash: r.request_hash,
            bindingJti: r.binding_jti,
            details: r.submission === null ? {} : (JSON.parse(r.submission) as Record<string, unknown>),
          },
        }
      : {}),
  }
}

/** A tuple row as both dialects return it (times as numbers: PostgreSQL's int8 is parsed so). */
export interface TupleRow {
  object_type: string
  object_id: string
  relation: string
  user_relation: string
  user_type: string
  user_id: string
  condition_name: string
  condition_context: string | null
  expires_at: number | null
  inserted_at?: number
}

export function rowToTuple(r: TupleRow): Tuple {
  return {
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    userType: r.user_type,
    userId: r.user_id,
    userRelation: r.user_relation,
    conditionName: r.condition_name,
    conditionContext: r.condition_context === null ? undefined : JSON.parse(r.condition_context),
    ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
  }
}
