/**
 * The gateway decision endpoint as Envoy's HTTP `ext_authz` filter calls it (no Envoy binary
 * here: the requests are built per Envoy's documentation of `http_service`). Envoy sends the
 * original method, `path_prefix` + the original path and query, and the headers it always
 * includes (`Host`, `Authorization`, `Content-Length: 0`) plus `headers_to_add` (where the
 * proxy's own `Pemba-Authorization` goes); a 200 lets the request through and copies the
 * `allowed_upstream_headers`, anything else is returned to the client as it came.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decisionsOf, rawRequest, startWorld, writeRoutesFile, type GatewayWorld } from './gateway-fixture.ts'
import { servePemba } from '../helpers/http-server.ts'

let w: GatewayWorld
let prefix: string
let alice: string

beforeAll(async () => {
  // Envoy passes the client's Host on; with authentication off Pemba answers only the host
  // names it is told of (a defence against DNS rebinding), so the API's name is listed.
  w = await startWorld({ allowedHosts: 'api.example.com' })
  prefix = `/stores/${w.store}/gateway/authorize`
  alice = await w.token({ sub: 'alice' })
}, 30_000)
afterAll(() => w?.close())

/** ext_authz's check request for `method target` from a client holding `token`. */
function envoyCheck(method: string, target: string, token?: string, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = { host: 'api.example.com', 'content-length': '0', 'x-request-id': crypto.randomUUID(), ...extra }
  if (token) headers.authorization = `Bearer ${token}`
  return rawRequest(w.pemba.url, method, prefix + target, headers)
}

describe('Envoy ext_authz (HTTP service) check requests', () => {
  it('allowed: 200 with the headers to copy upstream; the decision is logged under Envoy\'s x-request-id', async () => {
    const id = crypto.randomUUID()
    const r = await envoyCheck('GET', '/users/alice?expand=orders', alice, { 'x-request-id': id })
    expect(r.status).toBe(200)
    expect(r.headers['x-pemba-subject']).toBe('user:alice')
    expect(r.headers['x-pemba-route']).toBe('/users/{userId}')
    expect(r.headers['x-pemba-decision-id']).toBe(id)
    // M3: sent empty when nobody acts for someone, so Envoy's allowed_upstream_headers overrides a forged one.
    expect(r.headers['x-pemba-actor']).toBe('')
    expect(r.headers['x-pemba-refusal']).toBeUndefined()
    expect(JSON.parse(r.body)).toEqual({ allowed: true, subject: 'user:alice', route: '/users/{userId}' })
    const [d] = await decisionsOf(w, id)
    expect(d).toMatchObject({ allowed: true, object: 'route:/users/{userId}', relation: 'get', detail: { gateway_method: 'GET' } })
  })

  it('the original method is the check request\'s own: PUT asks `put`, DELETE matches no route', async () => {
    expect((await envoyCheck('PUT', '/users/alice', alice)).status).toBe(403)
    const put = await envoyCheck('PUT', '/users/alice', await w.token({ sub: 'alice', scope: 'users:write' }))
    expect(put.status).toBe(403) // alice holds no `put`: the model decides, not the scope
    const gone = await envoyCheck('DELETE', '/users/alice', alice)
    expect(gone.status).toBe(403)
    expect(JSON.parse(gone.body)).toEqual({ code: 'route_not_found', message: 'no route covers this method and path' })
  })

  it('denials are 403 {code,message} with the route and decision id, for Envoy to return to the client', async () => {
    const r = await envoyCheck('GET', '/users/bob', alice)
    expect(r.status).toBe(403)
    expect(JSON.parse(r.body)).toEqual({ code: 'access_denied', message: 'the request is not allowed' })
    expect(r.headers['x-pemba-refusal']).toBe('access_denied')
    expect(r.headers['x-pemba-route']).toBe('/users/{userId}')
    expect(r.headers['x-pemba-decision-id']).toBeDefined()
    expect(r.headers['x-pemba-subject']).toBeUndefined()
  })

  it('a missing scope is 403 insufficient_scope naming the scopes that would do', async () => {
    const r = await envoyCheck('GET', '/reports/q3', await w.token({ sub: 'alice', scope: 'users:read' }))
    expect(r.status).toBe(403)
    expect(JSON.parse(r.body).code).toBe('scope_missing')
    expect(r.headers['www-authenticate']).toBe('Bearer realm="pemba", error="insufficient_scope", scope="reports:read"')
  })

  it('no token, a Basic credential, a token of another audience: 401', async () => {
    const none = await envoyCheck('GET', '/users/alice')
    expect(none.status).toBe(401)
    expect(JSON.parse(none.body)).toEqual({ code: 'token_missing', message: 'a bearer token is required' })
    expect(none.headers['www-authenticate']).toBe('Bearer realm="pemba"')
    expect((await envoyCheck('GET', '/users/alice', undefined, { authorization: 'Basic YWxpY2U6cHc=' })).status).toBe(401)
    const other = await envoyCheck('GET', '/users/alice', await w.token({ sub: 'alice', aud: 'https://elsewhere' }))
    expect(other.status).toBe(401)
    expect(JSON.parse(other.body).code).toBe('token_invalid')
  })

  it('path confusion on the raw path: dot segments (before Node\'s URL parser resolves them), encoded slashes, double encoding', async () => {
    // Dot segments are refused app-wide before routing (400), the rest by the gateway (403).
    for (const target of ['/public/../users/bob', '/public/%2e%2e/users/bob', '/public/x/..']) {
      const r = await envoyCheck('GET', target, alice)
      expect(r.status, target).toBe(400)
      expect(r.headers['x-pemba-refusal'], target).toBe('path_refused')
    }
    for (const target of ['/users/alice%2fbob', '/public/a%252fb', '/users//bob']) {
      const r = await envoyCheck('GET', target, alice)
      expect(r.status, target).toBe(403)
      expect(JSON.parse(r.body).code, target).toBe('path_refused')
      expect(r.headers['x-pemba-refusal'], target).toBe('path_refused')
    }
    // An encoded gateway prefix is not the prefix Envoy was configured with.
    const encoded = await rawRequest(w.pemba.url, 'GET', `/stores/${w.store}/gateway/authoriz%65/users/alice`, { authorization: `Bearer ${alice}` })
    expect(encoded.status).toBe(403)
  })

  it('query parameters are not part of the question', async () => {
    expect((await envoyCheck('GET', '/users/bob?userId=alice', alice)).status).toBe(403)
    expect((await envoyCheck('GET', '/users/alice?userId=bob', alice)).status).toBe(200)
  })

  it('non-ASCII identities travel as =?base64?…?= header values; path parameters are percent-decoded, but non-ASCII in a path is refused', async () => {
    const zoe = await w.token({ sub: 'zoë' })
    const r = await envoyCheck('GET', '/public/read%20me', zoe)
    expect(r.status).toBe(200)
    expect(r.headers['x-pemba-subject']).toBe(`=?base64?${Buffer.from('user:zoë').toString('base64')}?=`)
    // Look-alikes (M1): a server folding Unicode would read another path.
    const refused = await envoyCheck('GET', '/users/zo%C3%AB', zoe)
    expect(refused.status).toBe(403)
    expect(refused.headers['x-pemba-refusal']).toBe('path_refused')
  })
})

describe('the endpoint without PEMBA_GATEWAY_ROUTES, and with a store of its own routes', () => {
  it('answers 404 gateway_not_configured: nginx turns it into a 500, Envoy refuses', async () => {
    const bare = await servePemba()
    try {
      const r = await fetch(`${bare.url}/stores/01JABCDEFGHJKMNPQRSTVWXYZ0/gateway/authorize/users/alice`, { headers: { authorization: 'Bearer x.y.z' } })
      expect(r.status).toBe(404)
      expect(((await r.json()) as { code: string }).code).toBe('gateway_not_configured')
    } finally {
      await bare.close()
    }
  })

  it('a store listed under `stores` uses its own routes instead of the shared ones', async () => {
    const own = await servePemba({ gatewayRoutes: writeRoutesFile(`routes:\n  - template: /users/{userId}\nstores:\n  ${w.store}:\n    routes:\n      - template: /only/{userId}\n        resource: {type: route, id: "/users/{userId}"}\n`) })
    try {
      // The store lives in the other instance; this one only needs to pick the routes.
      const r = await fetch(`${own.url}/stores/${w.store}/gateway/authorize/users/alice`, { headers: { authorization: 'Bearer x.y.z' } })
      expect(await r.json()).toMatchObject({ code: 'route_not_found' })
      // Its own route matches: the decision then needs the store, which this instance lacks;
      // the answer keeps the code but names no store (it reaches the end user).
      const mine = await fetch(`${own.url}/stores/${w.store}/gateway/authorize/only/alice`, { headers: { authorization: 'Bearer x.y.z' } })
      const body = (await mine.json()) as { code: string; message: string }
      expect(body.code).not.toBe('route_not_found')
      expect(mine.headers.get('x-pemba-refusal')).toBe(body.code)
      expect(body.message).not.toContain(w.store)
      const other = await fetch(`${own.url}/stores/01JABCDEFGHJKMNPQRSTVWXYZ0/gateway/authorize/only/alice`, { headers: { authorization: 'Bearer x.y.z' } })
      expect(await other.json()).toMatchObject({ code: 'route_not_found' })
    } finally {
      await own.close()
    }
  })

  it('the nginx form without X-Original-URI is the proxy\'s mistake: 400 naming the headers', async () => {
    const r = await fetch(`${w.pemba.url}${prefix}`, { headers: { authorization: `Bearer ${alice}`, 'x-original-method': 'GET' } })
    expect(r.status).toBe(400)
    expect(((await r.json()) as { message: string }).message).toMatch(/X-Original-URI/)
  })
})
