/**
 * The gateway's routes file and path reading, on their own: which template a request matches
 * (the most specific, then by method), what it asks (resource, action, properties), which
 * paths are refused as path confusion, and a routes file that cannot be used stopping the
 * server with a message naming PEMBA_GATEWAY_ROUTES and the entry.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { parseGatewayRoutes } from '../../src/service/gateway/route-file.ts'
import { parseTarget } from '../../src/service/gateway/target.ts'
import { encodeId } from '../../src/core/ids.ts'
import { writeRoutesFile } from './gateway-fixture.ts'

const STORE = '01JABCDEFGHJKMNPQRSTVWXYZ0'
const routes = parseGatewayRoutes(
  `routes:
  - template: /users/{userId}
    methods: [GET, put]
  - template: /users/me
    methods: [GET]
    action: read_self
  - template: /users/{rest*}
  - template: /orders/{orderId}
    resource: {type: order, id: "{orderId}"}
  - template: /v1/users:search
  - template: /
    methods: [GET]
  - template: /admin/{page}
    methods: [GET]
  - template: /{section}/{page}
    methods: [GET]
  - template: /reports/{id}
    methods: [REPORT]
stores:
  ${STORE}:
    routes:
      - template: /only
`,
  'routes.yaml',
)
const match = (method: string, path: string, store = '01HZZZZZZZZZZZZZZZZZZZZZZZ') => {
  const t = parseTarget(path)
  if ('refused' in t) throw new Error(t.refused)
  return routes.routesOf(store).match(method, t.segments)
}

describe('matching', () => {
  it('the most specific template wins: literal before parameter before rest', () => {
    expect(match('GET', '/users/me')).toMatchObject({ template: '/users/me', action: 'read_self', resource: { type: 'route', id: '/users/me' } })
    expect(match('GET', '/users/alice')).toEqual({
      template: '/users/{userId}',
      resource: { type: 'route', id: '/users/{userId}', properties: { userId: 'alice' } },
      action: 'get',
      actionDeclared: false,
    })
    expect(match('GET', '/users/alice/orders/7')).toMatchObject({ template: '/users/{rest*}', resource: { properties: { rest: 'alice/orders/7' } } })
    expect(match('GET', '/')).toMatchObject({ template: '/' })
  })

  it('then the method: a template\'s routes by method; a method none covers matches nothing (no fall-through)', () => {
    expect(match('PUT', '/users/alice')).toMatchObject({ action: 'put' })
    expect(match('DELETE', '/users/me')).toBeUndefined()
    expect(match('DELETE', '/users/alice')).toBeUndefined()
    // HEAD is GET (the route lists GET, not HEAD), and asks `get`.
    expect(match('HEAD', '/users/alice')).toMatchObject({ action: 'get' })
    expect(match('POST', '/orders/7')).toMatchObject({ resource: { type: 'order', id: '7', properties: { orderId: '7' } }, action: 'post' })
  })

  it('M1: a path that matches a more specific template only without regard to case is refused, never matched to a general one', () => {
    expect(match('GET', '/admin/settings')).toMatchObject({ template: '/admin/{page}' })
    expect(match('GET', '/docs/settings')).toMatchObject({ template: '/{section}/{page}' })
    for (const p of ['/ADMIN/settings', '/Admin/settings', '/USERS/ME', '/Users/alice']) expect(match('GET', p), p).toEqual({ refused: 'case' })
    // Case in a parameter is the parameter's: no template has a literal there.
    expect(match('GET', '/users/ALICE')).toMatchObject({ template: '/users/{userId}', resource: { properties: { userId: 'ALICE' } } })
    // Only a template more specific than the exact match counts.
    expect(match('GET', '/users/Me')).toEqual({ refused: 'case' })
  })

  it('minor 1: only the usual methods have a default action; another must be listed by a route or its action declared', () => {
    expect(match('SEARCH', '/orders/7')).toEqual({ refused: 'method' })
    expect(match('COPY', '/users/alice/x')).toEqual({ refused: 'method' })
    expect(match('OPTIONS', '/orders/7')).toMatchObject({ action: 'options' })
    expect(match('REPORT', '/reports/q3')).toMatchObject({ template: '/reports/{id}', action: 'report' })
  })

  it('ids hold no `:`, `#` or white space: they are percent-encoded, the template as the id included', () => {
    expect(match('GET', '/v1/users:search')).toMatchObject({ resource: { id: '/v1/users%3Asearch' } })
    expect(match('GET', '/orders/a%3Ab%23c%20d')).toMatchObject({ resource: { id: 'a%3Ab%23c%20d', properties: { orderId: 'a:b#c d' } } })
    expect(encodeId('file:///r/q3.pdf')).toBe('file%3A///r/q3.pdf')
    expect(encodeId('100%')).toBe('100%25')
  })

  it('a store with routes of its own uses only those', () => {
    expect(match('GET', '/only', STORE)).toMatchObject({ template: '/only' })
    expect(match('GET', '/users/alice', STORE)).toBeUndefined()
    expect(match('GET', '/only')).toBeUndefined()
  })
})

describe('reading the original path', () => {
  it('drops the query, decodes each segment', () => {
    expect(parseTarget('/users/alice%40example.com?x=1#f')).toEqual({ segments: ['users', 'alice@example.com'] })
    expect(parseTarget('/?a=b')).toEqual({ segments: [] })
    expect(parseTarget('http://api.example.com/users/alice?x')).toEqual({ segments: ['users', 'alice'] })
    expect(parseTarget('https://api.example.com')).toEqual({ segments: [] })
  })

  it('refuses what readers read differently (path confusion)', () => {
    for (const p of [
      '/a/../b', '/a/./b', '/a/%2e%2e/b', '/a/%2E./b', '/a/..;x=1/b', '/a%2fb', '/a%5Cb', '/a\\b', '/a/%252e%252e', '/a/%2525',
      '//a', '/a/', '/%ZZ', '/a b', '/a/%00', '/aé', 'a/b', '',
      // M1: `;` parameters (raw or encoded), any encoded percent, non-ASCII look-alikes.
      '/admin;/settings', '/admin;jsessionid=1/settings', '/admin%3b/settings', '/%2561dmin/settings', '/%EF%BD%81dmin/settings', '/users/al%C3%AFce',
    ]) {
      expect(parseTarget(p), p).toHaveProperty('refused')
    }
  })

  it('minor 10: a path over 2048 characters or 64 segments is refused', () => {
    expect(parseTarget('/' + 'a'.repeat(2047))).toEqual({ segments: ['a'.repeat(2047)] })
    expect(parseTarget('/' + 'a'.repeat(2048))).toHaveProperty('refused')
    expect(parseTarget('/a'.repeat(64))).toHaveProperty('segments')
    expect(parseTarget('/a'.repeat(65))).toHaveProperty('refused')
  })
})

describe('the routes file', () => {
  const refusal = (yaml: string) => {
    try {
      parseGatewayRoutes(yaml, 'r.yaml')
    } catch (e) {
      return (e as Error).message
    }
    throw new Error('accepted')
  }

  it('refuses what it cannot read as meant, naming PEMBA_GATEWAY_ROUTES and the entry', () => {
    expect(refusal('routes: [{template: users}]')).toBe("PEMBA_GATEWAY_ROUTES 'r.yaml': routes[0].template: 'users' must start with /")
    expect(refusal('routes: [{template: "/a/{x}/{x}"}]')).toMatch(/routes\[0\]\.template: .* names the parameter \{x\} twice/)
    expect(refusal('routes: [{template: "/a/{r*}/b"}]')).toMatch(/must be the last segment/)
    expect(refusal('routes: [{template: "/a/x{r}"}]')).toMatch(/mixes a parameter with text/)
    expect(refusal('routes: [{template: "/a;v=1"}]')).toMatch(/holds %, \\, \?, #, ;/)
    expect(refusal('routes: [{template: /a, extra: 1}]')).toBe("PEMBA_GATEWAY_ROUTES 'r.yaml': routes[0]: unknown key(s) 'extra'")
    expect(refusal('routes: [{template: "/a/{x}", resource: {id: "{y}"}}]')).toMatch(/routes\[0\]\.resource\.id: '\{y\}' names \{y\}, which is not a parameter/)
    expect(refusal('routes: [{template: /a, action: "x y"}]')).toMatch(/routes\[0\]\.action: must be 1 to 50 characters/)
    expect(refusal('routes: [{template: /a, methods: []}]')).toMatch(/routes\[0\]\.methods: must list at least one method/)
    expect(refusal('stores: {abc: {routes: []}}')).toBe("PEMBA_GATEWAY_ROUTES 'r.yaml': stores.abc: is not a store id (a ULID)")
    expect(refusal('routes: [{template: "/a"')).toMatch(/is not valid YAML/)
  })

  it('refuses two routes of one shape covering one method: which applies would be ambiguous', () => {
    expect(refusal('routes: [{template: "/a/{x}"}, {template: "/a/{y}"}]')).toMatch(
      /routes\[1\]\.template: '\/a\/\{y\}' covers every method \(no methods listed\) on the same paths as routes\[0\]/,
    )
    expect(refusal('routes: [{template: /a, methods: [GET]}, {template: /a, methods: [get]}]')).toMatch(/covers method GET on the same paths as routes\[0\]/)
    // Disjoint methods, or a catch-all beside listed methods, are fine.
    expect(() => parseGatewayRoutes('routes: [{template: /a, methods: [GET]}, {template: /a, methods: [PUT]}, {template: /a}]', 'r.yaml')).not.toThrow()
  })

  it('a file that cannot be used stops the server at startup (loadConfig), naming the setting', () => {
    const bad = writeRoutesFile('routes:\n  - template: /a\n    method: [GET]\n')
    expect(() => loadConfig({ env: { PEMBA_GATEWAY_ROUTES: bad }, argv: [] })).toThrow(ConfigError)
    expect(() => loadConfig({ env: { PEMBA_GATEWAY_ROUTES: bad }, argv: [] })).toThrow(/PEMBA_GATEWAY_ROUTES '.*routes\.yaml': routes\[0\]: unknown key\(s\) 'method'/)
    expect(() => loadConfig({ env: { PEMBA_GATEWAY_ROUTES: '/no/such/routes.yaml' }, argv: [] })).toThrow(/PEMBA_GATEWAY_ROUTES '\/no\/such\/routes\.yaml' cannot be read/)
    expect(loadConfig({ env: { PEMBA_GATEWAY_ROUTES: writeRoutesFile() }, argv: [] }).gatewayRoutes).toMatch(/routes\.yaml$/)
  })
})
