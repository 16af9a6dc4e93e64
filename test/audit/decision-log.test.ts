/**
 * The decision log through the HTTP API: every check, batch-check item and list-objects call is
 * recorded exactly once (also under concurrent load, with many small flushes), with its witness
 * when allowed; errors are not decisions; per-store settings turn it off or sample it;
 * `PEMBA_DECISION_LOG=off` turns it off; the listing filters and pages; retention deletes old
 * decisions (fake clock); close() flushes what waits; a full buffer drops and counts.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { DecisionLog } from '../../src/service/decision-log.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createPresharedClient, SMALL_MODEL } from '../helpers/auth.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'

const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type team
  relations
    define member: [user, agent]
type doc
  relations
    define owner: [user, agent]
    define reader: [user, agent, team#member] or owner
`

const TUPLES = [
  'team:support#member@agent:summarizer',
  'doc:1#reader@team:support#member',
  'doc:2#owner@agent:summarizer',
  'doc:3#reader@user:alice',
  'user:alice#acts_for@agent:summarizer',
]

const T0 = Date.parse('2026-11-29T09:00:00Z')
const DAY = 86_400_000

let now: number
let client: TestClient

/** Every decision of the store, newest first, read through the API in pages of `pageSize`. */
async function allDecisions(storeId: string, query = '', pageSize = 100): Promise<any[]> {
  const out: any[] = []
  let token = ''
  for (;;) {
    const q = `page_size=${pageSize}${query ? `&${query}` : ''}${token ? `&continuation_token=${token}` : ''}`
    const res = await client.request('GET', `/stores/${storeId}/decisions?${q}`)
    expect(res.status, res.text).toBe(200)
    out.push(...res.body.decisions)
    token = res.body.continuation_token
    if (!token) return out
  }
}

async function start(config: Partial<PembaConfig> = {}) {
  client = await createTestClient(
    { decisionLogBatch: 7, decisionLogFlushMs: 5, ...config },
    { clock: () => new Date(now), sweeper: false },
  )
  return setup(client, MODEL, TUPLES)
}

describe('decision log (SQLite)', () => suite(() => ({})))
const target = await probePostgres()
describePostgres('decision log (PostgreSQL)', target, () => {
  const url = usePostgresSchema(target)
  suite(() => ({ databaseUrl: url() }))
})

function suite(config: () => Partial<PembaConfig>) {
  beforeEach(() => {
    now = T0
  })
  afterEach(async () => {
    await client?.close()
  })

  it('records exactly the decisions made under concurrent load', async () => {
    const { storeId } = await start(config())
    const checks = Array.from({ length: 100 }, (_, i) =>
      client.request('POST', `/stores/${storeId}/check`, {
        tuple_key: tupleKey(i % 2 ? 'doc:1#reader@agent:summarizer' : `doc:${i % 5}#reader@user:alice`),
      }),
    )
    // 25 batches of 4 items; two items of each batch are identical (computed once, logged twice).
    const batches = Array.from({ length: 25 }, (_, b) =>
      client.request('POST', `/stores/${storeId}/batch-check`, {
        checks: [
          { tuple_key: tupleKey('doc:2#reader@agent:summarizer'), correlation_id: `b${b}-1` },
          { tuple_key: tupleKey('doc:2#reader@agent:summarizer'), correlation_id: `b${b}-2` },
          { tuple_key: tupleKey('doc:3#reader@agent:summarizer'), correlation_id: `b${b}-3` },
          { tuple_key: tupleKey('doc:3#reader@agent:summarizer'), correlation_id: `b${b}-4`, on_behalf_of: 'user:alice' },
        ],
      }),
    )
    const responses = await Promise.all([...checks, ...batches])
    for (const r of responses) expect(r.status, r.text).toBe(200)
    await client.pemba.decisions.flush()
    const all = await allDecisions(storeId, '', 37)
    expect(all).toHaveLength(200)
    expect(all.filter((d) => d.kind === 'check')).toHaveLength(100)
    const items = all.filter((d) => d.kind === 'batch_check')
    expect(items).toHaveLength(100)
    expect(new Set(items.map((d) => d.detail.correlation_id)).size).toBe(100)
    // One request id per HTTP request: 100 checks + 25 batches.
    expect(new Set(all.map((d) => d.request_id)).size).toBe(125)
    expect(new Set(all.map((d) => d.id)).size).toBe(200)
    // Newest first.
    expect(all.map((d) => d.id)).toEqual([...all.map((d) => d.id)].sort().reverse())
    // The answers are logged as given.
    const delegated = items.filter((d) => d.on_behalf_of.length > 0)
    expect(delegated).toHaveLength(25)
    expect(delegated.every((d) => d.allowed === false && d.detail.denied_by === 'actor')).toBe(true)
    expect(client.pemba.decisions.metrics()).toMatchObject({ recorded: 200, dropped: 0, failed: 0, buffered: 0 })
  })

  it('records what each decision was, with the witness of an allowed one', async () => {
    const { storeId, modelId } = await start(config())
    now = T0 + 1234
    const allowed = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('doc:1#reader@agent:summarizer'),
      consistency: 'HIGHER_CONSISTENCY',
    })
    expect(allowed.body.allowed).toBe(true)
    const denied = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('doc:3#reader@agent:summarizer'),
      on_behalf_of: 'user:alice',
    })
    expect(denied.body.allowed).toBe(false)
    const listed = await client.request('POST', `/stores/${storeId}/list-objects`, {
      type: 'doc',
      relation: 'reader',
      user: 'agent:summarizer',
    })
    expect(listed.body.objects.sort()).toEqual(['doc:1', 'doc:2'])
    await client.pemba.decisions.flush()
    const [list, deny, allow] = await allDecisions(storeId)
    expect(allow).toMatchObject({
      time: new Date(T0 + 1234).toISOString(),
      kind: 'check',
      model_id: modelId,
      client: '',
      user: 'agent:summarizer',
      on_behalf_of: [],
      relation: 'reader',
      object: 'doc:1',
      allowed: true,
      consistency: 'HIGHER_CONSISTENCY',
      request_id: allowed.headers.get('x-request-id'),
      detail: {},
    })
    expect(allow.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    expect(allow.latency_us).toBeGreaterThan(0)
    expect(allow.witness).toEqual(
      expect.arrayContaining([
        { user: 'team:support#member', relation: 'reader', object: 'doc:1' },
        { user: 'agent:summarizer', relation: 'member', object: 'team:support' },
      ]),
    )
    expect(deny).toMatchObject({
      kind: 'check',
      allowed: false,
      on_behalf_of: ['user:alice'],
      witness: [],
      consistency: 'UNSPECIFIED',
      detail: { denied_by: 'actor' },
    })
    expect(list).toMatchObject({
      kind: 'list_objects',
      user: 'agent:summarizer',
      relation: 'reader',
      object: 'doc',
      allowed: true,
      detail: { count: 2 },
      request_id: listed.headers.get('x-request-id'),
    })
  })

  it('does not record errors, nor Pemba’s own checks', async () => {
    const { storeId } = await start(config())
    const bad = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:1#nope@user:alice') })
    expect(bad.status).toBe(400)
    const batch = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { tuple_key: tupleKey('doc:1#reader@user:alice'), correlation_id: 'ok' },
        { tuple_key: tupleKey('doc:1#nope@user:alice'), correlation_id: 'bad' },
      ],
    })
    expect(batch.status).toBe(200)
    expect(batch.body.result.bad.error).toBeDefined()
    const badList = await client.request('POST', `/stores/${storeId}/list-objects`, { type: 'nope', relation: 'reader', user: 'user:alice' })
    expect(badList.status).toBe(400)
    // Reach runs list-objects for itself: a review is not a decision.
    expect((await client.request('GET', `/stores/${storeId}/reach?user=agent:summarizer`)).status).toBe(200)
    await client.pemba.decisions.flush()
    const all = await allDecisions(storeId)
    expect(all.map((d) => [d.kind, d.detail.correlation_id])).toEqual([['batch_check', 'ok']])
  })

  it('follows the store’s settings: off, sampled to nothing, back on', async () => {
    const { storeId } = await start(config())
    const check = () => client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:3#reader@user:alice') })
    const settings = await client.request('GET', `/stores/${storeId}/decision-log-settings`)
    expect(settings.body).toEqual({ enabled: true, sample_rate: 1, updated_at: null, globally_enabled: true })

    const off = await client.request('PUT', `/stores/${storeId}/decision-log-settings`, { enabled: false })
    expect(off.status, off.text).toBe(200)
    expect(off.body).toEqual({ enabled: false, sample_rate: 1, updated_at: '2026-11-29T09:00:00Z', globally_enabled: true })
    for (let i = 0; i < 5; i++) await check()
    await client.pemba.decisions.flush()
    expect(await allDecisions(storeId)).toHaveLength(0)

    await client.request('PUT', `/stores/${storeId}/decision-log-settings`, { enabled: true, sample_rate: 0 })
    await Promise.all(Array.from({ length: 20 }, check))
    await client.pemba.decisions.flush()
    expect(await allDecisions(storeId)).toHaveLength(0)

    await client.request('PUT', `/stores/${storeId}/decision-log-settings`, { enabled: true, sample_rate: 1 })
    await Promise.all(Array.from({ length: 3 }, check))
    await client.pemba.decisions.flush()
    expect(await allDecisions(storeId)).toHaveLength(3)
    const read = await client.request('GET', `/stores/${storeId}/decision-log-settings`)
    expect(read.body).toMatchObject({ enabled: true, sample_rate: 1 })

    // Another store is unaffected by this one's settings.
    const other = await setup(client, MODEL, ['doc:1#reader@user:bob'])
    await client.request('PUT', `/stores/${storeId}/decision-log-settings`, { enabled: false })
    await other.check('doc:1#reader@user:bob')
    await check()
    await client.pemba.decisions.flush()
    expect(await allDecisions(other.storeId)).toHaveLength(1)
    expect(await allDecisions(storeId)).toHaveLength(3)
  })

  it('filters and pages, and refuses bad filters with a 400', async () => {
    const { storeId } = await start(config())
    const asks = [
      'doc:1#reader@agent:summarizer', // allowed
      'doc:3#reader@user:alice', // allowed
      'doc:2#reader@user:alice', // denied
      'doc:1#reader@user:alice', // denied
    ]
    for (let round = 0; round < 3; round++) {
      for (const t of asks) {
        now += 60_000
        // Each round under one request id, as an enforcement point's batch is.
        await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey(t) }, { 'x-request-id': `pep-round-${round}` })
      }
    }
    await client.pemba.decisions.flush()
    const all = await allDecisions(storeId)
    expect(all).toHaveLength(12)
    expect(await allDecisions(storeId, '', 5)).toEqual(all)
    const ids = (f: (d: any) => boolean) => all.filter(f).map((d) => d.id)
    const got = async (q: string) => (await allDecisions(storeId, q, 2)).map((d) => d.id)
    expect(await got('subject=user:alice')).toEqual(ids((d) => d.user === 'user:alice'))
    expect(await got('user=user:alice')).toEqual(ids((d) => d.user === 'user:alice'))
    expect(await got('object=doc:1')).toEqual(ids((d) => d.object === 'doc:1'))
    expect(await got('relation=reader&allowed=true')).toEqual(ids((d) => d.allowed))
    expect(await got('allowed=false&object=doc:2')).toEqual(ids((d) => !d.allowed && d.object === 'doc:2'))
    expect(await got('client=')).toEqual(ids(() => true))
    expect(await got('client=client:other')).toEqual([])
    expect(await got('kind=check')).toEqual(ids(() => true))
    expect(await got('kind=list_objects')).toEqual([])
    const from = new Date(T0 + 5 * 60_000).toISOString()
    const to = new Date(T0 + 9 * 60_000).toISOString()
    const inRange = (d: any) => Date.parse(d.time) >= Date.parse(from) && Date.parse(d.time) < Date.parse(to)
    expect(await got(`from=${from}&to=${to}`)).toEqual(ids(inRange))
    expect(ids(inRange)).toHaveLength(4)
    // The decision id an enforcement point shows finds its decisions (paged like any filter).
    expect(await got('request_id=pep-round-1')).toEqual(ids((d) => d.request_id === 'pep-round-1'))
    expect(ids((d) => d.request_id === 'pep-round-1')).toHaveLength(4)
    expect(await got('request_id=pep-round-2&allowed=false')).toEqual(ids((d) => d.request_id === 'pep-round-2' && !d.allowed))
    expect(await got('request_id=pep-round-9')).toEqual([])

    const page = await client.request('GET', `/stores/${storeId}/decisions?page_size=2&allowed=true`)
    const token = page.body.continuation_token
    expect(token).not.toBe('')
    const bad: [string, string][] = [
      ['allowed=maybe', 'validation_error'],
      ['from=yesterday', 'validation_error'],
      [`from=${to}&to=${from}`, 'validation_error'],
      ['page_size=0', 'page_size_invalid'],
      ['page_size=101', 'page_size_invalid'],
      ['kind=explain', 'validation_error'],
      ['request_id=has%20space', 'validation_error'],
      [`request_id=${'x'.repeat(129)}`, 'validation_error'],
      [`request_id=pep-round-1&continuation_token=${token}`, 'invalid_continuation_token'],
      ['subject=user:alice&user=user:bob', 'validation_error'],
      ['continuation_token=garbage', 'invalid_continuation_token'],
      // A token continues only the listing it came from.
      [`allowed=false&continuation_token=${token}`, 'invalid_continuation_token'],
    ]
    for (const [q, code] of bad) {
      const res = await client.request('GET', `/stores/${storeId}/decisions?${q}`)
      expect(res.status, q).toBe(400)
      expect(res.body.code, q).toBe(code)
    }
    const missing = await client.request('GET', '/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ/decisions')
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('store_id_not_found')
  })

  it('deletes decisions past the retention period (fake clock)', async () => {
    const { storeId } = await start({ ...config(), decisionLogRetention: 'P30D' })
    const check = () => client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:3#reader@user:alice') })
    await check()
    await check()
    now = T0 + 20 * DAY
    await check()
    await client.pemba.decisions.flush()
    now = T0 + 30 * DAY - 1
    expect(await client.pemba.decisions.sweepOnce()).toMatchObject({ decisions: 0 })
    expect(await allDecisions(storeId)).toHaveLength(3)
    now = T0 + 30 * DAY + 1
    expect(await client.pemba.decisions.sweepOnce()).toMatchObject({ decisions: 2 })
    const left = await allDecisions(storeId)
    expect(left.map((d) => d.time)).toEqual([new Date(T0 + 20 * DAY).toISOString()])
    now = T0 + 51 * DAY
    expect(await client.pemba.decisions.sweepOnce()).toMatchObject({ decisions: 1 })
    expect(await allDecisions(storeId)).toHaveLength(0)
  })
}

describe('decision log, server-wide', () => {
  beforeEach(() => {
    now = T0
  })
  afterEach(async () => {
    await client?.close()
  })

  it('records nothing with PEMBA_DECISION_LOG=off', async () => {
    const { storeId, check } = await start({ decisionLog: 'off' })
    expect(await check('doc:3#reader@user:alice')).toBe(true)
    await client.pemba.decisions.flush()
    expect(await allDecisions(storeId)).toHaveLength(0)
    const s = await client.request('GET', `/stores/${storeId}/decision-log-settings`)
    expect(s.body.globally_enabled).toBe(false)
  })

  it('records the authenticated API client', async () => {
    const t = await createPresharedClient(['root'], { authAdminClients: 'root' })
    client = t
    const store = (await t.as('root', 'POST', '/stores', { name: 'audited' })).body.id
    expect((await t.as('root', 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
    const asked = await t.as('root', 'POST', `/stores/${store}/check`, { tuple_key: tupleKey('document:1#viewer@user:anne') })
    expect(asked.status, asked.text).toBe(200)
    await t.pemba.decisions.flush()
    const mine = await t.as('root', 'GET', `/stores/${store}/decisions?client=client:root`)
    expect(mine.body.decisions.map((d: any) => [d.client, d.user, d.allowed])).toEqual([['client:root', 'user:anne', false]])
    expect((await t.as('root', 'GET', `/stores/${store}/decisions?client=client:other`)).body.decisions).toEqual([])
    // The log is not open to callers without a key.
    expect((await t.request('GET', `/stores/${store}/decisions`)).status).toBe(401)
  })

  it('flushes what waits when Pemba closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pemba-decisions-'))
    try {
      const databaseUrl = `sqlite:${join(dir, 'pemba.db')}`
      // Nothing would flush on its own for a minute, nor by batch size.
      const { storeId, check } = await start({ databaseUrl, decisionLogBatch: 1000, decisionLogFlushMs: 60_000 })
      for (let i = 0; i < 12; i++) await check('doc:3#reader@user:alice')
      expect(client.pemba.decisions.metrics().buffered).toBe(12)
      await client.close()
      const ds = new SqliteDatastore({ filename: join(dir, 'pemba.db') })
      try {
        expect((await ds.listDecisions(storeId, { pageSize: 100 })).items).toHaveLength(12)
      } finally {
        await ds.close()
      }
    } finally {
      client = undefined as unknown as TestClient
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('drops and counts decisions beyond the buffer bound, never blocking', async () => {
    const { storeId } = await start({ decisionLogBatch: 5, decisionLogBufferMax: 5, decisionLogFlushMs: 60_000 })
    const d = {
      kind: 'check' as const,
      storeId,
      modelId: 'm',
      client: '',
      requestId: 'r',
      subject: 'user:alice',
      relation: 'reader',
      object: 'doc:3',
      allowed: false,
      latencyUs: 1,
      consistency: '',
      at: T0,
    }
    // Synchronously, as a burst of requests would: the flush only starts on a later turn.
    for (let i = 0; i < 8; i++) client.pemba.decisions.record(d)
    expect(client.pemba.decisions.metrics()).toMatchObject({ buffered: 5, dropped: 3 })
    const metrics = await client.request('GET', '/metrics')
    expect(metrics.text).toMatch(/^pemba_decisions_dropped_total 3$/m)
    await client.pemba.decisions.flush()
    expect(await allDecisions(storeId)).toHaveLength(5)
    const after = await client.request('GET', '/metrics')
    expect(after.text).toMatch(/^pemba_decisions_recorded_total 5$/m)
    expect(after.text).toMatch(/^pemba_decisions_buffered 0$/m)
  })

  it('validates the settings it is given', async () => {
    const { storeId } = await start()
    const bad = [{ enabled: 'yes' }, { sample_rate: 0.5 }, { enabled: true, sample_rate: 1.5 }, { enabled: true, sample_rate: -0.1 }]
    for (const body of bad) {
      const res = await client.request('PUT', `/stores/${storeId}/decision-log-settings`, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.code).toBe('validation_error')
    }
    const notJson = await client.request('PUT', `/stores/${storeId}/decision-log-settings`, '{', { 'content-type': 'application/json' })
    expect(notJson.status).toBe(400)
    expect((await client.request('GET', `/stores/${storeId}/decision-log-settings`)).body.enabled).toBe(true)
    const missing = await client.request('PUT', '/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ/decision-log-settings', { enabled: false })
    expect(missing.status).toBe(404)
  })
})

describe('DecisionLog sampling', () => {
  it('records the sampled share, decided per decision', async () => {
    const ds = new SqliteDatastore({ filename: ':memory:' })
    const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
    await ds.createStore(S, 's', new Date(T0))
    const draws = [0.1, 0.6, 0.3, 0.9, 0.2, 0.5]
    let i = 0
    const log = new DecisionLog({
      datastore: ds,
      clock: () => new Date(T0),
      enabled: true,
      batchSize: 100,
      flushIntervalMs: 60_000,
      bufferMax: 1000,
      retentionMs: DAY,
      sweepIntervalMs: 0,
      logError: (e) => {
        throw e
      },
      random: () => draws[i++ % draws.length],
    })
    await log.putSettings(S, { enabled: true, sampleRate: 0.5 })
    for (let n = 0; n < 6; n++) {
      log.record({
        kind: 'check',
        storeId: S,
        modelId: 'm',
        client: '',
        requestId: `r${n}`,
        subject: 'user:alice',
        relation: 'reader',
        object: 'doc:1',
        allowed: true,
        latencyUs: 1,
        consistency: '',
        at: T0 + n,
      })
    }
    await log.close()
    const kept = (await ds.listDecisions(S, { pageSize: 10 })).items.map((d) => d.requestId)
    // Draws below 0.5 are kept: 0.1, 0.3, 0.2.
    expect(kept).toEqual(['r4', 'r2', 'r0'])
    await ds.close()
  })
})

describe('DecisionLog grant usage', () => {
  it('writes a tuple’s use again only once its last written use is a minute old', async () => {
    const ds = new SqliteDatastore({ filename: ':memory:' })
    const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
    await ds.createStore(S, 's', new Date(T0))
    await ds.write(
      S,
      {
        writes: [{ objectType: 'doc', objectId: '1', relation: 'reader', userType: 'user', userId: 'alice', userRelation: '', conditionName: '', conditionContext: undefined }],
        deletes: [],
        onDuplicate: 'error',
        onMissing: 'error',
      },
      new Date(T0),
    )
    const log = new DecisionLog({
      datastore: ds,
      clock: () => new Date(T0),
      enabled: true,
      batchSize: 100,
      flushIntervalMs: 60_000,
      bufferMax: 1000,
      retentionMs: DAY,
      sweepIntervalMs: 0,
      logError: (e) => {
        throw e
      },
    })
    const lastUsed = async () =>
      (await ds.listGrants(S, { type: 'user', id: 'alice', relation: '' }, { now: T0, pageSize: 1 })).items[0].lastUsedAt
    const use = async (at: number) => {
      log.record({
        kind: 'check',
        storeId: S,
        modelId: 'm',
        client: '',
        requestId: 'r',
        subject: 'user:alice',
        relation: 'reader',
        object: 'doc:1',
        allowed: true,
        witness: [{ user: 'user:alice', relation: 'reader', object: 'doc:1' }],
        latencyUs: 1,
        consistency: '',
        at,
      })
      await log.flush()
    }
    await use(T0 + 1000)
    expect(await lastUsed()).toBe(T0 + 1000)
    await use(T0 + 30_000)
    expect(await lastUsed()).toBe(T0 + 1000)
    await use(T0 + 61_000)
    expect(await lastUsed()).toBe(T0 + 61_000)
    // Every use is still a decision of its own.
    expect((await ds.listDecisions(S, { pageSize: 10 })).items).toHaveLength(3)
    await log.close()
    await ds.close()
  })
})
