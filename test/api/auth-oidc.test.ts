/**
 * Authentication with OIDC client tokens (JWTs): signature, issuer, audience, expiry, the
 * allowed algorithms, which claim names the client, local JWKS files, and the bound on JWKS
 * refetches that keeps a flood of unknown `kid`s from becoming a flood of requests to the issuer.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, base64url } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { sign, signingKey, startIdentityProvider, type IdentityProvider, type SigningKey } from '../helpers/jwks-server.ts'

const ISSUER = 'https://idp.example/'
const AUDIENCE = 'https://pemba.example/'
const now = () => Math.floor(Date.now() / 1000)

let rsa: SigningKey
let ec: SigningKey
let idp: IdentityProvider
let t: TestClient

const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISSUER, aud: AUDIENCE, sub: 'svc-deployer', exp: now() + 600, ...extra })
const call = (token: string, path = '/stores') => t.request('GET', path, undefined, { authorization: `Bearer ${token}` })

beforeAll(async () => {
  rsa = await signingKey('rsa-1', 'RS256')
  ec = await signingKey('ec-1', 'ES256')
  idp = await startIdentityProvider([rsa, ec])
  t = await createTestClient({
    authMode: 'oidc',
    authOidcIssuer: ISSUER,
    authOidcAudience: AUDIENCE,
    authOidcJwksUri: idp.jwksUri,
    authOidcClockSkewSeconds: 30,
    authAdminClients: 'root-app',
  })
})
afterAll(async () => {
  await t.close()
  await idp.close()
})

describe('OIDC client tokens', () => {
  it('accepts RS256 and ES256 tokens from the issuer; the client is client_id, else azp, else sub', async () => {
    expect((await call(await sign(rsa, claims({ client_id: 'root-app' })))).status).toBe(200)
    expect((await call(await sign(ec, claims({ azp: 'root-app' })))).status).toBe(200)
    expect((await call(await sign(ec, claims({ sub: 'root-app' })))).status).toBe(200)
    // The identity shows in what it may not do.
    const r = await call(await sign(rsa, claims({ client_id: 'ci', azp: 'root-app', sub: 'root-app' })), '/system/grants')
    expect(r.body).toEqual({ code: 'forbidden', message: "client 'client:ci' lacks the 'admin' permission on the system" })
    const azp = await call(await sign(rsa, claims({ azp: 'agent-7', sub: 'root-app' })), '/system/grants')
    expect(azp.body.message).toContain("client 'client:agent-7'")
  })

  it('a wrong issuer or audience: auth_failed_invalid_issuer / auth_failed_invalid_audience', async () => {
    const iss = await call(await sign(rsa, claims({ iss: 'https://evil.example/' })))
    expect(iss.status).toBe(401)
    expect(iss.body).toEqual({ code: 'auth_failed_invalid_issuer', message: 'invalid issuer' })
    const aud = await call(await sign(rsa, claims({ aud: 'https://other.example/' })))
    expect(aud.status).toBe(401)
    expect(aud.body).toEqual({ code: 'auth_failed_invalid_audience', message: 'invalid audience' })
  })

  it('expiry and not-before, with the configured clock skew', async () => {
    const expired = await call(await sign(rsa, claims({ exp: now() - 120 })))
    expect(expired.body).toEqual({ code: 'unauthenticated', message: 'unauthenticated' })
    expect((await call(await sign(rsa, claims({ client_id: 'root-app', exp: now() - 10 })))).status).toBe(200)
    expect((await call(await sign(rsa, claims({ nbf: now() + 120 })))).body.code).toBe('unauthenticated')
    expect((await call(await sign(rsa, claims({ client_id: 'root-app', nbf: now() + 10 })))).status).toBe(200)
    const noExp = { iss: ISSUER, aud: AUDIENCE, sub: 'root-app' }
    expect((await call(await sign(rsa, noExp))).body.code).toBe('unauthenticated')
  })

  it('a token accepted (and remembered) before it expires is refused once it has', async () => {
    const c = await createTestClient({
      authMode: 'oidc',
      authOidcIssuer: ISSUER,
      authOidcAudience: AUDIENCE,
      authOidcJwksUri: idp.jwksUri,
      authOidcClockSkewSeconds: 0,
      authAdminClients: 'root-app',
    })
    try {
      const exp = now() + 2
      const token = await sign(rsa, claims({ client_id: 'root-app', exp }))
      const ask = () => c.request('GET', '/stores', undefined, { authorization: `Bearer ${token}` })
      expect((await ask()).status).toBe(200)
      expect((await ask()).status).toBe(200)
      await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50))
      expect((await ask()).body).toEqual({ code: 'unauthenticated', message: 'unauthenticated' })
    } finally {
      await c.close()
    }
  })

  it('refuses tokens signed by another key, HS256, alg none, garbage; never echoes the token', async () => {
    const impostor = await signingKey('rsa-1', 'RS256') // same kid, different key
    const forged = await sign(impostor, claims())
    const hs = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).sign(new TextEncoder().encode('x'.repeat(32)))
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify(claims({ client_id: 'root-app' })))}.`
    for (const token of [forged, hs, none, 'not.a.jwt', 'garbage']) {
      const r = await call(token)
      expect(r.status, token).toBe(401)
      expect(r.body).toEqual({ code: 'unauthenticated', message: 'unauthenticated' })
      expect(r.text).not.toContain(token)
    }
  })

  it('a client name the system store cannot hold: auth_failed_invalid_subject', async () => {
    const r = await call(await sign(rsa, claims({ client_id: 'bad:name' })))
    expect(r.status).toBe(401)
    expect(r.body.code).toBe('auth_failed_invalid_subject')
  })

  it('no bearer token: bearer_token_missing', async () => {
    expect((await t.request('GET', '/stores')).body).toEqual({ code: 'bearer_token_missing', message: 'missing bearer token' })
  })
})

describe('the JWKS refetch bound', () => {
  it('a flood of unknown kids costs at most one JWKS fetch per cooldown; a rotated key is found after it', async () => {
    const k1 = await signingKey('k1')
    const rotated = await signingKey('k2')
    const own = await startIdentityProvider([k1])
    const c = await createTestClient({
      authMode: 'oidc',
      authOidcIssuer: ISSUER,
      authOidcAudience: AUDIENCE,
      authOidcJwksUri: own.jwksUri,
      authJwksCooldownMs: 1_000,
      authAdminClients: 'root-app',
    })
    try {
      const ok = await sign(k1, claims({ client_id: 'root-app' }))
      expect((await c.request('GET', '/stores', undefined, { authorization: `Bearer ${ok}` })).status).toBe(200)
      expect(own.jwksFetches()).toBe(1)
      // 200 tokens naming kids the issuer never published, all at once and then one by one.
      const attackers = await Promise.all(Array.from({ length: 100 }, (_, i) => sign(rotated, claims(), { kid: `made-up-${i}` })))
      const burst = await Promise.all(attackers.map((tok) => c.request('GET', '/stores', undefined, { authorization: `Bearer ${tok}` })))
      for (const tok of attackers) await c.request('GET', '/stores', undefined, { authorization: `Bearer ${tok}` })
      expect(burst.every((r) => r.status === 401 && r.body.code === 'unauthenticated')).toBe(true)
      expect(own.jwksFetches()).toBe(1)
      // The issuer rotates to k2; once the cooldown has passed, one fetch picks it up.
      own.published = [k1, rotated]
      await new Promise((r) => setTimeout(r, 1_100))
      const fresh = await sign(rotated, claims({ client_id: 'root-app' }))
      const results = await Promise.all(
        Array.from({ length: 20 }, () => c.request('GET', '/stores', undefined, { authorization: `Bearer ${fresh}` })),
      )
      expect(results.every((r) => r.status === 200)).toBe(true)
      expect(own.jwksFetches()).toBe(2)
    } finally {
      await c.close()
      await own.close()
    }
  })

  it('while the issuer fails, a flood of tokens still costs at most one fetch per cooldown', async () => {
    const k = await signingKey('k')
    const own = await startIdentityProvider([k])
    own.failing = true
    const c = await createTestClient({
      authMode: 'oidc',
      authOidcIssuer: ISSUER,
      authOidcAudience: AUDIENCE,
      authOidcJwksUri: own.jwksUri,
      authJwksCooldownMs: 1_000,
      authAdminClients: 'root-app',
    })
    try {
      const token = await sign(k, claims({ client_id: 'root-app' }))
      const ask = () => c.request('GET', '/stores', undefined, { authorization: `Bearer ${token}` })
      const burst = await Promise.all(Array.from({ length: 50 }, ask))
      for (let i = 0; i < 50; i++) burst.push(await ask())
      expect(burst.every((r) => r.status === 500 && r.body.code === 'unavailable')).toBe(true)
      expect(own.jwksFetches()).toBe(1)
      // The issuer recovers; after the cooldown the next token fetches again and passes.
      own.failing = false
      await new Promise((r) => setTimeout(r, 1_100))
      expect((await ask()).status).toBe(200)
      expect(own.jwksFetches()).toBe(2)
    } finally {
      await c.close()
      await own.close()
    }
  })

  it('an issuer whose key set cannot be fetched: a retryable 500 unavailable, not the caller’s fault', async () => {
    const k = await signingKey('k')
    const gone = await startIdentityProvider([k])
    const uri = gone.jwksUri
    await gone.close()
    const c = await createTestClient({
      authMode: 'oidc',
      authOidcIssuer: ISSUER,
      authOidcAudience: AUDIENCE,
      authOidcJwksUri: uri,
    })
    try {
      const r = await c.request('GET', '/stores', undefined, { authorization: `Bearer ${await sign(k, claims())}` })
      expect(r.status).toBe(500)
      expect(r.body).toEqual({ code: 'unavailable', message: "the token issuer's key set could not be fetched" })
    } finally {
      await c.close()
    }
  })
})

describe('a local JWKS file', () => {
  it('verifies tokens against the keys in the file, with no fetch', async () => {
    const k = await signingKey('file-key', 'ES256')
    const dir = mkdtempSync(join(tmpdir(), 'pemba-jwks-'))
    const file = join(dir, 'jwks.json')
    writeFileSync(file, JSON.stringify({ keys: [k.publicJwk] }))
    const c = await createTestClient({
      authMode: 'oidc',
      authOidcIssuer: ISSUER,
      authOidcAudience: AUDIENCE,
      authOidcJwksFile: file,
      authAdminClients: 'root-app',
    })
    try {
      const ok = await sign(k, claims({ client_id: 'root-app' }))
      expect((await c.request('GET', '/stores', undefined, { authorization: `Bearer ${ok}` })).status).toBe(200)
      const other = await sign(rsa, claims({ client_id: 'root-app' }))
      expect((await c.request('GET', '/stores', undefined, { authorization: `Bearer ${other}` })).body.code).toBe('unauthenticated')
    } finally {
      await c.close()
    }
  })
})
