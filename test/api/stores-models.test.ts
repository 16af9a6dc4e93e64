/** Stores and authorization models through the HTTP app, as OpenFGA's contract specifies. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createStore, writeModel } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/
const MODEL = `model
  schema 1.1
type user
type document
  relations
    define viewer: [user]
`

describe('stores', () => {
  it('creates a store with a ULID id and timestamps (201)', async () => {
    const res = await client.request('POST', '/stores', { name: 'acme-prod' })
    expect(res.status).toBe(201)
    expect(res.body.id).toMatch(ULID)
    expect(res.body.name).toBe('acme-prod')
    expect(res.body.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    const got = await client.request('GET', `/stores/${res.body.id}`)
    expect(got.status).toBe(200)
    expect(got.body).toMatchObject({ id: res.body.id, name: 'acme-prod', deleted_at: null })
  })

  it('rejects invalid names', async () => {
    for (const name of ['ab', 'x'.repeat(65), 'bad*name', 42]) {
      const res = await client.request('POST', '/stores', { name })
      expect(res.status).toBe(400)
      expect(res.body.code).toBe('validation_error')
    }
    expect((await client.request('GET', '/stores')).body.stores).toEqual([])
  })

  it('lists with pagination and an exact name filter', async () => {
    for (const name of ['alpha', 'beta', 'gamma']) await createStore(client, name)
    const first = await client.request('GET', '/stores?page_size=2')
    expect(first.body.stores).toHaveLength(2)
    expect(first.body.continuation_token).toMatch(/^[A-Za-z0-9_-]+$/)
    const second = await client.request('GET', `/stores?page_size=2&continuation_token=${first.body.continuation_token}`)
    expect(second.body.stores).toHaveLength(1)
    expect(second.body.continuation_token).toBe('')
    const named = await client.request('GET', '/stores?name=beta')
    expect(named.body.stores.map((s: { name: string }) => s.name)).toEqual(['beta'])
    const badToken = await client.request('GET', '/stores?continuation_token=abc')
    expect(badToken.status).toBe(400)
    expect(badToken.body.code).toBe('invalid_continuation_token')
    const badSize = await client.request('GET', '/stores?page_size=101')
    expect(badSize.body.code).toBe('page_size_invalid')
  })

  it('soft-deletes: 204, then 404 store_id_not_found on get; deleting again is 204', async () => {
    const id = await createStore(client)
    expect((await client.request('DELETE', `/stores/${id}`)).status).toBe(204)
    const got = await client.request('GET', `/stores/${id}`)
    expect(got.status).toBe(404)
    expect(got.body).toEqual({ code: 'store_id_not_found', message: 'Store ID not found' })
    expect((await client.request('DELETE', `/stores/${id}`)).status).toBe(204)
    expect((await client.request('DELETE', '/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV')).status).toBe(204)
  })

  it('validates the store id in the path', async () => {
    expect((await client.request('GET', '/stores/short')).body.code).toBe('store_id_invalid_length')
    expect((await client.request('GET', '/stores/01ARZ3NDEKTSV4RRFFQ69G5FAu')).body.code).toBe('validation_error')
  })
})

describe('authorization models', () => {
  it('writes JSON (201), reads it back in canonical form, lists newest first', async () => {
    const store = await createStore(client)
    const m1 = await writeModel(client, store, MODEL)
    const m2 = await writeModel(client, store, MODEL.replace('[user]', '[user, user:*]'))
    expect(m1).toMatch(ULID)
    expect(m2 > m1).toBe(true)
    const list = await client.request('GET', `/stores/${store}/authorization-models`)
    expect(list.body.authorization_models.map((m: { id: string }) => m.id)).toEqual([m2, m1])
    const latest = await client.request('GET', `/stores/${store}/authorization-models?page_size=1`)
    expect(latest.body.authorization_models[0].id).toBe(m2)
    expect(latest.body.continuation_token).not.toBe('')
    const one = await client.request('GET', `/stores/${store}/authorization-models/${m1}`)
    expect(one.body.authorization_model).toEqual({
      id: m1,
      schema_version: '1.1',
      type_definitions: [
        { type: 'user', relations: {}, metadata: null },
        {
          type: 'document',
          relations: { viewer: { this: {} } },
          metadata: {
            relations: { viewer: { directly_related_user_types: [{ type: 'user', condition: '' }], module: '', source_info: null } },
            module: '',
            source_info: null,
          },
        },
      ],
      conditions: {},
    })
  })

  it('accepts the DSL as text/plain', async () => {
    const store = await createStore(client)
    const res = await client.request('POST', `/stores/${store}/authorization-models`, MODEL, { 'content-type': 'text/plain' })
    expect(res.status).toBe(201)
    const bad = await client.request('POST', `/stores/${store}/authorization-models`, 'model\n  schema 1.1\ntype', {
      'content-type': 'text/plain',
    })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('invalid_authorization_model')
  })

  it('accepts snake_case rewrite keys and emits camelCase', async () => {
    const store = await createStore(client)
    const res = await client.request('POST', `/stores/${store}/authorization-models`, {
      schema_version: '1.1',
      type_definitions: [
        { type: 'user' },
        {
          type: 'doc',
          relations: {
            owner: { this: {} },
            viewer: { computed_userset: { relation: 'owner' } },
          },
          metadata: { relations: { owner: { directly_related_user_types: [{ type: 'user' }] } } },
        },
      ],
    })
    expect(res.status, res.text).toBe(201)
    const one = await client.request('GET', `/stores/${store}/authorization-models/${res.body.authorization_model_id}`)
    expect(one.body.authorization_model.type_definitions[1].relations.viewer).toEqual({
      computedUserset: { object: '', relation: 'owner' },
    })
  })

  it('refuses invalid models with invalid_authorization_model and stores nothing', async () => {
    const store = await createStore(client)
    const res = await client.request('POST', `/stores/${store}/authorization-models`, {
      schema_version: '1.1',
      type_definitions: [{ type: 'document', relations: { viewer: { computedUserset: { relation: 'nope' } } } }],
    })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('invalid_authorization_model')
    const empty = await client.request('POST', `/stores/${store}/authorization-models`, { schema_version: '1.1', type_definitions: [] })
    expect(empty.body.code).toBe('type_definitions_too_few_items')
    const version = await client.request('POST', `/stores/${store}/authorization-models`, {
      schema_version: '1.0',
      type_definitions: [{ type: 'user' }],
    })
    expect(version.status).toBe(400)
    expect((await client.request('GET', `/stores/${store}/authorization-models`)).body.authorization_models).toEqual([])
  })

  it('answers authorization_model_not_found for an unknown id', async () => {
    const store = await createStore(client)
    const res = await client.request('GET', `/stores/${store}/authorization-models/01ARZ3NDEKTSV4RRFFQ69G5FAV`)
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('authorization_model_not_found')
  })
})
