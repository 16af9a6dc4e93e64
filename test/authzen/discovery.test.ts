/**
 * AuthZEN metadata discovery over real HTTP (reference §2.6, §7.2 item 6; checklist §8.21,
 * §8.22, §8.19, §8.50): the document, its absolute URLs (from the request's Host, PEMBA_PUBLIC_URL,
 * or X-Forwarded-* when PEMBA_TRUST_PROXY trusts the peer), that every URL it advertises is
 * served, and who may read it.
 */
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyOf } from '../helpers/auth.ts'
import { coreStore, ev, fetchJson, rawRequest, serveHttp, type HttpClient } from './core-fixture.ts'

/** The members whose values are URLs. */
const URL_MEMBERS = [
  'policy_decision_point',
  'access_evaluation_endpoint',
  'access_evaluations_endpoint',
  'search_subject_endpoint',
  'search_resource_endpoint',
  'search_action_endpoint',
  'access_request_endpoint',
  'jwks_uri',
]

/** isEmpty: a member a discovery document must leave out rather than send empty. */
function isEmpty(v: unknown): boolean {
  return v === null || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0)
}

/** Valid bodies for each POST endpoint of the document, against the core fixture's data. */
function validBodies(): Record<string, unknown> {
  return {
    access_evaluation_endpoint: ev('maria', 'viewer', 0),
    access_evaluations_endpoint: { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, evaluations: [{ resource: { type: 'doc', id: '0' } }] },
    search_subject_endpoint: { subject: { type: 'user' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '0' } },
    search_resource_endpoint: { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, resource: { type: 'doc' } },
    search_action_endpoint: { subject: { type: 'user', id: 'maria' }, resource: { type: 'doc', id: '0' } },
  }
}

describe('the discovery document (public)', () => {
  let t: HttpClient
  let store: string

  beforeAll(async () => {
    // With authentication off, the Host check refuses foreign names unless listed.
    t = await serveHttp({ authzenDiscovery: 'public', allowedHosts: 'pdp.example.test' })
    store = (await coreStore(t)).storeId
  })
  afterAll(() => t.close())

  it('§8.21 §8.22 has both REQUIRED members, absolute URLs under the PDP identifier, nothing empty, and is cacheable', async () => {
    for (const wellKnown of [`/.well-known/authzen-configuration/stores/${store}`, `/.well-known/authzen-configuration/${store}`]) {
      const r = await t.request('GET', wellKnown)
      expect(r.status, r.text).toBe(200)
      expect(r.headers.get('content-type')).toMatch(/^application\/json/)
      expect(r.headers.get('cache-control')).toBe('public, max-age=300')
      const doc = r.body as Record<string, unknown>
      // The identifier the RFC 8615 location derives from: the host, then the path after the well-known part.
      expect(doc.policy_decision_point).toBe(`${t.url}/stores/${store}`)
      expect(doc.access_evaluation_endpoint).toBe(`${t.url}/stores/${store}/access/v1/evaluation`)
      expect(doc.access_evaluations_endpoint).toBe(`${t.url}/stores/${store}/access/v1/evaluations`)
      for (const m of URL_MEMBERS) expect(String(doc[m]), m).toMatch(new RegExp(`^${t.url}/stores/${store}(/access/v1/[a-z/]+)?$`))
      for (const [k, v] of Object.entries(doc)) expect(isEmpty(v), k).toBe(false)
      expect(doc.capabilities).toContain('urn:openid:authzen:capability:access-request')
      expect(Array.isArray(doc.supported_obligations)).toBe(true)
    }
  })

  it('§8.21 every advertised endpoint is served: each POST with a valid body is 200, the JWKS a key set', async () => {
    const doc = (await t.request('GET', `/.well-known/authzen-configuration/stores/${store}`)).body as Record<string, string>
    for (const [member, body] of Object.entries(validBodies())) {
      const r = await fetchJson(doc[member], 'POST', body)
      expect(r.status, `${member}: ${r.text}`).toBe(200)
    }
    const jwks = await fetchJson(doc.jwks_uri, 'GET')
    expect(jwks.status, jwks.text).toBe(200)
    expect(Array.isArray(jwks.body.keys)).toBe(true)
    // The access-request endpoint is served: a submission without a denial is the profile's 400, not a 404.
    const request = await fetchJson(doc.access_request_endpoint, 'POST', { subject: { type: 'user', id: 'maria' } })
    expect(request.status).toBe(400)
    expect(request.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  })

  it('§8.23 signed_metadata verifies with the jwks_uri keys, names the PDP as iss, and says what the document says', async () => {
    const doc = (await t.request('GET', `/.well-known/authzen-configuration/stores/${store}`)).body as Record<string, unknown>
    const jwks = (await fetchJson(String(doc.jwks_uri), 'GET')).body
    const { payload, protectedHeader } = await jwtVerify(String(doc.signed_metadata), createLocalJWKSet(jwks), { issuer: String(doc.policy_decision_point) })
    expect(protectedHeader.typ).toBe('authzen-metadata+jwt')
    const { signed_metadata: _signed, ...unsigned } = doc
    expect(payload).toEqual({ ...unsigned, iss: doc.policy_decision_point })
    expect(payload).not.toHaveProperty('signed_metadata')
    // A tampered document does not verify.
    const [h, , sig] = String(doc.signed_metadata).split('.')
    const forged = Buffer.from(JSON.stringify({ ...payload, access_evaluation_endpoint: 'https://evil.example/e' })).toString('base64url')
    await expect(jwtVerify(`${h}.${forged}.${sig}`, createLocalJWKSet(jwks))).rejects.toThrow()
  })

  it('an unknown store is 404; a malformed id 400', async () => {
    const missing = await t.request('GET', '/.well-known/authzen-configuration/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV')
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('store_id_not_found')
    expect((await t.request('GET', '/.well-known/authzen-configuration/nope')).status).toBe(400)
  })

  it("the URLs follow the request's Host; X-Forwarded-* are ignored while PEMBA_TRUST_PROXY is off", async () => {
    const port = new URL(t.url).port
    const r = await rawRequest(`${t.url}/.well-known/authzen-configuration/stores/${store}`, 'GET', {
      host: `pdp.example.test:${port}`,
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
    })
    expect(r.status).toBe(200)
    expect(r.body.policy_decision_point).toBe(`http://pdp.example.test:${port}/stores/${store}`)
    expect(r.headers.vary).toContain('Host')
    // A Host that cannot be part of a URL builds nothing.
    const bad = await rawRequest(`${t.url}/.well-known/authzen-configuration/stores/${store}`, 'GET', { host: 'a b' })
    expect(bad.status).toBe(400)
  })
})

describe('PEMBA_PUBLIC_URL and PEMBA_TRUST_PROXY', () => {
  const servers: HttpClient[] = []
  afterAll(async () => {
    for (const s of servers) await s.close()
  })
  const start = async (overrides: Parameters<typeof serveHttp>[0]) => {
    const s = await serveHttp({ authzenDiscovery: 'public', allowedHosts: 'other.example,internal', ...overrides })
    servers.push(s)
    return { s, store: (await coreStore(s)).storeId }
  }
  const pdpOf = async (s: HttpClient, store: string, headers: Record<string, string>) =>
    (await rawRequest(`${s.url}/.well-known/authzen-configuration/stores/${store}`, 'GET', headers)).body.policy_decision_point

  it('PEMBA_PUBLIC_URL is the origin of every URL, whatever the request says', async () => {
    const { s, store } = await start({ publicUrl: 'https://authz.example.com/pemba/' })
    const doc = (await rawRequest(`${s.url}/.well-known/authzen-configuration/stores/${store}`, 'GET', { host: 'other.example', 'x-forwarded-host': 'x.example' })).body
    expect(doc.policy_decision_point).toBe(`https://authz.example.com/pemba/stores/${store}`)
    expect(doc.access_evaluation_endpoint).toBe(`https://authz.example.com/pemba/stores/${store}/access/v1/evaluation`)
  })

  it('PEMBA_TRUST_PROXY=on: X-Forwarded-Proto and X-Forwarded-Host (first value) make the origin', async () => {
    const { s, store } = await start({ trustProxy: 'on' })
    expect(await pdpOf(s, store, { host: 'internal:8080', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gw.example, proxy2.internal' })).toBe(
      `https://gw.example/stores/${store}`,
    )
    // Without the headers, the Host; an unknown proto is ignored.
    expect(await pdpOf(s, store, { host: 'internal:8080', 'x-forwarded-proto': 'gopher' })).toBe(`http://internal:8080/stores/${store}`)
  })

  it('PEMBA_TRUST_PROXY as addresses: honoured from a listed peer only', async () => {
    const listed = await start({ trustProxy: '10.0.0.5, 127.0.0.1' })
    expect(await pdpOf(listed.s, listed.store, { host: 'internal', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gw.example' })).toBe(
      `https://gw.example/stores/${listed.store}`,
    )
    const unlisted = await start({ trustProxy: '10.0.0.5' })
    expect(await pdpOf(unlisted.s, unlisted.store, { host: 'internal', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gw.example' })).toBe(
      `http://internal/stores/${unlisted.store}`,
    )
  })
})

describe('who may read the document', () => {
  let a: HttpClient
  let store: string
  const bearer = (name: string) => ({ authorization: `Bearer ${keyOf(name)}` })
  const auth = {
    authMode: 'preshared' as const,
    authPresharedKeys: ['root', 'pep', 'other'].map((n) => `${n}=${keyOf(n)}`).join(','),
    authAdminClients: 'root',
  }

  beforeAll(async () => {
    a = await serveHttp(auth, bearer('root'))
    store = (await coreStore(a)).storeId
    expect((await a.request('POST', '/system/grants', { client: 'client:pep', role: 'checker', store })).status).toBe(200)
  })
  afterAll(() => a.close())

  it('§8.19 by default, as a check: 401 with WWW-Authenticate without a token, 403 without rights, 200 for a checker', async () => {
    const url = `${a.url}/.well-known/authzen-configuration/stores/${store}`
    const none = await fetchJson(url, 'GET', undefined, { 'x-request-id': 'disco-401' })
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="pemba"')
    expect(none.headers.get('x-request-id')).toBe('disco-401')
    const other = await fetchJson(url, 'GET', undefined, bearer('other'))
    expect(other.status).toBe(403)
    const pep = await fetchJson(url, 'GET', undefined, bearer('pep'))
    expect(pep.status, pep.text).toBe(200)
    expect(pep.headers.get('cache-control')).toBe('private, max-age=300')
  })

  it('PEMBA_AUTHZEN_DISCOVERY=public: anyone reads it, while the API it names still needs credentials', async () => {
    const p = await serveHttp({ ...auth, authzenDiscovery: 'public' }, bearer('root'))
    try {
      const id = (await coreStore(p)).storeId
      const doc = await fetchJson(`${p.url}/.well-known/authzen-configuration/${id}`, 'GET')
      expect(doc.status, doc.text).toBe(200)
      const evaluation = await fetchJson(doc.body.access_evaluation_endpoint, 'POST', ev('maria', 'viewer', 0))
      expect(evaluation.status).toBe(401)
    } finally {
      await p.close()
    }
  })
})
