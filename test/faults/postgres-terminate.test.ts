/**
 * PostgreSQL backends terminated under write and check load (`pg_terminate_backend` of every
 * connection of the `pemba` role, as a failover or an administrator does), with a real
 * `pemba serve` process on a private cluster (test/helpers/pg-cluster.ts; the shared server's
 * sessions are never touched):
 *
 * - the process survives every round (a connection cut under a checked-out client or an idle
 *   one is never an unhandled 'error' event);
 * - requests answer 200, or 503 `unavailable` with `Retry-After` when a connection broke at a
 *   moment nothing could be retried (a cut during COMMIT of a write that is not idempotent);
 *   never a 500;
 * - writes resume at once, and every write acknowledged is in the database: 0 lost.
 */
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { describePgCluster, PgCluster } from '../helpers/pg-cluster.ts'
import { api, startServer, type PembaProcess } from '../helpers/processes.ts'
import { startLoad } from '../helpers/write-load.ts'

/** waitFor polls `f` until it returns something truthy, or throws with `what` after `ms`. */
async function waitFor<T>(what: string, f: () => T | Promise<T>, ms = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v) return v as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const ROUNDS = 6

describePgCluster('faults: PostgreSQL backends terminated under load', (bin) => {
  let cluster: PgCluster
  let pemba: (PembaProcess & { url: string }) | undefined
  let store: string

  beforeAll(async () => {
    cluster = await PgCluster.create(bin)
    pemba = await startServer({
      PEMBA_DATABASE_URL: cluster.url,
      PEMBA_ACCESS_LOG: 'off',
      PEMBA_LOG_FORMAT: 'json',
      PEMBA_PG_POOL_SIZE: '10',
    })
    store = (await api(pemba.url, 'POST', '/stores', { name: 'terminate' })).body.id
    expect((await api(pemba.url, 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
  }, 120_000)

  afterAll(() => {
    pemba?.kill()
    cluster?.destroy()
  })

  it('survives every round, answers no 500, resumes writing and loses no acknowledged write', async () => {
    const p = pemba!
    const load = startLoad(p.url, store, 8, 4)
    let terminated = 0
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const acked = load.tally.acknowledged.length
        // Writes are flowing (again) before each cut.
        await waitFor(`writes acknowledged before round ${round + 1}`, () => load.tally.acknowledged.length >= acked + 30)
        const out = cluster.sql(
          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'pemba' AND pid <> pg_backend_pid()",
        )
        terminated += Number(out.trim())
        expect(p.proc.exitCode).toBeNull()
      }
      const acked = load.tally.acknowledged.length
      await waitFor('writes acknowledged after the last round', () => load.tally.acknowledged.length >= acked + 30)
    } finally {
      await load.stop()
    }

    const { tally } = load
    expect(p.proc.exitCode).toBeNull()
    expect(terminated).toBeGreaterThan(ROUNDS)
    expect(tally.unexpected).toEqual([])
    expect([...tally.statuses.keys()].every((s) => s === 200 || s === 503)).toBe(true)
    expect(tally.refusalsWithoutRetryAfter).toBe(0)

    const client = new pg.Client({ connectionString: cluster.url })
    await client.connect()
    try {
      const rows = await client.query<{ object_id: string; user_id: string }>(
        "SELECT object_id, user_id FROM tuples WHERE store_id = $1 AND relation = 'viewer'",
        [store],
      )
      const stored = new Set(rows.rows.map((r) => `document:${r.object_id}@user:${r.user_id}`))
      const lost = tally.acknowledged.filter((t) => !stored.has(`${t.object}@${t.user}`))
      expect(tally.acknowledged.length).toBeGreaterThan(ROUNDS * 30)
      expect(lost).toEqual([])
    } finally {
      await client.end()
    }
    const log = p.stdout() + p.stderr()
    expect(log).not.toMatch(/"event":"internal_error"/)
    expect(log).not.toMatch(/\n\s+at |"stack"/)
  }, 180_000)
})
