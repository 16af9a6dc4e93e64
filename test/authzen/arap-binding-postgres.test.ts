/**
 * The server's signing keys on PostgreSQL (PEMBA_TEST_POSTGRES_URL): kept in the shared
 * database, so replicas sign with one key. Replicas racing to create the first key may each add
 * one; each verifies what any other signed at every moment (an unknown kid re-reads the set), and
 * once their caches' TTL passed they all sign with the same kid (the oldest key) (§8.29). A
 * deleted key stops verifying everywhere after the TTL. A fake monotonic clock drives the TTL.
 */
import { calculateJwkThumbprint, decodeProtectedHeader } from 'jose'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba, type Pemba } from '../../src/server.ts'
import { SigningKeys, UnknownSigningKeyError } from '../../src/service/signing-keys.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'

const target = await probePostgres()

describePostgres('signing keys on PostgreSQL', target, () => {
  let schema: TestSchema
  let admin: pg.Client
  let a: Pemba
  let b: Pemba

  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
    const config = { ...loadConfig({ env: {}, argv: [] }), databaseUrl: schema.url, logLevel: 'warn' as const }
    // Two replicas of one database (the first applies the migrations).
    a = await createPemba(config, { sweeper: false })
    b = await createPemba(config, { sweeper: false })
    admin = new pg.Client({ connectionString: schema.url })
    await admin.connect()
  })
  afterAll(async () => {
    await admin?.end()
    await a?.close()
    await b?.close()
    await schema?.drop()
  })

  it('insert-if-absent: a second key of the same kid is refused; keys list oldest first', async () => {
    const store = a.datastore
    const key = (kid: string, at: number) => ({ kid, alg: 'ES256', privateJwk: { d: kid }, publicJwk: { x: kid }, createdAt: new Date(at) })
    expect(await store.insertSigningKey(key('test-2', 2000))).toBe(true)
    expect(await store.insertSigningKey(key('test-1', 1000))).toBe(true)
    expect(await store.insertSigningKey({ ...key('test-1', 3000), publicJwk: { x: 'other' } })).toBe(false)
    expect(await b.datastore.listSigningKeys()).toEqual([key('test-1', 1000), key('test-2', 2000)])
    await admin.query('DELETE FROM signing_keys')
  })

  const pdp = 'https://pdp.example/stores/01JAAAAAAAAAAAAAAAAAAAAAAA'
  const req = { typ: 'authzen-binding+jwt', issuer: pdp, audience: `${pdp}/access/v1/requests` }
  const claims = () => ({ iss: pdp, aud: req.audience, iat: 1, exp: Math.floor(Date.now() / 1000) + 60 })
  const kidOf = (token: string) => decodeProtectedHeader(token).kid as string
  const tableKids = async () => (await admin.query<{ kid: string }>('SELECT kid FROM signing_keys')).rows.map((r) => r.kid).sort()

  it('replicas racing to make the first key: each verifies what any signed at once, and all sign with one kid once converged', async () => {
    let mono = 0
    for (let round = 0; round < 8; round++) {
      await admin.query('DELETE FROM signing_keys')
      const replicas = [a, b, a, b].map((p) => new SigningKeys({ store: p.datastore, clock: () => new Date(), monotonic: () => mono }))
      // The race: every replica signs at once, with no key stored.
      const tokens = await Promise.all(replicas.map((k) => k.sign(claims(), req.typ)))
      const stored = await tableKids()
      expect(stored.length, `round ${round}`).toBeGreaterThanOrEqual(1)
      // At every moment, what one replica signed any other verifies (an unknown kid is re-read at once).
      for (const k of replicas) {
        for (const t of tokens) expect((await k.verify(t, req)).protectedHeader.kid, `round ${round}`).toBe(kidOf(t))
      }
      // Once each has re-read the set (its TTL passed), all sign with the same (oldest) key and publish the same set.
      mono += 30_000
      const kids = await Promise.all(replicas.map(async (k) => kidOf(await k.sign(claims(), req.typ))))
      expect(new Set(kids).size, `round ${round}`).toBe(1)
      const sets = await Promise.all(replicas.map((k) => k.jwks()))
      for (const set of sets) expect(set, `round ${round}`).toEqual(sets[0])
      expect(sets[0]!.keys.map((k) => k.kid).sort(), `round ${round}`).toEqual(stored)
      expect(sets[0]!.keys[0]!.kid, `round ${round}`).toBe(kids[0])
    }
  })

  it('a deleted key stops verifying on every replica once the TTL passed; the new key verifies everywhere at once', async () => {
    let mono = 0
    await admin.query('DELETE FROM signing_keys')
    const [ka, kb] = [a, b].map((p) => new SigningKeys({ store: p.datastore, clock: () => new Date(), monotonic: () => mono }))
    const old = await ka!.sign(claims(), req.typ)
    expect((await kb!.verify(old, req)).protectedHeader.kid).toBe(kidOf(old))
    await admin.query('DELETE FROM signing_keys WHERE kid = $1', [kidOf(old)])
    mono += 30_000
    const fresh = await kb!.sign(claims(), req.typ)
    expect(kidOf(fresh)).not.toBe(kidOf(old))
    expect((await ka!.verify(fresh, req)).protectedHeader.kid).toBe(kidOf(fresh))
    for (const k of [ka!, kb!]) {
      await expect(k.verify(old, req)).rejects.toBeInstanceOf(UnknownSigningKeyError)
      expect((await k.jwks()).keys.map((j) => j.kid)).toEqual(await tableKids())
    }
  })

  it('the jwks endpoint of either replica publishes only stored keys, public members only, the signer first', async () => {
    await admin.query('DELETE FROM signing_keys')
    const storeId = (await a.stores.create('jwks', '')).id
    const [ra, rb] = await Promise.all([a.app.request(`/stores/${storeId}/access/v1/jwks`), b.app.request(`/stores/${storeId}/access/v1/jwks`)])
    expect(ra.status).toBe(200)
    expect(rb.status).toBe(200)
    const stored = await tableKids()
    for (const body of [(await ra.json()) as { keys: Record<string, string>[] }, (await rb.json()) as { keys: Record<string, string>[] }]) {
      expect(body.keys.length).toBeGreaterThanOrEqual(1)
      for (const k of body.keys) {
        expect(stored).toContain(k.kid)
        expect(Object.keys(k).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
        expect(k.kid).toBe(await calculateJwkThumbprint(k))
      }
    }
  })
})
