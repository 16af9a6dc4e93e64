/**
 * Admission control and the rate limit through the real app: an expensive query beyond the
 * bounds answers 429 `rate_limited` with `Retry-After` in the contract's error format (and
 * changes nothing), a streamed list holds its slot while its query works (not while a client
 * that never reads leaves its answer unread), checks never wait for a slot, and the metrics
 * count what happened.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { servePemba } from '../helpers/http-server.ts'
import { setup } from '../helpers/fixtures.ts'
import { peerKey } from '../../src/api/admission.ts'

const MODEL = `model
  schema 1.1
type user
type folder
  relations
    define viewer: [user]
type document
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent
`

let client: TestClient | undefined
afterEach(async () => {
  await client?.close()
  client = undefined
})

async function withDocuments(overrides: Parameters<typeof createTestClient>[0]) {
  client = await createTestClient(overrides)
  const tuples = ['folder:f#viewer@user:anne']
  for (let i = 0; i < 300; i++) tuples.push(`document:d${i}#parent@folder:f`)
  const { storeId } = await setup(client, MODEL, tuples)
  return { c: client, storeId }
}

const listBody = { type: 'document', relation: 'viewer', user: 'user:anne' }

/** A streamed list whose body is not read yet: it holds its admission slot. */
async function openStream(c: TestClient, storeId: string): Promise<Response> {
  const res = await c.pemba.app.request(`/stores/${storeId}/streamed-list-objects`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(listBody),
  })
  expect(res.status).toBe(200)
  return res
}

async function metric(c: TestClient, name: string): Promise<number> {
  const res = await c.request('GET', '/metrics')
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `))
  expect(line, `${name} in /metrics`).toBeDefined()
  return Number(line!.split(' ')[1])
}

describe('admission control over HTTP', () => {
  it('answers an expensive query beyond the bounds 429 rate_limited with Retry-After; checks keep flowing', async () => {
    const { c, storeId } = await withDocuments({ expensiveMaxConcurrent: 1, expensiveQueueMax: 0 })
    // Another client's query holds the only slot.
    const held = await c.pemba.admission.acquire('another client')
    expect(await metric(c, 'pemba_expensive_queries_in_flight')).toBe(1)

    for (const [method, path, body] of [
      ['POST', `/stores/${storeId}/list-objects`, listBody],
      ['POST', `/stores/${storeId}/list-users`, { object: { type: 'document', id: 'd1' }, relation: 'viewer', user_filters: [{ type: 'user' }] }],
      ['POST', `/stores/${storeId}/expand`, { tuple_key: { object: 'document:d1', relation: 'viewer' } }],
      ['GET', `/stores/${storeId}/reach?user=user:anne`, undefined],
      ['POST', `/stores/${storeId}/access/v1/search/resource`, { subject: { type: 'user', id: 'anne' }, action: { name: 'viewer' }, resource: { type: 'document' } }],
    ] as const) {
      const res = await c.request(method, path, body)
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(429)
      expect(res.headers.get('retry-after')).toBe('1')
      expect(Object.keys(res.body).sort()).toEqual(['code', 'message'])
      expect(res.body.code).toBe('rate_limited')
      expect(res.body.message).toMatch(/too many expensive queries/)
    }
    expect(await metric(c, 'pemba_expensive_queries_refused_total')).toBe(5)

    // A check is never held back by the lists.
    const check = await c.request('POST', `/stores/${storeId}/check`, { tuple_key: { object: 'document:d7', relation: 'viewer', user: 'user:anne' } })
    expect(check.status).toBe(200)
    expect(check.body.allowed).toBe(true)

    // Once the slot is given back, the next list runs.
    held.release()
    expect(await metric(c, 'pemba_expensive_queries_in_flight')).toBe(0)
    const list = await c.request('POST', `/stores/${storeId}/list-objects`, listBody)
    expect(list.status).toBe(200)
    expect(list.body.objects).toHaveLength(300)
  })

  it('a streamed list whose body is never read gives its slot back once the list is done', async () => {
    const { c, storeId } = await withDocuments({ expensiveMaxConcurrent: 1, expensiveQueueMax: 0 })
    const stream = await openStream(c, storeId)
    // Nobody reads the body; the list's work ends anyway, and with it the slot.
    let inFlight = await metric(c, 'pemba_expensive_queries_in_flight')
    for (let i = 0; i < 100 && inFlight > 0; i++) {
      await new Promise((r) => setTimeout(r, 50))
      inFlight = await metric(c, 'pemba_expensive_queries_in_flight')
    }
    expect(inFlight).toBe(0)
    const list = await c.request('POST', `/stores/${storeId}/list-objects`, listBody)
    expect(list.status).toBe(200)
    // The unread answer is whole when it is read at last.
    expect((await stream.text()).trim().split('\n')).toHaveLength(300)
  })

  it('a released slot goes to a queued waiter', async () => {
    const { c, storeId } = await withDocuments({ expensiveMaxConcurrent: 1, expensiveQueueMax: 4, expensiveQueueWaitMs: 10_000 })
    const held = await c.pemba.admission.acquire('another client')
    const waiting = c.request('POST', `/stores/${storeId}/list-objects`, listBody)
    await new Promise((r) => setTimeout(r, 50))
    expect(await metric(c, 'pemba_expensive_queries_queued')).toBe(1)
    held.release()
    const res = await waiting
    expect(res.status).toBe(200)
    expect(res.body.objects).toHaveLength(300)
    expect(await metric(c, 'pemba_expensive_queries_in_flight')).toBe(0)
    expect(await metric(c, 'pemba_expensive_queries_queued')).toBe(0)
  })

  it('refuses a query that waited PEMBA_EXPENSIVE_QUEUE_WAIT_MS for a slot', async () => {
    const { c, storeId } = await withDocuments({ expensiveMaxConcurrent: 1, expensiveQueueMax: 4, expensiveQueueWaitMs: 100 })
    const held = await c.pemba.admission.acquire('another client')
    const res = await c.request('POST', `/stores/${storeId}/list-objects`, listBody)
    expect(res.status).toBe(429)
    expect(res.headers.get('retry-after')).toBe('1')
    expect(res.body).toEqual({ code: 'rate_limited', message: expect.stringContaining('waited 100 ms') })
    held.release()
  })
})

describe('a client that goes away', () => {
  it('mid-stream: its slot is freed, the server carries on, and nothing is logged as an internal error', async () => {
    const served = await servePemba({ expensiveMaxConcurrent: 1, expensiveQueueMax: 0 })
    try {
      const post = (path: string, body: unknown) =>
        fetch(`${served.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      const storeId = ((await (await post('/stores', { name: 'gone' })).json()) as { id: string }).id
      const dsl = { schema_version: '1.1', type_definitions: [
        { type: 'user' },
        { type: 'folder', relations: { viewer: { this: {} } }, metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user' }] } } } },
        { type: 'document', relations: { parent: { this: {} }, viewer: { tupleToUserset: { tupleset: { relation: 'parent' }, computedUserset: { relation: 'viewer' } } } },
          metadata: { relations: { parent: { directly_related_user_types: [{ type: 'folder' }] } } } },
      ] }
      expect((await post(`/stores/${storeId}/authorization-models`, dsl)).status).toBe(201)
      const keys = [{ user: 'user:anne', relation: 'viewer', object: 'folder:f' }]
      for (let d = 0; d < 5000; d++) keys.push({ user: 'folder:f', relation: 'parent', object: `document:d${d}` })
      for (let i = 0; i < keys.length; i += 100) expect((await post(`/stores/${storeId}/write`, { writes: { tuple_keys: keys.slice(i, i + 100) } })).status).toBe(200)

      const gone = new AbortController()
      const res = await fetch(`${served.url}/stores/${storeId}/streamed-list-objects`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(listBody),
        signal: gone.signal,
      })
      expect(res.status).toBe(200)
      const reader = res.body!.getReader()
      await reader.read()
      gone.abort()
      // The slot comes back: a list runs again (the bound is one at a time, no queue).
      let status = 0
      for (let i = 0; i < 100 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50))
        const again = await post(`/stores/${storeId}/list-objects`, listBody)
        status = again.status
        await again.arrayBuffer()
      }
      expect(status).toBe(200)
      expect((await fetch(`${served.url}/healthz`)).status).toBe(200)
      expect(served.lines.filter((l) => l.event === 'internal_error')).toEqual([])
    } finally {
      await served.close()
    }
  }, 60_000)
})

describe('rate limit over HTTP', () => {
  it('refuses a client past its bucket with 429 and Retry-After, on every route but the probes', async () => {
    client = await createTestClient({ rateLimitPerClient: 1, rateLimitBurst: 2 })
    const c = client
    const created = await c.request('POST', '/stores', { name: 'limited' })
    expect(created.status).toBe(201)
    // A second refills the token the creation took.
    await new Promise((r) => setTimeout(r, 1100))
    const check = () => c.request('GET', `/stores/${created.body.id}`)
    expect((await check()).status).toBe(200)
    expect((await check()).status).toBe(200)
    const refused = await check()
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(refused.body).toEqual({ code: 'rate_limited', message: expect.stringContaining('PEMBA_RATE_LIMIT_PER_CLIENT') })
    // Probes and scrapes are never limited.
    for (let i = 0; i < 5; i++) {
      expect((await c.request('GET', '/healthz')).status).toBe(200)
      expect((await c.request('GET', '/readyz')).status).toBe(200)
    }
    // The gateway decision says it is a refusal (not a denial) in its header.
    const gateway = await c.request('GET', `/stores/${created.body.id}/gateway/authorize/x`)
    expect(gateway.status).toBe(429)
    expect(gateway.headers.get('x-pemba-refusal')).toBe('rate_limited')
    expect(gateway.headers.get('retry-after')).not.toBeNull()
    // On the access-request routes the refusal is problem+json, with Retry-After too.
    const arap = await c.request('GET', `/stores/${created.body.id}/access/v1/requests`)
    expect(arap.status).toBe(429)
    expect(arap.headers.get('retry-after')).not.toBeNull()
    expect(arap.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(await metric(c, 'pemba_rate_limited_total')).toBeGreaterThanOrEqual(1)
  })

  it('charges failed authentication to the peer, and refuses it before verifying once over the limit', async () => {
    client = await createTestClient({
      authMode: 'preshared',
      authPresharedKeys: 'root=right-key-0123456789abcdef',
      authAdminClients: 'root',
      rateLimitPerClient: 1,
      rateLimitBurst: 2,
    })
    const c = client
    const wrong = { authorization: 'Bearer wrong-key-0123456789abcdef' }
    expect((await c.request('GET', '/stores', undefined, wrong)).status).toBe(401)
    expect((await c.request('GET', '/stores', undefined, wrong)).status).toBe(401)
    const refused = await c.request('GET', '/stores', undefined, wrong)
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(refused.body).toEqual({ code: 'rate_limited', message: expect.stringContaining('failed authentication') })
    // Probes are never limited.
    expect((await c.request('GET', '/healthz')).status).toBe(200)
  })
})

describe('who a request counts against', () => {
  it('keys an IPv6 peer by its /64 and an IPv4-mapped peer by its IPv4 address', () => {
    expect(peerKey('192.0.2.7')).toBe('192.0.2.7')
    expect(peerKey('::ffff:192.0.2.7')).toBe('192.0.2.7')
    // Two addresses of one /64 are one client; another /64 is another.
    expect(peerKey('2001:db8:0:1::1')).toBe('2001:db8:0:1::/64')
    expect(peerKey('2001:0db8:0000:0001:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:0:1::/64')
    expect(peerKey('2001:db8:0:2::1')).toBe('2001:db8:0:2::/64')
    expect(peerKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
  })
})
