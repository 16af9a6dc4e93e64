/**
 * PostgreSQL stopped under load (`pg_ctl stop -m immediate`: as a crash or a lost machine) and
 * started again, with a real `pemba serve` process on a private cluster (test/helpers/
 * pg-cluster.ts; the shared server is never stopped):
 *
 * - while it is down every request answers 503 `unavailable` with `Retry-After`, never a 500;
 *   `/healthz` and `/readyz` answer 503 (`NOT_SERVING`, the database check named);
 * - the log has exactly one `database unavailable` warn line and, once it is back, one
 *   `database available again` info line; no stack trace anywhere;
 * - started again, writes and checks answer 200 without restarting Pemba, and every write
 *   that was acknowledged (before, during or after) is in the database: 0 lost.
 */
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describePgCluster, PgCluster } from '../helpers/pg-cluster.ts'
import { api, type PembaProcess } from '../helpers/processes.ts'
import { startFaultTarget, startLoad, statusesSince, type FaultTarget } from '../helpers/write-load.ts'
import { waitFor, logEvents as events } from '../helpers/wait.ts'

describePgCluster('faults: PostgreSQL stopped (immediate) and started under load', (bin) => {
  let target: FaultTarget | undefined
  let cluster: PgCluster
  let pemba: (PembaProcess & { url: string }) | undefined
  let store: string

  beforeAll(async () => {
    target = await startFaultTarget(bin, 'restart', { PEMBA_READY_TIMEOUT_MS: '1000' })
    ;({ cluster, pemba, store } = target)
  }, 120_000)

  afterAll(() => target?.close())

  it('answers 503 with Retry-After while down, logs the outage once, and loses no acknowledged write', async () => {
    const p = pemba!
    const load = startLoad(p.url, store, 8, 4)
    try {
      await waitFor('writes acknowledged before the stop', () => load.tally.acknowledged.length >= 50)

      cluster.stop('immediate')
      const atStop = new Map(load.tally.statuses)
      await waitFor('503s while the database is down', () => (statusesSince(load.tally, atStop).get(503) ?? 0) >= 20)

      const health = await fetch(new URL('/healthz', p.url))
      expect(health.status).toBe(503)
      expect(await health.json()).toEqual({ status: 'NOT_SERVING' })
      const ready = await api(p.url, 'GET', '/readyz')
      expect(ready.status).toBe(503)
      expect(ready.body.status).toBe('NOT_SERVING')
      expect(ready.body.checks.database).toMatch(/^unavailable: /)
      // Outside the loops: the refusal's whole answer.
      const write = await fetch(new URL(`/stores/${store}/write`, p.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ writes: { tuple_keys: [{ user: 'user:x', relation: 'viewer', object: 'document:x' }] } }),
      })
      expect(write.status).toBe(503)
      expect(write.headers.get('retry-after')).toBe('1')
      expect(await write.json()).toEqual({ code: 'unavailable', message: 'the database is unavailable; try again later' })

      const ackedAtRestart = load.tally.acknowledged.length
      cluster.start()
      await waitFor('writes acknowledged after the start', () => load.tally.acknowledged.length >= ackedAtRestart + 50)
      await waitFor('/healthz serving again', async () => (await fetch(new URL('/healthz', p.url))).status === 200)
      expect((await api(p.url, 'GET', '/readyz')).status).toBe(200)
    } finally {
      await load.stop()
    }

    const { tally } = load
    expect(p.proc.exitCode).toBeNull()
    // Only 200s and 503s: an outage is never a 500, and every 503 said when to retry.
    expect(tally.unexpected).toEqual([])
    expect([...tally.statuses.keys()].sort()).toEqual([200, 503])
    expect(tally.refusalsWithoutRetryAfter).toBe(0)

    // Every acknowledged write is there.
    const client = new pg.Client({ connectionString: cluster.url })
    await client.connect()
    try {
      const rows = await client.query<{ object_id: string; user_id: string }>(
        "SELECT object_id, user_id FROM tuples WHERE store_id = $1 AND relation = 'viewer'",
        [store],
      )
      const stored = new Set(rows.rows.map((r) => `document:${r.object_id}@user:${r.user_id}`))
      const lost = tally.acknowledged.filter((t) => !stored.has(`${t.object}@${t.user}`))
      expect(tally.acknowledged.length).toBeGreaterThan(100)
      expect(lost).toEqual([])
    } finally {
      await client.end()
    }

    // One line when it went, one when it came back; nothing per request, no stack.
    const out = p.stdout()
    const down = events(out, 'datastore_unavailable')
    const back = events(out, 'datastore_available')
    expect(down).toHaveLength(1)
    expect(down[0].level).toBe('warn')
    expect(down[0].msg).toMatch(/^database unavailable: /)
    expect(back).toHaveLength(1)
    expect(back[0].level).toBe('info')
    expect(back[0].msg).toMatch(/^database available again after \d+\.\d s$/)
    expect(events(out, 'internal_error')).toEqual([])
    expect(out + p.stderr()).not.toMatch(/\n\s+at |"stack"/)
    expect(out + p.stderr()).not.toContain(cluster.password)

    const metricsText = await (await fetch(new URL('/metrics', p.url))).text()
    expect(metricsText).toMatch(/^pemba_datastore_unavailable_total [1-9]/m)
    expect(metricsText).toMatch(/^pemba_datastore_outages_total 1$/m)
    expect(metricsText).toMatch(/^pemba_datastore_up 1$/m)
  }, 180_000)
})
