/**
 * A store's trusted token issuers: who may mint the tokens a token-native check accepts
 * (`PUT /stores/{store}/token-issuers/{name}`), and how their claims map to identities in the
 * store's model. For example, the issuer `ci` with
 *
 *     {"issuer": "https://ci.example", "audience": "pemba", "jwks_uri": "https://ci.example/jwks",
 *      "subject_type": "service_account", "actor_type": "agent", "scopes": {"deploy": ["deployer"]}}
 *
 * turns a token with `sub: "pipeline-7"` into `service_account:pipeline-7`, which may ask about
 * `deployer` only while its `scope` claim holds `deploy`.
 *
 * An issuer is validated when it is put, against the store's latest model: the types it names
 * exist, the subject type defines `acts_for` when actors are mapped, and every scope relation is
 * a relation of some type; inline keys must be public asymmetric signing keys. Token checks then
 * find an issuer by the token's `iss`, so one store cannot have two issuers with the same `iss`.
 *
 * Check-time look-ups are cached per store for up to `stalenessMs` (a change on this replica is
 * seen at once, on other replicas within that bound; HIGHER_CONSISTENCY reads afresh), and the
 * compiled issuer (its key resolver) is reused until the issuer changes.
 *
 * @module
 */
import { importJWK, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose'
import { LRUCache } from 'lru-cache'
import { PembaError, validationError, type ErrorCode } from '../core/errors.ts'
import { ASYMMETRIC_ALGORITHMS, JwksCache } from './jwks.ts'
import { ACTS_FOR } from '../engine/delegation.ts'
import type { TypeSystem } from '../model/typesystem.ts'
import type { StoreCatalog } from '../store/ports.ts'
import type { TokenIssuerRecord, TokenIssuerStore } from './token-issuer-store.ts'
import type { ModelService } from './models.ts'

/** The most token issuers one store may trust. */
export const MAX_TOKEN_ISSUERS_PER_STORE = 100

/**
 * The signature algorithms a token may use: asymmetric only (no `none`, no HMAC secrets), the
 * same as for API clients' tokens.
 */
export const TOKEN_ALGORITHMS = ASYMMETRIC_ALGORITHMS

/** JWK members that only private or symmetric keys carry. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/** An issuer's configuration, as put (snake_case, the wire shape) and stored. */
export interface TokenIssuerConfig {
  /** The `iss` its tokens carry. */
  issuer: string
  /** The `aud` a token must name (one of them, when a list). */
  audience: string | string[]
  /** Inline public keys, or… */
  jwks?: JSONWebKeySet
  /** …where to fetch them (http or https). */
  jwks_uri?: string
  /** The type of the token's subject (`service_account`). */
  subject_type: string
  /** The claim holding the subject's id; `sub` by default. */
  subject_claim: string
  /** The type of the actors in `act` claims (`agent`); absent: tokens with `act` are refused. */
  actor_type?: string
  /** scope → relations it allows asking about; absent: no scope ceiling. */
  scopes?: Record<string, string[]>
}

/** A stored issuer, with its name and times. */
export interface TokenIssuer extends TokenIssuerConfig {
  name: string
  createdAt: Date
  updatedAt: Date
}

/** An issuer ready to verify tokens with: its configuration and its key resolver. */
export interface ActiveTokenIssuer {
  name: string
  config: TokenIssuerConfig
  keys: JWTVerifyGetKey
  /** Whether its keys are fetched (a failure to get them is then the issuer's, not the token's). */
  remote: boolean
}

/**
 * TokenIssuerError is a token-issuer failure with its own code (`token_issuer_not_found`,
 * `token_issuer_conflict`), so clients need not parse messages.
 */
export class TokenIssuerError extends PembaError {
  constructor(code: string, message: string, status: number) {
    // The base code only picks a status; the real code replaces it.
    super('validation_error' as ErrorCode, message, status)
    ;(this as { code: string }).code = code
  }
}

export interface TokenIssuerServiceOptions {
  datastore: TokenIssuerStore & Pick<StoreCatalog, 'getStore'>
  models: ModelService
  jwks: JwksCache
  clock: () => Date
  /** How old a replica's view of a store's issuers may be (ms); PEMBA_CHECK_CACHE_STALENESS_MS. */
  stalenessMs: number
}

interface StoreIssuers {
  at: number
  /** By `iss`. */
  byIssuer: Map<string, ActiveTokenIssuer>
  /** By name, with the `updatedAt` it was compiled from, to reuse across refreshes. */
  compiled: Map<string, { updatedAt: number; active: ActiveTokenIssuer }>
}

export class TokenIssuerService {
  readonly #o: TokenIssuerServiceOptions
  readonly #byStore = new LRUCache<string, StoreIssuers>({ max: 10_000 })

  constructor(options: TokenIssuerServiceOptions) {
    this.#o = options
  }

  /** forgetStore drops a deleted store's compiled issuers. */
  forgetStore(storeId: string): void {
    this.#byStore.delete(storeId)
  }

  /**
   * put validates an issuer against the store's latest model and stores it under `name`,
   * replacing any issuer of that name. Returns it and whether it is new.
   */
  async put(storeId: string, name: string, config: TokenIssuerConfig): Promise<{ issuer: TokenIssuer; created: boolean }> {
    await this.#requireStore(storeId)
    const ts = await this.#o.models.resolve(storeId, undefined, { fresh: true })
    validateAgainstModel(ts, config)
    if (config.jwks) await validateKeys(config.jwks)
    // A jwks_uri whose host is an IP address in a refused range can never be fetched: say so now
    // (names are checked at each fetch, since what they resolve to may change).
    const refusal = config.jwks_uri === undefined ? undefined : this.#o.jwks.guard?.literalRefusal(config.jwks_uri)
    if (refusal) throw new PembaError('validation_error', `invalid PutTokenIssuer.${refusal}`)
    const r = await this.#o.datastore.putTokenIssuer(
      {
        storeId,
        name,
        issuer: config.issuer,
        config: config as unknown as Record<string, unknown>,
        limit: MAX_TOKEN_ISSUERS_PER_STORE,
      },
      this.#o.clock(),
    )
    if (!r.ok) {
      if (r.reason === 'store_missing') throw storeNotFound()
      if (r.reason === 'limit') {
        throw validationError(`a store may trust at most ${MAX_TOKEN_ISSUERS_PER_STORE} token issuers`)
      }
      throw validationError(
        `token issuer '${r.by}' of this store already has issuer '${config.issuer}': tokens would be ambiguous`,
      )
    }
    this.#byStore.delete(storeId)
    return { issuer: fromRecord(r.record), created: r.created }
  }

  async get(storeId: string, name: string): Promise<TokenIssuer> {
    await this.#requireStore(storeId)
    const r = await this.#o.datastore.getTokenIssuer(storeId, name)
    if (!r) throw issuerNotFound(name)
    return fromRecord(r)
  }

  async list(storeId: string): Promise<TokenIssuer[]> {
    await this.#requireStore(storeId)
    return (await this.#o.datastore.listTokenIssuers(storeId)).map(fromRecord)
  }

  /** delete removes an issuer; tokens it minted are untrusted from then on. */
  async delete(storeId: string, name: string): Promise<void> {
    await this.#requireStore(storeId)
    if (!(await this.#o.datastore.deleteTokenIssuer(storeId, name))) throw issuerNotFound(name)
    this.#byStore.delete(storeId)
  }

  /**
   * byIssuer finds the store's issuer whose `iss` is `iss`, ready to verify with; `fresh` reads
   * the store's issuers from the database instead of this replica's recent view of them.
   */
  async byIssuer(storeId: string, iss: string, fresh: boolean): Promise<ActiveTokenIssuer | undefined> {
    const now = this.#o.clock().getTime()
    let known = this.#byStore.get(storeId)
    if (fresh || !known || now - known.at > this.#o.stalenessMs) {
      const records = await this.#o.datastore.listTokenIssuers(storeId)
      const compiled = new Map<string, { updatedAt: number; active: ActiveTokenIssuer }>()
      const byIssuer = new Map<string, ActiveTokenIssuer>()
      for (const r of records) {
        const before = known?.compiled.get(r.name)
        const active =
          before && before.updatedAt === r.updatedAt.getTime() ? before.active : this.#activate(r)
        compiled.set(r.name, { updatedAt: r.updatedAt.getTime(), active })
        byIssuer.set(r.issuer, active)
      }
      known = { at: now, byIssuer, compiled }
      this.#byStore.set(storeId, known)
    }
    return known.byIssuer.get(iss)
  }

  #activate(r: TokenIssuerRecord): ActiveTokenIssuer {
    return activateIssuer(r.name, r.config as unknown as TokenIssuerConfig, this.#o.jwks)
  }

  async #requireStore(storeId: string): Promise<void> {
    if (!(await this.#o.datastore.getStore(storeId))) throw storeNotFound()
  }
}

/**
 * activateIssuer compiles a validated issuer into one ready to verify with: its key resolver
 * (inline keys, or a fetched key set shared through `jwks`).
 */
export function activateIssuer(name: string, config: TokenIssuerConfig, jwks: JwksCache): ActiveTokenIssuer {
  const source = config.jwks ? { jwks: config.jwks } : { jwksUri: config.jwks_uri! }
  return { name, config, keys: jwks.resolver(source), remote: !config.jwks }
}

function fromRecord(r: TokenIssuerRecord): TokenIssuer {
  return { name: r.name, ...(r.config as unknown as TokenIssuerConfig), createdAt: r.createdAt, updatedAt: r.updatedAt }
}

function storeNotFound(): PembaError {
  return new PembaError('store_id_not_found', 'Store ID not found')
}

function issuerNotFound(name: string): TokenIssuerError {
  return new TokenIssuerError('token_issuer_not_found', `token issuer '${name}' not found`, 404)
}

/**
 * validateAgainstModel checks that what an issuer maps tokens to exists in the model: its types,
 * `acts_for` on the subject type when it maps actors (or no delegated token could ever be
 * allowed), and each scope's relations on at least one type.
 */
function validateAgainstModel(ts: TypeSystem, c: TokenIssuerConfig): void {
  const named = (what: string, type: string) => {
    if (!ts.hasType(type)) throw validationError(`${what} '${type}' is not a type of the store's latest model (${ts.id})`)
  }
  named('subject_type', c.subject_type)
  if (c.actor_type !== undefined) {
    named('actor_type', c.actor_type)
    if (!ts.relation(c.subject_type, ACTS_FOR)) {
      throw validationError(
        `actor_type is set but subject_type '${c.subject_type}' defines no '${ACTS_FOR}' relation, so no actor could act for a subject`,
      )
    }
  }
  if (c.scopes) {
    const relations = new Set<string>()
    for (const td of ts.model.type_definitions) for (const r of Object.keys(td.relations ?? {})) relations.add(r)
    for (const [scope, rels] of Object.entries(c.scopes)) {
      for (const r of rels) {
        if (!relations.has(r)) {
          throw validationError(`scope '${scope}' names relation '${r}', which no type of the store's latest model (${ts.id}) defines`)
        }
      }
    }
  }
}

/** The algorithm a key without `alg` is imported with, just to prove it is a usable public key. */
function defaultAlgorithm(k: JWK): string | undefined {
  if (k.kty === 'RSA') return 'RS256'
  if (k.kty === 'EC') return { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[k.crv ?? '']
  if (k.kty === 'OKP') return k.crv === 'Ed25519' ? 'Ed25519' : undefined
  return undefined
}

/**
 * validateKeys imports every inline key with jose and refuses what a token check must never
 * trust: symmetric (`oct`) keys, keys carrying private material, keys for encryption, keys for
 * algorithms outside TOKEN_ALGORITHMS, and RSA keys under 2048 bits.
 */
export async function validateKeys(jwks: JSONWebKeySet): Promise<void> {
  for (const [i, key] of jwks.keys.entries()) {
    const where = `jwks.keys[${i}]${typeof key.kid === 'string' ? ` (kid '${key.kid}')` : ''}`
    if (key.kty === 'oct') throw validationError(`${where}: symmetric keys (kty 'oct') are not accepted; use an asymmetric key`)
    const secret = PRIVATE_MEMBERS.filter((m) => m in key)
    if (secret.length) {
      throw validationError(`${where}: carries private key material (${secret.join(', ')}); give the public key only`)
    }
    if (key.use !== undefined && key.use !== 'sig') throw validationError(`${where}: 'use' must be 'sig'`)
    if (key.alg !== undefined && !TOKEN_ALGORITHMS.includes(key.alg)) {
      throw validationError(`${where}: algorithm '${key.alg}' is not accepted (one of ${TOKEN_ALGORITHMS.join(', ')})`)
    }
    const alg = key.alg ?? defaultAlgorithm(key)
    if (!alg) throw validationError(`${where}: unsupported key type '${String(key.kty)}'${key.crv ? ` (crv '${key.crv}')` : ''}`)
    let imported: unknown
    try {
      imported = await importJWK(key, alg)
    } catch (e) {
      throw validationError(`${where}: not a usable ${alg} public key: ${(e as Error).message}`)
    }
    const algorithm = (imported as { algorithm?: { modulusLength?: number } }).algorithm
    if (key.kty === 'RSA' && (algorithm?.modulusLength ?? 0) < 2048) {
      throw validationError(`${where}: RSA keys must be at least 2048 bits`)
    }
  }
}
