/**
 * DecisionStore (service/decision-store.ts) over SQL, for both dialects: the decision log, its
 * per-store settings, and grant usage. The batch append is the driver's (PostgreSQL: one insert
 * over `unnest`; SQLite: prepared single-row inserts, from a worker thread for a file).
 *
 * @module
 */
import { encodeTime } from 'ulid'
import type { DecisionStore } from '../../service/decision-store.ts'
import {
  decisionCursor,
  decisionValues,
  decisionWhere,
  identityCursor,
  isGrantCursor,
  isIdentityCursor,
  mergeGrantUses,
  rowToDecision,
  rowToGrant,
  rowToIdentityStats,
  type DecisionRow,
  type GrantRow,
  type IdentityStatsRow,
} from '../audit.ts'
import { decodeCursor } from '../common.ts'
import type { SqlDriver } from './driver.ts'

const isDecisionCursor = (v: unknown): v is [string] =>
  Array.isArray(v) && v.length === 1 && typeof v[0] === 'string'

/** ulidAtOrAfter is the smallest ULID of instant `ms`: ids at or after it were made at or after `ms`. */
function ulidAtOrAfter(ms: number): string {
  return encodeTime(Math.max(0, ms), 10) + '0'.repeat(16)
}

function minId(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return a < b ? a : b
}

/** The join of a tuple `t` with its usage row `g`. */
const USAGE_JOIN = `LEFT JOIN grant_usage g ON g.store_id = t.store_id AND g.object_type = t.object_type
  AND g.object_id = t.object_id AND g.relation = t.relation AND g.user_relation = t.user_relation
  AND g.user_type = t.user_type AND g.user_id = t.user_id`

const SQL = {
  getSettings: 'SELECT enabled, sample_rate, updated_at FROM decision_log_settings WHERE store_id = ?',
  putSettings: `INSERT INTO decision_log_settings (store_id, enabled, sample_rate, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (store_id) DO UPDATE SET enabled = excluded.enabled, sample_rate = excluded.sample_rate,
    updated_at = excluded.updated_at`,
} as const

/** The decision-log port over `d`. */
export function sqlDecisions(d: SqlDriver): DecisionStore {
  /**
   * scanDecisions pages newest-first through at most `budget` decisions of the store per call,
   * filtering them. A page may so hold fewer matches than asked, with a continuation token to
   * scan on; a time range narrows the scan itself, since ids are ULIDs of the decision time.
   */
  const scanDecisions: DecisionStore['listDecisions'] = async (storeId, q) => {
    const budget = d.decisionScanBudget!
    const { where, values } = decisionWhere(storeId, q, () => '?')
    const after = decodeCursor(q.after, isDecisionCursor)?.[0]
    const range: unknown[] = [storeId]
    let bounds = ''
    // A second of slack: an id's time may run a little ahead of its decision's (monotonic ids).
    const upper = minId(after, q.to === undefined ? undefined : ulidAtOrAfter(q.to + 1000))
    if (upper !== undefined) {
      bounds += ' AND id < ?'
      range.push(upper)
    }
    if (q.from !== undefined) {
      // Ids never run behind their decision's time, so none at or after `from` is left out.
      bounds += ' AND id >= ?'
      range.push(ulidAtOrAfter(q.from))
    }
    const window = `SELECT * FROM decision_log WHERE store_id = ?${bounds} ORDER BY id DESC LIMIT ?`
    const sql = `SELECT * FROM (${window}) w WHERE ${where} ORDER BY id DESC LIMIT ?`
    const rows = await d.all<DecisionRow>(sql, [...range, budget, ...values, q.pageSize + 1])
    const items = rows.slice(0, q.pageSize).map(rowToDecision)
    if (rows.length > q.pageSize) return { items, next: decisionCursor(items) }
    // Fewer matches than a page: either the window was the rest of the log, or scanning goes on
    // below its last row.
    const edgeSql = `SELECT id FROM decision_log WHERE store_id = ?${bounds} ORDER BY id DESC LIMIT 2 OFFSET ?`
    const edge = await d.all<{ id: string }>(edgeSql, [...range, budget - 1])
    return { items, next: edge.length === 2 ? JSON.stringify([edge[0].id]) : '' }
  }

  return {
    async appendDecisions(decisions, uses) {
      const rows = decisions.map(decisionValues)
      const usage = mergeGrantUses(uses).map((u) => [
        u.storeId,
        u.objectType,
        u.objectId,
        u.relation,
        u.userRelation,
        u.userType,
        u.userId,
        u.usedAt,
      ])
      if (rows.length === 0 && usage.length === 0) return
      await d.appendDecisions(rows, usage)
    },

    async listDecisions(storeId, q) {
      if (d.decisionScanBudget !== undefined) return scanDecisions(storeId, q)
      const { where, values } = decisionWhere(storeId, q, () => '?')
      const sql = `SELECT * FROM decision_log WHERE ${where} ORDER BY id DESC LIMIT ?`
      const rows = await d.all<DecisionRow>(sql, [...values, q.pageSize + 1])
      const items = rows.slice(0, q.pageSize).map(rowToDecision)
      return { items, next: rows.length > q.pageSize ? decisionCursor(items) : '' }
    },

    deleteDecisionsBefore(before, limit) {
      return d.run(d.deleteDecisionsSql, [before, limit])
    },

    forgetGrantUsage(before, limit) {
      const sql = `DELETE FROM grant_usage WHERE ${d.rowId} IN (
        SELECT g.${d.rowId} FROM grant_usage g WHERE g.last_used_at < ? AND NOT EXISTS (
          SELECT 1 FROM tuples t WHERE t.store_id = g.store_id AND t.object_type = g.object_type
            AND t.object_id = g.object_id AND t.relation = g.relation AND t.user_relation = g.user_relation
            AND t.user_type = g.user_type AND t.user_id = g.user_id)
        LIMIT ?)`
      return d.run(sql, [before, limit])
    },

    async getDecisionLogSettings(storeId) {
      type Row = { enabled: number; sample_rate: number; updated_at: number }
      const row = await d.get<Row>(SQL.getSettings, [storeId])
      return row && { enabled: row.enabled === 1, sampleRate: row.sample_rate, updatedAt: new Date(Number(row.updated_at)) }
    },

    async putDecisionLogSettings(storeId, s) {
      await d.run(SQL.putSettings, [storeId, s.enabled ? 1 : 0, s.sampleRate, s.updatedAt.getTime()])
    },

    async listGrants(storeId, user, q) {
      const after = decodeCursor(q.after, isGrantCursor)
      const sql = `SELECT t.object_type, t.object_id, t.relation, t.user_relation, t.user_type, t.user_id,
          t.condition_name, t.condition_context, t.expires_at, t.inserted_at, g.last_used_at
        FROM tuples t ${USAGE_JOIN}
        WHERE t.store_id = ? AND t.user_type = ? AND t.user_id = ? AND t.user_relation = ?
          AND (t.expires_at IS NULL OR t.expires_at > ?)
          ${after ? 'AND (t.object_type, t.object_id, t.relation) > (?, ?, ?)' : ''}
        ORDER BY t.object_type, t.object_id, t.relation LIMIT ?`
      const values = [storeId, user.type, user.id, user.relation, q.now, ...(after ?? []), q.pageSize + 1]
      const rows = await d.all<GrantRow>(sql, values)
      const items = rows.slice(0, q.pageSize).map(rowToGrant)
      const last = items[items.length - 1]
      const next = rows.length > q.pageSize ? JSON.stringify([last.objectType, last.objectId, last.relation]) : ''
      return { items, next }
    },

    async identityGrantStats(storeId, userType, q) {
      const after = decodeCursor(q.after, isIdentityCursor)
      // Rows are ordered by unused/grants descending; the cursor compares exactly by
      // cross-multiplying integers.
      const sql = `SELECT * FROM (
          SELECT t.user_type, t.user_id, t.user_relation, COUNT(*) AS grants,
            SUM(CASE WHEN t.inserted_at < ? AND (g.last_used_at IS NULL OR g.last_used_at < ?) THEN 1 ELSE 0 END) AS unused
          FROM tuples t ${USAGE_JOIN}
          WHERE t.store_id = ? AND t.user_type = ? AND (t.expires_at IS NULL OR t.expires_at > ?)
          GROUP BY t.user_type, t.user_id, t.user_relation) s
        ${
          after
            ? `WHERE s.unused * ? < ? * s.grants OR (s.unused * ? = ? * s.grants
                 AND (s.user_id > ? OR (s.user_id = ? AND s.user_relation > ?)))`
            : ''
        }
        ORDER BY CAST(s.unused AS DOUBLE PRECISION) / s.grants DESC, s.user_id, s.user_relation LIMIT ?`
      const values: unknown[] = [q.cutoff, q.cutoff, storeId, userType, q.now]
      if (after) {
        const [unused, grants, id, rel] = after
        values.push(grants, unused, grants, unused, id, id, rel)
      }
      values.push(q.pageSize + 1)
      const rows = await d.all<IdentityStatsRow>(sql, values)
      const page = rows.slice(0, q.pageSize)
      const next = rows.length > q.pageSize ? identityCursor(page[page.length - 1]) : ''
      return { items: page.map(rowToIdentityStats), next }
    },
  }
}
