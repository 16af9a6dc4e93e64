/** Expand's UsersetTree JSON, and the error contract for bad input. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

const MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type folder
  relations
    define viewer: [user]
type document
  relations
    define parent: [folder]
    define writer: [user]
    define blocked: [user]
    define viewer: [user, user:*, group#member] or writer or viewer from parent
    define can_view: viewer but not blocked
    define can_edit: writer and viewer
`

describe('expand', () => {
  it('answers one level of the rewrite as a UsersetTree', async () => {
    const { storeId } = await setup(client, MODEL, [
      'document:1#viewer@user:anne',
      'document:1#viewer@group:eng#member',
      'document:1#viewer@user:*',
      'document:1#parent@folder:x',
    ])
    const res = await client.request('POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'document:1', relation: 'viewer' } })
    expect(res.status).toBe(200)
    const root = res.body.tree.root
    expect(root.name).toBe('document:1#viewer')
    expect(root.union.nodes).toHaveLength(3)
    expect(root.union.nodes[0].name).toBe('document:1#viewer')
    expect(root.union.nodes[0].leaf.users.users.sort()).toEqual(['group:eng#member', 'user:*', 'user:anne'])
    expect(root.union.nodes[1]).toEqual({ name: 'document:1#viewer', leaf: { computed: { userset: 'document:1#writer' } } })
    expect(root.union.nodes[2]).toEqual({
      name: 'document:1#viewer',
      leaf: { tupleToUserset: { tupleset: 'document:1#parent', computed: [{ userset: 'folder:x#viewer' }] } },
    })
  })

  it('renders difference and intersection, and an empty direct set', async () => {
    const { storeId } = await setup(client, MODEL)
    const diff = await client.request('POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'document:2', relation: 'can_view' } })
    expect(diff.body.tree.root).toEqual({
      name: 'document:2#can_view',
      difference: {
        base: { name: 'document:2#can_view', leaf: { computed: { userset: 'document:2#viewer' } } },
        subtract: { name: 'document:2#can_view', leaf: { computed: { userset: 'document:2#blocked' } } },
      },
    })
    const inter = await client.request('POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'document:2', relation: 'can_edit' } })
    expect(inter.body.tree.root.intersection.nodes).toHaveLength(2)
    const direct = await client.request('POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'document:2', relation: 'writer' } })
    expect(direct.body.tree.root).toEqual({ name: 'document:2#writer', leaf: { users: { users: [] } } })
  })

  it('rejects unknown types and relations', async () => {
    const { storeId } = await setup(client, MODEL)
    expect((await client.request('POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'nope:1', relation: 'viewer' } })).body.code).toBe('type_not_found')
    expect((await client.request('POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'document:1', relation: 'nope' } })).body.code).toBe('relation_not_found')
  })
})

describe('errors', () => {
  it('answers malformed JSON, wrong types and over-long strings with 400 validation_error', async () => {
    const { storeId } = await setup(client, MODEL)
    const bodies: unknown[] = [
      '{not json',
      '[]',
      '"string"',
      { tuple_key: 'document:1' },
      { tuple_key: { user: 5, relation: 'viewer', object: 'document:1' } },
      { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:' + 'x'.repeat(300) } },
      { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' }, consistency: 'SOMETIMES' },
      { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' }, authorization_model_id: 'nope' },
      { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' }, context: [] },
    ]
    for (const body of bodies) {
      const res = await client.request('POST', `/stores/${storeId}/check`, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(typeof res.body.code).toBe('string')
      expect(typeof res.body.message).toBe('string')
    }
    const missing = await client.request('POST', `/stores/${storeId}/check`, {})
    expect(missing.body.code).toBe('tuple_key_value_not_specified')
  })

  it('puts X-Request-Id on every response, including errors', async () => {
    const ok = await client.request('GET', '/healthz')
    expect(ok.body).toEqual({ status: 'SERVING' })
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const bad = await client.request('GET', '/stores/short')
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('answers unknown routes and wrong methods with 404 in the contract format', async () => {
    const unknown = await client.request('GET', '/nope')
    expect(unknown.status).toBe(404)
    expect(unknown.body).toEqual({ code: 'undefined_endpoint', message: 'Not Found' })
    const method = await client.request('GET', '/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV/check')
    expect(method.status).toBe(404)
    expect(method.body).toEqual({ code: 'unimplemented', message: 'Method Not Allowed' })
  })

  it('refuses bodies over the size limit with 413 and writes nothing', async () => {
    const small = await createTestClient({ bodyLimitBytes: 1024 })
    try {
      const store = (await small.request('POST', '/stores', { name: 'small' })).body.id
      const res = await small.request('POST', `/stores/${store}/write`, {
        writes: { tuple_keys: Array.from({ length: 50 }, (_, i) => tupleKey(`document:${i}#viewer@user:anne`)) },
      })
      expect(res.status).toBe(413)
      expect(res.body.code).toBe('validation_error')
    } finally {
      await small.close()
    }
  })

  it('accepts an empty POST body as {}', async () => {
    const { storeId } = await setup(client, MODEL, ['document:1#viewer@user:anne'])
    const res = await client.pemba.app.request(`/stores/${storeId}/read`, { method: 'POST' })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { tuples: unknown[] }).tuples).toHaveLength(1)
  })
})
