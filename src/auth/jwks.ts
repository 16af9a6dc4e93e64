/**
 * Key resolution for JWTs, shared by API-client authentication (`PEMBA_AUTH_MODE=oidc`) and
 * token-native checks (a store's trusted token issuers). A key set is either inline (a JWKS
 * document in configuration or in the issuer record) or fetched from a `jwks_uri`.
 *
 * A fetched key set is cached (`cacheMaxAgeMs`) and fetched again when a token names a `kid`
 * the cached set lacks, but never more often than once per `cooldownMs` per URI: a flood of
 * tokens with made-up `kid`s costs one fetch per cooldown, not one per token, so the server
 * cannot be turned into a request amplifier against the issuer. jose's remote key set does
 * exactly this; this module only shares one per URI and bounds how many are kept.
 *
 * @module
 */
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose'
import { LRUCache } from 'lru-cache'

export type KeySource = { jwks: JSONWebKeySet } | { jwksUri: string }

export interface JwksOptions {
  /** The shortest time between two fetches of one URI (ms). */
  cooldownMs: number
  /** How long a fetched key set is used before it is fetched again (ms). */
  cacheMaxAgeMs: number
  /** How long one fetch may take (ms). */
  timeoutMs: number
}

export const JWKS_DEFAULTS: JwksOptions = { cooldownMs: 30_000, cacheMaxAgeMs: 10 * 60_000, timeoutMs: 5_000 }

/** JwksCache hands out one key resolver per key source; remote ones share fetches per URI. */
export class JwksCache {
  readonly #options: JwksOptions
  readonly #remote: LRUCache<string, JWTVerifyGetKey>
  readonly #local = new WeakMap<JSONWebKeySet, JWTVerifyGetKey>()

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
      r = createRemoteJWKSet(new URL(source.jwksUri), {
        cooldownDuration: this.#options.cooldownMs,
        cacheMaxAge: this.#options.cacheMaxAgeMs,
        timeoutDuration: this.#options.timeoutMs,
      })
      this.#remote.set(source.jwksUri, r)
    }
    return r
  }
}
