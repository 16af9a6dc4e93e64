/**
 * The A/B bench: this checkout (B) against another checkout of Pemba (A, e.g. the commit before a
 * refactor) in one run, the two measured alternately, because this machine's figures move by
 * ±20–30 % between processes and runs: only figures taken side by side compare.
 *
 *   node --expose-gc --import tsx bench/ab.ts --baseline /path/to/A [--rounds 3] [--scale 1]
 *        [--seed 42] [--quick] [--cache-size 100000] [--out bench/out] [--max-minutes N]
 *
 * A must be a full checkout with its node_modules (a symlink to this one's will do). Each round
 * measures, for both trees:
 * - bulk import: the data set's tuples through the tree's store-layer import into a fresh SQLite
 *   file, tuples/s (the two trees alternate; each round starts with the other one);
 * - in-process Check: both trees loaded in this process (each from its own src/, two separate
 *   module graphs), cache off ("cold": no check or tuple cache, the tuple index on) and cache on
 *   ("warm"); the 2000 checks twice to warm up, then a measured third pass, the trees interleaved
 *   pass by pass; p50/p99 of the mix;
 * - HTTP Check: `tsx src/cli/main.ts serve` of each tree as a child (cache off and cache on) and
 *   the minimal Hono route, autocannon at 64 connections in turn; req/s and each server's ratio to
 *   the minimal route of the same round.
 * Every answer (in process and over HTTP) is judged against bench/expected/ and A's and B's must
 * be equal: a wrong answer fails the run. Prints one table (median over rounds: A, B, B/A) and
 * writes every figure to `<out>/ab-<date>.json`. See bench/README.md.
 *
 * @module
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, relative, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { loadOrGenerate, parseFlags, tupleKey, type LoadedDataset } from './dataset.ts'
import {
  ROOT,
  cacheEnv,
  cannon,
  checkPass,
  correctText,
  gitState,
  guardChildren,
  httpAnswers,
  json,
  judge,
  killAll,
  loadExpected,
  log,
  median,
  num,
  request,
  startServer,
  stopServer,
  us,
  withTimeout,
  type CheckFn,
  type Correctness,
  type Expected,
  type HasApp,
  type HttpFigure,
  type Server,
} from './harness.ts'

const flags = parseFlags(process.argv.slice(2), {
  /** The other checkout (A). */
  baseline: '',
  rounds: 3,
  scale: 1,
  seed: 42,
  quick: false,
  /** checkCacheSize of the "cache on" runs (the "cache off" runs use 0). */
  cacheSize: 100_000,
  out: 'bench/out',
  maxMinutes: 0,
})
const QUICK = flags.quick
const HTTP_CONNECTIONS = 64
const HTTP_SECONDS = QUICK ? 3 : 10
const HTTP_WARMUP_SECONDS = QUICK ? 0.5 : 1
const IMPORT_CHUNK = 10_000
const BATCH_SIZE = 50
/** Per-step bounds; the import and the index build grow with the data set. */
const SIZE = Math.max(1, flags.scale)
const STEP_MS = { open: 60_000, import: 600_000 * SIZE, index: 300_000 * SIZE, pass: 300_000 }

guardChildren(flags.maxMinutes || (flags.scale > 1 ? 120 : 30), 'bench/ab')

// ---- the two trees -------------------------------------------------------------------------

/** A Pemba instance of either tree, as far as this file uses it. */
interface AnyPemba extends HasApp {
  close(): Promise<void>
}

interface TreeModules {
  createPemba(config: unknown): Promise<AnyPemba>
  loadConfig(options: { env: Record<string, string>; argv: string[] }): unknown
}

interface Tree {
  name: 'A' | 'B'
  dir: string
  modules: TreeModules
  git: ReturnType<typeof gitState>
  /** The SQLite file of the tree's last import, and its store, which the later steps read. */
  dbPath: string
  storeId: string
}

interface ServiceOps {
  importTuples(storeId: string, keys: { user: string; relation: string; object: string }[]): Promise<number>
  check: CheckFn
  tupleIndexReady(storeId: string): Promise<boolean>
}

/**
 * serviceOps is the one place that knows where each tree keeps the service calls measured here.
 * It exists because issue 15 split the baseline's single `pemba.authz` (AuthzService) into
 * capability services (`pemba.writes`, `pemba.checks`, `pemba.evaluation`): the same calls, with
 * the same arguments, live under different names in A and B. Everything else this bench uses
 * (`createPemba`, `loadConfig`, the HTTP routes) is the same in both.
 */
function serviceOps(pemba: AnyPemba): ServiceOps {
  type Svc = {
    importTuples: (storeId: string, keys: unknown[], o: { chunkSize: number }) => Promise<number | { written: number; unchanged: number }>
    check: CheckFn
    tupleIndexReady: (storeId: string) => Promise<boolean>
  }
  const p = pemba as unknown as { authz?: Svc; writes: Svc; checks: Svc; evaluation: Svc }
  const [writes, checks, evaluation] = p.authz ? [p.authz, p.authz, p.authz] : [p.writes, p.checks, p.evaluation]
  return {
    importTuples: async (storeId, keys) => {
      // Before issue 17 importTuples answered a count; since, an account of what it did.
      const r = await writes.importTuples(storeId, keys, { chunkSize: IMPORT_CHUNK })
      return typeof r === 'number' ? r : r.written + r.unchanged
    },
    check: (storeId, input) => checks.check(storeId, input),
    tupleIndexReady: (storeId) => evaluation.tupleIndexReady(storeId),
  }
}

async function loadTree(name: 'A' | 'B', dir: string): Promise<Tree> {
  for (const f of ['src/server.ts', 'src/config.ts', 'src/cli/main.ts', 'node_modules/.bin/tsx'])
    if (!existsSync(join(dir, f))) throw new Error(`${name} (${dir}) has no ${f}`)
  const url = (f: string) => pathToFileURL(join(dir, f)).href
  const server = (await import(url('src/server.ts'))) as Pick<TreeModules, 'createPemba'>
  const config = (await import(url('src/config.ts'))) as Pick<TreeModules, 'loadConfig'>
  return {
    name,
    dir,
    modules: { createPemba: server.createPemba, loadConfig: config.loadConfig },
    git: gitState(dir),
    dbPath: '',
    storeId: '',
  }
}

function openPemba(tree: Tree, dbPath: string, cacheSize: number): Promise<AnyPemba> {
  const config = tree.modules.loadConfig({
    env: { PEMBA_DATABASE_URL: `sqlite:${dbPath}`, ...cacheEnv(cacheSize) },
    argv: [],
  })
  return withTimeout(tree.modules.createPemba(config), STEP_MS.open, `${tree.name}: createPemba`)
}

const closePemba = (tree: Tree, p: AnyPemba) => withTimeout(p.close(), STEP_MS.open, `${tree.name}: close`)

function removeDb(path: string): void {
  for (const f of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(f, { force: true })
}

/** Alternates which tree goes first: A first in even rounds, B first in odd ones. */
const inTurn = <T>(pair: [T, T], round: number): T[] => (round % 2 ? [pair[1], pair[0]] : pair)

// ---- the run -------------------------------------------------------------------------------

type Answers = (boolean | string)[]
type PerTree<T> = Record<'A' | 'B', T[]>

/** What every step of the run shares. */
interface Run {
  ds: LoadedDataset
  expected: Expected
  keys: { user: string; relation: string; object: string }[]
  modelDsl: string
  dataRoot: string
  trees: [Tree, Tree]
  /** SQLite files this run made: removed at the end. */
  created: string[]
  failures: string[]
  /** Records a failure of the run (reported after the table; the run then exits 1). */
  fail(s: string): void
  /** Judges a list of answers, and compares A's with B's under the same `key`. */
  judgeAnswers(tree: Tree, key: string, answers: Answers): Correctness
}

function newRun(ds: LoadedDataset, trees: [Tree, Tree]): Run {
  const expected = loadExpected(ds)
  const failures: string[] = []
  const fail = (s: string) => {
    log(`FAILURE: ${s}`)
    failures.push(s)
  }
  const firstOfPair = new Map<string, Answers>()
  return {
    ds,
    expected,
    keys: ds.tuples.map(tupleKey),
    modelDsl: readFileSync(join(ROOT, 'bench/model.fga'), 'utf8'),
    dataRoot: join(ROOT, 'bench-data'),
    trees,
    created: [],
    failures,
    fail,
    judgeAnswers(tree, key, answers) {
      const c = judge(ds.checks, answers, expected)
      if (c.errors || c.wrong) fail(`${tree.name} ${key}: ${correctText(c)}; ${c.examples.join('; ')}`)
      const other = firstOfPair.get(key)
      if (!other) {
        firstOfPair.set(key, answers)
        return c
      }
      firstOfPair.delete(key)
      const differ = ds.checks.filter((_, i) => other[i] !== answers[i]).map((x) => `#${x.id}`)
      if (differ.length)
        fail(`${key}: A and B differ on ${differ.length} checks (${differ.slice(0, 5).join(', ')})`)
      return c
    },
  }
}

/**
 * importRounds loads the data set into a fresh SQLite file per tree and round through the tree's
 * store-layer import; each tree keeps its last file (and store) for the steps after.
 */
async function importRounds(run: Run): Promise<PerTree<{ tuplesPerSec: number; ms: number }>> {
  const out: PerTree<{ tuplesPerSec: number; ms: number }> = { A: [], B: [] }
  for (let r = 0; r < flags.rounds; r++) {
    for (const tree of inTurn(run.trees, r)) {
      const dbPath = join(run.dataRoot, `ab-${tree.name}-import-r${r}.db`)
      removeDb(dbPath)
      run.created.push(dbPath)
      const pemba = await openPemba(tree, dbPath, 0)
      let storeId: string
      let imported: number
      let took: number
      try {
        storeId = (await request(pemba, 'POST', '/stores', json({ name: 'bench-ab' }))).id
        const models = `/stores/${storeId}/authorization-models`
        await request(pemba, 'POST', models, run.modelDsl, 'text/plain')
        global.gc?.()
        const t0 = performance.now()
        imported = await withTimeout(
          serviceOps(pemba).importTuples(storeId, run.keys),
          STEP_MS.import,
          `${tree.name}: import`,
        )
        took = performance.now() - t0
      } finally {
        await closePemba(tree, pemba)
      }
      if (imported !== run.keys.length)
        run.fail(`${tree.name} import: ${imported} of ${run.keys.length} tuples`)
      const tuplesPerSec = imported / (took / 1000)
      out[tree.name].push({ tuplesPerSec, ms: took })
      log(`round ${r + 1} import ${tree.name}: ${num(tuplesPerSec)} tuples/s`)
      if (tree.dbPath) removeDb(tree.dbPath)
      tree.dbPath = dbPath
      tree.storeId = storeId
    }
  }
  return out
}

interface PassFigure {
  p50Us: number
  p99Us: number
  perSec: number
  correct: string
}

/**
 * inProcessRounds opens both trees on their files (`cacheSize` 0: "cold", the tuple index on),
 * builds their tuple indexes, then runs three passes of the checks with A's and B's passes
 * interleaved: passes 1 and 2 warm up the JIT (and fill the cache, when on), pass 3 is measured.
 * A full GC before each pass keeps one tree's garbage out of the other's figures.
 */
async function inProcessRounds(run: Run, mode: string, cacheSize: number): Promise<PerTree<PassFigure>> {
  const out: PerTree<PassFigure> = { A: [], B: [] }
  for (let r = 0; r < flags.rounds; r++) {
    const open: { tree: Tree; pemba: AnyPemba; ops: ServiceOps }[] = []
    try {
      for (const tree of run.trees) {
        const pemba = await openPemba(tree, tree.dbPath, cacheSize)
        const ops = serviceOps(pemba)
        open.push({ tree, pemba, ops })
        const what = `${tree.name}: tuple index`
        if (!(await withTimeout(ops.tupleIndexReady(tree.storeId), STEP_MS.index, what)))
          run.fail(`${tree.name}: the tuple index was not built`)
      }
      for (let pass = 1; pass <= 3; pass++) {
        for (const { tree, ops } of inTurn([open[0], open[1]], r)) {
          global.gc?.()
          const p = await withTimeout(
            checkPass(ops.check, tree.storeId, run.ds.checks),
            STEP_MS.pass,
            `${tree.name}: check pass`,
          )
          const c = run.judgeAnswers(tree, `in-process ${mode} round ${r + 1} pass ${pass}`, p.answers)
          if (pass < 3) continue
          const { p50Us, p99Us, perSec } = p.mixed
          out[tree.name].push({ p50Us, p99Us, perSec, correct: correctText(c) })
          log(`round ${r + 1} in-process ${mode} ${tree.name}: p50 ${us(p50Us)}, p99 ${us(p99Us)}; ${correctText(c)}`)
        }
      }
    } finally {
      for (const { tree, pemba } of open) await closePemba(tree, pemba)
    }
  }
  return out
}

type HttpRounds = Record<string, (HttpFigure & { ratioToMinimal?: number })[]>

/**
 * httpRounds starts the minimal route and, per tree, a server with the cache off and one with it
 * on (each on its own copy of the tree's file, the tuple index preloaded), asks each Pemba every
 * check once (judged; it fills the cache), warms each up for a second, then drives them in turn,
 * the order rotating by round. Keys: `minimal`, `A-off`, `B-off`, `A-on`, `B-on`.
 */
async function httpRounds(run: Run): Promise<HttpRounds> {
  type Running = { key: string; tree?: Tree; server: Server }
  const servers: Running[] = []
  const out: HttpRounds = {}
  try {
    log('HTTP: starting the minimal route and each tree with the cache off and on ...')
    const minimal = await startServer('bench/minimal-server.ts', [], { PORT: '0' })
    servers.push({ key: 'minimal', server: minimal })
    for (const [mode, cacheSize] of [['off', 0], ['on', flags.cacheSize]] as const) {
      for (const tree of run.trees) {
        const dbPath = join(run.dataRoot, `ab-${tree.name}-http-${mode}.db`)
        removeDb(dbPath)
        run.created.push(dbPath)
        copyFileSync(tree.dbPath, dbPath)
        if (existsSync(`${tree.dbPath}-wal`)) copyFileSync(`${tree.dbPath}-wal`, `${dbPath}-wal`)
        const env = {
          PEMBA_HOST: '127.0.0.1',
          PEMBA_PORT: '0',
          PEMBA_DATABASE_URL: `sqlite:${dbPath}`,
          PEMBA_TUPLE_INDEX_PRELOAD: 'on',
          ...cacheEnv(cacheSize),
        }
        const server = await startServer('src/cli/main.ts', ['serve'], env, tree.dir)
        servers.push({ key: `${tree.name}-${mode}`, tree, server })
        const { answers } = await withTimeout(
          httpAnswers(server.url, tree.storeId, run.ds.checks, run.expected, BATCH_SIZE),
          STEP_MS.pass,
          `${tree.name}: HTTP answers`,
        )
        run.judgeAnswers(tree, `HTTP cache ${mode}`, answers)
      }
    }
    const bodies = run.ds.checks.map((c) =>
      json({ tuple_key: { user: c.subject, relation: c.permission, object: c.resource } }),
    )
    const drive = (s: Running, seconds: number) =>
      withTimeout(
        cannon(
          s.server.url,
          `/stores/${s.tree?.storeId ?? 'minimal'}/check`,
          bodies,
          HTTP_CONNECTIONS,
          seconds,
          HTTP_WARMUP_SECONDS,
        ),
        (seconds + HTTP_WARMUP_SECONDS + 60) * 1000,
        `${s.key}: autocannon`,
      )
    for (const s of servers) await drive(s, 1) // JIT warm-up, not measured
    for (let r = 0; r < flags.rounds; r++) {
      const round: Record<string, HttpFigure> = {}
      for (const s of servers.map((_, i) => servers[(i + r) % servers.length])) {
        const f = (round[s.key] = await drive(s, HTTP_SECONDS))
        if (f.non2xx || f.errors || f.timeouts)
          run.fail(`${s.key} round ${r + 1}: non-2xx ${f.non2xx}, errors ${f.errors}, timeouts ${f.timeouts}`)
      }
      for (const { key } of servers) {
        const f = round[key]
        const ratio = key === 'minimal' ? undefined : f.reqPerSec / round.minimal.reqPerSec
        ;(out[key] ??= []).push({ ...f, ratioToMinimal: ratio })
        const ofMinimal = ratio ? `, ${num(ratio * 100, 1)} % of minimal` : ''
        log(`round ${r + 1} HTTP ${key}: ${num(f.reqPerSec)} req/s${ofMinimal}`)
      }
    }
  } finally {
    for (const s of servers) await stopServer(s.server)
  }
  return out
}

interface Figure {
  figure: string
  unit: 'tuples/s' | 'µs' | 'req/s' | '%'
  better: 'higher' | 'lower'
  /** The medians over rounds, and B/A of them. */
  A: number
  B: number
  ratio: number
  perRoundRatios: number[]
  roundsA: number[]
  roundsB: number[]
}

function figure(label: string, unit: Figure['unit'], a: number[], b: number[]): Figure {
  return {
    figure: label,
    unit,
    better: unit === 'µs' ? 'lower' : 'higher',
    A: median(a),
    B: median(b),
    ratio: median(b) / median(a),
    perRoundRatios: b.map((x, i) => x / a[i]),
    roundsA: a,
    roundsB: b,
  }
}

// below 100 µs one decimal: a warm p50 of 1–3 µs would otherwise move in ±30 % steps
const show = (x: number, unit: Figure['unit']) =>
  unit === 'µs'
    ? x < 100
      ? `${num(x, 1)} µs`
      : us(x)
    : unit === '%'
      ? `${num(x, 1)} %`
      : `${num(x)} ${unit}`

async function main(): Promise<void> {
  if (!flags.baseline) throw new Error('--baseline <dir> (the checkout to compare with) is required')
  if (!(flags.rounds >= 1)) throw new Error('--rounds must be at least 1')
  const started = new Date()
  const loadStart = os.loadavg()[0]
  const dataRoot = join(ROOT, 'bench-data')
  mkdirSync(dataRoot, { recursive: true })
  const ds = loadOrGenerate(dataRoot, { scale: flags.scale, seed: flags.seed, checks: 2000 })
  log(`data set ${relative(ROOT, ds.dir)}: ${num(ds.tuples.length)} tuples, ${ds.checks.length} checks`)
  log(`loading A from ${resolve(flags.baseline)} and B from ${ROOT} ...`)
  const run = newRun(ds, [await loadTree('A', resolve(flags.baseline)), await loadTree('B', ROOT)])
  const { expected, failures, trees } = run
  // also when a signal or --max-minutes ends the run (they exit without unwinding)
  process.on('exit', () => run.created.forEach(removeDb))
  if (expected.verified) log(`answers judged against ${expected.dir}`)
  else log(`answers NOT judged (${expected.mismatch.join('; ')}); A and B must still agree`)

  try {
    const imports = await importRounds(run)
    const inProcess = {
      cold: await inProcessRounds(run, 'cold', 0),
      warm: await inProcessRounds(run, 'warm', flags.cacheSize),
    }
    const http = await httpRounds(run)

    const figures = [
      figure(
        'bulk import (store-layer importTuples)',
        'tuples/s',
        imports.A.map((x) => x.tuplesPerSec),
        imports.B.map((x) => x.tuplesPerSec),
      ),
    ]
    for (const [mode, name] of [['cold', 'cache off (index on)'], ['warm', 'cache on, warm']] as const) {
      for (const q of ['p50Us', 'p99Us'] as const) {
        const { A, B } = inProcess[mode]
        const label = `check in-process, ${name}: ${q.slice(0, 3)}`
        figures.push(figure(label, 'µs', A.map((x) => x[q]), B.map((x) => x[q])))
      }
    }
    for (const [mode, name] of [['off', 'cache off'], ['on', 'cache on, warm']] as const) {
      const [a, b] = [http[`A-${mode}`], http[`B-${mode}`]]
      const perSec = (xs: HttpFigure[]) => xs.map((x) => x.reqPerSec)
      const ofMinimal = (xs: HttpRounds[string]) => xs.map((x) => x.ratioToMinimal! * 100)
      figures.push(
        figure(`HTTP check, ${name} (${HTTP_CONNECTIONS} conn, ${HTTP_SECONDS} s)`, 'req/s', perSec(a), perSec(b)),
        figure(`HTTP check, ${name}: % of the minimal route`, '%', ofMinimal(a), ofMinimal(b)),
      )
    }

    const loadEnd = os.loadavg()[0]
    const cpus = os.cpus()
    const machine = `${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores, ${num(os.totalmem() / 2 ** 30, 1)} GiB`
    const treeText = (t: Tree) =>
      `${t.dir} (${t.git ? `commit ${t.git.commit}${t.git.srcModified ? ' with uncommitted changes in src/' : ''}` : 'no git'})`
    const minimal = http.minimal.map((x) => num(x.reqPerSec)).join(' / ')
    const lines = [
      `Pemba A/B bench, ${started.toISOString()}: scale ${flags.scale}, seed ${flags.seed}: ` +
        `${num(run.keys.length)} tuples, ${ds.checks.length} checks; ${flags.rounds} rounds` +
        `${QUICK ? ' (--quick)' : ''}; medians over rounds`,
      `A: ${treeText(trees[0])}`,
      `B: ${treeText(trees[1])}`,
      `machine: ${machine}; Node ${process.version}; ` +
        `load average (1 min) ${loadStart.toFixed(2)} at the start, ${loadEnd.toFixed(2)} at the end`,
      `answers: ${expected.verified ? `judged against ${expected.dir}, and` : 'NOT judged; only'} ` +
        `A's and B's compared: ${failures.length ? `${failures.length} FAILURES` : 'all right, all equal'}`,
      `HTTP: the minimal Hono route answered ${minimal} req/s in the rounds; ` +
        'autocannon shares the cores with the servers',
      '',
      '| figure | A | B | B/A | B/A per round | better |',
      '|---|---:|---:|---:|---:|---|',
      ...figures.map(
        (f) =>
          `| ${f.figure} | ${show(f.A, f.unit)} | ${show(f.B, f.unit)} | ${num(f.ratio, 3)} | ` +
          `${f.perRoundRatios.map((x) => num(x, 2)).join(', ')} | ${f.better} |`,
      ),
    ]
    console.log(lines.join('\n'))

    const outDir = join(ROOT, flags.out)
    mkdirSync(outDir, { recursive: true })
    const stamp = started.toISOString().replace(/:/g, '').replace(/\..*/, 'Z')
    const outFile = join(outDir, `ab-${stamp}.json`)
    const report = {
      date: started.toISOString(),
      machine,
      node: process.version,
      loadAverage1m: { start: loadStart, end: loadEnd },
      params: { ...flags, httpSeconds: HTTP_SECONDS, httpConnections: HTTP_CONNECTIONS, importChunk: IMPORT_CHUNK },
      trees: Object.fromEntries(trees.map((t) => [t.name, { dir: t.dir, git: t.git }])),
      dataset: { dir: relative(ROOT, ds.dir), sha256: ds.sha256, expected: { dir: expected.dir, verified: expected.verified } },
      figures,
      import: imports,
      inProcess,
      http,
      failures,
      table: lines.join('\n'),
    }
    writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n')
    log(`\nwrote ${relative(ROOT, outFile)}`)
  } finally {
    for (const f of run.created) removeDb(f)
  }
  if (failures.length) throw new Error(`${failures.length} failures:\n  ${failures.join('\n  ')}`)
}

main().then(
  () => {
    killAll()
    process.exit(0)
  },
  (err) => {
    console.error('bench/ab failed:', err)
    killAll()
    process.exit(1)
  },
)
