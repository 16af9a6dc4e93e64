/**
 * The server as an operator runs it: `node bin/pemba.js serve` (what `npm start` does) in its
 * own process, configured through the environment, on a SQLite file. Covers the `listening on`
 * line, a walkthrough over real HTTP, graceful SIGTERM with requests in flight, durability across
 * a restart, a bad PEMBA_PORT, and `migrate`.
 */
import Database from 'better-sqlite3'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const PEMBA = join(ROOT, 'bin', 'pemba.js')
const START_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 20_000
const REQUEST_TIMEOUT_MS = 10_000

interface Running {
  proc: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Resolves once with the exit code (null when killed by a signal) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

interface Server extends Running {
  url: string
}

const live = new Set<ChildProcess>()
const tmpDirs: string[] = []

/** Kill a spawned process and whatever it spawned. */
function killTree(proc: ChildProcess): void {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return
  try {
    process.kill(-proc.pid, 'SIGKILL') // the process group we created with detached: true
  } catch {
    try {
      proc.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
}

afterEach(() => {
  for (const p of live) killTree(p)
  live.clear()
})

afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true })
})

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pemba-e2e-'))
  tmpDirs.push(d)
  return d
}

function run(args: string[], env: Record<string, string>): Running {
  const proc = spawn(process.execPath, [PEMBA, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so cleanup reaches whatever it spawned too
  })
  live.add(proc)
  let out = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }))
  })
  return { proc, stdout: () => out, stderr: () => err, exited }
}

/** waitFor polls `cond` until it holds, or fails with `what` after `ms`. */
async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+)/

async function startServer(dbFile: string, extraEnv: Record<string, string> = {}): Promise<Server> {
  const r = run(['serve'], {
    PEMBA_PORT: '0',
    PEMBA_HOST: '127.0.0.1',
    PEMBA_DATABASE_URL: `sqlite:${dbFile}`,
    ...extraEnv,
  })
  let exitedEarly = false
  void r.exited.then(() => (exitedEarly = true))
  await waitFor(
    () => LISTENING.test(r.stdout()) || exitedEarly,
    START_TIMEOUT_MS,
    () => `the listening line (stdout: ${r.stdout()}; stderr: ${r.stderr()})`,
  )
  if (!LISTENING.test(r.stdout())) {
    throw new Error(`server exited before listening (stdout: ${r.stdout()}; stderr: ${r.stderr()})`)
  }
  const port = Number(LISTENING.exec(r.stdout())![1])
  expect(port).toBeGreaterThan(0)
  return { ...r, url: `http://127.0.0.1:${port}` }
}

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  body: any
}

/**
 * send makes one HTTP request with node:http (optionally through a given keep-alive agent).
 * `body` may be a string (sent as is, with its content type) or JSON.
 */
function send(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  opts: { agent?: http.Agent; contentType?: string } = {},
): Promise<Reply> {
  const payload =
    body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
  return withTimeout(
    new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        new URL(path, base),
        {
          method,
          agent: opts.agent,
          headers:
            payload === undefined
              ? {}
              : {
                  'content-type': opts.contentType ?? 'application/json',
                  'content-length': Buffer.byteLength(payload),
                },
        },
        (res) => collect(res).then(resolve, reject),
      )
      req.on('error', reject)
      req.end(payload)
    }),
    REQUEST_TIMEOUT_MS,
    `${method} ${path}`,
  )
}

function collect(res: http.IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let text = ''
    res.setEncoding('utf8')
    res.on('data', (d: string) => (text += d))
    res.on('error', reject)
    res.on('end', () => {
      let body: unknown
      try {
        body = text ? JSON.parse(text) : undefined
      } catch {
        body = undefined
      }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body })
    })
  })
}

/**
 * A request whose headers and first half of body are on the wire (so the server is already
 * handling it), and whose second half is sent only when `finish()` is called.
 */
interface Pending {
  finish(): void
  reply: Promise<Reply>
  reusedSocket: boolean
}

function startPartial(base: string, agent: http.Agent, path: string, body: unknown): Pending {
  const payload = Buffer.from(JSON.stringify(body))
  const half = Math.floor(payload.length / 2)
  const req = http.request(new URL(path, base), {
    method: 'POST',
    agent,
    headers: { 'content-type': 'application/json', 'content-length': payload.length },
  })
  const reply = withTimeout(
    new Promise<Reply>((resolve, reject) => {
      req.on('response', (res) => collect(res).then(resolve, reject))
      req.on('error', reject)
    }),
    REQUEST_TIMEOUT_MS + EXIT_TIMEOUT_MS,
    `in-flight POST ${path}`,
  )
  req.flushHeaders()
  req.write(payload.subarray(0, half))
  return {
    finish: () => req.end(payload.subarray(half)),
    reply,
    get reusedSocket() {
      return req.reusedSocket
    },
  }
}

const DSL = `model
  schema 1.1
type user
type team
  relations
    define member: [user]
type document
  relations
    define owner: [user]
    define viewer: [user, team#member] or owner
`

/** Creates a store, writes the model as DSL (text/plain) and some tuples. */
async function seed(base: string): Promise<{ store: string; model: string }> {
  const created = await send(base, 'POST', '/stores', { name: 'process-e2e' })
  expect(created.status, created.text).toBe(201)
  const store = created.body.id as string
  expect(store).toMatch(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/)

  const model = await send(base, 'POST', `/stores/${store}/authorization-models`, DSL, {
    contentType: 'text/plain',
  })
  expect(model.status, model.text).toBe(201)
  expect(model.body.authorization_model_id).toMatch(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/)

  const write = await send(base, 'POST', `/stores/${store}/write`, {
    writes: {
      tuple_keys: [
        { user: 'user:anne', relation: 'owner', object: 'document:1' },
        { user: 'user:bob', relation: 'member', object: 'team:support' },
        { user: 'team:support#member', relation: 'viewer', object: 'document:2' },
      ],
    },
  })
  expect(write.status, write.text).toBe(200)
  expect(write.body).toEqual({})
  return { store, model: model.body.authorization_model_id }
}

async function check(base: string, store: string, user: string, relation: string, object: string) {
  const r = await send(base, 'POST', `/stores/${store}/check`, {
    tuple_key: { user, relation, object },
  })
  expect(r.status, r.text).toBe(200)
  return r.body.allowed as boolean
}

describe('pemba serve, as a process', () => {
  it('serves, drains in-flight requests on SIGTERM, exits 0, and keeps its data', async () => {
    const dir = tempDir()
    const db = join(dir, 'pemba.db')
    const s = await startServer(db)

    const health = await send(s.url, 'GET', '/healthz')
    expect(health.status).toBe(200)
    expect(health.body).toEqual({ status: 'SERVING' })
    expect(health.headers['x-request-id']).toBeTruthy()

    const { store, model } = await seed(s.url)
    expect(await check(s.url, store, 'user:anne', 'viewer', 'document:1')).toBe(true)
    expect(await check(s.url, store, 'user:bob', 'viewer', 'document:2')).toBe(true)
    expect(await check(s.url, store, 'user:bob', 'viewer', 'document:1')).toBe(false)
    const lo = await send(s.url, 'POST', `/stores/${store}/list-objects`, {
      user: 'user:bob',
      relation: 'viewer',
      type: 'document',
    })
    expect(lo.status).toBe(200)
    expect(lo.body.objects).toEqual(['document:2'])
    expect(lo.headers['openfga-authorization-model-id']).toBe(model)

    // A write acknowledged just before shutdown.
    const late = await send(s.url, 'POST', `/stores/${store}/write`, {
      writes: { tuple_keys: [{ user: 'user:carl', relation: 'viewer', object: 'document:3' }] },
    })
    expect(late.status, late.text).toBe(200)

    // Two requests in flight: each on a keep-alive socket that has already served a request (so
    // the connection is surely accepted), with headers and half the body sent before SIGTERM.
    const agentA = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const agentB = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      expect((await send(s.url, 'GET', '/healthz', undefined, { agent: agentA })).status).toBe(200)
      expect((await send(s.url, 'GET', '/healthz', undefined, { agent: agentB })).status).toBe(200)
      const listing = startPartial(s.url, agentA, `/stores/${store}/list-objects`, {
        user: 'user:anne',
        relation: 'viewer',
        type: 'document',
      })
      const writing = startPartial(s.url, agentB, `/stores/${store}/write`, {
        writes: { tuple_keys: [{ user: 'user:dana', relation: 'owner', object: 'document:4' }] },
      })
      expect(listing.reusedSocket).toBe(true)
      expect(writing.reusedSocket).toBe(true)
      await new Promise((r) => setTimeout(r, 300)) // let the server parse both request heads

      expect(process.kill(s.proc.pid!, 'SIGTERM')).toBe(true)
      await waitFor(
        () => /SIGTERM received/.test(s.stdout()),
        EXIT_TIMEOUT_MS,
        () => `the drain message (${s.stdout()})`,
      )

      // The server has stopped accepting: a new connection is refused.
      await expect(send(s.url, 'GET', '/healthz')).rejects.toThrow(
        /ECONNREFUSED|ECONNRESET|socket hang up/,
      )

      listing.finish()
      writing.finish()
      const [l, w] = await Promise.all([listing.reply, writing.reply])
      expect(l.status, l.text).toBe(200)
      expect(l.body.objects).toEqual(['document:1'])
      expect(w.status, w.text).toBe(200)
      expect(w.body).toEqual({})

      // The clients still hold their keep-alive sockets: once the in-flight requests are answered
      // the server must let go of those sockets itself and exit promptly, not sit out Node's 5 s
      // keep-alive timeout (or a client that keeps the connection busy) before closing.
      const started = Date.now()
      const exit = await withTimeout(s.exited, EXIT_TIMEOUT_MS, 'the server to exit after SIGTERM')
      expect(exit, s.stderr()).toEqual({ code: 0, signal: null })
      // Soft, so the durability checks below still run when this fails.
      expect
        .soft(Date.now() - started, 'ms from the last in-flight response to exit')
        .toBeLessThan(4_000)
    } finally {
      agentA.destroy()
      agentB.destroy()
    }
    expect(s.stdout()).toMatch(/stopped/)
    expect(s.stderr()).not.toMatch(/drain timed out|internal error|fatal/)
    expect(existsSync(db)).toBe(true)

    // Started again on the same file: everything acknowledged before the stop is there.
    const again = await startServer(db)
    const stores = await send(again.url, 'GET', '/stores')
    expect(stores.status).toBe(200)
    expect(stores.body.stores.map((x: { id: string }) => x.id)).toEqual([store])
    const models = await send(again.url, 'GET', `/stores/${store}/authorization-models`)
    expect(models.body.authorization_models.map((m: { id: string }) => m.id)).toEqual([model])
    expect(await check(again.url, store, 'user:anne', 'viewer', 'document:1')).toBe(true)
    expect(await check(again.url, store, 'user:bob', 'viewer', 'document:2')).toBe(true)
    // The late write, and the one in flight at SIGTERM.
    expect(await check(again.url, store, 'user:carl', 'viewer', 'document:3')).toBe(true)
    expect(await check(again.url, store, 'user:dana', 'viewer', 'document:4')).toBe(true)
    const read = await send(again.url, 'POST', `/stores/${store}/read`, {})
    expect(read.status).toBe(200)
    expect(read.body.tuples).toHaveLength(5)
    const changes = await send(again.url, 'GET', `/stores/${store}/changes`)
    expect(changes.body.changes).toHaveLength(5)

    process.kill(again.proc.pid!, 'SIGTERM')
    expect(await withTimeout(again.exited, EXIT_TIMEOUT_MS, 'the second server to exit')).toEqual({
      code: 0,
      signal: null,
    })
  }, 120_000)

  it('SIGINT stops it cleanly too', async () => {
    const s = await startServer(join(tempDir(), 'pemba.db'))
    expect((await send(s.url, 'GET', '/healthz')).status).toBe(200)
    process.kill(s.proc.pid!, 'SIGINT')
    const exit = await withTimeout(s.exited, EXIT_TIMEOUT_MS, 'the server to exit after SIGINT')
    expect(exit, s.stderr()).toEqual({ code: 0, signal: null })
    expect(s.stdout()).toMatch(/SIGINT received/)
  }, 60_000)

  it('an invalid PEMBA_PORT exits non-zero with a clear message on stderr', async () => {
    const dir = tempDir()
    const r = run(['serve'], {
      PEMBA_PORT: 'abc',
      PEMBA_HOST: '127.0.0.1',
      PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`,
    })
    const exit = await withTimeout(r.exited, START_TIMEOUT_MS, 'the process to exit on a bad port')
    expect(exit.code).not.toBe(0)
    expect(exit.code).not.toBeNull()
    expect(r.stderr()).toMatch(/PEMBA_PORT/)
    expect(r.stderr()).toMatch(/abc/)
    expect(r.stderr()).not.toMatch(/at .*\.ts:\d+/) // a message, not a stack trace
    expect(r.stdout()).not.toMatch(/listening on/)
  }, 60_000)

  it('a port out of range is refused the same way', async () => {
    const r = run(['serve'], {
      PEMBA_PORT: '70000',
      PEMBA_DATABASE_URL: `sqlite:${join(tempDir(), 'pemba.db')}`,
    })
    const exit = await withTimeout(r.exited, START_TIMEOUT_MS, 'the process to exit on a bad port')
    expect(exit.code).not.toBe(0)
    expect(r.stderr()).toMatch(/PEMBA_PORT/)
    expect(r.stdout()).not.toMatch(/listening on/)
  }, 60_000)

  it('migrate applies the migrations to a fresh file and exits 0, idempotently', async () => {
    const dir = tempDir()
    const db = join(dir, 'fresh.db')
    expect(existsSync(db)).toBe(false)

    const first = run(['migrate'], { PEMBA_DATABASE_URL: `sqlite:${db}` })
    expect(
      await withTimeout(first.exited, START_TIMEOUT_MS, 'migrate to exit'),
      first.stderr(),
    ).toEqual({
      code: 0,
      signal: null,
    })
    expect(existsSync(db)).toBe(true)
    expect(first.stdout()).toBe(
      `migrations applied to sqlite:${db}: 0000_init, 0001_expiry_and_access_requests, ` +
        '0002_audit_and_token_issuers, 0003_decision_log_write_optimized, 0004_authzen, 0005_covering_reads\n',
    )

    const sqlite = new Database(db, { readonly: true })
    try {
      const tables = (
        sqlite.prepare(`select name from sqlite_master where type = 'table'`).all() as {
          name: string
        }[]
      ).map((t) => t.name)
      expect(tables).toEqual(
        expect.arrayContaining([
          'stores',
          'authorization_models',
          'tuples',
          'changelog',
          'assertions',
        ]),
      )
      expect(sqlite.prepare('select count(*) as n from stores').get()).toEqual({ n: 0 })
    } finally {
      sqlite.close()
    }

    const second = run(['migrate'], { PEMBA_DATABASE_URL: `sqlite:${db}` })
    expect(
      await withTimeout(second.exited, START_TIMEOUT_MS, 'a second migrate to exit'),
      second.stderr(),
    ).toEqual({
      code: 0,
      signal: null,
    })
    expect(second.stdout()).toBe(`nothing pending: sqlite:${db} has all 6 migrations applied\n`)

    // The migrated file serves.
    const s = await startServer(db)
    const { store } = await seed(s.url)
    expect(await check(s.url, store, 'user:anne', 'viewer', 'document:1')).toBe(true)
    process.kill(s.proc.pid!, 'SIGTERM')
    expect(await withTimeout(s.exited, EXIT_TIMEOUT_MS, 'the server to exit')).toEqual({
      code: 0,
      signal: null,
    })
  }, 90_000)
})
