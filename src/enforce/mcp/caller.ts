/**
 * Who is calling: the bearer token of an MCP request, verified against the configured issuers
 * with exactly the machinery Pemba's token-native checks use (src/service/token-verifier.ts:
 * signature, audience, `exp` required, clock skew, the `act` chain and its maximum length), and
 * turned into an `McpCaller`. A token for `sub: "alice"` acted by `act: {sub: "assistant"}`,
 * from an issuer with `subject_type: user` and `actor_type: agent`, becomes
 * `{subject: "user:alice", actors: ["agent:assistant"], …}`; the policy then asks the delegated
 * check (subject `agent:assistant` on behalf of `user:alice`).
 *
 * The token is verified on every HTTP request, including those whose messages never reach
 * Pemba (ping, notifications): an enforcement point never lets an unauthenticated message through.
 *
 * A token that verified is remembered (by its exact text, signature included) for at most
 * `cacheMaxAgeMs` (30 s) and never past its `exp`: verifying an ES256 or RS256 signature costs
 * some 0.2 to 0.5 ms, most of an enforcement point's budget per request, and an agent sends the
 * same token with every message. The bound is how long an issuer's key removal takes to be
 * seen; a refused token is never remembered.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import { missingScopes, type TokenVerifier } from '../../service/token-verifier.ts'
import type { CallerRejection, McpCaller } from './types.ts'

/** The outcome of authenticating one request. */
export type CallerAuthentication = { ok: true; caller: McpCaller } | { ok: false; reason: CallerRejection }

/** The rejections a verifier may give that an MCP caller can meet (the rest cannot come from verifying alone). */
const REJECTIONS: ReadonlySet<string> = new Set<CallerRejection>([
  'token_invalid',
  'token_expired',
  'issuer_untrusted',
  'issuer_keys_unavailable',
  'delegation_chain_too_long',
])

export interface McpCallerVerifierOptions {
  verifier: TokenVerifier
  /** The clock expiries are read against (the verifier's own, ideally). */
  clock?: () => Date
  /** How long a verified token is remembered (ms), at most; 30 000 by default, 0 turns it off. */
  cacheMaxAgeMs?: number
  /** How many verified tokens are remembered; 10 000 by default. */
  cacheMaxEntries?: number
}

export class McpCallerVerifier {
  readonly #verifier: TokenVerifier
  readonly #clock: () => Date
  readonly #maxAgeMs: number
  /** Verified tokens: the caller, and until when (ms since the epoch) it may be reused. */
  readonly #verified: LRUCache<string, { caller: McpCaller; until: number }>

  constructor(options: McpCallerVerifierOptions) {
    this.#verifier = options.verifier
    this.#clock = options.clock ?? (() => new Date())
    this.#maxAgeMs = options.cacheMaxAgeMs ?? 30_000
    this.#verified = new LRUCache({ max: Math.max(1, options.cacheMaxEntries ?? 10_000) })
  }

  /**
   * authenticate verifies the bearer token of an `Authorization` header value (`Bearer eyJ…`,
   * the scheme case-insensitive; RFC 6750). Absent or empty → `token_missing`; another scheme
   * (`Basic …`) or none (`eyJ…` alone) → `token_invalid`.
   */
  async authenticate(authorization: string | undefined): Promise<CallerAuthentication> {
    const token = credentialOf(authorization)
    if (token === undefined) return { ok: false, reason: 'token_missing' }
    if (token === null) return { ok: false, reason: 'token_invalid' }
    return this.authenticateToken(token)
  }

  /**
   * authenticateToken verifies the credential itself (`eyJ…`), as an SDK transport gives it in
   * `authInfo.token`. Absent or empty → `token_missing`.
   */
  async authenticateToken(token: string | undefined): Promise<CallerAuthentication> {
    if (token === undefined || token === '') return { ok: false, reason: 'token_missing' }
    if (/\s/.test(token)) return { ok: false, reason: 'token_invalid' }
    const now = this.#clock().getTime()
    const known = this.#verified.get(token)
    if (known && now < known.until) return { ok: true, caller: known.caller }
    const v = await this.#verifier.verify(token)
    if (!v.ok) return { ok: false, reason: REJECTIONS.has(v.reason) ? (v.reason as CallerRejection) : 'token_invalid' }
    const config = v.issuer.config
    const claims = v.claims
    const caller: McpCaller = {
      subject: v.identity.subject,
      actors: v.identity.actors,
      claims,
      issuer: v.issuer.name,
      missingScopes: (relation) => missingScopes(config, claims, relation),
    }
    // `exp` is required by the verifier; remembered until then at the latest, without the skew.
    if (this.#maxAgeMs > 0 && typeof claims.exp === 'number') {
      this.#verified.set(token, { caller, until: Math.min(now + this.#maxAgeMs, claims.exp * 1000) })
    }
    return { ok: true, caller }
  }
}

/**
 * credentialOf takes the token out of an `Authorization` header value: undefined when there is
 * none, null when it is not a bearer credential.
 */
function credentialOf(authorization: string | undefined): string | undefined | null {
  const text = authorization?.trim()
  if (!text) return undefined
  const space = text.search(/\s/)
  if (space < 0 || text.slice(0, space).toLowerCase() !== 'bearer') return null
  const token = text.slice(space).trim()
  return token === '' || /\s/.test(token) ? null : token
}
