/**
 * The "Token-native checks" walkthrough of docs/nhi.md, run as written against the NHI example
 * (examples/nhi): the CI issuer and its pipeline's deploy token, then the support desk's issuer
 * and an agent's delegated token. The page fetches keys from a jwks_uri; here the same
 * issuers carry the public key inline (test/nhi/token-checks.test.ts covers jwks_uri).
 */
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { afterEach, beforeAll, beforeEach, expect, it } from 'vitest'
import { loadExample } from '../../examples/nhi/load.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'

const T0 = Date.parse('2026-11-29T09:00:00Z')
let now = T0
let client: TestClient
let store: string
let privateKey: CryptoKey
let jwk: JWK

beforeAll(async () => {
  const pair = await generateKeyPair('ES256')
  privateKey = pair.privateKey
  jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1' }
})
beforeEach(async () => {
  now = T0
  client = await createTestClient({}, { clock: () => new Date(now), sweeper: false })
  store = (await loadExample((method, path, body) =>
    client.request(method, path, body, typeof body === 'string' ? { 'content-type': 'text/plain' } : {}),
  )).storeId
})
afterEach(async () => {
  await client.close()
})

function sign(claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey)
}

async function check(relation: string, object: string, token: string) {
  const res = await client.request('POST', `/stores/${store}/check`, { tuple_key: { relation, object }, subject_token: token })
  expect(res.status, res.text).toBe(200)
  return res.body
}

it('the CI pipeline deploys to staging with its job token, not to production, and nothing once it expired', async () => {
  const put = await client.request('PUT', `/stores/${store}/token-issuers/ci`, {
    issuer: 'https://ci.example.com',
    audience: 'pemba',
    jwks: { keys: [jwk] },
    subject_type: 'service_account',
    scopes: { deploy: ['deployer'] },
  })
  expect(put.status, put.text).toBe(201)
  expect(put.body).toMatchObject({ name: 'ci', issuer: 'https://ci.example.com', subject_claim: 'sub' })

  const iat = Math.floor(now / 1000)
  const job = await sign({ iss: 'https://ci.example.com', aud: 'pemba', sub: 'ci-pipeline', scope: 'deploy', iat, exp: iat + 600 })
  const token = { issuer: 'ci', subject: 'service_account:ci-pipeline', actors: [] }
  expect(await check('deployer', 'namespace:staging', job)).toEqual({ allowed: true, resolution: '', token })
  expect(await check('deployer', 'namespace:production', job)).toEqual({ allowed: false, resolution: '', token })
  now += 10 * 60_000 + 31_000 // past exp and the 30 s skew
  for (const ns of ['staging', 'production']) {
    expect(await check('deployer', `namespace:${ns}`, job)).toEqual({ allowed: false, resolution: '', reason: 'token_expired' })
  }
})

it("the support assistant's token for alice allows what both may do, within its scope", async () => {
  const put = await client.request('PUT', `/stores/${store}/token-issuers/desk`, {
    issuer: 'https://id.example.com',
    audience: 'pemba',
    jwks: { keys: [jwk] },
    subject_type: 'user',
    actor_type: 'agent',
    scopes: { 'records:read': ['reader'] },
  })
  expect(put.status, put.text).toBe(201)

  const iat = Math.floor(now / 1000)
  const agent = await sign({
    iss: 'https://id.example.com',
    aud: 'pemba',
    sub: 'alice',
    act: { sub: 'support-assistant' },
    scope: 'records:read',
    iat,
    exp: iat + 300,
  })
  const token = { issuer: 'desk', subject: 'user:alice', actors: ['agent:support-assistant'] }
  expect(await check('reader', 'customer_record:acme-42', agent)).toEqual({ allowed: true, resolution: '', token })
  expect(await check('reader', 'customer_record:globex-7', agent)).toEqual({
    allowed: false,
    resolution: '',
    denied_by: 'principal',
    token,
  })
  expect(await check('exporter', 'customer_record:acme-42', agent)).toEqual({
    allowed: false,
    resolution: '',
    reason: 'scope_missing',
    token,
  })
  // bob never delegated to the assistant.
  const forBob = await sign({ iss: 'https://id.example.com', aud: 'pemba', sub: 'bob', act: { sub: 'support-assistant' }, scope: 'records:read', iat, exp: iat + 300 })
  expect((await check('reader', 'customer_record:globex-7', forBob)).denied_by).toBe('delegation')
})
