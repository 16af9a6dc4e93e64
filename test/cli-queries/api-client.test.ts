/**
 * The shared HTTP client of the server-facing commands (src/cli/api-client.ts), against real
 * servers: Pemba with preshared keys and with OIDC (a local identity provider's client
 * credentials flow), a closed port, and a real HTTP front that answers 429/503 or a proxy's
 * HTML page before handing requests to Pemba. The token and the client secret never appear in
 * anything printed. One test spawns `node bin/pemba.js` to show that a pipe gets JSON.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient, ApiError, tokenEndpoint } from '../../src/cli/api-client.ts'
import { queryCommand } from '../../src/cli/queries.ts'
import { keyOf, SMALL_MODEL } from '../helpers/auth.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { signingKey, startIdentityProvider, type IdentityProvider } from '../helpers/jwks-server.ts'
import { api, runPemba } from '../helpers/processes.ts'
import { startFront, type Front, type FrontAnswer } from './front.ts'

/** user, and document with `viewer: [user]`. */
const MODEL = SMALL_MODEL
const TUPLE = { user: 'user:anne', relation: 'viewer', object: 'document:1' }

/** seed makes a store with MODEL and TUPLE, sending `headers` (a bearer token) on each request. */
async function seed(url: string, headers: Record<string, string> = {}): Promise<string> {
  const send = async (method: string, path: string, body: unknown) => {
    const text = typeof body === 'string'
    const res = await fetch(url + path, {
      method,
      headers: { ...headers, 'content-type': text ? 'text/plain' : 'application/json' },
      body: text ? body : JSON.stringify(body),
    })
    expect(res.status, `${method} ${path}: ${await res.clone().text()}`).toBeLessThan(300)
    return (await res.json()) as { id?: string }
  }
  const store = await send('POST', '/stores', { name: 'api-client' })
  await send('POST', `/stores/${store.id}/authorization-models`, MODEL)
  await send('POST', `/stores/${store.id}/write`, { writes: { tuple_keys: [TUPLE] } })
  return store.id!
}

async function run(argv: string[], env: Record<string, string | undefined>) {
  const out: string[] = []
  const err: string[] = []
  const code = await queryCommand(argv, env, { log: (l) => out.push(l), error: (l) => err.push(l) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

const CHECK = ['check', TUPLE.user, TUPLE.relation, TUPLE.object, '--json']

describe('a bearer token (preshared keys)', () => {
  let s: ServedPemba
  let storeId: string
  const admin = keyOf('admin')
  const wrong = 'not-the-key-but-secret-looking-0123456789'

  beforeAll(async () => {
    s = await servePemba({ authMode: 'preshared', authPresharedKeys: `admin=${admin},ci=${keyOf('ci')}`, authAdminClients: 'admin' }, {}, [admin])
    storeId = await seed(s.url, { authorization: `Bearer ${admin}` })
  })
  afterAll(() => s.close())

  it('--api-token, FGA_API_TOKEN, then PEMBA_API_TOKEN; a flag wins over the variables', async () => {
    const base = { FGA_API_URL: s.url, FGA_STORE_ID: storeId }
    const allowed = JSON.stringify({ allowed: true, resolution: '' })
    expect(await run([...CHECK, '--api-token', admin], base)).toEqual({ code: 0, out: allowed, err: '' })
    expect((await run(CHECK, { ...base, FGA_API_TOKEN: admin })).out).toBe(allowed)
    expect((await run(CHECK, { ...base, PEMBA_API_TOKEN: admin })).out).toBe(allowed)
    expect((await run(CHECK, { ...base, FGA_API_TOKEN: admin, PEMBA_API_TOKEN: wrong })).out).toBe(allowed)
    expect((await run([...CHECK, '--api-token', admin], { ...base, FGA_API_TOKEN: wrong })).code).toBe(0)
    expect((await run(['check', TUPLE.user, TUPLE.relation, TUPLE.object, '--store-id', storeId, '--api-url', s.url, '--api-token', admin], {})).code).toBe(0)
  })

  it('no token, a wrong one, a forbidden client: the code, message and status, never the token', async () => {
    const base = { FGA_API_URL: s.url, FGA_STORE_ID: storeId }
    const none = await run(CHECK, base)
    expect(none.code).toBe(1)
    expect(none.err).toBe('pemba check: the server refused the request: HTTP 401 bearer_token_missing: missing bearer token')
    const bad = await run([...CHECK, '--api-token', wrong], base)
    expect(bad).toEqual({ code: 1, out: '', err: 'pemba check: the server refused the request: HTTP 401 unauthenticated: unauthenticated' })
    const ci = await run(CHECK, { ...base, FGA_API_TOKEN: keyOf('ci') })
    expect(ci.code).toBe(1)
    expect(ci.err).toMatch(/^pemba check: the server refused the request: HTTP 401 forbidden: client 'client:ci' lacks the '\w+' permission/)
    expect(ci.err).not.toContain(keyOf('ci'))
  })
})

describe('unreachable servers and busy ones', () => {
  let s: ServedPemba
  let storeId: string
  let front: Front
  let frontUrl: string
  /** What the front answers next, one status per request, before passing requests on to Pemba. */
  const script: FrontAnswer[] = []
  let seen = 0

  beforeAll(async () => {
    s = await servePemba()
    storeId = await seed(s.url)
    front = await startFront(s.url, () => {
      seen++
      return script.shift()
    })
    frontUrl = front.url
  })
  afterAll(async () => {
    await front.close()
    await s.close()
  })

  it('a closed port: exit 1 naming the URL', async () => {
    // A port that was just free: nothing listens there now.
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const closed = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`
    await new Promise((resolve) => probe.close(resolve))
    const r = await run(CHECK, { FGA_API_URL: closed, FGA_STORE_ID: storeId })
    expect(r).toEqual({ code: 1, out: '', err: `pemba check: cannot reach the server at ${closed} (ECONNREFUSED)` })
  })

  it('503 and 429 are retried with backoff, then the answer is used', async () => {
    script.push({ status: 503, body: '{"code":"unavailable","message":"busy"}' }, { status: 429, headers: { 'retry-after': '0' } })
    seen = 0
    const r = await run(CHECK, { FGA_API_URL: frontUrl, FGA_STORE_ID: storeId })
    expect(r).toEqual({ code: 0, out: JSON.stringify({ allowed: true, resolution: '' }), err: '' })
    expect(seen).toBe(3)
  })

  it('retries are bounded: the last refusal is reported with its status; Retry-After is honoured', async () => {
    const waits: number[] = []
    const client = new ApiClient({ url: frontUrl, storeId }, fetch, { sleep: async (ms) => void waits.push(ms) })
    for (let i = 0; i < 4; i++) script.push({ status: 429, headers: { 'retry-after': i === 0 ? '2' : '600' }, body: '{"code":"resource_exhausted","message":"slow down"}' })
    seen = 0
    const err = await client.request('POST', client.storePath('/check'), { tuple_key: TUPLE }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).toMatchObject({ status: 429, code: 'resource_exhausted', message: 'slow down' })
    expect((err as ApiError).describe()).toBe('the server refused the request: HTTP 429 resource_exhausted: slow down')
    expect(seen).toBe(4)
    // Retry-After in seconds, at most 5 s.
    expect(waits).toEqual([2000, 5000, 5000])
    // Without Retry-After: 200 ms, doubled each time.
    const backoff: number[] = []
    const plain = new ApiClient({ url: frontUrl, storeId }, fetch, { retries: 2, sleep: async (ms) => void backoff.push(ms) })
    for (let i = 0; i < 3; i++) script.push({ status: 503 })
    expect(await plain.request('POST', plain.storePath('/check'), { tuple_key: TUPLE }).catch((e: ApiError) => e.code)).toBe('http_503')
    expect(backoff).toEqual([200, 400])
    // Other refusals are not retried.
    script.push({ status: 500, body: '{"code":"internal_error","message":"boom"}' })
    seen = 0
    expect(await plain.request('POST', plain.storePath('/check'), { tuple_key: TUPLE }).catch((e: ApiError) => e.status)).toBe(500)
    expect(seen).toBe(1)
  })

  it("a proxy's HTML error page and a non-JSON success are reported, not parsed", async () => {
    script.push({ status: 502, headers: { 'content-type': 'text/html' }, body: '<html>\n<h1>502 Bad Gateway</h1>\n</html>' })
    const r = await run(CHECK, { FGA_API_URL: frontUrl, FGA_STORE_ID: storeId })
    expect(r).toEqual({ code: 1, out: '', err: 'pemba check: the server refused the request: HTTP 502 http_502: <html> <h1>502 Bad Gateway</h1> </html>' })
    script.push({ status: 200, body: 'ok' })
    const ok = await run(CHECK, { FGA_API_URL: frontUrl, FGA_STORE_ID: storeId })
    expect(ok.code).toBe(1)
    expect(ok.err).toContain(`the server at ${frontUrl} answered POST /stores/${storeId}/check with something other than JSON: ok`)
  })

  it('piped stdout gets JSON from the installed command (node bin/pemba.js)', async () => {
    const env = { FGA_API_URL: s.url, FGA_STORE_ID: storeId }
    const p = runPemba(['check', TUPLE.user, TUPLE.relation, TUPLE.object], env)
    const denied = runPemba(['check', 'user:bob', TUPLE.relation, TUPLE.object, '--exit-code', '--table'], env)
    try {
      expect(await p.exited).toBe(0)
      expect(p.stdout()).toBe('{"allowed":true,"resolution":""}\n')
      expect(await denied.exited).toBe(3)
      expect(denied.stdout()).toBe('denied\n')
    } finally {
      p.kill()
      denied.kill()
    }
  })
})

describe('client credentials (OIDC), as the OpenFGA CLI runs them', () => {
  const AUDIENCE = 'https://pemba.example/'
  const SECRET = 'ci-client-secret-0123456789'
  let idp: IdentityProvider
  let s: ServedPemba
  let storeId: string

  beforeAll(async () => {
    const key = await signingKey('idp', 'RS256')
    const tokens = { issuer: '', clients: { ci: SECRET }, key }
    idp = await startIdentityProvider([key], tokens)
    tokens.issuer = `${idp.url}/`
    s = await servePemba({
      authMode: 'oidc',
      authOidcIssuer: tokens.issuer,
      authOidcAudience: AUDIENCE,
      authOidcJwksUri: idp.jwksUri,
      authAdminClients: 'ci',
    })
    const client = new ApiClient({ url: s.url, clientCredentials: { clientId: 'ci', clientSecret: SECRET, tokenIssuer: idp.url, audience: AUDIENCE } })
    storeId = (await client.request<{ id: string }>('POST', '/stores', { name: 'client-credentials' })).id
    const scoped = new ApiClient({ ...client.target, storeId })
    await scoped.request('POST', scoped.storePath('/authorization-models'), MODEL)
    await scoped.request('POST', scoped.storePath('/write'), { writes: { tuple_keys: [TUPLE] } })
  })
  afterAll(async () => {
    await s.close()
    await idp.close()
  })

  it('FGA_CLIENT_ID, FGA_CLIENT_SECRET, FGA_API_TOKEN_ISSUER, FGA_API_AUDIENCE, FGA_API_SCOPES: one token request per command', async () => {
    const env = {
      FGA_API_URL: s.url,
      FGA_STORE_ID: storeId,
      FGA_CLIENT_ID: 'ci',
      FGA_CLIENT_SECRET: SECRET,
      FGA_API_TOKEN_ISSUER: idp.url,
      FGA_API_AUDIENCE: AUDIENCE,
      FGA_API_SCOPES: 'read:tuples check',
      // The examples' token yields to the client credentials.
      PEMBA_API_TOKEN: 'examples-token-0123456789',
    }
    const before = idp.tokenRequests.length
    expect(await run([...CHECK.slice(0, 4), '--json'], env)).toEqual({ code: 0, out: '{"allowed":true,"resolution":""}', err: '' })
    const read = await run(['read', '--page-size', '1', '--json'], env)
    expect(JSON.parse(read.out).tuples).toHaveLength(1)
    expect(idp.tokenRequests.slice(before)).toEqual([
      { grant_type: 'client_credentials', client_id: 'ci', client_secret: SECRET, audience: AUDIENCE, scope: 'read:tuples check' },
      { grant_type: 'client_credentials', client_id: 'ci', client_secret: SECRET, audience: AUDIENCE, scope: 'read:tuples check' },
    ])
  })

  it('a refused secret: exit 1 naming the token endpoint, without the secret', async () => {
    const wrong = 'wrong-secret-0123456789abcdef'
    const r = await run([...CHECK, '--client-id', 'ci', '--client-secret', wrong, '--api-token-issuer', idp.url], { FGA_API_URL: s.url, FGA_STORE_ID: storeId })
    expect(r.code).toBe(1)
    expect(r.err).toBe(`pemba check: the token issuer ${idp.url}/oauth/token refused the client credentials (HTTP 401): invalid_client`)
    expect(r.err).not.toContain(wrong)
  })

  it('the token endpoint is found as the OpenFGA SDKs find it', () => {
    expect(tokenEndpoint('fga.us.auth0.com')).toBe('https://fga.us.auth0.com/oauth/token')
    expect(tokenEndpoint('https://issuer.example/')).toBe('https://issuer.example/oauth/token')
    expect(tokenEndpoint('http://127.0.0.1:4000/custom/token?x=1')).toBe('http://127.0.0.1:4000/custom/token?x=1')
  })
})
