/**
 * Clients that go away mid-request, against a real `pemba serve` process over raw sockets: half
 * a body (declared by Content-Length, or chunked) and then the connection closed; a streamed
 * list whose reader hangs up after the first bytes. None of it is an internal error: no
 * `internal_error` line and no stack trace in the log, at most one access-log line per request
 * at `info` with status 499, and the server serves on.
 */
import { connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { api, startServer, type PembaProcess } from '../helpers/processes.ts'

/** Sends `head` + `body` on a fresh connection, waits `ms`, then destroys the socket; resolves with what came back. */
function sendAndHangUp(url: string, raw: string, ms: number, hangUpOnData = false): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    let received = ''
    const socket = connect(Number(port), hostname, () => {
      socket.write(raw)
      setTimeout(() => socket.destroy(), ms)
    })
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      received += d
      if (hangUpOnData) socket.destroy()
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve(received))
  })
}

/** The JSON log lines whose request id is `id`, or all with `event`. */
function lines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('faults: clients that disconnect mid-request', () => {
  let pemba: (PembaProcess & { url: string }) | undefined
  let dir: string
  let store: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pemba-client-abort-'))
    pemba = await startServer({ PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`, PEMBA_ACCESS_LOG: 'on', PEMBA_LOG_FORMAT: 'json' })
    store = (await api(pemba.url, 'POST', '/stores', { name: 'aborts' })).body.id
    expect((await api(pemba.url, 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
    const writes = Array.from({ length: 50 }, (_, i) => ({ user: 'user:anne', relation: 'viewer', object: `document:${i}` }))
    expect((await api(pemba.url, 'POST', `/stores/${store}/write`, { writes: { tuple_keys: writes } })).status).toBe(200)
  }, 60_000)

  afterAll(() => {
    pemba?.kill()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('logs half a body, then a closed connection, as the client going away: no internal error, no stack', async () => {
    const p = pemba!
    const host = new URL(p.url).host
    const half = '{"writes":{"tuple_keys":[{"user":"user:bob","relation":"viewer",'
    const declared = `POST /stores/${store}/write HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${half.length + 100}\r\n\r\n${half}`
    const chunked = `POST /stores HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{"name":\r\n`
    const before = lines(p.stdout()).length
    for (let i = 0; i < 5; i++) {
      expect(await sendAndHangUp(p.url, declared, 150)).toBe('')
      expect(await sendAndHangUp(p.url, chunked, 150)).toBe('')
    }
    // Mid-response: a streamed list whose reader hangs up at its first bytes.
    const listBody = JSON.stringify({ type: 'document', relation: 'viewer', user: 'user:anne' })
    const streamed = `POST /stores/${store}/streamed-list-objects HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${listBody.length}\r\n\r\n${listBody}`
    for (let i = 0; i < 3; i++) await sendAndHangUp(p.url, streamed, 2000, true)

    // The server is fine, and the tuple half-sent was never written.
    const check = { tuple_key: { user: 'user:bob', relation: 'viewer', object: 'document:1' } }
    expect(await api(p.url, 'POST', `/stores/${store}/check`, check)).toMatchObject({ status: 200, body: { allowed: false } })
    expect(p.proc.exitCode).toBeNull()

    // Give the server a moment to log the closed requests.
    await new Promise((r) => setTimeout(r, 300))
    const logged = lines(p.stdout()).slice(before)
    expect(logged.filter((l) => l.event === 'internal_error')).toEqual([])
    expect(logged.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([])
    expect(p.stdout() + p.stderr()).not.toMatch(/\n\s+at |"stack"/)
    // One access-log line per half-sent request at most, at info, as 499 (the client closed).
    const aborted = logged.filter((l) => l.event === 'request' && l.status !== 200 && (l.route === '/stores' || l.route === '/stores/:store/write'))
    expect(aborted.length, JSON.stringify(aborted)).toBeLessThanOrEqual(10)
    expect(aborted.length).toBeGreaterThan(0)
    for (const l of aborted) {
      expect(l.level).toBe('info')
      expect(l.status).toBe(499)
    }
  }, 60_000)
})
