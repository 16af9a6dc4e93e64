/**
 * The bulk loader (TupleBulkLoader, src/store/sql/bulk.ts) against a real datastore: what it
 * writes, what it records in the changelog, what it leaves alone and what it reports, and that
 * the tuple index catches up through one large revision. Run for SQLite and PostgreSQL by
 * bulk-load.test.ts.
 */
import { describe, expect, it } from 'vitest'
import type { Tuple } from '../../src/core/tuple.ts'
import { TupleIndex } from '../../src/store/readers/tuple-index.ts'
import type { Datastore, TupleChange } from '../../src/store/store.ts'

export interface BulkLoadSuiteOptions {
  name: string
  /** A datastore over a fresh, empty database. */
  open(): Promise<Datastore>
}

const S = '01HBULKBULKBULKBULKBULKBUL'
const T0 = new Date('2026-01-01T00:00:00Z')
const NOW = T0.getTime()

function doc(i: number, user = `u${i % 97}`, extra: Partial<Tuple> = {}): Tuple {
  return {
    objectType: 'document',
    objectId: `d${i}`,
    relation: 'viewer',
    userType: 'user',
    userId: user,
    userRelation: '',
    conditionName: '',
    conditionContext: undefined,
    ...extra,
  }
}

/** Every changelog entry of the store, in feed order. */
async function allChanges(ds: Datastore): Promise<TupleChange[]> {
  const out: TupleChange[] = []
  let after: string | undefined
  for (;;) {
    const page = await ds.readChanges(S, { after, pageSize: 1000 })
    out.push(...page.items)
    if (page.items.length < 1000) return out
    after = page.next
  }
}

/** Every stored tuple of the store, as `document:d1#viewer@user:u1|condition|context|expiry`. */
async function allTuples(ds: Datastore): Promise<string[]> {
  const out: string[] = []
  let after: string | undefined
  do {
    const page = await ds.read(S, {}, { pageSize: 1000, after }, 0)
    for (const t of page.items) {
      out.push(`${t.objectType}:${t.objectId}#${t.relation}@${t.userType}:${t.userId}${t.userRelation ? `#${t.userRelation}` : ''}` +
        `|${t.conditionName}|${JSON.stringify(t.conditionContext ?? null)}|${t.expiresAt ?? ''}`)
    }
    after = page.next || undefined
  } while (after)
  return out.sort()
}

export function runBulkLoadSuite(o: BulkLoadSuiteOptions): void {
  describe(`bulk load: ${o.name}`, () => {
    async function fresh(): Promise<Datastore> {
      const ds = await o.open()
      await ds.createStore(S, 'bulk', T0)
      return ds
    }

    it('writes a load as one revision, one changelog entry per tuple', async () => {
      const ds = await fresh()
      try {
        // 1,234: whole multi-row statements and a remainder on SQLite.
        const tuples = Array.from({ length: 1234 }, (_, i) => doc(i))
        tuples[7] = doc(7, 'u7', { conditionName: 'in_hours', conditionContext: { tz: 'Europe/Zurich\ttab' } })
        tuples[8] = doc(8, 'back\\slash\nnewline', { expiresAt: NOW + 3_600_000 })
        const result = await ds.loadTuples(S, tuples, T0)
        expect(result).toEqual({ revision: 1, written: 1234, unchanged: 0, conflicts: [] })
        expect(await ds.headRevision(S)).toBe(1)
        const changes = await allChanges(ds)
        expect(changes).toHaveLength(1234)
        expect(new Set(changes.map((c) => c.revision))).toEqual(new Set([1]))
        expect(changes.map((c) => c.seq).sort((a, b) => a - b)).toEqual(tuples.map((_, i) => i))
        expect(changes.every((c) => c.operation === 'write' && c.timestamp.getTime() === NOW)).toBe(true)
        const byObject = new Map(changes.map((c) => [c.objectId, c]))
        expect(byObject.get('d7')).toMatchObject({ user: 'user:u7', conditionName: 'in_hours', conditionContext: { tz: 'Europe/Zurich\ttab' } })
        expect(byObject.get('d8')).toMatchObject({ user: 'user:back\\slash\nnewline', expiresAt: NOW + 3_600_000 })
        const stored = await allTuples(ds)
        expect(stored).toHaveLength(1234)
        expect(stored).toContain('document:d7#viewer@user:u7|in_hours|{"tz":"Europe/Zurich\\ttab"}|')
        expect(stored).toContain(`document:d8#viewer@user:back\\slash\nnewline||null|${NOW + 3_600_000}`)
      } finally {
        await ds.close()
      }
    })

    it('loads again identically as nothing: no write, no revision, no changelog entry', async () => {
      const ds = await fresh()
      try {
        const tuples = Array.from({ length: 600 }, (_, i) => doc(i, `u${i}`, i % 3 === 0 ? { expiresAt: NOW + 60_000 } : {}))
        await ds.loadTuples(S, tuples, T0)
        const before = await allTuples(ds)
        const again = await ds.loadTuples(S, tuples, new Date(NOW + 1000))
        expect(again).toEqual({ revision: 1, written: 0, unchanged: 600, conflicts: [] })
        expect(await ds.headRevision(S)).toBe(1)
        expect(await allChanges(ds)).toHaveLength(600)
        expect(await allTuples(ds)).toEqual(before)
      } finally {
        await ds.close()
      }
    })

    it('writes the new tuples of a load, skips the stored ones and reports each conflict by index', async () => {
      const ds = await fresh()
      try {
        await ds.loadTuples(S, [doc(1), doc(2), doc(3, 'u3', { expiresAt: NOW + 60_000 }), doc(4, 'u4', { conditionName: 'c', conditionContext: { a: 1 } })], T0)
        const load = [
          ...Array.from({ length: 300 }, (_, i) => doc(100 + i)), // new
          doc(1), // stored identically
          doc(2, 'u2', { conditionName: 'c' }), // stored without the condition
          doc(3, 'u3', { expiresAt: NOW + 120_000 }), // stored with another expiry
          doc(4, 'u4', { conditionName: 'c', conditionContext: { a: 2 } }), // another context
          doc(100), // repeats index 0 identically
          doc(101, 'u4', { conditionName: 'c' }), // repeats index 1 with a condition
          doc(500), // new
        ]
        const result = await ds.loadTuples(S, load, new Date(NOW + 1))
        expect(result).toEqual({
          revision: 2,
          written: 301,
          unchanged: 2,
          conflicts: [
            { index: 301, reason: 'different_condition' },
            { index: 302, reason: 'different_expiry' },
            { index: 303, reason: 'different_condition' },
            { index: 305, reason: 'different_condition' },
          ],
        })
        const stored = await allTuples(ds)
        expect(stored).toHaveLength(4 + 301)
        expect(stored).toContain('document:d2#viewer@user:u2||null|')
        expect(stored).toContain(`document:d3#viewer@user:u3||null|${NOW + 60_000}`)
        expect(stored).toContain('document:d4#viewer@user:u4|c|{"a":1}|')
        expect(stored).toContain('document:d101#viewer@user:u4||null|')
        const written = (await allChanges(ds)).filter((c) => c.revision === 2)
        expect(written).toHaveLength(301)
        expect(new Set(written.map((c) => c.objectId)).size).toBe(301)
      } finally {
        await ds.close()
      }
    })

    it('sorts out stored, expired and repeated keys in the middle of a large load', async () => {
      const ds = await fresh()
      try {
        await ds.loadTuples(S, [doc(1), doc(2), doc(3, 'u3', { expiresAt: NOW + 1000 })], T0)
        // SQLite inserts 250 rows a statement: these land inside one, which then inserts only some.
        const load = Array.from({ length: 600 }, (_, i) => doc(1000 + i))
        load[10] = doc(1) // stored identically
        load[20] = doc(2, 'u2', { conditionName: 'c' }) // stored without the condition
        load[30] = doc(3, 'u3', { conditionName: 'c' }) // stored, expired: replaced
        load[31] = doc(3, 'u3', { conditionName: 'c' }) // repeats the replacement
        load[40] = doc(1000 + 5) // repeats index 5, in the same statement
        load[41] = doc(1000 + 6, 'other') // another user: a new tuple
        load[42] = doc(1000 + 7, undefined, { conditionName: 'c' }) // repeats index 7 with a condition
        load[260] = doc(1000 + 8) // repeats index 8, in the next statement
        const result = await ds.loadTuples(S, load, new Date(NOW + 5000))
        expect(result.conflicts).toEqual([
          { index: 20, reason: 'different_condition' },
          { index: 42, reason: 'different_condition' },
        ])
        expect(result).toMatchObject({ revision: 2, written: 600 - 6, unchanged: 4 })
        const changes = (await allChanges(ds)).filter((c) => c.revision === 2)
        expect(changes.filter((c) => c.operation === 'write')).toHaveLength(594)
        expect(changes.filter((c) => c.operation === 'delete').map((c) => c.objectId)).toEqual(['d3'])
        expect(new Set(changes.map((c) => c.seq)).size).toBe(595)
        const stored = await allTuples(ds)
        // d1, d2 and every tuple written (d3 among them)
        expect(stored).toHaveLength(2 + 594)
        expect(stored).toContain('document:d3#viewer@user:u3|c|null|')
        expect(stored).toContain('document:d1007#viewer@user:u37||null|')
        expect(stored).toContain('document:d1006#viewer@user:other||null|')
      } finally {
        await ds.close()
      }
    })

    it('replaces an expired row not yet swept, recording its removal first', async () => {
      const ds = await fresh()
      try {
        await ds.loadTuples(S, [doc(1, 'u1', { expiresAt: NOW + 1000 }), doc(2)], T0)
        const later = new Date(NOW + 5000)
        const result = await ds.loadTuples(S, [doc(1, 'u1', { conditionName: 'c' }), doc(1, 'u1', { conditionName: 'c' }), doc(3)], later)
        expect(result).toEqual({ revision: 2, written: 2, unchanged: 1, conflicts: [] })
        const changes = (await allChanges(ds)).filter((c) => c.revision === 2)
        const d1 = changes.filter((c) => c.objectId === 'd1')
        expect(d1.map((c) => c.operation)).toEqual(['delete', 'write'])
        expect(d1[0].seq).toBeLessThan(d1[1].seq)
        expect(d1[1]).toMatchObject({ conditionName: 'c' })
        expect(d1[1].expiresAt).toBeUndefined()
        expect(changes).toHaveLength(3)
        expect(await allTuples(ds)).toContain('document:d1#viewer@user:u1|c|null|')
      } finally {
        await ds.close()
      }
    })

    it('refuses a store that does not exist, and loads nothing as nothing', async () => {
      const ds = await fresh()
      try {
        await expect(ds.loadTuples('01HNOSUCHSTORENOSUCHSTORE0', [doc(1)], T0)).rejects.toMatchObject({ code: 'store_id_not_found' })
        expect(await ds.loadTuples(S, [], T0)).toEqual({ revision: 0, written: 0, unchanged: 0, conflicts: [] })
        expect(await ds.headRevision(S)).toBe(0)
      } finally {
        await ds.close()
      }
    })

    it('a live tuple index catches up through one revision larger than its pages', async () => {
      const ds = await fresh()
      try {
        await ds.loadTuples(S, [doc(0, 'anne')], T0)
        const index = new TupleIndex({ datastore: ds, maxTuples: 100_000, pageSize: 100 })
        expect(await index.ready(S)).toBe(true)
        const tuples = Array.from({ length: 2500 }, (_, i) => doc(i + 1, `u${i % 50}`))
        const { revision } = await ds.loadTuples(S, tuples, T0)
        const reader = await index.reader(S, revision, NOW)
        expect(reader).toBeDefined()
        expect(index.stats()).toMatchObject({ tuples: 2501, changesApplied: 2500, catchUps: 1 })
        const direct = ds.reader(S, revision, NOW)
        for (const i of [1, 777, 2500]) {
          const want = await direct.readObjectRelation('document', `d${i}`, 'viewer')
          expect(await reader!.readObjectRelation('document', `d${i}`, 'viewer')).toEqual(want)
          expect(want).toHaveLength(1)
        }
        const u7 = await reader!.readStartingWithUser('document', 'viewer', [{ type: 'user', id: 'u7', relation: '' }])
        expect(u7).toHaveLength(50)
      } finally {
        await ds.close()
      }
    })
  })
}
