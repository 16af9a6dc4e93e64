/**
 * Bounded memory (issue 22, item 9): every cache and buffer that grows with traffic stays
 * within its setting, however many stores, models, users and objects the traffic names, and
 * /metrics tells an operator what each holds (`pemba_cache_size{cache}`) against its bound
 * (`pemba_cache_capacity{cache}`). The caches are filled past their bounds through the real
 * app and SQLite; answers stay right after entries have been evicted. Nothing here is timed.
 * The soak (`npm run bench -- --soak`, bench/README.md) shows the resident set levelling off.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { CheckCache } from '../../src/engine/caching.ts'
import { ALLOWED } from '../../src/engine/dispatch.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'

const MODEL = {
  schema_version: '1.1',
  type_definitions: [
    { type: 'user' },
    { type: 'group', relations: { member: { this: {} } }, metadata: { relations: { member: { directly_related_user_types: [{ type: 'user' }] } } } },
    {
      type: 'document',
      relations: { viewer: { this: {} } },
      metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user' }, { type: 'group', relation: 'member' }] } } },
    },
  ],
}

/** Every `name{cache="x"} value` line of one family, by cache. */
function byCache(text: string, family: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const m of text.matchAll(new RegExp(`^${family}\\{cache="([a-z_]+)"\\} (\\S+)$`, 'gm'))) out.set(m[1], Number(m[2]))
  return out
}

describe('the cross-request caches never exceed their bounds', () => {
  it('the check cache holds at most its size in answers, and its closures at most their size', () => {
    const cache = new CheckCache(100)
    for (let i = 0; i < 1000; i++) {
      cache.set(`s/m/1/document:${i}#viewer@user:${i}`, ALLOWED, Infinity)
      expect(cache.size).toBeLessThanOrEqual(100)
    }
    expect(cache.size).toBe(100)
    expect(cache.capacity).toBe(100)
    // The oldest answers are gone, the newest kept.
    expect(cache.get('s/m/1/document:0#viewer@user:0', 0)).toBeUndefined()
    expect(cache.get('s/m/1/document:999#viewer@user:999', 0)?.value).toBe(ALLOWED)
    for (let i = 0; i < 500; i++) {
      const levels = new Map(Array.from({ length: 1 + (i % 40) }, (_, k) => [`group:${i}-${k}#member`, k]))
      cache.setClosure(`s/m/1/closure-${i}`, { levels } as never, Infinity)
      expect(cache.closureSize).toBeLessThanOrEqual(cache.closureCapacity)
    }
    expect(cache.closureSize).toBeGreaterThan(cache.closureCapacity / 2)
  })

  // The tuple cache's bound (the working set's, in tuples): test/store/working-set.test.ts.
})

describe('a server under traffic naming many stores, users and objects', () => {
  let c: TestClient | undefined
  afterEach(async () => {
    await c?.close()
    c = undefined
  })

  it('keeps each cache and buffer within its setting, says so on /metrics, and answers right after evictions', async () => {
    const settings = {
      checkCacheSize: 60,
      tupleCacheSize: 40,
      modelCacheSize: 2,
      // Small enough that the later stores do not fit: they are read through the tuple cache.
      tupleIndexMaxTuples: 30,
    }
    c = await createTestClient(settings)
    const stores: string[] = []
    for (let s = 0; s < 5; s++) {
      const store = (await c.request('POST', '/stores', { name: `memory-${s}` })).body.id as string
      stores.push(store)
      expect((await c.request('POST', `/stores/${store}/authorization-models`, MODEL)).status).toBe(201)
      const writes = Array.from({ length: 12 }, (_, i) => ({ user: `user:u${s}-${i}`, relation: 'viewer', object: `document:d${i}` }))
      writes.push({ user: `group:g${s}#member`, relation: 'viewer', object: 'document:shared' })
      writes.push({ user: `user:member${s}`, relation: 'member', object: `group:g${s}` })
      expect((await c.request('POST', `/stores/${store}/write`, { writes: { tuple_keys: writes } })).status).toBe(200)
      for (let i = 0; i < 40; i++) {
        const r = await c.request('POST', `/stores/${store}/check`, {
          tuple_key: { user: `user:u${s}-${i}`, relation: 'viewer', object: `document:d${i % 12}` },
        })
        expect(r.status).toBe(200)
        expect(r.body.allowed).toBe(i < 12)
      }
      expect((await c.request('POST', `/stores/${store}/list-objects`, { type: 'document', relation: 'viewer', user: `user:member${s}` })).body).toEqual({
        objects: ['document:shared'],
      })

      const metrics = await c.request('GET', '/metrics')
      expect(metrics.status).toBe(200)
      const size = byCache(metrics.text, 'pemba_cache_size')
      const capacity = byCache(metrics.text, 'pemba_cache_capacity')
      for (const [cache, held] of size) expect(held, cache).toBeLessThanOrEqual(capacity.get(cache)!)
      expect(capacity.get('check')).toBe(settings.checkCacheSize)
      expect(capacity.get('tuple')).toBe(settings.tupleCacheSize)
      expect(capacity.get('model')).toBe(settings.modelCacheSize)
      expect(capacity.get('latest_model')).toBe(settings.modelCacheSize)
      expect(capacity.get('tuple_index')).toBe(settings.tupleIndexMaxTuples)
      expect(capacity.get('decision_buffer')).toBe(loadConfig({ env: {} }).decisionLogBufferMax)
      expect(capacity.has('authzen_search_bytes')).toBe(true)
    }
    // The bounds were reached, not merely respected by a light load.
    const end = byCache((await c.request('GET', '/metrics')).text, 'pemba_cache_size')
    expect(end.get('check')).toBe(settings.checkCacheSize)
    expect(end.get('model')).toBe(settings.modelCacheSize)
    expect(end.get('latest_model')).toBe(settings.modelCacheSize)
    expect(end.get('tuple')).toBeGreaterThan(0)
    // The first store's model and answers were evicted long ago: asked again, it is right.
    const again = await c.request('POST', `/stores/${stores[0]}/check`, { tuple_key: { user: 'user:member0', relation: 'viewer', object: 'document:shared' } })
    expect(again.body.allowed).toBe(true)
    const other = await c.request('POST', `/stores/${stores[0]}/check`, { tuple_key: { user: 'user:member1', relation: 'viewer', object: 'document:shared' } })
    expect(other.body.allowed).toBe(false)
  })
})

describe('PEMBA_MODEL_CACHE_SIZE', () => {
  it('is at least 1, and a refusal names it', () => {
    expect(() => loadConfig({ env: { PEMBA_MODEL_CACHE_SIZE: '0' } })).toThrow(/PEMBA_MODEL_CACHE_SIZE must be at least 1/)
    expect(loadConfig({ env: { PEMBA_MODEL_CACHE_SIZE: '5' } }).modelCacheSize).toBe(5)
    expect(loadConfig({ env: {} }).modelCacheSize).toBe(1000)
  })
})
