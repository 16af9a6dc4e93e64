/**
 * The rows of a store larger than the tuple index's budget (issue 20, item 3): `npm run bench --
 * --beyond-memory-only` runs just these. The data set is loaded once into a fresh SQLite file
 * (and, with a PostgreSQL URL, into a new PostgreSQL store); the tuple index's budget is then set
 * to a tenth of the data set (PEMBA_TUPLE_INDEX_MAX_TUPLES = tuples / 10), so the store does not
 * fit, and the working set gets the same budget in tuples (PEMBA_TUPLE_CACHE_SIZE): the same
 * memory the index would be allowed.
 *
 * In-process on SQLite, the bench's checks one at a time with the answer cache off, in one run:
 * - fully indexed (the default budget): the third pass, the reference;
 * - working set on: the first pass (cold: nothing held) and the third (warm);
 * - the same with the working set at its default size (PEMBA_TUPLE_CACHE_SIZE unset), which at
 *   scale 1 holds the whole store: the working set's best case;
 * - working set off (today's path before issue 20: every tuple set read from SQLite): the
 *   third pass.
 * Each as p50 / p99 / checks per second, with the ratio of its p50 to the indexed p50.
 *
 * Over HTTP on PostgreSQL (a `pemba serve` child, one replica, 64 connections, answer cache
 * off): working set on, at its default size, and off (every read a round trip), each a first
 * pass (cold) then a second (warm), as checks per second and the ratio to working set off.
 *
 * Every pass's answers are judged against bench/expected/ where they exist.
 *
 * @module
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../src/config.ts'
import type { TupleKey } from '../src/core/tuple.ts'
import { createPemba, type Pemba } from '../src/server.ts'
import type { CheckRequest } from './dataset.ts'
import {
  cannon,
  checkPass,
  correctText,
  json,
  judge,
  log,
  ms,
  num,
  request,
  startServer,
  stopServer,
  us,
  type CheckPass,
  type Correctness,
  type Expected,
  type HttpFigure,
} from './harness.ts'

export interface BeyondMemoryOptions {
  dataRoot: string
  keys: TupleKey[]
  checks: CheckRequest[]
  expected: Expected
  modelDsl: string
  /** Request bodies of the HTTP rows (the checks as JSON). */
  bodies: string[]
  /** A PostgreSQL URL for the HTTP rows; empty: skipped. */
  postgresUrl: string
  httpSeconds: number
  httpConnections: number
  row: (...cells: (string | number)[]) => void
}

interface PassFigure {
  p50Us: number
  p99Us: number
  perSec: number
  correctness: Correctness
  workingSet?: unknown
}

export interface BeyondMemoryFigures {
  tuples: number
  indexBudget: number
  workingSetBudget: number
  sqlite: Record<string, PassFigure>
  postgres?: Record<string, HttpFigure & { correctness?: string }>
}

/** PEMBA_TUPLE_CACHE_SIZE's default: what a server given no setting holds. */
const DEFAULT_WORKING_SET = loadConfig({ env: {}, argv: [] }).tupleCacheSize

function figure(pass: CheckPass, checks: CheckRequest[], expected: Expected): PassFigure {
  return { p50Us: pass.mixed.p50Us, p99Us: pass.mixed.p99Us, perSec: pass.mixed.perSec, correctness: judge(checks, pass.answers, expected) }
}

/** The environment of one variant: index budget, working set budget, answer cache off. */
function variantEnv(indexBudget: number | undefined, workingSet: number): Record<string, string> {
  return {
    PEMBA_CHECK_CACHE_SIZE: '0',
    PEMBA_TUPLE_CACHE_SIZE: String(workingSet),
    PEMBA_EXPIRY_SWEEP_INTERVAL_MS: '0',
    ...(indexBudget === undefined ? {} : { PEMBA_TUPLE_INDEX_MAX_TUPLES: String(indexBudget) }),
  }
}

export async function beyondMemoryPart(o: BeyondMemoryOptions): Promise<BeyondMemoryFigures> {
  const indexBudget = Math.max(1, Math.floor(o.keys.length / 10))
  const workingSetBudget = indexBudget
  const out: BeyondMemoryFigures = { tuples: o.keys.length, indexBudget, workingSetBudget, sqlite: {} }
  const dbPath = join(o.dataRoot, `beyond-memory-${process.pid}.db`)
  const remove = () => {
    for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) rmSync(f, { force: true })
  }
  remove()
  const open = (env: Record<string, string>) => createPemba(loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${dbPath}`, ...env }, argv: [] }))
  let storeId = ''
  try {
    log(`beyond memory: importing ${num(o.keys.length)} tuples into SQLite ...`)
    let pemba: Pemba = await open(variantEnv(0, 0))
    try {
      storeId = (await request(pemba, 'POST', '/stores', json({ name: 'beyond-memory' }))).id
      await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
      const { refused } = await pemba.writes.importTuples(storeId, o.keys)
      if (refused.length > 0) throw new Error(`the import refused ${refused.length} tuples: ${refused[0].message}`)
    } finally {
      await pemba.close()
    }
    const passes = async (label: string, env: Record<string, string>, measure: number[], prepare?: (p: Pemba) => Promise<void>) => {
      log(`beyond memory, SQLite in-process: ${label} ...`)
      pemba = await open(env)
      try {
        if (prepare) await prepare(pemba)
        const last = Math.max(...measure)
        for (let i = 1; i <= last; i++) {
          const pass = await checkPass((id, input) => pemba.checks.check(id, input), storeId, o.checks)
          if (measure.includes(i)) {
            const f = figure(pass, o.checks, o.expected)
            f.workingSet = pemba.evaluation.workingSetStats()
            out.sqlite[`${label}, pass ${i}`] = f
          }
        }
      } finally {
        await pemba.close()
      }
    }
    await passes('fully indexed', variantEnv(undefined, 0), [3], async (p) => {
      if (!(await p.evaluation.tupleIndexReady(storeId))) throw new Error('the store did not fit the default index budget')
    })
    await passes('working set on', variantEnv(indexBudget, workingSetBudget), [1, 3])
    await passes(`working set at its default size (${num(DEFAULT_WORKING_SET)})`, variantEnv(indexBudget, DEFAULT_WORKING_SET), [1, 3])
    await passes('working set off', variantEnv(indexBudget, 0), [1, 3])
  } finally {
    remove()
  }
  const indexed = out.sqlite['fully indexed, pass 3']
  for (const [label, f] of Object.entries(out.sqlite)) {
    o.row(
      `check in-process, store 10× the index budget (${num(indexBudget)}), SQLite: ${label}`,
      o.checks.length,
      us(f.p50Us),
      '',
      us(f.p99Us),
      `${num(f.perSec)} checks/s`,
      `p50 ${num(f.p50Us / indexed.p50Us, 2)}× indexed; ${correctText(f.correctness)}`,
    )
  }
  if (o.postgresUrl) out.postgres = await postgresRows(o, indexBudget, workingSetBudget)
  return out
}

/** The HTTP rows on PostgreSQL: one replica, working set on (cold, then warm) and off. */
async function postgresRows(o: BeyondMemoryOptions, indexBudget: number, workingSetBudget: number): Promise<Record<string, HttpFigure>> {
  log('beyond memory: loading the data set into a new PostgreSQL store ...')
  const pemba = await createPemba(loadConfig({ env: { PEMBA_DATABASE_URL: o.postgresUrl, ...variantEnv(0, 0) }, argv: [] }))
  let storeId: string
  try {
    storeId = (await request(pemba, 'POST', '/stores', json({ name: 'beyond-memory' }))).id
    await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
    await pemba.writes.importTuples(storeId, o.keys)
  } finally {
    await pemba.close()
  }
  const path = `/stores/${storeId}/check`
  const env = (workingSet: number) => ({ PEMBA_HOST: '127.0.0.1', PEMBA_PORT: '0', PEMBA_DATABASE_URL: o.postgresUrl, ...variantEnv(indexBudget, workingSet) })
  const figures: Record<string, HttpFigure> = {}
  const variants = [
    ['working set on', workingSetBudget],
    [`working set at its default size (${num(DEFAULT_WORKING_SET)})`, DEFAULT_WORKING_SET],
    ['working set off', 0],
  ] as const
  for (const [label, workingSet] of variants) {
    log(`beyond memory, PostgreSQL over HTTP: ${label} ...`)
    const server = await startServer('src/cli/main.ts', ['serve'], env(workingSet))
    try {
      figures[`${label}, cold`] = await cannon(server.url, path, o.bodies, o.httpConnections, o.httpSeconds, 0)
      figures[`${label}, warm`] = await cannon(server.url, path, o.bodies, o.httpConnections, o.httpSeconds, 0)
    } finally {
      await stopServer(server)
    }
  }
  const off = figures['working set off, warm']
  for (const [label, f] of Object.entries(figures)) {
    o.row(
      `HTTP check, store 10× the index budget, Pemba on PostgreSQL, 1 replica: ${label} (${o.httpConnections} conn)`,
      num(f.requests),
      ms(f.p50Ms),
      '',
      ms(f.p99Ms),
      `${num(f.reqPerSec)} req/s`,
      `${num(f.reqPerSec / off.reqPerSec, 1)}× working set off; non-2xx ${f.non2xx}, errors ${f.errors}`,
    )
  }
  return figures
}
