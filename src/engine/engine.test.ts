/**
 * The dispatcher loop on its own, over an in-memory reader: memoisation, in-flight sharing
 * under concurrency (no deadlock on mutual cycles), limits.
 */
import { transformer } from '@openfga/syntax-transformer'
import { describe, expect, it } from 'vitest'
import { parseSubject } from '../core/tuple.ts'
import { TypeSystem } from '../model/typesystem.ts'
import type { AuthorizationModelInput } from '../model/types.ts'
import { MemoryTupleReader, parseTuple } from '../../test/helpers/memory-reader.ts'
import { buildCheckDispatcher } from './build.ts'
import type { ResolutionContext } from './dispatch.ts'
import { listObjects } from './list-objects.ts'

function typesystem(dsl: string): TypeSystem {
  const m = transformer.transformDSLToJSONObject(dsl) as unknown as AuthorizationModelInput
  return new TypeSystem({ id: '01HZZZZZZZZZZZZZZZZZZZZZZZ', ...m })
}

function context(ts: TypeSystem, tuples: string[], concurrency: number, delayMs = 0): ResolutionContext {
  return {
    storeId: 's',
    revision: 1,
    typesystem: ts,
    reader: new MemoryTupleReader(tuples.map((t) => parseTuple(t)), delayMs),
    context: undefined,
    memo: new Map(),
    inflight: new Map(),
    concurrency,
    stats: { dispatches: 0, reads: 0 },
    deadline: 0,
    closures: new Map(),
    maxDepth: 25,
    now: Date.now(),
    validUntil: Number.POSITIVE_INFINITY,
  }
}

// `member` is more than a direct relation here, so group membership is walked down through the
// dispatcher (the upward userset closure does not apply); see the closure tests below.
const GROUPS = typesystem(`model
  schema 1.1
type user
type group
  relations
    define owner: [user]
    define member: [user, group#member] or owner
type document
  relations
    define viewer: [group#member] or editor
    define editor: [group#member]
`)

async function check(ctx: ResolutionContext, t: string, limits = { maxDepth: 25, maxDispatches: 10_000 }) {
  const key = parseTuple(t)
  const d = buildCheckDispatcher(limits)
  return d.dispatchCheck({
    objectType: key.objectType,
    objectId: key.objectId,
    relation: key.relation,
    subject: parseSubject(t.slice(t.indexOf('@') + 1))!,
    depth: 0,
    path: undefined,
    ctx,
  })
}

describe('dispatcher', () => {
  // Mutually nested groups reached from two sibling branches at once: with concurrent branches
  // each waits on the other's in-flight subproblem unless the waits-for test breaks the circle.
  const MUTUAL = [
    'document:d#viewer@group:a#member',
    'document:d#editor@group:b#member',
    'group:a#member@group:b#member',
    'group:b#member@group:a#member',
    'group:a#member@group:c#member',
    'group:b#member@group:c#member',
  ]

  for (const concurrency of [1, 4]) {
    it(`terminates on mutual cycles reached from sibling branches (concurrency ${concurrency})`, async () => {
      const ctx = context(GROUPS, MUTUAL, concurrency, concurrency > 1 ? 1 : 0)
      const denied = await Promise.race([
        check(ctx, 'document:d#viewer@user:x'),
        new Promise((_, reject) => setTimeout(() => reject(new Error('deadlock')), 5000)),
      ])
      expect(denied).toMatchObject({ allowed: false })
      const ctx2 = context(GROUPS, [...MUTUAL, 'group:c#member@user:x'], concurrency, concurrency > 1 ? 1 : 0)
      expect((await check(ctx2, 'document:d#viewer@user:x')).allowed).toBe(true)
      expect(ctx2.inflight.size).toBe(0)
    })
  }

  it('computes each subproblem once per request', async () => {
    const tuples = ['document:d#viewer@group:a#member', 'document:d#editor@group:a#member', 'group:a#member@group:b#member']
    const ctx = context(GROUPS, tuples, 1)
    await check(ctx, 'document:d#viewer@user:x')
    // group:a#member@user:x is reached twice (via viewer and via editor) but dispatched once.
    const dispatchesWithMemo = ctx.stats.dispatches
    expect(ctx.memo.has('group:a#member@user:x')).toBe(true)
    const again = await check(ctx, 'document:d#viewer@user:x')
    expect(again.allowed).toBe(false)
    expect(ctx.stats.dispatches).toBe(dispatchesWithMemo + 1)
  })

  it('enforces the dispatch budget', async () => {
    const tuples = Array.from({ length: 50 }, (_, i) => `document:d#viewer@group:g${i}#member`)
    const ctx = context(GROUPS, tuples, 1)
    await expect(check(ctx, 'document:d#viewer@user:x', { maxDepth: 25, maxDispatches: 10 })).rejects.toThrow(
      /too many rewrite rules/,
    )
  })

  it('decides recursive usersets by walking up from the subject, with fewer reads', async () => {
    const pure = typesystem(`model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type document
  relations
    define viewer: [group#member]
`)
    // A wide tree under group:root; the user is in one leaf group.
    const tuples = ['document:d#viewer@group:root#member']
    for (let i = 0; i < 40; i++) {
      tuples.push(`group:root#member@group:mid${i}#member`)
      for (let j = 0; j < 5; j++) tuples.push(`group:mid${i}#member@group:leaf${i}_${j}#member`)
    }
    tuples.push('group:leaf39_4#member@user:x')
    const up = context(pure, tuples, 1)
    expect((await check(up, 'document:d#viewer@user:x')).allowed).toBe(true)
    const down = context(GROUPS, tuples, 1)
    expect((await check(down, 'document:d#viewer@user:x')).allowed).toBe(true)
    expect(up.stats.reads).toBeLessThan(10)
    expect(down.stats.reads).toBeGreaterThan(100)
    const denied = context(pure, tuples, 1)
    expect((await check(denied, 'document:d#viewer@user:y')).allowed).toBe(false)
  })

  it('falls back to walking down when the walk up stops at the depth limit', async () => {
    const pure = typesystem(`model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
`)
    const chain = Array.from({ length: 30 }, (_, i) => `group:g${i}#member@group:g${i + 1}#member`)
    const ctx = context(pure, [...chain, 'group:g30#member@user:deep'], 1)
    await expect(check(ctx, 'group:g0#member@user:deep')).rejects.toThrow(/too many rewrite rules/)
    expect((await check(context(pure, [...chain, 'group:g30#member@user:deep'], 1), 'group:g10#member@user:deep')).allowed).toBe(true)
  })

  it('lists objects that agree with check', async () => {
    const tuples = [
      'document:d1#viewer@group:a#member',
      'document:d2#editor@group:b#member',
      'document:d3#viewer@group:z#member',
      'group:a#member@group:b#member',
      'group:b#member@user:x',
    ]
    const ctx = context(GROUPS, tuples, 1)
    const d = buildCheckDispatcher({ maxDepth: 25, maxDispatches: 10_000 })
    const r = await listObjects(d, {
      objectType: 'document',
      relation: 'viewer',
      subject: { type: 'user', id: 'x', relation: '' },
      ctx,
      maxResults: 0,
    })
    expect(r.objects.sort()).toEqual(['document:d1', 'document:d2'])
    expect(r.truncated).toBe('')
    const capped = await listObjects(d, {
      objectType: 'document',
      relation: 'viewer',
      subject: { type: 'user', id: 'x', relation: '' },
      ctx: context(GROUPS, tuples, 1),
      maxResults: 1,
    })
    expect(capped.objects).toHaveLength(1)
    expect(capped.truncated).toBe('max_results')
  })
})
