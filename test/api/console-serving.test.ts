/**
 * Serving the web console at /console (src/api/console.ts, console-assets.ts, server.ts
 * loadConsole): security headers on every answer, caching, gzip, deep links, PEMBA_CONSOLE and
 * authentication. A small console built into a temporary directory stands in for dist/console.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, type PembaConfig } from '../../src/config.ts'
import { CONSOLE_CSP } from '../../src/api/console.ts'
import { createPemba } from '../../src/server.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { keyOf } from '../helpers/auth.ts'

const INDEX = '<!doctype html><html><head><script type="module" src="/console/assets/index-abc123.js"></script></head><body><div id="app"></div></body></html>\n'
// Large enough to be kept gzipped (console-assets.ts gzips files from 1 KiB).
const SCRIPT = `console.log(${JSON.stringify('pemba console '.repeat(200))})\n`
const STYLE = 'body{margin:0}\n'

// Never served: beside the console directory, and in it files that are not the console's.
const SECRET = 'not-for-the-browser-5e1f'

let root: string
let dir: string
let emptyDir: string
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'pemba-console-'))
  dir = join(root, 'console')
  mkdirSync(join(dir, 'assets'), { recursive: true })
  writeFileSync(join(dir, 'index.html'), INDEX)
  writeFileSync(join(dir, 'assets', 'index-abc123.js'), SCRIPT)
  writeFileSync(join(dir, 'assets', 'index-def456.css'), STYLE)
  writeFileSync(join(root, 'secret.txt'), SECRET)
  writeFileSync(join(dir, '.secret'), SECRET)
  mkdirSync(join(dir, '.vite'))
  writeFileSync(join(dir, '.vite', 'manifest.json'), JSON.stringify({ secret: SECRET }))
  writeFileSync(join(dir, 'assets', 'index-abc123.js.map'), JSON.stringify({ secret: SECRET }))
  emptyDir = mkdtempSync(join(tmpdir(), 'pemba-console-empty-'))
})
afterAll(() => {
  rmSync(root, { recursive: true, force: true })
  rmSync(emptyDir, { recursive: true, force: true })
})

let clients: TestClient[] = []
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()))
  clients = []
})

async function start(config: Partial<PembaConfig> = {}, consoleDir = dir): Promise<TestClient> {
  const c = await createTestClient(config, { consoleDir })
  clients.push(c)
  return c
}

function expectSecurityHeaders(h: Headers): void {
  expect(h.get('content-security-policy')).toBe(CONSOLE_CSP)
  expect(h.get('x-content-type-options')).toBe('nosniff')
  expect(h.get('x-frame-options')).toBe('DENY')
  expect(h.get('referrer-policy')).toBe('no-referrer')
  expect(h.get('cross-origin-opener-policy')).toBe('same-origin')
}

describe('the console pages and assets', () => {
  it('has a strict CSP: this origin only, no inline script or style, no frames', () => {
    const directives = new Map(CONSOLE_CSP.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1).join(' ')]))
    expect(directives.get('default-src')).toBe("'none'")
    expect(directives.get('script-src')).toBe("'self'")
    expect(directives.get('style-src')).toBe("'self'")
    expect(directives.get('connect-src')).toBe("'self'")
    expect(directives.get('frame-ancestors')).toBe("'none'")
    expect(directives.get('base-uri')).toBe("'none'")
    expect(CONSOLE_CSP).not.toMatch(/unsafe-|https?:|\*/)
  })

  it('serves the page with no-cache and an ETag, and 304 on revalidation, headers on both', async () => {
    const c = await start()
    const page = await c.request('GET', '/console/')
    expect(page.status).toBe(200)
    expect(page.text).toBe(INDEX)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('cache-control')).toBe('no-cache')
    const etag = page.headers.get('etag')!
    expect(etag).toMatch(/^"[\w-]+"$/)
    expectSecurityHeaders(page.headers)
    const again = await c.request('GET', '/console/', undefined, { 'if-none-match': etag })
    expect(again.status).toBe(304)
    expect(again.text).toBe('')
    expect(again.headers.get('etag')).toBe(etag)
    expectSecurityHeaders(again.headers)
    const weak = await c.request('GET', '/console/', undefined, { 'if-none-match': `"other", W/${etag}` })
    expect(weak.status).toBe(304)
    const stale = await c.request('GET', '/console/', undefined, { 'if-none-match': '"other"' })
    expect(stale.status).toBe(200)
  })

  it('serves hashed assets for a year, immutable, with their content type', async () => {
    const c = await start()
    const js = await c.request('GET', '/console/assets/index-abc123.js')
    expect(js.status).toBe(200)
    expect(js.text).toBe(SCRIPT)
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expectSecurityHeaders(js.headers)
    const css = await c.request('GET', '/console/assets/index-def456.css')
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8')
    expect(css.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    const revalidated = await c.request('GET', '/console/assets/index-abc123.js', undefined, { 'if-none-match': js.headers.get('etag')! })
    expect(revalidated.status).toBe(304)
    expect(revalidated.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expectSecurityHeaders(revalidated.headers)
  })

  it('gzips when gzip is accepted, not when it is refused with q=0 or not asked for', async () => {
    const c = await start()
    const path = '/console/assets/index-abc123.js'
    const raw = async (acceptEncoding?: string) =>
      c.pemba.app.request(path, { headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } })
    const gz = await raw('br, gzip;q=0.8')
    expect(gz.headers.get('content-encoding')).toBe('gzip')
    expect(gz.headers.get('vary')).toMatch(/accept-encoding/i)
    const bytes = Buffer.from(await gz.arrayBuffer())
    expect(bytes.length).toBeLessThan(Buffer.byteLength(SCRIPT))
    expect(gunzipSync(bytes).toString()).toBe(SCRIPT)
    for (const accepted of ['GZIP', 'gzip;Q=0.5', '*', 'br, *;q=0.1']) {
      expect((await raw(accepted)).headers.get('content-encoding'), accepted).toBe('gzip')
    }
    for (const refused of ['gzip;q=0', 'gzip;Q=0', 'gzip; q=0.000', 'identity', 'br', '*;q=0', 'gzip;q=0, *', undefined]) {
      const plain = await raw(refused)
      expect(plain.headers.get('content-encoding'), String(refused)).toBeNull()
      expect(await plain.text()).toBe(SCRIPT)
    }
    // Each encoding has its own validator, either revalidates the file, and the 304 carries the
    // one that matched (the copy the cache holds), whatever the encoding now accepted.
    const plainTag = (await raw()).headers.get('etag')!
    const gzipTag = gz.headers.get('etag')!
    expect(gzipTag).not.toBe(plainTag)
    for (const accept of ['gzip', 'identity']) {
      for (const tag of [plainTag, gzipTag]) {
        const r = await c.pemba.app.request(path, { headers: { 'accept-encoding': accept, 'if-none-match': tag } })
        expect(r.status, `${accept} ${tag}`).toBe(304)
        expect(r.headers.get('etag'), `${accept} ${tag}`).toBe(tag)
      }
    }
    const both = await c.pemba.app.request(path, { headers: { 'accept-encoding': 'gzip', 'if-none-match': `${plainTag}, ${gzipTag}` } })
    expect(both.headers.get('etag')).toBe(gzipTag)
  })

  it('serves index.html for deep links, and 404 for a missing hashed asset', async () => {
    const c = await start()
    for (const path of ['/console/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ/tuples?relation=viewer&user=user%3Aanne', '/console/index.html', '/console/x']) {
      const r = await c.request('GET', path)
      expect(r.status, path).toBe(200)
      expect(r.text).toBe(INDEX)
      expect(r.headers.get('cache-control')).toBe('no-cache')
    }
    const missing = await c.request('GET', '/console/assets/index-000000.js')
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('undefined_endpoint')
    // Not kept by a cache: another replica of a rolling deploy may have it already.
    expect(missing.headers.get('cache-control')).toBe('no-store')
    expectSecurityHeaders(missing.headers)
  })

  it('serves only the files of the console: no dotfile, no source map, nothing outside the directory', async () => {
    const c = await start()
    const paths = [
      '/console/.secret',
      '/console/.vite/manifest.json',
      '/console/assets/index-abc123.js.map',
      '/console/../secret.txt',
      '/console/%2e%2e/secret.txt',
      '/console/%2E%2E%2Fsecret.txt',
      '/console/assets/..%2f..%2fsecret.txt',
      '/console/assets%2f..%2f..%2fsecret.txt',
      '/console/..%5csecret.txt',
      '/console/%5c..%5c..%5csecret.txt',
      '/console//assets/../../secret.txt',
      '/console/%00secret.txt',
    ]
    for (const path of paths) {
      const r = await c.request('GET', path)
      expect(r.status, path).toBeLessThan(500)
      expect(r.text, path).not.toContain(SECRET)
      // The app's page (a deep link), a 404, or the API path the URL normalises to.
      if (r.status === 200) expect(r.text, path).toBe(INDEX)
    }
    // An encoded slash is no path separator: not the hashed asset, the app's page.
    const encoded = await c.request('GET', '/console/assets%2findex-abc123.js')
    expect(encoded.status).toBe(200)
    expect(encoded.text).toBe(INDEX)
    // A file of a type the console is not built of, in assets/, is a missing asset.
    expect((await c.request('GET', '/console/assets/index-abc123.js.map')).status).toBe(404)
  })

  it('redirects /console to /console/ with 308, keeping the query', async () => {
    const c = await start()
    const r = await c.request('GET', '/console?store=abc&tab=graph')
    expect(r.status).toBe(308)
    expect(r.headers.get('location')).toBe('/console/?store=abc&tab=graph')
    expectSecurityHeaders(r.headers)
    expect((await c.request('GET', '/console')).headers.get('location')).toBe('/console/')
  })

  it('answers HEAD with the headers and no body', async () => {
    const c = await start()
    const r = await c.request('HEAD', '/console/stores/x')
    expect(r.status).toBe(200)
    expect(r.text).toBe('')
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expectSecurityHeaders(r.headers)
  })

  it('refuses other methods on console paths', async () => {
    const c = await start()
    const r = await c.request('POST', '/console/', {})
    expect(r.status).toBeGreaterThanOrEqual(400)
    expect(r.status).toBeLessThan(500)
    expect(r.body.code).toMatch(/^[a-z_]+$/)
  })
})

describe('PEMBA_CONSOLE', () => {
  it('is on by default when listening on loopback, off (404) on 0.0.0.0', async () => {
    const loopback = await start({ host: '127.0.0.1' })
    expect((await loopback.request('GET', '/console/')).status).toBe(200)
    const open = await start({ host: '0.0.0.0' })
    const r = await open.request('GET', '/console/')
    expect(r.status).toBe(404)
    expect(r.body.code).toBe('undefined_endpoint')
    expect((await open.request('GET', '/console')).status).toBe(404)
    // The API itself is there.
    expect((await open.request('GET', '/stores')).status).toBe(200)
  })

  it('on and off override the default', async () => {
    const on = await start({ host: '0.0.0.0', console: 'on' })
    expect((await on.request('GET', '/console/')).status).toBe(200)
    const off = await start({ host: '127.0.0.1', console: 'off' })
    expect((await off.request('GET', '/console/')).status).toBe(404)
  })

  it('on with no built console stops the start, naming PEMBA_CONSOLE', async () => {
    const config = { ...loadConfig({ env: {}, argv: [] }), databaseUrl: 'sqlite::memory:', logLevel: 'warn' as const, console: 'on' as const }
    const failed = createPemba(config, { consoleDir: emptyDir })
    await expect(failed).rejects.toThrow(ConfigError)
    await expect(failed).rejects.toThrow(/PEMBA_CONSOLE=on.*index\.html is missing/)
  })

  it('on by default with no built console: the server starts without it', async () => {
    const c = await start({ host: '127.0.0.1' }, emptyDir)
    expect((await c.request('GET', '/console/')).status).toBe(404)
    expect((await c.request('GET', '/healthz')).status).toBe(200)
  })

  it('refuses a bad value, naming the setting', () => {
    expect(() => loadConfig({ env: { PEMBA_CONSOLE: 'yes' }, argv: [] })).toThrow(/PEMBA_CONSOLE/)
    expect(loadConfig({ env: { PEMBA_CONSOLE: 'off' }, argv: [] }).console).toBe('off')
  })
})

describe('the console and authentication', () => {
  it('preshared: the console needs no token, the API still does', async () => {
    const c = await start({ authMode: 'preshared', authPresharedKeys: `root=${keyOf('root')}` })
    for (const path of ['/console/', '/console/assets/index-abc123.js', '/console/stores/x/check']) {
      expect((await c.request('GET', path)).status, path).toBe(200)
    }
    expect((await c.request('GET', '/console')).status).toBe(308)
    // A key pasted into a link's query is not echoed back in the redirect.
    const pasted = await c.request('GET', `/console?token=${keyOf('root')}&tab=graph`)
    expect(pasted.status).toBe(308)
    expect(pasted.headers.get('location')).toMatch(/^\/console\/\?token=.+&tab=graph$/)
    expect(pasted.headers.get('location')).not.toContain(keyOf('root'))
    const api = await c.request('GET', '/stores')
    expect(api.status).toBe(401)
    const summary = await c.request('GET', '/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ/summary')
    expect(summary.status).toBe(401)
    expect((await c.request('POST', '/models/validate', { dsl: 'model' })).status).toBe(401)
    expect((await c.request('GET', '/stores', undefined, { authorization: `Bearer ${keyOf('root')}` })).status).toBe(200)
  })

  it('auth none: the Host check still applies to /console (DNS rebinding)', async () => {
    const c = await start({ authMode: 'none' })
    const rebound = await c.request('GET', '/console/', undefined, { host: 'attacker.example:8080' })
    expect(rebound.status).toBe(403)
    expect(rebound.body.code).toBe('forbidden')
    expect(rebound.text).not.toContain('<html')
    const asset = await c.request('GET', '/console/assets/index-abc123.js', undefined, { host: 'attacker.example' })
    expect(asset.status).toBe(403)
    for (const host of ['127.0.0.1:8080', 'localhost:8080', '[::1]:8080']) {
      expect((await c.request('GET', '/console/', undefined, { host })).status, host).toBe(200)
    }
  })
})
