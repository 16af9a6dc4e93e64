/**
 * The page tokens of AuthZEN search: opaque to the client, meaningful only to Pemba.
 *
 * A token names one page of one stored snapshot (search-snapshot-store.ts) and is signed with
 * that snapshot's own secret:
 *
 * ```
 * base64url(["01JSTORE…", "x5Yd…snapshot id", 300]) + "." + base64url(HMAC-SHA256(secret, first part))
 * ```
 *
 * The payload is the store, the snapshot and the offset of the page; the question the search
 * asked is not in the token but in the snapshot (`query_hash`), so a token replayed with other
 * entities, action, context, limit or model is recognised (see queryHash). The secret never
 * leaves the server, so an altered offset or snapshot id is refused; a snapshot id is random
 * (128 bits), so a token cannot be guessed either.
 *
 * @module
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { PembaError } from '../../core/errors.ts'

/** What a page token says: the page of `snapshotId` (of `storeId`) starting at `offset`. */
export interface PageTokenPayload {
  storeId: string
  snapshotId: string
  offset: number
}

/** pageTokenError: every refused token is a 400 `invalid_continuation_token` with why. */
export function pageTokenError(why: string): PembaError {
  return new PembaError('invalid_continuation_token', `invalid page.token: ${why}`)
}

/** newSnapshotId: 128 random bits, unguessable. */
export function newSnapshotId(): string {
  return randomBytes(16).toString('base64url')
}

/** newSnapshotSecret: a fresh HMAC key for one snapshot's tokens. */
export function newSnapshotSecret(): string {
  return randomBytes(32).toString('base64url')
}

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', Buffer.from(secret, 'base64url')).update(payload).digest()
}

/** encodePageToken signs the payload with the snapshot's secret. */
export function encodePageToken(p: PageTokenPayload, secret: string): string {
  const payload = Buffer.from(JSON.stringify([p.storeId, p.snapshotId, p.offset])).toString('base64url')
  return `${payload}.${mac(secret, payload).toString('base64url')}`
}

/** A token read but not yet verified: verify it with the secret of the snapshot it names. */
export interface UnverifiedPageToken extends PageTokenPayload {
  verify(secret: string): boolean
}

/** A token's form: base64url payload, a dot, and the 32-byte HMAC in base64url (43 characters). */
const TOKEN_FORM = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/

/**
 * decodePageToken reads a token's payload without trusting it (the secret is the snapshot's,
 * found by the id it names); anything that is not a token of this form is refused.
 */
export function decodePageToken(token: string): UnverifiedPageToken {
  // Strictly base64url, unpadded, and canonical: Node's decoder skips `=` and other junk, so
  // without this an altered token (`token + "="`) would still verify.
  const m = TOKEN_FORM.exec(token)
  if (!m) throw pageTokenError('not a token this server issued')
  const payload = m[1]
  const payloadBytes = Buffer.from(payload, 'base64url')
  if (payloadBytes.toString('base64url') !== payload) throw pageTokenError('not a token this server issued')
  let parts: unknown
  try {
    parts = JSON.parse(payloadBytes.toString('utf8'))
  } catch {
    throw pageTokenError('not a token this server issued')
  }
  if (
    !Array.isArray(parts) ||
    parts.length !== 3 ||
    typeof parts[0] !== 'string' ||
    typeof parts[1] !== 'string' ||
    !Number.isSafeInteger(parts[2]) ||
    (parts[2] as number) < 0
  ) {
    throw pageTokenError('not a token this server issued')
  }
  const signature = Buffer.from(m[2], 'base64url')
  // The last character carries 2 spare bits: only the canonical one of its 4 spellings is accepted.
  if (signature.toString('base64url') !== m[2]) throw pageTokenError('not a token this server issued')
  return {
    storeId: parts[0],
    snapshotId: parts[1],
    offset: parts[2] as number,
    verify: (secret) => {
      const expected = mac(secret, payload)
      return signature.length === expected.length && timingSafeEqual(signature, expected)
    },
  }
}

/**
 * canonicalJson writes a JSON value with every object's keys sorted, so that two requests that
 * differ only in member order (which AuthZEN says must not matter) hash alike.
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
}

/** queryHash: sha256 (base64url) of a search's canonical form: what a token is good for. */
export function queryHash(query: unknown): string {
  return createHash('sha256').update(canonicalJson(query)).digest('base64url')
}
