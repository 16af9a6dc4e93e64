/**
 * Expiring tuples through the HTTP API: a tuple written with `expires_at` stops granting at that
 * instant in every query (check, list-objects, list-users, expand, read), with no cleanup
 * first; bad or past times are refused whole; the sweeper deletes expired tuples and the change
 * feed records it. A fake clock drives time, with and without the cross-request check cache.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const MODEL = `model
  schema 1.1
type user
type team
  relations
    define member: [user]
type namespace
  relations
    define deployer: [user, team#member]
    define viewer: [user] or deployer
`

const T0 = Date.parse('2026-11-29T09:00:00Z')
const EXPIRY = '2026-11-29T10:00:00Z'
const AT_EXPIRY = Date.parse(EXPIRY)

let now: number
let client: TestClient

/** The wire key of `object#relation@user` with an expiry. */
const expiring = (t: string, expires_at = EXPIRY) => ({ ...tupleKey(t), expires_at })

describe('expiring tuples, with the check cache', () => suite(() => ({})))
describe('expiring tuples, without the check cache', () => suite(() => ({ checkCacheSize: 0 })))
const target = await probePostgres()
describePostgres('expiring tuples on PostgreSQL', target, () => {
  const url = usePostgresSchema(target)
  suite(() => ({ databaseUrl: url() }))
})

function suite(config: () => Partial<PembaConfig>) {
  beforeEach(async () => {
    now = T0
    client = await createTestClient(config(), { clock: () => new Date(now), sweeper: false })
  })
  afterEach(async () => {
    await client.close()
  })

  async function store(tuples: string[] = []) {
    const s = await setup(client, MODEL, tuples)
    const post = async (path: string, body: unknown) => {
      const res = await client.request('POST', `/stores/${s.storeId}/${path}`, body)
      expect(res.status, res.text).toBe(200)
      return res.body
    }
    const write = (writes: unknown[], extra: Record<string, unknown> = {}) =>
      client.request('POST', `/stores/${s.storeId}/write`, {
        writes: { tuple_keys: writes, ...extra },
      })
    const changes = async () =>
      (await client.request('GET', `/stores/${s.storeId}/changes?page_size=100`)).body.changes as {
        tuple_key: Record<string, unknown>
        operation: string
      }[]
    return { ...s, post, write, changes }
  }

  it('hides an expired tuple from check, list-objects, list-users, expand and read at the instant', async () => {
    const s = await store(['team:sre#member@user:sam'])
    const w = await s.write([
      expiring('namespace:prod#deployer@user:anne'),
      expiring('namespace:prod#deployer@team:sre#member'),
    ])
    expect(w.status, w.text).toBe(200)

    const look = async () => ({
      anne: await s.check('namespace:prod#viewer@user:anne'),
      sam: await s.check('namespace:prod#viewer@user:sam'),
      objects: (
        await s.post('list-objects', { type: 'namespace', relation: 'viewer', user: 'user:sam' })
      ).objects,
      users: (
        await s.post('list-users', {
          object: { type: 'namespace', id: 'prod' },
          relation: 'deployer',
          user_filters: [{ type: 'user' }],
        })
      ).users,
      expand: (
        await s.post('expand', { tuple_key: { object: 'namespace:prod', relation: 'deployer' } })
      ).tree.root.leaf.users.users.sort(),
      read: (await s.post('read', { tuple_key: { object: 'namespace:prod' } })).tuples
        .map(
          (t: { key: { user: string; expires_at?: string } }) =>
            `${t.key.user} ${t.key.expires_at}`,
        )
        .sort(),
    })

    now = AT_EXPIRY - 1
    expect(await look()).toEqual({
      anne: true,
      sam: true,
      objects: ['namespace:prod'],
      users: [{ object: { type: 'user', id: 'anne' } }, { object: { type: 'user', id: 'sam' } }],
      expand: ['team:sre#member', 'user:anne'],
      read: [`team:sre#member ${EXPIRY}`, `user:anne ${EXPIRY}`],
    })
    now = AT_EXPIRY
    expect(await look()).toEqual({
      anne: false,
      sam: false,
      objects: [],
      users: [],
      expand: [],
      read: [],
    })
  })

  it('reads expires_at back only on tuples that have one', async () => {
    const s = await store(['namespace:prod#deployer@user:bob'])
    // Any RFC 3339 zone; read answers in UTC.
    await s.write([expiring('namespace:prod#deployer@user:anne', '2026-11-29T11:30:00.250+01:00')])
    const keys = (await s.post('read', { tuple_key: { object: 'namespace:prod' } })).tuples.map(
      (t: { key: unknown }) => t.key,
    )
    expect(keys).toEqual([
      {
        user: 'user:anne',
        relation: 'deployer',
        object: 'namespace:prod',
        condition: null,
        expires_at: '2026-11-29T10:30:00.250Z',
      },
      { user: 'user:bob', relation: 'deployer', object: 'namespace:prod', condition: null },
    ])
    const feed = await s.changes()
    expect(feed.map((c) => c.tuple_key.expires_at)).toEqual([undefined, '2026-11-29T10:30:00.250Z'])
  })

  it('refuses an unparseable or already-expired time with 400 and writes nothing', async () => {
    const s = await store()
    const bad = [
      'tomorrow',
      '2026-11-29T10:00:00', // no zone: not an instant
      '2026-02-30T10:00:00Z', // no such day
      '2026-11-29 10:00:00Z',
      '1732870800',
      '2026-11-29T09:00:00Z', // exactly now: would never grant
      '2026-11-28T10:00:00Z',
    ]
    for (const t of bad) {
      const res = await s.write([
        tupleKey('namespace:prod#deployer@user:bob'),
        expiring('namespace:prod#deployer@user:anne', t),
      ])
      expect(res.status, t).toBe(400)
      expect(res.body.code, t).toBe('validation_error')
      expect(res.body.message, t).toMatch(/expires_at/)
    }
    expect((await s.post('read', {})).tuples).toEqual([])
    expect(await s.changes()).toEqual([])
    expect(await s.check('namespace:prod#deployer@user:bob')).toBe(false)
  })

  it('treats an expired, unswept tuple as gone: it can be written again, not deleted', async () => {
    const s = await store()
    await s.write([expiring('namespace:prod#deployer@user:anne')])
    now = AT_EXPIRY
    const del = await client.request('POST', `/stores/${s.storeId}/write`, {
      deletes: { tuple_keys: [tupleKey('namespace:prod#deployer@user:anne')] },
    })
    expect(del.status).toBe(400)
    expect(del.body.message).toMatch(/cannot delete a tuple which does not exist/)
    const again = await s.write([
      expiring('namespace:prod#deployer@user:anne', '2026-11-29T12:00:00Z'),
    ])
    expect(again.status, again.text).toBe(200)
    expect(await s.check('namespace:prod#deployer@user:anne')).toBe(true)
    expect((await s.changes()).map((c) => `${c.operation} ${c.tuple_key.expires_at}`)).toEqual([
      `TUPLE_OPERATION_WRITE ${EXPIRY}`,
      'TUPLE_OPERATION_DELETE undefined',
      'TUPLE_OPERATION_WRITE 2026-11-29T12:00:00Z',
    ])
    // The same tuple with another expiry is a conflict, even with on_duplicate: ignore.
    const other = await s.write(
      [expiring('namespace:prod#deployer@user:anne', '2026-11-29T13:00:00Z')],
      {
        on_duplicate: 'ignore',
      },
    )
    expect(other.status).toBe(409)
  })

  it('lets contextual tuples expire too', async () => {
    const s = await store()
    const ctx = (expires_at: string) => ({
      contextual_tuples: {
        tuple_keys: [expiring('namespace:prod#deployer@user:anne', expires_at)],
      },
    })
    expect(await s.check('namespace:prod#viewer@user:anne', ctx(EXPIRY))).toBe(true)
    expect(await s.check('namespace:prod#viewer@user:anne', ctx('2026-11-29T09:00:00Z'))).toBe(
      false,
    )
    const objects = await s.post('list-objects', {
      type: 'namespace',
      relation: 'viewer',
      user: 'user:anne',
      ...ctx('2026-11-29T08:00:00Z'),
    })
    expect(objects.objects).toEqual([])
    const res = await client.request('POST', `/stores/${s.storeId}/check`, {
      tuple_key: tupleKey('namespace:prod#viewer@user:anne'),
      ...ctx('soon'),
    })
    expect(res.status).toBe(400)
  })

  it('sweeps expired tuples and records each delete in the change feed', async () => {
    const s = await store(['namespace:prod#deployer@user:bob'])
    await s.write([
      expiring('namespace:prod#deployer@user:anne'),
      expiring('namespace:dev#deployer@user:anne', '2026-11-29T11:00:00Z'),
    ])
    now = AT_EXPIRY + 1000
    expect(await client.pemba.sweeper.runOnce()).toEqual({ tuples: 1, accessRequests: 0, searchSnapshots: 0, purgedRows: 0, purgedStores: [] })
    expect(await client.pemba.sweeper.runOnce()).toEqual({ tuples: 0, accessRequests: 0, searchSnapshots: 0, purgedRows: 0, purgedStores: [] })
    const feed = await s.changes()
    expect(feed.slice(-1)).toEqual([
      {
        tuple_key: {
          user: 'user:anne',
          relation: 'deployer',
          object: 'namespace:prod',
          condition: null,
        },
        operation: 'TUPLE_OPERATION_DELETE',
        timestamp: '2026-11-29T10:00:01Z',
      },
    ])
    expect(await s.check('namespace:dev#deployer@user:anne')).toBe(true)
    expect(await s.check('namespace:prod#deployer@user:bob')).toBe(true)
  })
}

describe('the sweeper on its timer', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('runs every PEMBA_EXPIRY_SWEEP_INTERVAL_MS and stops on close', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    now = T0
    const c = await createTestClient(
      { expirySweepIntervalMs: 30_000 },
      { clock: () => new Date(now) },
    )
    try {
      const s = await setup(c, MODEL)
      const write = await c.request('POST', `/stores/${s.storeId}/write`, {
        writes: {
          tuple_keys: [expiring('namespace:prod#deployer@user:anne', '2026-11-29T09:00:20Z')],
        },
      })
      expect(write.status).toBe(200)
      const deletes = async () =>
        (await c.request('GET', `/stores/${s.storeId}/changes`)).body.changes.filter(
          (x: { operation: string }) => x.operation === 'TUPLE_OPERATION_DELETE',
        ).length
      now = T0 + 25_000
      await vi.advanceTimersByTimeAsync(29_000)
      expect(await deletes()).toBe(0)
      await vi.advanceTimersByTimeAsync(1_000)
      expect(await deletes()).toBe(1)
    } finally {
      await c.close()
    }
    expect(vi.getTimerCount()).toBe(0)
  })
})
