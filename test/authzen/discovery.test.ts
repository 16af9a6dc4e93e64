/**
 * AuthZEN metadata discovery over real HTTP (reference §2.6, §7.2 item 6; checklist §8.21,
 * §8.22, §8.19, §8.50): the document, its absolute URLs (from the request's Host, PEMBA_PUBLIC_URL,
 * or X-Forwarded-* when PEMBA_TRUST_PROXY trusts the peer), that every URL it advertises is
 * served, and who may read it.
 */
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba } from '../../src/server.ts'
import { keyOf } from '../helpers/auth.ts'
import { coreStore, ev, fetchJson, rawRequest, serveHttp, validBodies, type HttpClient } from './core-fixture.ts'

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

  it('without PEMBA_PUBLIC_URL no signed_metadata: Pemba never signs a document built from a Host the caller names', async () => {
    const port = new URL(t.url).port
    const r = await rawRequest(`${t.url}/.well-known/authzen-configuration/stores/${store}`, 'GET', { host: `pdp.example.test:${port}` })
    expect(r.status).toBe(200)
    // The unsigned document names the host asked for (harmless: nothing vouches for it).
    expect(r.body.policy_decision_point).toBe(`http://pdp.example.test:${port}/stores/${store}`)
    expect(r.body).not.toHaveProperty('signed_metadata')
    expect((await t.request('GET', `/.well-known/authzen-configuration/${store}`)).body).not.toHaveProperty('signed_metadata')
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
    // §2.6 / RFC 8615: the document of `https://authz.example.com/pemba/stores/{id}` is at
    // `/.well-known/authzen-configuration/pemba/stores/{id}` (a proxy forwards it unchanged).
    const id = new URL(doc.policy_decision_point)
    const located = await rawRequest(`${s.url}/.well-known/authzen-configuration${id.pathname}`, 'GET', { host: 'other.example' })
    expect(located.status, JSON.stringify(located.body)).toBe(200)
    expect(located.body.policy_decision_point).toBe(doc.policy_decision_point)
  })

  it('§8.23 with PEMBA_PUBLIC_URL, signed_metadata verifies with the jwks_uri keys, names the PDP as iss, expires, and is signed once', async () => {
    const { s, store } = await start({ publicUrl: 'https://authz.example.com' })
    const url = `${s.url}/.well-known/authzen-configuration/stores/${store}`
    const doc = (await rawRequest(url, 'GET', { host: 'other.example' })).body as Record<string, unknown>
    expect(doc.policy_decision_point).toBe(`https://authz.example.com/stores/${store}`)
    // The JWKS the document names, fetched from this server (the public URL is not reachable here).
    const jwks = (await fetchJson(`${s.url}/stores/${store}/access/v1/jwks`, 'GET')).body
    const { payload, protectedHeader } = await jwtVerify(String(doc.signed_metadata), createLocalJWKSet(jwks), { issuer: `https://authz.example.com/stores/${store}` })
    expect(protectedHeader.typ).toBe('authzen-metadata+jwt')
    const { signed_metadata: _signed, ...unsigned } = doc
    const { iat, exp, ...claims } = payload
    expect(claims).toEqual({ ...unsigned, iss: doc.policy_decision_point })
    expect(typeof iat).toBe('number')
    expect(exp! - iat!).toBe(24 * 3600)
    expect(Math.abs(iat! - Date.now() / 1000)).toBeLessThan(60)
    // A tampered document does not verify.
    const [h, , sig] = String(doc.signed_metadata).split('.')
    const forged = Buffer.from(JSON.stringify({ ...payload, access_evaluation_endpoint: 'https://evil.example/e' })).toString('base64url')
    await expect(jwtVerify(`${h}.${forged}.${sig}`, createLocalJWKSet(jwks))).rejects.toThrow()
    // Cached: a second GET carries the very same JWS (no signature per anonymous GET).
    expect((await rawRequest(url, 'GET', { host: 'internal' })).body.signed_metadata).toBe(doc.signed_metadata)
  })

  it('PEMBA_TRUST_PROXY=on: X-Forwarded-Proto and X-Forwarded-Host make the origin, the last value (the proxy\'s) of a list', async () => {
    const { s, store } = await start({ trustProxy: 'on' })
    expect(await pdpOf(s, store, { host: 'internal:8080', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gw.example' })).toBe(`https://gw.example/stores/${store}`)
    // A proxy that appends passes the client's own value along in front: it is not the one taken.
    expect(await pdpOf(s, store, { host: 'internal:8080', 'x-forwarded-proto': 'http, https', 'x-forwarded-host': 'evil.example, gw.example' })).toBe(
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

describe('PEMBA_TRUST_PROXY and IPv6 peers', () => {
  it('a listed address matches however the socket spells the peer: ::1, and ::ffff:127.0.0.1 on a dual-stack listener', async () => {
    const config = {
      ...loadConfig({ env: {}, argv: [] }),
      databaseUrl: 'sqlite::memory:',
      logLevel: 'warn' as const,
      authzenDiscovery: 'public' as const,
      allowedHosts: 'internal',
      trustProxy: '0:0:0:0:0:0:0:1, 127.0.0.0/8',
    }
    const pemba = await createPemba(config, { sweeper: false })
    const server = serve({ hostname: '::', port: 0, fetch: pemba.app.fetch })
    try {
      await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())))
      const { port } = server.address() as AddressInfo
      const store = (await pemba.stores.create('s', '')).id
      for (const host of ['[::1]', '127.0.0.1']) {
        const r = await rawRequest(`http://${host}:${port}/.well-known/authzen-configuration/stores/${store}`, 'GET', {
          host: 'internal',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'gw.example',
        })
        expect(r.body.policy_decision_point, host).toBe(`https://gw.example/stores/${store}`)
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await pemba.close()
    }
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
