/**
 * A local identity provider for the OIDC tests: signing keys, a JWKS endpoint that counts its
 * fetches, and (optionally) an OAuth2 client-credentials token endpoint as the OpenFGA SDK
 * calls it (`POST /oauth/token`, form-encoded `client_id`, `client_secret`, `audience`,
 * `grant_type=client_credentials`).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type CryptoKey } from 'jose'

export interface SigningKey {
  kid: string
  alg: 'RS256' | 'ES256'
  privateKey: CryptoKey
  publicJwk: JWK
}

export async function signingKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, publicJwk }
}

/** sign makes a JWT with the key's kid and alg; `claims` override the defaults. */
export function sign(key: SigningKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey)
}

export interface IdentityProvider {
  url: string
  jwksUri: string
  /** Keys the JWKS endpoint serves now (change it to rotate). */
  published: SigningKey[]
  /** While true, the JWKS endpoint answers 503 (still counted as a fetch). */
  failing: boolean
  /** How many times the JWKS was fetched. */
  jwksFetches(): number
  /** Token requests seen by /oauth/token. */
  tokenRequests: Record<string, string>[]
  close(): Promise<void>
}

export interface TokenEndpointOptions {
  issuer: string
  /** client_id → client_secret */
  clients: Record<string, string>
  /** Signs the minted access tokens. */
  key: SigningKey
  expiresInSeconds?: number
}

export async function startIdentityProvider(published: SigningKey[], tokens?: TokenEndpointOptions): Promise<IdentityProvider> {
  let fetches = 0
  const tokenRequests: Record<string, string>[] = []
  const idp = { published, failing: false } as IdentityProvider
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (req.method === 'GET' && url.pathname === '/jwks') {
      fetches++
      if (idp.failing) {
        res.writeHead(503).end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ keys: idp.published.map((k) => k.publicJwk) }))
      return
    }
    if (req.method === 'POST' && url.pathname === '/oauth/token' && tokens) {
      let body = ''
      req.setEncoding('utf8').on('data', (d: string) => (body += d))
      req.on('end', async () => {
        const form = Object.fromEntries(new URLSearchParams(body))
        tokenRequests.push(form)
        const secret = tokens.clients[form.client_id ?? '']
        if (form.grant_type !== 'client_credentials' || secret === undefined || secret !== form.client_secret) {
          res.writeHead(401, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ error: 'invalid_client' }))
          return
        }
        const expiresIn = tokens.expiresInSeconds ?? 3600
        const now = Math.floor(Date.now() / 1000)
        const accessToken = await sign(tokens.key, {
          iss: tokens.issuer,
          aud: form.audience,
          sub: `${form.client_id}@clients`,
          client_id: form.client_id,
          iat: now,
          exp: now + expiresIn,
        })
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ access_token: accessToken, token_type: 'Bearer', expires_in: expiresIn }))
      })
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  idp.url = `http://127.0.0.1:${port}`
  idp.jwksUri = `${idp.url}/jwks`
  idp.jwksFetches = () => fetches
  idp.tokenRequests = tokenRequests
  idp.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return idp
}
