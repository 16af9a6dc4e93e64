/**
 * The MCP caller: a bearer token verified against an enforcement point's own issuers (real
 * tokens from a real JWKS endpoint), turned into the principal and actors the policy asks about,
 * with the issuer's scope ceiling bound to it; verified tokens remembered until their `exp`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { McpCallerVerifier } from '../../src/enforce/mcp/caller.ts'
import { JwksCache } from '../../src/service/jwks.ts'
import { staticIssuers, TokenVerifier } from '../../src/service/token-verifier.ts'
import { AUDIENCE, mcpWorld, type McpWorld } from './mcp-fixture.ts'

let world: McpWorld

beforeAll(async () => {
  world = await mcpWorld()
})
afterAll(async () => {
  await world?.close()
})

describe('McpCallerVerifier', () => {
  it('names the principal and the actors, current first, and binds the scope ceiling', async () => {
    const token = await world.token({ act: { sub: 'summarizer', act: { sub: 'planner' } }, scope: 'crm:read' })
    const headers = [`Bearer ${token}`, `bearer  ${token} `].map((h) => world.callers.authenticate(h))
    for (const authenticated of [...headers, world.callers.authenticateToken(token)]) {
      const a = await authenticated
      expect(a.ok).toBe(true)
      if (!a.ok) continue
      expect(a.caller).toMatchObject({ subject: 'user:alice', actors: ['agent:summarizer', 'agent:planner'], issuer: 'idp' })
      expect(a.caller.missingScopes('call')).toBeUndefined()
      expect(a.caller.missingScopes('export')).toEqual(['crm:export', 'crm:all'])
    }
  })

  it('refuses what is not a trusted, valid bearer token, saying why', async () => {
    const now = Math.floor(Date.now() / 1000)
    expect(await world.callers.authenticate(undefined)).toEqual({ ok: false, reason: 'token_missing' })
    expect(await world.callers.authenticate('  ')).toEqual({ ok: false, reason: 'token_missing' })
    expect(await world.callers.authenticate(`Basic ${await world.token()}`)).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await world.callers.authenticate('Bearer not.a.jwt')).toEqual({ ok: false, reason: 'token_invalid' })
    // RFC 6750: an Authorization header without the Bearer scheme is not a bearer credential.
    expect(await world.callers.authenticate(await world.token())).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await world.callers.authenticateToken(undefined)).toEqual({ ok: false, reason: 'token_missing' })
    expect(await world.callers.authenticateToken(`Bearer ${await world.token()}`)).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await world.callers.authenticate(`Bearer ${await world.token({ exp: now - 3600 })}`)).toEqual({ ok: false, reason: 'token_expired' })
    expect(await world.callers.authenticate(`Bearer ${await world.token({ aud: 'http://elsewhere/mcp' })}`)).toEqual({ ok: false, reason: 'token_invalid' })
    expect(await world.callers.authenticate(`Bearer ${await world.token({ iss: 'https://evil.example' })}`)).toEqual({ ok: false, reason: 'issuer_untrusted' })
    const chain = { sub: 'a1', act: { sub: 'a2', act: { sub: 'a3', act: { sub: 'a4', act: { sub: 'a5' } } } } }
    expect(await world.callers.authenticate(`Bearer ${await world.token({ act: chain })}`)).toEqual({ ok: false, reason: 'delegation_chain_too_long' })
  })

  it('remembers a verified token, never past its exp', async () => {
    let now = Date.now()
    const clock = () => new Date(now)
    let verifications = 0
    class CountingVerifier extends TokenVerifier {
      override verify(token: string, fresh?: boolean) {
        verifications++
        return super.verify(token, fresh)
      }
    }
    const verifier = new CountingVerifier({ issuers: await staticIssuers(world.issuers, new JwksCache()), clock, clockSkewSeconds: 0, maxDelegationChain: 4 })
    const callers = new McpCallerVerifier({ verifier, clock })
    const exp = Math.floor(now / 1000) + 20
    const token = await world.token({ exp, aud: AUDIENCE })
    expect((await callers.authenticateToken(token)).ok).toBe(true)
    expect((await callers.authenticate(`Bearer ${token}`)).ok).toBe(true)
    expect(verifications).toBe(1)
    now = exp * 1000 + 1
    expect(await callers.authenticateToken(token)).toEqual({ ok: false, reason: 'token_expired' })
    expect(verifications).toBe(2)
    // A refused token is not remembered.
    expect((await callers.authenticateToken(token)).ok).toBe(false)
    expect(verifications).toBe(3)
    // At most cacheMaxAgeMs (30 s), however long the token lives.
    now = Date.now()
    const long = await world.token()
    await callers.authenticateToken(long)
    now += 29_000
    await callers.authenticateToken(long)
    expect(verifications).toBe(4)
    now += 2_000
    expect((await callers.authenticateToken(long)).ok).toBe(true)
    expect(verifications).toBe(5)
    // With the cache off, every call verifies.
    const uncached = new McpCallerVerifier({ verifier, clock, cacheMaxAgeMs: 0 })
    now = Date.now()
    const fresh = await world.token()
    await uncached.authenticateToken(fresh)
    await uncached.authenticateToken(fresh)
    expect(verifications).toBe(7)
  })
})
