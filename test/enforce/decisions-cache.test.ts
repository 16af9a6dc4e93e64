/**
 * cachedDecisions in front of a real remote client (a real Pemba over HTTP; the requests that
 * reach it are counted through the client's fetch): hits, expiry on an injected clock, the
 * HIGHER_CONSISTENCY and explain bypass, batches of hits and misses, errors never stored, and a
 * revoked grant seen once the cached answer expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cachedDecisions, canonicalJson, MAX_KEY_CHARS } from '../../src/enforce/cache.ts'
import { DecisionUnavailable } from '../../src/enforce/decisions.ts'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import { tupleKey } from '../helpers/fixtures.ts'
import { closedPort, q, startDecisionsPemba, type DecisionsPemba } from './decisions-fixture.ts'

let p: DecisionsPemba

beforeAll(async () => {
  p = await startDecisionsPemba()
})
afterAll(async () => {
  await p?.close()
})

/** A cached remote client, the number of HTTP requests it made, and its clock (ms, advanced by hand). */
function cached(options: { ttlMs?: number; maxEntries?: number } = {}) {
  const counted = { requests: 0, now: Date.parse('2026-12-06T12:00:00Z') }
  const inner = remoteDecisions({
    url: p.url,
    storeId: p.storeId,
    fetch: (input, init) => {
      counted.requests++
      return fetch(input, init)
    },
  })
  const client = cachedDecisions(inner, { ...options, clock: () => new Date(counted.now) })
  return { client, inner, counted }
}

describe('cachedDecisions', () => {
  it('answers a repeated question from the cache, with the request id it was decided under', async () => {
    const { client, counted } = cached()
    const first = await client.evaluate(q('user:alice', 'read_customer'))
    const again = await client.evaluate(q('user:alice', 'read_customer'))
    expect(again).toEqual(first)
    expect(counted.requests).toBe(1)
    // Member order does not matter; another question or another onBehalfOf is another entry.
    const reordered = { resource: { id: 'crm/read_customer', type: 'tool' }, action: { name: 'call' }, subject: { id: 'alice', type: 'user' } }
    expect((await client.evaluate(reordered)).requestId).toBe(first.requestId)
    expect(counted.requests).toBe(1)
    await client.evaluate(q('user:alice', 'export_customers'))
    await client.evaluate(q('agent:assistant', 'read_customer'))
    const delegated = await client.evaluate(q('agent:assistant', 'read_customer'), { onBehalfOf: ['user:bob'] })
    expect(delegated.decision).toBe(false)
    expect(counted.requests).toBe(4)
    expect(client.storeId).toBe(p.storeId)
  })

  it('keeps no question whose key is longer than MAX_KEY_CHARS (a large context): the cache stays bounded', async () => {
    const { client, counted } = cached()
    const big = { ...q('user:alice', 'read_customer'), context: { note: 'x'.repeat(MAX_KEY_CHARS) } }
    expect((await client.evaluate(big)).decision).toBe(true)
    expect((await client.evaluate(big)).decision).toBe(true)
    expect(counted.requests).toBe(2)
    const small = { ...q('user:alice', 'read_customer'), context: { note: 'x' } }
    await client.evaluate(small)
    await client.evaluate(small)
    expect(counted.requests).toBe(3)
  })

  it('asks once for identical questions asked at the same time; a failure is shared, never stored', async () => {
    const { client, counted } = cached()
    const answers = await Promise.all(Array.from({ length: 5 }, () => client.evaluate(q('user:bob', 'read_customer'))))
    expect(counted.requests).toBe(1)
    expect(new Set(answers.map((a) => a.requestId)).size).toBe(1)
    const down = cachedDecisions(remoteDecisions({ url: await closedPort(), storeId: p.storeId }), { clock: () => new Date() })
    const failures = await Promise.allSettled([down.evaluate(q('user:bob', 'read_customer')), down.evaluate(q('user:bob', 'read_customer'))])
    expect(failures.map((f) => f.status)).toEqual(['rejected', 'rejected'])
    await expect(down.evaluate(q('user:bob', 'read_customer'))).rejects.toBeInstanceOf(DecisionUnavailable)
  })

  it('stops serving an answer once ttlMs has passed on its clock', async () => {
    const { client, counted } = cached({ ttlMs: 1000 })
    const first = await client.evaluate(q('user:bob', 'export_customers'))
    counted.now += 999
    expect((await client.evaluate(q('user:bob', 'export_customers'))).requestId).toBe(first.requestId)
    counted.now += 1
    const fresh = await client.evaluate(q('user:bob', 'export_customers'))
    expect(fresh.requestId).not.toBe(first.requestId)
    expect(counted.requests).toBe(2)
  })

  it('never serves nor stores a HIGHER_CONSISTENCY or explain question', async () => {
    const { client, counted } = cached()
    const head = { consistency: 'HIGHER_CONSISTENCY' as const }
    await client.evaluate(q('user:alice', 'read_customer'), head)
    await client.evaluate(q('user:alice', 'read_customer'), head)
    expect(counted.requests).toBe(2)
    // Nothing was stored: the next ordinary question asks Pemba, and is then cached.
    await client.evaluate(q('user:alice', 'read_customer'))
    await client.evaluate(q('user:alice', 'read_customer'))
    expect(counted.requests).toBe(3)
    // A cached answer is not served to a HIGHER_CONSISTENCY question either.
    await client.evaluate(q('user:alice', 'read_customer'), head)
    expect(counted.requests).toBe(4)
    // The same rules for context.pemba in the question itself, and for explain.
    const own = q('user:alice', 'read_customer', { context: { pemba: { consistency: 'HIGHER_CONSISTENCY' } } })
    await client.evaluate(own)
    await client.evaluate(own)
    const explained = await client.evaluate(q('user:alice', 'read_customer'), { explain: true })
    expect(explained.context).toBeDefined()
    expect(counted.requests).toBe(7)
    await client.evaluateAll([q('user:alice', 'read_customer')], head)
    expect(counted.requests).toBe(8)
  })

  it('asks only the misses of a batch, answers in order, and never stores an item error', async () => {
    const { client, counted } = cached()
    const a = await client.evaluate(q('user:alice', 'read_customer'))
    const bad = { subject: { type: 'user', id: 'alice' }, action: { name: 'call' }, resource: { type: 'nope', id: 'x' } }
    const batch = [q('user:bob', 'read_customer'), q('user:alice', 'read_customer'), bad, q('user:bob', 'export_customers')]
    const answers = await client.evaluateAll(batch)
    expect(answers.map((x) => x.decision)).toEqual([false, true, false, true])
    expect(answers[1].requestId).toBe(a.requestId)
    expect(answers[0].requestId).not.toBe(a.requestId)
    expect(answers[2].context).toMatchObject({ error: { status: 400 } })
    expect(counted.requests).toBe(2)
    // Again: everything but the failed item comes from the cache; the failed item is asked again.
    const again = await client.evaluateAll(batch)
    expect(again.map((x) => x.decision)).toEqual([false, true, false, true])
    expect(again[0].requestId).toBe(answers[0].requestId)
    expect(counted.requests).toBe(3)
    // All hits: no request at all.
    await client.evaluateAll([batch[0], batch[3]])
    expect(counted.requests).toBe(3)
  })

  it('keeps answering a revoked grant until the entry expires, then denies (the staleness bound)', async () => {
    const { client, counted } = cached({ ttlMs: 1000 })
    await p.http.request('POST', `/stores/${p.storeId}/write`, { writes: { tuple_keys: [tupleKey('tool:crm/read_customer#caller@user:dave')] } })
    expect((await client.evaluate(q('user:dave', 'read_customer'))).decision).toBe(true)
    const res = await p.http.request('POST', `/stores/${p.storeId}/write`, { deletes: { tuple_keys: [tupleKey('tool:crm/read_customer#caller@user:dave')] } })
    expect(res.status, res.text).toBe(200)
    expect((await client.evaluate(q('user:dave', 'read_customer'))).decision).toBe(true)
    counted.now += 1000
    expect((await client.evaluate(q('user:dave', 'read_customer'))).decision).toBe(false)
    expect(counted.requests).toBe(2)
  })

  it('evicts the least recently used entry beyond maxEntries', async () => {
    const { client, counted } = cached({ maxEntries: 2 })
    for (const who of ['user:alice', 'user:bob', 'user:carol']) await client.evaluate(q(who, 'read_customer'))
    await client.evaluate(q('user:carol', 'read_customer'))
    await client.evaluate(q('user:bob', 'read_customer'))
    expect(counted.requests).toBe(3)
    await client.evaluate(q('user:alice', 'read_customer'))
    expect(counted.requests).toBe(4)
  })

  it('is off with ttlMs or maxEntries 0 (the client itself), and refuses negative options', async () => {
    const { inner } = cached()
    expect(cachedDecisions(inner, { ttlMs: 0, clock: () => new Date() })).toBe(inner)
    expect(cachedDecisions(inner, { maxEntries: 0, clock: () => new Date() })).toBe(inner)
    expect(() => cachedDecisions(inner, { ttlMs: -1, clock: () => new Date() })).toThrow(/option ttlMs/)
    expect(() => cachedDecisions(inner, { maxEntries: 1.5, clock: () => new Date() })).toThrow(/option maxEntries/)
  })

  it('keys by canonical JSON: member order never matters, array order does', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}')
    expect(canonicalJson({ a: [{ y: 1, x: 2 }] })).toBe(canonicalJson({ a: [{ x: 2, y: 1 }] }))
  })
})
