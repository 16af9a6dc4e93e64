/**
 * The token_issuers table on both dialects: create and replace, lookup and listing, the
 * one-`iss`-per-store rule, the per-store limit and a missing or deleted store. PostgreSQL runs
 * when PEMBA_TEST_POSTGRES_URL is set (see test/helpers/postgres.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import type { Datastore, TokenIssuerInput } from '../../src/store/store.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const OTHER = '01HZZZZZZZZZZZZZZZZZZZZZZ1'
const T0 = new Date('2026-01-01T00:00:00Z')
const T1 = new Date('2026-01-01T01:00:00Z')

function issuer(name: string, iss: string, over: Partial<TokenIssuerInput> = {}): TokenIssuerInput {
  return {
    storeId: S,
    name,
    issuer: iss,
    config: { issuer: iss, audience: 'pemba', jwks_uri: `${iss}/jwks`, subject_type: 'service_account' },
    limit: 10,
    ...over,
  }
}

function suite(open: () => Promise<Datastore>): void {
  let ds: Datastore
  beforeEach(async () => {
    ds = await open()
    await ds.createStore(S, 'one', T0)
    await ds.createStore(OTHER, 'two', T0)
  })
  afterEach(async () => {
    await ds.close()
  })

  it('creates, replaces (keeping created_at), gets, lists by name and deletes', async () => {
    const created = await ds.putTokenIssuer(issuer('gitlab', 'https://gitlab.example'), T0)
    expect(created).toMatchObject({ ok: true, created: true })
    const replaced = await ds.putTokenIssuer(
      issuer('gitlab', 'https://gitlab.example/v2', { config: { issuer: 'https://gitlab.example/v2', audience: 'x' } }),
      T1,
    )
    expect(replaced).toMatchObject({ ok: true, created: false })
    await ds.putTokenIssuer(issuer('actions', 'https://token.actions.example'), T1)

    const got = await ds.getTokenIssuer(S, 'gitlab')
    expect(got).toEqual({
      storeId: S,
      name: 'gitlab',
      issuer: 'https://gitlab.example/v2',
      config: { issuer: 'https://gitlab.example/v2', audience: 'x' },
      createdAt: T0,
      updatedAt: T1,
    })
    expect((await ds.listTokenIssuers(S)).map((i) => i.name)).toEqual(['actions', 'gitlab'])
    // Issuers belong to their store.
    expect(await ds.listTokenIssuers(OTHER)).toEqual([])
    expect(await ds.getTokenIssuer(OTHER, 'gitlab')).toBeUndefined()

    expect(await ds.deleteTokenIssuer(S, 'gitlab')).toBe(true)
    expect(await ds.deleteTokenIssuer(S, 'gitlab')).toBe(false)
    expect(await ds.getTokenIssuer(S, 'gitlab')).toBeUndefined()
    expect((await ds.listTokenIssuers(S)).map((i) => i.name)).toEqual(['actions'])
  })

  it('refuses a second issuer with the same iss in one store, not across stores', async () => {
    await ds.putTokenIssuer(issuer('a', 'https://idp.example'), T0)
    expect(await ds.putTokenIssuer(issuer('b', 'https://idp.example'), T0)).toEqual({
      ok: false,
      reason: 'issuer_taken',
      by: 'a',
    })
    expect(await ds.getTokenIssuer(S, 'b')).toBeUndefined()
    // Re-putting the same issuer under its own name is a replace, not a clash.
    expect(await ds.putTokenIssuer(issuer('a', 'https://idp.example'), T1)).toMatchObject({ ok: true, created: false })
    expect(await ds.putTokenIssuer(issuer('b', 'https://idp.example', { storeId: OTHER }), T0)).toMatchObject({ ok: true })
  })

  it('refuses concurrent puts that would share an iss: exactly one wins', async () => {
    const results = await Promise.all(
      ['a', 'b', 'c', 'd'].map((n) => ds.putTokenIssuer(issuer(n, 'https://same.example'), T0)),
    )
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    expect(await ds.listTokenIssuers(S)).toHaveLength(1)
  })

  it('refuses a new issuer beyond the limit, but still replaces existing ones', async () => {
    await ds.putTokenIssuer(issuer('a', 'https://a.example', { limit: 2 }), T0)
    await ds.putTokenIssuer(issuer('b', 'https://b.example', { limit: 2 }), T0)
    expect(await ds.putTokenIssuer(issuer('c', 'https://c.example', { limit: 2 }), T0)).toEqual({ ok: false, reason: 'limit' })
    expect(await ds.putTokenIssuer(issuer('b', 'https://b2.example', { limit: 2 }), T1)).toMatchObject({ ok: true })
  })

  it('refuses a missing or deleted store', async () => {
    expect(await ds.putTokenIssuer(issuer('a', 'https://a.example', { storeId: '01HZZZZZZZZZZZZZZZZZZZZZZ9' }), T0)).toEqual({
      ok: false,
      reason: 'store_missing',
    })
    await ds.deleteStore(OTHER, T1)
    expect(await ds.putTokenIssuer(issuer('a', 'https://a.example', { storeId: OTHER }), T1)).toEqual({
      ok: false,
      reason: 'store_missing',
    })
  })
}

describe('token issuers: sqlite', () => {
  suite(async () => new SqliteDatastore({ filename: ':memory:' }))
})

const target = await probePostgres()
describePostgres('token issuers: postgres', target, () => {
  const url = usePostgresSchema(target)
  suite(async () => PostgresDatastore.open({ url: url(), poolSize: 4 }))
})
