/**
 * AccessRequestStore (service/access-request-store.ts) over SQL, for both dialects. Approving
 * grants the request's tuple by the planner's JIT rule (write-plan.ts planGrant) in the same
 * transaction that marks the request approved, under the store row's lock as every write.
 *
 * @module
 */
import type { Tuple } from '../../core/tuple.ts'
import {
  EXPIRY_ACTOR,
  effectiveStatus,
  type AccessRequestDecision,
  type AccessRequestEvent,
  type AccessRequestRecord,
  type AccessRequestStatus,
  type AccessRequestStore,
  type AccessRequestSubmission,
} from '../../service/access-request-store.ts'
import { decodeCursor, isStringArray, rowToAccessRequest, type AccessRequestRow, type EventRow } from '../common.ts'
import { planGrant } from '../write-plan.ts'
import { all, get, run, type SqlDriver, type Tx } from './driver.ts'
import { applyChanges, storedOne } from './tuples.ts'

const SQL = {
  insert: `INSERT INTO access_requests (store_id, id, object_type, object_id, relation, "user",
    duration_ms, reason, status, created_at, pending_until, grant_expires_at,
    idempotency_key, request_hash, binding_jti, submission)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  get: 'SELECT * FROM access_requests WHERE store_id = ? AND id = ?',
  byIdempotencyKey: 'SELECT * FROM access_requests WHERE store_id = ? AND idempotency_key = ?',
  byBindingJti: 'SELECT * FROM access_requests WHERE store_id = ? AND binding_jti = ?',
  /** The request's status; read for update, approvals, denials and expiry of it take turns. */
  status: 'SELECT status, pending_until FROM access_requests WHERE store_id = ? AND id = ?',
  setStatus: 'UPDATE access_requests SET status = ?, grant_expires_at = ? WHERE store_id = ? AND id = ?',
  /** Appends an event; the caller holds the request (or just created it), so seq is free. */
  insertEvent: `INSERT INTO access_request_events (store_id, request_id, seq, type, actor, at, reason)
    VALUES (?, ?, (SELECT COUNT(*) FROM access_request_events WHERE store_id = ? AND request_id = ?), ?, ?, ?, ?)`,
  head: 'SELECT revision FROM stores WHERE id = ?',
  /** Pending requests past their deadline. */
  due: `SELECT store_id, id, pending_until FROM access_requests
    WHERE status = 'pending' AND pending_until <= ? ORDER BY pending_until LIMIT ?`,
} as const

/** The WHERE clause of an effective-status filter; `pending` and `expired` compare with `now`. */
function statusClause(status: AccessRequestStatus | undefined): string | undefined {
  switch (status) {
    case undefined:
      return undefined
    case 'pending':
      return "(status = 'pending' AND pending_until > ?)"
    case 'expired':
      return "(status = 'expired' OR (status = 'pending' AND pending_until <= ?))"
    case 'approved':
      return "status = 'approved'"
    case 'denied':
      return "status = 'denied'"
    case 'cancelled':
      return "status = 'cancelled'"
  }
}

function* appendEvent(storeId: string, id: string, e: AccessRequestEvent): Tx<void> {
  yield* run(SQL.insertEvent, [storeId, id, storeId, id, e.type, e.actor, e.at.getTime(), e.reason])
}

/** lockPending holds the request and returns undefined when it is pending at `ts`, else why not. */
function* lockPending(d: SqlDriver, storeId: string, id: string, ts: number): Tx<AccessRequestDecision | undefined> {
  type Row = { status: AccessRequestStatus; pending_until: number }
  const row = yield* get<Row>(SQL.status + d.forUpdate, [storeId, id])
  if (!row) return { ok: false, status: 'missing' }
  const status = effectiveStatus(row.status, row.pending_until, ts)
  return status === 'pending' ? undefined : { ok: false, status }
}

function* approve(
  d: SqlDriver,
  storeId: string,
  id: string,
  t: Tuple,
  event: AccessRequestEvent,
  ts: number,
): Tx<AccessRequestDecision> {
  // The store first, as every writer takes it: the grant's revision is then in order.
  const next = yield* d.nextRevision(storeId)
  if (next === undefined) return { ok: false, status: 'missing' }
  const notPending = yield* lockPending(d, storeId, id, ts)
  const plan = notPending ? undefined : planGrant(yield* storedOne(d, storeId, t), t, ts)
  if (plan?.kind === 'changes') {
    yield* applyChanges(d, storeId, next, plan.changes, ts)
  } else {
    yield* d.settleRevision(storeId, next, false)
    if (notPending) return notPending
    if (plan?.kind === 'conflict') return { ok: false, status: 'pending', conflict: plan.conflict }
  }
  const revision = plan?.kind === 'changes' ? next : next - 1
  yield* run(SQL.setStatus, ['approved', t.expiresAt ?? null, storeId, id])
  yield* appendEvent(storeId, id, event)
  return { ok: true, revision }
}

/** close ends a request pending at `ts` without a grant: denied or cancelled. */
function* close(
  d: SqlDriver,
  storeId: string,
  id: string,
  status: 'denied' | 'cancelled',
  event: AccessRequestEvent,
  ts: number,
): Tx<AccessRequestDecision> {
  const notPending = yield* lockPending(d, storeId, id, ts)
  if (notPending) return notPending
  yield* run(SQL.setStatus, [status, null, storeId, id])
  yield* appendEvent(storeId, id, event)
  return { ok: true, revision: (yield* get<{ revision: number }>(SQL.head, [storeId]))?.revision ?? 0 }
}

/** The submission columns: idempotency_key, request_hash, binding_jti, submission (JSON). */
function submissionColumns(s: AccessRequestSubmission | undefined): (string | null)[] {
  if (!s) return [null, null, null, null]
  return [s.idempotencyKey, s.requestHash, s.bindingJti, JSON.stringify(s.details)]
}

/** insertRequest stores a new request with its events. */
function* insertRequest(r: AccessRequestRecord): Tx<void> {
  yield* run(SQL.insert, [
    r.storeId,
    r.id,
    r.objectType,
    r.objectId,
    r.relation,
    r.user,
    r.durationMs,
    r.reason,
    r.status,
    r.createdAt.getTime(),
    r.pendingUntil.getTime(),
    r.grantExpiresAt?.getTime() ?? null,
    ...submissionColumns(r.submission),
  ])
  for (const e of r.events) yield* appendEvent(r.storeId, r.id, e)
}

/** The access-request port over `d`. */
export function sqlAccessRequests(d: SqlDriver): AccessRequestStore {
  const withEvents = async (storeId: string, rows: AccessRequestRow[]): Promise<AccessRequestRecord[]> => {
    if (rows.length === 0) return []
    const ids = rows.map(() => '?').join(', ')
    const sql = `SELECT * FROM access_request_events WHERE store_id = ? AND request_id IN (${ids}) ORDER BY request_id, seq`
    const events = await d.all<EventRow>(sql, [storeId, ...rows.map((r) => r.id)])
    return rows.map((r) => rowToAccessRequest(r, events.filter((e) => e.request_id === r.id)))
  }

  return {
    createAccessRequest(r) {
      return d.transaction(() => insertRequest(r))
    },

    async submitAccessRequests(rs) {
      const storeId = rs[0].storeId
      const key = rs[0].submission.idempotencyKey
      const attempt = () =>
        d.transaction(function* () {
          const byKey = key === null ? undefined : yield* get<AccessRequestRow>(SQL.byIdempotencyKey, [storeId, key])
          if (byKey) return { clash: 'idempotency_key' as const, row: byKey }
          for (const r of rs) {
            const byJti = yield* get<AccessRequestRow>(SQL.byBindingJti, [storeId, r.submission.bindingJti])
            if (byJti) return { clash: 'binding_jti' as const, row: byJti }
          }
          for (const r of rs) yield* insertRequest(r)
          return undefined
        })
      let found: Awaited<ReturnType<typeof attempt>>
      try {
        found = await attempt()
      } catch (e) {
        // Two submissions raced past the lookups and the unique index refused the later
        // insert: looking again finds the earlier one (if it does not, the error was another).
        found = await attempt().catch(() => {
          throw e
        })
      }
      if (!found) return { created: true }
      return { created: false, clash: found.clash, existing: (await withEvents(storeId, [found.row]))[0] }
    },

    async getAccessRequest(storeId, id) {
      const row = await d.get<AccessRequestRow>(SQL.get, [storeId, id])
      return row && (await withEvents(storeId, [row]))[0]
    },

    async getAccessRequestByIdempotencyKey(storeId, key) {
      const row = await d.get<AccessRequestRow>(SQL.byIdempotencyKey, [storeId, key])
      return row && (await withEvents(storeId, [row]))[0]
    },

    async listAccessRequests(storeId, q) {
      const where = ['store_id = ?']
      const params: unknown[] = [storeId]
      const status = statusClause(q.status)
      if (status) {
        where.push(status)
        if (q.status === 'pending' || q.status === 'expired') params.push(q.now)
      }
      const after = decodeCursor(q.after, isStringArray(1))
      if (after) {
        where.push('id > ?')
        params.push(after[0])
      }
      params.push(q.pageSize + 1)
      const sql = `SELECT * FROM access_requests WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`
      const rows = await d.all<AccessRequestRow>(sql, params)
      const items = await withEvents(storeId, rows.slice(0, q.pageSize))
      return { items, next: rows.length > q.pageSize ? JSON.stringify([items[items.length - 1].id]) : '' }
    },

    approveAccessRequest(storeId, id, tuple, event, now) {
      return d.transaction(() => approve(d, storeId, id, tuple, event, now.getTime()))
    },

    denyAccessRequest(storeId, id, event, now) {
      return d.transaction(() => close(d, storeId, id, 'denied', event, now.getTime()))
    },

    cancelAccessRequest(storeId, id, event, now) {
      return d.transaction(() => close(d, storeId, id, 'cancelled', event, now.getTime()))
    },

    expireAccessRequests(now, limit) {
      return d.transaction(function* () {
        // Rows another sweeper holds are left to it.
        type Due = { store_id: string; id: string; pending_until: number }
        const due = yield* all<Due>(SQL.due + d.forUpdateSkipLocked, [now.getTime(), limit])
        if (due.length > 0) yield* d.expireRequests(due, EXPIRY_ACTOR)
        return due.length
      })
    },
  }
}
