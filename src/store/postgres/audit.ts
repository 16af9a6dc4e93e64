/**
 * The audit tables over PostgreSQL: decision_log, decision_log_settings and grant_usage. The
 * PostgresDatastore delegates its audit methods here. A batch of decisions is one INSERT over
 * `unnest` of column arrays (any batch size, one named statement); grant uses are one upsert
 * keeping the latest `last_used_at`, with keys sorted so that replicas flushing at once lock
 * rows in the same order.
 *
 * @module
 */
import type pg from 'pg'
import type { Subject } from '../../core/tuple.ts'
import { decodeCursor } from '../common.ts'
import {
  DECISION_COLUMNS,
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
  type GrantUse,
  type GrantWithUsage,
  type GrantsQuery,
  type IdentityGrantStats,
  type IdentityStatsQuery,
  type IdentityStatsRow,
  type StoredDecision,
} from '../audit.ts'
import type { Page } from '../store.ts'

/** The element type of each decision_log column, for `unnest($n::type[])`. */
const DECISION_TYPES: Record<(typeof DECISION_COLUMNS)[number], string> = {
  store_id: 'text',
  id: 'text',
  at: 'bigint',
  kind: 'text',
  model_id: 'text',
  client: 'text',
  subject: 'text',
  on_behalf_of: 'text',
  relation: 'text',
  object: 'text',
  allowed: 'int',
  witness: 'text',
  latency_us: 'bigint',
  consistency: 'text',
  request_id: 'text',
  detail: 'text',
}

const USAGE_JOIN = `LEFT JOIN grant_usage g ON g.store_id = t.store_id AND g.object_type = t.object_type
  AND g.object_id = t.object_id AND g.relation = t.relation AND g.user_relation = t.user_relation
  AND g.user_type = t.user_type AND g.user_id = t.user_id`

const SQL = {
  insertDecisions: `INSERT INTO decision_log (${DECISION_COLUMNS.join(', ')})
    SELECT * FROM unnest(${DECISION_COLUMNS.map((c, i) => `$${i + 1}::${DECISION_TYPES[c]}[]`).join(', ')})`,
  upsertUsage: `INSERT INTO grant_usage (store_id, object_type, object_id, relation, user_relation, user_type, user_id, last_used_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
    ON CONFLICT (store_id, object_type, object_id, relation, user_relation, user_type, user_id)
    DO UPDATE SET last_used_at = GREATEST(grant_usage.last_used_at, excluded.last_used_at)`,
  deleteDecisions: `DELETE FROM decision_log WHERE ctid IN (
    SELECT ctid FROM decision_log WHERE at < $1 LIMIT $2)`,
  forgetUsage: `DELETE FROM grant_usage WHERE ctid IN (
    SELECT g.ctid FROM grant_usage g WHERE g.last_used_at < $1 AND NOT EXISTS (
      SELECT 1 FROM tuples t WHERE t.store_id = g.store_id AND t.object_type = g.object_type
        AND t.object_id = g.object_id AND t.relation = g.relation AND t.user_relation = g.user_relation
        AND t.user_type = g.user_type AND t.user_id = g.user_id)
    LIMIT $2)`,
  getSettings: 'SELECT enabled, sample_rate, updated_at FROM decision_log_settings WHERE store_id = $1',
  putSettings: `INSERT INTO decision_log_settings (store_id, enabled, sample_rate, updated_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (store_id) DO UPDATE SET enabled = excluded.enabled, sample_rate = excluded.sample_rate,
    updated_at = excluded.updated_at`,
} as const

const q = (name: keyof typeof SQL, values: unknown[]): pg.QueryConfig => ({
  name: `pemba_audit_${name}`,
  text: SQL[name],
  values,
})

/** Attempts of a flush transaction that met a deadlock or serialization failure. */
const ATTEMPTS = 5
const RETRYABLE = new Set(['40001', '40P01'])

export class PostgresAudit {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async appendDecisions(decisions: StoredDecision[], uses: GrantUse[]): Promise<void> {
    if (decisions.length === 0 && uses.length === 0) return
    const columns: unknown[][] = DECISION_COLUMNS.map(() => new Array(decisions.length))
    decisions.forEach((d, row) => decisionValues(d).forEach((v, col) => (columns[col][row] = v)))
    const merged = mergeGrantUses(uses)
    const usage: unknown[][] = [[], [], [], [], [], [], [], []]
    for (const u of merged) {
      const v = [u.storeId, u.objectType, u.objectId, u.relation, u.userRelation, u.userType, u.userId, u.usedAt]
      v.forEach((x, i) => usage[i].push(x))
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#transaction(async (c) => {
          if (decisions.length > 0) await c.query(q('insertDecisions', columns))
          if (merged.length > 0) await c.query(q('upsertUsage', usage))
        })
        return
      } catch (e) {
        const code = (e as { code?: string }).code
        if (attempt >= ATTEMPTS || !code || !RETRYABLE.has(code)) throw e
        await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** (attempt - 1)))
      }
    }
  }

  async #transaction(fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    const c = await this.#pool.connect()
    let broken: Error | undefined
    try {
      await c.query('BEGIN')
      try {
        await fn(c)
        await c.query('COMMIT')
      } catch (e) {
        try {
          await c.query('ROLLBACK')
        } catch (rollbackError) {
          broken = rollbackError as Error
        }
        throw e
      }
    } finally {
      c.release(broken)
    }
  }

  async listDecisions(storeId: string, query: DecisionQuery): Promise<Page<StoredDecision>> {
    const { where, values } = decisionWhere(storeId, query, (n) => `$${n}`)
    const text = `SELECT * FROM decision_log WHERE ${where} ORDER BY id DESC LIMIT $${values.length + 1}`
    const rows = (await this.#pool.query<DecisionRow>(text, [...values, query.pageSize + 1])).rows
    const items = rows.slice(0, query.pageSize).map(rowToDecision)
    return { items, next: rows.length > query.pageSize ? decisionCursor(items) : '' }
  }

  async deleteDecisionsBefore(before: number, limit: number): Promise<number> {
    return (await this.#pool.query(q('deleteDecisions', [before, limit]))).rowCount ?? 0
  }

  async forgetGrantUsage(before: number, limit: number): Promise<number> {
    return (await this.#pool.query(q('forgetUsage', [before, limit]))).rowCount ?? 0
  }

  async getDecisionLogSettings(storeId: string): Promise<DecisionLogSettings | undefined> {
    type Row = { enabled: number; sample_rate: number; updated_at: number }
    const [row] = (await this.#pool.query<Row>(q('getSettings', [storeId]))).rows
    return row && { enabled: row.enabled === 1, sampleRate: row.sample_rate, updatedAt: new Date(Number(row.updated_at)) }
  }

  async putDecisionLogSettings(storeId: string, s: DecisionLogSettings): Promise<void> {
    await this.#pool.query(q('putSettings', [storeId, s.enabled ? 1 : 0, s.sampleRate, s.updatedAt.getTime()]))
  }

  async listGrants(storeId: string, user: Subject, query: GrantsQuery): Promise<Page<GrantWithUsage>> {
    const after = decodeCursor(query.after, isGrantCursor)
    const values: unknown[] = [storeId, user.type, user.id, user.relation, query.now]
    if (after) values.push(...after)
    values.push(query.pageSize + 1)
    const text = `SELECT t.object_type, t.object_id, t.relation, t.user_relation, t.user_type, t.user_id,
        t.condition_name, t.condition_context, t.expires_at, t.inserted_at, g.last_used_at
      FROM tuples t ${USAGE_JOIN}
      WHERE t.store_id = $1 AND t.user_type = $2 AND t.user_id = $3 AND t.user_relation = $4
        AND (t.expires_at IS NULL OR t.expires_at > $5)
        ${after ? 'AND (t.object_type, t.object_id, t.relation) > ($6, $7, $8)' : ''}
      ORDER BY t.object_type, t.object_id, t.relation LIMIT $${values.length}`
    const rows = (await this.#pool.query(text, values)).rows
    const items = rows.slice(0, query.pageSize).map(rowToGrant)
    const last = items[items.length - 1]
    const next = rows.length > query.pageSize ? JSON.stringify([last.objectType, last.objectId, last.relation]) : ''
    return { items, next }
  }

  async identityGrantStats(
    storeId: string,
    userType: string,
    query: IdentityStatsQuery,
  ): Promise<Page<IdentityGrantStats>> {
    const after = decodeCursor(query.after, isIdentityCursor)
    const values: unknown[] = [query.cutoff, storeId, userType, query.now]
    let resume = ''
    if (after) {
      const [unused, grants, id, rel] = after
      values.push(grants, unused, id, rel)
      resume = `WHERE s.unused * $5 < $6 * s.grants OR (s.unused * $5 = $6 * s.grants
        AND (s.user_id > $7 OR (s.user_id = $7 AND s.user_relation > $8)))`
    }
    values.push(query.pageSize + 1)
    const text = `SELECT * FROM (
        SELECT t.user_type, t.user_id, t.user_relation, COUNT(*) AS grants,
          SUM(CASE WHEN t.inserted_at < $1 AND (g.last_used_at IS NULL OR g.last_used_at < $1) THEN 1 ELSE 0 END) AS unused
        FROM tuples t ${USAGE_JOIN}
        WHERE t.store_id = $2 AND t.user_type = $3 AND (t.expires_at IS NULL OR t.expires_at > $4)
        GROUP BY t.user_type, t.user_id, t.user_relation) s
      ${resume}
      ORDER BY s.unused::float8 / s.grants DESC, s.user_id, s.user_relation LIMIT $${values.length}`
    const rows = (await this.#pool.query<IdentityStatsRow>(text, values)).rows
    const page = rows.slice(0, query.pageSize)
    const next = rows.length > query.pageSize ? identityCursor(page[page.length - 1]) : ''
    return { items: page.map(rowToIdentityStats), next }
  }
}
