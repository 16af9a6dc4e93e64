/**
 * TokenVerifier with static issuers (as the MCP gateway configures them): real keys, real JWTs,
 * a real JWKS endpoint. The act chain, the delegation limit, expiry and clock skew, audience,
 * untrusted issuers, refused algorithms; missingScopes; and staticIssuers refusing a bad
 * configuration with a message naming the issuer and the field.
 */
import { SignJWT, type JWTPayload } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JwksCache } from '../../src/service/jwks.ts'
import type { TokenIssuerConfig } from '../../src/service/token-issuers.ts'
import { IssuerConfigError, missingScopes, staticIssuers, TokenVerifier, type StaticIssuerConfig } from '../../src/service/token-verifier.ts'
import { sign, signingKey, startIdentityProvider, type IdentityProvider, type SigningKey } from '../helpers/jwks-server.ts'

const NOW = Date.parse('2026-12-06T12:00:00Z') / 1000
const GATEWAY = 'http://127.0.0.1:8090/mcp'

let idpKey: SigningKey
let ciKey: SigningKey
let idp: IdentityProvider
let verifier: TokenVerifier
let clock = NOW

/** A token of the identity provider for the gateway, valid for 10 minutes from NOW, with `claims` on top. */
const idpToken = (claims: JWTPayload) => sign(idpKey, { iss: idp.url, aud: GATEWAY, sub: 'alice', iat: NOW, exp: NOW + 600, ...claims })

const SCOPES = { 'crm:read': ['call', 'get', 'read'], 'crm:export': ['export'], 'crm:admin': ['call', 'get', 'read', 'export'] }

beforeAll(async () => {
  idpKey = await signingKey('idp-1', 'ES256')
  ciKey = await signingKey('ci-1')
  idp = await startIdentityProvider([idpKey])
  const issuers = await staticIssuers(
    [
      { name: 'idp', issuer: idp.url, audience: GATEWAY, jwks_uri: idp.jwksUri, subject_type: 'user', actor_type: 'agent', scopes: SCOPES },
      { name: 'ci', issuer: 'https://ci.example', audience: ['pemba', GATEWAY], jwks: { keys: [ciKey.publicJwk] }, subject_type: 'service_account', subject_claim: 'client_id' },
    ],
    new JwksCache(),
  )
  verifier = new TokenVerifier({ issuers, clock: () => new Date(clock * 1000), clockSkewSeconds: 30, maxDelegationChain: 2 })
})
afterAll(async () => {
  await idp?.close()
})

describe('TokenVerifier with static issuers', () => {
  it('names the principal of a token without act, and the issuer by name', async () => {
    const v = await verifier.verify(await idpToken({}))
    expect(v).toMatchObject({ ok: true, identity: { issuer: 'idp', subject: 'user:alice', actors: [] }, issuer: { name: 'idp' } })
    if (v.ok) expect(v.claims.sub).toBe('alice')
  })

  it('reads the act chain, current actor first, each of the actor type', async () => {
    const v = await verifier.verify(await idpToken({ act: { sub: 'summarizer', act: { sub: 'planner' } } }))
    expect(v).toMatchObject({ ok: true, identity: { subject: 'user:alice', actors: ['agent:summarizer', 'agent:planner'] } })
  })

  it('refuses a chain longer than maxDelegationChain, a malformed act, and act from an issuer without actor_type', async () => {
    const long = { sub: 'a', act: { sub: 'b', act: { sub: 'c' } } }
    expect(await verifier.verify(await idpToken({ act: long }))).toEqual({ ok: false, reason: 'delegation_chain_too_long' })
    expect(await verifier.verify(await idpToken({ act: 'summarizer' }))).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await verifier.verify(await idpToken({ act: { sub: 'bad:id' } }))).toEqual({ ok: false, reason: 'token_invalid' })
    const ci = await sign(ciKey, { iss: 'https://ci.example', aud: 'pemba', client_id: 'pipeline-7', exp: NOW + 60, act: { sub: 'x' } })
    expect(await verifier.verify(ci)).toEqual({ ok: false, reason: 'token_invalid' })
  })

  it('uses the issuer\'s subject_claim and accepts any of its audiences', async () => {
    const ci = await sign(ciKey, { iss: 'https://ci.example', aud: GATEWAY, sub: 'ignored', client_id: 'pipeline-7', exp: NOW + 60 })
    expect(await verifier.verify(ci)).toMatchObject({ ok: true, identity: { issuer: 'ci', subject: 'service_account:pipeline-7', actors: [] } })
    const none = await sign(ciKey, { iss: 'https://ci.example', aud: 'pemba', sub: 'pipeline-7', exp: NOW + 60 })
    expect(await verifier.verify(none)).toEqual({ ok: false, reason: 'token_invalid' })
  })

  it('refuses an expired token beyond the clock skew, accepts one within it, and requires exp', async () => {
    const t = await idpToken({ exp: NOW - 10 })
    expect((await verifier.verify(t)).ok).toBe(true)
    clock = NOW + 60
    try {
      expect(await verifier.verify(t)).toEqual({ ok: false, reason: 'token_expired' })
    } finally {
      clock = NOW
    }
    const noExp = await sign(idpKey, { iss: idp.url, aud: GATEWAY, sub: 'alice' })
    expect(await verifier.verify(noExp)).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await verifier.verify(await idpToken({ nbf: NOW + 120 }))).toEqual({ ok: false, reason: 'token_invalid' })
  })

  it('refuses a wrong audience, an untrusted or missing issuer, garbage, a forged signature, and HMAC', async () => {
    expect(await verifier.verify(await idpToken({ aud: 'http://127.0.0.1:9000/mcp' }))).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await verifier.verify(await idpToken({ iss: 'https://evil.example' }))).toEqual({ ok: false, reason: 'issuer_untrusted' })
    expect(await verifier.verify(await idpToken({ iss: undefined }))).toEqual({ ok: false, reason: 'issuer_untrusted' })
    expect(await verifier.verify('not.a.jwt')).toEqual({ ok: false, reason: 'token_invalid' })
    // Signed by another key under the issuer's kid.
    const forger = await signingKey('idp-1', 'ES256')
    const forged = await sign(forger, { iss: idp.url, aud: GATEWAY, sub: 'alice', exp: NOW + 60 })
    expect(await verifier.verify(forged)).toEqual({ ok: false, reason: 'token_invalid' })
    const hmac = await new SignJWT({ iss: idp.url, aud: GATEWAY, sub: 'alice', exp: NOW + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: 'idp-1' })
      .sign(new TextEncoder().encode('a shared secret of thirty-two bytes!'))
    expect(await verifier.verify(hmac)).toEqual({ ok: false, reason: 'token_invalid' })
  })

  it('tells the issuer\'s key outage (issuer_keys_unavailable) from a bad token', async () => {
    const lonely = await signingKey('idp-2', 'ES256')
    const issuers = await staticIssuers(
      [{ name: 'idp', issuer: idp.url, audience: GATEWAY, jwks_uri: idp.jwksUri, subject_type: 'user' }],
      new JwksCache({ cooldownMs: 0 }),
    )
    const v = new TokenVerifier({ issuers, clock: () => new Date(NOW * 1000), clockSkewSeconds: 0, maxDelegationChain: 4 })
    idp.failing = true
    try {
      const t = await sign(lonely, { iss: idp.url, aud: GATEWAY, sub: 'alice', exp: NOW + 60 })
      expect(await v.verify(t)).toEqual({ ok: false, reason: 'issuer_keys_unavailable' })
    } finally {
      idp.failing = false
    }
  })
})

describe('missingScopes', () => {
  const config = { scopes: SCOPES } as unknown as TokenIssuerConfig
  it('is undefined when a held scope allows the relation, from scope or scp', () => {
    expect(missingScopes(config, { scope: 'openid crm:read' }, 'call')).toBeUndefined()
    expect(missingScopes(config, { scp: ['crm:export'] }, 'export')).toBeUndefined()
    expect(missingScopes(config, { scp: 'crm:read crm:export' }, 'export')).toBeUndefined()
  })
  it('lists the scopes that would allow it, least privileged first, when none held does', () => {
    expect(missingScopes(config, { scope: 'crm:read' }, 'export')).toEqual(['crm:export', 'crm:admin'])
    expect(missingScopes(config, {}, 'call')).toEqual(['crm:read', 'crm:admin'])
    expect(missingScopes(config, { scope: 'crm:read' }, 'delete')).toEqual([])
    // A claim holding what an object inherits is no scope.
    expect(missingScopes(config, { scope: 'toString constructor' }, 'call')).toEqual(['crm:read', 'crm:admin'])
  })
  it('is undefined when the issuer maps no scopes (no ceiling)', () => {
    expect(missingScopes({} as TokenIssuerConfig, {}, 'export')).toBeUndefined()
  })
})

describe('staticIssuers', () => {
  const base = (over: Record<string, unknown> = {}) =>
    ({ name: 'idp', issuer: 'https://idp.example', audience: GATEWAY, jwks_uri: 'https://idp.example/jwks', subject_type: 'user', ...over }) as StaticIssuerConfig
  const refused = async (configs: StaticIssuerConfig[], message: RegExp) => {
    const e = await staticIssuers(configs, new JwksCache()).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(IssuerConfigError)
    expect((e as Error).message).toMatch(message)
  }

  it('refuses what PUT /token-issuers refuses, naming the issuer and the field', async () => {
    await refused([base({ audience: '' })], /^issuers\[0\] \('idp'\): audience: Too small/)
    await refused([base({ audience: 7 })], /^issuers\[0\] \('idp'\): audience: must be a non-empty string or a list/)
    await refused([base(), base({ name: 'other', issuer: 'https://other.example', scope: { a: ['call'] } })], /^issuers\[1\] \('other'\): .*scope/)
    await refused([base({ jwks_uri: 'http://idp.example/jwks' })], /issuers\[0\] \('idp'\): jwks_uri: must be an https URL/)
    await refused([base({ jwks_uri: undefined })], /issuers\[0\] \('idp'\): jwks: give exactly one of jwks/)
    await refused([base({ subject_type: 'us er' })], /issuers\[0\] \('idp'\): subject_type/)
    await refused([base({ scopes: { 'crm:read': [] } })], /issuers\[0\] \('idp'\): scopes\.crm:read/)
  })

  it('refuses private, symmetric or weak inline keys as the server does', async () => {
    const key = await signingKey('k', 'ES256')
    const { exportJWK } = await import('jose')
    const priv = { ...(await exportJWK(key.privateKey)), kid: 'k' }
    await refused([base({ jwks_uri: undefined, jwks: { keys: [priv] } })], /issuers\[0\] \('idp'\): jwks\.keys\[0\] \(kid 'k'\): carries private key material/)
    await refused([base({ jwks_uri: undefined, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } })], /jwks\.keys\[0\]: symmetric keys/)
  })

  it('refuses a bad or duplicate name and a duplicate iss', async () => {
    await refused([base({ name: '' })], /^issuers\[0\] \(''\): name: 1 to 63 letters/)
    await refused([base({ name: undefined })], /^issuers\[0\]: name:/)
    await refused([base(), base({ issuer: 'https://b.example' })], /^issuers\[1\] \('idp'\): name: another issuer is already named 'idp'/)
    await refused([base(), base({ name: 'b' })], /^issuers\[1\] \('b'\): issuer: issuer 'idp' already has issuer 'https:\/\/idp\.example'/)
  })

  it('defaults subject_claim to sub and finds issuers by iss only', async () => {
    const lookup = await staticIssuers([base()], new JwksCache())
    const found = await lookup('https://idp.example', false)
    expect(found).toMatchObject({ name: 'idp', remote: true, config: { subject_claim: 'sub', audience: GATEWAY } })
    expect(await lookup('https://other.example', true)).toBeUndefined()
  })
})
