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
  /** Waits for the page's content beyond its heading (the graph laid out, an answer). */
  content?: (page: ConsolePage) => Promise<void>
}

const PAGES: PageCase[] = [
  { name: 'stores', path: () => '/console/', heading: /^Stores$/ },
  { name: 'model', path: (s) => `/console/stores/${s}/model`, heading: /^Model/ },
  {
    name: 'model-graph',
    path: (s) => `/console/stores/${s}/model?tab=graph`,
    heading: /^Model/,
    // cytoscape's own layout done, with the bench model's four types drawn.
    content: async (page) => {
      await page.locator('[data-ready="true"]').waitFor({ timeout: 30_000 })
      const nodes = Number(await page.locator('[data-ready="true"]').getAttribute('data-node-count'))
      expect(nodes).toBeGreaterThanOrEqual(4)
    },
  },
  { name: 'tuples', path: (s) => `/console/stores/${s}/tuples`, heading: /^Tuples/ },
  { name: 'changes', path: (s) => `/console/stores/${s}/changes`, heading: /^Changes/ },
  { name: 'check', path: (s) => `/console/stores/${s}/check`, heading: /^Check/ },
  {
    name: 'check-allowed',
    path: async (s, pemba) => `/console/stores/${s}/check?${new URLSearchParams({ ...(await firstAllowedCheck(pemba)), run: '1' })}`,
    heading: /^Check/,
    content: (page) => page.getByText('allowed', { exact: true }).first().waitFor({ timeout: 20_000 }),
  },
  { name: 'decisions', path: (s) => `/console/stores/${s}/decisions`, heading: /^Decisions/ },
  { name: 'review', path: (s) => `/console/stores/${s}/review`, heading: /Review/i },
  {
    name: 'review-identity',
    path: (s, pemba) => `/console/stores/${s}/review?${new URLSearchParams({ user: directViewer(pemba) })}`,
    heading: /Review/i,
    content: (page) => page.getByRole('main').getByRole('table').first().waitFor({ timeout: 20_000 }),
  },
  { name: 'requests', path: (s) => `/console/stores/${s}/requests`, heading: /Requests/i },
  { name: 'not-found', path: () => '/console/no/such/page', heading: /^Not found$/ },
]

/** The header's page tabs, in order. */
const TABS = ['Model', 'Tuples', 'Changes', 'Check', 'Decisions', 'Review', 'Requests']

/** waitSettled: the page's <h1> is there, no request is in flight and nothing says it is loading. */
async function waitSettled(page: ConsolePage, heading: RegExp): Promise<void> {
  await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: 20_000 })
  await page.waitForLoadState('networkidle')
  // Shown ones only: a closed dialog may hold a loading note of its own.
  const settled = () => ![...document.querySelectorAll('[aria-busy="true"], .loading')].some((e: any) => e.getClientRects().length > 0)
  await page.waitForFunction(settled, undefined, { timeout: 20_000 })
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
    it(`${c.name}: loads with its heading, clean, and holds 1024 to 2560 px wide`, async () => {
      const page = await openConsole(browser, pemba, await c.path(pemba.store, pemba))
      try {
        await waitSettled(page, c.heading)
        await c.content?.(page)
        await expect(page.getByRole('heading', { level: 1 }).count()).resolves.toBe(1)
        await expect(page.title()).resolves.toMatch(/Pemba console$/)
        // Every page has the way out to the stores and the token button.
        await expect(page.getByRole('link', { name: 'Pemba' }).isVisible()).resolves.toBe(true)
        await expect(page.getByRole('button', { name: /token/i }).isVisible()).resolves.toBe(true)
        page.assertClean()
        await screenshot(page, `page-${c.name}`)
        for (const width of [1024, 1440, 2560]) {
          await page.setViewportSize({ width, height: 900 })
          // A resize settles (a canvas follows the window on its resize event): up to 5 s.
          await page
            .waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth, undefined, { timeout: 5_000 })
            .catch(() => undefined)
          const { scrollWidth, innerWidth } = await page.evaluate(() => ({
            scrollWidth: document.documentElement.scrollWidth,
            innerWidth: window.innerWidth,
          }))
          expect(scrollWidth, `${c.name} at ${width} px: no horizontal scrollbar`).toBeLessThanOrEqual(innerWidth)
        }
        page.assertClean()
      } finally {
        await page.context().close()
      }
    })
  }

  it('opens a URL with state directly and restores that state (tuples filters, check form and answer, review identity)', async () => {
    // An allowed check from the data set, to open the check page already run.
    const allowed = await firstAllowedCheck(pemba)
    const viewer = directViewer(pemba)
    const filter = new URLSearchParams({ type: 'document', relation: 'viewer', user: viewer })
    const tuples = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?${filter}`)
    try {
      await waitSettled(tuples, /^Tuples/)
      await expect(tuples.getByLabel(/relation/i).first().inputValue()).resolves.toBe('viewer')
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
      await expect(check.getByLabel(/^user/i).first().inputValue()).resolves.toBe(allowed.user)
      await expect(check.getByLabel(/^object/i).first().inputValue()).resolves.toBe(allowed.object)
      // Run from the URL alone: the answer is on the page.
      await check.getByText('allowed', { exact: true }).first().waitFor({ timeout: 20_000 })
      check.assertClean()
    } finally {
      await check.context().close()
    }

    const user = allowed.user
    const review = await openConsole(browser, pemba, `/console/stores/${pemba.store}/review?${new URLSearchParams({ user })}`)
    try {
      await waitSettled(review, /Review/i)
      const field = review.getByRole('textbox', { name: /identity|user|subject/i }).first()
      await expect(field.inputValue()).resolves.toBe(user)
      review.assertClean()
    } finally {
      await review.context().close()
    }
  })

  it('typing into a filter puts it in the URL, and that URL opened in a new tab shows the same', async () => {
    // A filter the API takes: a type and a user, then the relation typed in.
    const filter = new URLSearchParams({ type: 'document', user: directViewer(pemba) })
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?${filter}`)
    try {
      await waitSettled(page, /^Tuples/)
      const relation = page.getByLabel(/relation/i).first()
      await relation.fill('owner')
      await relation.press('Enter')
      await page.waitForURL((u) => u.searchParams.get('relation') === 'owner' && u.searchParams.get('type') === 'document', {
        timeout: 10_000,
      })
      const shared = page.url()
      const other = await openConsole(browser, pemba, new URL(shared).pathname + new URL(shared).search)
      try {
        await waitSettled(other, /^Tuples/)
        await expect(other.getByLabel(/relation/i).first().inputValue()).resolves.toBe('owner')
        other.assertClean()
      } finally {
        await other.context().close()
      }
    } finally {
      await page.context().close()
    }
  })

  it('back and forward move between pages and keep each page state', async () => {
    const filter = new URLSearchParams({ type: 'document', relation: 'viewer', user: directViewer(pemba) })
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?${filter}`)
    try {
      await waitSettled(page, /^Tuples/)
      const nav = page.getByRole('navigation', { name: 'Store pages' })
      await nav.getByRole('link', { name: 'Check' }).click()
      await waitSettled(page, /^Check/)
      await nav.getByRole('link', { name: 'Review' }).click()
      await waitSettled(page, /Review/i)
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/review`)

      await page.goBack()
      await waitSettled(page, /^Check/)
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/check`)
      await page.goBack()
      await waitSettled(page, /^Tuples/)
      expect(new URL(page.url()).searchParams.get('relation')).toBe('viewer')
      await expect(page.getByLabel(/relation/i).first().inputValue()).resolves.toBe('viewer')
      await page.goForward()
      await waitSettled(page, /^Check/)
      // The store pages' tab of the page shown is marked current.
      await expect(nav.getByRole('link', { name: 'Check' }).getAttribute('aria-current')).resolves.toBe('page')
      await page.getByRole('link', { name: 'Pemba' }).click()
      await waitSettled(page, /^Stores$/)
      await page.goBack()
      await waitSettled(page, /^Check/)
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('keyboard: Tab from the top reaches the skip link, every tab and the token button; Enter on a tab navigates', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`)
    try {
      await waitSettled(page, /^Tuples/)
      const focused = () =>
        page.evaluate(() => {
          const el = document.activeElement as { tagName?: string; innerText?: string; id?: string } | null
          return { tag: el?.tagName ?? '', text: (el?.innerText ?? '').trim(), id: el?.id ?? '' }
        })
      const seen: string[] = []
      await page.keyboard.press('Tab')
      const first = await focused()
      expect(first, 'the first Tab stop is the skip link').toMatchObject({ tag: 'A', text: 'Skip to content' })
      seen.push(first.text)
      for (let i = 0; i < 12; i++) {
        await page.keyboard.press('Tab')
        const f = await focused()
        seen.push(f.text)
        if (/token/i.test(f.text)) break
      }
      expect(seen).toEqual(['Skip to content', 'Pemba', ...TABS, expect.stringMatching(/token/i)])
      // Shift+Tab back to "Check", Enter: the check page.
      for (let i = 0; i < 4; i++) await page.keyboard.press('Shift+Tab')
      await expect(focused()).resolves.toMatchObject({ text: 'Check' })
      await page.keyboard.press('Enter')
      await waitSettled(page, /^Check/)
      expect(new URL(page.url()).pathname).toBe(`/console/stores/${pemba.store}/check`)
      // After an in-app navigation focus is on the content, so the next Tab is inside the page.
      await expect(focused()).resolves.toMatchObject({ id: 'main' })

      // The skip link moves focus past the header.
      await page.reload()
      await waitSettled(page, /^Check/)
      await page.keyboard.press('Tab')
      await expect(focused()).resolves.toMatchObject({ text: 'Skip to content' })
      await page.keyboard.press('Enter')
      await expect(focused()).resolves.toMatchObject({ id: 'main' })
      await page.keyboard.press('Tab')
      const inPage = await page.evaluate(() => document.getElementById('main')?.contains(document.activeElement) ?? false)
      expect(inPage, 'Tab after the skip link lands inside the page').toBe(true)

      // The token dialog opens from the keyboard and Esc closes it.
      await page.getByRole('button', { name: /token/i }).focus()
      await page.keyboard.press('Enter')
      const dialog = page.getByRole('dialog', { name: 'API token' })
      await dialog.waitFor()
      await expect(focused()).resolves.toMatchObject({ tag: 'INPUT' })
      await page.keyboard.press('Escape')
      await dialog.waitFor({ state: 'hidden' })
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })
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
