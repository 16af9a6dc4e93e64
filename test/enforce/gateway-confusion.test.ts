/**
 * Requests shaped to make the gateway decision endpoint answer 2xx without deciding, or decide
 * about another path or method than the one the upstream serves (review D: C1, M1–M4). Envoy's
 * check requests are built per its `http_service` docs and sent raw (rawRequest), so no
 * client-side URL parser resolves them first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawRequest, startWorld, writeRoutesFile, type GatewayWorld } from './gateway-fixture.ts'

const ROUTES = `routes:
  - template: /admin/{page}
    methods: [GET]
  - template: /{section}/{page}
    methods: [GET]
  - template: /users/{userId}
    methods: [GET, PUT]
  - template: /any/{id}
`

let w: GatewayWorld
let prefix: string
let mallory: string

beforeAll(async () => {
  w = await startWorld({ allowedHosts: 'api.example.com', corsOrigins: '*', gatewayRoutes: writeRoutesFile(ROUTES) })
  prefix = `/stores/${w.store}/gateway/authorize`
  // Anyone may GET /{section}/{page} and anything under /any; nobody /admin/{page}.
  const written = await w.api('POST', `/stores/${w.store}/write`, {
    writes: { tuple_keys: [{ user: 'user:*', relation: 'get', object: 'route:/{section}/{page}' }, { user: 'user:*', relation: 'get', object: 'route:/any/{id}' }] },
  })
  expect(written.status, JSON.stringify(written.body)).toBe(200)
  mallory = await w.token({ sub: 'mallory' })
}, 30_000)
afterAll(() => w?.close())

function envoyCheck(method: string, target: string, extra: Record<string, string> = {}) {
  return rawRequest(w.pemba.url, method, prefix + target, { host: 'api.example.com', authorization: `Bearer ${mallory}`, 'content-length': '0', ...extra })
}

describe('C1: dot segments never steer a check request to another Pemba endpoint', () => {
  it('an escape from the gateway prefix to /healthz, /readyz, /stores or the nginx form is 400, never 2xx', async () => {
    for (const target of [
      '/admin/settings/../../../../../../healthz',
      '/admin/settings/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/healthz',
      '/a/.%2E/.%2e/%2E./../../readyz',
      '/a/../../../../../stores',
      '/a/../../../../access/v1/jwks',
    ]) {
      const r = await envoyCheck('GET', target)
      expect(r.status, target).toBe(400)
      expect(JSON.parse(r.body).code, target).toBe('validation_error')
      expect(r.headers['x-pemba-refusal'], target).toBe('path_refused')
    }
    // A backslash, which the URL parser reads as a slash (Node's HTTP parser may refuse it first).
    const backslash = await envoyCheck('GET', '/a\\..\\..\\..\\..\\..\\healthz')
    expect(backslash.status).toBe(400)
    // `/../authorize` with the nginx headers would land on the nginx form, deciding its URI.
    const nginxForm = await envoyCheck('GET', '/../authorize', { 'x-original-method': 'GET', 'x-original-uri': '/docs/x' })
    expect(nginxForm.status).toBe(400)
  })

  it('app-wide: any route refuses a raw dot segment, and ordinary paths still work', async () => {
    const healthz = await rawRequest(w.pemba.url, 'GET', '/stores/../healthz', { host: 'api.example.com' })
    expect(healthz.status).toBe(400)
    expect(JSON.parse(healthz.body)).toMatchObject({ code: 'validation_error' })
    expect(healthz.headers['x-pemba-refusal']).toBeUndefined()
    expect((await rawRequest(w.pemba.url, 'GET', '/healthz', { host: 'api.example.com' })).status).toBe(200)
    // A dot inside a segment is not a dot segment.
    expect((await envoyCheck('GET', '/docs/read.me')).status).toBe(200)
    expect((await envoyCheck('GET', '/docs/..x')).status).toBe(200)
  })
})

describe('M1: look-alike paths never fall from a literal template to a general one', () => {
  it('the baseline: /admin/{page} is nobody\'s, /{section}/{page} anyone\'s', async () => {
    expect((await envoyCheck('GET', '/docs/settings')).status).toBe(200)
    const admin = await envoyCheck('GET', '/admin/settings')
    expect(admin.status).toBe(403)
    expect(admin.headers['x-pemba-refusal']).toBe('access_denied')
  })

  it('`;` parameters, case, fullwidth letters and double encoding are refused', async () => {
    for (const target of ['/admin;/settings', '/admin;jsessionid=1/settings', '/admin%3B/settings', '/ADMIN/settings', '/Admin/settings', '/%EF%BD%81dmin/settings', '/%2561dmin/settings']) {
      const r = await envoyCheck('GET', target)
      expect(r.status, target).toBe(403)
      expect(r.headers['x-pemba-refusal'], target).toBe('path_refused')
    }
  })

  it('minor 10: an overlong path is refused', async () => {
    const r = await envoyCheck('GET', `/docs/${'x'.repeat(3000)}`)
    expect(r.status).toBe(403)
    expect(r.headers['x-pemba-refusal']).toBe('path_refused')
  })

  it('minor 1: an unusual method on a route that lists none has no default action (the client cannot pick the relation)', async () => {
    const search = await rawRequest(w.pemba.url, 'GET', prefix, { host: 'api.example.com', authorization: `Bearer ${mallory}`, 'x-original-method': 'SEARCH', 'x-original-uri': '/any/1' })
    expect(search.status).toBe(403)
    expect(JSON.parse(search.body)).toEqual({ code: 'method_refused', message: 'the method is not allowed on this path' })
  })
})

describe('M2: the method decided is the one the upstream serves', () => {
  it('the Envoy form refuses an X-Original-Method that disagrees (nginx pointed at the wrong form)', async () => {
    const r = await envoyCheck('GET', '/docs/settings', { 'x-original-method': 'DELETE', 'x-original-uri': '/docs/settings' })
    expect(r.status).toBe(400)
    expect(r.headers['x-pemba-refusal']).toBe('method_mismatch')
    expect(JSON.parse(r.body).message).toMatch(/exact path/)
    expect((await envoyCheck('GET', '/docs/settings', { 'x-original-method': 'GET' })).status).toBe(200)
  })

  it('the nginx form requires X-Original-Method and X-Original-URI', async () => {
    const r = await rawRequest(w.pemba.url, 'GET', prefix, { host: 'api.example.com', authorization: `Bearer ${mallory}`, 'x-original-uri': '/docs/x' })
    expect(r.status).toBe(400)
    expect(r.headers['x-pemba-refusal']).toBe('original_headers_missing')
  })
})

describe('M3: every 200 carries all four X-Pemba-* headers', () => {
  it('a forged X-Pemba-Actor, Route or Decision-Id is overridden by the answer\'s (Actor empty without an actor)', async () => {
    const r = await envoyCheck('GET', '/docs/settings', { 'x-pemba-actor': 'agent:forged', 'x-pemba-route': '/forged', 'x-request-id': 'req-m3-1' })
    expect(r.status).toBe(200)
    expect(r.headers).toMatchObject({ 'x-pemba-subject': 'user:mallory', 'x-pemba-actor': '', 'x-pemba-route': '/{section}/{page}', 'x-pemba-decision-id': 'req-m3-1' })
  })
})

describe('M4: a CORS preflight on the gateway paths is decided, never answered 204', () => {
  it('OPTIONS with Origin and Access-Control-Request-Method gets 401/403 on both forms', async () => {
    const preflight = { origin: 'https://evil.example', 'access-control-request-method': 'GET' }
    const envoy = await envoyCheck('OPTIONS', '/admin/settings', preflight)
    expect(envoy.status).toBe(403)
    expect(envoy.headers['access-control-allow-origin']).toBeUndefined()
    const anonymous = await rawRequest(w.pemba.url, 'OPTIONS', `${prefix}/admin/settings`, { host: 'api.example.com', ...preflight })
    expect(anonymous.status).toBe(401)
    const nginxForm = await rawRequest(w.pemba.url, 'OPTIONS', prefix, { host: 'api.example.com', ...preflight, 'x-original-method': 'OPTIONS', 'x-original-uri': '/admin/settings' })
    expect([401, 403]).toContain(nginxForm.status)
    // Elsewhere CORS is unchanged: a preflight to the API is still answered.
    expect((await rawRequest(w.pemba.url, 'OPTIONS', '/stores', { host: 'api.example.com', ...preflight })).status).toBe(204)
  })
})

describe('minor 3: answers that reach the end user name no store, model or client', () => {
  it('an unknown store keeps its status and code; the message points to Pemba\'s log', async () => {
    const other = '01JABCDEFGHJKMNPQRSTVWXYZ0'
    const r = await rawRequest(w.pemba.url, 'GET', `/stores/${other}/gateway/authorize/docs/x`, { host: 'api.example.com', authorization: `Bearer ${mallory}` })
    expect(r.status).toBeGreaterThanOrEqual(400)
    expect(r.status).toBeLessThan(500)
    const body = JSON.parse(r.body) as { code: string; message: string }
    expect(r.headers['x-pemba-refusal']).toBe(body.code)
    expect(body.message).not.toContain(other)
    expect(body.message).toMatch(/Pemba's log/)
  })
})
