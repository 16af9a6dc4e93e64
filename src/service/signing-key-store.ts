/**
 * The port the signing-key service (signing-keys.ts) owns: where the server's own JWS keys are
 * kept, shared by every replica of one database. The datastores implement it
 * (store/sql/signing-keys.ts); this file imports nothing, so the store depends on the service's
 * port and never the reverse.
 *
 * @module
 */

/**
 * SigningKeyRecord is one of the server's signing keys: `kid` (the RFC 7638 thumbprint of its
 * public JWK, so one kid names one key material), the JWS algorithm
 * (`ES256`), the private key and the published public key as JWKs (the public one already
 * carrying `kid`, `use: "sig"` and `alg`), and when it was made.
 */
export interface SigningKeyRecord {
  kid: string
  alg: string
  privateJwk: Record<string, unknown>
  publicJwk: Record<string, unknown>
  createdAt: Date
}

export interface SigningKeyStore {
  /** listSigningKeys returns every key, oldest first (by `createdAt`, then `kid`). */
  listSigningKeys(): Promise<SigningKeyRecord[]>
  /**
   * insertSigningKey stores `key` unless a key with its `kid` exists already (then nothing is
   * written and the answer is false). As a kid is a thumbprint, that is the same key material:
   * replicas racing to make the first key may each add one, and all then sign with the oldest.
   */
  insertSigningKey(key: SigningKeyRecord): Promise<boolean>
}
