/**
 * The port the token-issuer service (token-issuers.ts) owns: how a store's trusted token
 * issuers are kept. The datastores implement it (store/sql/token-issuers.ts); this file imports
 * nothing, so the store depends on the service's port and never the reverse.
 *
 * @module
 */

/**
 * TokenIssuerRecord is a token issuer a store trusts for token-native checks
 * (`PUT /stores/{store}/token-issuers/{name}`): its name in the store, the `iss` its tokens carry,
 * and the rest of its validated configuration (audience, keys, subject and actor types, scope
 * map) as a JSON document the service owns.
 */
export interface TokenIssuerRecord {
  storeId: string
  name: string
  issuer: string
  config: Record<string, unknown>
  createdAt: Date
  updatedAt: Date
}

/**
 * What putting a token issuer found: stored (created, or replaced keeping its `createdAt`), or
 * refused with nothing changed: the store does not exist, another issuer of the store already
 * has this `iss` (tokens would be ambiguous), or the store already has `limit` issuers.
 */
export type TokenIssuerPut =
  | { ok: true; created: boolean; record: TokenIssuerRecord }
  | { ok: false; reason: 'store_missing' }
  | { ok: false; reason: 'issuer_taken'; by: string }
  | { ok: false; reason: 'limit' }

export interface TokenIssuerInput {
  storeId: string
  name: string
  issuer: string
  config: Record<string, unknown>
  /** The most issuers one store may have; creating one more is refused. */
  limit: number
}

export interface TokenIssuerStore {
  /**
   * putTokenIssuer creates or replaces a store's token issuer, in one transaction that also
   * checks the store exists and no other issuer of it has the same `iss` (concurrent puts to one
   * store take turns, so two can never both claim one `iss`).
   */
  putTokenIssuer(input: TokenIssuerInput, now: Date): Promise<TokenIssuerPut>
  getTokenIssuer(storeId: string, name: string): Promise<TokenIssuerRecord | undefined>
  /** listTokenIssuers returns all of a store's issuers (at most the put limit), by name. */
  listTokenIssuers(storeId: string): Promise<TokenIssuerRecord[]>
  /** deleteTokenIssuer removes an issuer; false when there was none of that name. */
  deleteTokenIssuer(storeId: string, name: string): Promise<boolean>
}
