/**
 * X-Request-Id over real HTTP: an incoming id of 1–128 characters from [A-Za-z0-9._:-] is kept
 * (echoed, logged, recorded with decisions); anything else is replaced by a new UUID, on every
 * kind of answer (200, 400, 404).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyOf } from '../helpers/auth.ts'
import { accessLineFor, accessLines, servePemba, type ServedPemba } from '../helpers/http-server.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

let s: ServedPemba

beforeAll(async () => {
  s = await servePemba()
})
afterAll(() => s.close())

async function requestWithId(id: string, path = '/healthz', method = 'GET'): Promise<{ status: number; echoed: string }> {
  const res = await fetch(s.url + path, { method, headers: { 'x-request-id': id } })
  await res.text()
  return { status: res.status, echoed: res.headers.get('x-request-id')! }
}

describe('X-Request-Id', () => {
  it('a bounded id of the safe characters is kept, echoed and logged', async () => {
    for (const id of ['abc', 'req-42', 'Trace.ID:7_x-Y', 'a'.repeat(128), '01J6Z9:frontend.7']) {
      const r = await requestWithId(id)
      expect(r.status).toBe(200)
      expect(r.echoed).toBe(id)
      expect((await accessLineFor(s, id)).request_id).toBe(id)
    }
  })

  it('kept on error answers too (400, 404)', async () => {
    expect(await requestWithId('on-400', '/stores/short', 'GET')).toEqual({ status: 400, echoed: 'on-400' })
    expect(await requestWithId('on-404', '/nowhere')).toEqual({ status: 404, echoed: 'on-404' })
  })

  it('another printable id of at most 256 characters: echoed exactly as sent, logged under a new UUID', async () => {
    for (const id of ['a'.repeat(129), 'a'.repeat(256), 'has space', 'semi;colon', 'x<script>', 'quote"d', 'slash/ed', '{3F2504E0-4F89-11D3-9A0C-0305E82C3301}']) {
      const before = accessLines(s).length
      const r = await requestWithId(id)
      expect(r).toEqual({ status: 200, echoed: id })
      for (let i = 0; i < 100 && accessLines(s).length === before; i++) await new Promise((w) => setTimeout(w, 10))
      const logged = accessLines(s).slice(before)
      expect(logged.length, JSON.stringify(id)).toBe(1)
      expect(logged[0].request_id).toMatch(UUID)
    }
  })

  it('too long, empty, or with control or non-ASCII characters: replaced by a new UUID', async () => {
    const refused = ['a'.repeat(257), '', ' ', 'tab\there', 'é']
    const seen = new Set<string>()
    for (const id of refused) {
      const res = await fetch(`${s.url}/healthz`, { headers: id === '' ? { 'x-request-id': '' } : { 'x-request-id': id } }).catch(
        // fetch itself refuses a few header values (e.g. non-Latin-1); those never reach a server.
        () => undefined,
      )
      if (!res) continue
      await res.text()
      const echoed = res.headers.get('x-request-id')!
      expect(echoed, JSON.stringify(id)).toMatch(UUID)
      expect(echoed).not.toBe(id)
      seen.add(echoed)
      expect((await accessLineFor(s, echoed)).request_id).toBe(echoed)
    }
    expect(seen.size).toBeGreaterThanOrEqual(refused.length - 1)
  })

  it('without one, each request gets its own UUID', async () => {
    const a = await fetch(`${s.url}/healthz`)
    const b = await fetch(`${s.url}/healthz`)
    expect(a.headers.get('x-request-id')).toMatch(UUID)
    expect(b.headers.get('x-request-id')).toMatch(UUID)
    expect(a.headers.get('x-request-id')).not.toBe(b.headers.get('x-request-id'))
  })

  it('a configured key or a token sent as the id is neither echoed (proxies log response headers), logged nor stored with decisions', async () => {
    const key = keyOf('root')
    const keyed = await servePemba({ authMode: 'preshared', authPresharedKeys: `root=${key}` }, {}, [key])
    try {
      for (const id of [key, 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl']) {
        const before = accessLines(keyed).length
        const res = await fetch(`${keyed.url}/healthz`, { headers: { 'x-request-id': id } })
        await res.text()
        expect(res.headers.get('x-request-id')).toMatch(UUID)
        for (let i = 0; i < 100 && accessLines(keyed).length === before; i++) await new Promise((w) => setTimeout(w, 10))
        const logged = accessLines(keyed).slice(before)
        expect(logged.length).toBe(1)
        expect(logged[0].request_id).toMatch(UUID)
        expect(JSON.stringify(keyed.lines)).not.toContain(id)
      }
      // An ordinary id is still kept on that server.
      const res = await fetch(`${keyed.url}/healthz`, { headers: { 'x-request-id': 'req-7' } })
      await res.text()
      expect(res.headers.get('x-request-id')).toBe('req-7')
    } finally {
      await keyed.close()
    }
  })
})
