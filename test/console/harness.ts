/**
 * The console's browser tests run against a real Pemba (`pemba serve`, the compiled dist/ with
 * its built console) holding the benchmark data set (bench/dataset.ts: users, groups nested five
 * deep, folders six deep, documents), driven by Debian's Chromium through playwright-core.
 *
 *   const pemba = await startConsolePemba({ scale: 0.1 })
 *   const page = await openConsole(browser, pemba, '/console/stores/' + pemba.store + '/tuples')
 *   …
 *   page.assertClean()   // no console error, no CSP violation, no request off this server
 *
 * Screenshots go to test/console/screenshots/ (git-ignored) at 1440×900.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll } from 'vitest'
import { launchChromium, type ChromiumAvailability } from '../helpers/chromium.ts'
import { generate, tupleKey, type Dataset } from '../../bench/dataset.ts'
import { startServer, type PembaProcess } from '../helpers/processes.ts'

// The init script runs in the browser; the Node type-check has no DOM library.
declare const sessionStorage: { setItem(key: string, value: string): void }

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const SCREENSHOTS = join(ROOT, 'test', 'console', 'screenshots')
export const BENCH_MODEL = readFileSync(join(ROOT, 'bench', 'model.fga'), 'utf8')
export const VIEWPORT = { width: 1440, height: 900 }

export interface ConsolePemba {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** The store holding the bench data set. */
  store: string
  /** Its model's id. */
  modelId: string
  dataset: Dataset
  /** The bearer token the API wants (preshared mode), else undefined. */
  token?: string
  process: PembaProcess
  /** Calls the API as the console would (with the token): status and parsed body. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>
  stop(): Promise<void>
}

export interface ConsolePembaOptions {
  /** The bench data set's scale (0.1 ≈ 9.7k tuples; 1 ≈ 97k). */
  scale?: number
  /** `preshared`: PEMBA_AUTH_MODE=preshared with one key, `admin=<token>`, a system admin (PEMBA_AUTH_ADMIN_CLIENTS). */
  auth?: 'none' | 'preshared'
  /** More settings for the server. */
  env?: Record<string, string>
}

export const PRESHARED_TOKEN = 'console-test-key-7f3a9c21b4d8e605'

/** startConsolePemba starts `pemba serve` on a SQLite file in a temporary directory and loads the bench data set into one store. */
export async function startConsolePemba(options: ConsolePembaOptions = {}): Promise<ConsolePemba> {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-console-'))
  const preshared = options.auth === 'preshared'
  const env: Record<string, string> = {
    PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`,
    PEMBA_CONSOLE: 'on',
    ...(preshared ? { PEMBA_AUTH_MODE: 'preshared', PEMBA_AUTH_PRESHARED_KEYS: `admin=${PRESHARED_TOKEN}`, PEMBA_AUTH_ADMIN_CLIENTS: 'admin' } : {}),
    ...options.env,
  }
  let proc: PembaProcess & { url: string }
  try {
    // 90 s, not the helper's 30: on the 2-core CI machine the suites around it keep both cores busy.
    proc = await startServer(env, 90_000)
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const token = preshared ? PRESHARED_TOKEN : undefined
  const api: ConsolePemba['api'] = async (method, path, body, headers = {}) => {
    const h: Record<string, string> = { ...headers }
    if (token) h.Authorization = `Bearer ${token}`
    let payload: string | undefined
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body)
      h['Content-Type'] ??= typeof body === 'string' ? 'text/plain' : 'application/json'
    }
    const res = await fetch(new URL(path, proc.url), { method, headers: h, body: payload, signal: AbortSignal.timeout(30_000) })
    const raw = await res.text()
    let parsed: unknown = raw
    try {
      parsed = raw === '' ? undefined : JSON.parse(raw)
    } catch {
      // Not JSON (a page): kept as text.
    }
    return { status: res.status, body: parsed }
  }
  const stop = async () => {
    proc.kill()
    await proc.exited
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const dataset = generate({ scale: options.scale ?? 0.1, seed: 42, checks: 200 })
    const created = await api('POST', '/stores', { name: 'bench' })
    if (created.status !== 201) throw new Error(`creating the store: ${created.status} ${JSON.stringify(created.body)}`)
    const store = created.body.id as string
    const model = await api('POST', `/stores/${store}/authorization-models`, BENCH_MODEL)
    if (model.status !== 201) throw new Error(`writing the model: ${model.status} ${JSON.stringify(model.body)}`)
    const modelId = model.body.authorization_model_id as string
    await writeTuples(api, store, dataset.tuples.map(tupleKey))
    return { url: proc.url, store, modelId, dataset, token, process: proc, api, stop }
  } catch (e) {
    await stop()
    throw e
  }
}

/** writeTuples writes in batches of 100 (the default PEMBA_MAX_TUPLES_PER_WRITE), four at once. */
export async function writeTuples(
  api: ConsolePemba['api'],
  store: string,
  keys: { user: string; relation: string; object: string }[],
): Promise<void> {
  const batches: (typeof keys)[] = []
  for (let i = 0; i < keys.length; i += 100) batches.push(keys.slice(i, i + 100))
  let next = 0
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++]
      const r = await api('POST', `/stores/${store}/write`, { writes: { tuple_keys: batch } })
      if (r.status !== 200) throw new Error(`writing tuples: ${r.status} ${JSON.stringify(r.body)}`)
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
}

export interface ConsolePage extends Page {
  /** Console errors, page errors, CSP violations and requests that left the server, so far. */
  problems(): string[]
  /** Fails when problems() is not empty (a 4xx the test provoked is expected: pass `allow`). */
  assertClean(allow?: RegExp): void
}

/**
 * openConsole opens `path` (under the server's URL) in a fresh context at 1440×900, with the
 * token already typed into the session (unless `token: null`) and every problem recorded.
 */
export async function openConsole(
  browser: Browser,
  pemba: Pick<ConsolePemba, 'url' | 'token'>,
  path: string,
  options: { token?: string | null } = {},
): Promise<ConsolePage> {
  const context = await browser.newContext({ viewport: VIEWPORT })
  const token = options.token === undefined ? pemba.token : options.token
  if (token) {
    await context.addInitScript((t: string) => sessionStorage.setItem('pemba.console.token', t), token)
  }
  const page = (await context.newPage()) as ConsolePage
  const problems: string[] = []
  const origin = new URL(pemba.url).origin
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('request', (r) => {
    const u = r.url()
    if (!u.startsWith(origin) && !u.startsWith('data:')) problems.push(`request off the server: ${u}`)
  })
  page.problems = () => [...problems]
  page.assertClean = (allow?: RegExp) => {
    const left = problems.filter((p) => !(allow && allow.test(p)))
    if (left.length > 0) throw new Error(`the console page had problems:\n${left.join('\n')}`)
  }
  await page.goto(new URL(path, pemba.url).href)
  return page
}

/** screenshot saves the page at 1440×900 as test/console/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const path = join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path })
  return path
}

/**
 * startsConsolePemba registers, in the suite it is called in, a Pemba with the bench data set
 * and a browser started before its tests (handed to `ready`) and both stopped after them.
 *
 *   let pemba: ConsolePemba
 *   let browser: Browser
 *   startsConsolePemba(chromium, { scale: 0.1 }, (p, b) => ((pemba = p), (browser = b)))
 */
export function startsConsolePemba(
  chromium: ChromiumAvailability,
  options: ConsolePembaOptions,
  ready: (pemba: ConsolePemba, browser: Browser) => void,
): void {
  let pemba: ConsolePemba | undefined
  let browser: Browser | undefined
  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba(options), launchChromium(chromium)])
    ready(pemba, browser)
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })
}
