/**
 * SSRF through a token issuer's `jwks_uri` (issue 22, item 6). A store admin names the URL, so
 * Pemba must not fetch it from loopback, link-local, private or other special addresses, in any
 * spelling, after DNS resolution and on every redirect, unless PEMBA_JWKS_ALLOW_PRIVATE or
 * PEMBA_JWKS_ALLOWED_HOSTS says so; and a fetch is bounded in size and time.
 *
 * Real servers on loopback stand in for the internal services: one listens on every loopback
 * address the targets spell (`::` accepts IPv4 and IPv6), and must receive no request at all
 * from a refused fetch. 127.0.0.2 (also loopback on Linux) plays the allowed outside host of
 * the redirect, size and time tests, let through by the allow-list.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { SignJWT } from 'jose'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/settings.ts'
import { loadConfig } from '../../src/config.ts'
import { JwksFetchGuard, JwksFetchRefused, MAX_CONCURRENT_LOOKUPS, parseJwksAllowedHosts, refusedRule, schemeRefusal, type JwksFetchPolicy } from '../../src/service/jwks-guard.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { signingKey, type SigningKey } from '../helpers/jwks-server.ts'

interface Recorder {
  server: Server
  port: number
  requests: string[]
  handle: (req: IncomingMessage, res: ServerResponse) => void
}

async function listen(host: string, handle: Recorder['handle']): Promise<Recorder> {
  const r: Recorder = { server: undefined as unknown as Server, port: 0, requests: [], handle }
  r.server = createServer((req, res) => {
    r.requests.push(`${req.method} ${req.url}`)
    r.handle(req, res)
  })
  await new Promise<void>((resolve) => r.server.listen({ host, port: 0, ipv6Only: false }, resolve))
  r.port = (r.server.address() as AddressInfo).port
  return r
}

function close(r: Recorder | undefined): Promise<void> {
  if (!r) return Promise.resolve()
  r.server.closeAllConnections()
  return new Promise((resolve) => r.server.close(() => resolve()))
}

let key: SigningKey
/** The internal service: on every loopback address, answering a valid key set. */
let internal: Recorder
/** The allowed outside host (127.0.0.2), whose behaviour each test sets. */
let outside: Recorder

const jwksAnswer = (res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ keys: [key.publicJwk] }))
}

beforeAll(async () => {
  key = await signingKey('k1')
  internal = await listen('::', (_req, res) => jwksAnswer(res))
  outside = await listen('127.0.0.2', (_req, res) => jwksAnswer(res))
})
afterAll(async () => {
  await close(internal)
  await close(outside)
})
afterEach(() => {
  internal.requests.length = 0
  outside.requests.length = 0
})

function guard(over: Partial<JwksFetchPolicy> & { allowedHosts?: string } = {}): JwksFetchGuard {
  const { allowedHosts = '', ...rest } = over
  return new JwksFetchGuard({ allowPrivate: false, allowed: parseJwksAllowedHosts(allowedHosts), maxBytes: 65_536, timeoutMs: 5000, ...rest })
}

/** The refusal a guarded fetch ends with (it must end with one). */
async function refusal(g: JwksFetchGuard, url: string): Promise<Error> {
  const e = await g.fetch(url, {}).then(
    () => undefined,
    (err: unknown) => err as Error,
  )
  expect(e, `${url} was fetched`).toBeInstanceOf(Error)
  return e!
}

describe('the guard refuses every spelling of an internal destination, before connecting', () => {
  const loopbackTargets = (port: number) => [
    `http://127.0.0.1:${port}/jwks`,
    `http://0x7f000001:${port}/jwks`,
    `http://127.1:${port}/jwks`,
    `http://2130706433:${port}/jwks`,
    `http://017700000001:${port}/jwks`,
    `http://127.000.000.001:${port}/jwks`,
    `http://[::1]:${port}/jwks`,
    `http://[::ffff:127.0.0.1]:${port}/jwks`,
    `http://[::ffff:7f00:1]:${port}/jwks`,
    `http://0.0.0.0:${port}/jwks`,
    `http://[::]:${port}/jwks`,
    // Names that resolve to loopback: refused after resolution, not by their spelling.
    `http://localhost:${port}/jwks`,
    `http://LocalHost:${port}/jwks`,
  ]

  it('loopback, in every form, with a server listening there that receives nothing', async () => {
    const g = guard()
    for (const url of loopbackTargets(internal.port)) {
      const e = await refusal(g, url)
      expect(e, url).toBeInstanceOf(JwksFetchRefused)
      // Spellings that are not a loopback host by name (`0.0.0.0`, `[::ffff:127.0.0.1]`) meet
      // the scheme rule first (plain http only to a loopback host); over https, which passes
      // it, the address rule names what they are. Neither connects.
      expect(e.message, url).toMatch(/a (loopback|unspecified) address, which token issuers may not fetch keys from; set PEMBA_JWKS_ALLOWED_HOSTS|plain http is fetched only from a loopback host/)
      const secure = url.replace(/^http:/, 'https:')
      expect((await refusal(g, secure)).message, secure).toMatch(/a (loopback|unspecified) address, which token issuers may not fetch keys from; set PEMBA_JWKS_ALLOWED_HOSTS/)
    }
    expect(internal.requests).toEqual([])
  })

  it('names the rule for each special range (no connection is tried)', async () => {
    const g = guard()
    const cases: [string, RegExp][] = [
      ['https://169.254.169.254/latest/meta-data/', /link-local/],
      ['https://[fe80::1]/', /link-local/],
      ['https://10.0.0.1/', /private/],
      ['https://172.16.5.4/', /private/],
      ['https://192.168.1.1/', /private/],
      ['https://100.64.0.1/', /CGNAT/],
      ['https://[fd00::1]/', /unique-local/],
      ['https://224.0.0.1/', /multicast/],
      ['https://[ff02::1]/', /multicast/],
      ['https://255.255.255.255/', /reserved/],
      ['https://[::ffff:10.0.0.1]/', /private/],
      ['https://[::ffff:169.254.169.254]/', /link-local/],
      ['https://[64:ff9b::a00:1]/', /reserved/],
      ['https://[2002:7f00:1::]/', /reserved/],
      // Finding 4 of the review: IANA's not-globally-reachable blocks and IPv4-carrying prefixes.
      ['https://[::ffff:0:127.0.0.1]/', /reserved/], // IPv4-translated (SIIT)
      ['https://[::ffff:0:7f00:1]/', /reserved/],
      ['https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', /reserved/], // Teredo
      ['https://[2001:10::1]/', /reserved/], // ORCHID
      ['https://192.0.2.10/', /documentation/],
      ['https://198.51.100.7/', /documentation/],
      ['https://203.0.113.200/', /documentation/],
      ['https://[2001:db8::1]/', /documentation/],
      ['https://[3fff::1]/', /documentation/],
      ['https://198.18.0.1/', /benchmarking/],
      ['https://198.19.255.255/', /benchmarking/],
      ['https://[2001:2::1]/', /benchmarking/],
      ['https://192.88.99.1/', /reserved/],
      ['https://[5f00::1]/', /reserved/],
    ]
    for (const [url, rule] of cases) expect((await refusal(g, url)).message, url).toMatch(rule)
  })

  it('classifies public addresses as public', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '172.32.0.1', '100.128.0.1', '192.0.3.1', '198.20.0.1', '203.0.114.1', '2001:4860:4860::8888', '2001:db9::1'])
      expect(refusedRule(a), a).toBeUndefined()
  })

  it('a redirect from an allowed host to loopback is refused, and loopback receives nothing', async () => {
    const g = guard({ allowedHosts: '127.0.0.2' })
    for (const target of [`http://127.0.0.1:${internal.port}/jwks`, `http://localhost:${internal.port}/jwks`, `http://[::1]:${internal.port}/jwks`]) {
      outside.handle = (_req, res) => {
        res.writeHead(302, { location: target })
        res.end()
      }
      const e = await refusal(g, `http://127.0.0.2:${outside.port}/jwks`)
      expect(e.message, target).toMatch(/loopback address/)
    }
    expect(outside.requests).toHaveLength(3)
    expect(internal.requests).toEqual([])
    // A relative redirect stays on the allowed host and is followed; a chain is bounded.
    outside.handle = (req, res) => {
      if (req.url === '/jwks') {
        res.writeHead(301, { location: '/keys' })
        res.end()
      } else if (req.url === '/loop') {
        res.writeHead(307, { location: '/loop' })
        res.end()
      } else jwksAnswer(res)
    }
    const ok = await g.fetch(`http://127.0.0.2:${outside.port}/jwks`, {})
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { keys: unknown[] }).keys).toHaveLength(1)
    expect((await refusal(g, `http://127.0.0.2:${outside.port}/loop`)).message).toMatch(/more than 3 redirects/)
  })

  it('an answer larger than PEMBA_JWKS_MAX_BYTES is refused, declared or streamed', async () => {
    const g = guard({ allowedHosts: '127.0.0.2', maxBytes: 2048 })
    const big = JSON.stringify({ keys: [key.publicJwk], padding: 'x'.repeat(10_000) })
    outside.handle = (req, res) => {
      if (req.url === '/declared') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) })
        res.end(big)
      } else {
        // Chunked, no length: counted as it arrives.
        res.writeHead(200, { 'content-type': 'application/json' })
        for (let i = 0; i < 10; i++) res.write(big.slice(i * 1000, (i + 1) * 1000))
        res.end(big.slice(10_000))
      }
    }
    for (const path of ['/declared', '/chunked']) {
      const e = await refusal(g, `http://127.0.0.2:${outside.port}${path}`)
      expect(e.message, path).toMatch(/larger than PEMBA_JWKS_MAX_BYTES \(2048 bytes\)/)
    }
  })

  it('a body that never ends is cut at PEMBA_JWKS_TIMEOUT_MS', async () => {
    const g = guard({ allowedHosts: '127.0.0.2', timeoutMs: 300 })
    let closed = false
    outside.handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"keys":[')
      res.on('close', () => (closed = true))
    }
    const e = await refusal(g, `http://127.0.0.2:${outside.port}/slow`)
    // jose turns a TimeoutError into its JWKSTimeout (the issuer's keys are unavailable).
    expect(e.name).toBe('TimeoutError')
    await expect.poll(() => closed).toBe(true)
  })

  it('the allow settings let the loopback server through', async () => {
    const allowedBy = [guard({ allowPrivate: true }), guard({ allowedHosts: 'localhost' }), guard({ allowedHosts: '127.0.0.0/8,::1' }), guard({ allowedHosts: '[::1], 127.0.0.1' })]
    for (const g of allowedBy) {
      const res = await g.fetch(`http://localhost:${internal.port}/jwks`, {})
      expect(res.status).toBe(200)
    }
    expect(internal.requests).toHaveLength(allowedBy.length)
    // An allowed host name lets through only itself: the same server by address is still refused.
    expect((await refusal(guard({ allowedHosts: 'localhost' }), `http://127.0.0.1:${internal.port}/jwks`)).message).toMatch(/loopback/)
  })
})

/**
 * A raw TCP server on 127.0.0.2 that answers every connection with `reply` (a function of the
 * socket), so it can say what no HTTP server library would: a 101, half a head, nothing.
 */
async function rawServer(reply: (socket: Socket) => void): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  let connections = 0
  const server = createTcpServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.once('data', () => reply(socket))
  })
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.2', port: 0 }, resolve))
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * How a promise ends within `ms`: its error, its value, or 'pending'. The bound is generous
 * (seconds, against a PEMBA_JWKS_TIMEOUT_MS of minutes): it tells "settles" from "never settles",
 * it measures no speed.
 */
async function outcome(p: Promise<unknown>, ms = 15_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise((resolve) => (timer = setTimeout(() => resolve('pending'), ms)))
  try {
    return await Promise.race([p.then((v) => v, (e: unknown) => e), pending])
  } finally {
    clearTimeout(timer)
  }
}

describe('every fetch settles, whatever the server answers (review finding 1)', () => {
  const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'

  it('a 101 answer, a connection closed without an answer or in the middle of the head: each fails, long before the deadline', async () => {
    // A deadline of minutes: only the guard's handling of the answer itself can end these.
    const g = guard({ allowedHosts: '127.0.0.2', timeoutMs: 600_000 })
    const cases: [string, (s: Socket) => void, RegExp][] = [
      ['101', (s) => s.write(SWITCH), /switched protocols/],
      ['101 then close', (s) => s.end(SWITCH), /switched protocols/],
      ['close, no answer', (s) => s.end(), /closed without an answer|socket hang up/],
      ['reset, no answer', (s) => s.resetAndDestroy(), /closed without an answer|ECONNRESET|socket hang up/],
      ['half a head, then close', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: appl'), /closed without an answer|socket hang up|Parse Error/],
    ]
    for (const [name, reply, message] of cases) {
      const server = await rawServer(reply)
      try {
        const e = await outcome(g.fetch(`http://127.0.0.2:${server.port}/jwks`, {}))
        expect(e, name).toBeInstanceOf(Error)
        expect((e as Error).message, name).toMatch(message)
        expect(server.connections(), name).toBe(1)
      } finally {
        await server.close()
      }
    }
  })

  it('a 200 that asks to upgrade and then says nothing more ends at PEMBA_JWKS_TIMEOUT_MS', async () => {
    const g = guard({ allowedHosts: '127.0.0.2', timeoutMs: 500 })
    const server = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'))
    try {
      const e = await outcome(g.fetch(`http://127.0.0.2:${server.port}/jwks`, {}))
      expect(e).toBeInstanceOf(Error)
      expect((e as Error).name).toBe('TimeoutError')
    } finally {
      await server.close()
    }
  })

  it('through the API: a 101 from the issuer answers the check (keys unavailable), and keeps answering it', async () => {
    const server = await rawServer((s) => s.write(SWITCH))
    // The deadline is minutes, so only the guard's handling of the 101 can answer these checks.
    const client = await createTestClient({ jwksAllowedHosts: '127.0.0.2', jwksTimeoutMs: 600_000 })
    try {
      const store = (await client.request('POST', '/stores', { name: 'upgrade' })).body.id as string
      const model = { schema_version: '1.1', type_definitions: [{ type: 'service_account' }, { type: 'namespace', relations: { deployer: { this: {} } }, metadata: { relations: { deployer: { directly_related_user_types: [{ type: 'service_account' }] } } } }] }
      expect((await client.request('POST', `/stores/${store}/authorization-models`, model)).status).toBe(201)
      const iss = 'https://upgrade.example'
      const put = await client.request('PUT', `/stores/${store}/token-issuers/ci`, { issuer: iss, audience: 'pemba', jwks_uri: `http://127.0.0.2:${server.port}/jwks`, subject_type: 'service_account' })
      expect(put.status, put.text).toBe(201)
      const iat = Math.floor(Date.now() / 1000)
      const t = await new SignJWT({ iss, aud: 'pemba', sub: 'p', iat, exp: iat + 600 }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)
      for (const attempt of [1, 2]) {
        const res = await outcome(client.request('POST', `/stores/${store}/check`, { tuple_key: { object: 'namespace:prod', relation: 'deployer' }, subject_token: t }))
        expect(res, `check ${attempt}`).not.toBe('pending')
        expect((res as { body: unknown }).body, `check ${attempt}`).toMatchObject({ allowed: false, reason: 'issuer_keys_unavailable' })
      }
      expect(server.connections()).toBe(1) // the second check met the failure cooldown
    } finally {
      await client.close()
      await server.close()
    }
  })
})

describe('the scheme rule of registration holds on every redirect hop (review finding 2)', () => {
  it('https, or plain http to a loopback host only; no other scheme, no credentials', () => {
    for (const ok of ['https://keys.example/jwks', 'https://10.0.0.1/', 'http://localhost:8080/jwks', 'http://127.0.0.2/jwks', 'http://[::1]/jwks'])
      expect(schemeRefusal(new URL(ok)), ok).toBeUndefined()
    for (const [bad, why] of [
      ['http://keys.example/jwks', /plain http is fetched only from a loopback host, not keys.example; use https/],
      ['http://203.0.113.5:8080/jwks', /plain http is fetched only from a loopback host/],
      ['http://[::ffff:127.0.0.1]/jwks', /plain http is fetched only from a loopback host/],
      ['file:///etc/passwd', /file: URLs are not fetched/],
      ['ftp://keys.example/jwks', /ftp: URLs are not fetched/],
      ['https://user:pw@keys.example/jwks', /credentials/],
    ] as const)
      expect(schemeRefusal(new URL(bad)), bad).toMatch(why)
  })

  it('a redirect to plain http on a non-loopback host is refused, even to an allowed address', async () => {
    // 203.0.113.5 is allowed by address, so only the scheme rule can refuse this hop (without it
    // the guard would try to connect there). The same rule refuses https -> http: the previous
    // hop's scheme does not matter, the target's does.
    const g = guard({ allowedHosts: '127.0.0.2,203.0.113.0/24' })
    outside.handle = (_req, res) => {
      res.writeHead(302, { location: 'http://203.0.113.5:8080/plain' })
      res.end()
    }
    const e = await refusal(g, `http://127.0.0.2:${outside.port}/jwks`)
    expect(e).toBeInstanceOf(JwksFetchRefused)
    expect(e.message).toMatch(/plain http is fetched only from a loopback host, not 203\.0\.113\.5:8080; use https/)
    expect(outside.requests).toEqual(['GET /jwks'])
  })
})

describe('over TLS: the https path of the guard, and redirects out of it', () => {
  it('https is fetched with the certificate checked; https -> https is followed; https -> plain http is refused unless loopback, as at registration', async () => {
    // A certificate for 127.0.0.2 made now by openssl (node:crypto cannot issue one), trusted by
    // a child process through NODE_EXTRA_CA_CERTS, which Node reads only at start; the child
    // runs the built guard (dist/, built by the tests' global setup) against these servers.
    const dir = mkdtempSync(join(tmpdir(), 'pemba-ssrf-tls-'))
    outside.handle = (_req, res) => jwksAnswer(res)
    let tls: Server | undefined
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.2', '-addext', 'subjectAltName=IP:127.0.0.2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'pipe' })
      const tlsRequests: string[] = []
      tls = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
        tlsRequests.push(`${req.method} ${req.url}`)
        const to = { '/hop': `https://127.0.0.2:${tlsPort}/jwks`, '/down': 'http://203.0.113.5:8080/plain', '/down-loopback': `http://127.0.0.2:${outside.port}/plain` }[req.url ?? '']
        if (to) {
          res.writeHead(302, { location: to })
          res.end()
        } else jwksAnswer(res)
      })
      await new Promise<void>((resolve) => tls!.listen({ host: '127.0.0.2', port: 0 }, resolve))
      const tlsPort = (tls.address() as AddressInfo).port
      const script = join(dir, 'fetch.mjs')
      const guardModule = new URL('../../dist/service/jwks-guard.js', import.meta.url).href
      writeFileSync(
        script,
        `import { JwksFetchGuard, parseJwksAllowedHosts } from ${JSON.stringify(guardModule)}
const g = new JwksFetchGuard({ allowPrivate: false, allowed: parseJwksAllowedHosts('127.0.0.2,203.0.113.0/24'), maxBytes: 65536, timeoutMs: 20000 })
const out = []
for (const url of process.argv.slice(2)) {
  try {
    const r = await g.fetch(url, {})
    out.push({ status: r.status, keys: (await r.json()).keys?.length })
  } catch (e) {
    out.push({ error: e.name, message: e.message })
  }
}
console.log(JSON.stringify(out))
`,
      )
      const base = `https://127.0.0.2:${tlsPort}`
      const child = spawn(process.execPath, [script, `${base}/jwks`, `${base}/hop`, `${base}/down`, `${base}/down-loopback`], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
      expect(code, stderr).toBe(0)
      const [direct, hop, down, downLoopback] = JSON.parse(stdout) as { status?: number; keys?: number; error?: string; message?: string }[]
      expect(direct).toEqual({ status: 200, keys: 1 })
      expect(hop).toEqual({ status: 200, keys: 1 })
      expect(down).toMatchObject({ error: 'JwksFetchRefused' })
      expect(down.message).toMatch(/plain http is fetched only from a loopback host, not 203\.0\.113\.5:8080; use https/)
      // http to a loopback host is what registration accepts too (a local identity provider).
      expect(downLoopback).toEqual({ status: 200, keys: 1 })
      expect(tlsRequests).toEqual(['GET /jwks', 'GET /hop', 'GET /jwks', 'GET /down', 'GET /down-loopback'])
      expect(outside.requests).toEqual(['GET /plain'])
    } finally {
      if (tls) {
        tls.closeAllConnections()
        await new Promise((resolve) => tls!.close(resolve))
      }
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('host name lookups are bounded, so slow DNS cannot hold the threadpool (review finding 3)', () => {
  it(`at most ${MAX_CONCURRENT_LOOKUPS} lookups run at once; the rest wait within the deadline; slots come back when a lookup returns`, async () => {
    // There is no controllable nameserver here, so `dns.lookup` itself is replaced by one that
    // never answers until told: exactly a silent authoritative server as getaddrinfo meets it.
    const dns = createRequire(import.meta.url)('node:dns/promises') as { lookup: (...a: unknown[]) => Promise<unknown> }
    const real = dns.lookup
    const held: (() => void)[] = []
    let running = 0
    let most = 0
    let calls = 0
    dns.lookup = (host: unknown, ...rest: unknown[]) => {
      if (typeof host !== 'string' || !host.endsWith('.slow.test')) return real(host, ...rest)
      calls++
      running++
      most = Math.max(most, running)
      return new Promise((resolve) => held.push(() => {
        running--
        resolve([{ address: '203.0.113.9', family: 4 }])
      }))
    }
    syncBuiltinESMExports()
    try {
      const g = guard({ allowedHosts: 'localhost', timeoutMs: 400 })
      const fetches = [1, 2, 3, 4, 5, 6].map((i) => g.fetch(`https://a${i}.slow.test/jwks`, {}).then(() => undefined, (e: unknown) => e as Error))
      for (const e of await Promise.all(fetches)) expect(e?.name).toBe('TimeoutError')
      expect(most).toBe(MAX_CONCURRENT_LOOKUPS)
      expect(calls).toBe(MAX_CONCURRENT_LOOKUPS) // the others gave up waiting for a slot
      // The abandoned lookups still hold their slots: a new fetch waits, and times out.
      expect((await refusal(g, `http://localhost:${internal.port}/jwks`)).name).toBe('TimeoutError')
      // Once getaddrinfo returns, the slots are free again.
      for (const release of held.splice(0)) release()
      const res = await g.fetch(`http://localhost:${internal.port}/jwks`, {})
      expect(res.status).toBe(200)
    } finally {
      dns.lookup = real
      syncBuiltinESMExports()
    }
  })
})

describe('PEMBA_JWKS_ALLOWED_HOSTS', () => {
  it('a bad entry stops the server, naming the setting', () => {
    for (const bad of ['10.0.0.0/33', 'not a host', '10.1.2.3.4/8', '::1/129', 'http://keys.internal']) {
      expect(() => loadConfig({ env: { PEMBA_JWKS_ALLOWED_HOSTS: bad }, argv: [] }), bad).toThrow(/PEMBA_JWKS_ALLOWED_HOSTS/)
      expect(() => loadConfig({ env: { PEMBA_JWKS_ALLOWED_HOSTS: bad }, argv: [] })).toThrow(ConfigError)
    }
    expect(loadConfig({ env: { PEMBA_JWKS_ALLOWED_HOSTS: 'keys.internal, 10.1.0.0/16,fd00::/8,[::1]' }, argv: [] }).jwksAllowedHosts).toContain('keys.internal')
  })
})

describe('through the API: registering and using a token issuer', () => {
  const ISS = 'https://ci.example'
  const MODEL = { schema_version: '1.1', type_definitions: [{ type: 'service_account' }, { type: 'namespace', relations: { deployer: { this: {} } }, metadata: { relations: { deployer: { directly_related_user_types: [{ type: 'service_account' }] } } } }] }
  let client: TestClient | undefined
  afterEach(async () => {
    await client?.close()
    client = undefined
  })

  async function storeWithModel(c: TestClient): Promise<string> {
    const store = (await c.request('POST', '/stores', { name: 'ssrf' })).body.id as string
    expect((await c.request('POST', `/stores/${store}/authorization-models`, MODEL)).status).toBe(201)
    expect((await c.request('POST', `/stores/${store}/write`, { writes: { tuple_keys: [{ user: 'service_account:p', relation: 'deployer', object: 'namespace:prod' }] } })).status).toBe(200)
    return store
  }
  const issuer = (jwks_uri: string) => ({ issuer: ISS, audience: 'pemba', jwks_uri, subject_type: 'service_account' })
  async function token(): Promise<string> {
    const iat = Math.floor(Date.now() / 1000)
    return new SignJWT({ iss: ISS, aud: 'pemba', sub: 'p', iat, exp: iat + 600 }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)
  }

  it('an IP literal in a refused range is a 400 at registration, naming the rule', async () => {
    client = await createTestClient()
    const store = await storeWithModel(client)
    for (const [uri, rule] of [
      [`http://127.0.0.1:${internal.port}/jwks`, 'loopback'],
      [`http://0x7f000001:${internal.port}/jwks`, 'loopback'],
      [`https://169.254.169.254/keys`, 'link-local'],
      [`https://[fd00::1]/keys`, 'unique-local'],
      [`https://10.1.2.3/keys`, 'private'],
    ] as const) {
      const res = await client.request('PUT', `/stores/${store}/token-issuers/ci`, issuer(uri))
      expect(res.status, uri).toBe(400)
      expect(res.body.code).toBe('validation_error')
      expect(res.body.message).toContain(`a ${rule} address, which token issuers may not fetch keys from`)
    }
    expect((await client.request('GET', `/stores/${store}/token-issuers`)).body.token_issuers ?? []).toEqual([])
    expect(internal.requests).toEqual([])
  })

  it('a name resolving to loopback registers, but its keys are never fetched: the check fails closed', async () => {
    client = await createTestClient()
    const store = await storeWithModel(client)
    const put = await client.request('PUT', `/stores/${store}/token-issuers/ci`, issuer(`http://localhost:${internal.port}/jwks`))
    expect(put.status, put.text).toBe(201)
    const res = await client.request('POST', `/stores/${store}/check`, { tuple_key: { object: 'namespace:prod', relation: 'deployer' }, subject_token: await token() })
    expect(res.status, res.text).toBe(200)
    expect(res.body).toMatchObject({ allowed: false, reason: 'issuer_keys_unavailable' })
    expect(internal.requests).toEqual([])
  })

  it('PEMBA_JWKS_ALLOW_PRIVATE=on and PEMBA_JWKS_ALLOWED_HOSTS let the same issuer work', async () => {
    for (const config of [{ jwksAllowPrivate: 'on' as const }, { jwksAllowedHosts: '127.0.0.1' }, { jwksAllowedHosts: 'localhost' }]) {
      client = await createTestClient(config)
      const store = await storeWithModel(client)
      const host = 'jwksAllowedHosts' in config && config.jwksAllowedHosts === 'localhost' ? 'localhost' : '127.0.0.1'
      const put = await client.request('PUT', `/stores/${store}/token-issuers/ci`, issuer(`http://${host}:${internal.port}/jwks`))
      expect(put.status, put.text).toBe(201)
      const res = await client.request('POST', `/stores/${store}/check`, { tuple_key: { object: 'namespace:prod', relation: 'deployer' }, subject_token: await token() })
      expect(res.body, JSON.stringify(config)).toMatchObject({ allowed: true })
      await client.close()
      client = undefined
    }
    expect(internal.requests.length).toBe(3)
  })

  it("the operator's own key set (PEMBA_AUTH_OIDC_JWKS_URI) is trusted on loopback as before", async () => {
    const audience = 'pemba-api'
    client = await createTestClient({ authMode: 'oidc', authOidcIssuer: ISS, authOidcAudience: audience, authOidcJwksUri: `http://127.0.0.1:${internal.port}/jwks`, authAdminClients: 'p' })
    const iat = Math.floor(Date.now() / 1000)
    const t = await new SignJWT({ iss: ISS, aud: audience, sub: 'p', iat, exp: iat + 600 }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)
    const res = await client.request('GET', '/stores', undefined, { authorization: `Bearer ${t}` })
    expect(res.status, res.text).toBe(200)
    expect(internal.requests).toEqual(['GET /jwks'])
  })
})
