/**
 * Token-native checks through the HTTP API: a store trusts token issuers, and a check may carry
 * a signed `subject_token` instead of `tuple_key.user`. Covers issuer CRUD and its validation,
 * inline keys and a JWKS served over HTTP, every refusal reason, `act` chains of 0 to 2 hops,
 * the scope ceiling, batch-check, and the CI/CD seed scenario on a fake clock.
 */
import { generateKeyPairSync } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { createStore, setup, tupleKey, writeModel } from '../helpers/fixtures.ts'

const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
  relations
    define acts_for: [agent]
type service_account
  relations
    define acts_for: [agent]
type namespace
  relations
    define deployer: [user, agent, service_account]
    define viewer: [user, agent, service_account] or deployer
`

const ISS = 'https://ci.example'
const T0 = Date.parse('2026-11-29T09:00:00Z')
const MINUTE = 60_000

/** A signing key pair and its public JWK (with `kid`). */
interface SigningKey {
  privateKey: CryptoKey
  jwk: JWK
  alg: string
}

async function signingKey(kid: string, alg = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, alg }
}

let key: SigningKey
let otherKey: SigningKey
beforeAll(async () => {
  key = await signingKey('k1')
  otherKey = await signingKey('k1') // same kid, different key: a forged signature
})

let now = T0
let client: TestClient

async function start(config: Partial<PembaConfig> = {}): Promise<void> {
  now = T0
  client = await createTestClient(config, { clock: () => new Date(now), sweeper: false })
}
afterEach(async () => {
  await client?.close()
})

/** mint signs `claims` with sensible defaults: issued now, valid 15 minutes, for `pemba`. */
async function mint(claims: JWTPayload, opts: { key?: SigningKey; header?: Record<string, unknown> } = {}): Promise<string> {
  const k = opts.key ?? key
  const iat = Math.floor(now / 1000)
  return new SignJWT({ iss: ISS, aud: 'pemba', iat, exp: iat + 15 * 60, ...claims })
    .setProtectedHeader({ alg: k.alg, kid: k.jwk.kid, ...opts.header })
    .sign(k.privateKey)
}

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url')
}

function issuerBody(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    issuer: ISS,
    audience: 'pemba',
    jwks: { keys: [key.jwk] },
    subject_type: 'service_account',
    actor_type: 'agent',
    ...over,
  }
}

async function putIssuer(storeId: string, name: string, body: unknown) {
  return client.request('PUT', `/stores/${storeId}/token-issuers/${name}`, body)
}

/** A store with MODEL, `tuples` and the issuer `ci`; returns a token check helper. */
async function tokenStore(tuples: string[] = [], issuer: Record<string, unknown> = {}) {
  const { storeId } = await setup(client, MODEL, tuples)
  const put = await putIssuer(storeId, 'ci', issuerBody(issuer))
  expect(put.status, put.text).toBe(201)
  const check = async (token: string, target: string, extra: Record<string, unknown> = {}) => {
    const [object, relation] = target.split('#')
    const res = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: { object, relation },
      subject_token: token,
      ...extra,
    })
    expect(res.status, res.text).toBe(200)
    expect(res.text).not.toContain(token)
    return res.body
  }
  return { storeId, check }
}

describe('token issuers', () => {
  beforeEach(() => start())

  it('are created, read, listed, replaced and deleted per store', async () => {
    const { storeId } = await setup(client, MODEL)
    const created = await putIssuer(storeId, 'ci', issuerBody({ scopes: { deploy: ['deployer'] } }))
    expect(created.status, created.text).toBe(201)
    expect(created.body).toEqual({
      name: 'ci',
      ...issuerBody({ scopes: { deploy: ['deployer'] } }),
      subject_claim: 'sub',
      created_at: '2026-11-29T09:00:00Z',
      updated_at: '2026-11-29T09:00:00Z',
    })
    expect((await client.request('GET', `/stores/${storeId}/token-issuers/ci`)).body).toEqual(created.body)

    now += MINUTE
    const replaced = await putIssuer(storeId, 'ci', issuerBody({ audience: ['pemba', 'pemba-staging'] }))
    expect(replaced.status).toBe(200)
    expect(replaced.body.created_at).toBe('2026-11-29T09:00:00Z')
    expect(replaced.body.updated_at).toBe('2026-11-29T09:01:00Z')
    expect(replaced.body.scopes).toBeUndefined()

    const second = await putIssuer(storeId, 'gitlab.main', issuerBody({ issuer: 'https://gitlab.example', jwks: undefined, jwks_uri: 'https://gitlab.example/oauth/discovery/keys' }))
    expect(second.status, second.text).toBe(201)
    const list = await client.request('GET', `/stores/${storeId}/token-issuers`)
    expect(list.body.token_issuers.map((i: { name: string }) => i.name)).toEqual(['ci', 'gitlab.main'])

    expect((await client.request('DELETE', `/stores/${storeId}/token-issuers/ci`)).status).toBe(204)
    const gone = await client.request('GET', `/stores/${storeId}/token-issuers/ci`)
    expect(gone.status).toBe(404)
    expect(gone.body).toEqual({ code: 'token_issuer_not_found', message: "token issuer 'ci' not found" })
    expect((await client.request('DELETE', `/stores/${storeId}/token-issuers/ci`)).status).toBe(404)

    // Another store sees none of them.
    const other = await createStore(client, 'other')
    await writeModel(client, other, MODEL)
    expect((await client.request('GET', `/stores/${other}/token-issuers`)).body).toEqual({ token_issuers: [] })
  })

  it('answer 404 store_id_not_found for a missing or deleted store', async () => {
    const storeId = await createStore(client)
    await writeModel(client, storeId, MODEL)
    expect((await client.request('DELETE', `/stores/${storeId}`)).status).toBe(204)
    for (const missing of [storeId, '01HZZZZZZZZZZZZZZZZZZZZZZZ']) {
      const requests = [
        putIssuer(missing, 'ci', issuerBody()),
        client.request('GET', `/stores/${missing}/token-issuers/ci`),
        client.request('GET', `/stores/${missing}/token-issuers`),
        client.request('DELETE', `/stores/${missing}/token-issuers/ci`),
      ]
      for (const res of await Promise.all(requests)) {
        expect(res.status).toBe(404)
        expect(res.body).toEqual({ code: 'store_id_not_found', message: 'Store ID not found' })
      }
    }
    expect((await client.request('GET', '/stores/not-a-store/token-issuers')).status).toBe(400)
  })

  it('refuse invalid configurations with a 400 that names the problem, changing nothing', async () => {
    const { storeId } = await setup(client, MODEL)
    const priv = { ...(await exportJWK(key.privateKey)), kid: 'p' }
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as JWK
    const cases: [unknown, RegExp][] = [
      [issuerBody({ issuer: undefined }), /issuer: value is required/],
      [issuerBody({ issuer: '' }), /issuer/],
      [issuerBody({ issuer: 'https://ci.example/ x' }), /issuer: must be a non-empty string without whitespace/],
      [issuerBody({ audience: [] }), /audience/],
      [issuerBody({ jwks: undefined }), /exactly one of jwks/],
      [issuerBody({ jwks_uri: 'https://ci.example/jwks' }), /exactly one of jwks/],
      [issuerBody({ jwks: undefined, jwks_uri: 'ftp://ci.example/jwks' }), /jwks_uri: must be an https URL/],
      [issuerBody({ jwks: undefined, jwks_uri: 'http://ci.example/jwks' }), /http only on a loopback address/],
      [issuerBody({ jwks: undefined, jwks_uri: 'https://u:p@ci.example/jwks' }), /jwks_uri/],
      [issuerBody({ jwks: undefined, jwks_uri: 'not a url' }), /jwks_uri/],
      [issuerBody({ jwks: { keys: [] } }), /jwks.keys/],
      [issuerBody({ jwks: { keys: [priv] } }), /private key material \(d\)/],
      [issuerBody({ jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }), /symmetric keys/],
      [issuerBody({ jwks: { keys: [{ ...key.jwk, alg: 'HS256' }] } }), /algorithm 'HS256' is not accepted/],
      [issuerBody({ jwks: { keys: [{ ...key.jwk, use: 'enc' }] } }), /'use' must be 'sig'/],
      [issuerBody({ jwks: { keys: [{ ...key.jwk, x: 'AAAA' }] } }), /not a usable ES256 public key/],
      [issuerBody({ jwks: { keys: [{ ...rsa1024, kid: 'r' }] } }), /at least 2048 bits/],
      [issuerBody({ subject_type: 'robot' }), /subject_type 'robot' is not a type of the store's latest model/],
      [issuerBody({ actor_type: 'robot' }), /actor_type 'robot'/],
      [issuerBody({ subject_type: 'namespace' }), /subject_type 'namespace' defines no 'acts_for'/],
      [issuerBody({ subject_type: 'no spaces allowed' }), /subject_type/],
      [issuerBody({ subject_claim: '' }), /subject_claim/],
      [issuerBody({ scopes: { deploy: ['launch'] } }), /scope 'deploy' names relation 'launch'/],
      [issuerBody({ scopes: { 'two words': ['deployer'] } }), /scopes/],
      [issuerBody({ scopes: { deploy: [] } }), /scopes.deploy/],
      [issuerBody({ scope: { deploy: ['deployer'] } }), /unrecognized key/i],
      ['{"issuer":', /invalid JSON body/],
    ]
    for (const [body, message] of cases) {
      const res = await putIssuer(storeId, 'ci', body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.code, res.text).toBe('validation_error')
      expect(res.body.message, JSON.stringify(body)).toMatch(message)
    }
    for (const name of ['bad name', '-dash-first', 'x'.repeat(64)]) {
      const res = await putIssuer(storeId, encodeURIComponent(name), issuerBody())
      expect(res.status, name).toBe(400)
      expect(res.body.message).toMatch(/invalid token issuer name/)
    }
    expect((await client.request('GET', `/stores/${storeId}/token-issuers`)).body).toEqual({ token_issuers: [] })
  })

  it('refuse a second issuer with the same iss in one store', async () => {
    const { storeId } = await setup(client, MODEL)
    expect((await putIssuer(storeId, 'ci', issuerBody())).status).toBe(201)
    const dup = await putIssuer(storeId, 'ci-again', issuerBody())
    expect(dup.status).toBe(400)
    expect(dup.body.message).toMatch(/token issuer 'ci' of this store already has issuer 'https:\/\/ci.example'/)
    expect((await client.request('GET', `/stores/${storeId}/token-issuers`)).body.token_issuers).toHaveLength(1)
  })

  it('need a model to validate against', async () => {
    const storeId = await createStore(client)
    const res = await putIssuer(storeId, 'ci', issuerBody())
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('latest_authorization_model_not_found')
  })
})

describe('subject_token on check', () => {
  beforeEach(() => start())

  it('checks the token subject as the user, and says what the token resolved to', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:pipeline-7'])
    const token = await mint({ sub: 'pipeline-7' })
    expect(await check(token, 'namespace:staging#deployer')).toEqual({
      allowed: true,
      resolution: '',
      token: { issuer: 'ci', subject: 'service_account:pipeline-7', actors: [] },
    })
    expect(await check(token, 'namespace:staging#viewer')).toMatchObject({ allowed: true })
    expect(await check(token, 'namespace:production#deployer')).toEqual({
      allowed: false,
      resolution: '',
      token: { issuer: 'ci', subject: 'service_account:pipeline-7', actors: [] },
    })
  })

  it('reads the subject from subject_claim', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:octo-app'], { subject_claim: 'repository_id' })
    expect(await check(await mint({ sub: 'repo:octo/app:ref:main', repository_id: 'octo-app' }), 'namespace:staging#deployer')).toMatchObject({
      allowed: true,
      token: { subject: 'service_account:octo-app' },
    })
    expect((await check(await mint({ sub: 'octo-app' }), 'namespace:staging#deployer')).reason).toBe('token_invalid')
  })

  it('refuses tokens it cannot trust, each with its reason, and never a 5xx', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'])
    const target = 'namespace:staging#deployer'
    const iat = Math.floor(now / 1000)
    const reason = async (token: string) => {
      const body = await check(token, target)
      expect(body.allowed).toBe(false)
      expect(body.token).toBeUndefined()
      return body.reason
    }
    expect(await reason(await mint({ sub: 'p' }, { key: otherKey }))).toBe('token_invalid') // bad signature
    expect(await reason(await mint({ sub: 'p', aud: 'someone-else' }))).toBe('token_invalid')
    expect(await reason(await mint({ sub: 'p', iss: 'https://evil.example' }))).toBe('issuer_untrusted')
    expect(await reason(await mint({ sub: 'p', iss: undefined }))).toBe('issuer_untrusted')
    expect(await reason(await mint({ sub: 'p', nbf: iat + 5 * 60 }))).toBe('token_invalid')
    expect(await reason(await mint({ sub: 'p', exp: undefined }))).toBe('token_invalid')
    expect(await reason(await mint({}))).toBe('token_invalid') // no subject claim
    for (const sub of ['', '*', 'a:b', 'a#b', 'a b', 42, 'x'.repeat(257)]) {
      expect(await reason(await mint({ sub: sub as string })), String(sub)).toBe('token_invalid')
    }
    // alg none: an unsigned token that otherwise looks right.
    const claims = { iss: ISS, aud: 'pemba', sub: 'p', iat, exp: iat + 900 }
    expect(await reason(`${b64({ alg: 'none' })}.${b64(claims)}.`)).toBe('token_invalid')
    // HS256 with the public key's bytes as the secret (the classic key-confusion attack).
    const hs = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .sign(new TextEncoder().encode(JSON.stringify(key.jwk)))
    expect(await reason(hs)).toBe('token_invalid')
    for (const junk of ['not-a-jwt', 'a.b.c', `${b64({ alg: 'ES256' })}.${b64('[]')}.x`]) {
      expect(await reason(junk), junk).toBe('token_invalid')
    }
    // Still good: the same claims, properly signed.
    expect((await check(await mint({ sub: 'p' }), target)).allowed).toBe(true)
  })

  it('expires tokens on the server clock, with a little skew', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'])
    const token = await mint({ sub: 'p' }) // exp = T0 + 15 min
    now = T0 + 15 * MINUTE + 20_000 // within the 30 s skew
    expect((await check(token, 'namespace:staging#deployer')).allowed).toBe(true)
    now = T0 + 16 * MINUTE
    expect(await check(token, 'namespace:staging#deployer')).toEqual({ allowed: false, resolution: '', reason: 'token_expired' })
  })

  it('answers 400 for malformed requests, as any check', async () => {
    const { storeId } = await tokenStore()
    const token = await mint({ sub: 'p' })
    const bad = async (body: unknown) => {
      const res = await client.request('POST', `/stores/${storeId}/check`, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.code).toBeTypeOf('string')
      expect(res.text).not.toContain(token)
      return res.body.message as string
    }
    const key = { object: 'namespace:staging', relation: 'deployer' }
    expect(await bad({ tuple_key: { ...key, user: 'service_account:p' }, subject_token: token })).toMatch(/tuple_key.user: give either/)
    expect(await bad({ tuple_key: key })).toMatch(/tuple_key.user: value is required/)
    expect(await bad({ tuple_key: key, subject_token: token, on_behalf_of: 'user:alice' })).toMatch(/on_behalf_of: cannot be combined/)
    expect(await bad({ tuple_key: key, subject_token: '' })).toMatch(/subject_token/)
    expect(await bad({ tuple_key: key, subject_token: 42 })).toMatch(/subject_token/)
    expect(await bad({ tuple_key: { object: 'namespace:staging' }, subject_token: token })).toMatch(/relation/)
    expect(await bad({ tuple_key: { ...key, relation: 'launch' }, subject_token: token })).toMatch(/relation 'namespace#launch' not found/)
    expect(await bad({ tuple_key: { ...key, object: 'planet:earth' }, subject_token: token })).toMatch(/type 'planet' not found/)
    expect(await bad(`{"tuple_key":${JSON.stringify(key)},"subject_token":"${token}"`)).toMatch(/invalid JSON body/)
  })

  it('stops trusting an issuer the moment it is deleted or its keys are replaced', async () => {
    const { storeId, check } = await tokenStore(['namespace:staging#deployer@service_account:p'])
    const token = await mint({ sub: 'p' })
    expect((await check(token, 'namespace:staging#deployer')).allowed).toBe(true)
    const rotated = await signingKey('k2')
    expect((await putIssuer(storeId, 'ci', issuerBody({ jwks: { keys: [rotated.jwk] } }))).status).toBe(200)
    expect((await check(token, 'namespace:staging#deployer')).reason).toBe('token_invalid')
    expect((await check(await mint({ sub: 'p' }, { key: rotated }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect((await client.request('DELETE', `/stores/${storeId}/token-issuers/ci`)).status).toBe(204)
    expect((await check(await mint({ sub: 'p' }, { key: rotated }), 'namespace:staging#deployer')).reason).toBe('issuer_untrusted')
  })

  it('answers 400 naming the issuer when a newer model dropped its subject type', async () => {
    const { storeId } = await tokenStore()
    await writeModel(client, storeId, MODEL.replace('type service_account\n  relations\n    define acts_for: [agent]\n', '').replaceAll(', service_account', ''))
    const res = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: { object: 'namespace:staging', relation: 'deployer' },
      subject_token: await mint({ sub: 'p' }),
      consistency: 'HIGHER_CONSISTENCY',
    })
    expect(res.status).toBe(400)
    expect(res.body.message).toMatch(/token issuer 'ci' maps tokens to type 'service_account'/)
  })
})

describe('act chains', () => {
  beforeEach(() => start())

  const GRANTS = [
    'namespace:staging#deployer@service_account:p',
    'namespace:staging#deployer@agent:planner',
    'namespace:staging#deployer@agent:runner',
    'namespace:production#deployer@agent:planner', // the principal may not deploy to production
  ]

  it('0 hops: the principal alone; 1 hop: the actor for the principal', async () => {
    const { check } = await tokenStore([...GRANTS, 'service_account:p#acts_for@agent:planner'])
    const delegated = await mint({ sub: 'p', act: { sub: 'planner' } })
    expect(await check(delegated, 'namespace:staging#deployer')).toEqual({
      allowed: true,
      resolution: '',
      token: { issuer: 'ci', subject: 'service_account:p', actors: ['agent:planner'] },
    })
    // The actor may deploy to production, its principal may not.
    expect(await check(delegated, 'namespace:production#deployer')).toMatchObject({ allowed: false, denied_by: 'principal' })
    // An actor without a grant of its own.
    expect(await check(await mint({ sub: 'p', act: { sub: 'idle' } }), 'namespace:staging#deployer')).toMatchObject({
      allowed: false,
      denied_by: 'delegation',
    })
  })

  it('1 hop without acts_for is denied by delegation', async () => {
    const { check } = await tokenStore(GRANTS)
    expect(await check(await mint({ sub: 'p', act: { sub: 'planner' } }), 'namespace:staging#deployer')).toEqual({
      allowed: false,
      resolution: '',
      denied_by: 'delegation',
      token: { issuer: 'ci', subject: 'service_account:p', actors: ['agent:planner'] },
    })
    // The principal's own token is unaffected.
    expect((await check(await mint({ sub: 'p' }), 'namespace:staging#deployer')).allowed).toBe(true)
  })

  it('2 hops: the current actor for the prior actor for the principal, every hop delegated', async () => {
    const token = await mint({ sub: 'p', act: { sub: 'runner', act: { sub: 'planner' } } })
    const full = [...GRANTS, 'service_account:p#acts_for@agent:planner', 'agent:planner#acts_for@agent:runner']
    {
      const { check } = await tokenStore(full)
      expect(await check(token, 'namespace:staging#deployer')).toEqual({
        allowed: true,
        resolution: '',
        token: { issuer: 'ci', subject: 'service_account:p', actors: ['agent:runner', 'agent:planner'] },
      })
      // The same agents the other way round are not delegated.
      const swapped = await mint({ sub: 'p', act: { sub: 'planner', act: { sub: 'runner' } } })
      expect((await check(swapped, 'namespace:staging#deployer')).denied_by).toBe('delegation')
    }
    for (const missing of full.slice(-2)) {
      const { check } = await tokenStore(full.filter((t) => t !== missing))
      expect((await check(token, 'namespace:staging#deployer')).denied_by, missing).toBe('delegation')
    }
  })

  it('refuses malformed act claims, act without an actor type, and chains over the limit', async () => {
    const { check } = await tokenStore(GRANTS)
    for (const act of [{}, { sub: 'a:b' }, 'planner', [{ sub: 'planner' }], { sub: 'planner', act: { sub: '' } }]) {
      expect((await check(await mint({ sub: 'p', act }), 'namespace:staging#deployer')).reason, JSON.stringify(act)).toBe('token_invalid')
    }
    await client.close()

    await start({ maxDelegationChain: 1 })
    const limited = await tokenStore(GRANTS)
    const twoHops = await mint({ sub: 'p', act: { sub: 'runner', act: { sub: 'planner' } } })
    expect(await limited.check(twoHops, 'namespace:staging#deployer')).toEqual({
      allowed: false,
      resolution: '',
      reason: 'delegation_chain_too_long',
    })
    await client.close()

    await start()
    const noActors = await tokenStore(GRANTS, { actor_type: undefined })
    expect((await noActors.check(await mint({ sub: 'p', act: { sub: 'planner' } }), 'namespace:staging#deployer')).reason).toBe('token_invalid')
    expect((await noActors.check(await mint({ sub: 'p' }), 'namespace:staging#deployer')).allowed).toBe(true)
  })
})

describe('scope ceiling', () => {
  beforeEach(() => start())
  const SCOPES = { scopes: { deploy: ['deployer'], read: ['viewer'] } }

  it('is a ceiling, never a grant', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'], SCOPES)
    // Scope present, relationship present: allowed.
    expect((await check(await mint({ sub: 'p', scope: 'openid deploy' }), 'namespace:staging#deployer')).allowed).toBe(true)
    // Scope present but no relationship: an ordinary denial.
    expect(await check(await mint({ sub: 'p', scope: 'deploy' }), 'namespace:production#deployer')).toEqual({
      allowed: false,
      resolution: '',
      token: { issuer: 'ci', subject: 'service_account:p', actors: [] },
    })
    // Relationship present but no scope for it.
    for (const claims of [{ scope: 'read' }, {}, { scope: '' }, { scp: ['read'] }, { scope: 'deployer' }]) {
      expect(await check(await mint({ sub: 'p', ...claims }), 'namespace:staging#deployer'), JSON.stringify(claims)).toEqual({
        allowed: false,
        resolution: '',
        reason: 'scope_missing',
        token: { issuer: 'ci', subject: 'service_account:p', actors: [] },
      })
    }
    // scp as an array, and as a string.
    expect((await check(await mint({ sub: 'p', scp: ['read', 'deploy'] }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect((await check(await mint({ sub: 'p', scp: 'deploy' }), 'namespace:staging#deployer')).allowed).toBe(true)
    // `read` allows viewer, which deployers have.
    expect((await check(await mint({ sub: 'p', scope: 'read' }), 'namespace:staging#viewer')).allowed).toBe(true)
  })

  it('applies to delegated tokens too', async () => {
    const { check } = await tokenStore(
      ['namespace:staging#deployer@service_account:p', 'namespace:staging#deployer@agent:a', 'service_account:p#acts_for@agent:a'],
      SCOPES,
    )
    expect((await check(await mint({ sub: 'p', act: { sub: 'a' }, scope: 'deploy' }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect((await check(await mint({ sub: 'p', act: { sub: 'a' }, scope: 'read' }), 'namespace:staging#deployer')).reason).toBe('scope_missing')
  })
})

describe('keys from a jwks_uri', () => {
  let server: Server
  let served: { status: number; body: unknown }
  let fetches = 0
  let uri = ''
  beforeAll(async () => {
    server = createServer((_req, res) => {
      fetches++
      res.writeHead(served.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(served.body))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`
  })
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
  })
  beforeEach(async () => {
    served = { status: 200, body: { keys: [key.jwk] } }
    fetches = 0
    // The key set is served on loopback, which the SSRF guard refuses unless allowed.
    await start({ jwksAllowPrivate: 'on' })
  })

  it('fetches the key set once, and not again for made-up kids within the cooldown', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'], { jwks: undefined, jwks_uri: uri })
    expect((await check(await mint({ sub: 'p' }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect((await check(await mint({ sub: 'p' }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect(fetches).toBe(1)
    // A forged token with the known kid: verified against the cached key, no fetch.
    expect((await check(await mint({ sub: 'p' }, { key: otherKey }), 'namespace:staging#deployer')).reason).toBe('token_invalid')
    // Unknown kids: one refetch per cooldown at most (30 s by default), so none here.
    const stranger = await signingKey('k9')
    for (let i = 0; i < 3; i++) {
      expect((await check(await mint({ sub: 'p' }, { key: stranger }), 'namespace:staging#deployer')).reason).toBe('token_invalid')
    }
    expect(fetches).toBe(1)
  })

  it('fetches again when a token names a kid the cached set lacks (key rotation)', async () => {
    await client.close()
    await start({ authJwksCooldownMs: 0, jwksAllowPrivate: 'on' })
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'], { jwks: undefined, jwks_uri: uri })
    expect((await check(await mint({ sub: 'p' }), 'namespace:staging#deployer')).allowed).toBe(true)
    const rotated = await signingKey('k2')
    served = { status: 200, body: { keys: [key.jwk, rotated.jwk] } }
    expect((await check(await mint({ sub: 'p' }, { key: rotated }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect(fetches).toBe(2)
  })

  it('answers issuer_keys_unavailable while the key set cannot be had', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'], { jwks: undefined, jwks_uri: uri })
    served = { status: 500, body: { error: 'down' } }
    expect(await check(await mint({ sub: 'p' }), 'namespace:staging#deployer')).toEqual({
      allowed: false,
      resolution: '',
      reason: 'issuer_keys_unavailable',
    })
  })
})

describe('subject_token in batch-check', () => {
  beforeEach(() => start())

  it('answers each item on its own', async () => {
    const { storeId } = await tokenStore(['namespace:staging#deployer@service_account:p'])
    const good = await mint({ sub: 'p' })
    const foreign = await mint({ sub: 'p', iss: 'https://evil.example' })
    const target = { object: 'namespace:staging', relation: 'deployer' }
    const res = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { tuple_key: target, subject_token: good, correlation_id: 'token' },
        { tuple_key: { ...target, object: 'namespace:production' }, subject_token: good, correlation_id: 'elsewhere' },
        { tuple_key: target, subject_token: foreign, correlation_id: 'foreign' },
        { tuple_key: { ...target, user: 'service_account:p' }, correlation_id: 'plain' },
        { tuple_key: { ...target, relation: 'launch' }, subject_token: good, correlation_id: 'bad-relation' },
      ],
    })
    expect(res.status, res.text).toBe(200)
    const token = { issuer: 'ci', subject: 'service_account:p', actors: [] }
    expect(res.body.result).toEqual({
      token: { allowed: true, token },
      elsewhere: { allowed: false, token },
      foreign: { allowed: false, reason: 'issuer_untrusted' },
      plain: { allowed: true },
      'bad-relation': { error: { input_error: 'validation_error', message: "relation 'namespace#launch' not found" } },
    })
    expect(res.text).not.toContain(good)
  })

  it('refuses items with both or neither of user and subject_token', async () => {
    const { storeId } = await tokenStore()
    const token = await mint({ sub: 'p' })
    const target = { object: 'namespace:staging', relation: 'deployer' }
    for (const item of [
      { tuple_key: { ...target, user: 'service_account:p' }, subject_token: token, correlation_id: 'x' },
      { tuple_key: target, correlation_id: 'x' },
    ]) {
      const res = await client.request('POST', `/stores/${storeId}/batch-check`, {
        checks: [item, { tuple_key: target, subject_token: token, correlation_id: 'y' }],
      })
      expect(res.status).toBe(400)
      expect(res.body.message).toMatch(/checks.0.tuple_key.user: give exactly one of/)
    }
    const dup = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { tuple_key: target, subject_token: token, correlation_id: 'x' },
        { tuple_key: target, subject_token: token, correlation_id: 'x' },
      ],
    })
    expect(dup.status).toBe(400)
    expect(dup.body.message).toMatch(/duplicate correlation id/)
  })
})

describe('seed scenario: a CI/CD pipeline with a short-lived deploy token', () => {
  beforeEach(() => start())

  it('deploys to staging, not to production, and nothing once the token expired', async () => {
    const { storeId } = await setup(client, MODEL, ['namespace:staging#deployer@service_account:ci-pipeline'])
    const put = await putIssuer(storeId, 'ci', issuerBody({ actor_type: undefined, scopes: { deploy: ['deployer'] } }))
    expect(put.status, put.text).toBe(201)
    const iat = Math.floor(now / 1000)
    const token = await mint({ sub: 'ci-pipeline', scope: 'deploy', iat, exp: iat + 10 * 60 })
    const deploy = async (namespace: string) =>
      (
        await client.request('POST', `/stores/${storeId}/check`, {
          tuple_key: { object: `namespace:${namespace}`, relation: 'deployer' },
          subject_token: token,
        })
      ).body
    expect(await deploy('staging')).toEqual({
      allowed: true,
      resolution: '',
      token: { issuer: 'ci', subject: 'service_account:ci-pipeline', actors: [] },
    })
    expect(await deploy('production')).toMatchObject({ allowed: false })
    expect((await deploy('production')).reason).toBeUndefined()

    now += 11 * MINUTE
    expect(await deploy('staging')).toEqual({ allowed: false, resolution: '', reason: 'token_expired' })
    expect(await deploy('production')).toEqual({ allowed: false, resolution: '', reason: 'token_expired' })
    // The pipeline's own identity still may; only the token ran out.
    const plain = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('namespace:staging#deployer@service_account:ci-pipeline'),
    })
    expect(plain.body.allowed).toBe(true)
  })
})

describe('token checks in the decision log and explained', () => {
  beforeEach(() => start())

  it('records evaluated and refused token checks as token_check decisions, with the reason', async () => {
    const { storeId, check } = await tokenStore(
      ['namespace:staging#deployer@service_account:p', 'namespace:staging#deployer@agent:a', 'service_account:p#acts_for@agent:a'],
      { scopes: { deploy: ['deployer'] } },
    )
    await check(await mint({ sub: 'p', act: { sub: 'a' }, scope: 'deploy' }), 'namespace:staging#deployer')
    await check(await mint({ sub: 'p', scope: 'read' }), 'namespace:staging#deployer')
    await check(await mint({ sub: 'p', scope: 'deploy' }, { key: otherKey }), 'namespace:staging#deployer')
    const batch = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { tuple_key: { object: 'namespace:production', relation: 'deployer' }, subject_token: await mint({ sub: 'p', scope: 'deploy' }), correlation_id: 't1' },
        { tuple_key: tupleKey('namespace:staging#deployer@service_account:p'), correlation_id: 'u1' },
      ],
    })
    expect(batch.status, batch.text).toBe(200)
    await client.pemba.decisions.flush()
    const res = await client.request('GET', `/stores/${storeId}/decisions?page_size=50`)
    expect(res.status, res.text).toBe(200)
    const byKind = (k: string) => res.body.decisions.filter((d: { kind: string }) => d.kind === k)
    const tokens = byKind('token_check')
    expect(tokens).toHaveLength(4)
    expect(byKind('batch_check')).toHaveLength(1)
    // Newest first: the batch item, the forged token, the scope ceiling, the delegated check.
    const [item, forged, scoped, delegated] = tokens
    expect(delegated).toMatchObject({
      user: 'agent:a',
      on_behalf_of: ['service_account:p'],
      relation: 'deployer',
      object: 'namespace:staging',
      allowed: true,
      detail: { token_issuer: 'ci', token_subject: 'service_account:p', token_actors: ['agent:a'] },
    })
    expect(delegated.witness).toEqual(
      expect.arrayContaining([tupleKey('service_account:p#acts_for@agent:a'), tupleKey('namespace:staging#deployer@agent:a')]),
    )
    expect(scoped).toMatchObject({ user: 'service_account:p', allowed: false, detail: { reason: 'scope_missing', token_issuer: 'ci' } })
    expect(forged).toMatchObject({ user: '', allowed: false, detail: { reason: 'token_invalid' } })
    expect(item).toMatchObject({ object: 'namespace:production', allowed: false, detail: { correlation_id: 't1', token_subject: 'service_account:p' } })
    // No token is ever stored.
    expect(res.text).not.toMatch(/eyJ/)
  })

  it('explains a refused token, the scope ceiling, and an evaluated token check', async () => {
    const { check } = await tokenStore(['namespace:staging#deployer@service_account:p'], { scopes: { deploy: ['deployer'] } })
    const expired = await mint({ sub: 'p', scope: 'deploy', exp: Math.floor(now / 1000) - 3600, iat: Math.floor(now / 1000) - 7200 })
    const refused = await check(expired, 'namespace:staging#deployer', { explain: true })
    expect(refused).toMatchObject({ allowed: false, reason: 'token_expired' })
    expect(refused.explanation.reasons).toEqual(['subject_token › token_expired: the token has expired'])

    const scoped = await check(await mint({ sub: 'p', scope: 'read' }), 'namespace:staging#deployer', { explain: true })
    expect(scoped.explanation.reasons[0]).toBe(
      "token of issuer 'ci': principal service_account:p › scope_missing: no scope of the token allows this relation (scopes are a ceiling, never a grant)",
    )

    const allowed = await check(await mint({ sub: 'p', scope: 'deploy' }), 'namespace:staging#deployer', { explain: true })
    expect(allowed.allowed).toBe(true)
    expect(allowed.explanation.path).toEqual([
      "token of issuer 'ci': principal service_account:p",
      'namespace:staging#deployer@service_account:p',
    ])
    const denied = await check(await mint({ sub: 'p', scope: 'deploy' }), 'namespace:production#deployer', { explain: true })
    expect(denied.allowed).toBe(false)
    expect(denied.explanation.reasons[0]).toMatch(/^token of issuer 'ci': principal service_account:p › namespace:production#deployer@service_account:p › direct: deployer: no tuple/)
  })
})

const target = await probePostgres()
describePostgres('token-native checks on PostgreSQL', target, () => {
  const url = usePostgresSchema(target)
  beforeEach(() => start({ databaseUrl: url() }))

  it('stores issuers, verifies tokens with them, and forgets them', async () => {
    const { storeId, check } = await tokenStore(
      ['namespace:staging#deployer@service_account:p', 'namespace:staging#deployer@agent:a', 'service_account:p#acts_for@agent:a'],
      { scopes: { deploy: ['deployer'] } },
    )
    expect((await putIssuer(storeId, 'dup', issuerBody())).status).toBe(400)
    now += MINUTE
    expect((await putIssuer(storeId, 'ci', issuerBody({ scopes: { deploy: ['deployer'] } }))).body).toMatchObject({
      created_at: '2026-11-29T09:00:00Z',
      updated_at: '2026-11-29T09:01:00Z',
    })
    expect((await check(await mint({ sub: 'p', act: { sub: 'a' }, scope: 'deploy' }), 'namespace:staging#deployer')).allowed).toBe(true)
    expect((await check(await mint({ sub: 'p', scope: 'read' }), 'namespace:staging#deployer')).reason).toBe('scope_missing')
    expect((await client.request('DELETE', `/stores/${storeId}/token-issuers/ci`)).status).toBe(204)
    expect((await check(await mint({ sub: 'p', scope: 'deploy' }), 'namespace:staging#deployer')).reason).toBe('issuer_untrusted')
    expect((await client.request('GET', `/stores/${storeId}/token-issuers`)).body).toEqual({ token_issuers: [] })
  })
})
