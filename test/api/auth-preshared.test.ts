/**
 * Authentication with preshared keys, the configuration that sets it up, and `none` mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { SYSTEM_STORE_ID } from '../../src/auth/access-control.ts'
import { createPresharedClient, keyOf, type AuthedClient } from '../helpers/auth.ts'
import { createTestClient } from '../helpers/client.ts'

let t: AuthedClient
let store: string

beforeAll(async () => {
  t = await createPresharedClient(['root', 'ci'], { authAdminClients: 'root' })
  store = (await t.as('root', 'POST', '/stores', { name: 'preshared' })).body.id
})
afterAll(() => t.close())

describe('preshared keys', () => {
  it('no Authorization header: 401 bearer_token_missing', async () => {
    const r = await t.request('POST', `/stores/${store}/check`, {})
    expect(r.status).toBe(401)
    expect(r.body).toEqual({ code: 'bearer_token_missing', message: 'missing bearer token' })
    expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('another scheme, or an empty token: 401 bearer_token_missing', async () => {
    for (const authorization of [`Basic ${keyOf('root')}`, 'Bearer', 'Bearer ', keyOf('root')]) {
      const r = await t.request('GET', '/stores', undefined, { authorization })
      expect(r.status, authorization).toBe(401)
      expect(r.body.code).toBe('bearer_token_missing')
    }
  })

  it('a wrong key: 401 unauthenticated, and the key is never echoed', async () => {
    for (const token of ['not-a-key-at-all-000000', keyOf('root') + 'x', keyOf('root').slice(0, -1), keyOf('nobody')]) {
      const r = await t.request('GET', '/stores', undefined, { authorization: `Bearer ${token}` })
      expect(r.status).toBe(401)
      expect(r.body).toEqual({ code: 'unauthenticated', message: 'unauthenticated' })
      expect(r.text).not.toContain(token)
    }
  })

  it('the scheme is case-insensitive; each key is its own client', async () => {
    const r = await t.request('GET', '/stores', undefined, { authorization: `bearer ${keyOf('root')}` })
    expect(r.status).toBe(200)
    const ci = await t.as('ci', 'GET', `/stores/${store}`)
    expect(ci.body).toEqual({ code: 'forbidden', message: `client 'client:ci' lacks the 'admin' permission on store '${store}'` })
  })

  it('/healthz stays open; /metrics needs an authenticated client (any)', async () => {
    expect((await t.request('GET', '/healthz')).body).toEqual({ status: 'SERVING' })
    expect((await t.request('GET', '/metrics')).body.code).toBe('bearer_token_missing')
    const m = await t.as('ci', 'GET', '/metrics')
    expect(m.status).toBe(200)
    expect(m.text).toContain('pemba_check_cache_hits_total')
  })

  it('unknown paths still answer 404 to an authenticated client, 401 to anyone else', async () => {
    expect((await t.as('ci', 'GET', '/nope')).body.code).toBe('undefined_endpoint')
    expect((await t.request('GET', '/nope')).body.code).toBe('bearer_token_missing')
  })
})

describe('none mode', () => {
  it('everything is allowed and the system store stays hidden', async () => {
    const c = await createTestClient()
    try {
      const s = await c.request('POST', '/stores', { name: 'open' })
      expect(s.status).toBe(201)
      expect((await c.request('GET', `/stores/${s.body.id}`)).status).toBe(200)
      const list = await c.request('GET', '/stores')
      expect(list.body.stores.map((x: { id: string }) => x.id)).toEqual([s.body.id])
      expect(await c.pemba.datastore.getStore(SYSTEM_STORE_ID)).toBeDefined()
      // Grants can be prepared before authentication is switched on.
      const g = await c.request('POST', '/system/grants', { client: 'ci', role: 'reader', store: s.body.id })
      expect(g.status).toBe(200)
    } finally {
      await c.close()
    }
  })
})

describe('configuration', () => {
  const load = (env: Record<string, string>) => () => loadConfig({ env, argv: [] })
  const secret = 'sup3r-s3cret-key-value-123'

  it('reads the modes and keys', () => {
    const c = loadConfig({
      env: { PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: ` provisioner=${secret} , ci=${secret}2==`, PEMBA_AUTH_ADMIN_CLIENTS: 'provisioner' },
      argv: [],
    })
    expect(c.authMode).toBe('preshared')
    expect(loadConfig({ env: {}, argv: [] }).authMode).toBe('none')
    expect(loadConfig({ env: {}, argv: ['--auth-mode', 'none'] }).authMode).toBe('none')
  })

  it('refuses malformed settings with a clear message that never shows a key', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ PEMBA_AUTH_MODE: 'jwt' }, /PEMBA_AUTH_MODE must be 'none', 'preshared' or 'oidc'/],
      [{ PEMBA_AUTH_MODE: 'preshared' }, /needs PEMBA_AUTH_PRESHARED_KEYS/],
      [{ PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: secret }, /entry 1 is malformed/],
      [{ PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: `ci=${secret},=${secret}x` }, /entry 2 is malformed/],
      [{ PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: `ci=short` }, /at least 16 characters/],
      [{ PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: `c:i=${secret}` }, /may not contain ':'/],
      [{ PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: `ci=${secret},ci=${secret}x` }, /named twice/],
      [{ PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: `ci=${secret},cd=${secret}` }, /same key/],
      [{ PEMBA_AUTH_ADMIN_CLIENTS: 'ok,bad name' }, /PEMBA_AUTH_ADMIN_CLIENTS entry 2/],
      [{ PEMBA_AUTH_MODE: 'oidc', PEMBA_AUTH_OIDC_AUDIENCE: 'a', PEMBA_AUTH_OIDC_JWKS_URI: 'https://x/jwks' }, /needs PEMBA_AUTH_OIDC_ISSUER/],
      [{ PEMBA_AUTH_MODE: 'oidc', PEMBA_AUTH_OIDC_ISSUER: 'i', PEMBA_AUTH_OIDC_JWKS_URI: 'https://x/jwks' }, /needs PEMBA_AUTH_OIDC_AUDIENCE/],
      [{ PEMBA_AUTH_MODE: 'oidc', PEMBA_AUTH_OIDC_ISSUER: 'i', PEMBA_AUTH_OIDC_AUDIENCE: 'a' }, /exactly one of/],
      [
        { PEMBA_AUTH_MODE: 'oidc', PEMBA_AUTH_OIDC_ISSUER: 'i', PEMBA_AUTH_OIDC_AUDIENCE: 'a', PEMBA_AUTH_OIDC_JWKS_URI: 'http://idp.example/jwks' },
        /must be an https:\/\/ URL/,
      ],
      [
        { PEMBA_AUTH_MODE: 'oidc', PEMBA_AUTH_OIDC_ISSUER: 'i', PEMBA_AUTH_OIDC_AUDIENCE: 'a', PEMBA_AUTH_OIDC_JWKS_FILE: '/no/such/jwks.json' },
        /cannot be read/,
      ],
    ]
    for (const [env, message] of cases) {
      expect(load(env), JSON.stringify(env)).toThrow(message)
      try {
        load(env)()
      } catch (e) {
        expect((e as Error).message).not.toContain(secret)
        expect((e as Error).name).toBe('Error')
        expect(e?.constructor.name).toBe('ConfigError')
      }
    }
  })
})
