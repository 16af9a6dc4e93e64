/**
 * `pemba serve` with PEMBA_WORKERS=2 on PostgreSQL, as real processes: every worker writes
 * tuples and its own decision-log batches straight into the database (concurrent writers are
 * ordinary transactions there), none lost, and each worker sees the others' writes.
 */
import pg from 'pg'
import { afterEach, expect, it } from 'vitest'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { startServer, type PembaProcess } from '../helpers/processes.ts'
import { logEvents, waitFor } from '../helpers/wait.ts'
import { check, send, seed, writeEachThenCheck } from './cluster-helpers.ts'

const target = await probePostgres()
/** Two workers start and stop several times per test; on a loaded CI machine that takes a while. */
const SLOW_TEST_MS = 180_000
const running: PembaProcess[] = []
afterEach(() => {
  for (const p of running) p.kill()
  running.length = 0
})

describePostgres('PEMBA_WORKERS=2 on PostgreSQL', target, () => {
  const url = usePostgresSchema(target)

  it('keeps concurrent writes and every decision from both workers', async () => {
    const p = await startServer({ PEMBA_WORKERS: '2', PEMBA_DATABASE_URL: url(), PEMBA_CHECK_CACHE_STALENESS_MS: '300' }, 60_000)
    running.push(p)
    await waitFor('both workers to serve', () => logEvents(p.stdout(), 'worker_listening').length === 2)
    const store = await seed(p.url)
    const N = 120
    await writeEachThenCheck(p.url, store, N, 12)
    let checks = N
    for (let i = 0; i < 10; i++) {
      const w = await send(p.url, 'POST', `/stores/${store}/write`, {
        writes: { tuple_keys: [{ user: `user:late${i}`, relation: 'viewer', object: 'doc:late' }] },
      })
      expect(w.status).toBe(200)
      expect(await check(p.url, store, `user:late${i}`, 'doc:late', 'HIGHER_CONSISTENCY')).toBe(true)
      checks++
    }
    await new Promise((r) => setTimeout(r, 600))
    for (let i = 0; i < 10; i++) {
      expect(await check(p.url, store, `user:late${i}`, 'doc:late')).toBe(true)
      checks++
    }
    const served = new Set(logEvents(p.stdout(), 'request').filter((e) => e.route === '/stores/:store/check').map((e) => e.worker))
    expect(served.size).toBe(2)

    process.kill(p.proc.pid!, 'SIGTERM')
    expect(await p.exited).toBe(0)
    const client = new pg.Client({ connectionString: url() })
    await client.connect()
    try {
      const r = await client.query('SELECT count(*)::int AS n FROM decision_log WHERE store_id = $1', [store])
      expect(r.rows[0].n).toBe(checks)
    } finally {
      await client.end()
    }
  }, SLOW_TEST_MS)
})
