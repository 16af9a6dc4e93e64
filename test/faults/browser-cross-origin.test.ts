/**
 * Cross-site writes and reads from a real browser (issue 22, item 5). A real `pemba serve`
 * (authentication off, the default) and a page served from another origin (a tiny node:http
 * server on another loopback port) opened in headless Chromium. The page tries what any web
 * page a developer has open could try against their local Pemba:
 *
 * - writes with `fetch(…, {mode: 'no-cors'})` and a `text/plain` body (a "simple" request: no
 *   preflight), a tuple write, a store creation and a model in the DSL;
 * - a `<form method=post enctype=text/plain>` whose one field spells a JSON write;
 * - reads with `fetch` in CORS mode (a GET, and a JSON POST that needs a preflight).
 *
 * Nothing may be written (read back through the API afterwards) and nothing read by the page.
 * The access log shows the browser's requests did reach the server (so the test would see a
 * write that went through). Two servers: the default (no CORS origin, so the cross-origin write
 * refusal answers first), and one that lists the page's origin in PEMBA_CORS_ORIGINS, where only
 * the content-type rule (415 for a body not declared JSON) stands between the page and the data;
 * that one may read, which shows the page's reads work when they are allowed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { api, startServer, type PembaProcess } from '../helpers/processes.ts'

const chromium = findChromium()

/** What the page did: each attempt's outcome as the page saw it. */
interface PageReport {
  noCorsWrites: string[]
  formLoaded: boolean
  reads: string[]
}

/**
 * The attacker's page. `PEMBA` and `STORE` are filled in; every attempt's outcome goes into
 * `window.report`, and `window.done` resolves when all have settled.
 */
function attackerPage(pemba: string, store: string): string {
  const formField = '{"writes":{"tuple_keys":[{"user":"user:mallory","relation":"viewer","object":"doc:form"}]},"x":"'
  return `<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="post" enctype="text/plain" action="${pemba}/stores/${store}/write" target="sink">
  <input type="hidden" name='${formField}' value='"}'>
</form>
<script>
const PEMBA = ${JSON.stringify(pemba)}, STORE = ${JSON.stringify(store)}
window.report = { noCorsWrites: [], formLoaded: false, reads: [] }
const write = (path, body) => fetch(PEMBA + path, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body })
  .then((r) => 'opaque:' + r.type, (e) => 'error:' + e.name)
const read = (path, init) => fetch(PEMBA + path, init).then((r) => r.text().then((t) => 'read:' + r.status + ':' + t), (e) => 'error:' + e.name)
window.done = (async () => {
  report.noCorsWrites.push(await write('/stores/' + STORE + '/write', JSON.stringify({ writes: { tuple_keys: [{ user: 'user:mallory', relation: 'viewer', object: 'doc:fetch' }] } })))
  report.noCorsWrites.push(await write('/stores', JSON.stringify({ name: 'planted-by-page' })))
  report.noCorsWrites.push(await write('/stores/' + STORE + '/authorization-models', 'model\\n  schema 1.1\\ntype user\\ntype planted\\n'))
  await new Promise((resolve) => {
    document.querySelector('iframe').addEventListener('load', resolve, { once: true })
    document.getElementById('f').submit()
  })
  report.formLoaded = true
  report.reads.push(await read('/stores', {}))
  report.reads.push(await read('/stores/' + STORE + '/read', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }))
  return report
})()
</script></body></html>`
}

interface Served {
  pemba: PembaProcess & { url: string }
  dir: string
}

async function servePembaProcess(env: Record<string, string>): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-browser-'))
  const pemba = await startServer({ PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`, PEMBA_LOG_LEVEL: 'info', ...env })
  return { pemba, dir }
}

async function stop(s: Served | undefined): Promise<void> {
  if (!s) return
  s.pemba.kill()
  await s.pemba.exited
  rmSync(s.dir, { recursive: true, force: true })
}

/** The access log lines of the server: `POST /stores/:store/write 403`. */
function accessLines(s: Served): string[] {
  return s.pemba
    .stdout()
    .split('\n')
    .filter((l) => l.includes('"event":"request"'))
    .map((l) => (JSON.parse(l) as { msg: string }).msg)
}

describeChromium('a page on another origin, in a real browser', chromium, () => {
  let browser: Browser
  let page: Server
  let pageOrigin = ''
  let html = ''

  beforeAll(async () => {
    browser = await launchChromium(chromium)
    page = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(html)
    })
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve))
    // localhost, another port: another origin than the server's http://127.0.0.1:<port>.
    pageOrigin = `http://localhost:${(page.address() as AddressInfo).port}`
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    page?.closeAllConnections()
    await new Promise((resolve) => page?.close(resolve))
  })

  /** Runs the page against a server and returns what it saw, then what the server holds. */
  async function attack(s: Served): Promise<{ report: PageReport; tuples: unknown[]; stores: string[]; models: number }> {
    const base = s.pemba.url
    const store = (await api(base, 'POST', '/stores', { name: 'victim' })).body.id as string
    html = attackerPage(base, store)
    const tab = await browser.newPage()
    try {
      await tab.goto(`${pageOrigin}/`)
      const report = (await tab.evaluate('window.done')) as PageReport
      const tuples = (await api(base, 'POST', `/stores/${store}/read`, {})).body.tuples as unknown[]
      const stores = ((await api(base, 'GET', '/stores')).body.stores as { name: string }[]).map((x) => x.name)
      const models = ((await api(base, 'GET', `/stores/${store}/authorization-models`)).body.authorization_models as unknown[]).length
      return { report, tuples, stores, models }
    } finally {
      await tab.close()
    }
  }

  it('with CORS off (the default): nothing written, nothing read', async () => {
    let s: Served | undefined
    try {
      s = await servePembaProcess({})
      const { report, tuples, stores, models } = await attack(s)
      expect(tuples).toEqual([])
      expect(stores).toEqual(['victim'])
      expect(models).toBe(0)
      // The page saw opaque answers to its writes (it cannot tell what happened) and errors on reads.
      expect(report.noCorsWrites).toEqual(['opaque:opaque', 'opaque:opaque', 'opaque:opaque'])
      expect(report.formLoaded).toBe(true)
      expect(report.reads).toEqual(['error:TypeError', 'error:TypeError'])
      // The browser's requests reached the server and were refused there.
      const log = accessLines(s)
      expect(log.filter((l) => l === 'POST /stores/:store/write 403')).toHaveLength(2)
      expect(log).toContain('POST /stores 403')
      expect(log).toContain('POST /stores/:store/authorization-models 403')
    } finally {
      await stop(s)
    }
  }, 60_000)

  it("with the page's origin allowed by PEMBA_CORS_ORIGINS: the content type still refuses the writes", async () => {
    let s: Served | undefined
    try {
      s = await servePembaProcess({ PEMBA_CORS_ORIGINS: pageOrigin })
      const { report, tuples, stores, models } = await attack(s)
      expect(tuples).toEqual([])
      expect(stores).toEqual(['victim'])
      // The DSL is text/plain by design: an allowed origin may write a model that way (it is
      // trusted), which also shows the page's writes do arrive.
      expect(models).toBe(1)
      const log = accessLines(s)
      expect(log.filter((l) => l === 'POST /stores/:store/write 415')).toHaveLength(2)
      expect(log).toContain('POST /stores 415')
      // An allowed origin may read: the page's reads work, so the first test's errors are CORS.
      expect(report.reads[0]).toMatch(/^read:200:\{"stores":\[/)
      expect(report.reads[1]).toMatch(/^read:200:\{"tuples":\[\]/)
    } finally {
      await stop(s)
    }
  }, 60_000)
})
