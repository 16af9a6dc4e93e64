/**
 * The server's signing keys (src/service/signing-keys.ts) as replicas of one key table see them
 * (ARAP §5.1: one JWK Set, `kid`s, refetch on an unknown `kid`; checklist §8.29): each kid is the
 * key's RFC 7638 thumbprint, the oldest key signs, the set is re-read after its TTL (a deleted
 * key stops verifying and being published) and at once for an unknown kid (rate-limited per
 * kid), and a row is trusted only when it is a public ES256 key named by its thumbprint. The key
 * table here is a list behind the port (SigningKeyStore), so a test can delete rows and count
 * reads; the SQL port itself runs on SQLite (arap-binding.test.ts) and PostgreSQL
 * (arap-binding-postgres.test.ts). A fake monotonic clock drives the cache.
 */
import { SignJWT, calculateJwkThumbprint, decodeProtectedHeader, errors as joseErrors, importJWK } from 'jose'
import { describe, expect, it } from 'vitest'
import type { SigningKeyRecord, SigningKeyStore } from '../../src/service/signing-key-store.ts'
import { SigningKeys, UnknownSigningKeyError, newKey } from '../../src/service/signing-keys.ts'

const T0 = Date.parse('2026-12-01T09:00:00Z')
const PDP = 'https://pdp.example/stores/01JAAAAAAAAAAAAAAAAAAAAAAA'
const REQ = { typ: 'authzen-binding+jwt', issuer: PDP, audience: `${PDP}/access/v1/requests` }
const TTL = 30_000

/** A key table behind the port, counting its reads. */
class KeyTable implements SigningKeyStore {
  rows: SigningKeyRecord[] = []
  reads = 0
  async listSigningKeys() {
    this.reads++
    return [...this.rows]
  }
  async insertSigningKey(k: SigningKeyRecord) {
    if (this.rows.some((r) => r.kid === k.kid)) return false
    this.rows.push(k)
    return true
  }
}

let mono = 0
const replica = (table: KeyTable) => new SigningKeys({ store: table, clock: () => new Date(T0), monotonic: () => mono })
const claims = () => ({ iss: PDP, aud: REQ.audience, iat: T0 / 1000, exp: T0 / 1000 + 600 })
const sign = (k: SigningKeys) => k.sign(claims(), REQ.typ)
const kidOf = (token: string) => decodeProtectedHeader(token).kid as string

async function refusal(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('verified'),
    (e: unknown) => e,
  )
}

describe('signing keys', () => {
  it("§8.29 a key's kid is the RFC 7638 thumbprint of its public key; the JWKS carries public members only", async () => {
    mono = 0
    const table = new KeyTable()
    const { keys } = await replica(table).jwks()
    expect(keys).toHaveLength(1)
    expect(Object.keys(keys[0]!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    expect(keys[0]!.kid).toBe(await calculateJwkThumbprint(keys[0]!))
    expect(table.rows.map((r) => r.kid)).toEqual([keys[0]!.kid])
  })

  it('the oldest key signs (created_at, then kid); every key verifies and is published, the signer first', async () => {
    mono = 0
    const table = new KeyTable()
    const older = await newKey(new Date(T0 - 1000))
    const newer = await newKey(new Date(T0))
    table.rows.push(newer, older)
    const keys = replica(table)
    expect(kidOf(await sign(keys))).toBe(older.kid)
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([older.kid, newer.kid])
    // Equal instants: the smaller kid (code units) signs, the same on every replica.
    const [a, b] = [await newKey(new Date(T0)), await newKey(new Date(T0))]
    const tie = new KeyTable()
    tie.rows.push(a, b)
    expect(kidOf(await sign(replica(tie)))).toBe(a.kid < b.kid ? a.kid : b.kid)
  })

  it('a deleted key stops verifying and being published once the TTL passed; replicas converge on one signer', async () => {
    mono = 0
    const table = new KeyTable()
    const a = replica(table)
    const oldToken = await sign(a)
    const oldKid = kidOf(oldToken)
    // The key is revoked (its row deleted); a replica started since makes a new one.
    table.rows = []
    const b = replica(table)
    const newToken = await sign(b)
    expect(kidOf(newToken)).not.toBe(oldKid)
    // At once: a meets b's new kid and re-reads; b never knew the old one.
    expect((await a.verify(newToken, REQ)).protectedHeader.kid).toBe(kidOf(newToken))
    expect(await refusal(b.verify(oldToken, REQ))).toBeInstanceOf(UnknownSigningKeyError)
    // After the TTL, a forgets the deleted key, publishes what the table holds, and signs as b does.
    mono += TTL
    expect(await refusal(a.verify(oldToken, REQ))).toBeInstanceOf(UnknownSigningKeyError)
    expect((await a.jwks()).keys.map((k) => k.kid)).toEqual([kidOf(newToken)])
    expect(kidOf(await sign(a))).toBe(kidOf(newToken))
  })

  it('§5.1 an unknown kid re-reads the set at once, at most once per cooldown for each kid', async () => {
    mono = 0
    const table = new KeyTable()
    // b read the table while it was empty (a verification before any key existed).
    const b = replica(table)
    const fake = 'A'.repeat(43)
    const made = await newKey(new Date(T0))
    const fakeToken = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: fake, typ: REQ.typ }).sign(await importJWK(made.privateJwk, 'ES256'))
    expect(await refusal(b.verify(fakeToken, REQ))).toBeInstanceOf(UnknownSigningKeyError)
    const reads = table.reads
    // The same made-up kid again within the cooldown: no read.
    expect(await refusal(b.verify(fakeToken, REQ))).toBeInstanceOf(UnknownSigningKeyError)
    expect(table.reads).toBe(reads)
    // A kid that cannot be a thumbprint never causes a read.
    const odd = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'pemba-1', typ: REQ.typ }).sign(await importJWK(made.privateJwk, 'ES256'))
    expect(await refusal(b.verify(odd, REQ))).toBeInstanceOf(UnknownSigningKeyError)
    expect(table.reads).toBe(reads)
    // Another replica makes the first key and signs: the made-up kid's cooldown does not block it.
    const token = await sign(replica(table))
    expect((await b.verify(token, REQ)).protectedHeader.kid).toBe(kidOf(token))
    // Concurrent verifications of one new kid share one read.
    table.rows.push(await newKey(new Date(T0 - 1)))
    const c = replica(table)
    const newest = await sign(c)
    const before = table.reads
    await Promise.all([b.verify(newest, REQ), b.verify(newest, REQ), b.verify(newest, REQ)])
    expect(table.reads - before).toBe(1)
  })

  it('a row is trusted only as a public ES256 key named by its thumbprint (never published with private members)', async () => {
    mono = 0
    const good = await newKey(new Date(T0))
    const leaky = await newKey(new Date(T0 - 3000))
    leaky.publicJwk = { ...leaky.publicJwk, d: leaky.privateJwk.d }
    const misnamed = await newKey(new Date(T0 - 2000))
    misnamed.kid = good.kid.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))
    const symmetric: SigningKeyRecord = { kid: 'k'.repeat(43), alg: 'HS256', privateJwk: { kty: 'oct', k: 'c2VjcmV0' }, publicJwk: { kty: 'oct', k: 'c2VjcmV0' }, createdAt: new Date(T0 - 4000) }
    const table = new KeyTable()
    table.rows.push(good, leaky, misnamed, symmetric)
    const keys = replica(table)
    const { keys: published } = await keys.jwks()
    expect(published.map((k) => k.kid)).toEqual([good.kid])
    expect(JSON.stringify(published)).not.toContain('"d"')
    expect(kidOf(await sign(keys))).toBe(good.kid)
  })

  it('a token that is no JWS, names no kid or is signed with another alg under our kid is refused as a token error', async () => {
    mono = 0
    const table = new KeyTable()
    const keys = replica(table)
    const genuine = await sign(keys)
    const kid = kidOf(genuine)
    const [, payload] = genuine.split('.') as [string, string]
    const header = (h: object) => Buffer.from(JSON.stringify(h)).toString('base64url')
    const x = (await keys.jwks()).keys[0]!.x!
    const hs256 = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid, typ: REQ.typ }).sign(new TextEncoder().encode(x))
    const cases: [string, string][] = [
      ['not a JWS', 'garbage'],
      ['no kid', `${header({ alg: 'ES256', typ: REQ.typ })}.${payload}.${genuine.split('.')[2]}`],
      ['alg none', `${header({ alg: 'none', kid, typ: REQ.typ })}.${payload}.`],
      ['HS256 keyed with the public x', hs256],
    ]
    for (const [what, token] of cases) {
      const err = await refusal(keys.verify(token, REQ))
      expect(err instanceof joseErrors.JOSEError || err instanceof UnknownSigningKeyError, what).toBe(true)
    }
  })

  it('a failing key table is an outage: the error passes through, nothing is cached', async () => {
    mono = 0
    const table = new KeyTable()
    const keys = replica(table)
    const token = await sign(keys)
    mono += TTL
    const list = table.listSigningKeys.bind(table)
    table.listSigningKeys = () => Promise.reject(new Error('database unavailable'))
    await expect(keys.verify(token, REQ)).rejects.toThrow('database unavailable')
    await expect(sign(keys)).rejects.toThrow('database unavailable')
    table.listSigningKeys = list
    expect((await keys.verify(token, REQ)).protectedHeader.kid).toBe(kidOf(token))
  })
})
