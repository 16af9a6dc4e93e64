/**
 * JSON endpoints take only JSON (issue 22, item 5): every route of the route table that reads a
 * JSON body refuses a body declared as anything else, and a non-empty body declared as nothing,
 * with 415 `unsupported_media_type` in its contract's error format, and changes nothing. The
 * types a browser may send to another origin without a preflight (`text/plain`,
 * `application/x-www-form-urlencoded`, `multipart/form-data`) are the point; `application/json`
 * with parameters and `application/<x>+json` are accepted. The model write keeps its DSL form
 * (`text/plain`). The gateway decision endpoint reads no body and is not concerned.
 *
 * The routes are driven in-process through the real app (an in-memory SQLite database); the
 * same rule from a real browser on another origin is browser-cross-origin.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROUTES } from '../../src/api/route-table.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'

const MODEL = {
  schema_version: '1.1',
  type_definitions: [
    { type: 'user' },
    { type: 'doc', relations: { viewer: { this: {} } }, metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user' }] } } } },
  ],
}
const TUPLE = { user: 'user:anne', relation: 'viewer', object: 'doc:1' }
/** A ULID-shaped id nothing has: the routes must refuse the body before they look it up. */
const NO_SUCH_ID = '01HZZZZZZZZZZZZZZZZZZZZZZZ'

let client: TestClient
let store: string
let model: string

beforeAll(async () => {
  client = await createTestClient()
  store = (await client.request('POST', '/stores', { name: 'content-types' })).body.id
  model = (await client.request('POST', `/stores/${store}/authorization-models`, MODEL)).body.authorization_model_id
})
afterAll(() => client?.close())

/** The route table's body-taking entries (every POST and PUT), with their path filled in. */
const BODY_ROUTES = ROUTES.filter((r) => r.method === 'POST' || r.method === 'PUT').map((r) => `${r.method} ${r.path}`)

function concrete(path: string): string {
  return path.replace(':store', store).replace(':model', model).replace(/:(id|task)/, NO_SUCH_ID).replace(':name', 'idp')
}

async function tuples(): Promise<unknown[]> {
  const res = await client.request('POST', `/stores/${store}/read`, {})
  expect(res.status).toBe(200)
  return res.body.tuples
}

async function storeNames(): Promise<string[]> {
  const res = await client.request('GET', '/stores')
  return res.body.stores.map((s: { name: string }) => s.name)
}

const REFUSED_TYPES = [
  'text/plain',
  'text/plain;charset=UTF-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/jsonx',
  'application/json-patch', // not a +json suffix
  'text/json',
  'application/xml',
]

describe('every JSON endpoint refuses a body not declared JSON', () => {
  it('lists the body-taking routes this test covers', () => {
    // A new POST or PUT route is covered by the loop below without change; the count keeps the
    // filter from silently matching nothing.
    expect(BODY_ROUTES.length).toBeGreaterThan(20)
  })

  for (const key of BODY_ROUTES) {
    it(`${key}: text/plain and a body with no Content-Type are 415 in the route's error format`, async () => {
      const [method, path] = key.split(' ') as [string, string]
      const write = { writes: { tuple_keys: [TUPLE] } }
      for (const type of key.endsWith('/authorization-models') ? REFUSED_TYPES.filter((t) => !t.startsWith('text/plain')) : REFUSED_TYPES) {
        const res = await client.request(method, concrete(path), JSON.stringify(write), { 'content-type': type })
        expect(res.status, `${key} with ${type}: ${res.text}`).toBe(415)
        if (key.includes('/access/v1/requests')) {
          // The access-request profile answers every refusal as problem+json (RFC 9457).
          expect(res.headers.get('content-type')).toContain('application/problem+json')
          expect(res.body).toMatchObject({ status: 415, code: 'unsupported_media_type', type: 'about:blank' })
        } else {
          expect(res.body).toEqual({ code: 'unsupported_media_type', message: expect.stringContaining('application/json') })
        }
      }
      // No Content-Type at all, with a body (a Request built from bytes declares nothing; the
      // length is what a real client sends with it).
      const bytes = new TextEncoder().encode(JSON.stringify(write))
      const bare = await client.pemba.app.request(concrete(path), { method, body: bytes, headers: { 'content-length': String(bytes.length) } })
      expect(bare.status, `${key} without a Content-Type`).toBe(415)
      expect(await bare.text()).toContain('unsupported_media_type')
    })
  }

  it('nothing was written by any refused request', async () => {
    expect(await tuples()).toEqual([])
    expect(await storeNames()).toEqual(['content-types'])
  })

  it('names the declared type only when it is a media type (it is the caller input)', async () => {
    const res = await client.request('POST', '/stores', '{"name":"x"}', { 'content-type': 'text/plain; charset=utf-8' })
    expect(res.body.message).toMatch(/^Content-Type text\/plain is not accepted/)
    const odd = await client.request('POST', '/stores', '{"name":"x"}', { 'content-type': 'psk-0123456789abcdef secret' })
    expect(odd.status).toBe(415)
    expect(odd.body.message).not.toContain('psk-')
    expect(odd.body.message).toMatch(/^this Content-Type is not accepted/)
  })
})

describe('JSON is accepted in all its spellings', () => {
  const ACCEPTED = ['application/json', 'application/json; charset=utf-8', 'Application/JSON;charset="UTF-8"', 'application/merge-patch+json', 'application/vnd.pemba+json; v=1']
  for (const type of ACCEPTED) {
    it(`${type}`, async () => {
      const res = await client.request('POST', `/stores/${store}/check`, JSON.stringify({ tuple_key: TUPLE }), { 'content-type': type })
      expect(res.status, res.text).toBe(200)
      expect(res.body.allowed).toBe(false)
    })
  }

  it('an empty body needs no Content-Type where the route takes an empty body', async () => {
    const res = await client.pemba.app.request(`/stores/${store}/read`, { method: 'POST' })
    expect(res.status).toBe(200)
    // Whitespace only counts as empty, as before.
    const blank = await client.pemba.app.request(`/stores/${store}/read`, { method: 'POST', body: new TextEncoder().encode('  \n') })
    expect(blank.status).toBe(200)
  })

  it('a write declared JSON still writes, and the DSL still goes in as text/plain', async () => {
    const w = await client.request('POST', `/stores/${store}/write`, { writes: { tuple_keys: [TUPLE] } })
    expect(w.status, w.text).toBe(200)
    expect(await tuples()).toHaveLength(1)
    const dsl = await client.request('POST', `/stores/${store}/authorization-models`, 'model\n  schema 1.1\ntype user\n', { 'content-type': 'text/plain; charset=utf-8' })
    expect(dsl.status, dsl.text).toBe(201)
  })

  it('the DSL sent with curl -d (form encoded) is 415 with the hint', async () => {
    const res = await client.request('POST', `/stores/${store}/authorization-models`, 'model schema 1.1 type user', { 'content-type': 'application/x-www-form-urlencoded' })
    expect(res.status).toBe(415)
    expect(res.body.message).toContain("--data-binary @model.fga")
  })

  it('the gateway decision endpoint reads no body: a proxy forwarding any type is not refused for it', async () => {
    const res = await client.request('POST', `/stores/${store}/gateway/authorize`, 'a=1', {
      'content-type': 'application/x-www-form-urlencoded',
      'x-original-method': 'GET',
      'x-original-uri': '/docs/1',
    })
    expect(res.status).not.toBe(415)
  })
})
