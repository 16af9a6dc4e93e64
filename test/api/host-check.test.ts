/**
 * The Host check (src/api/host-check.ts), over real HTTP: with authentication off, a request
 * whose Host is a DNS name other than localhost, PEMBA_HOST and PEMBA_ALLOWED_HOSTS is refused
 * (DNS rebinding); IP literals always pass; with authentication on there is no check.
 */
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve, type ServerType } from '@hono/node-server'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig, ConfigError, type PembaConfig } from '../../src/config.ts'
import { createPemba, type Pemba } from '../../src/server.ts'
import { BrowserSettingError } from '../../src/api/cors.ts'
import { isAcceptedHost, parseAllowedHosts } from '../../src/api/host-check.ts'

interface Served {
  pemba: Pemba
  server: ServerType
  port: number
}

let served: Served | undefined
afterEach(async () => {
  if (!served) return
  const { server, pemba } = served
  served = undefined
  ;(server as unknown as { closeAllConnections(): void }).closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await pemba.close()
})

async function serveApp(overrides: Partial<PembaConfig> = {}): Promise<Served> {
  const pemba = await createPemba({ ...loadConfig({ env: {}, argv: [] }), databaseUrl: 'sqlite::memory:', logLevel: 'warn', ...overrides })
  const server = serve({ fetch: pemba.app.fetch, hostname: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve()
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  served = { pemba, server, port: (server.address() as AddressInfo).port }
  return served
}

/** send makes a request to 127.0.0.1:port with the given Host header (node:http lets it be set). */
function send(
  port: number,
  method: string,
  path: string,
  host: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { host, ...(data ? { 'content-type': 'application/json' } : {}), ...headers } },
      (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }))
      },
    )
    req.on('error', reject)
    req.end(data)
  })
}

describe('with authentication off', () => {
  it('refuses a foreign DNS name in Host, before the request does anything', async () => {
    const { port } = await serveApp()
    for (const host of [`evil.example:${port}`, 'evil.example', `EVIL.example.:${port}`, `localhost.evil.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
      const r = await send(port, 'POST', '/stores', host, { name: 'rebound' })
      expect(r.status, host).toBe(403)
      expect(r.body.code).toBe('forbidden')
      expect(r.body.message).toContain(`host '${host}' not allowed`)
      expect(r.body.message).toContain('PEMBA_ALLOWED_HOSTS')
    }
    const get = await send(port, 'GET', '/stores', `evil.example:${port}`)
    expect(get.status).toBe(403)
    // Nothing was created.
    expect((await send(port, 'GET', '/stores', `127.0.0.1:${port}`)).body.stores).toEqual([])
  })

  it('answers IP literals, localhost and names under .localhost', async () => {
    const { port } = await serveApp()
    for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `[::1]:${port}`, '[::1]', `localhost:${port}`, 'LOCALHOST', `app.localhost:${port}`, `10.0.0.7:${port}`]) {
      const r = await send(port, 'GET', '/stores', host)
      expect(r.status, host).toBe(200)
    }
  })

  it('answers the names in PEMBA_ALLOWED_HOSTS and the name in PEMBA_HOST', async () => {
    const { port } = await serveApp({ allowedHosts: 'pemba.internal, Authz', host: 'pemba-host.lan' })
    for (const host of [`pemba.internal:${port}`, 'authz', `AUTHZ:${port}`, `pemba-host.lan:${port}`]) {
      expect((await send(port, 'POST', '/stores', host, { name: `via ${host.split(':')[0]}` })).status, host).toBe(201)
    }
    expect((await send(port, 'GET', '/stores', `other.internal:${port}`)).status).toBe(403)
  })

  it('keeps /healthz behind the check too (a rebinding page learns nothing)', async () => {
    const { port } = await serveApp()
    expect((await send(port, 'GET', '/healthz', 'evil.example')).status).toBe(403)
    expect((await send(port, 'GET', '/healthz', `127.0.0.1:${port}`)).status).toBe(200)
  })
})

describe('with authentication on', () => {
  it('does not look at Host: the token is the defence', async () => {
    const key = 'host-check-key-0123456789'
    const { port } = await serveApp({ authMode: 'preshared', authPresharedKeys: `ci=${key}`, authAdminClients: 'ci' })
    const r = await send(port, 'POST', '/stores', `evil.example:${port}`, { name: 'with a token' }, { authorization: `Bearer ${key}` })
    expect(r.status).toBe(201)
    expect((await send(port, 'GET', '/stores', 'evil.example')).body.code).toBe('bearer_token_missing')
  })
})

describe('isAcceptedHost', () => {
  const allowed = new Set(['pemba.internal'])
  it.each([
    ['127.0.0.1', true],
    ['127.0.0.1:8080', true],
    ['[::1]:8080', true],
    ['[fe80::1%25eth0]', true],
    ['localhost:8080', true],
    ['a.b.localhost', true],
    ['pemba.internal:443', true],
    ['Pemba.Internal.', true],
    ['evil.example', false],
    ['localhost.evil.example', false],
    ['evillocalhost', false],
    ['127.0.0.1:8080@evil.example', false],
    ['[::1]evil', false],
    ['', false],
  ])('%s → %s', (host, ok) => {
    expect(isAcceptedHost(host, allowed)).toBe(ok)
  })
})

describe('PEMBA_ALLOWED_HOSTS is checked at start', () => {
  it('reads names, without case or a trailing dot', () => {
    expect(parseAllowedHosts(' Pemba.Internal., authz ,')).toEqual(['pemba.internal', 'authz'])
    expect(parseAllowedHosts('')).toEqual([])
  })

  it.each(['http://pemba.internal', 'pemba.internal:8080', 'pemba internal', '*.example.com'])('refuses %s, naming the setting', (value) => {
    expect(() => parseAllowedHosts(value)).toThrow(BrowserSettingError)
    expect(() => parseAllowedHosts(value)).toThrow(/^PEMBA_ALLOWED_HOSTS: .* is not a host name/)
  })

  it('stops loadConfig with a ConfigError naming the setting', () => {
    expect(() => loadConfig({ env: { PEMBA_ALLOWED_HOSTS: 'http://pemba.internal' }, argv: [] })).toThrow(ConfigError)
    expect(() => loadConfig({ env: { PEMBA_ALLOWED_HOSTS: 'http://pemba.internal' }, argv: [] })).toThrow(/PEMBA_ALLOWED_HOSTS/)
  })
})
