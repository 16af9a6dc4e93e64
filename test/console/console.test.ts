/**
 * The console across its pages (issue 21), in Debian's Chromium against a real `pemba serve` with
 * the bench data set at scale 0.1: every page loads clean (one <h1>, no console error, no CSP
 * violation, no request off the server) with a screenshot each; a URL with state opened directly
 * restores that state; back and forward between pages; the keyboard path through the header; the
 * layout at 1024, 1440 and 2560 px wide. Each page's own behaviour is in its own test file.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePage, type ConsolePemba } from './harness.ts'

// Functions passed to page.evaluate run in the browser; the Node type-check has no DOM library.
declare const document: any, window: any

const chromium = findChromium()

interface PageCase {
  name: string
  path: (store: string, pemba: ConsolePemba) => Promise<string> | string
  /** The page's <h1>. */
  heading: RegExp
  /** Waits for the page's real content beyond its heading (rows, the graph laid out, an answer). */
  content: (page: ConsolePage, pemba: ConsolePemba) => Promise<void>
}

/** The longest a page's content may take on a loaded 2-core CI machine. */
const CONTENT_MS = 30_000
/** Per-test budgets: a page case waits for its content, then three resizes. */
const PAGE_TEST_MS = 150_000
const TEST_MS = 120_000

const main = (page: ConsolePage) => page.getByRole('main')
/** What each page shows once loaded (the same markers load-time.test.ts waits for). */
const CONTENT = {
  // The bench store's row in the stores table.
  stores: (page: ConsolePage, pemba: ConsolePemba) =>
    main(page).getByRole('row').filter({ hasText: pemba.store }).first().waitFor({ timeout: CONTENT_MS }),
  // The DSL of the store's model.
  model: (page: ConsolePage, pemba: ConsolePemba) => page.getByLabel(`The DSL of version ${pemba.modelId}`).waitFor({ timeout: CONTENT_MS }),
  // cytoscape's layout done, with the bench model's four types listed.
  modelGraph: async (page: ConsolePage) => {
    await page.getByRole('img', { name: /model as a graph/ }).and(page.locator('[data-ready="true"]')).waitFor({ timeout: CONTENT_MS })
    const list = page.getByRole('list', { name: 'Types and relations' })
    await expect
      .poll(() => list.evaluate((ul: any) => [...ul.children].map((li: any) => li.getAttribute('data-node'))), { timeout: CONTENT_MS })
      .toEqual(['user', 'group', 'folder', 'document'])
  },
  // At least one row of the first page of tuples / changes.
  rows: (page: ConsolePage) => main(page).locator('tbody tr').first().waitFor({ timeout: CONTENT_MS }),
  changes: (page: ConsolePage) => main(page).locator('tbody tr, ol li, ul li').first().waitFor({ timeout: CONTENT_MS }),
  // The empty check form, ready to fill.
  checkForm: (page: ConsolePage) => page.getByRole('form', { name: 'Check form' }).getByLabel('User', { exact: true }).waitFor({ timeout: CONTENT_MS }),
  // An allowed answer: the witness list, and the answer heading saying allowed.
  checkAllowed: async (page: ConsolePage) => {
    await page.getByRole('list', { name: 'Witness tuples' }).waitFor({ timeout: CONTENT_MS })
    await expect.poll(() => page.getByRole('heading', { name: /Answer/ }).first().textContent(), { timeout: CONTENT_MS }).toMatch(/\ballowed\b/)
    await expect(page.getByRole('heading', { name: /Answer/ }).first().textContent()).resolves.not.toMatch(/denied|not allowed/i)
  },
  // The decision log read: its rows or its "no decision" note.
  decisions: (page: ConsolePage) =>
    main(page).locator('tbody tr').or(main(page).getByText('No decision matches.')).first().waitFor({ timeout: CONTENT_MS }),
  // The review form, and the prompt for an identity.
  reviewForm: (page: ConsolePage) => main(page).getByText(/to review\.$/).first().waitFor({ timeout: CONTENT_MS }),
  // A user's grants.
  reviewIdentity: (page: ConsolePage) => main(page).getByRole('table').first().waitFor({ timeout: CONTENT_MS }),
  // The requests table (its caption says how many, or none).
  requests: (page: ConsolePage) => main(page).getByRole('table').first().waitFor({ timeout: CONTENT_MS }),
  notFound: (page: ConsolePage) => main(page).getByText('The console has no page at').waitFor({ timeout: CONTENT_MS }),
}

const PAGES: PageCase[] = [
  { name: 'stores', path: () => '/console/', heading: /^Stores$/, content: CONTENT.stores },
  { name: 'model', path: (s) => `/console/stores/${s}/model`, heading: /^Model/, content: CONTENT.model },
  { name: 'model-graph', path: (s) => `/console/stores/${s}/model?tab=graph`, heading: /^Model/, content: CONTENT.modelGraph },
  { name: 'tuples', path: (s) => `/console/stores/${s}/tuples`, heading: /^Tuples/, content: CONTENT.rows },
  { name: 'changes', path: (s) => `/console/stores/${s}/changes`, heading: /^Changes/, content: CONTENT.changes },
  { name: 'check', path: (s) => `/console/stores/${s}/check`, heading: /^Check/, content: CONTENT.checkForm },
  {
    name: 'check-allowed',
    path: async (s, pemba) => `/console/stores/${s}/check?${new URLSearchParams({ ...(await firstAllowedCheck(pemba)), run: '1' })}`,
    heading: /^Check/,
    content: CONTENT.checkAllowed,
  },
  { name: 'decisions', path: (s) => `/console/stores/${s}/decisions`, heading: /^Decisions/, content: CONTENT.decisions },
  { name: 'review', path: (s) => `/console/stores/${s}/review`, heading: /Review/i, content: CONTENT.reviewForm },
  {
    name: 'review-identity',
    path: (s, pemba) => `/console/stores/${s}/review?${new URLSearchParams({ user: directViewer(pemba) })}`,
    heading: /Review/i,
    content: CONTENT.reviewIdentity,
  },
  { name: 'requests', path: (s) => `/console/stores/${s}/requests`, heading: /Requests/i, content: CONTENT.requests },
  { name: 'not-found', path: () => '/console/no/such/page', heading: /^Not found$/, content: CONTENT.notFound },
  // A truncated deep link (a malformed % escape): the not-found page, never a blank console.
  { name: 'bad-escape', path: (s) => `/console/stores/${s}%E0%A4%A/model`, heading: /^Not found$/, content: CONTENT.notFound },
]

/** The header's page tabs, in order. */
const TABS = ['Model', 'Tuples', 'Changes', 'Check', 'Decisions', 'Review', 'Requests']

/**
 * waitSettled: the page's <h1> is there, nothing shown says it is loading, and — when given —
 * the page's content is shown. No networkidle: after an in-app navigation (a click, back,
 * forward) the load state stays what the first load reached, so only the page's own markers
 * tell that it has loaded.
 */
async function waitSettled(page: ConsolePage, heading: RegExp, content?: (page: ConsolePage) => Promise<void>): Promise<void> {
  await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: CONTENT_MS })
  await content?.(page)
  // Shown ones only: a closed dialog may hold a loading note of its own.
  const settled = () => ![...document.querySelectorAll('[aria-busy="true"], .loading')].some((e: any) => e.getClientRects().length > 0)
  await page.waitForFunction(settled, undefined, { timeout: CONTENT_MS })
}

describeChromium('console pages', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: 0.1 }), launchChromium(chromium)])
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })

  for (const c of PAGES) {
    it(`${c.name}: loads with its heading and content, clean, and holds 1024 to 2560 px wide`, async () => {
      const page = await openConsole(browser, pemba, await c.path(pemba.store, pemba))
      try {
        await waitSettled(page, c.heading, (p) => c.content(p, pemba))
        await expect(page.getByRole('heading', { level: 1 }).count()).resolves.toBe(1)
        // No error shown in place: an API refusal, a network error, a form error.
        await expect(main(page).getByRole('alert').count(), `${c.name}: no error in the page`).resolves.toBe(0)
        await expect(page.title()).resolves.toMatch(/Pemba console$/)
        // Every page has the way out to the stores and the token button.
        await page.getByRole('link', { name: 'Pemba' }).waitFor({ timeout: CONTENT_MS })
        await page.getByRole('button', { name: /token/i }).waitFor({ timeout: CONTENT_MS })
        page.assertClean()
        await screenshot(page, `page-${c.name}`)
        for (const width of [1024, 1440, 2560]) {
          await page.setViewportSize({ width, height: 900 })
          // A resize settles (a canvas follows the window on its resize event, late under load).
          await expect
            .poll(() => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), {
              message: `${c.name} at ${width} px: no horizontal scrollbar (scrollWidth - innerWidth)`,
              timeout: 15_000,
            })
            .toBeLessThanOrEqual(0)
        }
        await expect(main(page).getByRole('alert').count()).resolves.toBe(0)
        page.assertClean()
      } finally {
        await page.context().close()
      }
    }, PAGE_TEST_MS)
  }

  it('opens a URL with state directly and restores that state (tuples filters, check form and answer, review identity)', async () => {
    // An allowed check from the data set, to open the check page already run.
    const allowed = await firstAllowedCheck(pemba)
    const viewer = directViewer(pemba)
    const filter = new URLSearchParams({ type: 'document', relation: 'viewer', user: viewer })
    const tuples = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?${filter}`)
    try {
      await waitSettled(tuples, /^Tuples/, CONTENT.rows)
      await expect.poll(() => tuples.getByLabel(/relation/i).first().inputValue(), { timeout: CONTENT_MS }).toBe('viewer')
      // The rows shown are the filter's: every row's relation is `viewer`, every object a document.
      const relations = await columnTexts(tuples, /^relation$/i)
      expect(relations.length, 'the filtered tuples table has rows').toBeGreaterThan(0)
      expect(new Set(relations)).toEqual(new Set(['viewer']))
      const objects = await columnTexts(tuples, /^object$/i)
      for (const o of objects) expect(o).toMatch(/^document:/)
      expect(new Set(await columnTexts(tuples, /^user$/i))).toEqual(new Set([viewer]))
      tuples.assertClean()
    } finally {
      await tuples.context().close()
    }

    const q = new URLSearchParams({ user: allowed.user, relation: allowed.relation, object: allowed.object, run: '1' })
    const check = await openConsole(browser, pemba, `/console/stores/${pemba.store}/check?${q}`)
    try {
      await waitSettled(check, /^Check/)
      await expect.poll(() => check.getByLabel(/^user/i).first().inputValue(), { timeout: CONTENT_MS }).toBe(allowed.user)
      await expect.poll(() => check.getByLabel(/^object/i).first().inputValue(), { timeout: CONTENT_MS }).toBe(allowed.object)
      // Run from the URL alone: the answer is on the page.
      await CONTENT.checkAllowed(check)
      check.assertClean()
    } finally {
      await check.context().close()
    }

    const user = allowed.user
    const review = await openConsole(browser, pemba, `/console/stores/${pemba.store}/review?${new URLSearchParams({ user })}`)
    try {
      await waitSettled(review, /Review/i, CONTENT.reviewIdentity)
      const field = review.getByRole('textbox', { name: /identity|user|subject/i }).first()
      await expect.poll(() => field.inputValue(), { timeout: CONTENT_MS }).toBe(user)
      review.assertClean()
    } finally {
      await review.context().close()
    }
  }, TEST_MS)

  it('typing into a filter puts it in the URL, and that URL opened in a new tab shows the same', async () => {
    // A filter the API takes: a type and a user, then the relation typed in.
    const filter = new URLSearchParams({ type: 'document', user: directViewer(pemba) })
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?${filter}`)
    try {
      await waitSettled(page, /^Tuples/, CONTENT.rows)
      const relation = page.getByLabel(/relation/i).first()
      await relation.fill('owner')
      await relation.press('Enter')
      await page.waitForURL((u) => u.searchParams.get('relation') === 'owner' && u.searchParams.get('type') === 'document', {
        timeout: 10_000,
      })
      const shared = page.url()
      const other = await openConsole(browser, pemba, new URL(shared).pathname + new URL(shared).search)
      try {
        await waitSettled(other, /^Tuples/, CONTENT.rows)
        await expect.poll(() => other.getByLabel(/relation/i).first().inputValue(), { timeout: CONTENT_MS }).toBe('owner')
        other.assertClean()
      } finally {
        await other.context().close()
      }
    } finally {
      await page.context().close()
    }
  }, TEST_MS)

  it('back and forward move between pages and keep each page state', async () => {
    const filter = new URLSearchParams({ type: 'document', relation: 'viewer', user: directViewer(pemba) })
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?${filter}`)
    try {
      await waitSettled(page, /^Tuples/, CONTENT.rows)
      const nav = page.getByRole('navigation', { name: 'Store pages' })
      // Scrolled down the table, a page opened in the app starts at its top. (Clicked from the
      // page's script: playwright's click would scroll the tab into view itself.)
      const scrolled = await page.evaluate(() => (window.scrollTo(0, document.documentElement.scrollHeight), window.scrollY))
      expect(scrolled, 'the tuples page scrolls at 1440×900').toBeGreaterThan(0)
      await page.evaluate(() => [...document.querySelectorAll('nav a')].find((a: any) => a.textContent === 'Check').click())
      await waitSettled(page, /^Check/, CONTENT.checkForm)
      await expect.poll(() => page.evaluate(() => window.scrollY), { timeout: CONTENT_MS }).toBe(0)
      await nav.getByRole('link', { name: 'Review' }).click()
      await waitSettled(page, /Review/i, CONTENT.reviewForm)
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/review`)

      await page.goBack()
      await waitSettled(page, /^Check/, CONTENT.checkForm)
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/check`)
      await page.goBack()
      await waitSettled(page, /^Tuples/, CONTENT.rows)
      expect(new URL(page.url()).searchParams.get('relation')).toBe('viewer')
      await expect.poll(() => page.getByLabel(/relation/i).first().inputValue(), { timeout: CONTENT_MS }).toBe('viewer')
      await page.goForward()
      await waitSettled(page, /^Check/, CONTENT.checkForm)
      // The store pages' tab of the page shown is marked current.
      await expect.poll(() => nav.getByRole('link', { name: 'Check' }).getAttribute('aria-current'), { timeout: CONTENT_MS }).toBe('page')
      await page.getByRole('link', { name: 'Pemba' }).click()
      await waitSettled(page, /^Stores$/, (p) => CONTENT.stores(p, pemba))
      await page.goBack()
      await waitSettled(page, /^Check/, CONTENT.checkForm)
      page.assertClean()
    } finally {
      await page.context().close()
    }
  }, TEST_MS)

  it('keyboard: Tab from the top reaches the skip link, every tab and the token button; Enter on a tab navigates', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`)
    try {
      await waitSettled(page, /^Tuples/, CONTENT.rows)
      const focused = () =>
        page.evaluate(() => {
          const el = document.activeElement as { tagName?: string; innerText?: string; id?: string } | null
          return { tag: el?.tagName ?? '', text: (el?.innerText ?? '').trim(), id: el?.id ?? '' }
        })
      const seen: string[] = []
      await page.keyboard.press('Tab')
      await expect.poll(focused, { message: 'the first Tab stop is the skip link', timeout: CONTENT_MS }).toMatchObject({ tag: 'A', text: 'Skip to content' })
      seen.push('Skip to content')
      for (let i = 0; i < 12; i++) {
        await page.keyboard.press('Tab')
        const f = await focused()
        seen.push(f.text)
        if (/token/i.test(f.text)) break
      }
      expect(seen).toEqual(['Skip to content', 'Pemba', ...TABS, expect.stringMatching(/token/i)])
      // Shift+Tab back to "Check", Enter: the check page.
      for (let i = 0; i < 4; i++) await page.keyboard.press('Shift+Tab')
      await expect.poll(focused, { timeout: CONTENT_MS }).toMatchObject({ text: 'Check' })
      await page.keyboard.press('Enter')
      await waitSettled(page, /^Check/, CONTENT.checkForm)
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/check`)
      // After an in-app navigation focus is on the content, so the next Tab is inside the page.
      await expect.poll(focused, { timeout: CONTENT_MS }).toMatchObject({ id: 'main' })

      // The skip link moves focus past the header.
      await page.reload()
      await waitSettled(page, /^Check/, CONTENT.checkForm)
      await page.keyboard.press('Tab')
      await expect.poll(focused, { timeout: CONTENT_MS }).toMatchObject({ text: 'Skip to content' })
      await page.keyboard.press('Enter')
      await expect.poll(focused, { timeout: CONTENT_MS }).toMatchObject({ id: 'main' })
      await page.keyboard.press('Tab')
      await expect
        .poll(() => page.evaluate(() => document.getElementById('main')?.contains(document.activeElement) ?? false), {
          message: 'Tab after the skip link lands inside the page',
          timeout: CONTENT_MS,
        })
        .toBe(true)

      // The token dialog opens from the keyboard and Esc closes it.
      await page.getByRole('button', { name: /token/i }).focus()
      await page.keyboard.press('Enter')
      const dialog = page.getByRole('dialog', { name: 'API token' })
      await dialog.waitFor()
      await expect.poll(focused, { timeout: CONTENT_MS }).toMatchObject({ tag: 'INPUT' })
      await page.keyboard.press('Escape')
      await dialog.waitFor({ state: 'hidden' })
      page.assertClean()
    } finally {
      await page.context().close()
    }
  }, TEST_MS)
})

/** firstAllowedCheck: a deep-group check of the data set (a user through nested groups) that the server allows. */
async function firstAllowedCheck(pemba: ConsolePemba): Promise<{ user: string; relation: string; object: string }> {
  for (const c of pemba.dataset.checks.filter((c) => c.kind === 'deep-group').slice(0, 50)) {
    const key = { user: c.subject, relation: c.permission, object: c.resource }
    const r = await pemba.api('POST', `/stores/${pemba.store}/check`, { tuple_key: key })
    if (r.status === 200 && r.body.allowed === true) return key
  }
  throw new Error('no allowed deep-group check among the data set\'s first 50')
}

/** directViewer: the user with the most direct `document:…#viewer@user:…` tuples in the data set. */
function directViewer(pemba: ConsolePemba): string {
  const counts = new Map<string, number>()
  for (const t of pemba.dataset.tuples) {
    const m = /^document:[^#]+#viewer@(user:[^#]+)$/.exec(t)
    if (m) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1)
  }
  const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]
  if (!best) throw new Error('no direct document viewer in the data set')
  return best[0]
}

/** columnTexts: the cells under the first table header matching `header`, in the page's first table that has one. */
async function columnTexts(page: ConsolePage, header: RegExp): Promise<string[]> {
  return page.evaluate(
    ({ source, flags }) => {
      const re = new RegExp(source, flags)
      for (const table of document.querySelectorAll('main table')) {
        const heads = [...table.querySelectorAll('thead th')]
        const index = heads.findIndex((th) => re.test((th.textContent ?? '').trim()))
        if (index < 0) continue
        return [...table.querySelectorAll('tbody tr')]
          .map((tr) => tr.children[index]?.textContent?.trim() ?? '')
          .filter((t) => t !== '')
      }
      throw new Error(`no table with a header ${re}`)
    },
    { source: header.source, flags: header.flags },
  )
}
