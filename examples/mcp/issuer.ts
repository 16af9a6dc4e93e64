/**
 * The example's token issuer: a stand-in for the identity provider that would give an AI agent
 * its access token. It holds one ES256 key pair, publishes the public half at
 * `http://127.0.0.1:<port>/jwks` (what gateway.yaml's `jwks_uri` points at), and mints tokens in
 * process. An agent acting for a person gets an RFC 8693 `act` claim:
 *
 *   {"iss":"http://127.0.0.1:<port>","aud":"<the gateway's resource>","sub":"alice",
 *    "act":{"sub":"assistant"},"client_id":"assistant","scope":"crm","exp":…}
 *
 * The gateway reads that as the delegated check: subject `agent:assistant`, on behalf of
 * `user:alice`, capped by the scopes the issuer maps (`crm` allows `call`).
 *
 * @module
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose'

export interface TokenRequest {
  /** The person the token names (`alice`). */
  subject: string
  /** The agent acting for them (`assistant`); absent: the person's own token. */
  actor?: string
  /** Space-separated scopes (`crm`). */
  scope?: string
  /** The audience: the gateway's `resource`. */
  audience: string
  /** Lifetime in seconds (default 3600). */
  expiresIn?: number
}

export interface LocalIssuer {
  /** The `iss` of every token, and the issuer gateway.yaml trusts. */
  url: string
  jwksUri: string
  mint(request: TokenRequest): Promise<string>
  close(): Promise<void>
}

const KID = 'example-1'

/** startIssuer makes a key pair and serves its JWKS on a free loopback port. */
export async function startIssuer(): Promise<LocalIssuer> {
  const { privateKey, publicKey } = (await generateKeyPair('ES256')) as { privateKey: CryptoKey; publicKey: CryptoKey }
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] })
  const http = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwks)
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(0, '127.0.0.1', resolve)
  })
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
  return {
    url,
    jwksUri: `${url}/jwks`,
    mint({ subject, actor, scope, audience, expiresIn = 3600 }) {
      const claims: JWTPayload = { sub: subject }
      if (actor) Object.assign(claims, { act: { sub: actor }, client_id: actor })
      if (scope) claims.scope = scope
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'JWT' })
        .setIssuer(url)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime(`${expiresIn}s`)
        .sign(privateKey)
    },
    async close() {
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    },
  }
}
