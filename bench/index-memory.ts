/**
 * The tuple index's memory and build rows (issue 20, item 2): bytes per tuple and build rate at
 * scales 1, 10 and 30, and the peak RSS of `pemba serve` holding the largest store in its index.
 *
 *   node --expose-gc --import tsx bench/run.ts --index-only [--index-scales 1,10,30]
 *        [--index-baseline /path/to/other/checkout]
 *
 * Each scale's data set is loaded once into its own SQLite file (`bench-data/index-memory-scale-
 * <s>-seed-<seed>.db`, reused by later runs). Each measurement runs in a fresh child process
 * (`node --expose-gc`), so that one heap does not carry another's garbage: the datastore is
 * opened, two full GCs, then the index is built (`TupleIndex.ready`), two full GCs again; the
 * index's bytes are the growth of the V8 heap plus the typed arrays' backing stores (which live
 * outside the heap: `process.memoryUsage().arrayBuffers`). With `--index-baseline`, another
 * child (one per tree, so neither heap carries the other's garbage) builds the other checkout's
 * index over the same file (its src/store/readers/tuple-index.ts): the two are measured in the
 * same run.
 *
 * "Served": `tsx src/cli/main.ts serve` on the largest scale's file, PEMBA_TUPLE_INDEX_PRELOAD=on
 * and a budget that fits it, caches off; after it listens, the 2000 checks of the mix over HTTP
 * one at a time; then its peak RSS (VmHWM of the serving process).
 *
 * @module
 */
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { loadConfig } from '../src/config.ts'
import { createPemba } from '../src/server.ts'
import { SqliteDatastore } from '../src/store/sqlite/index.ts'
import { loadOrGenerate, tupleKey } from './dataset.ts'
import { ROOT, json, log, num, request, servingPid, stopServer, type Server } from './harness.ts'

export interface IndexBuildFigure {
  tree: 'this' | 'baseline'
  scale: number
  tuples: number
  buildMs: number
  tuplesPerSec: number
  heapBytes: number
  arrayBufferBytes: number
  bytesPerTuple: number
  /** The child's peak RSS (the datastore's pages and the build's transient arrays included). */
  peakRssMiB: number
}

export interface IndexServedFigure {
  scale: number
  tuples: number
  checks: number
  allowed: number
  errors: number
  /** The first error's status and body, if any. */
  firstError?: string
  startMs: number
  peakRssMiB: number
}

export interface IndexMemoryOptions {
  dataRoot: string
  seed: number
  scales: number[]
  modelDsl: string
  /** Another checkout whose index is measured beside this one's, or ''. */
  baseline: string
  row: (...cells: (string | number)[]) => void
}

/** ensureDatabase loads a scale's data set into its SQLite file once; returns the file and store. */
async function ensureDatabase(o: IndexMemoryOptions, scale: number): Promise<{ dbPath: string; storeId: string; tuples: number }> {
  const ds = loadOrGenerate(o.dataRoot, { scale, seed: o.seed, checks: 2000 })
  const dbPath = join(o.dataRoot, `index-memory-scale-${scale}-seed-${o.seed}.db`)
  // Written once the load has completed: an interrupted load is not mistaken for one.
  const loaded = `${dbPath}.loaded`
  if (existsSync(loaded) && existsSync(dbPath)) return { dbPath, storeId: readFileSync(loaded, 'utf8').trim(), tuples: ds.tuples.length }
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, loaded]) rmSync(f, { force: true })
  log(`index memory: loading ${num(ds.tuples.length)} tuples (scale ${scale}) into ${dbPath} ...`)
  const config = loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${dbPath}`, PEMBA_TUPLE_INDEX_MAX_TUPLES: '0', PEMBA_LOG_LEVEL: 'warn' }, argv: [] })
  const pemba = await createPemba(config)
  try {
    const storeId = (await request(pemba, 'POST', '/stores', json({ name: 'index-memory' }))).id as string
    await request(pemba, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
    const t = performance.now()
    const { written, refused } = await pemba.writes.importTuples(storeId, ds.tuples.map(tupleKey))
    if (refused.length) throw new Error(`the import refused ${refused.length} tuples: ${refused[0].message}`)
    log(`  ${num(written)} tuples in ${num((performance.now() - t) / 1000, 1)} s`)
    writeFileSync(loaded, storeId)
    return { dbPath, storeId, tuples: written }
  } finally {
    await pemba.close()
  }
}

/** The child: builds one index over a file and prints its figures as one JSON line. */
async function child(dbPath: string, storeId: string, implPath: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with node --expose-gc')
  const { TupleIndex } = (await import(pathToFileURL(implPath).href)) as typeof import('../src/store/readers/tuple-index.ts')
  const ds = new SqliteDatastore({ filename: dbPath })
  await ds.read(storeId, {}, { pageSize: 10 }, 0)
  const settle = () => {
    gc()
    gc()
    const m = process.memoryUsage()
    return { heap: m.heapUsed, buffers: m.arrayBuffers }
  }
  const before = settle()
  const index = new TupleIndex({ datastore: ds, maxTuples: 100_000_000 })
  const t = performance.now()
  if (!(await index.ready(storeId))) throw new Error('the index was not built')
  const buildMs = performance.now() - t
  await (index as { merged?: (s: string) => Promise<void> }).merged?.(storeId)
  const after = settle()
  const tuples = index.stats().tuples
  const heapBytes = after.heap - before.heap
  const arrayBufferBytes = after.buffers - before.buffers
  const status = readFileSync('/proc/self/status', 'utf8')
  const peakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
  process.stdout.write(
    `${JSON.stringify({ tuples, buildMs, heapBytes, arrayBufferBytes, peakRssMiB, keep: index.stats().stores })}\n`,
  )
  await ds.close()
}

function measure(dbPath: string, storeId: string, implPath: string): Omit<IndexBuildFigure, 'tree' | 'scale' | 'tuplesPerSec' | 'bytesPerTuple'> {
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(ROOT, 'bench/index-memory.ts'), '--child', dbPath, storeId, implPath], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.trim().split('\n').pop()!)
}

/**
 * startPreloaded: harness.startServer, but waiting as long as a preload of millions of tuples
 * takes (the server listens only once its index is built).
 */
async function startPreloaded(env: Record<string, string>): Promise<Server> {
  const logDir = join(ROOT, 'bench-data/logs')
  mkdirSync(logDir, { recursive: true })
  const logFile = join(logDir, `${process.pid}-index-memory-serve.log`)
  const out = openSync(logFile, 'w')
  const child = spawn(join(ROOT, 'node_modules/.bin/tsx'), ['src/cli/main.ts', 'serve'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', out, 'pipe'],
    detached: true,
  })
  closeSync(out)
  const stderr: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.length < 50 && stderr.push(d))
  const server: Server = { child, script: 'src/cli/main.ts', url: '', stderr, logFile }
  const deadline = Date.now() + 20 * 60_000
  while (!server.url) {
    const m = /listening on (http:\/\/[^\s"]+)/.exec(readFileSync(logFile, 'utf8'))
    if (m) server.url = m[1]
    else if (child.exitCode !== null || Date.now() > deadline) {
      await stopServer(server)
      throw new Error(`pemba serve did not start: ${stderr.join('')}`)
    } else await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return server
}

/** served: a `pemba serve` holding the store in its index, the mix's checks over HTTP, its peak RSS. */
async function served(dbPath: string, storeId: string, scale: number, tuples: number, o: IndexMemoryOptions): Promise<IndexServedFigure> {
  const ds = loadOrGenerate(o.dataRoot, { scale, seed: o.seed, checks: 2000 })
  const t = performance.now()
  const server = await startPreloaded({
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: `sqlite:${dbPath}`,
    PEMBA_TUPLE_INDEX_PRELOAD: 'on',
    PEMBA_TUPLE_INDEX_MAX_TUPLES: String(Math.max(2_000_000, tuples * 2)),
    PEMBA_CHECK_CACHE_SIZE: '0',
    PEMBA_TUPLE_CACHE_SIZE: '0',
  })
  const startMs = performance.now() - t
  let allowed = 0
  let errors = 0
  let firstError: string | undefined
  try {
    for (const c of ds.checks) {
      const res = await fetch(`${server.url}/stores/${storeId}/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } }),
      })
      const text = await res.text()
      if (!res.ok) {
        errors++
        firstError ??= `${res.status} ${text.slice(0, 300)} (${c.kind}: ${c.resource}#${c.permission}@${c.subject})`
      } else if ((JSON.parse(text) as { allowed?: boolean }).allowed) allowed++
    }
    const pid = servingPid(server.child.pid!, 'src/cli/main.ts')
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const peakRssMiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
    return { scale, tuples, checks: ds.checks.length, allowed, errors, firstError, startMs, peakRssMiB }
  } finally {
    await stopServer(server)
  }
}

export async function indexMemoryPart(o: IndexMemoryOptions): Promise<{ builds: IndexBuildFigure[]; served?: IndexServedFigure }> {
  const builds: IndexBuildFigure[] = []
  const trees: [IndexBuildFigure['tree'], string][] = [['this', join(ROOT, 'src/store/readers/tuple-index.ts')]]
  if (o.baseline) trees.push(['baseline', join(o.baseline, 'src/store/readers/tuple-index.ts')])
  let largest: { dbPath: string; storeId: string; tuples: number; scale: number } | undefined
  for (const scale of o.scales) {
    const db = await ensureDatabase(o, scale)
    largest = { ...db, scale }
    for (const [tree, impl] of trees) {
      log(`index memory: scale ${scale}, ${tree} tree's index ...`)
      const m = measure(db.dbPath, db.storeId, impl)
      const f: IndexBuildFigure = {
        tree,
        scale,
        ...m,
        tuplesPerSec: m.tuples / (m.buildMs / 1000),
        bytesPerTuple: (m.heapBytes + m.arrayBufferBytes) / m.tuples,
      }
      builds.push(f)
      log(`  ${num(f.tuples)} tuples: ${num(f.bytesPerTuple)} bytes/tuple, ${num(f.tuplesPerSec)} tuples/s, peak RSS ${num(f.peakRssMiB)} MiB`)
      o.row(
        `tuple index build, scale ${scale} (${tree === 'this' ? 'compact' : 'baseline tree'})`,
        num(f.tuples),
        '',
        '',
        '',
        `${num(f.tuplesPerSec)} tuples/s`,
        `${num(f.bytesPerTuple)} bytes/tuple (heap +${num(f.heapBytes / 2 ** 20)} MiB, typed arrays +${num(f.arrayBufferBytes / 2 ** 20)} MiB); ${num(f.buildMs / 1000, 1)} s; child peak RSS ${num(f.peakRssMiB)} MiB`,
      )
    }
  }
  if (!largest) return { builds }
  log(`index memory: pemba serve at scale ${largest.scale}, index preloaded, 2000 checks over HTTP ...`)
  const s = await served(largest.dbPath, largest.storeId, largest.scale, largest.tuples, o)
  log(`  peak RSS ${num(s.peakRssMiB)} MiB (${s.allowed} allowed, ${s.errors} errors, started in ${num(s.startMs / 1000, 1)} s)`)
  if (s.firstError) log(`  first error: ${s.firstError}`)
  o.row(
    `pemba serve, scale ${largest.scale} in the tuple index, after 2000 checks`,
    num(largest.tuples),
    '',
    '',
    '',
    `peak RSS ${num(s.peakRssMiB)} MiB`,
    `preload ${num(s.startMs / 1000, 1)} s; ${s.allowed} allowed, ${s.errors} errors`,
  )
  return { builds, served: s }
}

if (process.argv[2] === '--child') {
  const [dbPath, storeId, implPath] = process.argv.slice(3)
  child(dbPath, storeId, implPath).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e)
      process.exit(1)
    },
  )
}
