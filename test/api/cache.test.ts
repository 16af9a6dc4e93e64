/**
 * The cross-request check cache: never stale on the replica that wrote, never read by
 * HIGHER_CONSISTENCY, never used for requests with context or contextual tuples, and stale on
 * another replica for at most the configured bound.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type document
  relations
    define viewer: [user, group#member, user with office]
condition office(ip: ipaddress) {
  ip.in_cidr("10.0.0.0/8")
}
`

const clients: TestClient[] = []
let dir: string | undefined
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

async function client(overrides = {}, now?: () => number) {
  const c = await createTestClient(overrides, now ? { clock: () => new Date(now()) } : {})
  clients.push(c)
  return c
}

describe('cross-request check cache', () => {
  it('serves repeated checks from the cache and drops them when this replica writes', async () => {
    const c = await client()
    const { storeId, check } = await setup(c, MODEL, ['document:1#viewer@group:eng#member', 'group:eng#member@user:anne'])
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    const before = c.pemba.evaluation.cacheStats()
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    const after = c.pemba.evaluation.cacheStats()
    expect(after.hits).toBeGreaterThan(before.hits)
    await c.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [tupleKey('group:eng#member@user:anne')] } })
    expect(await check('document:1#viewer@user:anne')).toBe(false)
  })

  it('never serves HIGHER_CONSISTENCY from the cache', async () => {
    const c = await client()
    const { check } = await setup(c, MODEL, ['document:1#viewer@user:anne'])
    await check('document:1#viewer@user:anne')
    const before = c.pemba.evaluation.cacheStats()
    expect(await check('document:1#viewer@user:anne', { consistency: 'HIGHER_CONSISTENCY' })).toBe(true)
    expect(c.pemba.evaluation.cacheStats().hits).toBe(before.hits)
  })

  it('does not share answers that depended on request context or contextual tuples', async () => {
    const c = await client()
    const { storeId, check } = await setup(c, MODEL)
    await c.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...tupleKey('document:1#viewer@user:anne'), condition: { name: 'office' } }] },
    })
    expect(await check('document:1#viewer@user:anne', { context: { ip: '10.1.1.1' } })).toBe(true)
    expect(await check('document:1#viewer@user:anne', { context: { ip: '192.168.1.1' } })).toBe(false)
    const ctx = { contextual_tuples: { tuple_keys: [tupleKey('document:2#viewer@user:bob')] } }
    expect(await check('document:2#viewer@user:bob', ctx)).toBe(true)
    expect(await check('document:2#viewer@user:bob')).toBe(false)
    expect(c.pemba.evaluation.cacheStats().hits).toBe(0)
  })

  it('gives other replicas a bounded staleness for MINIMIZE_LATENCY and none for HIGHER_CONSISTENCY', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pemba-cache-'))
    const databaseUrl = `sqlite:${join(dir, 'shared.db')}`
    let now = Date.parse('2026-01-01T00:00:00Z')
    const a = await client({ databaseUrl, checkCacheStalenessMs: 1000 }, () => now)
    const b = await client({ databaseUrl, checkCacheStalenessMs: 1000 }, () => now)
    const { storeId } = await setup(a, MODEL, ['document:1#viewer@user:anne'])
    const checkB = async (consistency?: string) =>
      (await b.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('document:1#viewer@user:anne'), consistency })).body.allowed
    expect(await checkB()).toBe(true) // B caches the answer at the current revision
    await a.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] } })
    now += 500
    expect(await checkB()).toBe(true) // within the 1 s bound, B may still answer from its cache
    expect(await checkB('HIGHER_CONSISTENCY')).toBe(false) // always fresh
    expect(await checkB()).toBe(false) // and B has now learned of the newer revision
    await a.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] } })
    now += 900
    expect(await checkB()).toBe(false) // still within the bound of B's last look at the head
    now += 200
    expect(await checkB()).toBe(true) // past the bound it has learned of the write
  })

  it('can be turned off', async () => {
    const c = await client({ checkCacheSize: 0 })
    const { check } = await setup(c, MODEL, ['document:1#viewer@user:anne'])
    await check('document:1#viewer@user:anne')
    await check('document:1#viewer@user:anne')
    expect(c.pemba.evaluation.cacheStats()).toEqual({ enabled: false, hits: 0, misses: 0, entries: 0 })
  })
})

describe('metrics', () => {
  it('exposes the cache counters in Prometheus text format', async () => {
    const c = await client()
    const { check } = await setup(c, MODEL, ['document:1#viewer@user:anne'])
    await check('document:1#viewer@user:anne')
    await check('document:1#viewer@user:anne')
    const res = await c.request('GET', '/metrics')
    expect(res.status).toBe(200)
    const hits = Number(/pemba_check_cache_hits_total (\d+)/.exec(res.text)?.[1])
    expect(hits).toBeGreaterThan(0)
    // The store and the system store are in the tuple index; the one tuple is held.
    expect(Number(/pemba_tuple_index_stores (\d+)/.exec(res.text)?.[1])).toBeGreaterThanOrEqual(1)
    expect(res.text).toMatch(/pemba_tuple_index_fallbacks_total 0\n/)
  })
})

describe('caches and expiring tuples', () => {
  it('never serves a cached allowed past the expiry of the tuple that granted it', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z')
    const c = await client({}, () => now)
    const { storeId, check } = await setup(c, MODEL)
    const write = await c.request('POST', `/stores/${storeId}/write`, {
      writes: {
        tuple_keys: [
          { ...tupleKey('group:eng#member@user:anne'), expires_at: '2026-01-01T00:10:00Z' },
          tupleKey('document:1#viewer@group:eng#member'),
        ],
      },
    })
    expect(write.status, write.text).toBe(200)
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    now += 5 * 60_000
    const hitsBefore = c.pemba.evaluation.cacheStats().hits
    expect(await check('document:1#viewer@user:anne')).toBe(true) // from the cache
    expect(c.pemba.evaluation.cacheStats().hits).toBeGreaterThan(hitsBefore)
    now = Date.parse('2026-01-01T00:10:00Z') // the instant it expires; no write, no sweep
    expect(await check('document:1#viewer@user:anne')).toBe(false)
    expect(await check('group:eng#member@user:anne')).toBe(false)
  })

  it('keeps a tuple-cached object honest about expiry too', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z')
    const c = await client({ checkCacheSize: 0, tupleIndexMaxTuples: 0 }, () => now)
    const { storeId, check } = await setup(c, MODEL)
    await c.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...tupleKey('document:1#viewer@user:anne'), expires_at: '2026-01-01T01:00:00Z' }] },
    })
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    expect(c.pemba.evaluation.tupleCacheStats().hits).toBeGreaterThan(0)
    now = Date.parse('2026-01-01T01:00:00Z')
    expect(await check('document:1#viewer@user:anne')).toBe(false)
  })

  it('keeps the tuple index honest about expiry, and a check cached from it', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z')
    const c = await client({ tupleCacheSize: 0 }, () => now)
    const { storeId, check } = await setup(c, MODEL)
    await c.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...tupleKey('document:1#viewer@user:anne'), expires_at: '2026-01-01T01:00:00Z' }] },
    })
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    const stats = c.pemba.evaluation.tupleIndexStats()!
    expect(stats.stores).toBeGreaterThan(0)
    expect(stats.fallbacks).toBe(0)
    expect(c.pemba.evaluation.cacheStats().hits).toBeGreaterThan(0)
    now = Date.parse('2026-01-01T01:00:00Z') // the instant it expires; no write, no sweep
    expect(await check('document:1#viewer@user:anne')).toBe(false)
  })

  it('updates tuple-cached objects (the working set) when this replica writes, rather than dropping them', async () => {
    const c = await client({ checkCacheSize: 0, tupleIndexMaxTuples: 0 })
    const { storeId, check } = await setup(c, MODEL, ['document:1#viewer@user:anne'])
    expect(await check('document:1#viewer@user:anne')).toBe(true)
    expect(await check('document:1#viewer@user:bob')).toBe(false)
    const missesBefore = c.pemba.evaluation.tupleCacheStats().misses
    await c.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('document:1#viewer@user:bob')] } })
    expect(await check('document:1#viewer@user:bob')).toBe(true)
    const before = c.pemba.evaluation.tupleCacheStats().hits
    expect(await check('document:1#viewer@user:bob', { consistency: 'HIGHER_CONSISTENCY' })).toBe(true)
    // HIGHER_CONSISTENCY catches the working set up first, then reads it; document:1 was never read again.
    expect(c.pemba.evaluation.tupleCacheStats().hits).toBeGreaterThan(before)
    expect(c.pemba.evaluation.tupleCacheStats().misses).toBe(missesBefore)
  })
})
