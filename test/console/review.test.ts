/**
 * The access review page against a real Pemba with the bench data set (scale 0.1): one user's
 * direct grants, some used by checks (the decision log marks each grant in an allowed check's
 * witness as used) and the others left unused; revoking one unused grant from the page removes
 * exactly that tuple; the reach chart and table show the API's reach answer.
 *
 * Unused means "granted before the window began and not used since", so no test waits for a
 * long window to pass: the same user is viewed through two windows. With P1D every grant is newer
 * than the window, so the checked grants are `used` and the others `new` (too new to judge, not
 * revocable); with PT1S, opened over a second after the checks, the checked grants are `UNUSED
 * (not used within the window)` and the others `UNUSED (never used)`, and one is revoked there.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import { tupleKey } from '../../bench/dataset.ts'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePemba } from './harness.ts'

const chromium = findChromium()
/** Every grant of the bench set is newer than this: nothing is unused, checked grants are used. */
const LONG = 'P1D'
/** Every grant (and the test's checks) older than this once a second has passed: all unused. */
const SHORT = 'PT1S'
const SHORT_MS = 1_000

type Key = { user: string; relation: string; object: string }
const text = (k: Key) => `${k.object}#${k.relation}@${k.user}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describeChromium('console access review page', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  /** The reviewed user: one with a handful of direct grants, at least three of them document#owner. */
  let user: string
  let grants: Key[]
  /** Owner grants the test's checks use (owner is [user] only: the check's witness is exactly that tuple). */
  let used: Key[]

  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: 0.1 }), launchChromium(chromium)])
    const byUser = new Map<string, Key[]>()
    for (const t of pemba.dataset.tuples) {
      const k = tupleKey(t)
      if (!k.user.startsWith('user:')) continue
      if (!byUser.has(k.user)) byUser.set(k.user, [])
      byUser.get(k.user)!.push(k)
    }
    const pick = [...byUser].find(
      ([, ks]) => ks.length >= 5 && ks.length <= 12 && ks.filter((k) => k.relation === 'owner' && k.object.startsWith('document:')).length >= 3,
    )
    if (!pick) throw new Error('the bench data set has no user with 5 to 12 direct grants, three of them document owners')
    ;[user, grants] = pick
    used = grants.filter((k) => k.relation === 'owner' && k.object.startsWith('document:')).slice(0, 2)
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })

  const review = (unusedFor: string) =>
    pemba.api('GET', `/stores/${pemba.store}/access-review?user=${encodeURIComponent(user)}&unused_for=${unusedFor}`)

  /** Every tuple of the store, as `object#relation@user` (read page by page). */
  const allTuples = async (): Promise<string[]> => {
    const out: string[] = []
    let token = ''
    do {
      const r = await pemba.api('POST', `/stores/${pemba.store}/read`, { page_size: 100, ...(token ? { continuation_token: token } : {}) })
      expect(r.status).toBe(200)
      for (const t of r.body.tuples) out.push(text(t.key))
      token = r.body.continuation_token
    } while (token)
    return out
  }

  it('shows used and unused grants, and revoking one unused grant removes exactly that tuple', async () => {
    // The API lists exactly the dataset's direct grants of the user.
    const first = await review(LONG)
    expect(first.status).toBe(200)
    expect(first.body.grants.map((g: { tuple_key: Key }) => text(g.tuple_key)).sort()).toEqual(grants.map(text).sort())
    expect(first.body.grants.every((g: any) => !g.unused && g.reason === 'granted within the window')).toBe(true)
    const newest = Math.max(...first.body.grants.map((g: { granted_at: string }) => Date.parse(g.granted_at)))
    // Use two of the grants.
    for (const k of used) {
      const r = await pemba.api('POST', `/stores/${pemba.store}/check`, { tuple_key: k })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body.allowed).toBe(true)
    }
    const checkedAt = Date.now()
    // The decision log writes grant usage off the request path: wait for it.
    let answer: any
    for (let i = 0; i < 50; i++) {
      answer = (await review(LONG)).body
      if (answer.grants.filter((g: any) => g.reason === 'used within the window').length === used.length) break
      await sleep(200)
    }
    const usedNow = answer.grants.filter((g: any) => g.reason === 'used within the window').map((g: any) => text(g.tuple_key))
    expect(usedNow.sort()).toEqual(used.map(text).sort())

    const reviewUrl = (window: string) => `/console/stores/${pemba.store}/review?user=${encodeURIComponent(user)}&unused_for=${window}`
    const statusCells = async (page: Page) => {
      const table = page.getByRole('table', { name: `Direct grants of ${user}` })
      await table.waitFor()
      const rows = table.getByRole('row')
      expect(await rows.count()).toBe(grants.length + 1)
      return { table, rows }
    }

    // The long window: the checked grants are used; the others are too new to judge, not used.
    const page = await openConsole(browser, pemba, reviewUrl(LONG))
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Access review')
    {
      const { rows } = await statusCells(page)
      expect(await page.getByLabel('Unused for').inputValue()).toBe(LONG)
      for (const k of grants) {
        const row = rows.filter({ hasText: text(k) })
        expect(await row.count()).toBe(1)
        const isUsed = used.some((u) => text(u) === text(k))
        const cells = await row.getByRole('cell').allTextContents()
        expect(cells[3]).toMatch(isUsed ? /^used \(used within the window\)$/ : /^new \(granted within the window\)$/)
        if (isUsed) expect(cells[2]).not.toBe('never')
        else expect(cells[2]).toBe('never')
        expect(await row.getByRole('button', { name: /^Revoke / }).count()).toBe(0)
      }
      await expect(page.getByText(`0 of ${grants.length} grants unused`).count()).resolves.toBe(1)
    }

    // The short window, over a second after the grants and the checks: every grant is unused.
    await sleep(Math.max(0, Math.max(newest, checkedAt) + SHORT_MS + 300 - Date.now()))
    const unusedAnswer = (await review(SHORT)).body
    const unused = unusedAnswer.grants.filter((g: any) => g.unused)
    expect(unused).toHaveLength(grants.length)
    await page.goto(`${pemba.url}${reviewUrl(SHORT)}`)
    const { table, rows } = await statusCells(page)
    // The form shows the URL's state.
    expect(await page.getByLabel('Identity', { exact: true }).inputValue()).toBe(user)
    expect(await page.getByLabel('Unused for').inputValue()).toBe(SHORT)
    for (const k of grants) {
      const row = rows.filter({ hasText: text(k) })
      expect(await row.count()).toBe(1)
      const wasUsed = used.some((u) => text(u) === text(k))
      const cells = await row.getByRole('cell').allTextContents()
      expect(cells[3]).toMatch(wasUsed ? /^UNUSED \(not used within the window\)$/ : /^UNUSED \(never used\)$/)
      if (wasUsed) expect(cells[2]).not.toBe('never')
      else expect(cells[2]).toBe('never')
      expect(await row.getByRole('button', { name: `Revoke ${text(k)}` }).count()).toBe(1)
    }
    await expect(page.getByText(`${grants.length} of ${grants.length} grants unused`).count()).resolves.toBe(1)
    await screenshot(page, 'review')

    // Revoke one unused grant: the dialog shows the review's own delete request.
    const target = unused.find((g: any) => g.reason === 'never used' && g.tuple_key.object.startsWith('document:')) ?? unused.find((g: any) => g.reason === 'never used')
    const targetText = text(target.tuple_key)
    const before = await allTuples()
    expect(before).toContain(targetText)
    await rows.filter({ hasText: targetText }).getByRole('button', { name: `Revoke ${targetText}` }).click()
    const dialog = page.getByRole('dialog', { name: 'Revoke this grant?' })
    await dialog.waitFor()
    expect(JSON.parse(await dialog.getByLabel('Request body').textContent() ?? '')).toEqual(target.delete_request)
    await expect(dialog.getByText(`POST /stores/${pemba.store}/write`).count()).resolves.toBe(1)
    // Esc cancels: nothing sent.
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    expect((await allTuples()).length).toBe(before.length)
    await rows.filter({ hasText: targetText }).getByRole('button', { name: `Revoke ${targetText}` }).click()
    await dialog.getByRole('button', { name: 'Revoke', exact: true }).click()
    await page.getByRole('status').filter({ hasText: `Revoked ${targetText}` }).waitFor()
    await rows.filter({ hasText: targetText }).waitFor({ state: 'detached' })
    expect(await rows.count()).toBe(grants.length)
    // The keyboard user's place is kept: focus is on the note, not lost to the page's top.
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string | null } | null } }).document.activeElement?.textContent ?? '')).toBe(`Revoked ${targetText}.`)
    expect(await table.count()).toBe(1)

    // Exactly that tuple is gone; every other tuple of the store is still there.
    const after = await allTuples()
    expect(after.length).toBe(before.length - 1)
    expect(new Set(after)).toEqual(new Set(before.filter((t) => t !== targetText)))
    const summary = await pemba.api('GET', `/stores/${pemba.store}/summary`)
    expect(summary.status).toBe(200)
    expect(summary.body.tuple_count).toBe(after.length)
    page.assertClean()
    await page.context().close()
  })

  it('draws the reach chart and table with the API\'s numbers', async () => {
    const api = await pemba.api('GET', `/stores/${pemba.store}/reach?user=${encodeURIComponent(user)}`)
    expect(api.status).toBe(200)
    const relations: { type: string; relation: string; count: number; truncated: boolean }[] = api.body.relations
    expect(relations.some((r) => r.count > 0)).toBe(true)

    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/review?user=${encodeURIComponent(user)}`)
    await page.getByRole('table', { name: `Direct grants of ${user}` }).waitFor()
    // Keyboard: the tabs move with the arrow keys, the URL follows.
    await page.getByRole('tab', { name: 'Grants' }).focus()
    await page.keyboard.press('ArrowRight')
    await page.waitForURL(/tab=reach/)
    expect(await page.getByRole('tab', { name: 'Reach' }).getAttribute('aria-selected')).toBe('true')

    const table = page.getByRole('table', { name: `Reach of ${user} by type and relation` })
    await table.waitFor()
    const rows = table.getByRole('row')
    expect(await rows.count()).toBe(relations.length + 1)
    const chart = page.getByRole('group', { name: `Reach chart of ${user}` })
    const types = [...new Set(relations.map((r) => r.type))]
    for (const type of types) {
      await expect(chart.getByRole('region', { name: `Type ${type}` }).count()).resolves.toBe(1)
    }
    const bars = chart.getByRole('listitem')
    expect(await bars.count()).toBe(relations.length)
    for (let i = 0; i < relations.length; i++) {
      const r = relations[i]
      const label = r.count.toLocaleString('en-US') + (r.truncated ? '+' : '')
      const cells = await rows.nth(i + 1).getByRole('cell').allTextContents()
      expect(cells.slice(0, 3)).toEqual([r.type, r.relation, label])
      expect(await bars.nth(i).textContent()).toMatch(new RegExp(`^${r.relation}${label.replace('+', '\\+')}`))
    }
    // The longest bar is full length; a relation reaching nothing has none.
    const widths = await bars.evaluateAll((els) => els.map((e) => parseFloat((e.querySelector('[aria-hidden] > span') as unknown as { style: { width: string } }).style.width)))
    const max = Math.max(...relations.map((r) => r.count))
    relations.forEach((r, i) => expect(widths[i]).toBeCloseTo((r.count / max) * 100, 1))
    expect(Math.max(...widths)).toBe(100)
    await screenshot(page, 'reach')

    // The logarithmic scale is part of the URL: a reload keeps it.
    await page.getByLabel('Logarithmic').check()
    await page.waitForURL(/scale=log/)
    await page.reload()
    await table.waitFor()
    expect(await page.getByLabel('Logarithmic').isChecked()).toBe(true)
    // Home goes back to the first tab, End to the last (the tab pattern's keys).
    await page.getByRole('tab', { name: 'Reach' }).focus()
    await page.keyboard.press('Home')
    await page.waitForURL((u) => !u.searchParams.has('tab'))
    expect(await page.getByRole('tab', { name: 'Grants' }).getAttribute('aria-selected')).toBe('true')
    await page.keyboard.press('End')
    await page.waitForURL(/tab=reach/)
    page.assertClean()
    await page.context().close()
  })

  it('states cut reach counts as lower bounds (a server with PEMBA_LIST_MAX_RESULTS=3)', async () => {
    const capped = await startConsolePemba({ scale: 0.1, env: { PEMBA_LIST_MAX_RESULTS: '3' } })
    try {
      const api = await capped.api('GET', `/stores/${capped.store}/reach?user=${encodeURIComponent(user)}`)
      expect(api.status).toBe(200)
      const relations: { type: string; relation: string; count: number; truncated: boolean }[] = api.body.relations
      const cut = relations.filter((r) => r.truncated)
      expect(cut.length).toBeGreaterThan(0)
      const page = await openConsole(browser, capped, `/console/stores/${capped.store}/review?user=${encodeURIComponent(user)}&tab=reach`)
      const table = page.getByRole('table', { name: `Reach of ${user} by type and relation` })
      await table.waitFor()
      const note = page.getByRole('note').filter({ hasText: "cut by the server's list limits" })
      expect(await note.textContent()).toMatch(new RegExp(`^${cut.length} counts? (was|were) cut`))
      const rows = table.getByRole('row')
      for (let i = 0; i < relations.length; i++) {
        const r = relations[i]
        const cells = await rows.nth(i + 1).getByRole('cell').allTextContents()
        expect(cells[2]).toBe(`${r.count.toLocaleString('en-US')}${r.truncated ? '+' : ''}`)
        expect(cells[3]).toBe(r.truncated ? 'cut at PEMBA_LIST_MAX_RESULTS' : 'yes')
      }
      page.assertClean()
      await page.context().close()
    } finally {
      await capped.stop()
    }
  })

  it('lists the identities of a type and opens one; shows API errors in place', async () => {
    const api = await pemba.api('GET', `/stores/${pemba.store}/access-review?user_type=user&unused_for=P30D`)
    expect(api.status).toBe(200)
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/review`)
    await page.getByLabel('Identity type').fill('user')
    await page.getByRole('button', { name: 'Review' }).click()
    await page.waitForURL(/type=user/)
    const table = page.getByRole('table', { name: 'Identities of type user' })
    await table.waitFor()
    const rows = table.getByRole('row')
    expect(await rows.count()).toBe(api.body.identities.length + 1)
    const first = api.body.identities[0]
    const cells = await rows.nth(1).getByRole('cell').allTextContents()
    expect(cells.slice(0, 3)).toEqual([first.user, String(first.grants), String(first.unused)])
    // The form takes one or the other: typing an identity clears the type (no both-given 400).
    await page.getByLabel('Identity', { exact: true }).fill(first.user)
    expect(await page.getByLabel('Identity type').inputValue()).toBe('')
    await page.getByLabel('Identity type').fill('user')
    expect(await page.getByLabel('Identity', { exact: true }).inputValue()).toBe('')
    await rows.nth(1).getByRole('link', { name: first.user }).click()
    await page.waitForURL((u) => u.searchParams.get('user') === first.user && !u.searchParams.has('type'))
    await page.getByRole('table', { name: `Direct grants of ${first.user}` }).waitFor()
    // Back returns to the type's list.
    await page.goBack()
    await table.waitFor()

    // Errors from the API, in place with their code: a bad window, an unknown type for reach.
    await page.goto(`${pemba.url}/console/stores/${pemba.store}/review?user=${encodeURIComponent(user)}&unused_for=soon`)
    const bad = page.getByRole('alert')
    await bad.waitFor()
    expect(await bad.getAttribute('data-code')).toBe('validation_error')
    expect(await bad.textContent()).toMatch(/'soon' is not a positive ISO 8601 duration/)
    await page.goto(`${pemba.url}/console/stores/${pemba.store}/review?user=robot:r1&tab=reach`)
    await bad.waitFor()
    expect(await bad.getAttribute('data-code')).toBe('validation_error')
    expect(await bad.textContent()).toMatch(/type 'robot' not found/)
    page.assertClean(/status of 400/)
    await page.context().close()
  })
})
