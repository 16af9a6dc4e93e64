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
 * - writes resume at once, and every write acknowledged is in the database: 0 lost;
 * - a terminated connection is no outage: `/healthz` (polled throughout) stays SERVING, at most
 *   one `datastore_unavailable` line per round (a connection cut mid-statement outside a
 *   transaction is reported), and refusals are a small share of the answers;
 * - a connection cut *during* COMMIT (forced deterministically: a deferred constraint trigger
 *   sleeps at COMMIT, and its backend is terminated then) answers 503 for a write that is not
 *   idempotent, and the tuple is absent; the same write with `on_duplicate: "ignore"` is retried
 *   and answers 200, with exactly one change recorded.
 */
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describePgCluster, PgCluster } from '../helpers/pg-cluster.ts'
import { api, type PembaProcess } from '../helpers/processes.ts'
import { startFaultTarget, startLoad, type FaultTarget } from '../helpers/write-load.ts'
import { waitFor } from '../helpers/wait.ts'

const ROUNDS = 6

describePgCluster('faults: PostgreSQL backends terminated under load', (bin) => {
  let target: FaultTarget | undefined
  let cluster: PgCluster
  let pemba: (PembaProcess & { url: string }) | undefined
  let store: string

  beforeAll(async () => {
    target = await startFaultTarget(bin, 'terminate')
    ;({ cluster, pemba, store } = target)
  }, 120_000)

  afterAll(() => target?.close())

  it('survives every round, answers no 500, resumes writing and loses no acknowledged write', async () => {
    const p = pemba!
    const load = startLoad(p.url, store, 8, 4)
    let terminated = 0
    const health = new Map<number, number>()
    let polling = true
    const poller = (async () => {
      while (polling) {
        const status = (await fetch(`${p.url}/healthz`)).status
        health.set(status, (health.get(status) ?? 0) + 1)
        await new Promise((r) => setTimeout(r, 25))
      }
    })()
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
      polling = false
      await poller
      await load.stop()
    }

    const { tally } = load
    expect(p.proc.exitCode).toBeNull()
    expect(terminated).toBeGreaterThan(ROUNDS)
    expect(tally.unexpected).toEqual([])
    expect([...tally.statuses.keys()].every((s) => s === 200 || s === 503)).toBe(true)
    expect(tally.refusalsWithoutRetryAfter).toBe(0)
    const answers = [...tally.statuses.values()].reduce((a, b) => a + b, 0)
    expect(tally.statuses.get(503) ?? 0).toBeLessThan(answers * 0.05)
    expect(health.get(200) ?? 0).toBeGreaterThan(0)

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
    const outages = log.match(/"event":"datastore_unavailable"/g)?.length ?? 0
    expect(outages).toBeLessThanOrEqual(ROUNDS)
    // /healthz may say NOT_SERVING only around such a reported cut, and serves again after it.
    // (How long each cut lasts follows the machine's load: not compared with the serving time.)
    if (outages === 0) expect(health.get(503) ?? 0).toBe(0)
    let serving = false
    for (const deadline = Date.now() + 30_000; !serving && Date.now() < deadline; ) {
      serving = (await fetch(`${p.url}/healthz`)).status === 200
      if (!serving) await new Promise((r) => setTimeout(r, 100))
    }
    expect(serving).toBe(true)
  }, 180_000)

  it('a connection cut during COMMIT: 503 and nothing written, unless the write is idempotent (retried, 200, one change)', async () => {
    const p = pemba!
    // Fires at COMMIT (deferred) for the marked objects only, and sleeps long enough to be cut.
    cluster.sql(
      `CREATE OR REPLACE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
       CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON tuples DEFERRABLE INITIALLY DEFERRED
       FOR EACH ROW WHEN (NEW.object_id LIKE 'commit-%') EXECUTE FUNCTION slow_commit();`,
      'pemba',
    )
    const cutDuringCommit = async (object: string, onDuplicate?: 'ignore') => {
      const tuple = { user: 'user:zoe', relation: 'viewer', object }
      const answer = api(p.url, 'POST', `/stores/${store}/write`, {
        writes: { tuple_keys: [tuple], ...(onDuplicate ? { on_duplicate: onDuplicate } : {}) },
      })
      const pid = await waitFor('a COMMIT sleeping in the trigger', () =>
        cluster.sql("SELECT pid FROM pg_stat_activity WHERE usename = 'pemba' AND wait_event = 'PgSleep' LIMIT 1").trim(),
      )
      expect(cluster.sql(`SELECT pg_terminate_backend(${pid})`).trim()).toBe('t')
      return answer
    }
    const count = (table: string, object: string) =>
      Number(cluster.sql(`SELECT count(*) FROM ${table} WHERE store_id = '${store}' AND object_id = '${object}'`, 'pemba').trim())
    try {
      const refused = await cutDuringCommit('document:commit-1')
      expect(refused.status).toBe(503)
      expect(refused.body).toEqual({ code: 'unavailable', message: 'the database is unavailable; try again later' })
      expect(count('tuples', 'commit-1')).toBe(0)

      const retried = await cutDuringCommit('document:commit-2', 'ignore')
      expect(retried.status).toBe(200)
      expect(count('tuples', 'commit-2')).toBe(1)
      expect(count('changelog', 'commit-2')).toBe(1)
    } finally {
      cluster.sql('DROP TRIGGER IF EXISTS slow_commit ON tuples', 'pemba')
    }
    expect(p.proc.exitCode).toBeNull()
  }, 60_000)
})
