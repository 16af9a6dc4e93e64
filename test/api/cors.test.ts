/**
 * Browsers and CORS (src/api/cors.ts): off by default, allowed origins only when configured,
 * `*` never with credentials, and a state-changing request from any other origin refused with
 * nothing written (the `curl -H 'Origin: https://evil.example' -H 'Content-Type: text/plain'
 * -d … /write` hole of issue 16).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig, ConfigError } from '../../src/config.ts'
import { BrowserSettingError, parseCorsOrigins } from '../../src/api/cors.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const MODEL = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n'
const EVIL = 'https://evil.example'

let client: TestClient | undefined
afterEach(async () => {
  await client?.close()
  client = undefined
})

/** The Access-Control-* headers of an answer. */
function corsHeaders(headers: Headers): Record<string, string> {
  return Object.fromEntries([...headers].filter(([k]) => k.startsWith('access-control-')))
}

async function readTuples(c: TestClient, storeId: string): Promise<unknown[]> {
  const r = await c.request('POST', `/stores/${storeId}/read`, {})
  expect(r.status, r.text).toBe(200)
  return r.body.tuples
}

describe('CORS off (the default)', () => {
  it('sends no Access-Control-Allow-* header to any origin, on answers and errors alike', async () => {
    client = await createTestClient()
    const { storeId } = await setup(client, MODEL, ['doc:1#viewer@user:anne'])
    for (const origin of [EVIL, 'http://localhost:3000', 'null']) {
      const get = await client.request('GET', '/stores', undefined, { origin })
      expect(get.status).toBe(200)
      expect(corsHeaders(get.headers)).toEqual({})
      expect(get.headers.get('vary')).toBeNull()
      const missing = await client.request('GET', `/stores/${storeId}/authorization-models/nope`, undefined, { origin })
      expect(missing.status).toBe(400)
      expect(corsHeaders(missing.headers)).toEqual({})
    }
  })

  it('does not answer a preflight with allow headers', async () => {
    client = await createTestClient()
    const { storeId } = await setup(client, MODEL)
    const pre = await client.request('OPTIONS', `/stores/${storeId}/write`, undefined, {
      origin: EVIL,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    })
    expect(pre.status).toBe(403)
    expect(pre.body.code).toBe('forbidden')
    expect(corsHeaders(pre.headers)).toEqual({})
  })

  it('refuses a cross-origin text/plain write (no preflight needed) and writes nothing', async () => {
    client = await createTestClient()
    const { storeId } = await setup(client, MODEL)
    const body = JSON.stringify({ writes: { tuple_keys: [tupleKey('doc:1#viewer@user:mallory')] } })
    const res = await client.request('POST', `/stores/${storeId}/write`, body, { origin: EVIL, 'content-type': 'text/plain' })
    expect(res.status).toBe(403)
    expect(res.body).toEqual({
      code: 'forbidden',
      message: `POST request from origin '${EVIL}' not allowed; set PEMBA_CORS_ORIGINS to let a web page on that origin call Pemba`,
    })
    expect(res.headers.get('x-request-id')).toBeTruthy()
    expect(corsHeaders(res.headers)).toEqual({})
    expect(await readTuples(client, storeId)).toEqual([])
  })

  it('refuses every state-changing method from a foreign origin, and an opaque `null` origin', async () => {
    client = await createTestClient()
    const { storeId, modelId } = await setup(client, MODEL)
    const attempts: [string, string, unknown][] = [
      ['POST', '/stores', { name: 'planted' }],
      ['DELETE', `/stores/${storeId}`, undefined],
      ['PUT', `/stores/${storeId}/assertions/${modelId}`, { assertions: [] }],
      ['PATCH', `/stores/${storeId}`, undefined],
    ]
    for (const origin of [EVIL, 'null']) {
      for (const [method, path, body] of attempts) {
        const r = await client.request(method, path, body, { origin })
        expect(r.status, `${method} ${path} from ${origin}`).toBe(403)
        expect(r.body.code).toBe('forbidden')
      }
    }
    // Nothing changed: the store is there, alone, and still answers.
    const stores = await client.request('GET', '/stores')
    expect(stores.body.stores.map((s: { id: string }) => s.id)).toEqual([storeId])
  })

  it('lets reads from a foreign origin through (the page cannot read them) and requests without Origin', async () => {
    client = await createTestClient()
    const { storeId } = await setup(client, MODEL, ['doc:1#viewer@user:anne'])
    const check = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:1#viewer@user:anne') })
    expect(check.body.allowed).toBe(true)
    const get = await client.request('GET', `/stores/${storeId}`, undefined, { origin: EVIL })
    expect(get.status).toBe(200)
    expect(corsHeaders(get.headers)).toEqual({})
  })

  it("accepts a write from the server's own origin (its Host, whatever the scheme a TLS proxy ended)", async () => {
    client = await createTestClient()
    const { storeId } = await setup(client, MODEL)
    const write = { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:anne')] } }
    // app.request('/…') is addressed to http://localhost.
    const own = await client.request('POST', `/stores/${storeId}/write`, write, { origin: 'http://localhost' })
    expect(own.status, own.text).toBe(200)
    // Behind a proxy that ends TLS the page is https://localhost while the request arrives as http.
    const del = { deletes: { tuple_keys: [tupleKey('doc:1#viewer@user:anne')] } }
    const proxied = await client.request('POST', `/stores/${storeId}/write`, del, { origin: 'https://localhost' })
    expect(proxied.status, proxied.text).toBe(200)
    expect((await client.request('POST', `/stores/${storeId}/write`, write, { origin: 'https://localhost' })).status).toBe(200)
    const otherPort = await client.request('POST', `/stores/${storeId}/write`, write, { origin: 'http://localhost:3000' })
    expect(otherPort.status).toBe(403)
    expect(await readTuples(client, storeId)).toHaveLength(1)
  })
})

describe('CORS with PEMBA_CORS_ORIGINS', () => {
  const APP = 'https://console.example'

  it('answers a preflight from a listed origin, with credentials, and exposes the response headers', async () => {
    client = await createTestClient({ corsOrigins: `${APP}, http://localhost:3000` })
    const { storeId } = await setup(client, MODEL)
    const pre = await client.request('OPTIONS', `/stores/${storeId}/check`, undefined, {
      origin: APP,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, x-openfga-client-method',
    })
    expect(pre.status).toBe(204)
    expect(corsHeaders(pre.headers)).toEqual({
      'access-control-allow-origin': APP,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET,POST,HEAD,PATCH,DELETE,PUT',
      'access-control-allow-headers': 'content-type, x-openfga-client-method',
      'access-control-max-age': '600',
    })
    expect(pre.headers.get('vary')).toBe('Origin')
    const write = await client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:anne')] } }, { origin: APP })
    expect(write.status).toBe(200)
    expect(write.headers.get('access-control-allow-origin')).toBe(APP)
    expect(write.headers.get('access-control-expose-headers')).toBe('X-Request-Id,Openfga-Authorization-Model-Id,Pemba-Result-Truncated')
    // An error answer carries the headers too, so the page can read why.
    const bad = await client.request('POST', `/stores/${storeId}/check`, {}, { origin: APP })
    expect(bad.status).toBe(400)
    expect(bad.headers.get('access-control-allow-origin')).toBe(APP)
    expect(await readTuples(client, storeId)).toHaveLength(1)
  })

  it('gives an unlisted origin nothing and refuses its writes and preflights', async () => {
    client = await createTestClient({ corsOrigins: APP })
    const { storeId } = await setup(client, MODEL)
    const get = await client.request('GET', '/stores', undefined, { origin: EVIL })
    expect(get.status).toBe(200)
    expect(corsHeaders(get.headers)).toEqual({})
    // The answer depends on Origin, so every answer says so (for caches), Origin or not.
    expect(get.headers.get('vary')).toBe('Origin')
    expect((await client.request('GET', '/stores')).headers.get('vary')).toBe('Origin')
    const pre = await client.request('OPTIONS', `/stores/${storeId}/write`, undefined, { origin: EVIL, 'access-control-request-method': 'POST' })
    expect(pre.status).toBe(403)
    expect(corsHeaders(pre.headers)).toEqual({})
    const write = await client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:x')] } }, { origin: EVIL })
    expect(write.status).toBe(403)
    // An origin differing only by scheme or port is another origin.
    const http = await client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:x')] } }, { origin: 'http://console.example' })
    expect(http.status).toBe(403)
    expect(await readTuples(client, storeId)).toEqual([])
  })

  it("'*' allows any origin without credentials: a literal '*', never the echoed origin", async () => {
    client = await createTestClient({ corsOrigins: '*' })
    const { storeId } = await setup(client, MODEL)
    const pre = await client.request('OPTIONS', `/stores/${storeId}/write`, undefined, {
      origin: EVIL,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get('access-control-allow-origin')).toBe('*')
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull()
    expect(pre.headers.get('access-control-allow-headers')).toBe('authorization, content-type')
    const write = await client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:anne')] } }, { origin: EVIL })
    expect(write.status).toBe(200)
    expect(corsHeaders(write.headers)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-expose-headers': 'X-Request-Id,Openfga-Authorization-Model-Id,Pemba-Result-Truncated',
    })
    expect(await readTuples(client, storeId)).toHaveLength(1)
  })

  it('with authentication on, a preflight needs no credentials and a 401 is readable by the page', async () => {
    const key = 'cors-test-key-0123456789'
    client = await createTestClient({ corsOrigins: APP, authMode: 'preshared', authPresharedKeys: `ci=${key}`, authAdminClients: 'ci' })
    const pre = await client.request('OPTIONS', '/stores', undefined, { origin: APP, 'access-control-request-method': 'POST' })
    expect(pre.status).toBe(204)
    const denied = await client.request('POST', '/stores', { name: 'cors-store' }, { origin: APP })
    expect(denied.status).toBe(401)
    expect(denied.headers.get('access-control-allow-origin')).toBe(APP)
    // An unlisted origin is refused before its token is even looked at.
    const foreign = await client.request('POST', '/stores', { name: 'cors-store' }, { origin: EVIL, authorization: `Bearer ${key}` })
    expect(foreign.status).toBe(403)
    const ok = await client.request('POST', '/stores', { name: 'cors-store' }, { origin: APP, authorization: `Bearer ${key}` })
    expect(ok.status).toBe(201)
  })
})

describe('PEMBA_CORS_ORIGINS is checked at start', () => {
  it.each([
    ['https://console.example/', "did you mean 'https://console.example'?"],
    ['https://Console.example', "did you mean 'https://console.example'?"],
    ['https://console.example:443', "did you mean 'https://console.example'?"],
    ['console.example', 'is not an origin'],
    ['ftp://files.example', 'is not an http or https origin'],
    ['*,https://console.example', "'*' (any origin, without credentials) cannot be combined"],
  ])('refuses %s', (value, words) => {
    expect(() => parseCorsOrigins(value)).toThrow(BrowserSettingError)
    expect(() => parseCorsOrigins(value)).toThrow(words)
    expect(() => parseCorsOrigins(value)).toThrow(/^PEMBA_CORS_ORIGINS: /)
  })

  it('reads the empty setting as off, and lists as exact origins', () => {
    expect(parseCorsOrigins(' ')).toEqual({ kind: 'off' })
    expect(parseCorsOrigins('*')).toEqual({ kind: 'any' })
    const list = parseCorsOrigins('https://a.example, http://localhost:3000,')
    expect(list.kind === 'list' && [...list.origins]).toEqual(['https://a.example', 'http://localhost:3000'])
  })

  it('stops loadConfig (and so the server) with a ConfigError naming the setting', () => {
    expect(() => loadConfig({ env: { PEMBA_CORS_ORIGINS: 'https://a.example/app' }, argv: [] })).toThrow(ConfigError)
    expect(() => loadConfig({ env: { PEMBA_CORS_ORIGINS: 'https://a.example/app' }, argv: [] })).toThrow(/PEMBA_CORS_ORIGINS/)
  })
})
