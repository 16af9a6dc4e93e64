/**
 * The audit half of the Datastore contract (decision log, its settings, grant usage, and the
 * review queries), run against SQLite and, when PEMBA_TEST_POSTGRES_URL answers, PostgreSQL.
 */
import { encodeTime } from 'ulid'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { PembaError } from '../../src/core/errors.ts'
import type { Tuple } from '../../src/core/tuple.ts'
import type { GrantUse, StoredDecision } from '../../src/service/decision-store.ts'
import { PostgresDatastore } from '../../src/store/postgres/index.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import type { Datastore } from '../../src/store/store.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'

const S = '01HZZZZZZZZZZZZZZZZZZZZZZZ'
const OTHER = '01HZZZZZZZZZZZZZZZZZZZZZZ1'
const T0 = Date.parse('2026-01-01T00:00:00Z')
const DAY = 86_400_000

function tuple(object: string, relation: string, user: string, expiresAt?: number): Tuple {
  const [objectType, objectId] = object.split(':')
  const [u, userRelation = ''] = user.split('#')
  const [userType, userId] = u.split(':')
  const t: Tuple = { objectType, objectId, relation, userType, userId, userRelation, conditionName: '', conditionContext: undefined }
  if (expiresAt !== undefined) t.expiresAt = expiresAt
  return t
}

function use(t: Tuple, usedAt: number, storeId = S): GrantUse {
  const { objectType, objectId, relation, userType, userId, userRelation } = t
  return { storeId, objectType, objectId, relation, userType, userId, userRelation, usedAt }
}

/** A decision numbered n (ids ascend with n), at T0 + n minutes. */
/**
 * decision n, decided n minutes after T0. Its id is a ULID of its time, as the decision log
 * makes them (a store may narrow a time range by id).
 */
function decision(n: number, over: Partial<StoredDecision> = {}): StoredDecision {
  const at = over.at ?? T0 + n * 60_000
  return {
    id: encodeTime(at, 10) + String(n).padStart(16, '0'),
    storeId: S,
    at,
    kind: 'check',
    modelId: '01HMODEL000000000000000000',
    client: 'client:ci',
    requestId: `req-${n}`,
    subject: n % 2 ? 'agent:odd' : 'agent:even',
    relation: 'reader',
    object: `doc:${n % 3}`,
    allowed: n % 2 === 0,
    latencyUs: 100 + n,
    consistency: 'UNSPECIFIED',
    ...over,
  }
}

async function allIds(ds: Datastore, q: Parameters<Datastore['listDecisions']>[1]): Promise<string[]> {
  const ids: string[] = []
  let after: string | undefined
  do {
    const page = await ds.listDecisions(S, { ...q, after })
    ids.push(...page.items.map((d) => d.id))
    after = page.next || undefined
  } while (after)
  return ids
}

function runAuditSuite(name: string, open: () => Promise<Datastore>): void {
  describe(`audit datastore: ${name}`, () => {
    let ds: Datastore
    beforeEach(async () => {
      ds = await open()
      await ds.createStore(S, 'audit', new Date(T0))
      await ds.createStore(OTHER, 'other', new Date(T0))
    })
    afterEach(async () => {
      await ds.close()
    })

    it('stores every field of a decision and reads it back', async () => {
      const d = decision(1, {
        kind: 'batch_check',
        onBehalfOf: ['agent:planner', 'user:alice'],
        allowed: true,
        witness: [{ user: 'team:eng#member', relation: 'reader', object: 'doc:1', condition: { name: 'in_hours' } }],
        detail: { correlation_id: 'c-1', note: "quotes ' and \" and \\ survive" },
      })
      // A delegated check's witness may name a tuple twice (two checks shared it): stored once.
      await ds.appendDecisions([{ ...d, witness: [...d.witness!, ...d.witness!] }], [])
      const page = await ds.listDecisions(S, { pageSize: 10 })
      expect(page.items).toEqual([d])
      expect(page.next).toBe('')
      // A decision without optional parts comes back without them.
      await ds.appendDecisions([decision(2)], [])
      const [plain] = (await ds.listDecisions(S, { pageSize: 1 })).items
      expect(plain).toEqual(decision(2))
    })

    it('lists newest first, in pages, with every filter', async () => {
      const batch = Array.from({ length: 30 }, (_, i) => decision(i + 1))
      batch.push(decision(99, { storeId: OTHER }))
      batch[4] = { ...batch[4], client: 'client:ops', kind: 'list_objects', relation: 'writer' }
      await ds.appendDecisions(batch, [])
      const mine = batch.filter((d) => d.storeId === S)
      const ids = (f: (d: StoredDecision) => boolean) => mine.filter(f).map((d) => d.id).reverse()

      expect(await allIds(ds, { pageSize: 7 })).toEqual(ids(() => true))
      expect(await allIds(ds, { pageSize: 4, subject: 'agent:odd' })).toEqual(ids((d) => d.subject === 'agent:odd'))
      expect(await allIds(ds, { pageSize: 4, object: 'doc:2' })).toEqual(ids((d) => d.object === 'doc:2'))
      expect(await allIds(ds, { pageSize: 100, allowed: true })).toEqual(ids((d) => d.allowed))
      expect(await allIds(ds, { pageSize: 100, allowed: false })).toEqual(ids((d) => !d.allowed))
      expect(await allIds(ds, { pageSize: 100, client: 'client:ops' })).toEqual([batch[4].id])
      expect(await allIds(ds, { pageSize: 100, kind: 'list_objects' })).toEqual([batch[4].id])
      expect(await allIds(ds, { pageSize: 100, relation: 'writer' })).toEqual([batch[4].id])
      const from = T0 + 10 * 60_000
      const to = T0 + 20 * 60_000
      expect(await allIds(ds, { pageSize: 3, from, to })).toEqual(ids((d) => d.at >= from && d.at < to))
      expect(await allIds(ds, { pageSize: 3, from, to, subject: 'agent:even', allowed: true })).toEqual(
        ids((d) => d.at >= from && d.at < to && d.subject === 'agent:even'),
      )
      expect((await ds.listDecisions(OTHER, { pageSize: 10 })).items.map((d) => d.id)).toEqual([decision(99).id])
    })

    it('refuses a cursor it did not make', async () => {
      for (const after of ['nope', '[1]', '{"a":1}']) {
        await expect(ds.listDecisions(S, { pageSize: 1, after })).rejects.toBeInstanceOf(PembaError)
      }
    })

    it('deletes decisions older than a time in bounded chunks', async () => {
      const old = Array.from({ length: 25 }, (_, i) => decision(i, { at: T0 - DAY - i }))
      const recent = Array.from({ length: 5 }, (_, i) => decision(100 + i, { at: T0 + i }))
      await ds.appendDecisions([...old, ...recent], [])
      const counts: number[] = []
      for (;;) {
        const n = await ds.deleteDecisionsBefore(T0, 10)
        counts.push(n)
        if (n < 10) break
      }
      expect(counts).toEqual([10, 10, 5])
      expect(await allIds(ds, { pageSize: 100 })).toEqual(recent.map((d) => d.id).reverse())
    })

    it('keeps the latest use of each grant, and joins it to the grant', async () => {
      const a = tuple('doc:1', 'reader', 'agent:a')
      const b = tuple('doc:2', 'reader', 'agent:a')
      await ds.write(S, { writes: [a, b], deletes: [], onDuplicate: 'error', onMissing: 'error' }, new Date(T0))
      // One batch with the same tuple twice (the later wins), then an older use that must not win.
      await ds.appendDecisions([decision(1)], [use(a, T0 + 100), use(a, T0 + 300), use(b, T0 + 50)])
      await ds.appendDecisions([], [use(a, T0 + 200)])
      const page = await ds.listGrants(S, { type: 'agent', id: 'a', relation: '' }, { now: T0, pageSize: 10 })
      expect(page.items.map((g) => [g.objectId, g.lastUsedAt, g.insertedAt.getTime()])).toEqual([
        ['1', T0 + 300, T0],
        ['2', T0 + 50, T0],
      ])
      await ds.appendDecisions([], [use(b, T0 + 400)])
      const again = await ds.listGrants(S, { type: 'agent', id: 'a', relation: '' }, { now: T0, pageSize: 10 })
      expect(again.items.map((g) => g.lastUsedAt)).toEqual([T0 + 300, T0 + 400])
    })

    it('lists exactly one identity’s live grants, in pages', async () => {
      const writes = [
        tuple('doc:1', 'reader', 'agent:a'),
        tuple('doc:1', 'writer', 'agent:a'),
        tuple('doc:2', 'reader', 'agent:a'),
        tuple('folder:x', 'owner', 'agent:a'),
        tuple('doc:3', 'reader', 'agent:a', T0 + 1000), // expires
        tuple('doc:1', 'reader', 'agent:ab'),
        tuple('doc:1', 'reader', 'agent:*'),
        tuple('doc:4', 'reader', 'team:eng#member'),
      ]
      await ds.write(S, { writes, deletes: [], onDuplicate: 'error', onMissing: 'error' }, new Date(T0))
      const keys: string[] = []
      let after: string | undefined
      do {
        const p = await ds.listGrants(S, { type: 'agent', id: 'a', relation: '' }, { now: T0 + 1000, pageSize: 2, after })
        keys.push(...p.items.map((g) => `${g.objectType}:${g.objectId}#${g.relation}`))
        after = p.next || undefined
      } while (after)
      expect(keys).toEqual(['doc:1#reader', 'doc:1#writer', 'doc:2#reader', 'folder:x#owner'])
      const before = await ds.listGrants(S, { type: 'agent', id: 'a', relation: '' }, { now: T0, pageSize: 10 })
      expect(before.items).toHaveLength(5)
      const wildcard = await ds.listGrants(S, { type: 'agent', id: '*', relation: '' }, { now: T0, pageSize: 10 })
      expect(wildcard.items.map((g) => g.objectId)).toEqual(['1'])
      const team = await ds.listGrants(S, { type: 'team', id: 'eng', relation: 'member' }, { now: T0, pageSize: 10 })
      expect(team.items.map((g) => g.objectId)).toEqual(['4'])
    })

    it('ranks the identities of a type by their share of unused grants', async () => {
      const cutoff = T0 + 10 * DAY
      // a: 4 grants, 1 used after the cutoff → 3/4 unused. b: 2 grants, both unused → 1.
      // c: 2 grants, one granted after the cutoff (too new), one used → 0. d: 3, one unused → 1/3.
      const old = new Date(T0)
      const late = new Date(cutoff + 1)
      const w = async (ts: Tuple[], at: Date) =>
        ds.write(S, { writes: ts, deletes: [], onDuplicate: 'error', onMissing: 'error' }, at)
      const a = ['1', '2', '3', '4'].map((id) => tuple(`doc:${id}`, 'reader', 'agent:a'))
      const b = ['1', '2'].map((id) => tuple(`doc:${id}`, 'reader', 'agent:b'))
      const c = [tuple('doc:1', 'reader', 'agent:c')]
      const d = ['1', '2', '3'].map((id) => tuple(`doc:${id}`, 'reader', 'agent:d'))
      await w([...a, ...b, ...c, ...d, tuple('doc:9', 'reader', 'user:zed')], old)
      const cNew = tuple('doc:2', 'reader', 'agent:c')
      await w([cNew], late)
      await ds.appendDecisions(
        [],
        [
          use(a[0], cutoff + 5),
          use(b[0], cutoff - 5), // used, but before the cutoff: still unused
          use(c[0], cutoff + 5),
          use(d[0], cutoff + 5),
          use(d[1], cutoff + 6),
        ],
      )
      const expected = [
        { user: 'agent:b', grants: 2, unused: 2 },
        { user: 'agent:a', grants: 4, unused: 3 },
        { user: 'agent:d', grants: 3, unused: 1 },
        { user: 'agent:c', grants: 2, unused: 0 },
      ]
      const all = await ds.identityGrantStats(S, 'agent', { now: late.getTime(), cutoff, pageSize: 100 })
      expect(all).toEqual({ items: expected, next: '' })
      const paged = []
      let after: string | undefined
      do {
        const p = await ds.identityGrantStats(S, 'agent', { now: late.getTime(), cutoff, pageSize: 1, after })
        paged.push(...p.items)
        after = p.next || undefined
      } while (after)
      expect(paged).toEqual(expected)
      // Ties on the share are ordered by identity, across pages too.
      await w(['x', 'y'].map((id) => tuple(`doc:${id}`, 'reader', 'agent:e')), old)
      const tied = []
      after = undefined
      do {
        const p = await ds.identityGrantStats(S, 'agent', { now: late.getTime(), cutoff, pageSize: 1, after })
        tied.push(...p.items.map((i) => i.user))
        after = p.next || undefined
      } while (after)
      expect(tied).toEqual(['agent:b', 'agent:e', 'agent:a', 'agent:d', 'agent:c'])
    })

    it('forgets the usage of deleted grants after the retention period only', async () => {
      const kept = tuple('doc:1', 'reader', 'agent:a')
      const gone = tuple('doc:2', 'reader', 'agent:a')
      const goneRecently = tuple('doc:3', 'reader', 'agent:a')
      await ds.write(S, { writes: [kept, gone, goneRecently], deletes: [], onDuplicate: 'error', onMissing: 'error' }, new Date(T0))
      await ds.appendDecisions([], [use(kept, T0), use(gone, T0), use(goneRecently, T0 + 2 * DAY)])
      await ds.write(S, { writes: [], deletes: [gone, goneRecently], onDuplicate: 'error', onMissing: 'error' }, new Date(T0 + 1))
      expect(await ds.forgetGrantUsage(T0 + DAY, 100)).toBe(1)
      expect(await ds.forgetGrantUsage(T0 + DAY, 100)).toBe(0)
      // Written again: its usage from before the delete is gone; the recent one's is kept.
      await ds.write(S, { writes: [gone, goneRecently], deletes: [], onDuplicate: 'error', onMissing: 'error' }, new Date(T0 + 2))
      const page = await ds.listGrants(S, { type: 'agent', id: 'a', relation: '' }, { now: T0, pageSize: 10 })
      expect(page.items.map((g) => g.lastUsedAt)).toEqual([T0, null, T0 + 2 * DAY])
    })

    it('stores per-store settings', async () => {
      expect(await ds.getDecisionLogSettings(S)).toBeUndefined()
      await ds.putDecisionLogSettings(S, { enabled: false, sampleRate: 0.25, updatedAt: new Date(T0) })
      expect(await ds.getDecisionLogSettings(S)).toEqual({ enabled: false, sampleRate: 0.25, updatedAt: new Date(T0) })
      await ds.putDecisionLogSettings(S, { enabled: true, sampleRate: 1, updatedAt: new Date(T0 + 1) })
      expect(await ds.getDecisionLogSettings(S)).toEqual({ enabled: true, sampleRate: 1, updatedAt: new Date(T0 + 1) })
      expect(await ds.getDecisionLogSettings(OTHER)).toBeUndefined()
    })

    it('writes a large batch in one call', async () => {
      const batch = Array.from({ length: 1234 }, (_, i) => decision(i))
      const uses = batch.map((_, i) => use(tuple(`doc:${i % 300}`, 'reader', 'agent:a'), T0 + i))
      await ds.appendDecisions(batch, uses)
      expect(await allIds(ds, { pageSize: 100 })).toHaveLength(1234)
    })
  })
}

runAuditSuite('sqlite in memory', async () => new SqliteDatastore({ filename: ':memory:' }))
// On a file, batches are written from a worker thread with its own connection.
const dir = mkdtempSync(join(tmpdir(), 'pemba-audit-'))
let files = 0
runAuditSuite('sqlite file', async () => new SqliteDatastore({ filename: join(dir, `audit-${files++}.db`) }))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const target = await probePostgres()
describePostgres('audit datastore on postgres', target, () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(async () => {
    await schema?.drop()
  })
  runAuditSuite('postgres', async () => {
    const ds = await PostgresDatastore.open({ url: schema.url, poolSize: 4 })
    await schema.truncate()
    return ds
  })
})

describe('decision log on SQLite: filtered pages scan a bounded window', () => {
  it('answers a page after at most scanBudget rows, with a token to scan on, and misses nothing', async () => {
    const ds = new SqliteDatastore({ filename: ':memory:', decisionScanBudget: 5 })
    try {
      const audit = ds
      const batch = Array.from({ length: 30 }, (_, i) => decision(i + 1, { subject: i < 3 ? 'agent:rare' : 'agent:common' }))
      await audit.appendDecisions(batch, [])
      // The three rare decisions are the oldest: 27 newer rows stand before them.
      const first = await audit.listDecisions(S, { pageSize: 10, subject: 'agent:rare' })
      expect(first.items).toEqual([])
      expect(first.next).not.toBe('')
      const ids: string[] = []
      let after: string | undefined
      let pages = 0
      do {
        const page = await audit.listDecisions(S, { pageSize: 10, subject: 'agent:rare', after })
        ids.push(...page.items.map((d) => d.id))
        after = page.next || undefined
        pages++
      } while (after)
      expect(ids).toEqual(batch.slice(0, 3).map((d) => d.id).reverse())
      expect(pages).toBe(6)
    } finally {
      await ds.close()
    }
  })
})
