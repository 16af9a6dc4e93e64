/** Batch check, list-objects (plain and streamed), list-users, assertions and conditions over HTTP. */
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
type service_account
type team
  relations
    define member: [user, service_account]
type api
  relations
    define caller: [service_account with from_approved_network, team#member]
    define blocked: [service_account]
    define can_call: caller but not blocked
type document
  relations
    define viewer: [user, user:*, team#member]
condition from_approved_network(request_ip: ipaddress, approved_cidr: string) {
  request_ip.in_cidr(approved_cidr)
}
`

describe('batch check', () => {
  it('answers each check by correlation id, with per-item errors', async () => {
    const { storeId } = await setup(client, MODEL, ['document:1#viewer@user:anne', 'team:sre#member@user:bob', 'document:2#viewer@team:sre#member'])
    const res = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { tuple_key: tupleKey('document:1#viewer@user:anne'), correlation_id: 'a' },
        { tuple_key: tupleKey('document:1#viewer@user:bob'), correlation_id: 'b' },
        { tuple_key: tupleKey('document:2#viewer@user:bob'), correlation_id: 'c' },
        { tuple_key: tupleKey('document:2#nope@user:bob'), correlation_id: 'd' },
        {
          tuple_key: tupleKey('document:3#viewer@user:carl'),
          contextual_tuples: { tuple_keys: [tupleKey('document:3#viewer@user:carl')] },
          correlation_id: 'e',
        },
      ],
    })
    expect(res.status, res.text).toBe(200)
    expect(res.body.result.a).toEqual({ allowed: true })
    expect(res.body.result.b).toEqual({ allowed: false })
    expect(res.body.result.c).toEqual({ allowed: true })
    expect(res.body.result.d.error.input_error).toBe('validation_error')
    expect(res.body.result.d.error.message).toMatch(/document#nope/)
    expect(res.body.result.e).toEqual({ allowed: true })
  })

  it('rejects more than 50 checks, none, and duplicate or malformed correlation ids', async () => {
    const { storeId } = await setup(client, MODEL)
    const item = (id: string) => ({ tuple_key: tupleKey('document:1#viewer@user:anne'), correlation_id: id })
    const cases: unknown[] = [
      { checks: Array.from({ length: 51 }, (_, i) => item(`c${i}`)) },
      { checks: [] },
      { checks: [item('x'), item('x')] },
      { checks: [item('')] },
      { checks: [item('has space')] },
      { checks: [item('x'.repeat(37))] },
    ]
    for (const body of cases) {
      const res = await client.request('POST', `/stores/${storeId}/batch-check`, body)
      expect(res.status).toBe(400)
      expect(res.body.code).toBe('validation_error')
    }
  })
})

describe('conditions', () => {
  it('grants only when the condition holds over the request context', async () => {
    const { storeId, check } = await setup(client, MODEL)
    const write = await client.request('POST', `/stores/${storeId}/write`, {
      writes: {
        tuple_keys: [
          { ...tupleKey('api:billing#caller@service_account:ci'), condition: { name: 'from_approved_network', context: { approved_cidr: '10.0.0.0/8' } } },
        ],
      },
    })
    expect(write.status, write.text).toBe(200)
    expect(await check('api:billing#can_call@service_account:ci', { context: { request_ip: '10.1.2.3' } })).toBe(true)
    expect(await check('api:billing#can_call@service_account:ci', { context: { request_ip: '192.168.0.1' } })).toBe(false)
    // The stored context wins over the request's for the same key.
    expect(await check('api:billing#can_call@service_account:ci', { context: { request_ip: '10.1.2.3', approved_cidr: '0.0.0.0/0' } })).toBe(true)
    const missing = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('api:billing#can_call@service_account:ci') })
    expect(missing.status).toBe(400)
    expect(missing.body.code).toBe('validation_error')
    expect(missing.body.message).toMatch(/request_ip/)
    const wrongType = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('api:billing#can_call@service_account:ci'),
      context: { request_ip: 'not-an-ip' },
    })
    expect(wrongType.status).toBe(400)
  })

  it('refuses models whose conditions do not type-check, and contexts over the size limit', async () => {
    const { storeId } = await setup(client, MODEL)
    const bad = await client.request(
      'POST',
      `/stores/${storeId}/authorization-models`,
      MODEL.replace('request_ip.in_cidr(approved_cidr)', 'request_ip + 1'),
      { 'content-type': 'text/plain' },
    )
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('invalid_authorization_model')
    const big = await client.request('POST', `/stores/${storeId}/write`, {
      writes: {
        tuple_keys: [
          { ...tupleKey('api:billing#caller@service_account:ci'), condition: { name: 'from_approved_network', context: { approved_cidr: 'x'.repeat(33 * 1024) } } },
        ],
      },
    })
    expect(big.status).toBe(400)
    const unknown = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...tupleKey('api:billing#caller@service_account:ci'), condition: { name: 'nope' } }] },
    })
    expect(unknown.status).toBe(400)
    expect((await client.request('POST', `/stores/${storeId}/read`, {})).body.tuples).toEqual([])
  })
})

describe('list-objects and list-users', () => {
  const tuples = [
    'document:1#viewer@user:anne',
    'document:2#viewer@team:sre#member',
    'document:3#viewer@user:*',
    'team:sre#member@user:anne',
    'team:sre#member@user:bob',
  ]

  it('lists objects, plain and streamed, agreeing with check', async () => {
    const { storeId, check } = await setup(client, MODEL, tuples)
    const res = await client.request('POST', `/stores/${storeId}/list-objects`, { type: 'document', relation: 'viewer', user: 'user:anne' })
    expect(res.status).toBe(200)
    expect(res.body.objects.sort()).toEqual(['document:1', 'document:2', 'document:3'])
    expect(res.headers.get('pemba-result-truncated')).toBeNull()
    for (const o of res.body.objects) expect(await check(`${o}#viewer@user:anne`)).toBe(true)
    const streamed = await client.request('POST', `/stores/${storeId}/streamed-list-objects`, { type: 'document', relation: 'viewer', user: 'user:bob' })
    expect(streamed.status).toBe(200)
    const lines = streamed.text.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines.map((l) => l.result.object).sort()).toEqual(['document:2', 'document:3'])
    const badType = await client.request('POST', `/stores/${storeId}/streamed-list-objects`, { type: 'nope', relation: 'viewer', user: 'user:bob' })
    expect(badType.status).toBe(400)
    expect(badType.body.code).toBe('type_not_found')
  })

  it('says so when a list is cut by the result limit', async () => {
    const small = await createTestClient({ listMaxResults: 2 })
    try {
      const { storeId } = await setup(small, MODEL, tuples)
      const res = await small.request('POST', `/stores/${storeId}/list-objects`, { type: 'document', relation: 'viewer', user: 'user:anne' })
      expect(res.body.objects).toHaveLength(2)
      expect(res.body.truncated).toBe('max_results')
      expect(res.headers.get('pemba-result-truncated')).toBe('max_results')
    } finally {
      await small.close()
    }
  })

  it('lists users: objects, wildcards and usersets', async () => {
    const { storeId } = await setup(client, MODEL, tuples)
    const list = async (object: string, filter: { type: string; relation?: string }, contextual: unknown[] = []) => {
      const [type, id] = object.split(':')
      const res = await client.request('POST', `/stores/${storeId}/list-users`, {
        object: { type, id },
        relation: 'viewer',
        user_filters: [filter],
        contextual_tuples: contextual,
      })
      expect(res.status, res.text).toBe(200)
      return res.body.users
    }
    expect(await list('document:2', { type: 'user' })).toEqual(expect.arrayContaining([{ object: { type: 'user', id: 'anne' } }, { object: { type: 'user', id: 'bob' } }]))
    expect(await list('document:3', { type: 'user' })).toEqual([{ wildcard: { type: 'user' } }])
    expect(await list('document:2', { type: 'team', relation: 'member' })).toEqual([{ userset: { type: 'team', id: 'sre', relation: 'member' } }])
    expect(await list('document:9', { type: 'user' }, [tupleKey('document:9#viewer@user:zed')])).toEqual([{ object: { type: 'user', id: 'zed' } }])
    const bad = await client.request('POST', `/stores/${storeId}/list-users`, {
      object: { type: 'document', id: '1' },
      relation: 'viewer',
      user_filters: [{ type: 'user' }, { type: 'team' }],
    })
    expect(bad.status).toBe(400)
  })
})

describe('assertions', () => {
  it('writes (204) and reads back a model’s assertions; an unknown model is 400', async () => {
    const { storeId, modelId } = await setup(client, MODEL)
    const assertions = [
      { tuple_key: tupleKey('document:1#viewer@user:anne'), expectation: true },
      {
        tuple_key: tupleKey('document:1#viewer@user:bob'),
        expectation: false,
        contextual_tuples: [tupleKey('team:sre#member@user:bob')],
        context: { k: 'v' },
      },
    ]
    const put = await client.request('PUT', `/stores/${storeId}/assertions/${modelId}`, { assertions })
    expect(put.status, put.text).toBe(204)
    expect(put.text).toBe('')
    const got = await client.request('GET', `/stores/${storeId}/assertions/${modelId}`)
    expect(got.body.authorization_model_id).toBe(modelId)
    expect(got.body.assertions).toHaveLength(2)
    expect(got.body.assertions[1].contextual_tuples[0]).toMatchObject(tupleKey('team:sre#member@user:bob'))
    const unknown = await client.request('GET', `/stores/${storeId}/assertions/01ARZ3NDEKTSV4RRFFQ69G5FAV`)
    expect(unknown.body.code).toBe('authorization_model_not_found')
    const tooMany = await client.request('PUT', `/stores/${storeId}/assertions/${modelId}`, {
      assertions: Array.from({ length: 101 }, () => assertions[0]),
    })
    expect(tooMany.body.code).toBe('assertions_too_many_items')
  })
})

describe('consistency', () => {
  it('accepts the enum by name and number, and rejects others', async () => {
    const { storeId } = await setup(client, MODEL, ['document:1#viewer@user:anne'])
    for (const consistency of ['HIGHER_CONSISTENCY', 'MINIMIZE_LATENCY', 'UNSPECIFIED', 200]) {
      const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('document:1#viewer@user:anne'), consistency })
      expect(res.body.allowed).toBe(true)
    }
    const bad = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('document:1#viewer@user:anne'), consistency: 'EVENTUAL' })
    expect(bad.status).toBe(400)
  })
})
