/**
 * The audit tables over SQLite: decision_log, decision_log_settings and grant_usage. The
 * SqliteDatastore delegates its audit methods here.
 *
 * @module
 */
import type Database from 'better-sqlite3'
import { decodeCursor } from '../common.ts'
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
  type DecisionLogSettings,
  type DecisionQuery,
  type DecisionRow,
  type GrantRow,
  type GrantUse,
  type GrantWithUsage,
  type GrantsQuery,
  type IdentityGrantStats,
  type IdentityStatsQuery,
  type IdentityStatsRow,
  type StoredDecision,
} from '../audit.ts'
import type { Subject } from '../../core/tuple.ts'
import type { Page } from '../store.ts'
import { DecisionWriter, INSERT_DECISION_SQL, UPSERT_USAGE_SQL } from './decision-writer.ts'
import { encodeTime } from 'ulid'

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

export class SqliteAudit {
  readonly #db: Database.Database
  /** Query statements by SQL text (one per filter shape). */
  readonly #queries = new Map<string, Database.Statement>()
  /** The worker-thread writer of a file database; undefined for `:memory:`. */
  readonly #writer: DecisionWriter | undefined
  /** The in-thread batch write (in-memory databases). */
  readonly #write: Database.Transaction<(rows: unknown[][], usage: unknown[][]) => void>

  constructor(db: Database.Database, filename: string) {
    this.#db = db
    this.#writer = filename === ':memory:' ? undefined : new DecisionWriter(filename)
    const insert = db.prepare(INSERT_DECISION_SQL)
    const upsert = db.prepare(UPSERT_USAGE_SQL)
    this.#write = db.transaction((rows: unknown[][], usage: unknown[][]) => {
      for (const r of rows) insert.run(r)
      for (const u of usage) upsert.run(u)
    })
  }

  #prepared(sql: string): Database.Statement {
    let s = this.#queries.get(sql)
    if (!s) {
      s = this.#db.prepare(sql)
      this.#queries.set(sql, s)
    }
    return s
  }

  /**
   * appendDecisions writes one batch in one transaction: from a worker thread when the database
   * is a file (see decision-writer.ts), in this thread for an in-memory database, which no other
   * connection can open.
   */
  async appendDecisions(decisions: StoredDecision[], uses: GrantUse[]): Promise<void> {
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
    if (this.#writer) return this.#writer.write(rows, usage)
    this.#write.immediate(rows, usage)
  }

  /** close ends the writer thread (after the batches already handed to it). */
  async close(): Promise<void> {
    await this.#writer?.close()
  }

  /**
   * listDecisions pages newest-first through at most `scanBudget` decisions of the store per
   * call, filtering them (the SQLite table has no secondary indexes: see schema/sqlite.ts).
   * A page may so hold fewer matches than asked, with a continuation token to scan on; a time
   * range narrows the scan itself, since ids are ULIDs of the decision time.
   */
  async listDecisions(storeId: string, q: DecisionQuery): Promise<Page<StoredDecision>> {
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
    const sql = `SELECT * FROM (${window}) WHERE ${where} ORDER BY id DESC LIMIT ?`
    const rows = this.#prepared(sql).all(...range, this.scanBudget, ...values, q.pageSize + 1) as DecisionRow[]
    const items = rows.slice(0, q.pageSize).map(rowToDecision)
    if (rows.length > q.pageSize) return { items, next: decisionCursor(items) }
    // Fewer matches than a page: either the window was the rest of the log, or scanning goes on
    // below its last row.
    const edge = this.#prepared(`SELECT id FROM decision_log WHERE store_id = ?${bounds} ORDER BY id DESC LIMIT 2 OFFSET ?`)
      .all(...range, this.scanBudget - 1) as { id: string }[]
    return { items, next: edge.length === 2 ? JSON.stringify([edge[0].id]) : '' }
  }

  /** The most decisions one listDecisions call reads (a setting for tests). */
  scanBudget = 100_000

  /**
   * deleteDecisionsBefore deletes, among the oldest `limit` rows (rowids grow in insertion
   * order, which is decision order), those decided before `before`: no index on `at` needed.
   */
  async deleteDecisionsBefore(before: number, limit: number): Promise<number> {
    const sql = 'DELETE FROM decision_log WHERE rowid IN (SELECT rowid FROM decision_log ORDER BY rowid LIMIT ?) AND at < ?'
    return this.#prepared(sql).run(limit, before).changes
  }

  async forgetGrantUsage(before: number, limit: number): Promise<number> {
    const sql = `DELETE FROM grant_usage WHERE rowid IN (
      SELECT g.rowid FROM grant_usage g WHERE g.last_used_at < ? AND NOT EXISTS (
        SELECT 1 FROM tuples t WHERE t.store_id = g.store_id AND t.object_type = g.object_type
          AND t.object_id = g.object_id AND t.relation = g.relation AND t.user_relation = g.user_relation
          AND t.user_type = g.user_type AND t.user_id = g.user_id)
      LIMIT ?)`
    return this.#prepared(sql).run(before, limit).changes
  }

  async getDecisionLogSettings(storeId: string): Promise<DecisionLogSettings | undefined> {
    const sql = 'SELECT enabled, sample_rate, updated_at FROM decision_log_settings WHERE store_id = ?'
    const row = this.#prepared(sql).get(storeId) as
      | { enabled: number; sample_rate: number; updated_at: number }
      | undefined
    return row && { enabled: row.enabled === 1, sampleRate: row.sample_rate, updatedAt: new Date(row.updated_at) }
  }

  async putDecisionLogSettings(storeId: string, s: DecisionLogSettings): Promise<void> {
    const sql = `INSERT INTO decision_log_settings (store_id, enabled, sample_rate, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (store_id) DO UPDATE SET enabled = excluded.enabled, sample_rate = excluded.sample_rate,
      updated_at = excluded.updated_at`
    this.#prepared(sql).run(storeId, s.enabled ? 1 : 0, s.sampleRate, s.updatedAt.getTime())
  }

  async listGrants(storeId: string, user: Subject, q: GrantsQuery): Promise<Page<GrantWithUsage>> {
    const after = decodeCursor(q.after, isGrantCursor)
    const sql = `SELECT t.object_type, t.object_id, t.relation, t.user_relation, t.user_type, t.user_id,
        t.condition_name, t.condition_context, t.expires_at, t.inserted_at, g.last_used_at
      FROM tuples t ${USAGE_JOIN}
      WHERE t.store_id = ? AND t.user_type = ? AND t.user_id = ? AND t.user_relation = ?
        AND (t.expires_at IS NULL OR t.expires_at > ?)
        ${after ? 'AND (t.object_type, t.object_id, t.relation) > (?, ?, ?)' : ''}
      ORDER BY t.object_type, t.object_id, t.relation LIMIT ?`
    const values = [storeId, user.type, user.id, user.relation, q.now, ...(after ?? []), q.pageSize + 1]
    const rows = this.#prepared(sql).all(...values) as GrantRow[]
    const items = rows.slice(0, q.pageSize).map(rowToGrant)
    const last = items[items.length - 1]
    const next = rows.length > q.pageSize ? JSON.stringify([last.objectType, last.objectId, last.relation]) : ''
    return { items, next }
  }

  async identityGrantStats(
    storeId: string,
    userType: string,
    q: IdentityStatsQuery,
  ): Promise<Page<IdentityGrantStats>> {
    const after = decodeCursor(q.after, isIdentityCursor)
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
      ORDER BY CAST(s.unused AS REAL) / s.grants DESC, s.user_id, s.user_relation LIMIT ?`
    const values: unknown[] = [q.cutoff, q.cutoff, storeId, userType, q.now]
    if (after) {
      const [unused, grants, id, rel] = after
      values.push(grants, unused, grants, unused, id, id, rel)
    }
    values.push(q.pageSize + 1)
    const rows = this.#prepared(sql).all(...values) as IdentityStatsRow[]
    const page = rows.slice(0, q.pageSize)
    const next = rows.length > q.pageSize ? identityCursor(page[page.length - 1]) : ''
    return { items: page.map(rowToIdentityStats), next }
  }
}
