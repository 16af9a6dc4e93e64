/**
 * AuthZEN search paging, against a real server over HTTP, for any datastore: search-paging.test.ts
 * runs it on SQLite, search-paging-postgres.test.ts on PostgreSQL (a snapshot written by one
 * replica is paged on another there). Not run on its own (`*.case.test.ts`).
 *
 * The data: 5,000 documents `user:anne` may view, and one document (`doc:big`) 5,000 users may
 * view, so both resource and subject search page through 5,000 results with `limit: 100`.
 */
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import type { TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'
import { fetchJson } from './core-fixture.ts'

export const SEARCH_MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define viewer: [user, user:*, group#member]
type doc
  relations
    define owner: [user]
    define parent: [folder]
    define editor: [user, group#member] or owner
    define viewer: [user, user:*, group#member]
    define can_view: editor or viewer or viewer from parent
    define can_edit: editor
    define can_delete: owner
    define can_share: owner and editor
`

/** httpClient: the fixtures' TestClient, over real HTTP (fetch) to a served Pemba. */
export function httpClient(served: ServedPemba): TestClient {
  return {
    pemba: served.pemba,
    request: (method, path, body, headers) => fetchJson(served.url + path, method, body, headers),
    close: () => served.close(),
  }
}

const pad = (i: number) => String(i).padStart(4, '0')
const N = 5000

/** A clock the tests move forward (snapshot expiry). */
export function movableClock() {
  let offset = 0
  return { now: () => new Date(Date.now() + offset), advance: (ms: number) => void (offset += ms) }
}

/**
 * searchPagingCases registers the paging cases. `freshDatabase` gives, before each case, the
 * configuration of an empty database on the datastore under test (`databaseUrl`); `shared`: another replica can open the same database
 * (not so for in-memory SQLite), to page there a search begun here.
 */
export function searchPagingCases(freshDatabase: () => Partial<PembaConfig>, shared: boolean): void {
  let config: Partial<PembaConfig>
  let served: ServedPemba
  let client: TestClient
  let storeId: string
  const clock = movableClock()

  beforeEach(async () => {
    config = { maxTuplesPerWrite: 1000, ...freshDatabase() }
    served = await servePemba(config, { clock: clock.now })
    client = httpClient(served)
    ;({ storeId } = await setup(client, SEARCH_MODEL))
    const tuples: string[] = []
    for (let i = 0; i < N; i++) tuples.push(`doc:d${pad(i)}#viewer@user:anne`, `doc:big#viewer@user:u${pad(i)}`)
    await writeTuplesFast(client, storeId, tuples)
    // The searches' cost is the engine's: read from memory, not 10,000 round trips to the database.
    await served.pemba.evaluation.tupleIndexReady(storeId)
  })
  afterEach(async () => {
    await served.close()
  })

  const post = (path: string, body: unknown, store = storeId) => client.request('POST', `/stores/${store}/access/v1/search/${path}`, body)

  /** pageThrough follows next_token from the first page to the last; every page's body. */
  async function pageThrough(path: string, body: Record<string, unknown>, via: TestClient = client) {
    const pages: any[] = []
    let token: string | undefined
    do {
      const res = await via.request('POST', `/stores/${storeId}/access/v1/search/${path}`, { ...body, page: { limit: 100, ...(token ? { token } : {}) } })
      expect(res.status, res.text).toBe(200)
      // §8.17: `page` is the first key of the answer, as sent.
      expect(res.text.startsWith('{"page":{')).toBe(true)
      pages.push(res.body)
      token = res.body.page.next_token
      expect(pages.length).toBeLessThanOrEqual(N / 100)
    } while (token)
    return pages
  }

  const anneDocs = { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc' } }
  const bigViewers = { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'big' } }

  it('§8.16 resource search: 5,000 results in pages of 100, each exactly once, the last with next_token ""', async () => {
    const pages = await pageThrough('resource', anneDocs)
    expect(pages).toHaveLength(50)
    for (const [i, p] of pages.entries()) {
      expect(p.page).toMatchObject({ count: 100, total: N })
      expect(p.results).toHaveLength(100)
      expect(p.page.next_token === '').toBe(i === 49)
    }
    const ids = pages.flatMap((p) => p.results.map((r: { type: string; id: string }) => `${r.type}:${r.id}`))
    expect(new Set(ids).size).toBe(N)
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => `doc:d${pad(i)}`))
  })

  it('§8.16 subject search: 5,000 users in pages of 100, each exactly once', async () => {
    const pages = await pageThrough('subject', bigViewers)
    expect(pages).toHaveLength(50)
    const users = pages.flatMap((p) => p.results)
    expect(users.every((u: { type: string }) => u.type === 'user')).toBe(true)
    const ids = users.map((u: { id: string }) => u.id)
    expect(new Set(ids).size).toBe(N)
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => `u${pad(i)}`))
    expect(pages.at(-1).page).toEqual({ next_token: '', count: 100, total: N })
  })

  it('§8.16 a stale token answers at the first page\'s revision; a new search sees the write', async () => {
    const first = await post('resource', { ...anneDocs, page: { limit: 100 } })
    expect(first.status, first.text).toBe(200)
    // Between pages: a new matching document (it would sort last) and one on a later page removed.
    const w = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'doc:d9999' }] },
      deletes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'doc:d4000' }] },
    })
    expect(w.status, w.text).toBe(200)
    const seen: string[] = first.body.results.map((r: { id: string }) => r.id)
    let token: string = first.body.page.next_token
    while (token) {
      const res = await post('resource', { ...anneDocs, page: { limit: 100, token } })
      expect(res.status, res.text).toBe(200)
      expect(res.body.page.total).toBe(N)
      seen.push(...res.body.results.map((r: { id: string }) => r.id))
      token = res.body.page.next_token
    }
    expect(seen).toHaveLength(N)
    expect(seen).toContain('d4000')
    expect(seen).not.toContain('d9999')
    // A new search is a new snapshot: the world after the write.
    const fresh = await pageThrough('resource', anneDocs)
    const now = fresh.flatMap((p) => p.results.map((r: { id: string }) => r.id))
    expect(now).toHaveLength(N)
    expect(now).toContain('d9999')
    expect(now).not.toContain('d4000')
  })

  it('§8.17 a tampered token, a changed question, a changed limit or another store → 400', async () => {
    const first = await post('resource', { ...anneDocs, page: { limit: 100 } })
    const token: string = first.body.page.next_token
    expect(token).not.toBe('')
    const refused = async (body: unknown, store = storeId) => {
      const res = await post('resource', body, store)
      expect(res.status, res.text).toBe(400)
      expect(res.body.code).toBe('invalid_continuation_token')
      return res.body.message as string
    }
    // Tampered: the signature, or the offset re-encoded under the old signature.
    const [payload, sig] = token.split('.')
    await refused({ ...anneDocs, page: { limit: 100, token: `${payload}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}` } })
    const parts = JSON.parse(Buffer.from(payload, 'base64url').toString())
    parts[2] = 4900
    await refused({ ...anneDocs, page: { limit: 100, token: `${Buffer.from(JSON.stringify(parts)).toString('base64url')}.${sig}` } })
    await refused({ ...anneDocs, page: { limit: 100, token: 'not-a-token' } })
    // Changed inputs.
    expect(await refused({ ...anneDocs, action: { name: 'can_edit' }, page: { limit: 100, token } })).toMatch(/different search/)
    expect(await refused({ ...anneDocs, subject: { type: 'user', id: 'bob' }, page: { limit: 100, token } })).toMatch(/different search/)
    expect(await refused({ ...anneDocs, context: { now: 1 }, page: { limit: 100, token } })).toMatch(/different search/)
    // Pemba's options and the entities' properties are part of the question too.
    expect(await refused({ ...anneDocs, subject: { type: 'user', id: 'anne', properties: { team: 'ops' } }, page: { limit: 100, token } })).toMatch(/different search/)
    expect(await refused({ ...anneDocs, resource: { type: 'doc', properties: { x: 1 } }, page: { limit: 100, token } })).toMatch(/different search/)
    expect(await refused({ ...anneDocs, context: { pemba: { consistency: 'HIGHER_CONSISTENCY' } }, page: { limit: 100, token } })).toMatch(/different search/)
    const extra = { user: 'user:anne', relation: 'viewer', object: 'doc:extra' }
    expect(await refused({ ...anneDocs, context: { pemba: { contextual_tuples: [extra] } }, page: { limit: 100, token } })).toMatch(/different search/)
    // Not an error of the request's form: a token of a search with contextual tuples is bound to those.
    const withTuples = await post('resource', { ...anneDocs, context: { pemba: { contextual_tuples: [extra] } }, page: { limit: 100 } })
    expect(withTuples.body.page.total).toBe(N + 1)
    const other1 = { ...extra, object: 'doc:extra2' }
    expect(
      await refused({ ...anneDocs, context: { pemba: { contextual_tuples: [other1] } }, page: { limit: 100, token: withTuples.body.page.next_token } }),
    ).toMatch(/different search/)
    expect(await refused({ ...anneDocs, page: { limit: 50, token } })).toMatch(/different search/)
    // Leaving `limit` out means the default (100 here): the same limit, so accepted.
    const sameLimit = await post('resource', { ...anneDocs, page: { token } })
    expect(sameLimit.status, sameLimit.text).toBe(200)
    // Another store.
    const other = await client.request('POST', '/stores', { name: 'other' })
    expect(await refused({ ...anneDocs, page: { limit: 100, token } }, other.body.id)).toMatch(/another store/)
    // Member order does not matter (§8.3): the same question in another order is accepted.
    const reordered = await post('resource', { page: { token, limit: 100 }, resource: { type: 'doc' }, action: { name: 'can_view' }, subject: { id: 'anne', type: 'user' } })
    expect(reordered.status, reordered.text).toBe(200)
    expect(reordered.body.results[0]).toEqual({ type: 'doc', id: 'd0100' })
  })

  it('§8.16 the sweeper removes expired snapshots; their tokens then say to start again', async () => {
    const first = await post('subject', { ...bigViewers, page: { limit: 1000 } })
    const token: string = first.body.page.next_token
    clock.advance(11 * 60_000)
    const swept = await served.pemba.sweeper.runOnce()
    expect(swept.searchSnapshots).toBeGreaterThanOrEqual(1)
    const res = await post('subject', { ...bigViewers, page: { limit: 1000, token } })
    expect(res.status, res.text).toBe(400)
    expect(res.body.message).toMatch(/expired or is unknown; start the search again/)
    // A snapshot not yet expired is kept.
    const again = await post('subject', { ...bigViewers, page: { limit: 1000 } })
    expect((await served.pemba.sweeper.runOnce()).searchSnapshots).toBe(0)
    const second = await post('subject', { ...bigViewers, page: { limit: 1000, token: again.body.page.next_token } })
    expect(second.status, second.text).toBe(200)
    expect(second.body.results[0]).toEqual({ type: 'user', id: 'u1000' })
  })

  if (shared) {
    it('§8.16 a page token issued by one replica is served by another (the snapshot is in the database)', async () => {
      const replica = await servePemba(config, { clock: clock.now })
      try {
        const other = httpClient(replica)
        const first = await post('resource', { ...anneDocs, page: { limit: 1000 } })
        const ids: string[] = first.body.results.map((r: { id: string }) => r.id)
        let token: string = first.body.page.next_token
        // The same first page on the replica, at the same revision, reuses the stored answer: its token names the same snapshot.
        const again = await other.request('POST', `/stores/${storeId}/access/v1/search/resource`, { ...anneDocs, page: { limit: 1000 } })
        const snapshotOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[0], 'base64url').toString())[1]
        expect(snapshotOf(again.body.page.next_token)).toBe(snapshotOf(token))
        let turn = 0
        while (token) {
          const via = turn++ % 2 === 0 ? other : client
          const res = await via.request('POST', `/stores/${storeId}/access/v1/search/resource`, { ...anneDocs, page: { limit: 1000, token } })
          expect(res.status, res.text).toBe(200)
          ids.push(...res.body.results.map((r: { id: string }) => r.id))
          token = res.body.page.next_token
        }
        expect(new Set(ids).size).toBe(N)
        expect(ids).toHaveLength(N)
      } finally {
        await replica.close()
      }
    })

    it('§8.16 an expired snapshot not yet swept is refused by a replica that reads its row: start again', async () => {
      const replica = await servePemba(config, { clock: clock.now })
      try {
        const first = await post('resource', { ...anneDocs, page: { limit: 1000 } })
        const token: string = first.body.page.next_token
        clock.advance(11 * 60_000)
        // The replica never held it in memory: it reads the row, still there (no sweep), and compares the time.
        const res = await httpClient(replica).request('POST', `/stores/${storeId}/access/v1/search/resource`, { ...anneDocs, page: { limit: 1000, token } })
        expect(res.status, res.text).toBe(400)
        expect(res.body.message).toMatch(/expired or is unknown; start the search again/)
        expect((await served.pemba.sweeper.runOnce()).searchSnapshots).toBe(1)
      } finally {
        await replica.close()
      }
    })
  }
}

/** writeTuplesFast writes in requests of 1,000 (the servers here allow it). */
async function writeTuplesFast(client: TestClient, storeId: string, tuples: string[]): Promise<void> {
  for (let i = 0; i < tuples.length; i += 1000) {
    const res = await client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: tuples.slice(i, i + 1000).map(tupleKey) } })
    expect(res.status, res.text).toBe(200)
  }
}
