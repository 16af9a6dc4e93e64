/**
 * The tuple index behind the API: on by default, read-your-writes on the replica that wrote,
 * another process's writes seen at once by HIGHER_CONSISTENCY and within the staleness bound
 * otherwise, preloading, turning it off, and a deleted store's tuples let go.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type doc
  relations
    define viewer: [user, group#member]`

describe('the tuple index behind the API', () => {
  const clients: TestClient[] = []
  const dirs: string[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close()
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })
  const client = async (...args: Parameters<typeof createTestClient>) => {
    const c = await createTestClient(...args)
    clients.push(c)
    return c
  }
  const file = () => {
    const d = mkdtempSync(join(tmpdir(), 'pemba-index-'))
    dirs.push(d)
    return `sqlite:${join(d, 'pemba.db')}`
  }

  it('answers checks from memory by default and reads its own writes at once', async () => {
    const c = await client({ checkCacheSize: 0 })
    const { storeId, check } = await setup(c, MODEL, ['group:eng#member@user:anne', 'doc:1#viewer@group:eng#member'])
    expect(await check('doc:1#viewer@user:anne')).toBe(true)
    expect(await check('doc:1#viewer@user:bob')).toBe(false)
    await c.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('group:eng#member@user:bob')] } })
    expect(await check('doc:1#viewer@user:bob')).toBe(true)
    await c.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [tupleKey('doc:1#viewer@group:eng#member')] } })
    expect(await check('doc:1#viewer@user:anne')).toBe(false)
    const stats = c.pemba.evaluation.tupleIndexStats()!
    expect(stats.stores).toBeGreaterThanOrEqual(1)
    expect(stats.fallbacks).toBe(0)
    expect(stats.changesApplied).toBe(2)
  })

  it("sees another process's write at once with HIGHER_CONSISTENCY, and within the staleness bound otherwise", async () => {
    const url = file()
    let now = Date.parse('2026-01-01T00:00:00Z')
    const clock = () => new Date(now)
    const a = await client({ databaseUrl: url, checkCacheSize: 0, checkCacheStalenessMs: 1000 }, { clock })
    const b = await client({ databaseUrl: url }, { clock })
    const { storeId, check } = await setup(a, MODEL, ['doc:1#viewer@user:anne'])
    expect(await check('doc:1#viewer@user:bob')).toBe(false)
    const written = await b.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:bob')] } })
    expect(written.status).toBe(200)
    // Within the bound, A may still answer from the revision it knew.
    expect(await check('doc:1#viewer@user:bob')).toBe(false)
    expect(await check('doc:1#viewer@user:bob', { consistency: 'HIGHER_CONSISTENCY' })).toBe(true)
    // And a delete through B, seen by A's default check once the bound has passed.
    await b.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [tupleKey('doc:1#viewer@user:anne')] } })
    now += 1001
    expect(await check('doc:1#viewer@user:anne')).toBe(false)
    expect(a.pemba.evaluation.tupleIndexStats()!.fallbacks).toBe(0)
  })

  it('preloads every store before serving when asked to', async () => {
    const url = file()
    const first = await client({ databaseUrl: url })
    const { storeId } = await setup(first, MODEL, ['doc:1#viewer@user:anne', 'doc:2#viewer@user:anne'])
    const preloaded = await client({ databaseUrl: url, tupleIndexPreload: 'on' })
    // The system store and the one store, before any request.
    expect(preloaded.pemba.evaluation.tupleIndexStats()).toMatchObject({ stores: 2, fallbacks: 0 })
    const lazy = await client({ databaseUrl: url })
    expect(lazy.pemba.evaluation.tupleIndexStats()!.stores).toBeLessThan(2)
    const r = await preloaded.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:2#viewer@user:anne') })
    expect(r.body.allowed).toBe(true)
  })

  it('refuses a PEMBA_TUPLE_INDEX_PRELOAD that is not on or off', () => {
    expect(() => loadConfig({ env: { PEMBA_TUPLE_INDEX_PRELOAD: 'yes' }, argv: [] })).toThrow(/PEMBA_TUPLE_INDEX_PRELOAD must be 'on' or 'off'/)
  })

  it('is off with PEMBA_TUPLE_INDEX_MAX_TUPLES=0, every read going to the database', async () => {
    const c = await client({ tupleIndexMaxTuples: 0, checkCacheSize: 0 })
    const { check } = await setup(c, MODEL, ['group:eng#member@user:anne', 'doc:1#viewer@group:eng#member'])
    expect(await check('doc:1#viewer@user:anne')).toBe(true)
    expect(c.pemba.evaluation.tupleIndexStats()).toBeUndefined()
  })

  it("lets go of a deleted store's tuples", async () => {
    const c = await client({})
    const { storeId, check } = await setup(c, MODEL, ['doc:1#viewer@user:anne', 'doc:2#viewer@user:anne'])
    expect(await check('doc:1#viewer@user:anne')).toBe(true)
    const before = c.pemba.evaluation.tupleIndexStats()!
    expect((await c.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
    const after = c.pemba.evaluation.tupleIndexStats()!
    expect(after.stores).toBe(before.stores - 1)
    expect(after.tuples).toBe(before.tuples - 2)
  })
})
