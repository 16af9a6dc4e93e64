/**
 * Authenticating API clients: turning an `Authorization: Bearer …` header into a client
 * identity (`client:provisioner`), or a 401 in OpenFGA's error format. Three modes:
 *
 * - `none`: no authentication; every request is the anonymous client ''.
 * - `preshared`: the bearer token must equal one of the configured keys. Keys are compared as
 *   SHA-256 digests with `timingSafeEqual`, every key every time, so neither the position of the
 *   first differing byte nor which key matched shows in the response time.
 * - `oidc`: the bearer token is a JWT signed by the issuer's key (asymmetric algorithms only),
 *   with the configured `iss` and `aud`, within `exp`/`nbf` give or take the clock skew. The
 *   identity is its `client_id` claim, else `azp`, else `sub`.
 *
 * No message or log line ever contains the token.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { LRUCache } from 'lru-cache'
import { PembaError } from '../core/errors.ts'
import { ASYMMETRIC_ALGORITHMS, type JwksCache } from '../service/jwks.ts'
import {
  CLIENT_TYPE,
  isClientName,
  parsePresharedKeys,
  readJwksFile,
  type AuthSettings,
} from './settings.ts'

export interface Authenticator {
  readonly mode: 'none' | 'preshared' | 'oidc'
  /**
   * authenticate returns the client identity for an `Authorization` header value (undefined when
   * the header is absent), or throws a 401 PembaError.
   */
  authenticate(authorization: string | undefined): Promise<string>
}

/** The algorithms a client token may be signed with: asymmetric only (no `none`, no HS*). */
export const CLIENT_TOKEN_ALGORITHMS = ASYMMETRIC_ALGORITHMS

export const bearerTokenMissing = () => new PembaError('bearer_token_missing', 'missing bearer token')
const unauthenticated = () => new PembaError('unauthenticated', 'unauthenticated')

/** bearerToken extracts the token of `Bearer <token>` (scheme case-insensitive), or throws. */
export function bearerToken(authorization: string | undefined): string {
  if (!authorization) throw bearerTokenMissing()
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)
  if (!m) throw bearerTokenMissing()
  return m[1]
}

export function createAuthenticator(settings: AuthSettings, jwks: JwksCache): Authenticator {
  switch (settings.authMode) {
    case 'preshared':
      return presharedAuthenticator(settings.authPresharedKeys)
    case 'oidc':
      return oidcAuthenticator(settings, jwks)
    default:
      return { mode: 'none', authenticate: async () => '' }
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

function presharedAuthenticator(raw: string): Authenticator {
  const keys = parsePresharedKeys(raw).map((k) => ({ client: k.client, digest: digest(k.key) }))
  return {
    mode: 'preshared',
    async authenticate(authorization) {
      const presented = digest(bearerToken(authorization))
      let client = ''
      // Compare against every key, without stopping at a match: equal-length digests, constant time.
      for (const k of keys) {
        if (timingSafeEqual(presented, k.digest)) client = k.client
      }
      if (!client) throw unauthenticated()
      return client
    },
  }
}

function oidcAuthenticator(s: AuthSettings, jwks: JwksCache): Authenticator {
  const keys: JWTVerifyGetKey = s.authOidcJwksFile
    ? jwks.resolver({ jwks: readJwksFile(s.authOidcJwksFile) })
    : jwks.resolver({ jwksUri: s.authOidcJwksUri })
  const options = {
    issuer: s.authOidcIssuer,
    audience: s.authOidcAudience,
    algorithms: CLIENT_TOKEN_ALGORITHMS,
    clockTolerance: s.authOidcClockSkewSeconds,
    requiredClaims: ['exp'],
  }
  // A client sends the same token with every call until it expires; verifying its signature
  // costs more than a cached check, so a verified token's identity is remembered (by digest),
  // until the token expires and for at most VERIFIED_TOKEN_TTL_MS, which also bounds how long a
  // key the issuer withdrew keeps working.
  const verified = new LRUCache<string, { client: string; until: number }>({ max: VERIFIED_TOKENS })
  return {
    mode: 'oidc',
    async authenticate(authorization) {
      const token = bearerToken(authorization)
      const id = digest(token).toString('base64')
      const now = Date.now()
      const known = verified.get(id)
      if (known && now < known.until) return known.client
      let payload: Record<string, unknown>
      try {
        payload = (await jwtVerify(token, keys, options)).payload
      } catch (e) {
        throw tokenError(e)
      }
      const client = clientOf(payload)
      const exp = (payload.exp as number) * 1000 + s.authOidcClockSkewSeconds * 1000
      verified.set(id, { client, until: Math.min(exp, now + VERIFIED_TOKEN_TTL_MS) })
      return client
    },
  }
}

/** How many verified client tokens are remembered, and for how long at most. */
const VERIFIED_TOKENS = 10_000
const VERIFIED_TOKEN_TTL_MS = 60_000

/** clientOf names the client of a verified token: `client_id`, else `azp`, else `sub`. */
function clientOf(payload: Record<string, unknown>): string {
  for (const claim of ['client_id', 'azp', 'sub']) {
    const v = payload[claim]
    if (typeof v === 'string' && v !== '') {
      if (!isClientName(v)) {
        throw new PembaError('auth_failed_invalid_subject', `invalid subject: the '${claim}' claim is not a valid client name`)
      }
      return `${CLIENT_TYPE}:${v}`
    }
  }
  throw new PembaError('auth_failed_invalid_subject', 'invalid subject: the token has no client_id, azp or sub claim')
}

/**
 * tokenError maps jose's verdict to OpenFGA's codes. A key set that cannot be fetched is not the
 * caller's fault: that is `unavailable` (a 5xx the SDK retries), not a 401.
 */
function tokenError(e: unknown): PembaError {
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'iss') return new PembaError('auth_failed_invalid_issuer', 'invalid issuer')
    if (e.claim === 'aud') return new PembaError('auth_failed_invalid_audience', 'invalid audience')
    return unauthenticated()
  }
  if (e instanceof joseErrors.JWKSTimeout) return keysUnavailable()
  if (e instanceof joseErrors.JOSEError) {
    // A key set the issuer served broken, or an error status from it.
    if (e instanceof joseErrors.JWKSInvalid || /JSON Web Key Set HTTP response/.test(e.message)) return keysUnavailable()
    return unauthenticated()
  }
  // Anything else comes from fetching the key set (connection refused, DNS…).
  return keysUnavailable()
}

function keysUnavailable(): PembaError {
  return new PembaError('unavailable', "the token issuer's key set could not be fetched")
}
