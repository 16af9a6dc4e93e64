/**
 * SigningKeyStore (service/signing-key-store.ts) over SQL, for both dialects: the table
 * `signing_keys` (kid, alg, private_jwk, public_jwk, created_at). An insert that meets an
 * existing `kid` (the same key material: a kid is its thumbprint) does nothing (`ON CONFLICT DO
 * NOTHING`). Which key signs is decided in service/signing-keys.ts (the oldest), not by the
 * order rows come back in.
 *
 * @module
 */
import type { SigningKeyRecord, SigningKeyStore } from '../../service/signing-key-store.ts'
import type { SqlDriver } from './driver.ts'

interface SigningKeyRow {
  kid: string
  alg: string
  private_jwk: string
  public_jwk: string
  created_at: number
}

const SQL = {
  list: 'SELECT * FROM signing_keys ORDER BY created_at, kid',
  insert: `INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (kid) DO NOTHING`,
} as const

function rowToKey(r: SigningKeyRow): SigningKeyRecord {
  return {
    kid: r.kid,
    alg: r.alg,
    privateJwk: JSON.parse(r.private_jwk) as Record<string, unknown>,
    publicJwk: JSON.parse(r.public_jwk) as Record<string, unknown>,
    createdAt: new Date(Number(r.created_at)),
  }
}

/** The signing-key port over `d`. */
export function sqlSigningKeys(d: SqlDriver): SigningKeyStore {
  return {
    async listSigningKeys() {
      return (await d.all<SigningKeyRow>(SQL.list, [])).map(rowToKey)
    },
    async insertSigningKey(k) {
      const params = [k.kid, k.alg, JSON.stringify(k.privateJwk), JSON.stringify(k.publicJwk), k.createdAt.getTime()]
      return (await d.run(SQL.insert, params)) > 0
    },
  }
}
