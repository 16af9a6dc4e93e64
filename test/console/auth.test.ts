/**
 * The console with authentication on (issue 21: "auth mode preshared refuses a wrong token in the
 * UI"), in Debian's Chromium against a real `pemba serve`: the token dialog, a wrong token refused
 * with the API's code shown and no data, the right one showing the stores, "Keep for this tab's
 * session" across a reload (and not when unchecked), "Forget token"; the console's files served
 * without a token while the API refuses; and an OIDC access token typed in.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { sign, signingKey } from '../helpers/jwks-server.ts'
import { startServer, type PembaProcess } from '../helpers/processes.ts'
import { openConsole, PRESHARED_TOKEN, startConsolePemba, type ConsolePage, type ConsolePemba } from './harness.ts'

// Functions passed to page.evaluate run in the browser; the Node type-check has no DOM library.
declare const sessionStorage: any, localStorage: any

const chromium = findChromium()
/** The browser's own log line for a refused fetch: expected where the test provokes a 401. */
const REFUSED = /status of 401/
/** Per-test budget on a loaded 2-core CI machine. */
const TEST_MS = 120_000

/** tokenDialog: the shell's token dialog. */
const tokenDialog = (page: ConsolePage) => page.getByRole('dialog', { name: 'API token' })

/** useToken types `token` into the (open) dialog and submits it. */
async function useToken(page: ConsolePage, token: string, keep: boolean): Promise<void> {
  const dialog = tokenDialog(page)
  await dialog.waitFor()
  await dialog.getByLabel('Token', { exact: true }).fill(token)
  await dialog.getByLabel("Keep for this tab's session").setChecked(keep)
  await dialog.getByRole('button', { name: 'Use token' }).click()
}

/** refusedWith: the dialog is open and shows the API's refusal with `code`. */
async function refusedWith(page: ConsolePage, code: string): Promise<void> {
  const dialog = tokenDialog(page)
  await dialog.getByRole('alert').filter({ hasText: code }).waitFor({ timeout: 15_000 })
  await expect(dialog.getByRole('alert').first().getAttribute('data-code')).resolves.toBe(code)
}

const VISITOR_TOKEN = 'console-visitor-key-2b9e61d07c4a'
const storedToken = (page: ConsolePage) => page.evaluate(() => sessionStorage.getItem('pemba.console.token'))

/**
 * tokenWatch records where `tokens` show up outside the Authorization header: any request's URL or
 * body, the page's URL, localStorage. `check()` asserts none did.
 */
function tokenWatch(page: ConsolePage, tokens: string[]) {
  const leaks: string[] = []
  page.on('request', (r) => {
    for (const t of tokens) {
      if (r.url().includes(t)) leaks.push(`in the URL of ${r.method()} ${r.url()}`)
      if ((r.postData() ?? '').includes(t)) leaks.push(`in the body of ${r.method()} ${r.url()}`)
    }
  })
  return {
    async check(): Promise<void> {
      for (const t of tokens) if (page.url().includes(t)) leaks.push(`in the page URL ${page.url()}`)
      const local = await page.evaluate(() => Object.keys(localStorage).map((k) => `${k}=${localStorage.getItem(k)}`))
      expect(local, 'nothing in localStorage').toEqual([])
      expect(leaks, 'the token only ever in the Authorization header').toEqual([])
    },
  }
}

describeChromium('console authentication (preshared)', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([
      startConsolePemba({
        scale: 0.01,
        auth: 'preshared',
        // A second client with no permission on the store.
        env: { PEMBA_AUTH_PRESHARED_KEYS: `admin=${PRESHARED_TOKEN},visitor=${VISITOR_TOKEN}` },
      }),
      launchChromium(chromium),
    ])
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })

  it('asks for a token, refuses a wrong one in the UI with its code and shows no data, takes the right one', async () => {
    const page = await openConsole(browser, pemba, '/console/', { token: null })
    try {
      // No token: the API's 401 in the dialog, with its code.
      const watch = tokenWatch(page, [PRESHARED_TOKEN, 'not-the-key-0123456789abcdef'])
      await refusedWith(page, 'bearer_token_missing')
      await expect(page.getByText(pemba.store).count()).resolves.toBe(0)
      // "Keep for this tab's session" is ticked by default (docs/console.md).
      await expect(tokenDialog(page).getByLabel("Keep for this tab's session").isChecked()).resolves.toBe(true)

      // A wrong token typed in: refused, the code shown, still no store.
      await useToken(page, 'not-the-key-0123456789abcdef', false)
      await refusedWith(page, 'unauthenticated')
      await expect(page.getByText(pemba.store).count()).resolves.toBe(0)
      await expect(page.getByRole('link', { name: 'bench' }).count()).resolves.toBe(0)
      // Closed, the page shows the refusal in place too.
      await tokenDialog(page).getByRole('button', { name: 'Cancel' }).click()
      await tokenDialog(page).waitFor({ state: 'hidden' })
      await page.getByRole('main').getByRole('alert').filter({ hasText: 'unauthenticated' }).first().waitFor({ timeout: 15_000 })
      await expect(page.getByText(pemba.store).count()).resolves.toBe(0)

      // The right token: the stores.
      await page.getByRole('button', { name: /token/i }).click()
      await useToken(page, PRESHARED_TOKEN, false)
      await page.getByText(pemba.store).first().waitFor({ timeout: 30_000 })
      await tokenDialog(page).waitFor({ state: 'hidden', timeout: 30_000 })
      await page.getByRole('button', { name: 'Token set' }).waitFor({ timeout: 30_000 })
      await expect(page.getByRole('main').getByRole('alert').count()).resolves.toBe(0)
      // Reopened, the box shows that this token (typed with the box unticked) is not kept.
      await page.getByRole('button', { name: 'Token set' }).click()
      await expect.poll(() => tokenDialog(page).getByLabel("Keep for this tab's session").isChecked()).toBe(false)
      await tokenDialog(page).getByRole('button', { name: 'Cancel' }).click()
      await tokenDialog(page).waitFor({ state: 'hidden' })
      // Navigating with the token in use: it never reaches a URL.
      await page.getByRole('main').getByRole('link', { name: 'bench', exact: true }).first().click()
      await page.getByRole('heading', { level: 1, name: /^Model/ }).waitFor({ timeout: 30_000 })
      await page.getByRole('banner').getByText('bench').waitFor({ timeout: 30_000 })
      await watch.check()
      page.assertClean(REFUSED)
    } finally {
      await page.context().close()
    }
  }, TEST_MS)

  it('keeps the token across a reload only when asked, and forgets it', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`, { token: null })
    try {
      const watch = tokenWatch(page, [PRESHARED_TOKEN])
      await refusedWith(page, 'bearer_token_missing')

      // Not kept: in memory only; a reload asks again.
      await useToken(page, PRESHARED_TOKEN, false)
      await page.getByRole('button', { name: 'Token set' }).waitFor()
      await expect(storedToken(page)).resolves.toBe(null)
      await page.reload()
      await refusedWith(page, 'bearer_token_missing')

      // Kept for this tab's session: a reload keeps it, the page loads.
      await useToken(page, PRESHARED_TOKEN, true)
      await page.getByRole('button', { name: 'Token set' }).waitFor()
      await expect(storedToken(page)).resolves.toBe(PRESHARED_TOKEN)
      await page.reload()
      await page.getByRole('heading', { level: 1, name: /^Tuples/ }).waitFor({ timeout: 30_000 })
      await page.getByRole('button', { name: 'Token set' }).waitFor({ timeout: 30_000 })
      await page.getByRole('main').locator('tbody tr').first().waitFor({ timeout: 30_000 })
      await expect(tokenDialog(page).isVisible()).resolves.toBe(false)
      await watch.check()
      // The header names the store from its summary, read with the kept token.
      await page.getByRole('banner').getByText('bench').waitFor({ timeout: 15_000 })

      // Forget token: dropped from the tab, the next request is refused and the dialog asks again.
      await page.getByRole('button', { name: 'Token set' }).click()
      await tokenDialog(page).getByRole('button', { name: 'Forget token' }).click()
      await refusedWith(page, 'bearer_token_missing')
      await expect(storedToken(page)).resolves.toBe(null)
      await page.getByRole('button', { name: 'Set token' }).waitFor({ timeout: 30_000 })
      await page.reload()
      await refusedWith(page, 'bearer_token_missing')
      page.assertClean(REFUSED)
    } finally {
      await page.context().close()
    }
  }, TEST_MS)

  it('a good token that lacks a permission: the page shows `forbidden` in place and does not ask for another token', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`, { token: VISITOR_TOKEN })
    try {
      // The read of the tuples, refused: its code and the API's message, naming the permission.
      const note = page.getByRole('main').getByRole('alert').filter({ hasText: "lacks the 'reader' permission" }).first()
      await note.waitFor({ timeout: 15_000 })
      await expect(note.getAttribute('data-code')).resolves.toBe('forbidden')
      await page.waitForLoadState('networkidle')
      await expect(tokenDialog(page).isVisible()).resolves.toBe(false)
      await expect(page.getByRole('main').getByRole('table').count()).resolves.toBe(0)
      page.assertClean(REFUSED)
    } finally {
      await page.context().close()
    }
  }, TEST_MS)

  it("serves the console's files without a token while the API refuses", async () => {
    const html = await fetch(new URL('/console/stores/x/tuples', pemba.url))
    expect(html.status).toBe(200)
    const text = await html.text()
    const assets = [...text.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1])
    expect(assets.length).toBeGreaterThan(0)
    for (const asset of assets) {
      const r = await fetch(new URL(asset, pemba.url))
      expect(r.status, asset).toBe(200)
    }
    const refused = await fetch(new URL('/stores', pemba.url))
    expect(refused.status).toBe(401)
    await expect(refused.json()).resolves.toMatchObject({ code: 'bearer_token_missing' })
  }, TEST_MS)
})

describeChromium('console authentication (oidc)', chromium, () => {
  let browser: Browser
  let server: PembaProcess & { url: string }
  let dir: string
  let jwt: string
  let otherAudience: string
  let store: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pemba-console-oidc-'))
    const key = await signingKey('console-k1')
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [key.publicJwk] }))
    const now = Math.floor(Date.now() / 1000)
    const claims = { iss: 'https://idp.console.test', sub: 'console-admin', iat: now, exp: now + 3600 }
    jwt = await sign(key, { ...claims, aud: 'pemba-console' })
    otherAudience = await sign(key, { ...claims, aud: 'another-service' })
    ;[server, browser] = await Promise.all([
      startServer({
        PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`,
        PEMBA_CONSOLE: 'on',
        PEMBA_AUTH_MODE: 'oidc',
        PEMBA_AUTH_OIDC_ISSUER: 'https://idp.console.test',
        PEMBA_AUTH_OIDC_AUDIENCE: 'pemba-console',
        PEMBA_AUTH_OIDC_JWKS_FILE: join(dir, 'jwks.json'),
        PEMBA_AUTH_ADMIN_CLIENTS: 'console-admin',
      }),
      launchChromium(chromium),
    ])
    const created = await fetch(new URL('/stores', server.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'oidc-store' }),
    })
    expect(created.status).toBe(201)
    store = ((await created.json()) as { id: string }).id
  })
  afterAll(async () => {
    await browser?.close()
    server?.kill()
    await server?.exited
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('refuses a token for another audience and takes a valid access token typed in', async () => {
    const page = await openConsole(browser, { url: server.url }, '/console/', { token: null })
    try {
      await refusedWith(page, 'bearer_token_missing')
      await useToken(page, otherAudience, false)
      await refusedWith(page, 'auth_failed_invalid_audience')
      await expect(page.getByText(store).count()).resolves.toBe(0)
      await tokenDialog(page).getByLabel('Token', { exact: true }).fill(jwt)
      await tokenDialog(page).getByRole('button', { name: 'Use token' }).click()
      await page.getByText(store).first().waitFor({ timeout: 30_000 })
      await tokenDialog(page).waitFor({ state: 'hidden', timeout: 30_000 })
      page.assertClean(REFUSED)
    } finally {
      await page.context().close()
    }
  }, TEST_MS)
})
