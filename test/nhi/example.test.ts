/**
 * The non-human identities example (examples/nhi), loaded by its own loader into an in-process
 * server, and the walkthrough of docs/nhi.md run against it:
 *
 * (a) a CI/CD pipeline deploys to staging but not production, until a release manager (through
 *     the release-managers team) approves its just-in-time request; the grant then expires, and
 *     the sweeper's delete shows in the change feed;
 * (b) an AI agent acting for a support engineer reads exactly what both may read;
 * (c) a partner integration refunds only the transactions it originated;
 * (d) the billing API's conditions, as in test/api/docs-conditions.test.ts.
 *
 * A fake clock drives time; the sweeper runs only when the test says so.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadExample, type Http } from '../../examples/nhi/load.ts'
import type { PembaConfig } from '../../src/config.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { tupleKey } from '../helpers/fixtures.ts'

const T0 = Date.parse('2026-11-29T09:00:00Z')
const MINUTE = 60_000
const HOUR = 60 * MINUTE

let now: number
let client: TestClient
let store: string

/** The loader's HTTP function over the in-process app. */
function http(c: TestClient): Http {
  return (method, path, body) =>
    c.request(method, path, body, typeof body === 'string' ? { 'content-type': 'text/plain' } : {})
}

async function check(t: string, extra: Record<string, unknown> = {}) {
  const res = await client.request('POST', `/stores/${store}/check`, {
    tuple_key: tupleKey(t),
    ...extra,
  })
  expect(res.status, res.text).toBe(200)
  return res.body
}

const allowed = async (t: string, extra: Record<string, unknown> = {}) =>
  (await check(t, extra)).allowed as boolean

async function listObjects(
  type: string,
  relation: string,
  user: string,
  extra: Record<string, unknown> = {},
) {
  const res = await client.request('POST', `/stores/${store}/list-objects`, {
    type,
    relation,
    user,
    ...extra,
  })
  expect(res.status, res.text).toBe(200)
  return (res.body.objects as string[]).sort()
}

async function changes() {
  const res = await client.request('GET', `/stores/${store}/changes?page_size=100`)
  expect(res.status, res.text).toBe(200)
  return res.body.changes as {
    tuple_key: Record<string, unknown>
    operation: string
    timestamp: string
  }[]
}

describe('the NHI example, with the check cache', () => suite(() => ({})))
describe('the NHI example, without the check cache', () => suite(() => ({ checkCacheSize: 0 })))
const target = await probePostgres()
describePostgres('the NHI example on PostgreSQL', target, () => {
  const url = usePostgresSchema(target)
  suite(() => ({ databaseUrl: url() }))
})

function suite(config: () => Partial<PembaConfig>) {
  beforeEach(async () => {
    now = T0
    client = await createTestClient(config(), { clock: () => new Date(now), sweeper: false })
    store = (await loadExample(http(client))).storeId
  })
  afterEach(async () => {
    await client.close()
  })

  it('loads with one call: a store, the model and every tuple', async () => {
    const read = await client.request('POST', `/stores/${store}/read`, { page_size: 100 })
    expect(read.body.tuples).toHaveLength(15)
    const models = await client.request('GET', `/stores/${store}/authorization-models`)
    expect(models.body.authorization_models).toHaveLength(1)
  })

  it('(a) deploys to production only while a release manager’s JIT approval lasts', async () => {
    const ci = 'service_account:ci-pipeline'
    expect(await allowed(`namespace:staging#deployer@${ci}`)).toBe(true)
    expect(await allowed(`namespace:production#deployer@${ci}`)).toBe(false)

    // The pipeline asks for an hour in production.
    const created = await client.request('POST', `/stores/${store}/access-requests`, {
      tuple_key: { user: ci, relation: 'deployer', object: 'namespace:production' },
      duration: 'PT1H',
      reason: 'hotfix for INC-42',
    })
    expect(created.status, created.text).toBe(201)
    const id = created.body.id
    expect(created.body).toMatchObject({
      status: 'pending',
      duration: 'PT1H',
      created_at: '2026-11-29T09:00:00Z',
      pending_until: '2026-11-30T09:00:00Z',
      grant_expires_at: null,
      events: [
        { type: 'created', actor: ci, at: '2026-11-29T09:00:00Z', reason: 'hotfix for INC-42' },
      ],
    })
    // Pending grants nothing.
    expect(await allowed(`namespace:production#deployer@${ci}`)).toBe(false)

    // Rita, a release manager through team:release-managers, approves ten minutes later.
    now = T0 + 10 * MINUTE
    const approved = await client.request(
      'POST',
      `/stores/${store}/access-requests/${id}/approve`,
      {
        approver: 'user:rita',
        reason: 'INC-42 is real',
      },
    )
    expect(approved.status, approved.text).toBe(200)
    expect(approved.body).toMatchObject({
      status: 'approved',
      grant_expires_at: '2026-11-29T10:10:00Z',
    })
    expect(
      approved.body.events.map((e: { type: string; actor: string }) => `${e.type} ${e.actor}`),
    ).toEqual([`created ${ci}`, 'approved user:rita'])
    expect(await allowed(`namespace:production#deployer@${ci}`)).toBe(true)
    expect(await listObjects('namespace', 'deployer', ci)).toEqual([
      'namespace:production',
      'namespace:staging',
    ])
    const read = await client.request('POST', `/stores/${store}/read`, {
      tuple_key: { object: 'namespace:production', relation: 'deployer' },
    })
    expect(read.body.tuples.map((t: { key: unknown }) => t.key)).toEqual([
      {
        user: ci,
        relation: 'deployer',
        object: 'namespace:production',
        condition: null,
        expires_at: '2026-11-29T10:10:00Z',
      },
    ])

    // One millisecond before the grant ends it still holds; at the instant it is gone, before
    // any sweep: check, list-objects, list-users, read all agree.
    now = T0 + 70 * MINUTE - 1
    expect(await allowed(`namespace:production#deployer@${ci}`)).toBe(true)
    now = T0 + 70 * MINUTE
    expect(await allowed(`namespace:production#deployer@${ci}`)).toBe(false)
    expect(await listObjects('namespace', 'deployer', ci)).toEqual(['namespace:staging'])
    const users = await client.request('POST', `/stores/${store}/list-users`, {
      object: { type: 'namespace', id: 'production' },
      relation: 'deployer',
      user_filters: [{ type: 'service_account' }],
    })
    expect(users.body.users).toEqual([])
    const readLater = await client.request('POST', `/stores/${store}/read`, {
      tuple_key: { object: 'namespace:production', relation: 'deployer' },
    })
    expect(readLater.body.tuples).toEqual([])
    expect((await changes()).filter((c) => c.operation === 'TUPLE_OPERATION_DELETE')).toEqual([])

    // The sweeper deletes it and records the delete in the change feed.
    now = T0 + 71 * MINUTE
    expect(await client.pemba.sweeper.runOnce()).toEqual({ tuples: 1, accessRequests: 0, searchSnapshots: 0, purgedRows: 0, purgedStores: [] })
    expect(await allowed(`namespace:production#deployer@${ci}`)).toBe(false)
    expect(await allowed(`namespace:staging#deployer@${ci}`)).toBe(true)
    const feed = await changes()
    expect(feed.slice(-2)).toEqual([
      {
        tuple_key: {
          user: ci,
          relation: 'deployer',
          object: 'namespace:production',
          condition: null,
          expires_at: '2026-11-29T10:10:00Z',
        },
        operation: 'TUPLE_OPERATION_WRITE',
        timestamp: '2026-11-29T09:10:00Z',
      },
      {
        tuple_key: {
          user: ci,
          relation: 'deployer',
          object: 'namespace:production',
          condition: null,
        },
        operation: 'TUPLE_OPERATION_DELETE',
        timestamp: '2026-11-29T10:11:00Z',
      },
    ])
    // The request keeps its history; it stays approved.
    const got = await client.request('GET', `/stores/${store}/access-requests/${id}`)
    expect(got.body.status).toBe('approved')
  })

  it('(b) lets the support assistant read for alice only what both may read', async () => {
    const asAlice = { on_behalf_of: 'user:alice' }
    expect(await allowed('customer_record:acme-42#reader@agent:support-assistant', asAlice)).toBe(
      true,
    )
    // The assistant may read globex-7 on its own grant, but alice may not: denied, and why.
    expect(await allowed('customer_record:globex-7#reader@agent:support-assistant')).toBe(true)
    expect(await check('customer_record:globex-7#reader@agent:support-assistant', asAlice)).toEqual(
      {
        allowed: false,
        resolution: '',
        denied_by: 'principal',
      },
    )
    // Nobody delegated to it for bob.
    expect(
      (
        await check('customer_record:globex-7#reader@agent:support-assistant', {
          on_behalf_of: 'user:bob',
        })
      ).denied_by,
    ).toBe('delegation')
    expect(
      await listObjects('customer_record', 'reader', 'agent:support-assistant', asAlice),
    ).toEqual(['customer_record:acme-42'])
  })

  it('(c) lets a partner integration refund only the transactions it originated', async () => {
    expect(await allowed('transaction:tx-1001#can_refund@service_account:acme-payments')).toBe(true)
    expect(await allowed('transaction:tx-2002#can_refund@service_account:acme-payments')).toBe(
      false,
    )
    expect(await listObjects('transaction', 'can_refund', 'service_account:acme-payments')).toEqual(
      ['transaction:tx-1001'],
    )
    expect(await listObjects('transaction', 'can_refund', 'service_account:globex-pay')).toEqual([
      'transaction:tx-2002',
    ])
  })

  it('(d) admits billing calls only from approved networks inside the window', async () => {
    const t = 'api:billing#caller@service_account:billing-sync'
    const at = (ip: string, time: string) => ({ context: { request_ip: ip, current_time: time } })
    expect(await allowed(t, at('10.20.3.4', '2026-11-29T02:30:00Z'))).toBe(true)
    expect(await allowed(t, at('10.99.3.4', '2026-11-29T02:30:00Z'))).toBe(false)
    expect(await allowed(t, at('10.20.3.4', '2026-11-29T04:30:00Z'))).toBe(false)
  })
}
