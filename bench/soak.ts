/**
 * The memory soak (`npm run bench -- --soak [--soak-minutes 10] [--scale 1]`): a real `pemba
 * serve` child on a fresh SQLite file holding the bench data set, driven for N minutes by a
 * mixed load from autocannon in the bench process, with its resident set (from /proc), its V8
 * heap and cache sizes (from /metrics) and the heap its last full collection left (from its
 * --trace-gc lines) sampled every 10 s. It prints the series and a plateau verdict: the
 * resident set's growth over the last third of the run against its growth over the first.
 *
 * The load is made to fill every cache: checks and batch checks of random users (of the data
 * set and five times as many that hold no tuple) against random documents, list-objects and
 * list-users of random subjects and objects, reads by object, expands, and writes that add ten
 * new tuples (new user ids each time) and delete the ten written `WRITE_WINDOW` requests
 * earlier, so that the store's size stays level while its revision, its changelog and the ids
 * it has seen keep moving. Answers are not judged here (`npm run bench` does that); a non-2xx
 * answer is counted and shown.
 *
 * The server runs with its default settings (except the listening address), so the soak shows
 * what an operator who sets nothing gets. `--soak-env NAME=value,…` adds settings (e.g.
 * `PEMBA_CHECK_CACHE_SIZE=0`) to compare. `--soak-heap-snapshot` also writes a heap snapshot of
 * the server (SIGUSR2) a minute in and at the end, for bench/heap-summary.ts.
 *
 * @module
 */
import { randomInt } from 'node:crypto'
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { loadConfig } from '../src/config.ts'
import { createPemba } from '../src/server.ts'
import { tupleKey, type LoadedDataset } from './dataset.ts'
import { ROOT, json, log, num, request, servingPid, startServer, stopServer, withTimeout } from './harness.ts'

export interface SoakOptions {
  ds: LoadedDataset
  modelDsl: string
  /** The SQLite file to create (removed first). */
  dbPath: string
  minutes: number
  sampleSeconds: number
  /** Settings added to the server's environment. */
  extraEnv: Record<string, string>
  /** Write heap snapshots of the server after the first and the last sample. */
  heapSnapshots: boolean
  /** Adds one table row: figure, n, p50, p95, p99, rate, notes. */
  row: (...cells: (string | number)[]) => void
}

export interface SoakSample {
  /** Seconds since the load started. */
  t: number
  rssMiB: number
  heapUsedMiB?: number
  /**
   * The heap the last major collection since the previous sample left (from --trace-gc): the
   * live set, which a leak would make grow. Absent when no major collection ran meanwhile.
   */
  liveHeapMiB?: number
  /** The server's own gauges (`pemba_*_entries`, `…_bytes`, `…_tuples`, `…_buffered`) at the time. */
  gauges: Record<string, number>
}

export interface SoakWorker {
  name: string
  connections: number
  requests: number
  non2xx: number
  errors: number
  p50Ms: number
  p99Ms: number
}

export interface SoakReport {
  minutes: number
  scale: number
  tuples: number
  env: Record<string, string>
  samples: SoakSample[]
  workers: SoakWorker[]
  peakRssMiB?: number
  firstThirdGrowthMiB: number
  lastThirdGrowthMiB: number
  verdict: 'plateau' | 'still growing' | 'too short to judge'
  heapSnapshots: string[]
}

/** Requests between a write of ten tuples and their delete: the store holds ~10 × this more. */
const WRITE_WINDOW = 500

/** The gauges of /metrics the soak follows (the ones that exist on this server). */
const GAUGE_NAMES = /^(pemba_[a-z_]*(entries|bytes|tuples|buffered|stores|series)|nodejs_heap_size_used_bytes|nodejs_heap_size_total_bytes|nodejs_external_memory_bytes)(\{[^}]*\})? /

function pick<T>(xs: readonly T[]): T {
  return xs[randomInt(xs.length)]
}

/** The seven loads: each an endpoint, its connections and a maker of one request body per request. */
function workers(ds: LoadedDataset, storeId: string) {
  const { users, documents } = ds.manifest.stats
  // Users beyond the data set's hold no tuple: their checks are denials, each a new cache key.
  const anyUser = () => `user:u${randomInt(users * 6)}`
  const realUser = () => `user:u${randomInt(users)}`
  const doc = () => `document:d${randomInt(documents)}`
  const check = () => ({ user: anyUser(), relation: pick(['view', 'view', 'view', 'edit']), object: doc() })
  let written = 0
  const writeBody = () => {
    const n = written++
    const tuples = (k: number) =>
      Array.from({ length: 10 }, (_, i) => ({ user: `user:w${k * 10 + i}`, relation: 'viewer', object: `document:d${(k * 10 + i) % documents}` }))
    return json({
      writes: { tuple_keys: tuples(n), on_duplicate: 'ignore' },
      ...(n >= WRITE_WINDOW ? { deletes: { tuple_keys: tuples(n - WRITE_WINDOW), on_missing: 'ignore' } } : {}),
    })
  }
  const path = (p: string) => `/stores/${storeId}/${p}`
  return [
    { name: 'check', path: path('check'), connections: 12, body: () => json({ tuple_key: check() }) },
    {
      name: 'batch-check (50)',
      path: path('batch-check'),
      connections: 2,
      body: () => json({ checks: Array.from({ length: 50 }, (_, i) => ({ tuple_key: check(), correlation_id: String(i) })) }),
    },
    { name: 'write (10 + 10 deletes)', path: path('write'), connections: 2, body: writeBody },
    {
      name: 'list-objects',
      path: path('list-objects'),
      connections: 2,
      body: () => json({ type: 'document', relation: 'view', user: realUser() }),
    },
    {
      name: 'list-users',
      path: path('list-users'),
      connections: 1,
      body: () => json({ object: { type: 'document', id: doc().slice(9) }, relation: 'view', user_filters: [{ type: 'user' }] }),
    },
    { name: 'read', path: path('read'), connections: 2, body: () => json({ tuple_key: { object: doc() }, page_size: 50 }) },
    { name: 'expand', path: path('expand'), connections: 1, body: () => json({ tuple_key: { relation: 'view', object: doc() } }) },
  ]
}

/**
 * MajorGcReader reads the server's --trace-gc lines as its log file grows: `Mark-Compact 645.1
 * (688.9) -> 160.2 (201.3) MB` says a major collection left 160.2 MB. The decision log's worker
 * thread has a heap of its own, whose lines come in the same file, prefixed by its isolate's
 * address: only the main isolate's (the first to write a line, at start) are read.
 */
class MajorGcReader {
  readonly #file: string
  #offset = 0
  #main: string | undefined
  constructor(file: string) {
    this.#file = file
  }
  read(): number | undefined {
    let text: string
    try {
      const fd = openSync(this.#file, 'r')
      const buf = Buffer.alloc(Math.max(0, fstatSync(fd).size - this.#offset))
      const n = readSync(fd, buf, 0, buf.length, this.#offset)
      closeSync(fd)
      // Up to the last whole line: the rest is read next time.
      const whole = buf.subarray(0, n).lastIndexOf(0x0a) + 1
      this.#offset += whole
      text = buf.subarray(0, whole).toString('utf8')
    } catch {
      return undefined
    }
    let live: number | undefined
    // The main thread's isolate is the first to write a line (at start, before the worker).
    this.#main ??= /^\[\d+:(0x[0-9a-f]+)\]/m.exec(text)?.[1]
    for (const m of text.matchAll(/^\[\d+:(0x[0-9a-f]+)\][^\n]*?Mark-Compact[^\n]*? [\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/gm)) {
      if (m[1] === this.#main) live = Number(m[2])
    }
    return live
  }
}

/** The resident set of a process, in MiB, from /proc. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

function peakMiB(pid: number): number | undefined {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : undefined
}

async function gauges(url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  try {
    const text = await (await fetch(`${url}/metrics`)).text()
    for (const line of text.split('\n')) {
      const m = GAUGE_NAMES.exec(line)
      if (m) out[line.slice(0, line.lastIndexOf(' '))] = Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  } catch {
    // a sample without gauges: the resident set is the figure that matters
  }
  return out
}

/** snapshot asks the server for a heap snapshot (SIGUSR2) and waits for the file. */
async function snapshot(pid: number, cwd: string, name: string): Promise<string> {
  const before = new Set(readdirSync(cwd).filter((f) => f.endsWith('.heapsnapshot')))
  process.kill(pid, 'SIGUSR2')
  const file = await withTimeout(
    new Promise<string>((resolve) => {
      const poll = setInterval(() => {
        const fresh = readdirSync(cwd).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
        if (!fresh) return
        // Written once the size stops changing.
        const size = statSync(join(cwd, fresh)).size
        setTimeout(() => {
          if (statSync(join(cwd, fresh)).size === size && size > 0) {
            clearInterval(poll)
            resolve(fresh)
          }
        }, 1000)
      }, 2000)
    }),
    180_000,
    'heap snapshot',
  )
  const target = join(ROOT, 'bench-data', name)
  renameSync(join(cwd, file), target)
  return target
}

/** soakPart loads the data set into a fresh file, serves it and drives it for `minutes`. */
export async function soakPart(o: SoakOptions): Promise<SoakReport> {
  for (const f of [o.dbPath, `${o.dbPath}-wal`, `${o.dbPath}-shm`]) rmSync(f, { force: true })
  const loader = await createPemba(loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${o.dbPath}` }, argv: [] }))
  const storeId = (await request(loader, 'POST', '/stores', json({ name: 'soak' }))).id
  await request(loader, 'POST', `/stores/${storeId}/authorization-models`, o.modelDsl, 'text/plain')
  const { written } = await loader.writes.importTuples(storeId, o.ds.tuples.map(tupleKey))
  await loader.close()
  log(`soak: ${num(written)} tuples in ${o.dbPath}; serving with default settings${Object.keys(o.extraEnv).length ? ` and ${JSON.stringify(o.extraEnv)}` : ''}`)

  const env = {
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: `sqlite:${o.dbPath}`,
    ...(o.heapSnapshots ? { NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' } : {}),
    ...o.extraEnv,
  }
  // --trace-gc: a line per collection on the server's stdout (its log file), from which the
  // heap each major collection left (the live set) is read at every sample.
  const server = await startServer('src/cli/main.ts', ['serve'], env, ROOT, ['--trace-gc'])
  const gcLog = new MajorGcReader(server.logFile)
  const pid = servingPid(server.child.pid!, server.script)
  const samples: SoakSample[] = []
  const snapshots: string[] = []
  const seconds = Math.round(o.minutes * 60)
  try {
    const t0 = performance.now()
    const sample = async () => {
      const s: SoakSample = { t: Math.round((performance.now() - t0) / 1000), rssMiB: rssMiB(pid), gauges: await gauges(server.url) }
      const heap = s.gauges.nodejs_heap_size_used_bytes
      if (heap !== undefined) s.heapUsedMiB = heap / 2 ** 20
      const live = gcLog.read()
      if (live !== undefined) s.liveHeapMiB = live
      samples.push(s)
      log(
        `  t=${String(s.t).padStart(4)} s  RSS ${num(s.rssMiB)} MiB  heap used ${s.heapUsedMiB === undefined ? '?' : num(s.heapUsedMiB)} MiB, ` +
          `total ${num((s.gauges.nodejs_heap_size_total_bytes ?? NaN) / 2 ** 20)} MiB, after the last major GC ${s.liveHeapMiB === undefined ? '-' : num(s.liveHeapMiB)} MiB`,
      )
    }
    await sample()
    const timer = setInterval(() => void sample(), o.sampleSeconds * 1000)
    const load = workers(o.ds, storeId).map(async (w) => {
      const r = await autocannon({
        url: server.url,
        connections: w.connections,
        duration: seconds,
        timeout: 30,
        requests: [
          {
            method: 'POST',
            path: w.path,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: w.body() }),
          },
        ],
      })
      return {
        name: w.name,
        connections: w.connections,
        requests: r.requests.total,
        non2xx: r.non2xx,
        errors: r.errors,
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
      }
    })
    let firstSnapshot: Promise<string> | undefined
    if (o.heapSnapshots) {
      // After the first full sample period, the caches filling.
      await new Promise((r) => setTimeout(r, Math.min(60, seconds / 3) * 1000))
      firstSnapshot = snapshot(pid, ROOT, `soak-${process.pid}-early.heapsnapshot`)
    }
    const workersDone = await Promise.all(load)
    clearInterval(timer)
    await sample()
    if (firstSnapshot) snapshots.push(await firstSnapshot)
    if (o.heapSnapshots) snapshots.push(await snapshot(pid, ROOT, `soak-${process.pid}-late.heapsnapshot`))
    const peak = peakMiB(pid)
    return summarise(o, written, env, samples, workersDone, peak, snapshots)
  } finally {
    await stopServer(server)
    for (const f of [o.dbPath, `${o.dbPath}-wal`, `${o.dbPath}-shm`]) rmSync(f, { force: true })
  }
}

function summarise(
  o: SoakOptions,
  tuples: number,
  env: Record<string, string>,
  samples: SoakSample[],
  workersDone: SoakWorker[],
  peakRssMiB: number | undefined,
  heapSnapshots: string[],
): SoakReport {
  // The thirds of the run after the first sample (taken before the load started).
  const loaded = samples.slice(1)
  const third = Math.max(1, Math.floor(loaded.length / 3))
  const first = loaded.slice(0, third)
  const last = loaded.slice(-third)
  const growth = (xs: SoakSample[], from: SoakSample) => xs[xs.length - 1].rssMiB - from.rssMiB
  const firstThirdGrowthMiB = growth(first, samples[0])
  const lastThirdGrowthMiB = growth(last, loaded[loaded.length - third - 1] ?? samples[0])
  // A plateau: the last third adds under a quarter of what the first did, or under 5 % of the
  // resident set (a few MiB of noise from GC timing and the allocator).
  const end = loaded[loaded.length - 1]?.rssMiB ?? samples[0].rssMiB
  // Fewer than three samples a third (a run under ~1.5 minutes) says nothing either way.
  const verdict =
    loaded.length < 9
      ? 'too short to judge'
      : lastThirdGrowthMiB <= Math.max(0.25 * firstThirdGrowthMiB, 0.05 * end)
        ? 'plateau'
        : 'still growing'

  const series = samples.map((s) => `${s.t}s ${num(s.rssMiB)}`).join(', ')
  log(`\nsoak series (RSS MiB every ${o.sampleSeconds} s): ${series}`)
  const lastGauges = samples[samples.length - 1].gauges
  log(`gauges at the end: ${Object.entries(lastGauges).map(([k, v]) => `${k} ${num(v)}`).join(', ')}`)
  o.row(
    `soak, ${o.minutes} min mixed load, RSS (start → end, peak)`,
    samples.length,
    '',
    '',
    '',
    '',
    `${num(samples[0].rssMiB)} → ${num(end)} MiB, peak ${peakRssMiB === undefined ? '?' : num(peakRssMiB)} MiB`,
  )
  o.row(
    'soak: RSS growth, first third / last third',
    '',
    '',
    '',
    '',
    '',
    `${num(firstThirdGrowthMiB)} MiB / ${num(lastThirdGrowthMiB)} MiB: ${verdict}`,
  )
  const lives = samples.filter((s) => s.liveHeapMiB !== undefined)
  if (lives.length) {
    const lt = Math.max(1, Math.floor(lives.length / 3))
    const avg = (xs: SoakSample[]) => xs.reduce((a, s) => a + s.liveHeapMiB!, 0) / xs.length
    o.row(
      'soak: heap after major GC (live set), mean of first / last third',
      lives.length,
      '',
      '',
      '',
      '',
      `${num(avg(lives.slice(0, lt)))} MiB / ${num(avg(lives.slice(-lt)))} MiB (max ${num(Math.max(...lives.map((s) => s.liveHeapMiB!)))} MiB)`,
    )
    log(`live heap after major GCs (MiB): ${lives.map((s) => `${s.t}s ${num(s.liveHeapMiB!)}`).join(', ')}`)
  }
  const heaps = samples.filter((s) => s.heapUsedMiB !== undefined)
  if (heaps.length)
    o.row('soak: V8 heap used (start → max → end)', '', '', '', '', '', `${num(heaps[0].heapUsedMiB!)} → ${num(Math.max(...heaps.map((s) => s.heapUsedMiB!)))} → ${num(heaps[heaps.length - 1].heapUsedMiB!)} MiB`)
  for (const w of workersDone)
    o.row(
      `soak: ${w.name} (${w.connections} conn)`,
      num(w.requests),
      `${num(w.p50Ms)} ms`,
      '',
      `${num(w.p99Ms)} ms`,
      `${num(w.requests / (o.minutes * 60))} req/s`,
      `non-2xx ${w.non2xx}, errors ${w.errors}`,
    )
  return {
    minutes: o.minutes,
    scale: o.ds.manifest.params.scale,
    tuples,
    env,
    samples,
    workers: workersDone,
    peakRssMiB,
    firstThirdGrowthMiB,
    lastThirdGrowthMiB,
    verdict,
    heapSnapshots,
  }
}
