import { describe, expect, it } from 'vitest'
import { TupleWriteRejected } from '../core/errors.ts'
import type { Tuple, TupleIdentity } from '../core/tuple.ts'
import type { WriteRequest } from './ports.ts'
import { planGrant, planWrite as plan, tupleKey, type PlannedChange, type StoredByTuple, type StoredState } from './write-plan.ts'

const NOW = 1_000_000

/** `doc:1#viewer@user:anne` as a tuple, optionally with a condition and an expiry. */
function t(key: string, extra: Partial<Tuple> = {}): Tuple {
  const [head, user] = key.split('@')
  const [object, relation] = head.split('#')
  const [objectType, objectId] = object.split(':')
  const [u, userRelation = ''] = user.split('#')
  const [userType, userId] = u.split(':')
  return { objectType, objectId, relation, userType, userId, userRelation, conditionName: '', conditionContext: undefined, ...extra }
}

function req(over: Partial<WriteRequest>): WriteRequest {
  return { deletes: [], writes: [], onMissing: 'error', onDuplicate: 'error', ...over }
}

function stored(entries: [string, Partial<StoredState>][]): Map<string, StoredState> {
  return new Map(
    entries.map(([k, s]) => [tupleKey(t(k)), { conditionName: '', context: null, expiresAt: null, ...s }]),
  )
}

/**
 * The request's stored state per tuple (StoredByTuple), from `s`: every entry filled, and, when
 * the keyed plan `changed` is known, also with the entries left undefined that an earlier change
 * of the request decides (as SQLite's driver leaves them: a write after a delete that found its
 * key live, or after a write of its key that went in).
 */
function perTuple(r: WriteRequest, s: Map<string, StoredState>, changed?: PlannedChange[]): StoredByTuple[] {
  const full = { deletes: r.deletes.map((d) => s.get(tupleKey(d))), writes: r.writes.map((w) => s.get(tupleKey(w))) }
  if (!changed) return [full]
  const changedTuples = new Set(changed.map((c) => c.tuple))
  const decided = new Set<string>()
  const sparse = (list: readonly TupleIdentity[]) =>
    list.map((t) => {
      const key = tupleKey(t)
      const state = decided.has(key) ? undefined : s.get(key)
      if (changedTuples.has(t)) decided.add(key)
      return state
    })
  // In request order: the deletes first, whose changes decide later writes of their keys.
  const deletes = sparse(r.deletes)
  return [full, { deletes, writes: sparse(r.writes) }]
}

/**
 * planWrite over a keyed lookup, checked to plan the same (or reject the same tuple for the same
 * reason) over every per-tuple lookup of the same state.
 */
function planWrite(r: WriteRequest, s: Map<string, StoredState>, now: number, writesAbsent = false): PlannedChange[] {
  let keyed: PlannedChange[]
  try {
    keyed = plan(r, s, now, writesAbsent)
  } catch (e) {
    const expected = rejection(() => {
      throw e
    })
    for (const byTuple of perTuple(r, s)) expect(rejection(() => plan(r, byTuple, now, writesAbsent))).toEqual(expected)
    throw e
  }
  for (const byTuple of perTuple(r, s, keyed)) expect(plan(r, byTuple, now, writesAbsent)).toEqual(keyed)
  return keyed
}

/** A plan as `op key` strings, e.g. `delete doc:1#viewer@user:anne`. */
function ops(changes: PlannedChange[]): string[] {
  return changes.map((c) => {
    const u = c.tuple.userRelation ? `${c.tuple.userType}:${c.tuple.userId}#${c.tuple.userRelation}` : `${c.tuple.userType}:${c.tuple.userId}`
    return `${c.operation} ${c.tuple.objectType}:${c.tuple.objectId}#${c.tuple.relation}@${u}`
  })
}

function rejection(fn: () => unknown): { reason: string; key: string } {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(TupleWriteRejected)
    const r = e as TupleWriteRejected
    return { reason: r.reason, key: tupleKey(r.tuple) }
  }
  throw new Error('expected a rejection')
}

const ANNE = 'doc:1#viewer@user:anne'
const BOB = 'doc:1#viewer@user:bob'

describe('planWrite', () => {
  it('plans deletes first, then writes, in request order', () => {
    const plan = planWrite(req({ deletes: [t(BOB)], writes: [t(ANNE), t('doc:2#viewer@group:eng#member')] }), stored([[BOB, {}]]), NOW)
    expect(ops(plan)).toEqual(['delete doc:1#viewer@user:bob', 'write doc:1#viewer@user:anne', 'write doc:2#viewer@group:eng#member'])
  })

  it('re-creates a tuple deleted and written in one request', () => {
    const plan = planWrite(req({ deletes: [t(ANNE)], writes: [t(ANNE)] }), stored([[ANNE, {}]]), NOW)
    expect(ops(plan)).toEqual([`delete ${ANNE}`, `write ${ANNE}`])
  })

  it('finds nothing on a second delete of one tuple', () => {
    const twice = req({ deletes: [t(ANNE), t(ANNE)] })
    expect(rejection(() => planWrite(twice, stored([[ANNE, {}]]), NOW))).toEqual({ reason: 'delete_missing', key: tupleKey(t(ANNE)) })
    expect(ops(planWrite({ ...twice, onMissing: 'ignore' }, stored([[ANNE, {}]]), NOW))).toEqual([`delete ${ANNE}`])
  })

  it('refuses or ignores a missing delete per onMissing', () => {
    expect(rejection(() => planWrite(req({ deletes: [t(ANNE)] }), new Map(), NOW)).reason).toBe('delete_missing')
    expect(planWrite(req({ deletes: [t(ANNE)], onMissing: 'ignore' }), new Map(), NOW)).toEqual([])
  })

  it('counts an expired tuple as missing for a delete, and as absent for a write', () => {
    const expired = stored([[ANNE, { expiresAt: NOW }]])
    expect(rejection(() => planWrite(req({ deletes: [t(ANNE)] }), expired, NOW)).reason).toBe('delete_missing')
    // The write replaces it, recording the old row's removal first.
    const plan = planWrite(req({ deletes: [t(ANNE)], writes: [t(ANNE)], onMissing: 'ignore' }), expired, NOW)
    expect(ops(plan)).toEqual([`delete ${ANNE}`, `write ${ANNE}`])
    expect(plan[0]).toMatchObject({ conditionName: '', context: null, expiresAt: null })
    // One millisecond before its expiry it is still there.
    expect(rejection(() => planWrite(req({ writes: [t(ANNE)] }), expired, NOW - 1)).reason).toBe('write_existing')
  })

  it('refuses a duplicate write per onDuplicate, stored or written earlier in the request', () => {
    expect(rejection(() => planWrite(req({ writes: [t(ANNE)] }), stored([[ANNE, {}]]), NOW)).reason).toBe('write_existing')
    const twice = req({ writes: [t(BOB), t(ANNE), t(ANNE)] })
    expect(rejection(() => planWrite(twice, new Map(), NOW))).toEqual({ reason: 'write_existing', key: tupleKey(t(ANNE)) })
    expect(ops(planWrite({ ...twice, onDuplicate: 'ignore' }, new Map(), NOW))).toEqual([`write ${BOB}`, `write ${ANNE}`])
  })

  it('ignores an identical duplicate, and conflicts on another condition or expiry', () => {
    const withCondition = t(ANNE, { conditionName: 'c', conditionContext: { x: 1 } })
    const s = stored([[ANNE, { conditionName: 'c', context: '{"x":1}', expiresAt: NOW + 10 }]])
    const ignore = (w: Tuple) => planWrite(req({ writes: [w], onDuplicate: 'ignore' }), s, NOW)
    expect(ignore({ ...withCondition, expiresAt: NOW + 10 })).toEqual([])
    expect(rejection(() => ignore({ ...withCondition, conditionContext: { x: 2 }, expiresAt: NOW + 10 })).reason).toBe('different_condition')
    expect(rejection(() => ignore({ ...t(ANNE), expiresAt: NOW + 10 })).reason).toBe('different_condition')
    expect(rejection(() => ignore(withCondition)).reason).toBe('different_expiry')
    expect(rejection(() => ignore({ ...withCondition, expiresAt: NOW + 20 })).reason).toBe('different_expiry')
  })

  it('skips a re-import of stored, identical tuples', () => {
    const s = stored([[ANNE, {}], [BOB, { conditionName: 'c', context: '{"x":1}' }]])
    const again = req({ writes: [t(ANNE), t(BOB, { conditionName: 'c', conditionContext: { x: 1 } }), t(ANNE)], onDuplicate: 'ignore' })
    expect(planWrite(again, s, NOW)).toEqual([])
  })

  it('treats an empty condition context as none', () => {
    const s = stored([[ANNE, { conditionName: 'c' }]])
    expect(planWrite(req({ writes: [t(ANNE, { conditionName: 'c', conditionContext: {} })], onDuplicate: 'ignore' }), s, NOW)).toEqual([])
    const [w] = planWrite(req({ writes: [t(BOB, { conditionName: 'c', conditionContext: {} })] }), s, NOW)
    expect(w).toMatchObject({ operation: 'write', conditionName: 'c', context: null, expiresAt: null })
  })

  it('plans the write with its canonical context and expiry', () => {
    const [w] = planWrite(req({ writes: [t(ANNE, { conditionName: 'c', conditionContext: { a: [1] }, expiresAt: NOW + 5 })] }), new Map(), NOW)
    expect(w).toMatchObject({ operation: 'write', conditionName: 'c', context: '{"a":[1]}', expiresAt: NOW + 5 })
  })

  it('plans the same without per-write keys when every write is known absent', () => {
    // Requests whose writes all meet an empty key at their turn: the premise of writesAbsent.
    const cases: [WriteRequest, Map<string, StoredState>][] = [
      [req({ writes: [t(ANNE), t(BOB, { conditionName: 'c', conditionContext: { a: 1 }, expiresAt: NOW + 5 })] }), new Map()],
      [req({ deletes: [t(ANNE)], writes: [t(ANNE), t(BOB)] }), stored([[ANNE, { conditionName: 'c' }]])],
      [req({ deletes: [t(BOB), t(ANNE)], writes: [t(ANNE)], onMissing: 'ignore' }), stored([[ANNE, {}]])],
    ]
    for (const [r, s] of cases) {
      const fast = planWrite(r, s, NOW, true)
      expect(fast).toEqual(planWrite(r, s, NOW))
      expect(fast.map((c) => c.operation)).toContain('write')
    }
    // The deletes keep their rules.
    const missing = req({ deletes: [t(BOB)], writes: [t(ANNE)] })
    expect(rejection(() => planWrite(missing, new Map(), NOW, true))).toEqual({ reason: 'delete_missing', key: tupleKey(t(BOB)) })
  })
})

describe('planGrant', () => {
  const grant = (expiresAt?: number) => t(ANNE, expiresAt === undefined ? {} : { expiresAt })

  it('writes an absent tuple, unconditioned, with its expiry', () => {
    const plan = planGrant(undefined, grant(NOW + 100), NOW)
    expect(plan).toEqual({ kind: 'changes', changes: [expect.objectContaining({ operation: 'write', conditionName: '', context: null, expiresAt: NOW + 100 })] })
  })

  it('replaces an expired tuple not yet swept, recording its removal', () => {
    const plan = planGrant({ conditionName: 'c', context: '{}', expiresAt: NOW }, grant(NOW + 100), NOW)
    expect(plan.kind === 'changes' && ops(plan.changes)).toEqual([`delete ${ANNE}`, `write ${ANNE}`])
  })

  it('keeps the later expiry; an unexpiring tuple stays as it is', () => {
    expect(planGrant({ conditionName: '', context: null, expiresAt: null }, grant(NOW + 100), NOW)).toEqual({ kind: 'unchanged' })
    expect(planGrant({ conditionName: '', context: null, expiresAt: NOW + 100 }, grant(NOW + 100), NOW)).toEqual({ kind: 'unchanged' })
    expect(planGrant({ conditionName: '', context: null, expiresAt: NOW + 200 }, grant(NOW + 100), NOW)).toEqual({ kind: 'unchanged' })
    const longer = planGrant({ conditionName: '', context: null, expiresAt: NOW + 100 }, grant(NOW + 200), NOW)
    expect(longer.kind === 'changes' && longer.changes.map((c) => [c.operation, c.expiresAt])).toEqual([
      ['delete', null],
      ['write', NOW + 200],
    ])
    const forever = planGrant({ conditionName: '', context: null, expiresAt: NOW + 100 }, grant(), NOW)
    expect(forever.kind === 'changes' && forever.changes.map((c) => c.expiresAt)).toEqual([null, null])
  })

  it('refuses to replace a live tuple with a condition', () => {
    const conflict = { kind: 'conflict', conflict: "user: 'user:anne', relation: 'viewer', object: 'doc:1' already exists with a condition" }
    expect(planGrant({ conditionName: 'c', context: null, expiresAt: null }, grant(NOW + 100), NOW)).toEqual(conflict)
    expect(planGrant({ conditionName: '', context: '{"x":1}', expiresAt: NOW + 1 }, grant(NOW + 100), NOW)).toEqual(conflict)
  })
})
