/**
 * @openfga/sdk 0.9.7 against a Pemba that authenticates its clients, over real HTTP:
 *
 * - `api_token` with preshared keys;
 * - `client_credentials` with OIDC: the SDK fetches a token from a local OAuth2 token endpoint
 *   (jose-minted RS256 JWTs, JWKS served beside it) and sends it as a bearer token.
 *
 * How the SDK finds the token endpoint (credentials.js, `buildApiTokenUrl`): `apiTokenIssuer`
 * is used as given when it starts with `http://` or `https://` (otherwise `https://` is put in
 * front), and `/oauth/token` is appended when it has no path. So it does not insist on HTTPS:
 * an explicit `http://127.0.0.1:<port>` issuer is honoured, which is what this test uses.
 */
import { serve, type ServerType } from '@hono/node-server'
import { CredentialsMethod, FgaApiAuthenticationError, OpenFgaClient } from '@openfga/sdk'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, type PembaConfig } from '../../src/config.ts'
import { createPemba, type Pemba } from '../../src/server.ts'
import { keyOf } from '../helpers/auth.ts'
import { signingKey, startIdentityProvider, type IdentityProvider } from '../helpers/jwks-server.ts'

const MODEL = {
  schema_version: '1.1',
  type_definitions: [
    { type: 'service_account' },
    {
      type: 'namespace',
      relations: { deployer: { this: {} } },
      metadata: { relations: { deployer: { directly_related_user_types: [{ type: 'service_account' }] } } },
    },
  ],
}
const TUPLE = { user: 'service_account:ci-pipeline', relation: 'deployer', object: 'namespace:staging' }

interface Running {
  pemba: Pemba
  url: string
  /** Requests the server received, by path. */
  paths: string[]
  close(): Promise<void>
}

async function startPemba(overrides: Partial<PembaConfig>): Promise<Running> {
  const pemba = await createPemba({ ...loadConfig({ env: {}, argv: [] }), databaseUrl: 'sqlite::memory:', logLevel: 'warn', ...overrides })
  const paths: string[] = []
  const server: ServerType = serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: (req: Request, env: unknown) => {
      paths.push(`${req.method} ${new URL(req.url).pathname}`)
      return pemba.app.fetch(req, env as never)
    },
  })
  await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())))
  const { port } = server.address() as AddressInfo
  return {
    pemba,
    url: `http://127.0.0.1:${port}`,
    paths,
    async close() {
      ;(server as unknown as { closeAllConnections(): void }).closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
      await pemba.close()
    },
  }
}

describe('api_token (preshared keys)', () => {
  let s: Running
  beforeAll(async () => {
    s = await startPemba({
      authMode: 'preshared',
      authPresharedKeys: `provisioner=${keyOf('provisioner')},ci=${keyOf('ci')}`,
      authAdminClients: 'provisioner',
    })
  })
  afterAll(() => s.close())

  const client = (name: string, storeId?: string) =>
    new OpenFgaClient({
      apiUrl: s.url,
      storeId,
      credentials: { method: CredentialsMethod.ApiToken, config: { token: keyOf(name) } },
    })

  it('a permitted client runs the whole flow; another is refused with forbidden until granted', async () => {
    const admin = client('provisioner')
    const store = await admin.createStore({ name: 'sdk-auth' })
    const provisioner = client('provisioner', store.id)
    const { authorization_model_id } = await provisioner.writeAuthorizationModel(MODEL as never)
    await provisioner.write({ writes: [TUPLE] }, { authorizationModelId: authorization_model_id })
    expect((await provisioner.check(TUPLE)).allowed).toBe(true)
    expect((await admin.listStores()).stores.map((x) => x.id)).toEqual([store.id])

    const ci = client('ci', store.id)
    const before = s.paths.length
    const err = await ci.check(TUPLE).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FgaApiAuthenticationError)
    expect((err as FgaApiAuthenticationError).apiErrorCode).toBe('forbidden')
    expect((err as FgaApiAuthenticationError).statusCode).toBe(401)
    expect(s.paths.length - before).toBe(1) // 401 is not retried
    expect((await ci.listStores()).stores).toEqual([])

    await s.pemba.access.grant({ client: 'client:ci', role: 'checker', store: store.id })
    expect((await ci.check(TUPLE)).allowed).toBe(true)
    const write = await ci.write({ writes: [{ ...TUPLE, object: 'namespace:prod' }] }).catch((e: unknown) => e)
    expect((write as FgaApiAuthenticationError).apiErrorCode).toBe('forbidden')
  })

  it('a wrong key: unauthenticated', async () => {
    const wrong = new OpenFgaClient({
      apiUrl: s.url,
      credentials: { method: CredentialsMethod.ApiToken, config: { token: 'wrong-key-0123456789abcdef' } },
    })
    const err = await wrong.listStores().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FgaApiAuthenticationError)
    expect((err as FgaApiAuthenticationError).apiErrorCode).toBe('unauthenticated')
  })
})

describe('client_credentials (OIDC)', () => {
  const AUDIENCE = 'https://pemba.example/'
  let idp: IdentityProvider
  let s: Running

  beforeAll(async () => {
    const key = await signingKey('idp-key', 'RS256')
    // The issuer URL is only known once the server listens: start, then point it at itself.
    const tokens = { issuer: '', clients: { provisioner: 'provisioner-secret', ci: 'ci-secret' }, key }
    idp = await startIdentityProvider([key], tokens)
    tokens.issuer = `${idp.url}/`
    s = await startPemba({
      authMode: 'oidc',
      authOidcIssuer: tokens.issuer,
      authOidcAudience: AUDIENCE,
      authOidcJwksUri: idp.jwksUri,
      authAdminClients: 'provisioner',
    })
  })
  afterAll(async () => {
    await s.close()
    await idp.close()
  })

  const client = (clientId: string, clientSecret: string, storeId?: string) =>
    new OpenFgaClient({
      apiUrl: s.url,
      storeId,
      credentials: {
        method: CredentialsMethod.ClientCredentials,
        config: { apiTokenIssuer: idp.url, apiAudience: AUDIENCE, clientId, clientSecret },
      },
    })

  it('the SDK gets a token from the token endpoint once and uses it for every call', async () => {
    const admin = client('provisioner', 'provisioner-secret')
    const store = await admin.createStore({ name: 'sdk-oidc' })
    const provisioner = client('provisioner', 'provisioner-secret', store.id)
    await provisioner.writeAuthorizationModel(MODEL as never)
    await provisioner.write({ writes: [TUPLE] })
    expect((await provisioner.check(TUPLE)).allowed).toBe(true)
    expect((await provisioner.listObjects({ user: TUPLE.user, relation: 'deployer', type: 'namespace' })).objects).toEqual([
      'namespace:staging',
    ])
    // One token request per SDK client (two clients so far), as the SDK form-encodes it.
    expect(idp.tokenRequests).toHaveLength(2)
    expect(idp.tokenRequests[0]).toMatchObject({
      client_id: 'provisioner',
      audience: AUDIENCE,
      grant_type: 'client_credentials',
    })
    expect(idp.jwksFetches()).toBe(1)

    const ci = client('ci', 'ci-secret', store.id)
    const err = await ci.check(TUPLE).catch((e: unknown) => e)
    expect((err as FgaApiAuthenticationError).apiErrorCode).toBe('forbidden')
    expect((err as FgaApiAuthenticationError).apiErrorMessage).toBe(
      `client 'client:ci' lacks the 'checker' permission on store '${store.id}'`,
    )
    await s.pemba.access.grant({ client: 'client:ci', role: 'checker', store: store.id })
    expect((await ci.check(TUPLE)).allowed).toBe(true)
  })

  it('a client the token endpoint refuses never reaches Pemba', async () => {
    const before = s.paths.length
    const err = await client('ci', 'wrong-secret').listStores().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FgaApiAuthenticationError)
    expect(s.paths.length).toBe(before)
  })
})
