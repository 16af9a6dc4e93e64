/**
 * The console's smoke test: a small data set, one browser, the shell end to end. `/console`
 * redirects to the app with its query, the page comes with the CSP, the first page loads only
 * the entry's files and the stores page, and a page's code (the model page with the graph
 * library) is fetched only when that page is opened. The pages themselves: console.test.ts and
 * each page's own test file.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, startConsolePemba, type ConsolePemba } from './harness.ts'

const chromium = findChromium()
/** Per-test budget on a loaded 2-core CI machine. */
const TEST_MS = 120_000

describeChromium('console smoke', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: 0.01 }), launchChromium(chromium)])
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })

  it('redirects /console to the app keeping the query, with the CSP on the page', async () => {
    const r = await fetch(new URL('/console?name=bench', pemba.url), { redirect: 'manual' })
    expect(r.status).toBe(308)
    expect(r.headers.get('location')).toBe('/console/?name=bench')
    const page = await fetch(new URL('/console/', pemba.url))
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/)
    expect(page.headers.get('content-security-policy')).toMatch(/style-src 'self'/)
  }, TEST_MS)

  it('loads the stores page first, and a page’s code only when it is opened', async () => {
    const page = await openConsole(browser, pemba, '/console')
    try {
      // Every file the page fetched since it was opened, from the browser's own resource timing.
      const fetched = () =>
        page.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname))
      await page.getByRole('heading', { level: 1, name: 'Stores' }).waitFor({ timeout: 30_000 })
      expect(new URL(page.url()).pathname).toBe('/console/')
      await page.getByText(pemba.store).first().waitFor({ timeout: 30_000 })
      await page.waitForLoadState('networkidle')
      // Only the stores page of the pages' code so far.
      let scripts = await fetched()
      const named = (name: string) => scripts.some((s) => new RegExp(`^/console/assets/${name}-[^/]+\\.js$`).test(s))
      expect(named('index'), `fetched: ${scripts.join(', ')}`).toBe(true)
      expect(named('stores'), `fetched: ${scripts.join(', ')}`).toBe(true)
      for (const other of ['model', 'tuples', 'check', 'review']) expect(named(other), `fetched: ${scripts.join(', ')}`).toBe(false)

      // Opening the model page in the app fetches its code.
      await page.getByRole('link', { name: 'bench' }).first().click()
      // (No networkidle here: after an in-app navigation it does not wait; poll the fetched files.)
      await page.getByRole('heading', { level: 1, name: /^Model/ }).waitFor({ timeout: 30_000 })
      await expect
        .poll(async () => ((scripts = await fetched()), named('model')), { message: 'the model page\'s code is fetched', timeout: 30_000 })
        .toBe(true)
      page.assertClean()
    } finally {
      await page.context().close()
    }
  }, TEST_MS)

  it('a page whose code cannot be fetched shows why in place, under a working header', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/model`)
    try {
      await page.getByRole('heading', { level: 1, name: /^Model/ }).waitFor({ timeout: 30_000 })
      // As after a new build replaced the files, or with the server gone: the tuples page's file fails.
      await page.route(/\/console\/assets\/tuples-[^/]+\.js$/, (route) => route.abort())
      await page.getByRole('navigation', { name: 'Store pages' }).getByRole('link', { name: 'Tuples' }).click()
      await page.getByRole('heading', { level: 1, name: 'This page could not be shown' }).waitFor({ timeout: 30_000 })
      await page.getByRole('main').getByRole('alert').filter({ hasText: /tuples-[^/]+\.js/ }).waitFor({ timeout: 30_000 })
      // The header still works: another page opens.
      await page.getByRole('navigation', { name: 'Store pages' }).getByRole('link', { name: 'Check' }).click()
      await page.getByRole('heading', { level: 1, name: /^Check/ }).waitFor({ timeout: 30_000 })
      page.assertClean(/tuples-[^/]+\.js|Failed to fetch dynamically imported module|net::ERR_FAILED/)
    } finally {
      await page.context().close()
    }
  }, TEST_MS)
})
