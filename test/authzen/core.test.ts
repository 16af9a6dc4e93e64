/**
 * AuthZEN 1.0 Access Evaluation over real HTTP (reference §2.3, §2.7, §7.1; checklist §8).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyOf } from '../helpers/auth.ts'
import { createStore, writeModel } from '../helpers/fixtures.ts'
import { coreStore, ev, fetchJson, http10Request, serveHttp, type CoreStore, type HttpClient } from './core-fixture.ts'

let t: HttpClient
let s: CoreStore
const evaluation = () => `/stores/${s.storeId}/access/v1/evaluation`

beforeAll(async () => {
  t = await serveHttp()
  s = await coreStore(t, true)
})
afterAll(() => t.close())

describe('access evaluation', () => {
  it('§8.1 a permit is 200 {decision:true}, a deny 200 {decision:false}, both application/json', async () => {
    const allowed = await t.request('POST', evaluation(), ev('ben', 'can_read', 7))
    expect(allowed.status).toBe(200)
    expect(allowed.headers.get('content-type')).toMatch(/^application\/json/)
    expect(allowed.text).toBe('{"decision":true}')
    const denied = await t.request('POST', evaluation(), ev('maria', 'can_read', 7))
    expect(denied.status).toBe(200)
    expect(denied.text).toBe('{"decision":false}')
  })

  it('§8.2 each missing required member is a 400 naming it', async () => {
    const full = ev('maria', 'viewer', 0) as Record<string, Record<string, unknown>>
    const cases: [string, unknown][] = [
      ['subject', { action: full.action, resource: full.resource }],
      ['action', { subject: full.subject, resource: full.resource }],
      ['resource', { subject: full.subject, action: full.action }],
      ['subject.type', { ...full, subject: { id: 'maria' } }],
      ['subject.id', { ...full, subject: { type: 'user' } }],
      ['resource.type', { ...full, resource: { id: '0' } }],
      ['resource.id', { ...full, resource: { type: 'doc' } }],
      ['action.name', { ...full, action: {} }],
    ]
    for (const [field, body] of cases) {
      const r = await t.request('POST', evaluation(), body)
      expect(r.status, field).toBe(400)
      expect(r.body.code, field).toBe('validation_error')
      expect(r.body.message, field).toContain(`EvaluationRequest.${field}`)
    }
    // Present but of the wrong JSON type, or empty: also 400.
    expect((await t.request('POST', evaluation(), { ...full, subject: { type: 'user', id: 7 } })).status).toBe(400)
    expect((await t.request('POST', evaluation(), { ...full, action: { name: '' } })).status).toBe(400)
    expect((await t.request('POST', evaluation(), { ...full, context: 'now' })).status).toBe(400)
  })

  it('§8.3 unknown members are ignored, also inside entities; member order does not matter', async () => {
    const r = await t.request('POST', evaluation(), {
      resource: { id: '0', type: 'doc', rank: 3 },
      extra: { anything: true },
      action: { name: 'viewer', verb: 'GET' },
      subject: { id: 'maria', type: 'user', email: 'm@example.com' },
    })
    expect(r.status, r.text).toBe(200)
    expect(r.body).toEqual({ decision: true })
  })

  it('§8.4 a body that is not a JSON object is 400; the answer is always an object', async () => {
    for (const body of ['[1,2]', '"evaluate"', '42', 'null', '{"subject":']) {
      const r = await t.request('POST', evaluation(), body, { 'content-type': 'application/json' })
      expect(r.status, body).toBe(400)
      expect(r.body, body).toMatchObject({ code: 'validation_error' })
      expect(typeof r.body.message).toBe('string')
    }
    expect((await t.request('POST', evaluation(), '[1,2]', { 'content-type': 'application/json' })).body.message).toContain('JSON object')
  })

  it('a body not declared JSON is 415 {code, message}: another Content-Type, or none', async () => {
    const body = JSON.stringify(ev('maria', 'viewer', 0))
    const plain = await fetchJson(t.url + evaluation(), 'POST', body, { 'content-type': 'text/plain' })
    expect(plain.status).toBe(415)
    expect(plain.body).toMatchObject({ code: 'unsupported_media_type' })
    expect(plain.body.message).toContain('text/plain')
    const none = await fetch(t.url + evaluation(), { method: 'POST', body: new Blob([body]) })
    expect(none.status).toBe(415)
    // Parameters and +json types are JSON.
    const charset = await fetchJson(t.url + evaluation(), 'POST', body, { 'content-type': 'application/json; charset=utf-8' })
    expect(charset.status).toBe(200)
  })

  it('§8.18 X-Request-ID is echoed on 200, 400 and 415', async () => {
    const id = (n: string) => ({ 'x-request-id': `authzen-${n}` })
    const ok = await t.request('POST', evaluation(), ev('maria', 'viewer', 0), id('ok'))
    expect(ok.status).toBe(200)
    expect(ok.headers.get('x-request-id')).toBe('authzen-ok')
    const bad = await t.request('POST', evaluation(), { subject: { type: 'user' } }, id('bad'))
    expect(bad.status).toBe(400)
    expect(bad.headers.get('x-request-id')).toBe('authzen-bad')
    const media = await fetchJson(t.url + evaluation(), 'POST', '{}', { 'content-type': 'text/plain', ...id('media') })
    expect(media.status).toBe(415)
    expect(media.headers.get('x-request-id')).toBe('authzen-media')
  })

  it('a plain evaluation and batch need no Host: an HTTP/1.0 request without one is decided as /check decides it', async () => {
    const one = await http10Request(t.url, evaluation(), ev('maria', 'viewer', 0))
    expect(one).toEqual({ status: 200, body: { decision: true } })
    const denied = await http10Request(t.url, evaluation(), ev('maria', 'viewer', 4))
    expect(denied).toEqual({ status: 200, body: { decision: false } })
    const batch = await http10Request(t.url, `/stores/${s.storeId}/access/v1/evaluations`, {
      subject: { type: 'user', id: 'maria' },
      action: { name: 'viewer' },
      evaluations: [{ resource: { type: 'doc', id: '0' } }, { resource: { type: 'doc', id: '4' } }],
    })
    expect(batch).toEqual({ status: 200, body: { evaluations: [{ decision: true }, { decision: false }] } })
    const check = await http10Request(t.url, `/stores/${s.storeId}/check`, { tuple_key: { user: 'user:maria', relation: 'viewer', object: 'doc:0' } })
    expect(check.status).toBe(200)
  })

  it('a requestable denial without a usable Host is still decided: plain, without the access-request link it cannot build', async () => {
    const storeId = await createStore(t, 'authzen-no-host')
    await writeModel(t, storeId, 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define approver: [user]\n    define viewer: [user]\n')
    const asked = { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '1' } }
    const withHost = await t.request('POST', `/stores/${storeId}/access/v1/evaluation`, asked)
    expect(withHost.status).toBe(200)
    expect(withHost.body.context.access_request.endpoint).toBe(`${t.url}/stores/${storeId}/access/v1/requests`)
    const without = await http10Request(t.url, `/stores/${storeId}/access/v1/evaluation`, asked)
    expect(without).toEqual({ status: 200, body: { decision: false } })
  })

  it('the mapping refuses ids and types Pemba cannot check, and unknown types or relations, with a 400', async () => {
    const badId = await t.request('POST', evaluation(), { ...ev('maria', 'viewer', 0), subject: { type: 'user', id: 'a#b' } })
    expect(badId.status).toBe(400)
    expect(badId.body.message).toContain('subject.id')
    const unknownType = await t.request('POST', evaluation(), { ...ev('maria', 'viewer', 0), resource: { type: 'folder', id: '1' } })
    expect(unknownType.status).toBe(400)
    expect(unknownType.body.message).toContain('folder')
    const unknownRelation = await t.request('POST', evaluation(), ev('maria', 'can_fly', 0))
    expect(unknownRelation.status).toBe(400)
    expect(unknownRelation.body.message).toContain('can_fly')
  })

  it('§8.51 conditions see subject_*, resource_* and action_* properties, and the request context wins', async () => {
    const base = {
      subject: { type: 'user', id: 'ana', properties: { team: 'ops' } },
      action: { name: 'can_audit', properties: { mode: 'read' } },
      resource: { type: 'doc', id: '1', properties: { team: 'ops' } },
    }
    expect((await t.request('POST', evaluation(), base)).body).toEqual({ decision: true })
    // Each prefix reaches its own parameter.
    expect((await t.request('POST', evaluation(), { ...base, resource: { ...base.resource, properties: { team: 'dev' } } })).body).toEqual({ decision: false })
    expect((await t.request('POST', evaluation(), { ...base, action: { name: 'can_audit', properties: { mode: 'write' } } })).body).toEqual({
      decision: false,
    })
    // The context's member beats the property of the same name…
    expect((await t.request('POST', evaluation(), { ...base, context: { subject_team: 'dev' } })).body).toEqual({ decision: false })
    // …and can supply what the properties lack.
    const bare = { ...base, subject: { type: 'user', id: 'ana' } }
    expect((await t.request('POST', evaluation(), { ...bare, context: { subject_team: 'ops' } })).body).toEqual({ decision: true })
  })

  it('§8.50 the Openfga-Authorization-Model-Id header pins a model; absent or not a model id: the latest', async () => {
    // The latest model: can_read = owner; the first: can_read = viewer (maria views doc:0).
    expect((await t.request('POST', evaluation(), ev('maria', 'can_read', 0))).body).toEqual({ decision: false })
    const pinned = await t.request('POST', evaluation(), ev('maria', 'can_read', 0), { 'openfga-authorization-model-id': s.firstModel })
    expect(pinned.body).toEqual({ decision: true })
    const latest = await t.request('POST', evaluation(), ev('maria', 'can_read', 0), { 'openfga-authorization-model-id': s.latestModel })
    expect(latest.body).toEqual({ decision: false })
    // As OpenFGA: a header that is no model id is ignored.
    const invalid = await t.request('POST', evaluation(), ev('maria', 'can_read', 0), { 'openfga-authorization-model-id': 'not-a-model' })
    expect(invalid.status).toBe(200)
    expect(invalid.body).toEqual({ decision: false })
    // A model id that names no model of the store: 400, as a check naming it.
    const unknown = await t.request('POST', evaluation(), ev('maria', 'can_read', 0), { 'openfga-authorization-model-id': '01ARZ3NDEKTSV4RRFFQ69G5FAV' })
    expect(unknown.status).toBe(400)
    expect(unknown.body.code).toBe('authorization_model_not_found')
  })

  it('an unknown store answers as /check does for it, a malformed store id is 400', async () => {
    const missing = await t.request('POST', '/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV/access/v1/evaluation', ev('maria', 'viewer', 0))
    const check = await t.request('POST', '/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV/check', { tuple_key: { user: 'user:maria', relation: 'viewer', object: 'doc:0' } })
    expect(check.status).toBeGreaterThanOrEqual(400)
    expect(missing.status).toBe(check.status)
    expect(missing.body).toEqual(check.body)
    const malformed = await t.request('POST', '/stores/nope/access/v1/evaluation', ev('maria', 'viewer', 0))
    expect(malformed.status).toBe(400)
  })
})

describe('§8.20 caps', () => {
  it('a body over PEMBA_BODY_LIMIT_BYTES or nested too deep is 400 on the AuthZEN API (413 stays on OpenFGA routes)', async () => {
    const small = await serveHttp({ bodyLimitBytes: 4096 })
    try {
      const store = (await coreStore(small)).storeId
      const big = { ...ev('maria', 'viewer', 0), context: { pad: 'x'.repeat(5000) } }
      for (const api of ['evaluation', 'evaluations']) {
        const r = await small.request('POST', `/stores/${store}/access/v1/${api}`, big)
        expect(r.status, api).toBe(400)
        expect(r.body.message).toContain('4096 bytes')
      }
      // ARAP answers its refusals as problem+json, this one too.
      const arap = await small.request('POST', `/stores/${store}/access/v1/requests`, big)
      expect(arap.status).toBe(400)
      expect(arap.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(arap.body).toMatchObject({ status: 400, code: 'invalid_request', type: 'urn:openid:authzen:access-request:error:invalid_request' })
      const check = await small.request('POST', `/stores/${store}/check`, { tuple_key: { user: 'user:maria', relation: 'viewer', object: 'doc:0' }, context: { pad: 'x'.repeat(5000) } })
      expect(check.status).toBe(413)
      let deep: unknown = 1
      for (let i = 0; i < 200; i++) deep = { d: deep }
      const nested = await small.request('POST', `/stores/${store}/access/v1/evaluation`, { ...ev('maria', 'viewer', 0), context: deep })
      expect(nested.status).toBe(400)
      expect(nested.body.message).toContain('nested deeper')
    } finally {
      await small.close()
    }
  })
})

describe('authentication and per-store permissions (preshared keys)', () => {
  let a: HttpClient
  let store: string
  const bearer = (name: string) => ({ authorization: `Bearer ${keyOf(name)}` })

  beforeAll(async () => {
    a = await serveHttp(
      {
        authMode: 'preshared',
        authPresharedKeys: ['root', 'pep', 'other'].map((n) => `${n}=${keyOf(n)}`).join(','),
        authAdminClients: 'root',
      },
      bearer('root'),
    )
    store = (await coreStore(a)).storeId
    const g = await a.request('POST', '/system/grants', { client: 'client:pep', role: 'checker', store })
    expect(g.status, g.text).toBe(200)
  })
  afterAll(() => a.close())

  for (const api of ['evaluation', 'evaluations'] as const) {
    it(`§8.19 ${api}: no or a bad token → 401 with WWW-Authenticate; no rights on the store → 403; a checker → 200`, async () => {
      const path = `/stores/${store}/access/v1/${api}`
      const body = ev('maria', 'viewer', 0)
      const none = await fetchJson(a.url + path, 'POST', body, { 'x-request-id': 'no-token' })
      expect(none.status).toBe(401)
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="pemba"')
      expect(none.headers.get('x-request-id')).toBe('no-token') // §8.18 on a 401 too
      expect(none.body).toMatchObject({ code: 'bearer_token_missing' })
      const bad = await fetchJson(a.url + path, 'POST', body, { authorization: 'Bearer not-a-key-of-anyone-0123456789' })
      expect(bad.status).toBe(401)
      expect(bad.headers.get('www-authenticate')).toBe('Bearer realm="pemba"')
      const other = await fetchJson(a.url + path, 'POST', body, bearer('other'))
      expect(other.status).toBe(403)
      expect(other.body).toMatchObject({ code: 'forbidden' })
      expect(other.headers.get('www-authenticate')).toBeNull()
      const pep = await fetchJson(a.url + path, 'POST', body, bearer('pep'))
      expect(pep.status, pep.text).toBe(200)
      expect(pep.body.decision ?? pep.body.evaluations[0].decision).toBe(true)
    })
  }

  it('§8.18 X-Request-ID comes back exactly as sent, whatever its format, on 200, 400, 401 and 415', async () => {
    const ids = ['{3F2504E0-4F89-11D3-9A0C-0305E82C3301}', 'req/2026/1', 'x'.repeat(200), 'trace id 7']
    const path = a.url + `/stores/${store}/access/v1/evaluation`
    for (const id of ids) {
      const h = { 'x-request-id': id }
      const answers = [
        [200, await fetchJson(path, 'POST', ev('maria', 'viewer', 0), { ...bearer('pep'), ...h })],
        [400, await fetchJson(path, 'POST', { subject: { type: 'user' } }, { ...bearer('pep'), ...h })],
        [401, await fetchJson(path, 'POST', ev('maria', 'viewer', 0), h)],
        [415, await fetchJson(path, 'POST', JSON.stringify(ev('maria', 'viewer', 0)), { ...bearer('pep'), ...h, 'content-type': 'text/plain' })],
      ] as const
      for (const [status, r] of answers) {
        expect(r.status, `${id}: ${r.text}`).toBe(status)
        expect(r.headers.get('x-request-id'), `${status} ${id}`).toBe(id)
      }
    }
  })

  it("OpenFGA's routes keep their 401 forbidden, now with the challenge", async () => {
    const r = await fetchJson(a.url + `/stores/${store}/check`, 'POST', { tuple_key: { user: 'user:maria', relation: 'viewer', object: 'doc:0' } }, bearer('other'))
    expect(r.status).toBe(401)
    expect(r.body.code).toBe('forbidden')
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="pemba"')
  })
})
