/**
 * A NUL character (U+0000) in a tuple, on PostgreSQL (whose text cannot hold it): Write over
 * HTTP answers 400 with OpenFGA's `{code, message}` and writes nothing of the request; a delete
 * and a check naming it are 400s too, not 500s; and the bulk import path refuses that
 * tuple alone while the others of its chunk land.
 */
import { expect, it } from 'vitest'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { IMPORT_MODEL } from '../import/helpers.ts'

const postgres = await probePostgres()

describePostgres('a NUL character in a tuple on PostgreSQL', postgres, () => {
  const schemaUrl = usePostgresSchema(postgres)

  async function withServer(body: (s: ServedPemba, call: (method: string, path: string, b?: unknown) => Promise<{ status: number; body: Record<string, unknown> }>) => Promise<void>) {
    const served = await servePemba({ logLevel: 'warn', databaseUrl: schemaUrl() })
    const call = async (method: string, path: string, b?: unknown) => {
      const res = await fetch(served.url + path, { method, headers: { 'content-type': 'application/json' }, body: b === undefined ? undefined : JSON.stringify(b) })
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    }
    try {
      await body(served, call)
    } finally {
      await served.close()
    }
  }

  it('Write, delete and check answer 400 and write nothing', async () => {
    await withServer(async (_served, call) => {
      const store = await call('POST', '/stores', { name: 'nul-test' })
      const storeId = store.body.id as string
      expect((await call('POST', `/stores/${storeId}/authorization-models`, IMPORT_MODEL)).status).toBe(201)
      const good = { user: 'user:anne', relation: 'viewer', object: 'doc:1' }
      for (const bad of [
        { user: 'user:an\u0000ne', relation: 'viewer', object: 'doc:2' },
        { user: 'user:anne', relation: 'viewer', object: 'doc:\u00002' },
        { user: 'group:e\u0000ng#member', relation: 'viewer', object: 'doc:2' },
      ]) {
        const written = await call('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [good, bad] } })
        expect(written.status, JSON.stringify(written.body)).toBe(400)
        expect(written.body.code).toBe('validation_error')
        expect(written.body.message).toMatch(/NUL character \(U\+0000\)/)
      }
      const deleted = await call('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [{ user: 'user:an\u0000ne', relation: 'viewer', object: 'doc:2' }] } })
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(400)
      const checked = await call('POST', `/stores/${storeId}/check`, { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'doc:\u00002' } })
      expect(checked.status, JSON.stringify(checked.body)).toBe(400)
      const all = await call('POST', `/stores/${storeId}/read`, {})
      expect(all.status).toBe(200)
      expect(all.body.tuples).toEqual([])
    })
  })

  it('a NUL anywhere else in a request (read filter, query string, store name, context) is a 400, not a 500', async () => {
    await withServer(async (_served, call) => {
      const store = await call('POST', '/stores', { name: 'nul-elsewhere' })
      const storeId = store.body.id as string
      expect((await call('POST', `/stores/${storeId}/authorization-models`, IMPORT_MODEL)).status).toBe(201)
      const refusals = [
        await call('POST', `/stores/${storeId}/read`, { tuple_key: { object: 'doc:\u00001' } }),
        await call('POST', `/stores/${storeId}/read`, { tuple_key: { object: 'doc:', user: 'user:a\u0000' } }),
        await call('POST', '/stores', { name: 'nul\u0000name' }),
        await call('POST', `/stores/${storeId}/list-objects`, { type: 'doc', relation: 'viewer', user: 'user:anne', context: { k: 'v\u0000' } }),
        await call('GET', `/stores/${storeId}/changes?type=doc%00`),
      ]
      for (const r of refusals) {
        expect(r.status, JSON.stringify(r.body)).toBe(400)
        expect(r.body.code).toBe('validation_error')
        expect(r.body.message).toMatch(/NUL character \(U\+0000\)/)
      }
      const stores = (await call('GET', '/stores')).body.stores as { name: string }[]
      expect(stores.map((s) => s.name)).not.toContain('nul\u0000name')
    })
  })

  it('the bulk import path refuses that tuple alone, and loads the others', async () => {
    await withServer(async (served) => {
      const p = served.pemba
      const store = await p.stores.create('nul-import', 'client:test')
      await p.models.write(store.id, IMPORT_MODEL)
      const keys = [
        { user: 'user:a', relation: 'viewer', object: 'doc:1' },
        { user: 'user:b\u0000', relation: 'viewer', object: 'doc:1' },
        { user: 'user:c', relation: 'viewer', object: 'doc:1' },
      ]
      const r = await p.writes.importTuples(store.id, keys)
      expect(r.written).toBe(2)
      expect(r.refused).toEqual([{ index: 1, reason: 'invalid_tuple', message: expect.stringMatching(/NUL character/) }])
      const page = await p.writes.read(store.id, undefined, { pageSize: 10 })
      expect(page.items.map((t) => t.userId).sort()).toEqual(['a', 'c'])
    })
  })
})
