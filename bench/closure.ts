/**
 * The membership closure rows of `npm run bench` (issue 20, item 4): in-process cold checks
 * (check cache off, tuple index on) with the membership closure on and off, on the same database
 * in one run, per kind of check and for the mix, each answer judged against bench/expected/.
 * `npm run bench -- --closure-only` runs just these (after the data set's import).
 *
 * Two Pembas are opened on the imported database, one with PEMBA_MEMBERSHIP_CLOSURE=on and one
 * with off; both have their tuple index and (the first) its closures built before measuring.
 * Each warms its JIT with two passes; then the variants alternate pass by pass, `rounds` times,
 * and each figure is the variant's median over its rounds (the machine is shared: alternating
 * spreads the disturbance over both). The closure's build time, entries and heap are reported
 * too. Then the same comparison with the tuple index off (every tuple read from SQLite, where
 * each level of the upward group walk is a query), one round fewer.
 *
 * @module
 */
import { loadConfig } from '../src/config.ts'
import { createPemba, type Pemba } from '../src/server.ts'
import type { CheckRequest } from './dataset.ts'
import {
  cacheEnv,
  checkPass as measureChecks,
  correctText,
  judge,
  log,
  median,
  num,
  us,
  type CheckPass,
  type Expected,
} from './harness.ts'

export interface ClosureOptions {
  dbPath: string
  storeId: string
  checks: CheckRequest[]
  /** The kinds of check, in the data set's order. */
  kinds: string[]
  expected: Expected
  rounds: number
  row: (...cells: (string | number)[]) => void
}

export interface ClosureFigures {
  build: { ms: number; entries: number; tuples: number; heapMiB: number; bytesPerEntry: number }
  /** p50 / p99 (µs) of the mix and each kind, per variant: the median over the rounds. */
  on: Record<string, { p50Us: number; p99Us: number }>
  off: Record<string, { p50Us: number; p99Us: number }>
  correct: { on: string; off: string }
  /** The same with the tuple index off too (every tuple read from SQLite). */
  sqlite: { on: Record<string, { p50Us: number; p99Us: number }>; off: Record<string, { p50Us: number; p99Us: number }>; correct: { on: string; off: string } }
  loadAverage: number[]
}

/**
 * The closure's budget for the bench: scale 10's groups make ~775k entries, over the default
 * (250k), which would leave the "on" rows walking; the figures are of the closure, so it fits.
 */
const BENCH_CLOSURE_MAX_ENTRIES = '2000000'

function open(dbPath: string, closure: 'on' | 'off', index = true): Promise<Pemba> {
  const config = loadConfig({
    env: {
      PEMBA_DATABASE_URL: `sqlite:${dbPath}`,
      ...cacheEnv(0, index),
      PEMBA_MEMBERSHIP_CLOSURE: closure,
      PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES: BENCH_CLOSURE_MAX_ENTRIES,
    },
    argv: [],
  })
  return createPemba(config)
}

const pass = (pemba: Pemba, storeId: string, checks: CheckRequest[]) =>
  measureChecks((id, input) => pemba.checks.check(id, input), storeId, checks)

/** closurePart measures both variants and adds their rows (see the module comment). */
export async function closurePart(o: ClosureOptions): Promise<ClosureFigures> {
  const { storeId, row } = o
  const off = await open(o.dbPath, 'off')
  const on = await open(o.dbPath, 'on')
  let closing: Promise<void>[] | undefined
  try {
    await off.evaluation.tupleIndexReady(storeId)
    await on.evaluation.tupleIndexReady(storeId)
    global.gc?.()
    const heapBefore = process.memoryUsage().heapUsed
    const t = performance.now()
    const built = await on.evaluation.membershipClosuresReady(storeId)
    const buildMs = performance.now() - t
    global.gc?.()
    const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20
    const s = on.evaluation.membershipClosureStats()!
    const bytesPerEntry = s.entries ? (heapMiB * 2 ** 20) / s.entries : 0
    log(`  membership closure: ${built ? `${num(s.entries)} entries from ${num(s.tuples)} tuples in ${num(buildMs)} ms, heap +${num(heapMiB, 1)} MiB` : 'NOT BUILT'}`)
    row(
      'membership closure build (in memory)',
      num(s.entries),
      '',
      '',
      '',
      built ? `${num(s.tuples)} group tuples` : 'not built',
      `${num(buildMs)} ms; heap +${num(heapMiB, 1)} MiB (${num(bytesPerEntry)} B/entry)${global.gc ? '' : ' (without --expose-gc: approximate)'}`,
    )
    const indexed = await compare(o, on, off, 'check in-process, cold, closure on / off', o.rounds)
    const stats = on.evaluation.membershipClosureStats()!
    log(`  closure answers ${num(stats.answered)}, fallbacks ${num(stats.fallbacks)}`)
    closing = [on.close(), off.close()]
    await Promise.all(closing)
    // Without the tuple index, each level of the upward walk is a read from SQLite.
    log('  the same with the tuple index off ...')
    const sqliteOff = await open(o.dbPath, 'off', false)
    const sqliteOn = await open(o.dbPath, 'on', false)
    try {
      await sqliteOn.evaluation.membershipClosuresReady(storeId)
      const sqlite = await compare(o, sqliteOn, sqliteOff, 'check in-process, cold, tuple index off, closure on / off', Math.max(1, o.rounds - 1))
      return {
        build: { ms: buildMs, entries: s.entries, tuples: s.tuples, heapMiB, bytesPerEntry },
        ...indexed,
        sqlite,
        loadAverage: (await import('node:os')).loadavg(),
      }
    } finally {
      await sqliteOn.close()
      await sqliteOff.close()
    }
  } finally {
    if (!closing) await Promise.all([on.close(), off.close()])
  }
}

type Figures = Record<string, { p50Us: number; p99Us: number }>

/** compare warms both variants, alternates them `rounds` times and adds the rows. */
async function compare(
  o: ClosureOptions,
  on: Pemba,
  off: Pemba,
  label: string,
  rounds: number,
): Promise<{ on: Figures; off: Figures; correct: { on: string; off: string } }> {
  const { storeId, checks, row } = o
  for (const p of [on, off]) for (let i = 0; i < 2; i++) await pass(p, storeId, checks)
  const runs: { on: CheckPass[]; off: CheckPass[] } = { on: [], off: [] }
  for (let r = 0; r < rounds; r++) {
    runs.on.push(await pass(on, storeId, checks))
    runs.off.push(await pass(off, storeId, checks))
  }
  const figures = (ps: CheckPass[]) => {
    const out: Figures = {
      mixed: { p50Us: median(ps.map((p) => p.mixed.p50Us)), p99Us: median(ps.map((p) => p.mixed.p99Us)) },
    }
    for (const k of o.kinds) {
      out[k] = { p50Us: median(ps.map((p) => p.byKind[k].p50Us)), p99Us: median(ps.map((p) => p.byKind[k].p99Us)) }
    }
    return out
  }
  const fOn = figures(runs.on)
  const fOff = figures(runs.off)
  const correct = {
    on: correctText(judge(checks, runs.on[runs.on.length - 1].answers, o.expected)),
    off: correctText(judge(checks, runs.off[runs.off.length - 1].answers, o.expected)),
  }
  const ratio = (a: number, b: number) => (b > 0 ? `${num(a / b, 2)}×` : '')
  for (const k of ['mixed', ...o.kinds]) {
    row(
      k === 'mixed' ? `${label}: mixed` : `  ${k}`,
      k === 'mixed' ? checks.length : runs.on[0].byKind[k].n,
      `${us(fOn[k].p50Us)} / ${us(fOff[k].p50Us)}`,
      '',
      `${us(fOn[k].p99Us)} / ${us(fOff[k].p99Us)}`,
      `p50 ${ratio(fOn[k].p50Us, fOff[k].p50Us)}, p99 ${ratio(fOn[k].p99Us, fOff[k].p99Us)}`,
      k === 'mixed' ? `on: ${correct.on}; off: ${correct.off}` : '',
    )
  }
  return { on: fOn, off: fOff, correct }
}
