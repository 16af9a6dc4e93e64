/**
 * An interrupted `pemba tuple import` resumed: the real command (`node bin/pemba.js`) is killed
 * with SIGKILL mid-way, once its resume state shows committed chunks, then run again with
 * `--resume`. No tuple is lost or doubled, and the changelog holds each tuple exactly once:
 * directly against a SQLite database (a file big enough to kill in the middle) and through HTTP
 * (a server slowed by a delaying proxy). A resume of a changed file, or into another store, is
 * refused.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { formatTupleText } from '../../src/formats/tuple-file.ts'
import type { TupleKey } from '../../src/core/tuple.ts'
import type { Pemba } from '../../src/server.ts'
import { defaultStatePath, fileIdentity, resumeRefusal, type ResumeState } from '../../src/cli/import/resume.ts'
import { servePemba } from '../helpers/http-server.ts'
import { runPemba, type PembaProcess } from '../helpers/processes.ts'
import { createImportStore, openDatabase, pemba, sorted, storeTuples } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-resume-'))
const procs: PembaProcess[] = []
afterEach(async () => {
  for (const p of procs) p.kill()
  await Promise.all(procs.map((p) => p.exited))
  procs.length = 0
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function plainTuples(n: number): TupleKey[] {
  return Array.from({ length: n }, (_, i) => ({ user: `user:r${i}`, relation: 'viewer', object: `doc:${i % 997}` }))
}

/** run runs the real command to its end. */
async function run(args: string[]) {
  const p = runPemba(args, {})
  procs.push(p)
  const code = await p.exited
  return { code, out: p.stdout(), err: p.stderr() }
}

/**
 * killMidway starts the import and SIGKILLs it as soon as its state file records a committed
 * line; resolves with that state (the test fails if the import finished first).
 */
async function killMidway(args: string[], statePath: string, signal?: NodeJS.Signals, started?: (p: PembaProcess) => void): Promise<ResumeState> {
  const p = runPemba(args, {})
  started?.(p)
  procs.push(p)
  let exited = false
  void p.exited.then(() => (exited = true))
  for (;;) {
    if (existsSync(statePath)) {
      try {
        const state = JSON.parse(readFileSync(statePath, 'utf8')) as ResumeState
        if (state.committedLine > 0) {
          if (signal) p.proc.kill(signal)
          else p.kill()
          await p.exited
          return JSON.parse(readFileSync(statePath, 'utf8')) as ResumeState
        }
      } catch {
        // Read while renamed over: try again.
      }
    }
    if (exited) throw new Error(`the import ended before it could be interrupted: ${p.stdout()} ${p.stderr()}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** twoStores: a SQLite database file with two stores of the import model. */
async function twoStores(name: string) {
  const databaseUrl = `sqlite:${join(dir, name)}`
  const setup = await openDatabase(databaseUrl)
  try {
    return { databaseUrl, storeId: await createImportStore(setup), other: await createImportStore(setup) }
  } finally {
    await setup.close()
  }
}

/** Each tuple in the changelog exactly once, and nothing else. */
async function expectChangelogOnce(p: Pemba, storeId: string, keys: TupleKey[]) {
  const seen: string[] = []
  let after: string | undefined
  // The change feed always hands back a cursor (to poll from later): an empty page ends it.
  for (;;) {
    const page = await p.writes.readChanges(storeId, { pageSize: 10_000, after })
    if (page.items.length === 0) break
    for (const c of page.items) seen.push(`${c.operation} ${c.objectType}:${c.objectId}#${c.relation}@${c.user}`)
    after = page.next
  }
  expect(seen.length).toBe(keys.length)
  expect(seen.sort()).toEqual(keys.map((k) => `write ${k.object}#${k.relation}@${k.user}`).sort())
}

describe('an interrupted import, resumed', () => {
  it('directly against the database: killed mid-way, --resume stores every tuple once', async () => {
    const { databaseUrl, storeId, other } = await twoStores('resume.db')
    const keys = plainTuples(20_000)
    const file = join(dir, 'big.jsonl')
    writeFileSync(file, formatTupleText(keys, 'jsonl'))
    const statePath = defaultStatePath(file, storeId)
    const args = ['tuple', 'import', file, '--store-id', storeId, '--database-url', databaseUrl, '--chunk-size', '100']

    const state = await killMidway(args, statePath)
    expect(state.committedLine).toBeGreaterThan(0)
    expect(state.committedLine).toBeLessThan(keys.length)
    expect(state.target).toBe(`database sqlite:${join(dir, 'resume.db')}, store ${storeId}`)

    // Into another store, the state does not apply (named with --state: by default each store has its own).
    const elsewhere = await run(['tuple', 'import', file, '--store-id', other, '--database-url', databaseUrl, '--resume', '--state', statePath])
    expect(elsewhere.code).toBe(1)
    expect(elsewhere.err).toMatch(/the interrupted import wrote to database .*, store 01\w+, not database/)

    const resumed = await run([...args, '--resume'])
    expect(resumed.code, resumed.err).toBe(0)
    expect(resumed.out).toContain(`(resumed after record ${state.committedRecord}, line ${state.committedLine})`)
    // A kill between a chunk's commit and the state's save sends that chunk again, where its
    // tuples count as unchanged (docs/import-export.md): at most one chunk of 100.
    const summary = /read (\d+), written (\d+), unchanged (\d+), refused 0/.exec(resumed.out)
    expect(summary, resumed.out).not.toBeNull()
    const [read, written, unchanged] = summary!.slice(1).map(Number)
    expect(read).toBe(keys.length)
    expect(written! + unchanged!).toBe(keys.length)
    expect(unchanged).toBeLessThanOrEqual(100)
    expect(existsSync(statePath)).toBe(false)

    const check = await openDatabase(databaseUrl)
    try {
      expect(sorted(await storeTuples(check, storeId))).toEqual(sorted(keys))
      await expectChangelogOnce(check, storeId, keys)
    } finally {
      await check.close()
    }
  })

  it('Ctrl-C mid-way: exit 130 and how to go on; --resume removes a killed run\'s stale state temporaries', async () => {
    const { databaseUrl, storeId } = await twoStores('sigint.db')
    const keys = plainTuples(20_000)
    const file = join(dir, 'sigint.jsonl')
    writeFileSync(file, formatTupleText(keys, 'jsonl'))
    const statePath = defaultStatePath(file, storeId)
    const args = ['tuple', 'import', file, '--store-id', storeId, '--database-url', databaseUrl, '--chunk-size', '100']
    let proc: PembaProcess | undefined
    const state = await killMidway(args, statePath, 'SIGINT', (p) => (proc = p))
    expect(await proc!.exited).toBe(130)
    expect(proc!.stderr()).toMatch(new RegExp(`interrupted \\(SIGINT\\) after record ${state.committedRecord} \\(line ${state.committedLine}\\), \\d+ tuples stored; state in .*: rerun with --resume to continue`))
    // What a run killed between writing its state and renaming it leaves (no such process runs).
    const stale = `${statePath}.4194300.tmp`
    writeFileSync(stale, '{')
    const resumed = await run([...args, '--resume'])
    expect(resumed.code, resumed.err).toBe(0)
    expect(resumed.out).toContain(`(resumed after record ${state.committedRecord}, line ${state.committedLine})`)
    expect(existsSync(stale)).toBe(false)
    const check = await openDatabase(databaseUrl)
    try {
      expect(sorted(await storeTuples(check, storeId))).toEqual(sorted(keys))
    } finally {
      await check.close()
    }
  })

  it('through HTTP to a slowed server: killed mid-way, --resume stores every tuple once', async () => {
    const served = await servePemba({ logLevel: 'warn' })
    // A proxy that holds each write for 40 ms, so the import is still running when it is killed.
    const proxy: Server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', async () => {
        if (req.url?.endsWith('/write')) await new Promise((r) => setTimeout(r, 40))
        const answer = await fetch(served.url + req.url, { method: req.method, headers: { 'content-type': 'application/json' }, body: chunks.length ? Buffer.concat(chunks) : undefined })
        res.writeHead(answer.status, { 'content-type': 'application/json' })
        res.end(await answer.text())
      })
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
    try {
      const storeId = await createImportStore(served.pemba)
      const keys = plainTuples(6000)
      const file = join(dir, 'http.csv')
      writeFileSync(file, formatTupleText(keys, 'csv'))
      const statePath = join(dir, 'http-state.json')
      const args = ['tuple', 'import', file, '--store-id', storeId, '--api-url', url, '--state', statePath, '--concurrency', '3']
      const state = await killMidway(args, statePath)
      expect(state.committedLine).toBeLessThan(keys.length + 1)

      const resumed = await run([...args, '--resume'])
      expect(resumed.code, resumed.err).toBe(0)
      // CSV: the header is line 1, so record n is on line n + 1.
      expect(resumed.out).toContain(`(resumed after record ${state.committedRecord}, line ${state.committedRecord + 1})`)
      expect(resumed.err).toContain(`→ HTTP ${url}, store ${storeId}`)
      expect(sorted(await storeTuples(served.pemba, storeId))).toEqual(sorted(keys))
      await expectChangelogOnce(served.pemba, storeId, keys)
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()))
      await served.close()
    }
  })

  it('a torn state: ignored (and replaced) without --resume, a clear refusal with it', async () => {
    const { databaseUrl, storeId, other } = await twoStores('torn.db')
    const file = join(dir, 'torn.jsonl')
    writeFileSync(file, formatTupleText(plainTuples(5), 'jsonl'))
    // Each store its own default state, so two imports of one file never share one.
    expect(defaultStatePath(file, storeId)).not.toBe(defaultStatePath(file, other))
    const statePath = defaultStatePath(file, storeId)
    const args = ['tuple', 'import', file, '--store-id', storeId, '--database-url', databaseUrl]
    writeFileSync(statePath, '{"version": 2, "committedRec')
    const resumed = await pemba([...args, '--resume'])
    expect(resumed.code).toBe(1)
    expect(resumed.err).toMatch(/the resume state .*torn\.jsonl\.\w+\.pemba-import\.json cannot be read .*remove it to start over/)
    expect(resumed.err).not.toMatch(/SyntaxError|    at /)
    const fresh = await pemba(args)
    expect(fresh.code, fresh.err).toBe(0)
    expect(fresh.err).toMatch(/cannot be read .*; starting over/)
    expect(fresh.out).toMatch(/read 5, written 5/)
    expect(existsSync(statePath)).toBe(false)
  })

  it('refuses to resume a file that changed', () => {
    const file = join(dir, 'changing.jsonl')
    writeFileSync(file, formatTupleText(plainTuples(10), 'jsonl'))
    const before = fileIdentity(file)
    const state: ResumeState = { version: 2, file, identity: before, target: 't', committedRecord: 3, committedLine: 3, counts: { read: 3, accepted: 3, refused: 0 }, updatedAt: '' }
    expect(resumeRefusal(state, fileIdentity(file), 't')).toBeUndefined()
    appendFileSync(file, '{"user":"user:x","relation":"viewer","object":"doc:x"}\n')
    expect(resumeRefusal(state, fileIdentity(file), 't')).toMatch(/the file changed since the interrupted import/)
    expect(resumeRefusal(state, before, 'u')).toMatch(/wrote to t, not u/)
  })
})
