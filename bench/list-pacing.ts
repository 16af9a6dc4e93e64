/**
 * `npm run bench:lists`: what pacing (PEMBA_LIST_SLICE_MS, src/engine/pacing.ts) costs a
 * list-objects and what it buys the other requests, measured in one run with pacing off (0)
 * and on (the default, 5 ms), alternating rounds so both see the same machine:
 *
 * - a store where one user reaches 10,000 documents through 100 folders (the flood of issue 22),
 *   in-process, cache on (the default) and off: latency of one list, p50 and max;
 * - the longest the event loop was held (a 1 ms timer's largest gap) while four such lists run
 *   at once: what a health probe or a check would wait;
 * - the data set's list-objects requests (bench-data, scale 1), when its SQLite file exists.
 *
 *   npm run bench:lists -- [--rounds 5]
 *
 * A benchmark, not a test: it never fails on a slow figure.
 *
 * @module
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../src/config.ts'
import { createPemba, type Pemba } from '../src/server.ts'

const ROOT = new URL('..', import.meta.url).pathname
const roundsArg = process.argv.indexOf('--rounds')
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 5

const MODEL = {
  schema_version: '1.1',
  type_definitions: [
    { type: 'user' },
    { type: 'folder', relations: { viewer: { this: {} } }, metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user' }] } } } },
    {
      type: 'document',
      relations: {
        parent: { this: {} },
        viewer: { union: { child: [{ this: {} }, { tupleToUserset: { tupleset: { relation: 'parent' }, computedUserset: { relation: 'viewer' } } }] } },
      },
      metadata: { relations: { parent: { directly_related_user_types: [{ type: 'folder' }] }, viewer: { directly_related_user_types: [{ type: 'user' }] } } },
    },
  ],
}

async function call(pemba: Pemba, method: string, path: string, body?: unknown): Promise<any> {
  const res = await pemba.app.request(path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : undefined
}

async function instance(databaseUrl: string, sliceMs: number, cache: boolean): Promise<Pemba> {
  const env: Record<string, string> = { PEMBA_DATABASE_URL: databaseUrl, PEMBA_LIST_SLICE_MS: String(sliceMs), PEMBA_ACCESS_LOG: 'off', PEMBA_LOG_LEVEL: 'warn' }
  if (!cache) Object.assign(env, { PEMBA_CHECK_CACHE_SIZE: '0', PEMBA_TUPLE_CACHE_SIZE: '0' })
  return createPemba(loadConfig({ env, argv: [] }), { sweeper: false })
}

/** The 10k-document store, written once into a SQLite file both instances open. */
async function floodStore(file: string): Promise<string> {
  const pemba = await instance(`sqlite:${file}`, 5, true)
  const storeId = (await call(pemba, 'POST', '/stores', { name: 'flood' })).id
  await call(pemba, 'POST', `/stores/${storeId}/authorization-models`, MODEL)
  const tuples: { user: string; relation: string; object: string }[] = []
  for (let f = 0; f < 100; f++) {
    tuples.push({ user: 'user:anne', relation: 'viewer', object: `folder:f${f}` })
    for (let d = 0; d < 100; d++) tuples.push({ user: `folder:f${f}`, relation: 'parent', object: `document:f${f}d${d}` })
  }
  for (let i = 0; i < tuples.length; i += 100) await call(pemba, 'POST', `/stores/${storeId}/write`, { writes: { tuple_keys: tuples.slice(i, i + 100) } })
  await pemba.close()
  return storeId
}

/** maxLoopGap runs `work` while a 1 ms timer measures the longest the event loop was held. */
async function maxLoopGap(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now()
  let max = 0
  const timer = setInterval(() => {
    const now = performance.now()
    max = Math.max(max, now - last)
    last = now
  }, 1)
  await work()
  clearInterval(timer)
  // The stretch since the timer last ran counts too (without pacing, the whole run is one).
  return Math.max(max, performance.now() - last)
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (ms: number) => `${ms.toFixed(1)} ms`

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-list-pacing-'))
  try {
    const file = join(dir, 'flood.db')
    const storeId = await floodStore(file)
    const body = { type: 'document', relation: 'viewer', user: 'user:anne' }
    const rows: string[][] = []
    for (const cache of [true, false]) {
      const off = await instance(`sqlite:${file}`, 0, cache)
      const on = await instance(`sqlite:${file}`, 5, cache)
      const figures = new Map<Pemba, { one: number[]; gap: number[] }>([
        [off, { one: [], gap: [] }],
        [on, { one: [], gap: [] }],
      ])
      // Warm both (tuple index, model).
      for (const p of [off, on]) await p.lists.listObjects(storeId, body)
      for (let round = 0; round < ROUNDS; round++) {
        for (const p of round % 2 ? [on, off] : [off, on]) {
          const f = figures.get(p)!
          const t = performance.now()
          const r = await p.lists.listObjects(storeId, body)
          f.one.push(performance.now() - t)
          if (r.objects.length !== 10_000) throw new Error(`expected 10000 objects, got ${r.objects.length}`)
          f.gap.push(await maxLoopGap(() => Promise.all([0, 1, 2, 3].map(() => p.lists.listObjects(storeId, body)))))
        }
      }
      for (const [p, f] of figures) {
        rows.push([
          `10k documents, cache ${cache ? 'on' : 'off'}, slice ${p === off ? 'off (0)' : '5 ms'}`,
          `${fmt(median(f.one))} / ${fmt(Math.max(...f.one))}`,
          `${fmt(median(f.gap))} / ${fmt(Math.max(...f.gap))}`,
        ])
      }
      await off.close()
      await on.close()
    }
    // The bench data set's lookups, when its database is there (npm run bench makes it).
    const dsFile = join(ROOT, 'bench-data', 'pemba-bench-scale-1-seed-42.db')
    const lookupsFile = join(ROOT, 'bench-data', 'scale-1-seed-42', 'lookups.jsonl')
    if (existsSync(dsFile) && existsSync(lookupsFile)) {
      const copy = join(dir, 'bench.db')
      copyFileSync(dsFile, copy)
      const lookups = readFileSync(lookupsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { resourceType: string; permission: string; subject: string })
      const off = await instance(`sqlite:${copy}`, 0, false)
      const on = await instance(`sqlite:${copy}`, 5, false)
      const stores = await off.datastore.listStores({ pageSize: 10 })
      const benchStore = stores.items[0].id
      const times = new Map<Pemba, number[]>([
        [off, []],
        [on, []],
      ])
      for (let round = 0; round <= ROUNDS; round++) {
        for (const p of round % 2 ? [on, off] : [off, on]) {
          for (const l of lookups) {
            const t = performance.now()
            await p.lists.listObjects(benchStore, { type: l.resourceType, relation: l.permission, user: l.subject })
            if (round > 0) times.get(p)!.push(performance.now() - t)
          }
        }
      }
      for (const [p, xs] of times) {
        rows.push([`data set lookups (scale 1, ${lookups.length}), cache off, slice ${p === off ? 'off (0)' : '5 ms'}`, `${fmt(median(xs))} / ${fmt(Math.max(...xs))}`, ''])
      }
      await off.close()
      await on.close()
    }
    console.log(`\nlist-objects with pacing off and on (${ROUNDS} rounds, alternating), Node ${process.version}\n`)
    console.log('| measurement | one list, p50 / max | event loop held, 4 lists at once, p50 / max |')
    console.log('|---|---|---|')
    for (const r of rows) console.log(`| ${r.join(' | ')} |`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
