/**
 * Just-in-time access requests through the HTTP API: the model decides who approves
 * (`<relation>_approver`, else `approver`), nobody approves their own request (directly or
 * through an identity they act for), every refusal writes nothing, and every state change is
 * kept with who and when. A fake clock drives time; the sweeper runs when the test says.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'

const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type team
  relations
    define member: [user]
type namespace
  relations
    define deployer: [user, agent, team#member]
    define deployer_approver: [user, team#member]
    define viewer: [user]
type customer_record
  relations
    define owner: [user]
    define reader: [user, agent] or owner
    define approver: owner
type document
  relations
    define viewer: [user]
`

const TUPLES = [
  'team:release-managers#member@user:rita',
  'team:release-managers#member@user:rick',
  'namespace:production#deployer_approver@team:release-managers#member',
  // rita's release bot acts for her: she may not approve its requests
  'user:rita#acts_for@agent:release-bot',
  'customer_record:42#owner@user:bob',
]

const T0 = Date.parse('2026-11-29T09:00:00Z')
const HOUR = 3_600_000

let now: number
let client: TestClient
let store: string

async function api(method: string, path: string, body?: unknown) {
  return client.request(method, `/stores/${store}${path}`, body)
}

async function requestAccess(
  user: string,
  relation = 'deployer',
  object = 'namespace:production',
  duration = 'PT1H',
) {
  const res = await api('POST', '/access-requests', {
    tuple_key: { user, relation, object },
    duration,
    reason: 'INC-42',
  })
  expect(res.status, res.text).toBe(201)
  return res.body.id as string
}

const decide = (id: string, verb: 'approve' | 'deny', approver: string, reason?: string) =>
  api('POST', `/access-requests/${id}/${verb}`, { approver, reason })

async function feedLength() {
  return (await api('GET', '/changes?page_size=100')).body.changes.length as number
}

async function deployer(user: string) {
  const res = await api('POST', '/check', {
    tuple_key: tupleKey(`namespace:production#deployer@${user}`),
  })
  return res.body.allowed as boolean
}

function suite(config: () => Partial<PembaConfig>) {
  beforeEach(async () => {
    now = T0
    client = await createTestClient(config(), { clock: () => new Date(now), sweeper: false })
    store = (await setup(client, MODEL, TUPLES)).storeId
  })
  afterEach(async () => {
    await client.close()
  })

  it('validates a request: requestable relation, valid tuple, single identity, duration, reason', async () => {
    const bad = async (body: Record<string, unknown>, code: string, message?: RegExp) => {
      const res = await api('POST', '/access-requests', {
        tuple_key: {
          user: 'agent:deploy-bot',
          relation: 'deployer',
          object: 'namespace:production',
        },
        duration: 'PT1H',
        reason: 'INC-42',
        ...body,
      })
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.code, JSON.stringify(body)).toBe(code)
      if (message) expect(res.body.message).toMatch(message)
    }
    // document defines neither viewer_approver nor approver; namespace has deployer_approver
    // but neither viewer_approver nor approver.
    const notRequestable = /cannot be requested.*neither 'viewer_approver' nor 'approver'/
    await bad(
      { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' } },
      'relation_not_requestable',
      notRequestable,
    )
    await bad(
      { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'namespace:production' } },
      'relation_not_requestable',
    )
    // The tuple must be writable: team is not a directly related type of deployer.
    await bad(
      { tuple_key: { user: 'team:sre', relation: 'deployer', object: 'namespace:production' } },
      'validation_error',
      /Invalid tuple/,
    )
    await bad(
      {
        tuple_key: {
          user: 'team:sre#member',
          relation: 'deployer',
          object: 'namespace:production',
        },
      },
      'validation_error',
      /single identity/,
    )
    await bad(
      { tuple_key: { user: 'user:anne', relation: 'nope', object: 'namespace:production' } },
      'validation_error',
    )
    for (const duration of ['1h', 'P1M', 'PT0S', 'PT', '-PT1H'])
      await bad({ duration }, 'validation_error', /duration/)
    await bad({ duration: 'PT9H' }, 'validation_error', /exceeds the longest grant allowed, PT8H/)
    await bad({ reason: '' }, 'validation_error')
    await bad({ reason: undefined }, 'validation_error')
    const list = await api('GET', '/access-requests')
    expect(list.body.access_requests).toEqual([])
  })

  it('uses the generic approver relation when the type has no <relation>_approver', async () => {
    const id = await requestAccess('agent:summarizer', 'reader', 'customer_record:42', 'PT30M')
    const denied = await decide(id, 'approve', 'user:rita')
    expect(denied.status).toBe(403)
    expect(denied.body).toEqual({
      code: 'approver_not_authorized',
      message:
        "user:rita does not have 'approver' on customer_record:42, so it cannot approve this request",
    })
    const ok = await decide(id, 'approve', 'user:bob')
    expect(ok.status, ok.text).toBe(200)
    expect(ok.body.grant_expires_at).toBe('2026-11-29T09:30:00Z')
    const check = await api('POST', '/check', {
      tuple_key: tupleKey('customer_record:42#reader@agent:summarizer'),
    })
    expect(check.body.allowed).toBe(true)
  })

  it('refuses an approver without the relation, and writes nothing', async () => {
    const id = await requestAccess('agent:deploy-bot')
    const before = await feedLength()
    for (const approver of ['user:mallory', 'user:bob']) {
      const res = await decide(id, 'approve', approver)
      expect(res.status).toBe(403)
      expect(res.body.code).toBe('approver_not_authorized')
    }
    const denyRes = await decide(id, 'deny', 'user:mallory')
    expect(denyRes.status).toBe(403)
    expect(await feedLength()).toBe(before)
    expect(await deployer('agent:deploy-bot')).toBe(false)
    const got = await api('GET', `/access-requests/${id}`)
    expect(got.body.status).toBe('pending')
    expect(got.body.events).toHaveLength(1)
    // Malformed approvers are 400s.
    for (const approver of ['team:release-managers#member', 'user:*', 'nobody']) {
      expect((await decide(id, 'approve', approver)).status, approver).toBe(400)
    }
  })

  it('refuses self-approval, directly and through an identity the requester acts for', async () => {
    const own = await requestAccess('user:rita')
    const direct = await decide(own, 'approve', 'user:rita')
    expect(direct.status).toBe(403)
    expect(direct.body.code).toBe('self_approval_forbidden')

    const bots = await requestAccess('agent:release-bot')
    const viaBot = await decide(bots, 'approve', 'user:rita')
    expect(viaBot.status).toBe(403)
    expect(viaBot.body).toEqual({
      code: 'self_approval_forbidden',
      message: 'user:rita cannot approve an access request of agent:release-bot, which acts for it',
    })
    expect(await deployer('agent:release-bot')).toBe(false)
    expect(await deployer('user:rita')).toBe(false)

    // Another release manager may approve both.
    expect((await decide(own, 'approve', 'user:rick')).status).toBe(200)
    expect((await decide(bots, 'approve', 'user:rick')).status).toBe(200)
    expect(await deployer('agent:release-bot')).toBe(true)
    expect(await deployer('user:rita')).toBe(true)
  })

  it('refuses double approval, and approving a denied or expired request, writing nothing', async () => {
    const approved = await requestAccess('agent:a')
    const denied = await requestAccess('agent:b')
    const expired = await requestAccess('agent:c')
    expect((await decide(approved, 'approve', 'user:rita')).status).toBe(200)
    const deny = await decide(denied, 'deny', 'user:rick', 'not during the freeze')
    expect(deny.status, deny.text).toBe(200)
    expect(deny.body.status).toBe('denied')
    expect(deny.body.events.at(-1)).toEqual({
      type: 'denied',
      actor: 'user:rick',
      at: '2026-11-29T09:00:00Z',
      reason: 'not during the freeze',
    })
    const feed = await feedLength()

    const again = await decide(approved, 'approve', 'user:rick')
    expect(again.status).toBe(409)
    expect(again.body).toEqual({
      code: 'access_request_already_approved',
      message: `access request ${approved} is approved, not pending`,
    })
    expect((await decide(approved, 'deny', 'user:rick')).body.code).toBe(
      'access_request_already_approved',
    )
    const afterDeny = await decide(denied, 'approve', 'user:rita')
    expect(afterDeny.status).toBe(409)
    expect(afterDeny.body.code).toBe('access_request_already_denied')

    // 24 hours later the third has expired, by time alone.
    now = T0 + 24 * HOUR
    const late = await decide(expired, 'approve', 'user:rita')
    expect(late.status).toBe(409)
    expect(late.body.code).toBe('access_request_expired')
    expect(await feedLength()).toBe(feed)
    expect(await deployer('agent:b')).toBe(false)
    expect(await deployer('agent:c')).toBe(false)
    const got = await api('GET', `/access-requests/${approved}`)
    expect(got.body.events.map((e: { type: string }) => e.type)).toEqual(['created', 'approved'])

    const missing = await api('GET', '/access-requests/01HZZZZZZZZZZZZZZZZZZZZZZZ')
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('access_request_not_found')
    expect((await decide('01HZZZZZZZZZZZZZZZZZZZZZZZ', 'approve', 'user:rita')).status).toBe(404)
    expect((await api('GET', '/access-requests/not-an-id')).status).toBe(400)
  })

  it('expires pending requests after 24 hours, the same before and after the sweeper marks them', async () => {
    const id = await requestAccess('agent:a')
    now = T0 + 24 * HOUR - 1
    expect((await api('GET', `/access-requests/${id}`)).body.status).toBe('pending')
    now = T0 + 24 * HOUR
    const lazy = (await api('GET', `/access-requests/${id}`)).body
    expect(lazy.status).toBe('expired')
    expect(lazy.events.at(-1)).toEqual({
      type: 'expired',
      actor: 'pemba',
      at: '2026-11-30T09:00:00Z',
      reason: '',
    })
    now = T0 + 25 * HOUR
    expect(await client.pemba.sweeper.runOnce()).toEqual({ tuples: 0, accessRequests: 1, searchSnapshots: 0, purgedRows: 0, purgedStores: [] })
    expect((await api('GET', `/access-requests/${id}`)).body).toEqual(lazy)
    expect((await api('GET', '/access-requests?status=expired')).body.access_requests).toEqual([
      lazy,
    ])
  })

  it('lists by status with continuation tokens bound to the status', async () => {
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push(await requestAccess(`agent:a${i}`))
    await decide(ids[1], 'approve', 'user:rita')
    await decide(ids[3], 'deny', 'user:rita')
    const all = async (status: string) => {
      const seen: string[] = []
      let token = ''
      do {
        const res = await api(
          'GET',
          `/access-requests?page_size=1${status ? `&status=${status}` : ''}${token ? `&continuation_token=${token}` : ''}`,
        )
        expect(res.status, res.text).toBe(200)
        seen.push(...res.body.access_requests.map((r: { id: string }) => r.id))
        token = res.body.continuation_token
      } while (token)
      return seen
    }
    expect(await all('pending')).toEqual([ids[0], ids[2], ids[4]])
    expect(await all('approved')).toEqual([ids[1]])
    expect(await all('denied')).toEqual([ids[3]])
    expect(await all('expired')).toEqual([])
    expect(await all('')).toEqual(ids)
    const first = await api('GET', '/access-requests?status=pending&page_size=1')
    const replay = await api(
      'GET',
      `/access-requests?status=approved&continuation_token=${first.body.continuation_token}`,
    )
    expect(replay.status).toBe(400)
    expect(replay.body.code).toBe('invalid_continuation_token')
    expect((await api('GET', '/access-requests?status=later')).status).toBe(400)
  })

  it('records who asked, when requested_by differs from the requested identity', async () => {
    const res = await api('POST', '/access-requests', {
      tuple_key: { user: 'agent:deploy-bot', relation: 'deployer', object: 'namespace:production' },
      duration: 'PT2H30M',
      reason: 'release 7.1',
      requested_by: 'user:sam',
    })
    expect(res.status, res.text).toBe(201)
    expect(res.body.duration).toBe('PT2H30M')
    expect(res.body.events[0]).toMatchObject({
      type: 'created',
      actor: 'user:sam',
      reason: 'release 7.1',
    })
  })

  it('extends an existing grant, never shortens it', async () => {
    const long = await requestAccess('agent:a', 'deployer', 'namespace:production', 'PT4H')
    const short = await requestAccess('agent:a', 'deployer', 'namespace:production', 'PT1H')
    expect((await decide(long, 'approve', 'user:rita')).body.grant_expires_at).toBe(
      '2026-11-29T13:00:00Z',
    )
    expect((await decide(short, 'approve', 'user:rita')).status).toBe(200)
    const read = await api('POST', '/read', {
      tuple_key: { object: 'namespace:production', relation: 'deployer' },
    })
    expect(read.body.tuples.map((t: { key: { expires_at: string } }) => t.key.expires_at)).toEqual([
      '2026-11-29T13:00:00Z',
    ])
  })
}

describe('just-in-time access requests (SQLite)', () => {
  suite(() => ({}))
})

describe('the maximum duration', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pemba-jit-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('caps a grant at approval when the maximum was lowered after the request', async () => {
    now = T0
    const databaseUrl = `sqlite:${join(dir, 'jit.db')}`
    const wiring = { clock: () => new Date(now), sweeper: false }
    client = await createTestClient({ databaseUrl }, wiring)
    store = (await setup(client, MODEL, TUPLES)).storeId
    const id = await requestAccess('agent:a', 'deployer', 'namespace:production', 'PT8H')
    await client.close()
    client = await createTestClient({ databaseUrl, jitMaxDuration: 'PT2H' }, wiring)
    try {
      const res = await decide(id, 'approve', 'user:rita')
      expect(res.status, res.text).toBe(200)
      expect(res.body).toMatchObject({ duration: 'PT8H', grant_expires_at: '2026-11-29T11:00:00Z' })
    } finally {
      await client.close()
    }
  })
})

const target = await probePostgres()
describePostgres('just-in-time access requests (PostgreSQL)', target, () => {
  const url = usePostgresSchema(target)
  suite(() => ({ databaseUrl: url() }))
})
