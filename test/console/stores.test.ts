/**
 * The stores page against a real Pemba with the bench data set (scale 0.1): the list with each
 * store's counts from its summary, the name filter in the URL, creating a store (the console
 * goes to it) and deleting one after a confirmation that names it (gone through the API too).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePemba, startsConsolePemba } from './harness.ts'

const chromium = findChromium()

describeChromium('console: the stores page', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  startsConsolePemba(chromium, { scale: 0.1 }, (p, b) => ((pemba = p), (browser = b)))

  it('lists the bench store with its model count, tuple count and last change', async () => {
    const page = await openConsole(browser, pemba, '/console/')
    try {
      await page.getByRole('heading', { level: 1, name: 'Stores' }).waitFor()
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'bench' }) })
      const cells = row.getByRole('cell')
      const tuples = pemba.dataset.tuples.length
      // The summary arrives after the list: wait for the counts themselves (in the browser's locale).
      const shown = await page.evaluate((n) => n.toLocaleString(), tuples)
      await cells.nth(3).getByText(shown, { exact: true }).waitFor({ timeout: 20_000 })
      expect(await cells.nth(0).textContent()).toBe(pemba.store)
      expect(await cells.nth(2).textContent()).toBe('1')
      // The last change is a time (the newest tuple write), as the API's summary has it.
      const summary = await pemba.api('GET', `/stores/${pemba.store}/summary`)
      expect(summary.status).toBe(200)
      expect([summary.body.model_count, summary.body.tuple_count]).toEqual([1, tuples])
      expect(await cells.nth(4).locator('time').getAttribute('datetime')).toBe(summary.body.last_change_at)
      expect(await cells.nth(1).locator('time').getAttribute('datetime')).toBe(summary.body.created_at)

      // The store's name is a link to its model page, reachable with the keyboard.
      const link = row.getByRole('rowheader').getByRole('link', { name: 'bench' })
      expect(await link.getAttribute('href')).toBe(`/console/stores/${pemba.store}/model`)
      await link.focus()
      expect(await link.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true)
      await screenshot(page, 'stores')
      await page.keyboard.press('Enter')
      await page.getByRole('heading', { level: 1, name: 'Model' }).waitFor()
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/model`)
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('filters by name through the URL, and says when no store has that name', async () => {
    const page = await openConsole(browser, pemba, '/console/')
    try {
      await page.getByRole('rowheader', { name: 'bench' }).waitFor()
      await page.getByLabel('Name (exact)').fill('no-such-store')
      await page.getByRole('button', { name: 'Filter' }).click()
      await page.getByText('No store is named “no-such-store”.').waitFor()
      expect(new URL(page.url()).searchParams.get('name')).toBe('no-such-store')
      // Back restores the unfiltered list; a reload of a filtered URL keeps the filter.
      await page.goBack()
      await page.getByRole('rowheader', { name: 'bench' }).waitFor()
      await page.goto(new URL('/console/?name=bench', pemba.url).href)
      await page.getByRole('rowheader', { name: 'bench' }).waitFor()
      expect(await page.getByLabel('Name (exact)').inputValue()).toBe('bench')
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('creates a store and goes to it, then deletes it after a confirmation naming it', async () => {
    const name = 'console-m-created'
    const page = await openConsole(browser, pemba, '/console/')
    try {
      await page.getByRole('rowheader', { name: 'bench' }).waitFor()
      await page.getByLabel('New store name').fill(name)
      await page.getByRole('button', { name: 'Create store' }).click()
      await page.waitForURL(/\/console\/stores\/[^/]+\/model\?tab=write$/)
      const id = decodeURIComponent(new URL(page.url()).pathname.split('/')[3])
      await page.getByRole('heading', { level: 1, name: 'Model' }).waitFor()
      const created = await pemba.api('GET', `/stores/${id}`)
      expect([created.status, created.body.name]).toEqual([200, name])

      // Back to the list, filtered to the new store.
      await page.goto(new URL(`/console/?name=${name}`, pemba.url).href)
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name }) })
      await row.getByRole('cell').nth(2).getByText('0', { exact: true }).waitFor()

      // Esc cancels: nothing sent.
      await row.getByRole('button', { name: `Delete ${name}` }).click()
      const dialog = page.getByRole('dialog', { name: `Delete the store “${name}”?` })
      await dialog.waitFor()
      expect(new URL(page.url()).searchParams.get('delete')).toBe(id)
      expect(await dialog.textContent()).toContain(`DELETE /stores/${id}`)
      await page.keyboard.press('Escape')
      await dialog.waitFor({ state: 'hidden' })
      expect(new URL(page.url()).searchParams.get('delete')).toBeNull()
      expect((await pemba.api('GET', `/stores/${id}`)).status).toBe(200)

      // A `?delete=` link for a store not on this page names it (GET /stores/{id}) before it can be confirmed.
      await page.goto(new URL(`/console/?name=bench&delete=${id}`, pemba.url).href)
      await page.getByRole('dialog', { name: `Delete the store “${name}”?` }).getByText(`DELETE /stores/${id}`).waitFor()
      await page.keyboard.press('Escape')
      // One for a store that does not exist: its error, and nothing to confirm.
      await page.goto(new URL('/console/?delete=01ARZ3NDEKTSV4RRFFQ69G5FAV', pemba.url).href)
      const unknown = page.getByRole('dialog', { name: 'Delete the store?' })
      await unknown.getByRole('alert').waitFor()
      expect(await unknown.getByRole('button', { name: 'Delete store' }).isDisabled()).toBe(true)
      await page.keyboard.press('Escape')
      await page.goto(new URL(`/console/?name=${name}`, pemba.url).href)
      await row.getByRole('cell').nth(2).getByText('0', { exact: true }).waitFor()

      // Confirmed: the store is gone, and only it.
      await row.getByRole('button', { name: `Delete ${name}` }).click()
      await dialog.getByRole('button', { name: 'Delete store' }).click()
      await dialog.waitFor({ state: 'hidden' })
      await page.getByText(`No store is named “${name}”.`).waitFor()
      const gone = await pemba.api('GET', `/stores/${id}`)
      expect([gone.status, gone.body.code]).toEqual([404, 'store_id_not_found'])
      expect((await pemba.api('GET', `/stores/${pemba.store}`)).status).toBe(200)
      // Focus is on the heading, not lost with the row; back does not open the dialog again.
      const heading = page.getByRole('heading', { level: 1, name: 'Stores' })
      await expect.poll(() => heading.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true)
      expect(new URL(page.url()).searchParams.get('delete')).toBeNull()
      await page.goBack()
      await page.getByRole('dialog').waitFor({ state: 'hidden' })
      expect(new URL(page.url()).searchParams.get('delete')).toBeNull()
      page.assertClean(/status of 404/)
    } finally {
      await page.context().close()
    }
  })

  it('shows a summary that fails in its own row, with the API’s code', async () => {
    const made = await pemba.api('POST', '/stores', { name: 'console-m-vanishing' })
    expect(made.status).toBe(201)
    const id = made.body.id as string
    const page = await openConsole(browser, pemba, 'about:blank')
    try {
      // The store is deleted after the list was read and before its summary is: a real 404.
      await page.route(`**/stores/${id}/summary`, async (route) => {
        expect((await pemba.api('DELETE', `/stores/${id}`)).status).toBe(204)
        await route.continue()
      })
      await page.goto(new URL('/console/?name=console-m-vanishing', pemba.url).href)
      const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'console-m-vanishing' }) })
      const alert = row.getByRole('alert')
      await alert.waitFor()
      expect(await alert.getAttribute('data-code')).toBe('store_id_not_found')
      expect(await alert.textContent()).toContain('HTTP 404')
      // The other rows are not touched: the bench store still shows its counts.
      await page.goto(new URL('/console/?name=bench', pemba.url).href)
      const bench = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'bench' }) })
      await bench.getByRole('cell').nth(2).getByText('1', { exact: true }).waitFor()
      page.assertClean(/status of 404/)
    } finally {
      await page.context().close()
    }
  })
})
