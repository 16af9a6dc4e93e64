/**
 * SSRF through a token issuer's `jwks_uri` (issue 22, item 6). A store admin names the URL, so
 * Pemba must not fetch it from loopback, link-local, private or other special addresses, in any
 * spelling, after DNS resolution and on every redirect, unless PEMBA_JWKS_ALLOW_PRIVATE or
 * PEMBA_JWKS_ALLOWED_HOSTS says so; and a fetch is bounded in size and time.
 *
 * Real servers on loopback stand in for the internal services: one listens on every loopback
 * address the targets spell (`::` accepts IPv4 and IPv6), and must receive no request at all
 * from a refused fetch. 127.0.0.2 (also loopback on Linux) plays the allowed outside host of
 * the redirect, size and time tests, let through by the allow-list.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT } from 'jose'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/settings.ts'
import { loadConfig } from '../../src/config.ts'
import { JwksFetchGuard, JwksFetchRefused, parseJwksAllowedHosts, refusedRule, type JwksFetchPolicy } from '../../src/service/jwks-guard.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { signingKey, type SigningKey } from '../helpers/jwks-server.ts'

interface Recorder {
  server: Server
  port: number
  requests: string[]
  handle: (req: IncomingMessage, res: ServerResponse) => void
}

async function listen(host: string, handle: Recorder['handle']): Promise<Recorder> {
  const r: Recorder = { server: undefined as unknown as Server, port: 0, requests: [], handle }
  r.server = createServer((req, res) => {
    r.requests.push(`${req.method} ${req.url}`)
    r.handle(req, res)
  })
  await new Promise<void>((resolve) => r.server.listen({ host, port: 0, ipv6Only: false }, resolve))
  r.port = (r.server.address() as AddressInfo).port
  return r
}

function close(r: Recorder | undefined): Promise<void> {
  if (!r) return Promise.resolve()
  r.server.closeAllConnections()
  return new Promise((resolve) => r.server.close(() => resolve()))
}

let key: SigningKey
/** The internal service: on every loopback address, answering a valid key set. */
let internal: Recorder
/** The allowed outside host (127.0.0.2), whose behaviour each test sets. */
let outside: Recorder

const jwksAnswer = (res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ keys: [key.publicJwk] }))
}

beforeAll(async () => {
  key = await signingKey('k1')
  internal = await listen('::', (_req, res) => jwksAnswer(res))
  outside = await listen('127.0.0.2', (_req, res) => jwksAnswer(res))
})
afterAll(async () => {
  await close(internal)
  await close(outside)
})
afterEach(() => {
  internal.requests.length = 0
  outside.requests.length = 0
})

function guard(over: Partial<JwksFetchPolicy> & { allowedHosts?: string } = {}): JwksFetchGuard {
  const { allowedHosts = '', ...rest } = over
  return new JwksFetchGuard({ allowPrivate: false, allowed: parseJwksAllowedHosts(allowedHosts), maxBytes: 65_536, timeoutMs: 5000, ...rest })
}

/** The refusal a guarded fetch ends with (it must end with one). */
async function refusal(g: JwksFetchGuard, url: string): Promise<Error> {
  const e = await g.fetch(url, {}).then(
    () => undefined,
    (err: unknown) => err as Error,
  )
  expect(e, `${url} was fetched`).toBeInstanceOf(Error)
  return e!
}

describe('the guard refuses every spelling of an internal destination, before connecting', () => {
  const loopbackTargets = (port: number) => [
    `http://127.0.0.1:${port}/jwks`,
    `http://0x7f000001:${port}/jwks`,
    `http://127.1:${port}/jwks`,
    `http://2130706433:${port}/jwks`,
    `http://017700000001:${port}/jwks`,
    `http://127.000.000.001:${port}/jwks`,
    `http://[::1]:${port}/jwks`,
    `http://[::ffff:127.0.0.1]:${port}/jwks`,
    `http://[::ffff:7f00:1]:${port}/jwks`,
    `http://0.0.0.0:${port}/jwks`,
    `http://[::]:${port}/jwks`,
    // Names that resolve to loopback: refused after resolution, not by their spelling.
    `http://localhost:${port}/jwks`,
    `http://LocalHost:${port}/jwks`,
  ]

  it('loopback, in every form, with a server listening there that receives nothing', async () => {
    const g = guard()
    for (const url of loopbackTargets(internal.port)) {
      const e = await refusal(g, url)
      expect(e, url).toBeInstanceOf(JwksFetchRefused)
      expect(e.message, url).toMatch(/a (loopback|unspecified) address, which token issuers may not fetch keys from; set PEMBA_JWKS_ALLOWED_HOSTS/)
    }
    expect(internal.requests).toEqual([])
  })

  it('names the rule for each special range (no connection is tried)', async () => {
    const g = guard()
    const cases: [string, RegExp][] = [
      ['http://169.254.169.254/latest/meta-data/', /link-local/],
      ['http://[fe80::1]/', /link-local/],
      ['http://10.0.0.1/', /private/],
      ['http://172.16.5.4/', /private/],
      ['http://192.168.1.1/', /private/],
      ['http://100.64.0.1/', /CGNAT/],
      ['http://[fd00::1]/', /unique-local/],
      ['http://224.0.0.1/', /multicast/],
      ['http://[ff02::1]/', /multicast/],
      ['http://255.255.255.255/', /reserved/],
      ['http://[::ffff:10.0.0.1]/', /private/],
      ['http://[::ffff:169.254.169.254]/', /link-local/],
      ['http://[64:ff9b::a00:1]/', /reserved/],
      ['http://[2002:7f00:1::]/', /reserved/],
    ]
    for (const [url, rule] of cases) expect((await refusal(g, url)).message, url).toMatch(rule)
  })

  it('classifies public addresses as public', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '172.32.0.1', '100.128.0.1']) expect(refusedRule(a), a).toBeUndefined()
  })

  it('a redirect from an allowed host to loopback is refused, and loopback receives nothing', async () => {
    const g = guard({ allowedHosts: '127.0.0.2' })
    for (const target of [`http://127.0.0.1:${internal.port}/jwks`, `http://localhost:${internal.port}/jwks`, `http://[::1]:${internal.port}/jwks`]) {
      outside.handle = (_req, res) => {
        res.writeHead(302, { location: target })
        res.end()
      }
      const e = await refusal(g, `http://127.0.0.2:${outside.port}/jwks`)
      expect(e.message, target).toMatch(/loopback address/)
    }
    expect(outside.requests).toHaveLength(3)
    expect(internal.requests).toEqual([])
    // A relative redirect stays on the allowed host and is followed; a chain is bounded.
    outside.handle = (req, res) => {
      if (req.url === '/jwks') {
        res.writeHead(301, { location: '/keys' })
        res.end()
      } else if (req.url === '/loop') {
        res.writeHead(307, { location: '/loop' })
        res.end()
      } else jwksAnswer(res)
    }
    const ok = await g.fetch(`http://127.0.0.2:${outside.port}/jwks`, {})
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { keys: unknown[] }).keys).toHaveLength(1)
    expect((await refusal(g, `http://127.0.0.2:${outside.port}/loop`)).message).toMatch(/more than 3 redirects/)
  })

  it('an answer larger than PEMBA_JWKS_MAX_BYTES is refused, declared or streamed', async () => {
    const g = guard({ allowedHosts: '127.0.0.2', maxBytes: 2048 })
    const big = JSON.stringify({ keys: [key.publicJwk], padding: 'x'.repeat(10_000) })
    outside.handle = (req, res) => {
      if (req.url === '/declared') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) })
        res.end(big)
      } else {
        // Chunked, no length: counted as it arrives.
        res.writeHead(200, { 'content-type': 'application/json' })
        for (let i = 0; i < 10; i++) res.write(big.slice(i * 1000, (i + 1) * 1000))
        res.end(big.slice(10_000))
      }
    }
    for (const path of ['/declared', '/chunked']) {
      const e = await refusal(g, `http://127.0.0.2:${outside.port}${path}`)
      expect(e.message, path).toMatch(/larger than PEMBA_JWKS_MAX_BYTES \(2048 bytes\)/)
    }
  })

  it('a body that never ends is cut at PEMBA_JWKS_TIMEOUT_MS', async () => {
    const g = guard({ allowedHosts: '127.0.0.2', timeoutMs: 300 })
    let closed = false
    outside.handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"keys":[')
      res.on('close', () => (closed = true))
    }
    const e = await refusal(g, `http://127.0.0.2:${outside.port}/slow`)
    // jose turns a TimeoutError into its JWKSTimeout (the issuer's keys are unavailable).
    expect(e.name).toBe('TimeoutError')
    await expect.poll(() => closed).toBe(true)
  })

  it('the allow settings let the loopback server through', async () => {
    const allowedBy = [guard({ allowPrivate: true }), guard({ allowedHosts: 'localhost' }), guard({ allowedHosts: '127.0.0.0/8,::1' }), guard({ allowedHosts: '[::1], 127.0.0.1' })]
    for (const g of allowedBy) {
      const res = await g.fetch(`http://localhost:${internal.port}/jwks`, {})
      expect(res.status).toBe(200)
    }
    expect(internal.requests).toHaveLength(allowedBy.length)
    // An allowed host name lets through only itself: the same server by address is still refused.
    expect((await refusal(guard({ allowedHosts: 'localhost' }), `http://127.0.0.1:${internal.port}/jwks`)).message).toMatch(/loopback/)
  })
})

describe('PEMBA_JWKS_ALLOWED_HOSTS', () => {
  it('a bad entry stops the server, naming the setting', () => {
    for (const bad of ['10.0.0.0/33', 'not a host', '10.1.2.3.4/8', '::1/129', 'http://keys.internal']) {
      expect(() => loadConfig({ env: { PEMBA_JWKS_ALLOWED_HOSTS: bad }, argv: [] }), bad).toThrow(/PEMBA_JWKS_ALLOWED_HOSTS/)
      expect(() => loadConfig({ env: { PEMBA_JWKS_ALLOWED_HOSTS: bad }, argv: [] })).toThrow(ConfigError)
    }
    expect(loadConfig({ env: { PEMBA_JWKS_ALLOWED_HOSTS: 'keys.internal, 10.1.0.0/16,fd00::/8,[::1]' }, argv: [] }).jwksAllowedHosts).toContain('keys.internal')
  })
})

describe('through the API: registering and using a token issuer', () => {
  const ISS = 'https://ci.example'
  const MODEL = { schema_version: '1.1', type_definitions: [{ type: 'service_account' }, { type: 'namespace', relations: { deployer: { this: {} } }, metadata: { relations: { deployer: { directly_related_user_types: [{ type: 'service_account' }] } } } }] }
  let client: TestClient | undefined
  afterEach(async () => {
    await client?.close()
    client = undefined
  })

  async function storeWithModel(c: TestClient): Promise<string> {
    const store = (await c.request('POST', '/stores', { name: 'ssrf' })).body.id as string
    expect((await c.request('POST', `/stores/${store}/authorization-models`, MODEL)).status).toBe(201)
    expect((await c.request('POST', `/stores/${store}/write`, { writes: { tuple_keys: [{ user: 'service_account:p', relation: 'deployer', object: 'namespace:prod' }] } })).status).toBe(200)
    return store
  }
  const issuer = (jwks_uri: string) => ({ issuer: ISS, audience: 'pemba', jwks_uri, subject_type: 'service_account' })
  async function token(): Promise<string> {
    const iat = Math.floor(Date.now() / 1000)
    return new SignJWT({ iss: ISS, aud: 'pemba', sub: 'p', iat, exp: iat + 600 }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)
  }

  it('an IP literal in a refused range is a 400 at registration, naming the rule', async () => {
    client = await createTestClient()
    const store = await storeWithModel(client)
    for (const [uri, rule] of [
      [`http://127.0.0.1:${internal.port}/jwks`, 'loopback'],
      [`http://0x7f000001:${internal.port}/jwks`, 'loopback'],
      [`https://169.254.169.254/keys`, 'link-local'],
      [`https://[fd00::1]/keys`, 'unique-local'],
      [`https://10.1.2.3/keys`, 'private'],
    ] as const) {
      const res = await client.request('PUT', `/stores/${store}/token-issuers/ci`, issuer(uri))
      expect(res.status, uri).toBe(400)
      expect(res.body.code).toBe('validation_error')
      expect(res.body.message).toContain(`a ${rule} address, which token issuers may not fetch keys from`)
    }
    expect((await client.request('GET', `/stores/${store}/token-issuers`)).body.token_issuers ?? []).toEqual([])
    expect(internal.requests).toEqual([])
  })

  it('a name resolving to loopback registers, but its keys are never fetched: the check fails closed', async () => {
    client = await createTestClient()
    const store = await storeWithModel(client)
    const put = await client.request('PUT', `/stores/${store}/token-issuers/ci`, issuer(`http://localhost:${internal.port}/jwks`))
    expect(put.status, put.text).toBe(201)
    const res = await client.request('POST', `/stores/${store}/check`, { tuple_key: { object: 'namespace:prod', relation: 'deployer' }, subject_token: await token() })
    expect(res.status, res.text).toBe(200)
    expect(res.body).toMatchObject({ allowed: false, reason: 'issuer_keys_unavailable' })
    expect(internal.requests).toEqual([])
  })

  it('PEMBA_JWKS_ALLOW_PRIVATE=on and PEMBA_JWKS_ALLOWED_HOSTS let the same issuer work', async () => {
    for (const config of [{ jwksAllowPrivate: 'on' as const }, { jwksAllowedHosts: '127.0.0.1' }, { jwksAllowedHosts: 'localhost' }]) {
      client = await createTestClient(config)
      const store = await storeWithModel(client)
      const host = 'jwksAllowedHosts' in config && config.jwksAllowedHosts === 'localhost' ? 'localhost' : '127.0.0.1'
      const put = await client.request('PUT', `/stores/${store}/token-issuers/ci`, issuer(`http://${host}:${internal.port}/jwks`))
      expect(put.status, put.text).toBe(201)
      const res = await client.request('POST', `/stores/${store}/check`, { tuple_key: { object: 'namespace:prod', relation: 'deployer' }, subject_token: await token() })
      expect(res.body, JSON.stringify(config)).toMatchObject({ allowed: true })
      await client.close()
      client = undefined
    }
    expect(internal.requests.length).toBe(3)
  })

  it("the operator's own key set (PEMBA_AUTH_OIDC_JWKS_URI) is trusted on loopback as before", async () => {
    const audience = 'pemba-api'
    client = await createTestClient({ authMode: 'oidc', authOidcIssuer: ISS, authOidcAudience: audience, authOidcJwksUri: `http://127.0.0.1:${internal.port}/jwks`, authAdminClients: 'p' })
    const iat = Math.floor(Date.now() / 1000)
    const t = await new SignJWT({ iss: ISS, aud: audience, sub: 'p', iat, exp: iat + 600 }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)
    const res = await client.request('GET', '/stores', undefined, { authorization: `Bearer ${t}` })
    expect(res.status, res.text).toBe(200)
    expect(internal.requests).toEqual(['GET /jwks'])
  })
})
