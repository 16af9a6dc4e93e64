/**
 * The correctness suites with a read replica set: the datastore suite, the tuple index suite and
 * OpenFGA conformance on PostgreSQL, each over the CI cluster (PEMBA_TEST_POSTGRES_URL) with its
 * streaming standby (PEMBA_TEST_POSTGRES_READ_URL, .ci/standby) as PEMBA_DATABASE_READ_URL. In
 * the datastore suite every reader accepts a replica and every changelog page may come from one
 * (as MINIMIZE_LATENCY requests and the tuple index's followers do); in the tuple index suite the
 * index's own followers decide (a build reads the primary, a catch-up may read a standby). After
 * each write, and after each head read, the test waits until the router would send a read bound to
 * it to the standby (the standby has replayed it and a probe has seen so): without the wait nearly
 * every read right after a write goes to the primary, and the suites would pass with the standby
 * path broken. Each suite then checks from the router's own counts that most of its routed reads
 * were the standby's. Under PEMBA_REQUIRE_POSTGRES=1 a missing standby fails these suites, never
 * skips them.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import pg from 'pg'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import type { Datastore } from '../../src/store/store.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createTestSchema, describePostgres, probePostgres, withSearchPath, type TestSchema } from '../helpers/postgres.ts'
import { probeStandby } from '../helpers/pg-standby.ts'
import { waitFor } from '../helpers/wait.ts'
import { FILES, KINDS, formatFailure, runConformance } from '../conformance/runner.ts'
import { runDatastoreSuite } from './datastore.case.test.ts'
import { runTupleIndexSuite } from './tuple-index.case.test.ts'

const primary = await probePostgres()
const standby = await probeStandby()
// Both must answer; either missing is the reason given (a failure under PEMBA_REQUIRE_POSTGRES=1).
const target = primary.url && standby.url ? primary : { ...primary, url: undefined, reason: primary.reason ?? standby.reason }

/** waitForReplay: until the standby has replayed what the primary had written when called (a schema, a TRUNCATE). */
async function waitForReplay(primaryUrl: string, standbyUrl: string): Promise<void> {
  const p = new pg.Client({ connectionString: primaryUrl })
  const s = new pg.Client({ connectionString: standbyUrl })
  await Promise.all([p.connect(), s.connect()])
  try {
    const lsn = (await p.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l
    const until = Date.now() + 30_000
    while ((await s.query<{ b: boolean }>('SELECT pg_last_wal_replay_lsn() < $1::pg_lsn AS b', [lsn])).rows[0].b) {
      if (Date.now() > until) throw new Error(`the standby did not replay up to ${lsn} within 30 s`)
      await new Promise((r) => setTimeout(r, 20))
    }
  } finally {
    await Promise.all([p.end(), s.end()])
  }
}

/** Routed reads a suite's datastores sent to the standby and to the primary (counted as each closes). */
interface Tally {
  standby: number
  primary: number
}

/**
 * standbyHas: until `ds`'s router knows its standby holds every commit acknowledged before
 * `since` (a performance.now() instant): the standby's watermark, now − lag, is past it. A
 * read bound to a revision the router learnt before `since` then qualifies for the standby.
 */
async function standbyHas(ds: PostgresDatastore, since: number): Promise<void> {
  const until = Date.now() + 30_000
  for (;;) {
    await ds.probeReplicas()
    const before = performance.now()
    const s = ds.readReplicaStats()!.standbys[0]
    if (s.up && s.lagSeconds !== undefined && before - s.lagSeconds * 1000 > since) return
    if (Date.now() > until) throw new Error(`the standby did not show a watermark past the last write within 30 s (${JSON.stringify(s)})`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** afterWrites: `ds`'s tuple writes wait, once they return, until `router`'s standby has them. */
function afterWrites(ds: Datastore, router: PostgresDatastore): void {
  const { write, loadTuples } = ds
  ds.write = async (storeId, req, now) => {
    const revision = await write.call(ds, storeId, req, now)
    await standbyHas(router, performance.now())
    return revision
  }
  ds.loadTuples = async (storeId, tuples, now) => {
    const result = await loadTuples.call(ds, storeId, tuples, now)
    await standbyHas(router, performance.now())
    return result
  }
}

/**
 * replicaReads: a datastore whose readers accept a replica, whose changelog pages may come from one
 * (`everyPage`: even those a caller asks of the primary), whose writes and head reads wait until
 * the standby has them, and whose routed reads are added to `tally` when it closes.
 */
function replicaReads(ds: PostgresDatastore, tally: Tally, everyPage: boolean): PostgresDatastore {
  const { reader, readChanges, close } = ds
  ds.reader = (storeId, revision, now) => reader(storeId, revision, now, { replica: true })
  if (everyPage) ds.readChanges = (storeId, q) => readChanges(storeId, { ...q, atLeast: q.atLeast ?? 0 })
  afterWrites(ds, ds)
  // A head read through the router (it notes when the revision was known), as HeadRevisions reads it.
  ds.headRevision = async (storeId) => {
    const head = await ds.storeHead(storeId)
    await standbyHas(ds, performance.now())
    return head.revision
  }
  ds.close = async () => {
    const stats = ds.readReplicaStats()
    if (stats) {
      tally.standby += stats.standbys.reduce((sum, s) => sum + s.reads, 0)
      tally.primary += stats.primaryReads
    }
    await close.call(ds)
  }
  return ds
}

describePostgres('read replicas: the correctness suites over the CI standby', target, () => {
  let schema: TestSchema
  const readUrl = () => withSearchPath(standby.url!, schema.name)
  beforeAll(async () => {
    schema = await createTestSchema(primary.url!)
    await (await PostgresDatastore.open({ url: schema.url, poolSize: 1 })).close()
  })
  afterAll(async () => {
    await schema?.drop()
  })

  const open = async (poolSize: number) => {
    const ds = await PostgresDatastore.open({ url: schema.url, poolSize, readUrls: [readUrl()], readProbeIntervalMs: 50 })
    return ds
  }

  const datastoreReads: Tally = { standby: 0, primary: 0 }
  runDatastoreSuite({
    name: 'postgres with a read replica',
    open: async () => {
      await schema.truncate()
      // The previous case's tuples are another writer's to this one: gone from the standby first.
      await waitForReplay(schema.url, readUrl())
      return replicaReads(await open(4), datastoreReads, true)
    },
  })

  it('read mostly from the standby in the datastore suite', () => {
    console.info(`datastore suite: ${datastoreReads.standby} routed reads on the standby, ${datastoreReads.primary} on the primary`)
    expect(datastoreReads.standby).toBeGreaterThan(datastoreReads.primary)
  })

  const indexReads: Tally = { standby: 0, primary: 0 }
  runTupleIndexSuite({
    name: 'postgres with a read replica, two replicas',
    open: async () => {
      await schema.truncate()
      await waitForReplay(schema.url, readUrl())
      const primary = replicaReads(await open(2), indexReads, false)
      // The other replica's writes, as this one learns them: from a head read.
      const other = await open(2)
      afterWrites(other, primary)
      return { primary, other }
    },
  })

  // Its catch-ups' pages among them; that they do reach the standby's changelog is counted from
  // the standby's own log in read-replicas.test.ts ('catches up from the standby only …').
  it('read mostly from the standby in the tuple index suite', () => {
    console.info(`tuple index suite: ${indexReads.standby} routed reads on the standby, ${indexReads.primary} on the primary`)
    expect(indexReads.standby).toBeGreaterThan(indexReads.primary)
  })

  it('sends a reader bound to a revision the standby has replayed to the standby', async () => {
    await schema.truncate()
    const ds = await open(2)
    try {
      const store = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
      await ds.createStore(store, 'routed', new Date())
      const anne = { objectType: 'doc', objectId: '1', relation: 'viewer', userType: 'user', userId: 'anne', userRelation: '', conditionName: '', conditionContext: undefined }
      const revision = await ds.write(store, { writes: [anne], deletes: [], onDuplicate: 'error', onMissing: 'error' }, new Date())
      await waitForReplay(schema.url, readUrl())
      // The router learns the standby's position from its next probes (every 50 ms here).
      await waitFor('a read answered by the standby', async () => {
        const reader = ds.reader(store, revision, Date.now(), { replica: true })
        expect(await reader.readObjectRelation('doc', '1', 'viewer')).toHaveLength(1)
        return ds.readReplicaStats()!.standbys[0].reads > 0
      }, 15_000)
    } finally {
      await ds.close()
    }
  })
})

describePostgres('read replicas: OpenFGA conformance with a read replica', target, () => {
  let schema: TestSchema
  let client: TestClient
  beforeAll(async () => {
    schema = await createTestSchema(primary.url!)
    await (await PostgresDatastore.open({ url: schema.url, poolSize: 1 })).close()
    await waitForReplay(schema.url, withSearchPath(standby.url!, schema.name))
    client = await createTestClient({ databaseUrl: schema.url, databaseReadUrl: withSearchPath(standby.url!, schema.name) })
  })
  afterAll(async () => {
    await client?.close()
    await schema?.drop()
  })

  for (const file of FILES) {
    for (const kind of KINDS) {
      it(`${file} ${kind}`, { timeout: 600_000 }, async () => {
        const [result] = await runConformance({ files: [file], kinds: [kind], client, concurrency: 4 })
        const bad = [...result.failures, ...result.unsupportedDetails]
        const summary = `${file} ${kind} with a read replica: ${result.passed} passed, ${result.failed} failed\n\n` + bad.slice(0, 20).map(formatFailure).join('\n\n')
        expect(result.failed, summary).toBe(0)
        expect(result.unsupported, summary).toBe(0)
      })
    }
  }

  it('sent some of its reads to the standby', async () => {
    const { body } = await client.pemba.metrics.scrape()
    const standbyReads = body
      .split('\n')
      .filter((l) => l.startsWith('pemba_datastore_replica_reads_total{') && !l.includes('target="primary"'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0)
    expect(standbyReads).toBeGreaterThan(0)
  })
})
