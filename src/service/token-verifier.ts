/**
 * Token verification: whether a bearer token was minted by a trusted issuer for us, and whom it
 * names. Shared by the server's token-native checks (token-checks.ts, a store's issuers) and the
 * enforcement points that verify their callers' tokens themselves (the MCP gateway, with the
 * issuers of its own configuration, compiled by {@link staticIssuers}), so both apply exactly the
 * same rules:
 *
 * - the issuer is found by the token's `iss`; an unknown one is `issuer_untrusted`;
 * - the signature is checked with the issuer's keys, asymmetric algorithms only; the audience
 *   must be the issuer's (one of them); `exp` is required; `exp` and `nbf` allow the clock skew;
 * - the principal is `<subject_type>:<claims[subject_claim]>`; RFC 8693 `act` claims name the
 *   actors, outermost (current) first, each `<actor_type>:<sub>`, at most `maxDelegationChain`
 *   of them. `{sub: "alice", act: {sub: "summarizer", act: {sub: "planner"}}}` names principal
 *   `user:alice` and actors `[agent:summarizer, agent:planner]`.
 *
 * A token that cannot be trusted is an answer (`{ok: false, reason}`), not an error, and the
 * token itself is never echoed. Scopes are checked apart ({@link missingScopes}), since they
 * depend on what the token is used for.
 *
 * @module
 */
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose'
import type { JwksCache } from './jwks.ts'
import { TOKEN_ISSUER_NAME, TOKEN_ISSUER_NAME_RULE, tokenIssuerConfigSchema } from './token-issuer-config.ts'
import { TOKEN_ALGORITHMS, activateIssuer, validateKeys, type ActiveTokenIssuer, type TokenIssuerConfig } from './token-issuers.ts'

/** Why a token was refused before any relationship was read. */
export type TokenRejection =
  /** Not a verifiable JWT of its issuer: bad signature or format, wrong audience, not yet valid (`nbf`), a refused algorithm, no `exp`, a missing or malformed subject or actor claim. */
  | 'token_invalid'
  /** Past its `exp` (beyond the clock skew allowed). */
  | 'token_expired'
  /** No `iss`, or one this store does not trust. */
  | 'issuer_untrusted'
  /** The issuer's key set could not be fetched or read: nothing can be verified until it can. */
  | 'issuer_keys_unavailable'
  /** More `act` hops than PEMBA_MAX_DELEGATION_CHAIN. */
  | 'delegation_chain_too_long'
  /** The issuer maps scopes and none of the token's allows this relation. */
  | 'scope_missing'
  /** The caller named a subject (AuthZEN) that is neither the token's principal nor its current actor. */
  | 'subject_mismatch'

/** What a verified token named: its issuer (by name), principal and actors. */
export interface TokenIdentity {
  issuer: string
  /** The principal, `service_account:pipeline-7`. */
  subject: string
  /** The actors, current first (`act.sub`, then `act.act.sub`, …); empty without `act`. */
  actors: string[]
}

/** A token that verified: whom it names, its claims, and the issuer that vouched for it. */
export interface VerifiedToken {
  ok: true
  identity: TokenIdentity
  claims: JWTPayload
  issuer: ActiveTokenIssuer
}

export type TokenVerification = VerifiedToken | { ok: false; reason: TokenRejection }

/** Finds the issuer whose `iss` a token carries; `fresh` skips any cached view of the issuers. */
export type IssuerLookup = (iss: string, fresh: boolean) => Promise<ActiveTokenIssuer | undefined>

export interface TokenVerifierOptions {
  issuers: IssuerLookup
  clock: () => Date
  /** Leeway for `exp` and `nbf` (seconds), for clocks that disagree a little. */
  clockSkewSeconds: number
  /** PEMBA_MAX_DELEGATION_CHAIN: the most `act` hops a token may carry. */
  maxDelegationChain: number
}

/** Longest claim value taken as an identity id (a check's `user` is at most 512 characters). */
const MAX_ID_LENGTH = 256

export class TokenVerifier {
  readonly #o: TokenVerifierOptions

  constructor(options: TokenVerifierOptions) {
    this.#o = options
  }

  /** verify checks a token's signature and claims and names its principal and actors. */
  async verify(token: string, fresh = false): Promise<TokenVerification> {
    let unverified: JWTPayload
    try {
      unverified = decodeJwt(token)
    } catch {
      return { ok: false, reason: 'token_invalid' }
    }
    if (typeof unverified.iss !== 'string') return { ok: false, reason: 'issuer_untrusted' }
    const issuer = await this.#o.issuers(unverified.iss, fresh)
    if (!issuer) return { ok: false, reason: 'issuer_untrusted' }
    let claims: JWTPayload
    try {
      ;({ payload: claims } = await jwtVerify(token, issuer.keys, {
        issuer: issuer.config.issuer,
        audience: issuer.config.audience,
        algorithms: TOKEN_ALGORITHMS,
        currentDate: this.#o.clock(),
        clockTolerance: this.#o.clockSkewSeconds,
        // A token without an expiry would be trusted forever.
        requiredClaims: ['exp'],
      }))
    } catch (e) {
      return { ok: false, reason: rejectionOf(e, issuer.remote) }
    }
    const identity = this.#identity(issuer, claims)
    return typeof identity === 'string' ? { ok: false, reason: identity } : { ok: true, identity, claims, issuer }
  }

  /** #identity reads the principal and the `act` chain of verified claims. */
  #identity(issuer: ActiveTokenIssuer, claims: JWTPayload): TokenIdentity | TokenRejection {
    const c = issuer.config
    const principalId = identityId(claims[c.subject_claim ?? 'sub'])
    if (principalId === undefined) return 'token_invalid'
    const actors: string[] = []
    let act: unknown = claims.act
    while (act !== undefined) {
      if (c.actor_type === undefined) return 'token_invalid'
      if (actors.length === this.#o.maxDelegationChain) return 'delegation_chain_too_long'
      if (!act || typeof act !== 'object' || Array.isArray(act)) return 'token_invalid'
      const actorId = identityId((act as Record<string, unknown>).sub)
      if (actorId === undefined) return 'token_invalid'
      actors.push(`${c.actor_type}:${actorId}`)
      act = (act as Record<string, unknown>).act
    }
    return { issuer: issuer.name, subject: `${c.subject_type}:${principalId}`, actors }
  }
}

/**
 * missingScopes applies an issuer's scope ceiling: `undefined` when the issuer maps no scopes or
 * a scope of the token (`scope`, space-separated, or `scp`, an array or string) allows
 * `relation`; otherwise the issuer's scopes that would allow it, least privileged first (the
 * scope allowing the fewest relations; ties in configuration order). Empty when none would.
 *
 * @example
 * // scopes {"crm:read": ["call", "get", "read"], "crm:export": ["export"]}, token scope "crm:read"
 * missingScopes(config, claims, 'call')   // undefined
 * missingScopes(config, claims, 'export') // ['crm:export']
 */
export function missingScopes(config: TokenIssuerConfig, claims: JWTPayload, relation: string): string[] | undefined {
  const scopes = config.scopes
  if (!scopes) return undefined
  for (const s of heldScopes(claims)) {
    if (Object.hasOwn(scopes, s) && scopes[s].includes(relation)) return undefined
  }
  return Object.keys(scopes)
    .filter((s) => scopes[s].includes(relation))
    .sort((a, b) => scopes[a].length - scopes[b].length)
}

/** The scopes a token holds, from `scope` and `scp`. */
export function heldScopes(claims: JWTPayload): Set<string> {
  const held = new Set<string>()
  if (typeof claims.scope === 'string') for (const s of claims.scope.split(' ')) if (s) held.add(s)
  const scp = claims.scp
  if (typeof scp === 'string') for (const s of scp.split(' ')) if (s) held.add(s)
  if (Array.isArray(scp)) for (const s of scp) if (typeof s === 'string') held.add(s)
  return held
}

/** An issuer as an enforcement point's configuration gives it: named, `subject_claim` optional (`sub`). */
export type StaticIssuerConfig = Omit<TokenIssuerConfig, 'subject_claim'> & { subject_claim?: string; name: string }

/** A static issuer configuration that cannot work; the message names the issuer and the field. */
export class IssuerConfigError extends Error {
  override readonly name = 'IssuerConfigError'
}

/**
 * staticIssuers validates a fixed set of issuers (an enforcement point's own configuration)
 * exactly as `PUT /stores/{store}/token-issuers/{name}` validates one (the same schema and key
 * checks; there is no model to check types against), refuses duplicate names and duplicate
 * `iss` (tokens would be ambiguous), and compiles each once. Throws IssuerConfigError naming the
 * issuer and field, e.g. `issuers[0] ('idp'): audience: must be a non-empty string or a list…`.
 */
export async function staticIssuers(configs: readonly StaticIssuerConfig[], jwks: JwksCache): Promise<IssuerLookup> {
  const byIssuer = new Map<string, ActiveTokenIssuer>()
  const names = new Set<string>()
  for (const [i, raw] of configs.entries()) {
    const { name, ...rest } = (raw ?? {}) as Partial<StaticIssuerConfig>
    const where = typeof name === 'string' ? `issuers[${i}] ('${name}')` : `issuers[${i}]`
    if (typeof name !== 'string' || !TOKEN_ISSUER_NAME.test(name)) {
      throw new IssuerConfigError(`${where}: name: ${TOKEN_ISSUER_NAME_RULE}`)
    }
    if (names.has(name)) throw new IssuerConfigError(`${where}: name: another issuer is already named '${name}'`)
    names.add(name)
    const parsed = tokenIssuerConfigSchema.safeParse(rest)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const field = issue.path.length ? `${issue.path.join('.')}: ` : ''
      throw new IssuerConfigError(`${where}: ${field}${issue.message}`)
    }
    const config = parsed.data as TokenIssuerConfig
    if (byIssuer.has(config.issuer)) {
      throw new IssuerConfigError(
        `${where}: issuer: issuer '${byIssuer.get(config.issuer)!.name}' already has issuer '${config.issuer}': tokens would be ambiguous`,
      )
    }
    if (config.jwks) {
      try {
        await validateKeys(config.jwks)
      } catch (e) {
        throw new IssuerConfigError(`${where}: ${(e as Error).message}`)
      }
    }
    byIssuer.set(config.issuer, activateIssuer(name, config, jwks))
  }
  return async (iss) => byIssuer.get(iss)
}

/**
 * rejectionOf classifies a verification failure. Failing to fetch or read a remote key set is
 * the issuer's outage, not the token's fault, and is told apart so operators can see it.
 */
function rejectionOf(e: unknown, remote: boolean): TokenRejection {
  if (e instanceof joseErrors.JWTExpired) return 'token_expired'
  if (remote) {
    if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid) return 'issuer_keys_unavailable'
    // Non-200 answers and unparseable bodies are plain JOSEErrors; network failures are not JOSE errors.
    if (!(e instanceof joseErrors.JOSEError) || e.code === 'ERR_JOSE_GENERIC') return 'issuer_keys_unavailable'
  }
  return 'token_invalid'
}

/** identityId accepts a claim as the id of an identity: a string that `type:id` can hold. */
function identityId(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '' || v === '*' || v.length > MAX_ID_LENGTH) return undefined
  if (/[\s:#]/.test(v)) return undefined
  return v
}
