/**
 * The HTTP server's own limits, against a real `pemba serve` process: oversized headers get 431
 * (default PEMBA_MAX_HEADER_BYTES, 16 KiB, and a configured one), headers or bodies trickled in
 * (slow-loris) get 408 and lose their socket, bodies over PEMBA_BODY_LIMIT_BYTES get 413 whether
 * or not they say their length up front, and malformed requests get 400, every one of them in
 * the contract's `{code, message}` format, and the server goes on serving afterwards.
 */
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type PembaProcess } from '../helpers/processes.ts'

type Server = PembaProcess & { url: string }

/** rawExchange writes `chunks` to a fresh TCP connection and resolves with all it reads until the server closes it. */
function rawExchange(url: string, chunks: string[], options: { pauseMs?: number } = {}): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname)
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => (received += d))
    socket.on('error', reject)
    socket.on('close', () => resolve(received))
    // Keeps the test from hanging if the server never closes the socket; the assertion then fails.
    socket.setTimeout(20_000, () => socket.destroy())
    socket.on('connect', async () => {
      for (const c of chunks) {
        if (socket.destroyed) return
        socket.write(c)
        if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs))
      }
    })
  })
}

/** parseRaw splits a raw HTTP/1.1 response into its status and JSON body. */
function parseRaw(raw: string): { status: number; headers: string; body: any } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1])
  const split = raw.indexOf('\r\n\r\n')
  const body = raw.slice(split + 4)
  return { status, headers: raw.slice(0, split), body: body ? JSON.parse(body) : undefined }
}

async function healthy(url: string): Promise<void> {
  const res = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(10_000) })
  expect(res.status).toBe(200)
  expect(await res.json()).toEqual({ status: 'SERVING' })
}

/** getWithHeader sends GET /healthz with one header of `size` bytes, over node:http (no fetch header limits). */
function getWithHeader(url: string, size: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL('/healthz', url), { headers: { 'x-padding': 'a'.repeat(size) } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** postChunked sends a body in pieces without a Content-Length (Transfer-Encoding: chunked). */
function postChunked(url: string, path: string, pieces: string[]): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
    })
    // The server may answer (and close) before the whole body is sent; that is the point.
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e)))
    for (const p of pieces) req.write(p)
    req.end()
  })
}

describe('a server with the default limits', () => {
  let server: Server
  beforeAll(async () => {
    server = await startServer({ PEMBA_DATABASE_URL: 'sqlite::memory:' })
  })
  afterAll(() => server?.kill())

  it('answers headers over 16 KiB with 431 in the contract format, and keeps serving', async () => {
    const big = await getWithHeader(server.url, 20 * 1024)
    expect(big.status).toBe(431)
    expect(JSON.parse(big.body)).toEqual({
      code: 'validation_error',
      message: 'request headers exceed the limit of 16384 bytes',
    })
    // Just under the limit is served.
    const fits = await getWithHeader(server.url, 12 * 1024)
    expect(fits.status).toBe(200)
    await healthy(server.url)
  })

  it('answers a chunked body over the default 1 MiB with 413, and keeps serving', async () => {
    const store = await fetch(new URL('/stores', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name":"limits"}',
    })
    expect(store.status).toBe(201)
    const { id } = (await store.json()) as { id: string }
    const piece = ' '.repeat(64 * 1024)
    // 17 pieces of 64 KiB: over 1 MiB, and no Content-Length announces it.
    const res = await postChunked(server.url, `/stores/${id}/check`, [...Array(17).fill(piece), '{}'])
    expect(res.headers['content-length']).toBeDefined()
    expect(res.status).toBe(413)
    expect(JSON.parse(res.body)).toEqual({ code: 'validation_error', message: 'request body exceeds the limit of 1048576 bytes' })
    // A chunked body under the limit is read whole and answered normally.
    const ok = await postChunked(server.url, `/stores/${id}/read`, ['{"page_size"', ':1}'])
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toEqual({ tuples: [], continuation_token: '' })
    await healthy(server.url)
  })

  it('answers a malformed request with 400 in the contract format', async () => {
    const raw = await rawExchange(server.url, ['GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n'])
    const res = parseRaw(raw)
    expect(res.status).toBe(400)
    expect(res.body).toEqual({ code: 'validation_error', message: 'malformed HTTP request' })
    await healthy(server.url)
  })
})

describe('a server with small, configured limits', () => {
  let server: Server
  beforeAll(async () => {
    server = await startServer({
      PEMBA_DATABASE_URL: 'sqlite::memory:',
      PEMBA_MAX_HEADER_BYTES: '2048',
      PEMBA_HEADERS_TIMEOUT_MS: '300',
      PEMBA_REQUEST_TIMEOUT_MS: '600',
      PEMBA_BODY_LIMIT_BYTES: '1024',
    })
  })
  afterAll(() => server?.kill())

  it('answers headers over PEMBA_MAX_HEADER_BYTES with 431', async () => {
    const big = await getWithHeader(server.url, 4096)
    expect(big.status).toBe(431)
    expect(JSON.parse(big.body).message).toBe('request headers exceed the limit of 2048 bytes')
    await healthy(server.url)
  })

  it('closes a connection whose headers trickle in past PEMBA_HEADERS_TIMEOUT_MS, with 408', async () => {
    // A slow-loris client: a header line every 200 ms, never the blank line that ends them.
    const lines = ['GET /healthz HTTP/1.1\r\n', 'Host: x\r\n', ...Array.from({ length: 100 }, (_, i) => `X-Slow-${i}: 1\r\n`)]
    const raw = await rawExchange(server.url, lines, { pauseMs: 200 })
    const res = parseRaw(raw)
    expect(res.status).toBe(408)
    expect(res.body).toEqual({ code: 'validation_error', message: 'the request was not received in time' })
    await healthy(server.url)
  })

  it('closes a connection whose body trickles in past PEMBA_REQUEST_TIMEOUT_MS, with 408', async () => {
    // The headers arrive at once and promise 500 bytes; the body comes a byte every 200 ms.
    // (Host: an IP address, which the Host check of a server without authentication accepts.)
    const head = 'POST /stores HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n'
    const raw = await rawExchange(server.url, [head, ...Array(500).fill(' ')], { pauseMs: 200 })
    const res = parseRaw(raw)
    expect(res.status).toBe(408)
    expect(res.body.code).toBe('validation_error')
    // Nothing was created by the half-sent request.
    const stores = await fetch(new URL('/stores', server.url))
    expect(((await stores.json()) as { stores: unknown[] }).stores).toEqual([])
  })

  it('answers a chunked body over PEMBA_BODY_LIMIT_BYTES with 413 and writes nothing', async () => {
    const res = await postChunked(server.url, '/stores', ['{"name":"', 'x'.repeat(600), 'x'.repeat(600), '"}'])
    expect(res.status).toBe(413)
    expect(JSON.parse(res.body)).toEqual({ code: 'validation_error', message: 'request body exceeds the limit of 1024 bytes' })
    const stores = await fetch(new URL('/stores', server.url))
    expect(((await stores.json()) as { stores: unknown[] }).stores).toEqual([])
  })
})
