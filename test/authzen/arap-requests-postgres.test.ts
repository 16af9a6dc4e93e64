/**
 * ARAP submissions on PostgreSQL (PEMBA_TEST_POSTGRES_URL), at the datastore: the path the
 * HTTP race tests cannot force. A submission reads the idempotency key and the binding `jti`
 * first, then inserts; a rival committing the same key (or jti) between those steps makes the
 * unique index refuse the insert, and the retry must find the rival's request (§8.32, §8.30).
 * Here the rival is an open transaction holding the row: the submission's insert waits on it
 * (seen in pg_stat_activity), the rival commits, the insert fails, and the retry answers.
 */
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba, type Pemba } from '../../src/server.ts'
import type { AccessRequestRecord, AccessRequestSubmission } from '../../src/service/access-request-store.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'

const target = await probePostgres()
const STORE = '01JSTOREAAAAAAAAAAAAAAAAAA'
const T = Date.parse('2026-12-01T09:00:00Z')

describePostgres('ARAP submissions on PostgreSQL: the unique-index retry', target, () => {
  let schema: TestSchema
  let rival: pg.Client
  let watcher: pg.Client
  let p: Pemba

  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
    p = await createPemba({ ...loadConfig({ env: {}, argv: [] }), databaseUrl: schema.url, logLevel: 'warn' as const }, { sweeper: false })
    rival = new pg.Client({ connectionString: schema.url })
    watcher = new pg.Client({ connectionString: schema.url })
    await Promise.all([rival.connect(), watcher.connect()])
  })
  afterAll(async () => {
    await rival?.end()
    await watcher?.end()
    await p?.close()
    await schema?.drop()
  })

  const record = (id: string, key: string, jti: string): AccessRequestRecord & { submission: AccessRequestSubmission } => ({
    storeId: STORE,
    id,
    objectType: 'document',
    objectId: 'plan-7',
    relation: 'viewer',
    user: 'user:maria',
    durationMs: 3_600_000,
    reason: '',
    status: 'pending',
    createdAt: new Date(T),
    pendingUntil: new Date(T + 86_400_000),
    grantExpiresAt: null,
    events: [{ type: 'created', actor: 'user:maria', at: new Date(T), reason: '' }],
    submission: { idempotencyKey: key, requestHash: 'h', bindingJti: jti, details: {} },
  })

  /** Waits until a session of the schema's database waits on a lock while inserting a request. */
  async function insertWaiting(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const r = await watcher.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO access_requests%'`,
      )
      if (Number(r.rows[0].n) > 0) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error('the submission never waited on the rival row')
  }

  for (const [clash, n] of [
    ['idempotency_key', 1],
    ['binding_jti', 2],
  ] as const) {
    it(`§8.32 §8.30 a submission beaten to the unique index of ${clash} finds the winner, storing nothing`, async () => {
      const winner = `01JWINNER${n}AAAAAAAAAAAAAAA`
      const loser = record(`01JLOSER${n}AAAAAAAAAAAAAAAA`, clash === 'idempotency_key' ? `key-${n}` : `other-key-${n}`, `jti-${n}`)
      await rival.query('BEGIN')
      await rival.query(
        `INSERT INTO access_requests (store_id, id, object_type, object_id, relation, "user", duration_ms, reason, status,
           created_at, pending_until, idempotency_key, request_hash, binding_jti, submission)
         VALUES ($1, $2, 'document', 'plan-7', 'viewer', 'user:maria', 3600000, '', 'pending', $3, $4, $5, 'h', $6, '{}')`,
        [STORE, winner, T, T + 86_400_000, clash === 'idempotency_key' ? `key-${n}` : `winner-key-${n}`, `jti-${n}`],
      )
      const submitted = p.datastore.submitAccessRequests([loser])
      await insertWaiting()
      await rival.query('COMMIT')
      const out = await submitted
      expect(out).toMatchObject({ created: false, clash, existing: { id: winner } })
      const ids = await watcher.query<{ id: string }>('SELECT id FROM access_requests WHERE store_id = $1 AND binding_jti = $2', [STORE, `jti-${n}`])
      expect(ids.rows.map((r) => r.id)).toEqual([winner])
    })
  }
})
