/** Check through the real HTTP app: every rewrite operator, usersets, wildcards, cycles, limits. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey, writeModel, writeTuples } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

const DOCS = `model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type folder
  relations
    define owner: [user]
    define viewer: [user, group#member] or owner
    define parent: [folder]
    define can_view: viewer or can_view from parent
type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, group#member] or owner
    define viewer: [user, user:*, group#member] or editor or can_view from parent
    define blocked: [user]
    define can_read: viewer but not blocked
    define can_edit: editor and can_view from parent
`

describe('check', () => {
  it('resolves direct tuples, computed usersets, and tuple-to-userset chains', async () => {
    const { check } = await setup(client, DOCS, [
      'document:d1#owner@user:anne',
      'document:d1#parent@folder:f2',
      'folder:f2#parent@folder:f1',
      'folder:f1#viewer@user:carl',
    ])
    expect(await check('document:d1#owner@user:anne')).toBe(true)
    expect(await check('document:d1#editor@user:anne')).toBe(true) // computed: owner ⊆ editor
    expect(await check('document:d1#viewer@user:anne')).toBe(true) // editor ⊆ viewer
    expect(await check('document:d1#viewer@user:carl')).toBe(true) // f1 → f2 → d1
    expect(await check('document:d1#owner@user:carl')).toBe(false)
    expect(await check('document:d1#viewer@user:dave')).toBe(false)
  })

  it('follows userset tuples through nested groups', async () => {
    const { check } = await setup(client, DOCS, [
      'document:d1#viewer@group:eng#member',
      'group:eng#member@group:backend#member',
      'group:backend#member@user:bob',
    ])
    expect(await check('document:d1#viewer@user:bob')).toBe(true)
    expect(await check('document:d1#viewer@group:backend#member')).toBe(true) // a userset as the user
    expect(await check('document:d1#viewer@user:eve')).toBe(false)
  })

  it('honours typed wildcards, and only for the type named', async () => {
    const { check } = await setup(client, DOCS, ['document:d1#viewer@user:*', 'group:all#member@user:*'])
    expect(await check('document:d1#viewer@user:anyone')).toBe(true)
    expect(await check('document:d1#viewer@user:*')).toBe(true)
    expect(await check('group:all#member@user:zed')).toBe(true)
    expect(await check('document:d1#editor@user:anyone')).toBe(false)
  })

  it('computes exclusion and intersection', async () => {
    const { check } = await setup(client, DOCS, [
      'document:d1#viewer@user:anne',
      'document:d1#viewer@user:bob',
      'document:d1#blocked@user:bob',
      'document:d1#editor@user:anne',
      'document:d1#editor@user:carl',
      'document:d1#parent@folder:f1',
      'folder:f1#viewer@user:anne',
    ])
    expect(await check('document:d1#can_read@user:anne')).toBe(true)
    expect(await check('document:d1#can_read@user:bob')).toBe(false) // blocked
    expect(await check('document:d1#can_edit@user:anne')).toBe(true) // editor and can view parent
    expect(await check('document:d1#can_edit@user:carl')).toBe(false) // editor only
  })

  it('answers true for a userset checked against itself', async () => {
    const { check } = await setup(client, DOCS)
    expect(await check('group:eng#member@group:eng#member')).toBe(true)
  })

  it('terminates cycles with false', async () => {
    const { check } = await setup(
      client,
      `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
`,
      ['group:a#member@group:b#member', 'group:b#member@group:c#member', 'group:c#member@group:a#member'],
    )
    expect(await check('group:a#member@user:x')).toBe(false)
    await writeTuples(client, (await client.request('GET', '/stores')).body.stores[0].id, ['group:c#member@user:x'])
    expect(await check('group:a#member@user:x')).toBe(true)
  })

  it('terminates a cycle through computed usersets and tuple-to-usersets', async () => {
    const { check } = await setup(
      client,
      `model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent
`,
      ['folder:a#parent@folder:b', 'folder:b#parent@folder:a'],
    )
    expect(await check('folder:a#viewer@user:x')).toBe(false)
  })

  it('denies a paradox through exclusion but not a harmless loop in the subtrahend', async () => {
    const paradox = await setup(
      client,
      `model
  schema 1.1
type user
type document
  relations
    define restricted: [user, document#viewer]
    define viewer: [user] but not restricted
`,
      ['document:1#viewer@user:jon', 'document:1#restricted@document:1#viewer'],
    )
    // jon views document:1 only if he does not, so he does not.
    expect(await paradox.check('document:1#viewer@user:jon')).toBe(false)

    const loop = await setup(
      client,
      `model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define viewer: [user]
    define blocked: [user] or blocked from parent
    define can_view: viewer but not blocked
`,
      ['folder:a#parent@folder:b', 'folder:b#parent@folder:a', 'folder:a#viewer@user:u', 'folder:b#blocked@user:v', 'folder:a#viewer@user:v'],
    )
    // The parent loop a → b → a in `blocked` proves nothing about u: u is not blocked.
    expect(await loop.check('folder:a#can_view@user:u')).toBe(true)
    expect(await loop.check('folder:a#can_view@user:v')).toBe(false)
  })

  it('stops resolution deeper than 25 hops with authorization_model_resolution_too_complex', async () => {
    const { storeId } = await setup(
      client,
      `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
`,
      Array.from({ length: 30 }, (_, i) => `group:g${i}#member@group:g${i + 1}#member`).concat(['group:g30#member@user:deep']),
    )
    const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('group:g0#member@user:deep') })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('authorization_model_resolution_too_complex')
    const shallow = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('group:g20#member@user:deep') })
    expect(shallow.body.allowed).toBe(true)
  })

  it('ignores stored tuples that the current model no longer admits', async () => {
    const { storeId, check } = await setup(client, DOCS, ['document:d1#viewer@user:anne', 'document:d1#viewer@group:eng#member', 'group:eng#member@user:bob'])
    expect(await check('document:d1#viewer@user:bob')).toBe(true)
    await writeModel(
      client,
      storeId,
      `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type document
  relations
    define viewer: [user]
`,
    )
    expect(await check('document:d1#viewer@user:anne')).toBe(true)
    expect(await check('document:d1#viewer@user:bob')).toBe(false)
  })

  it('uses contextual tuples for one request only', async () => {
    const { storeId, check } = await setup(client, DOCS, ['document:d1#viewer@group:eng#member'])
    const ctx = { contextual_tuples: { tuple_keys: [tupleKey('group:eng#member@user:tok')] } }
    expect(await check('document:d1#viewer@user:tok', ctx)).toBe(true)
    expect(await check('document:d1#viewer@user:tok')).toBe(false)
    const bad = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('document:d1#viewer@user:tok'),
      contextual_tuples: { tuple_keys: [tupleKey('document:d1#viewer@folder:f1')] },
    })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('invalid_tuple')
  })

  it('rejects unknown types and relations, and malformed users, with validation_error', async () => {
    const { storeId } = await setup(client, DOCS)
    for (const t of ['document:d1#nope@user:anne', 'nope:d1#viewer@user:anne', 'document:d1#viewer@nope:anne', 'document:d1#viewer@a:b:c', 'document:d1#viewer@group:eng#nope']) {
      const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey(t) })
      expect(res.status, t).toBe(400)
      expect(res.body.code, t).toBe('validation_error')
    }
  })

  it('answers the model id it used in a header, and 400 for a store with no model', async () => {
    const { storeId, modelId } = await setup(client, DOCS)
    const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('document:d1#viewer@user:a') })
    expect(res.headers.get('openfga-authorization-model-id')).toBe(modelId)
    expect(res.body).toEqual({ allowed: false, resolution: '' })
    const empty = (await client.request('POST', '/stores', { name: 'empty' })).body.id
    const none = await client.request('POST', `/stores/${empty}/check`, { tuple_key: tupleKey('document:d1#viewer@user:a') })
    expect(none.status).toBe(400)
    expect(none.body.code).toBe('latest_authorization_model_not_found')
    const unknownModel = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('document:d1#viewer@user:a'),
      authorization_model_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
    })
    expect(unknownModel.body.code).toBe('authorization_model_not_found')
  })
})
