/**
 * Deleted means gone (issue 22, item 4), on SQLite (a file) and PostgreSQL:
 *
 * - every store route of the route table (derived from ROUTES, so a new route cannot be
 *   forgotten) answers 404 `store_id_not_found` for a deleted store, and changes nothing;
 *   DeleteStore itself stays idempotent (204 again);
 * - the datastore refuses every write to a deleted store (tuples, bulk loads, models,
 *   assertions, token issuers);
 * - the store's grants are removed with it;
 * - after PEMBA_DELETED_STORE_RETENTION the sweeper purges every row of it (in batches, two
 *   sweepers at once), and nothing of the live stores;
 * - the in-process forms (an embedded decision client) refuse it too, with every cache off, and
 *   log no decision for it;
 * - PostgreSQL: a second replica refuses the store within the staleness bound for
 *   MINIMIZE_LATENCY, at once for HIGHER_CONSISTENCY (over HTTP and embedded, with every cache
 *   off too), and writes racing the deletion through that replica never succeed once the
 *   deletion has answered; when it learns of the deletion it releases the store's tuple index,
 *   cached answers and model, and never rebuilds them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { ROUTES } from '../../src/api/route-table.ts'
import { refusesDeletedStores } from '../../src/api/live-store.ts'
import { DecisionRejected } from '../../src/enforce/decisions.ts'
import { embeddedDecisions } from '../../src/enforce/embedded.ts'
import { Sweeper } from '../../src/service/sweeper.ts'
import { STORE_TABLES } from '../../src/store/sql/purge.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createPresharedClient } from '../helpers/auth.ts'
import { setup, tupleKey, writeTuples } from '../helpers/fixtures.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'

const target = await probePostgres()

const MODEL = `model
  schema 1.1
type user
type doc
  relations
    define viewer: [user]
`
const OTHER_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV'
/** Every cross-request cache and the tuple index off: nothing but the service layer knows the store. */
const NO_CACHES: Partial<PembaConfig> = { checkCacheSize: 0, tupleCacheSize: 0, tupleIndexMaxTuples: 0 }
/** The AuthZEN question `doc:1#viewer@user:anne`, as an embedded client asks it. */
const ANNE_VIEWS_DOC_1 = { subject: { type: 'user', id: 'anne' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '1' } }

/** What an embedded evaluation ends in: its decision, or the code it was rejected with. */
async function outcome(evaluate: () => Promise<{ decision: boolean }>): Promise<boolean | string> {
  try {
    return (await evaluate()).decision
  } catch (e) {
    if (e instanceof DecisionRejected) return e.code
    throw e
  }
}
const DAY = 24 * 3600_000

/** A clock the test moves by hand. */
function manualClock(start = Date.parse('2026-03-01T00:00:00Z')) {
  let now = start
  return { now: () => new Date(now), advance: (ms: number) => (now += ms) }
}

/** What a backend gives the cases: a database URL, and row counts read beside Pemba. */
interface Backend {
  url(): string
  /** Rows of `storeId` in every per-store table, and its `stores` row (undefined once purged). */
  snapshot(storeId: string): Promise<{ rows: Record<string, number>; store?: { revision: number; deleted: boolean } }>
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-deleted-'))
  let n = 0
  let current = ''
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return {
    url() {
      current = join(dir, `db-${n++}.sqlite`)
      return `sqlite:${current}`
    },
    async snapshot(storeId) {
      const db = new Database(current, { readonly: true })
      try {
        const rows: Record<string, number> = {}
        for (const t of STORE_TABLES) rows[t] = (db.prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE store_id = ?`).get(storeId) as { n: number }).n
        const s = db.prepare('SELECT revision, deleted_at FROM stores WHERE id = ?').get(storeId) as { revision: number; deleted_at: number | null } | undefined
        return { rows, store: s && { revision: s.revision, deleted: s.deleted_at !== null } }
      } finally {
        db.close()
      }
    },
  }
}

function postgresBackend(url: () => string): Backend {
  return {
    url,
    async snapshot(storeId) {
      const client = new pg.Client({ connectionString: url() })
      await client.connect()
      try {
        const rows: Record<string, number> = {}
        for (const t of STORE_TABLES) rows[t] = Number((await client.query(`SELECT COUNT(*) AS n FROM ${t} WHERE store_id = $1`, [storeId])).rows[0].n)
        const s = (await client.query('SELECT revision, deleted_at FROM stores WHERE id = $1', [storeId])).rows[0]
        return { rows, store: s && { revision: Number(s.revision), deleted: s.deleted_at !== null } }
      } finally {
        await client.end()
      }
    },
  }
}

/** The request each route table entry gets: its path with every parameter filled in. */
function requestFor(r: { method: string; path: string }, storeId: string): { method: string; path: string } {
  const path = r.path.replace(':store', storeId).replace(/:[a-z]+/g, OTHER_ID).replace('*', 'x')
  return { method: r.method === 'ALL' ? 'POST' : r.method, path }
}

function cases(backend: Backend): void {
  const open: TestClient[] = []
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close()
  })
  const client = async (overrides: Partial<PembaConfig> = {}, clock?: () => Date) => {
    const c = await createTestClient({ databaseUrl: backend.url(), ...overrides }, { clock, sweeper: false })
    open.push(c)
    return c
  }

  it('every store route of the route table answers 404 store_id_not_found, and changes nothing', async () => {
    const t = await client()
    const { storeId, check } = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    expect(await check('doc:1#viewer@user:anne')).toBe(true)
    expect((await t.request('PUT', `/stores/${storeId}/assertions/${(await t.request('GET', `/stores/${storeId}/authorization-models`)).body.authorization_models[0].id}`, {
      assertions: [{ tuple_key: tupleKey('doc:1#viewer@user:anne'), expectation: true }],
    })).status).toBe(204)
    await t.pemba.decisions.flush()
    expect(t.pemba.evaluation.cacheStats().entries).toBeGreaterThan(0)
    expect(t.pemba.models.known(storeId)).toBeDefined()

    expect((await t.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
    // What this process held of the store is released: cached answers, its model, its tuple index.
    expect(t.pemba.evaluation.cacheStats().entries).toBe(0)
    expect(t.pemba.models.known(storeId)).toBeUndefined()
    expect(t.pemba.evaluation.tupleIndexStats()?.stores ?? 0).toBe(0)
    const before = await backend.snapshot(storeId)
    expect(before.store).toMatchObject({ deleted: true })
    expect(before.rows.tuples).toBe(1)

    const storeRoutes = ROUTES.filter((r) => r.path.includes(':store'))
    // Only DeleteStore is left out, and it is idempotent (below).
    expect(storeRoutes.filter((r) => !refusesDeletedStores(r)).map((r) => `${r.method} ${r.path}`)).toEqual(['DELETE /stores/:store'])
    const refused = storeRoutes.filter(refusesDeletedStores)
    expect(refused.length).toBeGreaterThan(40)
    for (const r of refused) {
      const { method, path } = requestFor(r, storeId)
      const body = method === 'GET' ? undefined : { tuple_key: tupleKey('doc:1#viewer@user:anne'), writes: { tuple_keys: [tupleKey('doc:2#viewer@user:bob')] } }
      const res = await t.request(method, path, body)
      expect({ route: `${r.method} ${r.path}`, status: res.status, code: res.body?.code }).toEqual({
        route: `${r.method} ${r.path}`,
        status: 404,
        code: 'store_id_not_found',
      })
      if (path.includes('/access/v1/requests')) expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      if (path.includes('/gateway/')) expect(res.headers.get('x-pemba-refusal')).toBe('store_id_not_found')
    }
    await t.pemba.decisions.flush()
    expect(await backend.snapshot(storeId)).toEqual(before)
    // Deleting again: 204, still nothing changed; the store stays deleted.
    expect((await t.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
    expect(await backend.snapshot(storeId)).toEqual(before)
  })

  it('the in-process forms refuse a deleted store and log nothing for it, with every cache off', async () => {
    const t = await client(NO_CACHES)
    const { storeId } = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    expect((await t.request('PUT', `/stores/${storeId}/decision-log-settings`, { enabled: true, sample_rate: 1 })).status).toBe(200)
    const embedded = embeddedDecisions(t.pemba, storeId)
    expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1))).toBe(true)
    await t.pemba.decisions.flush()
    expect((await backend.snapshot(storeId)).rows.decision_log).toBe(1)

    expect((await t.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
    const before = await backend.snapshot(storeId)
    expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1))).toBe('store_id_not_found')
    expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1, { consistency: 'HIGHER_CONSISTENCY' }))).toBe('store_id_not_found')
    await t.pemba.decisions.flush()
    // No decision (nor anything else) written to the deleted store.
    expect(await backend.snapshot(storeId)).toEqual(before)
  })

  it('the datastore refuses every write to a deleted store: tuples, bulk loads, models, assertions, token issuers', async () => {
    const t = await client()
    const ds = t.pemba.datastore
    const now = new Date()
    const { storeId } = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    const tuple = { objectType: 'doc', objectId: '2', relation: 'viewer', userType: 'user', userId: 'bob', userRelation: '', conditionName: '' , conditionContext: undefined }
    await ds.deleteStore(storeId, now)
    const before = await backend.snapshot(storeId)
    await expect(ds.write(storeId, { writes: [tuple], deletes: [], onMissing: 'error', onDuplicate: 'error' }, now)).rejects.toMatchObject({ code: 'store_id_not_found' })
    await expect(ds.loadTuples(storeId, [tuple], now)).rejects.toMatchObject({ code: 'store_id_not_found' })
    await expect(ds.writeModel(storeId, { id: OTHER_ID, schema_version: '1.1', type_definitions: [{ type: 'user' }] }, now)).rejects.toMatchObject({ code: 'store_id_not_found' })
    await expect(ds.writeAssertions(storeId, OTHER_ID, [])).rejects.toMatchObject({ code: 'store_id_not_found' })
    expect(await ds.putTokenIssuer({ storeId, name: 'idp', issuer: 'https://idp.example', config: {}, limit: 10 }, now)).toMatchObject({ ok: false, reason: 'store_missing' })
    expect(await ds.storeHead(storeId)).toEqual({ revision: before.store!.revision, deleted: true })
    expect(await backend.snapshot(storeId)).toEqual(before)
  })

  it("removes the store's grants: its admin loses it, a system admin gets 404, nothing is left to list", async () => {
    const t = await createPresharedClient(['root', 'owner', 'ci'], { databaseUrl: backend.url(), authAdminClients: 'root' })
    open.push(t)
    expect((await t.as('root', 'POST', '/system/grants', { client: 'owner', role: 'store_creator' })).status).toBe(200)
    const storeId = (await t.as('owner', 'POST', '/stores', { name: 'doomed' })).body.id
    expect((await t.as('owner', 'POST', '/system/grants', { client: 'ci', role: 'reader', store: storeId })).status).toBe(200)
    expect((await t.as('owner', 'POST', '/system/grants', { client: 'ci', role: 'writer', store: storeId, type: 'doc' })).status).toBe(200)
    expect((await t.as('ci', 'GET', `/stores/${storeId}/changes`)).status).toBe(200)
    const listed = await t.as('root', 'GET', `/system/grants?store=${storeId}`)
    expect(listed.body.grants.length).toBe(3)

    expect((await t.as('owner', 'DELETE', `/stores/${storeId}`)).status).toBe(204)
    expect((await t.as('root', 'GET', `/system/grants?store=${storeId}`)).body.grants).toEqual([])
    // The system store holds no tuple about it any more (its link to the system included).
    const sys = await t.pemba.datastore.read('_pemba_system', { objectType: 'store', objectId: storeId }, { pageSize: 100 }, Date.now())
    expect(sys.items).toEqual([])
    const ownerNow = await t.as('owner', 'GET', `/stores/${storeId}/changes`)
    expect([ownerNow.status, ownerNow.body.code]).toEqual([401, 'forbidden'])
    const rootNow = await t.as('root', 'GET', `/stores/${storeId}/changes`)
    expect([rootNow.status, rootNow.body.code]).toEqual([404, 'store_id_not_found'])
    // A grant on it is refused as on any unknown store.
    expect((await t.as('root', 'POST', '/system/grants', { client: 'ci', role: 'reader', store: storeId })).body.code).toBe('store_id_not_found')
  })

  it('purges every row of a store deleted longer ago than the retention, in batches, two sweepers at once', async () => {
    const clock = manualClock()
    const t = await client({ deletedStoreRetention: 'P1D' }, clock.now)
    const doomed = await setup(t, MODEL, Array.from({ length: 30 }, (_, i) => `doc:${i}#viewer@user:anne`))
    const live = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    for (const s of [doomed, live]) {
      expect(await s.check('doc:1#viewer@user:anne')).toBe(true)
      expect((await t.request('PUT', `/stores/${s.storeId}/decision-log-settings`, { enabled: true, sample_rate: 1 })).status).toBe(200)
      expect(await s.check('doc:1#viewer@user:anne')).toBe(true)
      await writeTuples(t, s.storeId, ['doc:x#viewer@user:bob'])
    }
    await t.pemba.decisions.flush()
    const liveBefore = await backend.snapshot(live.storeId)
    const doomedBefore = await backend.snapshot(doomed.storeId)
    for (const table of ['tuples', 'changelog', 'authorization_models', 'decision_log', 'decision_log_settings']) {
      expect(doomedBefore.rows[table], table).toBeGreaterThan(0)
    }

    expect((await t.request('DELETE', `/stores/${doomed.storeId}`)).status).toBe(204)
    clock.advance(DAY - 1000)
    expect(await t.pemba.sweeper.runOnce()).toMatchObject({ purgedRows: 0, purgedStores: [] })
    expect((await backend.snapshot(doomed.storeId)).rows).toEqual(doomedBefore.rows)

    clock.advance(2000)
    // The server's own sweeper and a second one in small batches (as another replica's would).
    const small = new Sweeper({ datastore: t.pemba.datastore, clock: clock.now, deletedStoreRetentionMs: DAY, intervalMs: 0, batchSize: 4, logError: (e) => { throw e } })
    const results = await Promise.all([t.pemba.sweeper.runOnce(), small.runOnce()])
    const total = Object.values(doomedBefore.rows).reduce((a, b) => a + b, 0) + 1
    expect(results[0].purgedRows + results[1].purgedRows).toBe(total)
    expect([...results[0].purgedStores, ...results[1].purgedStores]).toEqual([doomed.storeId])
    const after = await backend.snapshot(doomed.storeId)
    expect(after.store).toBeUndefined()
    expect(Object.values(after.rows).every((n) => n === 0)).toBe(true)
    expect(await backend.snapshot(live.storeId)).toEqual(liveBefore)
    expect(await live.check('doc:1#viewer@user:anne')).toBe(true)
    expect(await t.pemba.sweeper.runOnce()).toMatchObject({ purgedRows: 0 })
  })

  it('removes rows a writer that does not lock the store row left after the purge, and nothing else', async () => {
    const clock = manualClock()
    const t = await client({ deletedStoreRetention: 'P1D' }, clock.now)
    const doomed = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    const live = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    expect((await t.request('PUT', `/stores/${live.storeId}/decision-log-settings`, { enabled: true, sample_rate: 1 })).status).toBe(200)
    expect((await t.request('DELETE', `/stores/${doomed.storeId}`)).status).toBe(204)
    clock.advance(DAY + 1000)
    expect(await t.pemba.sweeper.runOnce()).toMatchObject({ purgedStores: [doomed.storeId] })
    expect((await backend.snapshot(doomed.storeId)).store).toBeUndefined()
    // A request in flight across the purge: the decision-log settings written beneath the API,
    // which takes no lock on the store row. Also a row of an id that is no store (not a ULID).
    const late = { enabled: true, sampleRate: 1, updatedAt: clock.now() }
    await t.pemba.datastore.putDecisionLogSettings(doomed.storeId, late)
    await t.pemba.datastore.putDecisionLogSettings('not-a-store', late)
    const liveBefore = await backend.snapshot(live.storeId)
    expect((await backend.snapshot(doomed.storeId)).rows.decision_log_settings).toBe(1)

    expect(await t.pemba.sweeper.runOnce()).toMatchObject({ purgedRows: 1, purgedStores: [] })
    expect((await backend.snapshot(doomed.storeId)).rows.decision_log_settings).toBe(0)
    expect((await backend.snapshot('not-a-store')).rows.decision_log_settings).toBe(1)
    expect(await backend.snapshot(live.storeId)).toEqual(liveBefore)
    expect(await t.pemba.sweeper.runOnce()).toMatchObject({ purgedRows: 0 })
  })

  it('removes the grants on a purged store before its row, so a failed removal is retried by the next run', async () => {
    const clock = manualClock()
    const t = await client({ deletedStoreRetention: 'P1D' }, clock.now)
    const { storeId } = await setup(t, MODEL, ['doc:1#viewer@user:anne'])
    expect((await t.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
    clock.advance(DAY + 1000)
    const calls: string[] = []
    let failing = true
    const sweeper = new Sweeper({
      datastore: t.pemba.datastore,
      clock: clock.now,
      deletedStoreRetentionMs: DAY,
      intervalMs: 0,
      onStorePurged: async (id) => {
        calls.push(id)
        // As if the system store could not be written: the grants are still there.
        if (failing) throw new Error('grant removal failed')
      },
      logError: (e) => {
        throw e
      },
    })
    await expect(sweeper.runOnce()).rejects.toThrow('grant removal failed')
    // The store's rows are gone, its row is not: it is still due.
    const kept = await backend.snapshot(storeId)
    expect(kept.store).toMatchObject({ deleted: true })
    expect(Object.values(kept.rows).every((n) => n === 0)).toBe(true)
    failing = false
    expect(await sweeper.runOnce()).toMatchObject({ purgedRows: 1, purgedStores: [storeId] })
    expect(calls).toEqual([storeId, storeId])
    expect((await backend.snapshot(storeId)).store).toBeUndefined()
  })
}

describe('deleted stores on SQLite', () => {
  cases(sqliteBackend())
})

describePostgres('deleted stores on PostgreSQL', target, () => {
  const url = usePostgresSchema(target)
  cases(postgresBackend(url))

  describe('replicas', () => {
    const open: TestClient[] = []
    afterEach(async () => {
      for (const c of open.splice(0)) await c.close()
    })
    const STALENESS_MS = 60_000

    it('another replica refuses the store at once for HIGHER_CONSISTENCY, within the staleness bound otherwise; racing writes never succeed after the deletion', async () => {
      const clockB = manualClock(Date.now())
      const a = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS }, { sweeper: false })
      open.push(a)
      const b = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS }, { sweeper: false, clock: clockB.now })
      open.push(b)
      const { storeId } = await setup(a, MODEL, ['doc:1#viewer@user:anne'])
      const checkOnB = (consistency?: string) =>
        b.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:1#viewer@user:anne'), ...(consistency ? { consistency } : {}) })
      expect((await checkOnB()).body.allowed).toBe(true)

      // Eight writers on B (which still believes the store live) while A deletes it.
      let deleted = false
      const acked: string[] = []
      const refusedAfter: number[] = []
      const writer = async (w: number) => {
        let after = 0
        for (let i = 0; after < 3 && i < 10_000; i++) {
          const startedAfterDelete = deleted
          const tuple = `doc:w${w}-${i}#viewer@user:anne`
          const res = await b.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey(tuple)] } })
          if (startedAfterDelete) {
            after++
            expect([res.status, res.body?.code]).toEqual([404, 'store_id_not_found'])
            refusedAfter.push(w)
          } else if (res.status === 200) acked.push(tuple)
          else expect([res.status, res.body?.code]).toEqual([404, 'store_id_not_found'])
        }
      }
      let settled = false
      const writers = Promise.all(Array.from({ length: 8 }, (_, w) => writer(w))).finally(() => (settled = true))
      // Some writes acknowledged first, so the deletion lands among writes in flight (no timing asserted).
      while (acked.length < 16 && !settled) await new Promise((r) => setTimeout(r, 5))
      expect((await a.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
      deleted = true
      await writers
      expect(refusedAfter.length).toBe(24)
      expect(acked.length).toBeGreaterThan(0)
      // Exactly the acknowledged writes are stored (read beneath the API, which refuses the store).
      const stored = await a.pemba.datastore.read(storeId, { objectType: 'doc' }, { pageSize: 100_000 }, Date.now())
      const names = stored.items.map((t) => `doc:${t.objectId}#viewer@user:anne`).filter((n) => n.startsWith('doc:w'))
      expect(names.sort()).toEqual([...acked].sort())

      expect((await checkOnB('HIGHER_CONSISTENCY')).body.code).toBe('store_id_not_found')
      clockB.advance(STALENESS_MS + 1)
      const late = await checkOnB()
      expect([late.status, late.body.code]).toEqual([404, 'store_id_not_found'])
      expect((await b.request('GET', `/stores/${storeId}/changes`)).status).toBe(404)
    })

    it('another replica releases what it holds of the store (tuple index, cached answers, model) when it learns of the deletion', async () => {
      const clockB = manualClock(Date.now())
      const a = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS }, { sweeper: false })
      open.push(a)
      const b = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS }, { sweeper: false, clock: clockB.now })
      open.push(b)
      const { storeId } = await setup(a, MODEL, ['doc:1#viewer@user:anne'])
      const checkOnB = () => b.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:1#viewer@user:anne') })
      expect((await checkOnB()).body.allowed).toBe(true)
      expect(await b.pemba.evaluation.tupleIndexReady(storeId)).toBe(true)
      expect(b.pemba.evaluation.tupleIndexStats()).toMatchObject({ stores: 1, tuples: 1 })
      expect(b.pemba.evaluation.cacheStats().entries).toBeGreaterThan(0)
      const modelId = (await a.request('GET', `/stores/${storeId}/authorization-models`)).body.authorization_models[0].id
      expect(b.pemba.models.known(storeId, modelId)).toBeDefined()
      const builds = b.pemba.evaluation.tupleIndexStats()!.builds

      expect((await a.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
      clockB.advance(STALENESS_MS + 1)
      const res = await checkOnB()
      expect([res.status, res.body.code]).toEqual([404, 'store_id_not_found'])
      // B learnt of the deletion from its head read, and released the store as A did.
      expect(b.pemba.evaluation.tupleIndexStats()).toMatchObject({ stores: 0, tuples: 0 })
      expect(b.pemba.evaluation.cacheStats().entries).toBe(0)
      expect(b.pemba.models.known(storeId, modelId)).toBeUndefined()
      // Asked again, in every form, B never rebuilds the deleted store's index.
      expect(await outcome(() => embeddedDecisions(b.pemba, storeId).evaluate(ANNE_VIEWS_DOC_1))).toBe('store_id_not_found')
      expect((await checkOnB()).status).toBe(404)
      expect(b.pemba.evaluation.tupleIndexStats()).toMatchObject({ stores: 0, tuples: 0, builds })
    })

    it("an embedded client on another replica with every cache off refuses the store at once for HIGHER_CONSISTENCY, and from then on whatever the consistency", async () => {
      const clockB = manualClock(Date.now())
      const a = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS }, { sweeper: false })
      open.push(a)
      const b = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS, ...NO_CACHES }, { sweeper: false, clock: clockB.now })
      open.push(b)
      const { storeId } = await setup(a, MODEL, ['doc:1#viewer@user:anne'])
      const embedded = embeddedDecisions(b.pemba, storeId)
      expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1))).toBe(true)

      expect((await a.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
      expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1, { consistency: 'HIGHER_CONSISTENCY' }))).toBe('store_id_not_found')
      // Known from then on, whatever the consistency.
      expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1))).toBe('store_id_not_found')
    })

    it('an embedded client on another replica with every cache off refuses the store once its clock passes the staleness bound', async () => {
      const clockB = manualClock(Date.now())
      const a = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS }, { sweeper: false })
      open.push(a)
      const b = await createTestClient({ databaseUrl: url(), checkCacheStalenessMs: STALENESS_MS, ...NO_CACHES }, { sweeper: false, clock: clockB.now })
      open.push(b)
      const { storeId } = await setup(a, MODEL, ['doc:1#viewer@user:anne'])
      const embedded = embeddedDecisions(b.pemba, storeId)
      expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1))).toBe(true)
      expect((await a.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
      clockB.advance(STALENESS_MS + 1)
      expect(await outcome(() => embedded.evaluate(ANNE_VIEWS_DOC_1))).toBe('store_id_not_found')
    })

    it('a replica that has never seen the store refuses it at once', async () => {
      const a = await createTestClient({ databaseUrl: url() }, { sweeper: false })
      open.push(a)
      const b = await createTestClient({ databaseUrl: url() }, { sweeper: false })
      open.push(b)
      const { storeId } = await setup(a, MODEL, ['doc:1#viewer@user:anne'])
      expect((await a.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
      const res = await b.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:1#viewer@user:anne') })
      expect([res.status, res.body.code]).toEqual([404, 'store_id_not_found'])
    })
  })
})
