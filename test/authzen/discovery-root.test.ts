/**
 * PEMBA_AUTHZEN_DEFAULT_STORE over real HTTP: the store's AuthZEN API and discovery document
 * also at the root, for gateways configured with a bare PDP URL; the route table's permissions
 * apply to the root paths unchanged (checklist §8.19, §8.21, §8.22).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyOf } from '../helpers/auth.ts'
import { coreStore, ev, fetchJson, serveHttp, validBodies, type HttpClient } from './core-fixture.ts'

const bearer = (name: string) => ({ authorization: `Bearer ${keyOf(name)}` })
const auth = {
  authMode: 'preshared' as const,
  authPresharedKeys: ['root', 'pep', 'other'].map((n) => `${n}=${keyOf(n)}`).join(','),
  authAdminClients: 'root',
}

let t: HttpClient
let store: string
let databaseUrl: string

beforeAll(async () => {
  // The store exists before the server that serves it at the root starts: one database, two servers.
  databaseUrl = `sqlite:${join(mkdtempSync(join(tmpdir(), 'pemba-authzen-root-')), 'pemba.db')}`
  const first = await serveHttp({ ...auth, databaseUrl }, bearer('root'))
  store = (await coreStore(first)).storeId
  expect((await first.request('POST', '/system/grants', { client: 'client:pep', role: 'checker', store })).status).toBe(200)
  await first.close()
  t = await serveHttp({ ...auth, databaseUrl, authzenDefaultStore: store }, bearer('pep'))
})
afterAll(() => t.close())

describe('the default store at the root', () => {
  it('§8.22 GET /.well-known/authzen-configuration names the origin as the PDP, and root endpoints', async () => {
    const r = await t.request('GET', '/.well-known/authzen-configuration')
    expect(r.status, r.text).toBe(200)
    expect(r.body.policy_decision_point).toBe(t.url)
    expect(r.body.access_evaluation_endpoint).toBe(`${t.url}/access/v1/evaluation`)
    expect(r.body.search_action_endpoint).toBe(`${t.url}/access/v1/search/action`)
    expect(r.body.jwks_uri).toBe(`${t.url}/access/v1/jwks`)
    // The store's own document keeps its store identifier.
    const own = await t.request('GET', `/.well-known/authzen-configuration/stores/${store}`)
    expect(own.body.policy_decision_point).toBe(`${t.url}/stores/${store}`)
    const openfga = await t.request('GET', `/.well-known/authzen-configuration/${store}`)
    expect(openfga.body.policy_decision_point).toBe(`${t.url}/stores/${store}`)
  })

  it('§8.21 the root endpoints answer as the store paths do', async () => {
    const doc = (await t.request('GET', '/.well-known/authzen-configuration')).body
    const allowed = await fetchJson(doc.access_evaluation_endpoint, 'POST', ev('maria', 'viewer', 0), bearer('pep'))
    expect(allowed.status, allowed.text).toBe(200)
    expect(allowed.body).toEqual({ decision: true })
    expect((await fetchJson(doc.access_evaluation_endpoint, 'POST', ev('maria', 'viewer', 4), bearer('pep'))).body).toEqual({ decision: false })
    const batch = await fetchJson(
      doc.access_evaluations_endpoint,
      'POST',
      { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, evaluations: [0, 4].map((i) => ({ resource: { type: 'doc', id: String(i) } })) },
      bearer('pep'),
    )
    expect(batch.body).toEqual({ evaluations: [{ decision: true }, { decision: false }] })
    const search = await fetchJson(doc.search_resource_endpoint, 'POST', { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, resource: { type: 'doc' } }, bearer('pep'))
    expect(search.status, search.text).toBe(200)
    expect(search.body.results).toHaveLength(9)
  })

  it('§8.21 every URL of the root document works: each POST with a valid body is 200, the JWKS a key set, ARAP its own 400', async () => {
    const doc = (await t.request('GET', '/.well-known/authzen-configuration')).body as Record<string, string>
    for (const [member, body] of Object.entries(validBodies())) {
      expect(doc[member], member).toMatch(new RegExp(`^${t.url}/access/v1/`))
      const r = await fetchJson(doc[member], 'POST', body, bearer('pep'))
      expect(r.status, `${member}: ${r.text}`).toBe(200)
    }
    const jwks = await fetchJson(doc.jwks_uri, 'GET', undefined, bearer('pep'))
    expect(jwks.status, jwks.text).toBe(200)
    expect(Array.isArray(jwks.body.keys)).toBe(true)
    const request = await fetchJson(doc.access_request_endpoint, 'POST', { subject: { type: 'user', id: 'maria' } }, bearer('pep'))
    expect(request.status, request.text).toBe(400)
    expect(request.headers.get('content-type')).toMatch(/^application\/problem\+json/)
  })

  it('§8.22 with a path in PEMBA_PUBLIC_URL, each document is at the RFC 8615 location of its identifier', async () => {
    const p = await serveHttp({ ...auth, databaseUrl, authzenDefaultStore: store, publicUrl: 'https://gw.example/pemba' }, bearer('pep'))
    try {
      const root = await p.request('GET', '/.well-known/authzen-configuration/pemba')
      expect(root.status, root.text).toBe(200)
      expect(root.body.policy_decision_point).toBe('https://gw.example/pemba')
      expect(root.body.access_evaluation_endpoint).toBe('https://gw.example/pemba/access/v1/evaluation')
      const own = await p.request('GET', `/.well-known/authzen-configuration/pemba/stores/${store}`)
      expect(own.status, own.text).toBe(200)
      expect(own.body.policy_decision_point).toBe(`https://gw.example/pemba/stores/${store}`)
      // The permissions still apply to the mapped paths.
      expect((await fetchJson(`${p.url}/.well-known/authzen-configuration/pemba`, 'GET', undefined, bearer('other'))).status).toBe(403)
    } finally {
      await p.close()
    }
  })

  it('§8.19 the route table applies to the root paths: 401 without a token, 403 without rights', async () => {
    const none = await fetchJson(`${t.url}/access/v1/evaluation`, 'POST', ev('maria', 'viewer', 0))
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="pemba"')
    const other = await fetchJson(`${t.url}/access/v1/evaluation`, 'POST', ev('maria', 'viewer', 0), bearer('other'))
    expect(other.status).toBe(403)
    const discovery = await fetchJson(`${t.url}/.well-known/authzen-configuration`, 'GET', undefined, bearer('other'))
    expect(discovery.status).toBe(403)
  })

  it('other root paths are not mapped', async () => {
    expect((await t.request('POST', '/check', {})).status).toBe(404)
    expect((await t.request('POST', '/access/v2/evaluation', ev('maria', 'viewer', 0))).status).toBe(404)
  })
})
