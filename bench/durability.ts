/**
 * The durability rows of `npm run bench` (issue 22, item 8): what SQLite's `synchronous = FULL`
 * (PEMBA_SQLITE_SYNCHRONOUS=full, the default) costs against NORMAL on writes, on the same disk
 * in one run. `npm run bench -- --durability-only` runs just these.
 *
 * Each mode gets a new database file in `dataRoot` (the disk the bench's database lives on) and
 * a Pemba opened with that setting, as `pemba serve` opens it; the writes go through
 * `writes.write` (validation, the write planner, one transaction and revision per call, what an
 * HTTP Write runs without the HTTP). Four workloads, each for `seconds`:
 *
 * - one tuple per write, one writer (a write waits for the previous one);
 * - one tuple per write, `concurrency` writers at once (SQLite has one connection: they queue
 *   in the event loop, as concurrent HTTP requests do in the server);
 * - 100 tuples per write (OpenFGA's largest Write), one writer, and `concurrency` writers.
 *
 * The modes alternate, `rounds` times; each figure is the best round (the machine is shared:
 * the best is the least disturbed). The table gives writes/s and tuples/s per mode, and the
 * ratio FULL / NORMAL.
 *
 * @module
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../src/config.ts'
import type { TupleKey } from '../src/core/tuple.ts'
import { createPemba, type Pemba } from '../src/server.ts'
import { log, num } from './harness.ts'

type Mode = 'full' | 'normal'
const MODES: readonly Mode[] = ['full', 'normal']

const MODEL = `model
  schema 1.1
type user
type doc
  relations
    define viewer: [user]
`

interface Workload {
  name: string
  tuplesPerWrite: number
  writers: number
}

export interface DurabilityFigure {
  workload: string
  tuplesPerWrite: number
  writers: number
  mode: Mode
  writes: number
  ms: number
  writesPerSec: number
  tuplesPerSec: number
}

export interface DurabilityOptions {
  /** Where the database files go (removed after each run). */
  dataRoot: string
  /** Seconds per workload and mode, per round. */
  seconds: number
  rounds: number
  /** The concurrent writers of the concurrent workloads. */
  concurrency: number
  row: (...cells: (string | number)[]) => void
}

/** durabilityPart measures the workloads under both modes and adds their rows (see the module comment). */
export async function durabilityPart(o: DurabilityOptions): Promise<{ figures: DurabilityFigure[]; ratios: Record<string, number> }> {
  const workloads: Workload[] = [
    { name: '1-tuple writes, 1 writer', tuplesPerWrite: 1, writers: 1 },
    { name: `1-tuple writes, ${o.concurrency} writers`, tuplesPerWrite: 1, writers: o.concurrency },
    { name: '100-tuple writes, 1 writer', tuplesPerWrite: 100, writers: 1 },
    { name: `100-tuple writes, ${o.concurrency} writers`, tuplesPerWrite: 100, writers: o.concurrency },
  ]
  mkdirSync(o.dataRoot, { recursive: true })
  const best = new Map<string, DurabilityFigure>()
  for (let round = 1; round <= o.rounds; round++) {
    // Alternate which mode goes first, so neither always meets a warmer (or busier) disk.
    const order = round % 2 === 1 ? MODES : [...MODES].reverse()
    for (const mode of order) {
      const file = join(o.dataRoot, `pemba-bench-durability-${mode}.db`)
      removeDb(file)
      const pemba = await createPemba(
        loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${file}`, PEMBA_SQLITE_SYNCHRONOUS: mode, PEMBA_DECISION_LOG: 'off', PEMBA_LOG_LEVEL: 'warn' }, argv: [] }),
        { sweeper: false },
      )
      try {
        const store = (await pemba.stores.create('durability', '')).id
        const modelId = await pemba.models.write(store, pemba.models.parseDSL(MODEL))
        let serial = 0
        for (const w of workloads) {
          const f = await measure(pemba, store, modelId, w, mode, o.seconds, () => serial++)
          log(`  durability ${mode.padEnd(6)} ${w.name.padEnd(28)} ${num(f.writesPerSec).padStart(8)} writes/s ${num(f.tuplesPerSec).padStart(9)} tuples/s (round ${round})`)
          const key = `${w.name}/${mode}`
          const prev = best.get(key)
          if (!prev || f.writesPerSec > prev.writesPerSec) best.set(key, f)
        }
      } finally {
        await pemba.close()
        removeDb(file)
      }
    }
  }
  const figures = [...best.values()]
  const ratios: Record<string, number> = {}
  for (const w of workloads) {
    const full = best.get(`${w.name}/full`)!
    const normal = best.get(`${w.name}/normal`)!
    ratios[w.name] = full.writesPerSec / normal.writesPerSec
    for (const f of [full, normal]) {
      o.row(
        `SQLite writes, synchronous=${f.mode.toUpperCase()}: ${w.name}`,
        num(f.writes),
        '',
        '',
        '',
        `${num(f.writesPerSec)} writes/s (${num(f.tuplesPerSec)} tuples/s)`,
        f.mode === 'full' ? `FULL/NORMAL = ${ratios[w.name].toFixed(2)}; best of ${o.rounds}` : `best of ${o.rounds}`,
      )
    }
  }
  return { figures, ratios }
}

/** measure runs one workload for `seconds`: each writer writes new tuples, one write after another. */
async function measure(
  pemba: Pemba,
  store: string,
  modelId: string,
  w: Workload,
  mode: Mode,
  seconds: number,
  next: () => number,
): Promise<DurabilityFigure> {
  const keys = (): TupleKey[] => {
    const out: TupleKey[] = []
    for (let i = 0; i < w.tuplesPerWrite; i++) out.push({ user: `user:u${next()}`, relation: 'viewer', object: `doc:d${i % 50}` })
    return out
  }
  let writes = 0
  const started = performance.now()
  const deadline = started + seconds * 1000
  const writer = async () => {
    while (performance.now() < deadline) {
      await pemba.writes.write(store, { modelId, writes: keys(), onDuplicate: 'error', onMissing: 'error' })
      writes++
    }
  }
  await Promise.all(Array.from({ length: w.writers }, writer))
  const ms = performance.now() - started
  const writesPerSec = writes / (ms / 1000)
  return {
    workload: w.name,
    tuplesPerWrite: w.tuplesPerWrite,
    writers: w.writers,
    mode,
    writes,
    ms,
    writesPerSec,
    tuplesPerSec: writesPerSec * w.tuplesPerWrite,
  }
}

function removeDb(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) rmSync(f, { force: true })
}
