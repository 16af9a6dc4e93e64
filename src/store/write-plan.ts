/**
 * The write rules, once, as pure functions: given a request and what the store holds for the
 * tuples it names, which rows to remove, which to insert, and which changelog entries to record,
 * in order. The SQL core (sql/tuples.ts) reads the stored state, asks the planner, and applies
 * the plan in one transaction; both dialects so answer alike, tuple for tuple.
 *
 * The outcome, including which tuple an error names, is that of applying the changes one by one
 * in request order: deletes first, then writes. A delete and a write of `doc:1#viewer@user:anne`
 * in one request re-create the tuple; a second delete of it finds nothing; a second write of it
 * meets the first.
 *
 * @module
 */
import { TupleWriteRejected } from '../core/errors.ts'
import { describeTuple, type Tuple, type TupleIdentity } from '../core/tuple.ts'
import { canonicalContext } from './common.ts'
import type { WriteRequest } from './ports.ts'

/** What the store holds under one tuple key: its condition and expiry, as stored. */
export interface StoredState {
  conditionName: string
  /** The canonical context text (canonicalContext), null when there is none. */
  context: string | null
  /** ms since the epoch; null = never. */
  expiresAt: number | null
}

/**
 * One planned change: a row removed and its delete recorded, or a row inserted and its write
 * recorded (with the condition and expiry it is stored with). A change's position in its plan
 * is its `seq` in the changelog.
 */
export interface PlannedChange {
  operation: 'write' | 'delete'
  tuple: TupleIdentity
  /** '' on a delete. */
  conditionName: string
  /** null on a delete. */
  context: string | null
  /** null on a delete, and on a write of a tuple that never expires. */
  expiresAt: number | null
}

/** tupleKey is a tuple's key as one string; SQL text cannot hold NUL, so NUL separates. */
export function tupleKey(t: TupleIdentity): string {
  return `${t.objectType}\0${t.objectId}\0${t.relation}\0${t.userRelation}\0${t.userType}\0${t.userId}`
}

/** isLive: a stored tuple still counts at `now`; an expired one is gone, swept or not. */
export function isLive(s: StoredState, now: number): boolean {
  return s.expiresAt === null || s.expiresAt > now
}

/** deleteChange is the changelog entry of removing `t` (what the sweeper records too). */
export function deleteChange(t: TupleIdentity): PlannedChange {
  return { operation: 'delete', tuple: t, conditionName: '', context: null, expiresAt: null }
}

/**
 * The stored state the planner reads, as the store held it before the request: either by
 * tupleKey (a driver that fetches rows in batches), or per request tuple, `deletes[i]` and
 * `writes[i]` being the state of `req.deletes[i]` and `req.writes[i]` (a driver that looks rows
 * up one by one: no key is built per stored row). Per tuple, an entry may be left undefined
 * (absent) for a tuple whose key an earlier change of the same request decides (a delete that
 * found it live, or a write): the planner then reads its own record of that change.
 */
export type StoredLookup = ReadonlyMap<string, StoredState> | StoredByTuple

/** The stored state per request tuple (see StoredLookup). */
export interface StoredByTuple {
  readonly deletes: readonly (StoredState | undefined)[]
  readonly writes: readonly (StoredState | undefined)[]
}

/**
 * planWrite applies the write rules to `req` against `stored` (the state of every key the
 * request names that the store holds; see StoredLookup) at `now`, and returns the changes in
 * changelog order; none means nothing changes (no new revision). Throws TupleWriteRejected:
 *
 * - `delete_missing`: a delete of a tuple that is absent, expired, or already deleted earlier in
 *   the request, under `onMissing: 'error'` (ignored otherwise);
 * - `write_existing`: a write of a live tuple (stored, or written earlier in the request), under
 *   `onDuplicate: 'error'`;
 * - `different_condition` / `different_expiry`: under `onDuplicate: 'ignore'`, the live tuple has
 *   another condition (name or context) or another expiry; an identical one is skipped.
 *
 * A write over an expired tuple not yet swept is a new tuple: the old row's removal is recorded
 * first, as the sweeper would have, so the changelog stays a true history.
 *
 * The request's own effect is tracked by tupleKey. Over a StoredByTuple lookup a tuple's key is
 * built only when that effect is not empty or the tuple changes something: a re-import of
 * tuples all stored and identical builds none.
 *
 * `writesAbsent` says the caller found every write's key empty at its turn, applying the request
 * in order (SQLite's driver inserts each with `INSERT OR IGNORE` before planning, and every one
 * went in): no write meets a stored row, live or expired, nor an earlier write of its key. Each
 * write then plans as a plain write whatever the deletes did, so none needs its key built and
 * looked up: the plan is the same, at no cost per tuple for a bulk import of new tuples.
 */
export function planWrite(req: WriteRequest, stored: StoredLookup, now: number, writesAbsent = false): PlannedChange[] {
  /** The request's own effect so far, over `stored`: GONE = deleted, a change = written. */
  const state = new Map<string, StoredState>()
  const keyed = stored instanceof Map ? (stored as ReadonlyMap<string, StoredState>) : undefined
  const byTuple = stored as StoredByTuple
  const changes: PlannedChange[] = []
  const { deletes, writes } = req
  for (let i = 0; i < deletes.length; i++) {
    const d = deletes[i]
    const key = keyed || state.size > 0 ? tupleKey(d) : undefined
    const found = key === undefined ? byTuple.deletes[i] : current(state, keyed ? keyed.get(key) : byTuple.deletes[i], key)
    if (!found || !isLive(found, now)) {
      // An expired row counts as missing: it is already gone, and the sweeper records it.
      if (req.onMissing === 'error') throw new TupleWriteRejected('delete_missing', d)
      continue
    }
    state.set(key ?? tupleKey(d), GONE)
    changes.push(deleteChange(d))
  }
  if (writesAbsent) {
    for (const w of writes) {
      const context = canonicalContext(w.conditionContext)
      changes.push({ operation: 'write', tuple: w, conditionName: w.conditionName, context, expiresAt: w.expiresAt ?? null })
    }
    return changes
  }
  for (let i = 0; i < writes.length; i++) {
    const w = writes[i]
    const key = keyed || state.size > 0 ? tupleKey(w) : undefined
    const context = canonicalContext(w.conditionContext)
    const expiresAt = w.expiresAt ?? null
    const found = key === undefined ? byTuple.writes[i] : current(state, keyed ? keyed.get(key) : byTuple.writes[i], key)
    if (found && !isLive(found, now)) {
      changes.push(deleteChange(w))
    } else if (found) {
      if (req.onDuplicate === 'error') throw new TupleWriteRejected('write_existing', w)
      if (found.conditionName !== w.conditionName || found.context !== context) {
        throw new TupleWriteRejected('different_condition', w)
      }
      if (found.expiresAt !== expiresAt) throw new TupleWriteRejected('different_expiry', w)
      continue
    }
    // The change is also the key's state for a later write of it in this request.
    const change: PlannedChange = { operation: 'write', tuple: w, conditionName: w.conditionName, context, expiresAt }
    state.set(key ?? tupleKey(w), change)
    changes.push(change)
  }
  return changes
}

/** The state of a key the request deleted. */
const GONE: StoredState = Object.freeze({ conditionName: '', context: null, expiresAt: null })

/**
 * current: what `key` holds at this point of the request, its own effect (`state`) over
 * `before` (the key's stored state). A function, not a closure in planWrite: none is made per
 * Write.
 */
function current(state: ReadonlyMap<string, StoredState>, before: StoredState | undefined, key: string): StoredState | undefined {
  const s = state.get(key)
  return s === undefined ? before : s === GONE ? undefined : s
}

/**
 * What granting a just-in-time request's tuple comes to: a conflict (the tuple exists with a
 * condition: replacing it would drop the condition, keeping it would not grant what was
 * approved), nothing to do (it already lasts at least as long), or the changes to make.
 */
export type GrantPlan =
  | { kind: 'conflict'; conflict: string }
  | { kind: 'unchanged' }
  | { kind: 'changes'; changes: PlannedChange[] }

/**
 * planGrant: the JIT grant of `t` (unconditioned, with its `expiresAt`) over `stored` at `now`.
 * Absent, or expired and not yet swept: written (an expired row's removal recorded first).
 * Present without a condition: its expiry becomes the later of the two (an unexpiring tuple
 * stays as it is), recorded as a delete and a write so a feed consumer sees the new expiry.
 */
export function planGrant(stored: StoredState | undefined, t: Tuple, now: number): GrantPlan {
  const expiresAt = t.expiresAt ?? null
  if (stored && isLive(stored, now)) {
    if (stored.conditionName !== '' || stored.context !== null) {
      return { kind: 'conflict', conflict: `${describeTuple(t)} already exists with a condition` }
    }
    if (stored.expiresAt === null || (expiresAt !== null && stored.expiresAt >= expiresAt)) {
      return { kind: 'unchanged' }
    }
  }
  const write: PlannedChange = { operation: 'write', tuple: t, conditionName: '', context: null, expiresAt }
  return { kind: 'changes', changes: stored ? [deleteChange(t), write] : [write] }
}
