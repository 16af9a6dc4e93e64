/**
 * What AuthZEN search stores, and for how long (§8.16): a repeated first page reuses the stored
 * answer (one row, on any replica), a store holds at most PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX open
 * searches (429 beyond), answers that fit in one page store nothing, rows are compact, the
 * in-process cache is bounded by bytes and forgets expired snapshots on the injected clock, and
 * the sweeper deletes snapshots in small batches. SQLite files, read directly to count rows.
 */
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { SearchService, type SearchQuery } from '../../src/service/authzen/search.ts'
import { Sweeper } from '../../src/service/sweeper.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { setup } from '../helpers/fixtures.ts'
import { SEARCH_MODEL, httpClient, movableClock } from './search-paging.case.test.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-search-storage-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const open: ServedPemba[] = []
afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
})

/** A served Pemba on a fresh SQLite file (or `file`, to share it), and a way to read its snapshot rows. */
async function serve(config: Partial<PembaConfig> = {}, clock = movableClock(), file = join(dir, `db-${n++}.db`)) {
  const served = await servePemba({ databaseUrl: `sqlite:${file}`, maxTuplesPerWrite: 1000, ...config }, { clock: clock.now })
  open.push(served)
  const rows = () => {
    const db = new Database(file, { readonly: true })
    try {
      return db.prepare('SELECT store_id, query_hash, revision, results FROM search_snapshots').all() as { results: string; revision: number }[]
    } finally {
      db.close()
    }
  }
  return { served, client: httpClient(served), rows, file, clock }
}

const anneDocs = { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc' } }
const docs = (count: number) => Array.from({ length: count }, (_, i) => `doc:d${String(i).padStart(2, '0')}#viewer@user:anne`)

describe('snapshot reuse and the per-store cap (§8.16)', () => {
  it('30 identical first pages store one row, also via another replica; each token pages correctly; a write makes a new row', async () => {
    const a = await serve()
    const { storeId } = await setup(a.client, SEARCH_MODEL, docs(30))
    const post = (body: unknown, c = a.client) => c.request('POST', `/stores/${storeId}/access/v1/search/resource`, body)
    const tokens: string[] = []
    for (let i = 0; i < 30; i++) {
      const res = await post({ ...anneDocs, page: { limit: 1 } })
      expect(res.status, res.text).toBe(200)
      expect(res.body).toMatchObject({ page: { count: 1, total: 30 }, results: [{ type: 'doc', id: 'd00' }] })
      tokens.push(res.body.page.next_token)
    }
    expect(a.rows()).toHaveLength(1)
    // Stored compactly: the type once, then the ids.
    expect(a.rows()[0].results.startsWith('{"p":"doc:","r":["d00","d01",')).toBe(true)
    // Another replica asking the same question at the same revision finds the row.
    const b = await serve({}, a.clock, a.file)
    expect((await post({ ...anneDocs, page: { limit: 1 } }, b.client)).status).toBe(200)
    expect(a.rows()).toHaveLength(1)
    // Any of the tokens pages through the rest, each result once.
    let token = tokens[17]
    const seen = ['d00']
    while (token) {
      const res = await post({ ...anneDocs, page: { limit: 1, token } }, seen.length % 2 ? b.client : a.client)
      expect(res.status, res.text).toBe(200)
      seen.push(...res.body.results.map((r: { id: string }) => r.id))
      token = res.body.page.next_token
    }
    expect(seen).toEqual(docs(30).map((t) => t.slice(4, 7)))
    // A write moves the head: the same question is a new answer, in a new row.
    await a.client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'doc:d99' }] } })
    const after = await post({ ...anneDocs, page: { limit: 1 } })
    expect(after.body.page.total).toBe(31)
    expect(a.rows()).toHaveLength(2)
    expect(new Set(a.rows().map((r) => r.revision)).size).toBe(2)
  })

  it('answers that fit in one page, and limit 0, store nothing', async () => {
    const a = await serve()
    const { storeId } = await setup(a.client, SEARCH_MODEL, docs(5))
    for (const page of [{ limit: 0 }, { limit: 5 }, { limit: 100 }, {}]) {
      const res = await a.client.request('POST', `/stores/${storeId}/access/v1/search/resource`, { ...anneDocs, page })
      expect(res.status, res.text).toBe(200)
      expect(res.body.page.next_token).toBe('')
    }
    expect(a.rows()).toHaveLength(0)
  })

  it('a store holds at most PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX open searches: one more → 429 until one expires', async () => {
    const a = await serve({ authzenSearchSnapshotsMax: 3 })
    const { storeId } = await setup(a.client, SEARCH_MODEL, docs(10))
    const first = (limit: number, store = storeId) =>
      a.client.request('POST', `/stores/${store}/access/v1/search/resource`, { ...anneDocs, page: { limit } })
    for (const limit of [1, 2, 3]) expect((await first(limit)).status).toBe(200)
    const over = await first(4)
    expect(over.status, over.text).toBe(429)
    expect(over.body.code).toBe('resource_exhausted')
    expect(over.body.message).toMatch(/too many paged searches open in this store \(3, PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX\)/)
    // An open search's question is still answered (reused), and its pages still served.
    const again = await first(2)
    expect(again.status, again.text).toBe(200)
    const next = await a.client.request('POST', `/stores/${storeId}/access/v1/search/resource`, { ...anneDocs, page: { limit: 2, token: again.body.page.next_token } })
    expect(next.body.results).toEqual([{ type: 'doc', id: 'd02' }, { type: 'doc', id: 'd03' }])
    // Another store has its own budget.
    const other = await setup(a.client, SEARCH_MODEL, docs(10))
    expect((await first(4, other.storeId)).status).toBe(200)
    // Once the open searches expire, new ones are accepted again.
    a.clock.advance(11 * 60_000)
    expect((await first(4)).status).toBe(200)
  })
})

describe('the in-process snapshot cache', () => {
  it('is bounded by bytes, counts the results once, and forgets a snapshot when it expires (injected clock)', async () => {
    const a = await serve()
    const long = (i: number) => `${'x'.repeat(200)}${i}`
    const { storeId } = await setup(a.client, SEARCH_MODEL, Array.from({ length: 10 }, (_, i) => `doc:${long(i)}#viewer@user:anne`))
    const p = a.served.pemba
    const service = (cacheBytes: number) =>
      new SearchService({
        lists: p.lists,
        evaluation: p.evaluation,
        heads: { get: (id) => p.datastore.headRevision(id) },
        snapshots: p.datastore,
        clock: a.clock.now,
        pageLimit: 3,
        pageLimitMax: 10,
        tokenTtlMs: 60_000,
        maxResults: 100,
        deadlineMs: 5000,
        snapshotsMax: 100,
        cacheBytes,
      })
    const q: SearchQuery = { kind: 'resource', subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc' } }
    const roomy = service(1 << 20)
    const page1 = await roomy.search(storeId, q, {}, {})
    expect(page1.count).toBe(3)
    const { entries, bytes } = roomy.cached()
    expect(entries).toBe(1)
    // 10 results of 205 characters (`doc:` + the id): about 2 KB, whatever the count of results.
    expect(bytes).toBeGreaterThanOrEqual(10 * 205)
    expect(bytes).toBeLessThan(10 * 205 + 1024)
    a.clock.advance(60_001)
    expect(roomy.cached()).toEqual({ entries: 0, bytes: 0 })
    await expect(roomy.search(storeId, q, { token: page1.nextToken }, {})).rejects.toThrow(/expired or is unknown/)

    // A budget smaller than the snapshot: nothing is held, later pages read the row.
    const tight = service(1000)
    const first = await tight.search(storeId, q, {}, {})
    expect(tight.cached()).toEqual({ entries: 0, bytes: 0 })
    const second = await tight.search(storeId, q, { token: first.nextToken }, {})
    expect(second.results).toEqual([3, 4, 5].map((i) => ({ type: 'doc', id: long(i) })))
  })
})

describe('the sweeper', () => {
  it('deletes expired snapshots in batches of at most 50', async () => {
    const a = await serve()
    const { storeId } = await setup(a.client, SEARCH_MODEL)
    const ds = a.served.pemba.datastore
    const past = new Date(a.clock.now().getTime() - 1000)
    for (let i = 0; i < 120; i++) {
      await ds.insertSearchSnapshot({
        storeId,
        id: `s${i}`,
        queryHash: `h${i}`,
        modelId: 'm',
        revision: 1,
        secret: 'c2VjcmV0',
        results: ['doc:a', 'doc:b'],
        total: 2,
        createdAt: past,
        expiresAt: past,
      })
    }
    const limits: number[] = []
    const sweeper = new Sweeper({
      datastore: {
        sweepExpired: (now, limit) => ds.sweepExpired(now, limit),
        expireAccessRequests: (now, limit) => ds.expireAccessRequests(now, limit),
        deleteExpiredSearchSnapshots: (now, limit) => {
          limits.push(limit)
          return ds.deleteExpiredSearchSnapshots(now, limit)
        },
        purgeDeletedStores: (before, limit) => ds.purgeDeletedStores(before, limit),
      },
      clock: a.clock.now,
      deletedStoreRetentionMs: 0,
      intervalMs: 0,
      logError: (err) => {
        throw err
      },
    })
    expect((await sweeper.runOnce()).searchSnapshots).toBe(120)
    expect(limits.every((l) => l <= 50)).toBe(true)
    expect(a.rows()).toHaveLength(0)
  })
})
