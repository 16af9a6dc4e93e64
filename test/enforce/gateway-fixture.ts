/**
 * What the gateway tests share: a real Pemba on a loopback port (servePemba) with a routes
 * file, a store whose model guards routes, an identity provider whose tokens the store trusts,
 * and an upstream (node:http) that echoes what reached it.
 *
 * The model: alice may GET `/users/{userId}` only for herself (a condition on the path
 * parameter; bob too), the assistant agent may GET any user's page, and only what the person
 * it acts for may too, and only for someone who delegated to it (alice did), reports are per object (`report:{reportId}`), `/public/…` is anyone's.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { expect } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { sign, signingKey, startIdentityProvider, type IdentityProvider, type SigningKey } from '../helpers/jwks-server.ts'

export const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type route
  relations
    define get: [user, user:*, agent, user with is_self]
    define put: [user]
type report
  relations
    define viewer: [user, agent]
condition is_self(me: string, resource_userId: string) {
  me == resource_userId
}
`

export const ROUTES_YAML = `routes:
  - template: /users/{userId}
    methods: [GET, PUT]
  - template: /reports/{reportId}
    methods: [GET]
    resource: {type: report, id: "{reportId}"}
    action: viewer
  - template: /public/{rest*}
    methods: [GET]
`

export const TUPLES = [
  { user: 'user:alice', relation: 'get', object: 'route:/users/{userId}', condition: { name: 'is_self', context: { me: 'alice' } } },
  { user: 'user:bob', relation: 'get', object: 'route:/users/{userId}', condition: { name: 'is_self', context: { me: 'bob' } } },
  { user: 'agent:assistant', relation: 'get', object: 'route:/users/{userId}' },
  { user: 'agent:assistant', relation: 'acts_for', object: 'user:alice' },
  { user: 'user:alice', relation: 'viewer', object: 'report:q3' },
  { user: 'agent:assistant', relation: 'viewer', object: 'report:q3' },
  { user: 'user:*', relation: 'get', object: 'route:/public/{rest*}' },
]

export const ISSUER = 'https://idp.gateway.test'
export const AUDIENCE = 'https://api.gateway.test'

export interface GatewayWorld {
  pemba: ServedPemba
  store: string
  idp: IdentityProvider
  key: SigningKey
  upstream: Upstream
  /** A token of the store's issuer: `sub` and the other claims given. */
  token(claims: Record<string, unknown>): Promise<string>
  /** JSON to Pemba's API, as the admin (`adminKey` when authentication is on). */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>
  close(): Promise<void>
}

export interface Upstream {
  url: string
  port: number
  /** The requests that reached it. */
  seen: { method: string; url: string; headers: IncomingHttpHeaders }[]
  close(): Promise<void>
}

/** startUpstream: a tiny service that answers 200 with what it got (method, url, the X-Pemba-* headers). */
export async function startUpstream(): Promise<Upstream> {
  const seen: Upstream['seen'] = []
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ method: req.method, url: req.url, subject: req.headers['x-pemba-subject'] ?? null, actor: req.headers['x-pemba-actor'] ?? null }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** writeRoutesFile writes a routes file to a temporary directory and returns its path. */
export function writeRoutesFile(yaml = ROUTES_YAML): string {
  const file = join(mkdtempSync(join(tmpdir(), 'pemba-gateway-')), 'routes.yaml')
  writeFileSync(file, yaml)
  return file
}

/** startWorld: Pemba (with `overrides`), the store, its issuer and tuples, and the upstream. */
export async function startWorld(overrides: Partial<PembaConfig> = {}, adminKey?: string): Promise<GatewayWorld> {
  const key = await signingKey('gw-1', 'ES256')
  const idp = await startIdentityProvider([key])
  // jwksAllowPrivate: the identity provider's key set is on loopback, which the SSRF guard refuses by default.
  const pemba = await servePemba({ gatewayRoutes: writeRoutesFile(), jwksAllowPrivate: 'on', ...overrides }, {}, adminKey ? [adminKey] : [])
  const api = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (adminKey) headers.authorization = `Bearer ${adminKey}`
    const res = await fetch(pemba.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }
  const created = await api('POST', '/stores', { name: 'gateway' })
  expect(created.status, JSON.stringify(created.body)).toBe(201)
  const store = created.body.id as string
  const { transformer } = await import('@openfga/syntax-transformer')
  const model = await api('POST', `/stores/${store}/authorization-models`, transformer.transformDSLToJSONObject(MODEL))
  expect(model.status, JSON.stringify(model.body)).toBe(201)
  const written = await api('POST', `/stores/${store}/write`, { writes: { tuple_keys: TUPLES } })
  expect(written.status, JSON.stringify(written.body)).toBe(200)
  const issuer = await api('PUT', `/stores/${store}/token-issuers/idp`, {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks_uri: idp.jwksUri,
    subject_type: 'user',
    actor_type: 'agent',
    scopes: { 'users:read': ['get'], 'users:write': ['put'], 'reports:read': ['viewer'] },
  })
  expect(issuer.status, JSON.stringify(issuer.body)).toBe(201)
  const upstream = await startUpstream()
  const now = () => Math.floor(Date.now() / 1000)
  return {
    pemba,
    store,
    idp,
    key,
    upstream,
    api,
    token: (claims) => sign(key, { iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 600, scope: 'users:read reports:read', ...claims }),
    async close() {
      await upstream.close()
      await pemba.close()
      await idp.close()
    },
  }
}

export interface RawAnswer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/**
 * rawRequest sends a request with its target exactly as given (fetch would resolve `..` and
 * re-encode), as a client attempting path confusion does.
 */
export function rawRequest(url: string, method: string, target: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port: Number(port), method, path: target, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** decisionsOf: the decision log's entries recorded under a request id (after a flush). */
export async function decisionsOf(w: GatewayWorld, requestId: string): Promise<any[]> {
  await w.pemba.pemba.decisions.flush()
  const r = await w.api('GET', `/stores/${w.store}/decisions?request_id=${encodeURIComponent(requestId)}`)
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body.decisions
}
