/**
 * Delegated checks through the HTTP API: an AI agent acting for a person can do exactly what
 * both may do, only while the person delegates to it, and a sub-agent chain narrows further.
 */
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
  relations
    define acts_for: [agent]
type agent
  relations
    define acts_for: [agent]
type tenant
  relations
    define member: [user, agent]
type customer_record
  relations
    define tenant: [tenant]
    define owner: [user]
    define reader: [user, agent] or owner or member from tenant
    define exporter: [user, agent] or owner
`

const TUPLES = [
  // alice delegates to the summarizer; the summarizer delegates to a sub-agent
  'user:alice#acts_for@agent:summarizer',
  'agent:summarizer#acts_for@agent:sub',
  // alice owns record 1 (so she may read and export it) and is in tenant acme
  'customer_record:1#owner@user:alice',
  'customer_record:2#tenant@tenant:acme',
  'tenant:acme#member@user:alice',
  // bob's record
  'customer_record:3#owner@user:bob',
  // the summarizer may read anything of tenant acme and record 3, but export nothing
  'tenant:acme#member@agent:summarizer',
  'customer_record:1#reader@agent:summarizer',
  'customer_record:3#reader@agent:summarizer',
  // the sub-agent may read record 1 only
  'customer_record:1#reader@agent:sub',
]

describe('on_behalf_of', () => {
  it('allows exactly what both the agent and the person may do', async () => {
    const { check } = await setup(client, MODEL, TUPLES)
    const asAlice = { on_behalf_of: 'user:alice' }
    expect(await check('customer_record:1#reader@agent:summarizer', asAlice)).toBe(true)
    expect(await check('customer_record:2#reader@agent:summarizer', asAlice)).toBe(true)
    // The agent may read record 3 itself, but alice may not: denied.
    expect(await check('customer_record:3#reader@agent:summarizer', asAlice)).toBe(false)
    // Alice may export record 1, the agent may not: denied.
    expect(await check('customer_record:1#exporter@agent:summarizer', asAlice)).toBe(false)
    // Without on_behalf_of it is the agent's own check.
    expect(await check('customer_record:3#reader@agent:summarizer')).toBe(true)
  })

  it('says which part denied', async () => {
    const { storeId } = await setup(client, MODEL, TUPLES)
    const ask = async (t: string, on_behalf_of: unknown) =>
      (await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey(t), on_behalf_of })).body
    expect(await ask('customer_record:3#reader@agent:summarizer', 'user:alice')).toEqual({
      allowed: false,
      resolution: '',
      denied_by: 'principal',
    })
    expect((await ask('customer_record:1#exporter@agent:summarizer', ['user:alice'])).denied_by).toBe('actor')
    expect((await ask('customer_record:3#reader@agent:summarizer', 'user:bob')).denied_by).toBe('delegation')
    expect(await ask('customer_record:1#reader@agent:summarizer', 'user:alice')).toEqual({ allowed: true, resolution: '' })
  })

  it('narrows along a sub-agent chain, nearest principal first', async () => {
    const { check } = await setup(client, MODEL, TUPLES)
    const chain = { on_behalf_of: ['agent:summarizer', 'user:alice'] }
    expect(await check('customer_record:1#reader@agent:sub', chain)).toBe(true)
    // The sub-agent has no grant on record 2, though both principals do.
    expect(await check('customer_record:2#reader@agent:sub', chain)).toBe(false)
    // A chain in the wrong order is not a delegation.
    expect(await check('customer_record:1#reader@agent:sub', { on_behalf_of: ['user:alice', 'agent:summarizer'] })).toBe(false)
  })

  it('is cut off at once when the person revokes the delegation', async () => {
    const { storeId, check } = await setup(client, MODEL, TUPLES)
    expect(await check('customer_record:1#reader@agent:summarizer', { on_behalf_of: 'user:alice' })).toBe(true)
    const revoke = await client.request('POST', `/stores/${storeId}/write`, {
      deletes: { tuple_keys: [tupleKey('user:alice#acts_for@agent:summarizer')] },
    })
    expect(revoke.status).toBe(200)
    expect(await check('customer_record:1#reader@agent:summarizer', { on_behalf_of: 'user:alice' })).toBe(false)
  })

  it('lists what every identity of the chain can reach, agreeing with check', async () => {
    const { storeId, check } = await setup(client, MODEL, TUPLES)
    const list = async (user: string, on_behalf_of?: unknown) =>
      (await client.request('POST', `/stores/${storeId}/list-objects`, { type: 'customer_record', relation: 'reader', user, on_behalf_of })).body
    expect((await list('agent:summarizer')).objects.sort()).toEqual(['customer_record:1', 'customer_record:2', 'customer_record:3'])
    const delegated = await list('agent:summarizer', 'user:alice')
    expect(delegated.objects.sort()).toEqual(['customer_record:1', 'customer_record:2'])
    for (const o of delegated.objects) expect(await check(`${o}#reader@agent:summarizer`, { on_behalf_of: 'user:alice' })).toBe(true)
    expect((await list('agent:sub', ['agent:summarizer', 'user:alice'])).objects).toEqual(['customer_record:1'])
    expect(await list('agent:summarizer', 'user:bob')).toEqual({ objects: [], denied_by: 'delegation' })
  })

  it('works per item in batch-check', async () => {
    const { storeId } = await setup(client, MODEL, TUPLES)
    const res = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { tuple_key: tupleKey('customer_record:1#reader@agent:summarizer'), on_behalf_of: 'user:alice', correlation_id: 'a' },
        { tuple_key: tupleKey('customer_record:3#reader@agent:summarizer'), on_behalf_of: 'user:alice', correlation_id: 'b' },
        { tuple_key: tupleKey('customer_record:3#reader@agent:summarizer'), correlation_id: 'c' },
      ],
    })
    expect(res.body.result).toEqual({ a: { allowed: true }, b: { allowed: false, denied_by: 'principal' }, c: { allowed: true } })
  })

  it('rejects chains the model cannot express, and over-long ones, with 400', async () => {
    const noActsFor = MODEL.replace('type agent\n  relations\n    define acts_for: [agent]\n', 'type agent\n')
    const { storeId } = await setup(client, noActsFor, [])
    const bad = async (user: string, on_behalf_of: unknown) =>
      client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey(`customer_record:1#reader@${user}`), on_behalf_of })
    const missing = await bad('agent:sub', ['agent:summarizer', 'user:alice'])
    expect(missing.status).toBe(400)
    expect(missing.body.message).toMatch(/acts_for/)
    for (const onBehalfOf of [['user:a', 'user:b', 'user:c', 'user:d', 'user:e'], 'tenant:acme#member', 'user:*', 'nope:x', 'bad', []]) {
      const res = await bad('agent:summarizer', onBehalfOf)
      expect(res.status, JSON.stringify(onBehalfOf)).toBe(400)
      expect(res.body.code).toBe('validation_error')
    }
    expect((await bad('tenant:acme#member', 'user:alice')).status).toBe(400)
  })
})
