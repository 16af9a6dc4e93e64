/**
 * The server's own JWS keys: what signs AuthZEN binding tokens (a requestable denial's
 * `access_request.binding_token`), approval states (`approval.state`) and the signed discovery
 * metadata, and what the stores' `GET …/access/v1/jwks` publishes so that anyone can verify them.
 *
 * Keys live in the database (SigningKeyStore), shared by every replica. A key's `kid` is its
 * RFC 7638 JWK thumbprint, so one `kid` always names one key material: a key deleted and made
 * again gets a new `kid`, and a verifier holding the old key (a replica's cache, a remote JWKS
 * cache) meets an unknown `kid` and fetches the set again rather than failing the signature.
 *
 * - **Who signs:** the oldest key (by `created_at`, then `kid`); every listed key verifies.
 * - **First use:** with no key stored, a replica makes an ES256 key, inserts it and re-reads the
 *   set. Replicas racing there may each insert one: all are published and all verify, and once
 *   each has re-read the set they all sign with the same (oldest) key.
 * - **Freshness:** the set is re-read when it is older than `cacheTtlMs` (so a deleted key stops
 *   verifying and being published, and replicas converge on one signer), and at once for a token
 *   naming a `kid` not in it (another replica's new key), at most once per `refreshCooldownMs`
 *   for each such `kid` (a bounded list), so made-up `kid`s cost at most one read each.
 * - **Rotation / revocation:** delete the row (`DELETE FROM signing_keys WHERE kid = …`). Within
 *   `cacheTtlMs` every replica forgets it; the next oldest key signs, or a new one is made.
 *   Outstanding binding tokens and approval states signed with it stop verifying.
 * - **What is trusted from a row:** a key is loaded only when its `kid` is the thumbprint of its
 *   public JWK, its `alg` is ES256, and its public JWK holds no private member; the JWKS
 *   publishes only the public members (`kty`, `crv`, `x`, `y`) with `kid`, `use` and `alg`.
 *
 * @module
 */
import {
  SignJWT,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyResult,
  type ProtectedHeaderParameters,
} from 'jose'
import type { SigningKeyRecord, SigningKeyStore } from './signing-key-store.ts'

/** The algorithm of the keys this server makes, and the only one it verifies. */
export const SIGNING_ALG = 'ES256'
/** What a kid looks like: a base64url SHA-256 (RFC 7638 thumbprint); anything else is never ours. */
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/
/** The public members of an EC public key. */
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y'] as const
/** Members only a private or symmetric key has: a row carrying one is never loaded. */
const PRIVATE_MEMBERS = ['d', 'k', 'p', 'q', 'dp', 'dq', 'qi', 'oth'] as const
/** How many unknown kids the per-kid refresh limit remembers. */
const MAX_REMEMBERED_UNKNOWN_KIDS = 256

export interface SigningKeysOptions {
  store: SigningKeyStore
  clock: () => Date
  /** How long a read of the key set is used before it is read again (ms; default 30 s). */
  cacheTtlMs?: number
  /** The shortest time between two re-reads for one unknown `kid` (ms; default 5 s). */
  refreshCooldownMs?: number
  /** A monotonic clock in ms (default performance.now): cache ages and rate limits, not token times. */
  monotonic?: () => number
}

/** What a verification requires besides a good signature by one of the keys. */
export interface VerifyRequirements {
  /** The JWS `typ` header the token must carry (`authzen-binding+jwt`). */
  typ: string
  issuer: string
  audience: string
}

/** A published key: the public JWK with `kid`, `use: "sig"` and `alg`. */
export type PublicJwk = JWK & { kid: string; use: 'sig'; alg: string }

/** A token names no key of this server (no `kid`, or one not in the key set after a re-read). */
export class UnknownSigningKeyError extends Error {
  constructor() {
    super("the token's kid names no key of this server")
    this.name = 'UnknownSigningKeyError'
  }
}

interface LoadedKey {
  record: SigningKeyRecord
  published: PublicJwk
  /** Imported on first use. */
  privateKey?: Promise<CryptoKey>
  publicKey?: Promise<CryptoKey>
}

/** A read of the key set: the keys by kid, the signer (the oldest), and when it was read. */
interface KeySet {
  byKid: Map<string, LoadedKey>
  signer: LoadedKey | undefined
  readAt: number
}

export class SigningKeys {
  readonly #o: Required<SigningKeysOptions>
  /** The key set as last read (or being read). */
  #set: Promise<KeySet> | undefined
  #creating: Promise<void> | undefined
  /** Unknown kid → when it caused a re-read (monotonic) and that read; oldest first, bounded. */
  readonly #unknownKids = new Map<string, { at: number; read: Promise<KeySet> }>()

  constructor(options: SigningKeysOptions) {
    this.#o = { cacheTtlMs: 30_000, refreshCooldownMs: 5_000, monotonic: () => performance.now(), ...options }
  }

  /** sign makes a compact JWS of `claims` with the current key (`alg`, `kid` and `typ` in its header). */
  async sign(claims: JWTPayload, typ: string): Promise<string> {
    const key = await this.#signer()
    return new SignJWT(claims)
      .setProtectedHeader({ alg: key.record.alg, kid: key.record.kid, typ })
      .sign(await privateKeyOf(key))
  }

  /**
   * verify checks a compact JWS made by sign: a known `kid`, its signature, the `typ`, `iss`,
   * `aud` and `exp` (at the injected clock's now). It throws jose's errors (JWTExpired only
   * once the signature and the other claims hold), UnknownSigningKeyError, or the store's error
   * when the key set cannot be read (an outage, not a bad token).
   */
  async verify(token: string, req: VerifyRequirements): Promise<JWTVerifyResult> {
    let header: ProtectedHeaderParameters
    try {
      header = decodeProtectedHeader(token)
    } catch {
      // jose throws a TypeError for a token that is no JWS at all: the token's fault, say so as JOSE does.
      throw new errors.JWSInvalid('the token is not a compact JWS')
    }
    const key = typeof header.kid === 'string' ? await this.#byKid(header.kid) : undefined
    if (!key) throw new UnknownSigningKeyError()
    return jwtVerify(token, await publicKeyOf(key), {
      algorithms: [key.record.alg],
      typ: req.typ,
      issuer: req.issuer,
      audience: req.audience,
      currentDate: this.#o.clock(),
      requiredClaims: ['iat', 'exp'],
    })
  }

  /** jwks is the JWK Set to publish: every key's public members, the signer first (a key is made first if there is none). */
  async jwks(): Promise<{ keys: PublicJwk[] }> {
    await this.#signer()
    // Oldest first, as loadKeys ordered them: the signer leads.
    return { keys: [...(await this.#current()).byKid.values()].map((k) => k.published) }
  }

  /** #signer: the oldest key, one made first when there is none. */
  async #signer(): Promise<LoadedKey> {
    let signer = (await this.#current()).signer
    if (!signer) {
      // Concurrent first uses in this process share one creation.
      this.#creating ??= this.#create().finally(() => (this.#creating = undefined))
      await this.#creating
      signer = (await this.#current()).signer
    }
    if (!signer) throw new Error('no signing key after creating one')
    return signer
  }

  /** #create inserts a new key and re-reads: whichever replica's key is oldest then signs everywhere. */
  async #create(): Promise<void> {
    // The set may be an old read: another replica may have made the key since.
    if ((await this.#read()).signer) return
    await this.#o.store.insertSigningKey(await newKey(this.#o.clock()))
    this.#set = undefined
  }

  /** #byKid: the key named `kid`, re-reading the set once for a kid not in it (rate-limited per kid). */
  async #byKid(kid: string): Promise<LoadedKey | undefined> {
    const known = (await this.#current()).byKid.get(kid)
    if (known || !THUMBPRINT.test(kid)) return known
    const now = this.#o.monotonic()
    let tried = this.#unknownKids.get(kid)
    if (!tried || now - tried.at >= this.#o.refreshCooldownMs) {
      // A read that starts now sees any key inserted before its token reached us.
      const entry = { at: now, read: this.#read() }
      // A failed read is not remembered: the next token naming this kid tries again.
      entry.read.catch(() => this.#unknownKids.get(kid) === entry && this.#unknownKids.delete(kid))
      tried = entry
      this.#unknownKids.delete(kid)
      this.#unknownKids.set(kid, entry)
      if (this.#unknownKids.size > MAX_REMEMBERED_UNKNOWN_KIDS) this.#unknownKids.delete(this.#unknownKids.keys().next().value!)
    }
    // Within the cooldown, the answer of this kid's last re-read (shared by concurrent callers).
    return (await tried.read).byKid.get(kid)
  }

  /** #current: the key set, re-read once it is older than the TTL; one read shared by concurrent callers. */
  async #current(): Promise<KeySet> {
    const pending = this.#set ?? this.#read()
    const set = await pending
    if (this.#o.monotonic() - set.readAt < this.#o.cacheTtlMs) return set
    // Stale: read again, unless a newer read has begun meanwhile.
    return this.#set === pending || !this.#set ? this.#read() : this.#set
  }

  /** #read starts a read of the key set, which becomes the current one; a failed read is not kept. */
  #read(): Promise<KeySet> {
    const readAt = this.#o.monotonic()
    const read: Promise<KeySet> = this.#o.store.listSigningKeys().then(
      (records) => loadKeys(records, readAt),
      (err: unknown) => {
        if (this.#set === read) this.#set = undefined
        throw err
      },
    )
    this.#set = read
    return read
  }
}

/** loadKeys: the trustworthy records (see the module comment), oldest first, the oldest signing. */
async function loadKeys(records: SigningKeyRecord[], readAt: number): Promise<KeySet> {
  const usable: LoadedKey[] = []
  for (const record of records) {
    const published = await publishable(record)
    if (published) usable.push({ record, published })
  }
  usable.sort((a, b) => a.record.createdAt.getTime() - b.record.createdAt.getTime() || compareCodeUnits(a.record.kid, b.record.kid))
  return { byKid: new Map(usable.map((k) => [k.record.kid, k])), signer: usable[0], readAt }
}

/** publishable: the public JWK to publish for `r`, or undefined when the row is not to be trusted. */
async function publishable(r: SigningKeyRecord): Promise<PublicJwk | undefined> {
  const pub = r.publicJwk
  if (r.alg !== SIGNING_ALG || pub.kty !== 'EC' || PRIVATE_MEMBERS.some((m) => m in pub)) return undefined
  const jwk: JWK = {}
  for (const m of PUBLIC_MEMBERS) {
    const v = pub[m]
    if (typeof v !== 'string') return undefined
    jwk[m] = v
  }
  try {
    if ((await calculateJwkThumbprint(jwk)) !== r.kid) return undefined
  } catch {
    return undefined
  }
  return { ...jwk, kid: r.kid, use: 'sig', alg: r.alg }
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function privateKeyOf(k: LoadedKey): Promise<CryptoKey> {
  k.privateKey ??= importJWK(k.record.privateJwk as JWK, k.record.alg) as Promise<CryptoKey>
  return k.privateKey
}

function publicKeyOf(k: LoadedKey): Promise<CryptoKey> {
  k.publicKey ??= importJWK(k.published, k.record.alg) as Promise<CryptoKey>
  return k.publicKey
}

/** newKey makes a fresh ES256 key pair, named by its thumbprint. */
export async function newKey(now: Date): Promise<SigningKeyRecord> {
  const pair = await generateKeyPair(SIGNING_ALG, { extractable: true })
  const privateJwk = await exportJWK(pair.privateKey)
  const publicJwk = await exportJWK(pair.publicKey)
  const kid = await calculateJwkThumbprint(publicJwk)
  return {
    kid,
    alg: SIGNING_ALG,
    privateJwk: { ...privateJwk, kid, alg: SIGNING_ALG },
    publicJwk: { ...publicJwk, kid, use: 'sig', alg: SIGNING_ALG },
    createdAt: now,
  }
}
