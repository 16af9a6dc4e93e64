/**
 * Key resolution for JWTs, shared by API-client authentication (`PEMBA_AUTH_MODE=oidc`) and
 * token-native checks (a store's trusted token issuers). A key set is either inline (a JWKS
 * document in configuration or in the issuer record) or fetched from a `jwks_uri`.
 *
 * A fetched key set is cached (`cacheMaxAgeMs`) and fetched again when a token names a `kid`
 * the cached set lacks, but never more often than once per `cooldownMs` per URI: a flood of
 * tokens with made-up `kid`s costs one fetch per cooldown, not one per token, so the server
 * cannot be turned into a request amplifier against the issuer. jose's remote key set does
 * exactly this once it has fetched a set; this module shares one per URI, bounds how many are
 * kept, and adds the same bound after a failed fetch (jose would retry on every token).
 *
 * @module
 */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose'
import { LRUCache } from 'lru-cache'
import type { JwksFetchGuard } from './jwks-guard.ts'

export type KeySource = { jwks: JSONWebKeySet } | { jwksUri: string }

/**
 * The JWS algorithms Pemba accepts anywhere: asymmetric signatures only. `none` would accept
 * any token, and an HMAC secret would have to be shared with every verifier.
 */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]

export interface JwksOptions {
  /** The shortest time between two fetches of one URI (ms). */
  cooldownMs: number
  /** How long a fetched key set is used before it is fetched again (ms). */
  cacheMaxAgeMs: number
  /** How long one fetch may take (ms). */
  timeoutMs: number
  /**
   * The SSRF guard (jwks-guard.ts) for key sets named by store admins (token issuers): every
   * fetch goes through it, and its timeout replaces `timeoutMs`. Without it (the operator's own
   * key sets), jose fetches directly.
   */
  guard?: JwksFetchGuard
}

export const JWKS_DEFAULTS: JwksOptions = { cooldownMs: 30_000, cacheMaxAgeMs: 10 * 60_000, timeoutMs: 5_000 }

/** JwksCache hands out one key resolver per key source; remote ones share fetches per URI. */
export class JwksCache {
  readonly #options: JwksOptions
  readonly #remote: LRUCache<string, JWTVerifyGetKey>
  readonly #local = new WeakMap<JSONWebKeySet, JWTVerifyGetKey>()

  /** The SSRF guard of this cache's fetches, when it has one (token issuers' key sets). */
  get guard(): JwksFetchGuard | undefined {
    return this.#options.guard
  }

  constructor(options: Partial<JwksOptions> = {}, maxRemoteSets = 1000) {
    this.#options = { ...JWKS_DEFAULTS, ...options }
    this.#remote = new LRUCache({ max: maxRemoteSets })
  }

  /** resolver returns the key lookup jose's jwtVerify takes for this source. */
  resolver(source: KeySource): JWTVerifyGetKey {
    if ('jwks' in source) {
      let r = this.#local.get(source.jwks)
      if (!r) {
        r = createLocalJWKSet(source.jwks)
        this.#local.set(source.jwks, r)
      }
      return r
    }
    let r = this.#remote.get(source.jwksUri)
    if (!r) {
      const guard = this.#options.guard
      r = failFastAfterFailedFetch(
        createRemoteJWKSet(new URL(source.jwksUri), {
          cooldownDuration: this.#options.cooldownMs,
          cacheMaxAge: this.#options.cacheMaxAgeMs,
          timeoutDuration: guard ? guard.timeoutMs : this.#options.timeoutMs,
          ...(guard ? { [customFetch]: guard.fetch } : {}),
        }),
        this.#options.cooldownMs,
      )
      this.#remote.set(source.jwksUri, r)
    }
    return r
  }
}

/**
 * jose's cooldown starts only after a successful fetch: while the issuer is down (or answers
 * errors), every token would cause a fetch attempt. After a failed fetch, this answers the same
 * failure without fetching until the cooldown has passed, so the bound holds then too.
 */
function failFastAfterFailedFetch(keys: JWTVerifyGetKey, cooldownMs: number): JWTVerifyGetKey {
  let failure: { at: number; error: unknown } | undefined
  return async (header, token) => {
    if (failure && Date.now() - failure.at < cooldownMs) throw failure.error
    try {
      return await keys(header, token)
    } catch (e) {
      // Verification verdicts (no matching key, bad key) are the token's fault; anything else
      // (network, timeout, a non-200 or non-JSON answer) is the fetch's.
      const verdict = e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys
      if (!verdict && !(e instanceof joseErrors.JOSENotSupported)) failure = { at: Date.now(), error: e }
      throw e
    }
  }
}
