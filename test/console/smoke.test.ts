import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, startConsolePemba, type ConsolePemba } from './harness.ts'

const chromium = findChromium()

describeChromium('console smoke', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: 0.1 }), launchChromium(chromium)])
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })
  it('serves the shell', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`)
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Tuples')
  })
})
