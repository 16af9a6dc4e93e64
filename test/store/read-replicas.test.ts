/**
 * PostgreSQL read replicas (PEMBA_DATABASE_READ_URL) against a real streaming standby: a private
 * primary and a hot standby made from a base backup of it (test/helpers/pg-standby.ts). Both log
 * every statement with the connection's application_name, so where each read landed is counted
 * from the servers' own logs: `pemba-read:` lines on the standby are Pemba's routed reads,
 * `pemba:` lines on the primary its own pool's.
 *
 * What must hold: MINIMIZE_LATENCY reads go to the standby once it has what they read;
 * HIGHER_CONSISTENCY and writes go to the primary; this replica's write is seen at once either
 * way; a standby whose replay is paused is skipped once it lags beyond the bound, and no answer is
 * older than the bound; a standby stopped with `-m immediate` is skipped with no error to any
 * client, logged once each way, and used again after it restarts; /readyz stays ready meanwhile.
 */
import { transformer } from '@openfga/syntax-transformer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import type { AuthorizationModelInput } from '../../src/model/types.ts'
import { createPemba, type Pemba } from '../../src/server.ts'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import { createLogger } from '../../src/telemetry/logger.ts'
import { describePgCluster } from '../helpers/pg-cluster.ts'
import {
  createPrimaryAndStandby,
  pauseReplay,
  resumeReplay,
  statementsLogged,
  TUPLE_READS,
  waitForReplay,
  type PrimaryAndStandby,
} from '../helpers/pg-standby.ts'
import { waitFor } from '../helpers/wait.ts'

const MODEL = transformer.transformDSLToJSONObject(`model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type document
  relations
    define viewer: [user, group#member]
`) as unknown as AuthorizationModelInput

const BOUND_MS = 1000

/** Pemba over the primary, reading from `readUrl` when given; no cache, no index unless `index`. */
function open(primaryUrl: string, readUrl: string, lines: string[], index = false): Promise<Pemba> {
  const config = {
    ...loadConfig({ env: {}, argv: [] }),
    databaseUrl: primaryUrl,
    databaseReadUrl: readUrl,
    checkCacheStalenessMs: BOUND_MS,
    checkCacheSize: 0,
    tupleCacheSize: 0,
    tupleIndexMaxTuples: index ? 1_000_000 : 0,
    logLevel: 'info' as const,
    logFormat: 'json' as const,
    decisionLog: 'off' as const,
  }
  const logger = createLogger({ level: 'info', format: 'json', redact: (t) => t, destination: { write: (l: string) => void lines.push(l) } })
  return createPemba(config, { sweeper: false, logger })
}

const events = (lines: string[], event: string) => lines.filter((l) => l.includes(`"event":"${event}"`))

async function metric(p: Pemba, name: string, labels: string): Promise<number | undefined> {
  const { body } = await p.metrics.scrape()
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${labels}}`))
  return line === undefined ? undefined : Number(line.split(' ').pop())
}

describePgCluster('read replicas on a real streaming standby', (bin) => {
  let pg: PrimaryAndStandby
  let replica: Pemba
  let writer: Pemba
  const lines: string[] = []
  let store: string

  const standbyReads = () => statementsLogged(pg.standby, 'pemba-read', TUPLE_READS)
  const primaryReads = () => statementsLogged(pg.primary, 'pemba', TUPLE_READS)
  const check = async (p: Pemba, object: string, user: string, consistency: 'MINIMIZE_LATENCY' | 'HIGHER_CONSISTENCY') =>
    (await p.checks.check(store, { tupleKey: { object, relation: 'viewer', user }, consistency })).allowed
  const write = (p: Pemba, writes: string[][], deletes: string[][] = []) =>
    p.writes.write(store, {
      writes: writes.map(([object, user]) => ({ object, relation: 'viewer', user })),
      deletes: deletes.map(([object, user]) => ({ object, relation: 'viewer', user })),
      onDuplicate: 'error',
      onMissing: 'error',
    })
  /** Waits until a MINIMIZE_LATENCY check lands on the standby (it has replayed this replica's writes). */
  const standbyServes = (p: Pemba) =>
    waitFor('a check read from the standby', async () => {
      const before = standbyReads()
      await check(p, 'document:probe', 'user:nobody', 'MINIMIZE_LATENCY')
      return standbyReads() > before
    }, 15_000)

  beforeAll(async () => {
    pg = await createPrimaryAndStandby(bin)
    replica = await open(pg.primary.url, pg.standby.url, lines)
    writer = await open(pg.primary.url, '', [])
    store = (await replica.stores.create('replicas', 'client:test')).id
    await replica.models.write(store, MODEL)
    await write(replica, [['document:1', 'user:anne']])
  }, 120_000)
  afterAll(async () => {
    await replica?.close()
    await writer?.close()
    pg?.destroy()
  })

  it('sends MINIMIZE_LATENCY checks and lists to the standby, HIGHER_CONSISTENCY to the primary', async () => {
    await standbyServes(replica)
    let standby = standbyReads()
    let primary = primaryReads()
    for (let i = 0; i < 20; i++) expect(await check(replica, 'document:1', 'user:anne', 'MINIMIZE_LATENCY')).toBe(true)
    const listed = await replica.lists.listObjects(store, { type: 'document', relation: 'viewer', user: 'user:anne', consistency: 'MINIMIZE_LATENCY' })
    expect(listed.objects).toEqual(['document:1'])
    expect(standbyReads() - standby).toBeGreaterThanOrEqual(21)
    expect(primaryReads() - primary).toBe(0)

    standby = standbyReads()
    primary = primaryReads()
    for (let i = 0; i < 20; i++) expect(await check(replica, 'document:1', 'user:anne', 'HIGHER_CONSISTENCY')).toBe(true)
    expect(primaryReads() - primary).toBeGreaterThanOrEqual(20)
    expect(standbyReads() - standby).toBe(0)

    // Pemba's own count agrees with the servers' logs.
    expect(await metric(replica, 'pemba_datastore_replica_reads_total', `target="${`127.0.0.1:${pg.standby.port}/pemba`}"`)).toBeGreaterThanOrEqual(21)
    expect(await metric(replica, 'pemba_datastore_standby_up', `standby="127.0.0.1:${pg.standby.port}/pemba"`)).toBe(1)
  })

  it("answers this replica's writes at once, whichever consistency, while writes go to the primary", async () => {
    for (let i = 0; i < 10; i++) {
      const standbyWrites = statementsLogged(pg.standby, 'pemba-read', /INSERT|UPDATE|DELETE/)
      await write(replica, [[`document:w${i}`, 'user:bob']])
      expect(await check(replica, `document:w${i}`, 'user:bob', 'MINIMIZE_LATENCY')).toBe(true)
      expect(await check(replica, `document:w${i}`, 'user:bob', 'HIGHER_CONSISTENCY')).toBe(true)
      await write(replica, [], [[`document:w${i}`, 'user:bob']])
      expect(await check(replica, `document:w${i}`, 'user:bob', 'MINIMIZE_LATENCY')).toBe(false)
      expect(await check(replica, `document:w${i}`, 'user:bob', 'HIGHER_CONSISTENCY')).toBe(false)
      expect(statementsLogged(pg.standby, 'pemba-read', /INSERT|UPDATE|DELETE/)).toBe(standbyWrites)
    }
  })

  it('skips a standby whose replay is paused once it lags beyond the bound; no answer is older than the bound', async () => {
    await standbyServes(replica)
    pauseReplay(pg.standby)
    try {
      // Another replica's write: this one learns of it only through the database.
      await write(writer, [['document:late', 'user:carol']])
      const written = performance.now()
      const standby = standbyReads()
      const answers: { after: number; allowed: boolean }[] = []
      while (performance.now() - written < BOUND_MS + 1500) {
        const at = performance.now()
        answers.push({ after: at - written, allowed: await check(replica, 'document:late', 'user:carol', 'MINIMIZE_LATENCY') })
      }
      // Within the bound an answer may not know the write yet; past it, every one does.
      const late = answers.filter((a) => a.after > BOUND_MS)
      expect(late.length).toBeGreaterThan(0)
      expect(late.filter((a) => !a.allowed)).toEqual([])
      // The paused standby could not have answered them: they went to the primary.
      const during = standbyReads() - standby
      expect(during).toBeLessThan(answers.length)
      expect(await metric(replica, 'pemba_datastore_standby_lag_seconds', `standby="127.0.0.1:${pg.standby.port}/pemba"`)).toBeGreaterThan(BOUND_MS / 1000)
      expect(events(lines, 'standby_lagging').length).toBeGreaterThanOrEqual(1)
    } finally {
      resumeReplay(pg.standby)
    }
    await waitForReplay(pg.primary, pg.standby)
    await standbyServes(replica)
    expect(await check(replica, 'document:late', 'user:carol', 'MINIMIZE_LATENCY')).toBe(true)
  }, 30_000)

  it('skips a standby stopped with -m immediate without a client error, logs it once each way, and uses it again once it is back', async () => {
    await standbyServes(replica)
    const down = events(lines, 'standby_unavailable').length
    const back = events(lines, 'standby_available').length
    let failures = 0
    let answered = 0
    let stop = false
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          try {
            if (!(await check(replica, 'document:1', 'user:anne', 'MINIMIZE_LATENCY'))) failures++
            answered++
          } catch {
            failures++
          }
        }
      }),
    )
    try {
      await new Promise((r) => setTimeout(r, 200))
      pg.standby.stop('immediate')
      await waitFor('the standby to be marked down', () => events(lines, 'standby_unavailable').length > down, 10_000)
      const before = answered
      await new Promise((r) => setTimeout(r, 500))
      expect(answered).toBeGreaterThan(before)
      // The primary serves: the standby's absence makes nobody unready.
      const ready = await replica.app.request('/readyz')
      expect(ready.status).toBe(200)
      expect(await metric(replica, 'pemba_datastore_standby_up', `standby="127.0.0.1:${pg.standby.port}/pemba"`)).toBe(0)
      pg.standby.start()
      await waitFor('the standby to be back', () => events(lines, 'standby_available').length > back, 20_000)
    } finally {
      stop = true
      await load
      if (!pg.standby.running) pg.standby.start()
    }
    expect(failures).toBe(0)
    expect(events(lines, 'standby_unavailable').length).toBe(down + 1)
    expect(events(lines, 'standby_available').length).toBe(back + 1)
    await standbyServes(replica)
  }, 60_000)

  it('stops at start naming the setting when a standby refuses the login; starts with a warning when one is down', async () => {
    const wrong = pg.standby.url.replace(encodeURIComponent(pg.standby.password), 'not-the-password')
    const refused = await open(pg.primary.url, wrong, []).then(
      (p) => p.close().then(() => undefined),
      (e: unknown) => e as Error,
    )
    expect(refused?.message).toContain(`PEMBA_DATABASE_READ_URL=127.0.0.1:${pg.standby.port}/pemba`)
    expect(refused?.message).toContain('password authentication failed')
    expect(refused?.message).not.toContain('not-the-password')

    const downLines: string[] = []
    const nobody = `postgres://pemba:x@127.0.0.1:${pg.standby.port + 1}/pemba`
    const started = await open(pg.primary.url, nobody, downLines)
    try {
      expect(events(downLines, 'standby_unavailable')).toHaveLength(1)
      expect(await check(started, 'document:1', 'user:anne', 'MINIMIZE_LATENCY')).toBe(true)
      expect((await started.app.request('/readyz')).status).toBe(200)
    } finally {
      await started.close()
    }
  })

  it('refuses at start a read URL that reaches the standby with another schema (its tables would be others\')', async () => {
    const elsewhere = new URL(pg.standby.url)
    elsewhere.searchParams.set('options', '-c search_path=elsewhere')
    const refused = await PostgresDatastore.open({ url: pg.primary.url, poolSize: 1, readUrls: [elsewhere.toString()] }).then(
      (ds) => ds.close().then(() => undefined),
      (e: unknown) => e as Error,
    )
    expect(refused?.message).toContain(`PEMBA_DATABASE_READ_URL=127.0.0.1:${pg.standby.port}/pemba`)
    expect(refused?.message).toContain("not a standby of PEMBA_DATABASE_URL's database and schema")
  })

  it('sends no read to a standby restarted since its last probe: the new connection shows the restart', async () => {
    // Probes far apart, a bound the restart stays within, and no idle read connection to see the
    // restart: only the read pool's verify hook on the new connection stands between the read and
    // the restarted standby.
    const ds = await PostgresDatastore.open({
      url: pg.primary.url,
      poolSize: 1,
      readUrls: [pg.standby.url],
      readProbeIntervalMs: 600_000,
      readStalenessMs: 600_000,
    })
    try {
      const anne = { objectType: 'document', objectId: 'restart', relation: 'viewer', userType: 'user', userId: 'anne', userRelation: '', conditionName: '', conditionContext: undefined }
      const revision = await ds.write(store, { writes: [anne], deletes: [], onDuplicate: 'error', onMissing: 'error' }, new Date())
      const written = performance.now()
      await waitForReplay(pg.primary, pg.standby)
      await waitFor('the router to see the standby past the write', async () => {
        await ds.probeReplicas()
        const before = performance.now()
        const s = ds.readReplicaStats()!.standbys[0]
        return s.up && s.lagSeconds !== undefined && before - s.lagSeconds * 1000 > written
      }, 15_000)
      // No read has opened a connection to the standby yet.
      expect(ds.readReplicaStats()!.standbys[0].reads).toBe(0)
      pg.standby.stop('immediate')
      pg.standby.start()
      const tuples = await ds.reader(store, revision, Date.now(), { replica: true }).readObjectRelation('document', 'restart', 'viewer')
      expect(tuples.map((t) => t.userId)).toEqual(['anne'])
      const stats = ds.readReplicaStats()!
      expect(stats.standbys[0].reads).toBe(0)
      expect(stats.standbys[0].up).toBe(false)
      expect(stats.primaryReads).toBe(1)
      // The next probe shows its position again, and reads return to it once it has the revision.
      await waitForReplay(pg.primary, pg.standby)
      await ds.probeReplicas()
      expect(ds.readReplicaStats()!.standbys[0].up).toBe(true)
    } finally {
      if (!pg.standby.running) pg.standby.start()
      await ds.close()
    }
  }, 60_000)

  describe('with the tuple index', () => {
    let indexed: Pemba
    const indexLines: string[] = []
    beforeAll(async () => {
      indexed = await open(pg.primary.url, pg.standby.url, indexLines, true)
    })
    afterAll(async () => {
      await indexed?.close()
    })

    it('catches up from the standby only to revisions it has replayed, and answers right', async () => {
      const changelogReads = () => statementsLogged(pg.standby, 'pemba-read', /FROM changelog/)
      expect(await indexed.evaluation.tupleIndexReady(store)).toBe(true)
      // Its own writes: seen at once, whichever consistency.
      for (let i = 0; i < 5; i++) {
        await write(indexed, [[`document:i${i}`, 'user:dan']])
        expect(await check(indexed, `document:i${i}`, 'user:dan', 'MINIMIZE_LATENCY')).toBe(true)
      }
      // Another replica's writes, with the standby paused: within the bound at most.
      pauseReplay(pg.standby)
      try {
        await write(writer, [['document:j', 'user:erin']])
        const written = performance.now()
        await new Promise((r) => setTimeout(r, BOUND_MS + 50))
        expect(await check(indexed, 'document:j', 'user:erin', 'MINIMIZE_LATENCY')).toBe(true)
        expect(performance.now() - written).toBeGreaterThan(BOUND_MS)
      } finally {
        resumeReplay(pg.standby)
      }
      await waitForReplay(pg.primary, pg.standby)
      // Once replayed, catch-ups read the standby's changelog.
      const before = changelogReads()
      await waitFor('a catch-up from the standby', async () => {
        await write(writer, [[`document:k${Math.random()}`, 'user:fay']])
        await new Promise((r) => setTimeout(r, BOUND_MS + 300))
        await check(indexed, 'document:1', 'user:anne', 'MINIMIZE_LATENCY')
        return changelogReads() > before
      }, 20_000, 0)
      expect(await check(indexed, 'document:j', 'user:erin', 'MINIMIZE_LATENCY')).toBe(true)
    }, 60_000)
  })
})
