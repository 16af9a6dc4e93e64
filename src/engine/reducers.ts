/**
 * The set operators over lazily evaluated branches. Each branch is a thunk so that a union can
 * stop at the first `true` and an intersection at the first `false` without starting the rest.
 * Errors (a condition missing a parameter, the depth limit) only surface when no other branch
 * decides the answer: `a or b` is true if b is true even when a errs. The request's deadline and
 * its client leaving are not a branch's errors: they end the whole evaluation at once.
 *
 * @module
 */
import type { Tuple } from '../core/tuple.ts'
import { DENIED, NO_CYCLE, allowedBy, type CheckResult } from './dispatch.ts'
import { stopsRequest } from './limits.ts'

export type Branch = () => Promise<CheckResult>

type Settled = { ok: true; r: CheckResult } | { ok: false; e: unknown }

async function settle(b: Branch): Promise<Settled> {
  try {
    return { ok: true, r: await b() }
  } catch (e) {
    // The deadline or a departed client ends the request, not just this branch.
    if (stopsRequest(e)) throw e
    return { ok: false, e }
  }
}

/**
 * evaluate runs the branches with at most `concurrency` in flight and stops starting new ones
 * once `decided` says the result is known.
 */
async function evaluate(
  branches: Branch[],
  concurrency: number,
  decided: (s: Settled) => boolean,
): Promise<Settled[]> {
  const results: Settled[] = []
  if (concurrency <= 1 || branches.length <= 1) {
    for (const b of branches) {
      const s = await settle(b)
      results.push(s)
      if (decided(s)) break
    }
    return results
  }
  let next = 0
  let done = false
  const worker = async () => {
    while (!done && next < branches.length) {
      const s = await settle(branches[next++])
      results.push(s)
      if (decided(s)) done = true
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, branches.length) }, worker))
  return results
}

/** union: true as soon as any branch is; otherwise the first error; otherwise false. */
export async function union(branches: Branch[], concurrency: number): Promise<CheckResult> {
  if (concurrency <= 1 || branches.length <= 1) return unionOver(branches, run)
  const results = await evaluate(branches, concurrency, (s) => s.ok && s.r.allowed)
  let cycleAt = NO_CYCLE
  let error: Settled | undefined
  for (const s of results) {
    if (s.ok) {
      if (s.r.allowed) return s.r
      cycleAt = Math.min(cycleAt, s.r.cycleAt)
    } else error ??= s
  }
  if (error && !error.ok) throw error.e
  return cycleAt === NO_CYCLE ? DENIED : { allowed: false, cycleAt }
}

const run = (b: Branch) => b()

/**
 * unionOver is `union` one item at a time over `items`, each evaluated by `evaluate`: the
 * common case (SQLite, the tuple index), without a thunk or a settled record per branch.
 */
export async function unionOver<T>(items: readonly T[], evaluate: (item: T) => Promise<CheckResult>): Promise<CheckResult> {
  let cycleAt = NO_CYCLE
  let failed = false
  let error: unknown
  for (const item of items) {
    let r: CheckResult
    try {
      r = await evaluate(item)
    } catch (e) {
      if (stopsRequest(e)) throw e
      if (!failed) {
        failed = true
        error = e
      }
      continue
    }
    if (r.allowed) return r
    if (r.cycleAt < cycleAt) cycleAt = r.cycleAt
  }
  if (failed) throw error
  return cycleAt === NO_CYCLE ? DENIED : { allowed: false, cycleAt }
}

/**
 * intersection: false as soon as any branch is; otherwise the first error; otherwise true,
 * granted by the witnesses of every branch together.
 */
export async function intersection(branches: Branch[], concurrency: number): Promise<CheckResult> {
  if (branches.length === 0) return DENIED
  const results = await evaluate(branches, concurrency, (s) => s.ok && !s.r.allowed)
  let cycleAt = NO_CYCLE
  let error: Settled | undefined
  let witness: Tuple[] | undefined
  for (const s of results) {
    if (s.ok) {
      if (!s.r.allowed) return s.r
      cycleAt = Math.min(cycleAt, s.r.cycleAt)
      if (s.r.witness) witness = witness ? witness.concat(s.r.witness) : s.r.witness.slice()
    } else error ??= s
  }
  if (error && !error.ok) throw error.e
  return allowedBy(witness, cycleAt)
}

/**
 * difference (`base but not subtract`): false if base is false or subtract is true; an error
 * on either side only matters when the other side does not decide. A subtrahend that is false
 * only because it ran into an unfinished ancestor is not known to be false, so the difference
 * denies rather than grant on an undecided answer.
 */
export async function difference(base: Branch, subtract: Branch): Promise<CheckResult> {
  const b = await settle(base)
  if (b.ok && !b.r.allowed) return b.r
  const s = await settle(subtract)
  if (s.ok && (s.r.allowed || s.r.cycleAt !== NO_CYCLE)) return { allowed: false, cycleAt: s.r.cycleAt }
  if (!b.ok) throw b.e
  if (!s.ok) throw s.e
  return b.r
}
