/**
 * The decisions page against a real Pemba with the bench data set (scale 0.1): the decisions the
 * test made are listed, the filters (allowed=false) narrow the table as the API does, and a row
 * opens its recorded witness in place and its question again in the check page.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePemba } from './harness.ts'

const chromium = findChromium()

type Key = { user: string; relation: string; object: string }
const text = (k: Key) => `${k.object}#${k.relation}@${k.user}`

describeChromium('console: decisions', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  let allowed: Key
  let denied: Key[]
  const decisions = async (query: string) => {
    const r = await pemba.api('GET', `/stores/${pemba.store}/decisions?${query}`)
    expect(r.status).toBe(200)
    return r.body.decisions as { id: string; time: string; user: string; object: string; relation: string; allowed: boolean; witness: Key[]; request_id: string }[]
  }

  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: 0.1 }), launchChromium(chromium)])
    // The decisions this test makes: one allowed deep-group check, and denied ones.
    let asked = 0
    const ask = async (k: Key) => (asked++, await pemba.api('POST', `/stores/${pemba.store}/check`, { tuple_key: k })).body.allowed as boolean
    const keyOf = (c: { subject: string; permission: string; resource: string }) => ({ user: c.subject, relation: c.permission, object: c.resource })
    allowed = keyOf(pemba.dataset.checks.find((c) => c.kind === 'deep-group')!)
    expect(await ask(allowed)).toBe(true)
    denied = []
    for (const c of pemba.dataset.checks.filter((c) => c.kind === 'deep-folder-denied' || c.kind === 'blocked')) {
      if (!(await ask(keyOf(c)))) denied.push(keyOf(c))
      if (denied.length === 3) break
    }
    expect(denied.length).toBe(3)
    // The log is written off the request path: wait until every one is there.
    const deadline = Date.now() + 20_000
    while ((await decisions('page_size=100')).length < asked) {
      if (Date.now() > deadline) throw new Error('the decisions were not recorded')
      await new Promise((r) => setTimeout(r, 200))
    }
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })

  it('lists the decisions made, filters them (allowed=false shows only denials), and opens a row\'s witness', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/decisions`)
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Decisions')
    const table = page.getByRole('table')
    await table.waitFor()
    const rows = table.locator('tbody > tr')
    // Matched on whole cells: `user:u19` must not match `user:u195`.
    const rowOf = (k: Key) =>
      rows.filter({ has: page.getByRole('cell', { name: k.user, exact: true }) }).filter({ has: page.getByRole('cell', { name: k.object, exact: true }) })
    for (const k of [allowed, ...denied]) await expect(rowOf(k).count()).resolves.toBe(1)
    await expect(rowOf(allowed).getByText('allowed', { exact: true }).count()).resolves.toBe(1)

    // allowed=false: only the denials, as the API lists them, and the URL says so.
    await page.getByLabel('Allowed').selectOption('false')
    await page.waitForURL(/allowed=false/)
    const expected = await decisions('allowed=false')
    await expect.poll(() => rows.count()).toBe(expected.length)
    await expect(rows.getByText('allowed', { exact: true }).count()).resolves.toBe(0)
    await expect(rows.getByText('denied', { exact: true }).count()).resolves.toBe(expected.length)
    for (const k of denied) await expect(rowOf(k).count()).resolves.toBe(1)
    await expect(rowOf(allowed).count()).resolves.toBe(0)

    // A subject filter, applied with Enter: the allowed decision alone; open it by keyboard.
    await page.getByLabel('Allowed').selectOption('true')
    await page.getByLabel('Subject').fill(allowed.user)
    await page.getByLabel('Subject').press('Enter')
    await page.waitForURL(new RegExp(`user=${encodeURIComponent(allowed.user)}`))
    const [recorded] = await decisions(`allowed=true&user=${encodeURIComponent(allowed.user)}`)
    expect(recorded.object).toBe(allowed.object)
    await expect.poll(() => rows.count()).toBe(1)
    const open = page.getByRole('button', { name: `Explain decision ${recorded.id}` })
    await open.focus()
    await page.keyboard.press('Enter')
    await page.waitForURL(new RegExp(`open=${recorded.id}`))
    await expect(page.getByRole('button', { name: `Hide decision ${recorded.id}` }).getAttribute('aria-expanded')).resolves.toBe('true')
    const witness = page.getByRole('list', { name: 'Recorded witness' })
    const shown = await witness.getByRole('listitem').allTextContents()
    expect(shown).toEqual(recorded.witness.map(text))
    expect(shown.some((t) => /#member@group:[^#]+#member$/.test(t))).toBe(true)
    await screenshot(page, 'decisions')

    // Reload: the filters and the open row come back from the URL.
    await page.reload()
    await page.getByRole('list', { name: 'Recorded witness' }).waitFor()
    await expect(page.getByLabel('Subject').inputValue()).resolves.toBe(allowed.user)
    await expect(page.getByLabel('Allowed').inputValue()).resolves.toBe('true')
    // Opening a row was pushed: Back closes it, Forward opens it again.
    await page.goBack()
    await expect.poll(() => new URL(page.url()).searchParams.get('open')).toBeNull()
    await expect(page.getByRole('list', { name: 'Recorded witness' }).count()).resolves.toBe(0)
    await expect(page.getByRole('button', { name: `Explain decision ${recorded.id}` }).getAttribute('aria-expanded')).resolves.toBe('false')
    await page.goForward()
    await page.getByRole('list', { name: 'Recorded witness' }).waitFor()

    // "Explain in Check": the same question (same model), explained now. An explained check
    // walks one branch at a time, so its witness may be another path than the one recorded.
    await expect(page.getByText('the explanation is computed now', { exact: false }).count()).resolves.toBe(1)
    // What it cannot replay is said: the request's context and contextual tuples were not recorded.
    await expect(page.getByRole('list', { name: 'Not asked again' }).textContent()).resolves.toMatch(/context and contextual tuples are not recorded/)
    const answered = page.waitForResponse((r) => r.url().endsWith('/check') && r.request().method() === 'POST')
    await page.getByRole('link', { name: 'Explain in Check' }).click()
    await page.waitForURL(/\/check\?/)
    const params = Object.fromEntries(new URL(page.url()).searchParams)
    expect(params).toEqual({ ...allowed, model: pemba.modelId, run: '1' })
    const now = await (await answered).json()
    expect(now.allowed).toBe(true)
    const list = page.getByRole('list', { name: 'Witness tuples' })
    await list.waitFor()
    await expect(list.getByRole('listitem').allTextContents()).resolves.toEqual((now.witness as Key[]).map(text))

    page.assertClean()
    await page.context().close()
  })

  it('filters by time range, kind, client and request id, and pages with the token in the URL', async () => {
    const base = `/console/stores/${pemba.store}/decisions`
    const page = await openConsole(browser, pemba, base)
    const rows = page.getByRole('table').locator('tbody > tr')
    await rows.first().waitFor()
    // The log is written off the request path (the previous test's check included): let it settle.
    let all = await decisions('page_size=100')
    for (let stable = 0; stable < 3; ) {
      await new Promise((r) => setTimeout(r, 300))
      const again = await decisions('page_size=100')
      stable = again.length === all.length ? stable + 1 : 0
      all = again
    }
    expect(all.length).toBeGreaterThanOrEqual(4)
    const apply = async () => {
      await page.getByRole('button', { name: 'Apply filters' }).click()
    }
    // To (exclusive) before every decision: nothing. The datetime-local value is the browser's
    // zone; the URL and the API get RFC 3339 UTC.
    const past = '2001-02-03T04:05:06'
    const pastIso = await page.evaluate((v) => new Date(v).toISOString(), past)
    await page.getByLabel('To (exclusive)').fill(past)
    await apply()
    await page.waitForURL((u) => u.searchParams.get('to') === pastIso)
    expect(await decisions(`to=${encodeURIComponent(pastIso)}`)).toEqual([])
    await page.getByText('No decision matches.').waitFor()
    await expect(page.getByRole('table').count()).resolves.toBe(0)
    // From that time instead, and To cleared: every decision again, as the API lists them.
    await page.getByLabel('To (exclusive)').fill('')
    await page.getByLabel('From (inclusive)').fill(past)
    await apply()
    await page.waitForURL((u) => u.searchParams.get('from') === pastIso && !u.searchParams.has('to'))
    await expect.poll(() => rows.count()).toBe((await decisions(`from=${encodeURIComponent(pastIso)}&page_size=50`)).length)
    await expect(page.getByLabel('From (inclusive)').inputValue()).resolves.toBe(past)

    // Kind: the test asked plain checks only.
    await page.getByLabel('Kind').selectOption('token_check')
    await page.waitForURL(/kind=token_check/)
    await page.getByText('No decision matches.').waitFor()
    await page.getByLabel('Kind').selectOption('check')
    await page.waitForURL(/kind=check/)
    await expect.poll(() => rows.count()).toBe((await decisions(`kind=check&from=${encodeURIComponent(pastIso)}&page_size=50`)).length)

    // A client no one is: nothing (the filter is sent, not ignored).
    await page.getByLabel('Client').fill('nobody-at-all')
    await apply()
    await page.waitForURL(/client=nobody-at-all/)
    await page.getByText('No decision matches.').waitFor()
    expect(await decisions('client=nobody-at-all')).toEqual([])

    // A request id (what an enforcement point shows with a denial): its decision.
    const target = all[all.length - 1]
    expect(target.request_id).not.toBe('')
    await page.goto(new URL(base, pemba.url).href)
    await rows.first().waitFor()
    await page.getByLabel('Request or decision id').fill(target.request_id)
    await page.getByLabel('Request or decision id').press('Enter')
    await page.waitForURL(new RegExp(`request_id=${encodeURIComponent(target.request_id)}`))
    const byRequest = await decisions(`request_id=${encodeURIComponent(target.request_id)}`)
    expect(byRequest.map((d) => d.id)).toContain(target.id)
    await expect.poll(() => rows.count()).toBe(byRequest.length)
    await expect(page.getByRole('button', { name: `Explain decision ${target.id}` }).count()).resolves.toBe(1)

    // Paging: two a page; Next puts the API's token in the URL and shows the next two; First goes back.
    await page.goto(new URL(`${base}?page_size=2`, pemba.url).href)
    const ids = async () => (await rows.getByRole('button', { name: /^Explain decision / }).evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')!.slice('Explain decision '.length))))
    await expect.poll(() => rows.count()).toBe(2)
    expect(await ids()).toEqual(all.slice(0, 2).map((d) => d.id))
    await page.getByRole('button', { name: 'Next page' }).click()
    await page.waitForURL(/token=/)
    const pageToken = new URL(page.url()).searchParams.get('token')!
    const second = await decisions(`page_size=2&continuation_token=${encodeURIComponent(pageToken)}`)
    expect(second.map((d) => d.id)).toEqual(all.slice(2, 4).map((d) => d.id))
    await expect.poll(ids).toEqual(second.map((d) => d.id))
    expect(new URL(page.url()).searchParams.get('page_size')).toBe('2')
    await page.getByRole('button', { name: 'First page' }).click()
    await expect.poll(ids).toEqual(all.slice(0, 2).map((d) => d.id))
    expect(new URL(page.url()).searchParams.get('token')).toBeNull()
    page.assertClean()
    await page.context().close()
  })

  it('a denied row says no witness was recorded and links its question to Check, where every branch shows', async () => {
    const k = denied[0]
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/decisions?allowed=false&user=${encodeURIComponent(k.user)}&object=${encodeURIComponent(k.object)}`)
    const rows = page.getByRole('table').locator('tbody > tr')
    await expect.poll(() => rows.count()).toBe(1)
    await rows.getByRole('button', { name: /^Explain decision / }).click()
    await expect(page.getByText('Denied: a denial records no witness.', { exact: false }).count()).resolves.toBe(1)
    await page.getByRole('link', { name: 'Explain in Check' }).click()
    await page.getByRole('list', { name: 'Reasons' }).waitFor()
    await expect(page.getByRole('heading', { name: /Answer/ }).textContent()).resolves.toMatch(/denied/)
    page.assertClean()
    await page.context().close()
  })

  it('AuthZEN searches open as the list they were (resource: list objects, subject: list users), an action search as nothing to ask', async () => {
    const [type, id] = allowed.object.split(':')
    const subject = { type: 'user', id: allowed.user.split(':')[1] }
    const search = async (kind: string, body: object) => {
      const r = await pemba.api('POST', `/stores/${pemba.store}/access/v1/search/${kind}`, body)
      expect(r.status).toBe(200)
    }
    await search('resource', { subject, action: { name: allowed.relation }, resource: { type } })
    await search('subject', { subject: { type: 'user' }, action: { name: allowed.relation }, resource: { type, id } })
    await search('action', { subject, resource: { type, id } })
    const deadline = Date.now() + 20_000
    let recorded = await decisions('kind=search')
    while (recorded.length < 3) {
      if (Date.now() > deadline) throw new Error('the searches were not recorded')
      await new Promise((r) => setTimeout(r, 200))
      recorded = await decisions('kind=search')
    }
    const byObject = (o: string, rel: string) => recorded.find((d) => d.object === o && d.relation === rel)!
    const resource = byObject(type, allowed.relation)
    const subjectSearch = byObject(allowed.object, allowed.relation)
    const action = byObject(allowed.object, '')
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/decisions?kind=search&open=${action.id}`)
    // An action search: no witness block, no word of a refused token, no link.
    await page.getByText('an action search asks which relations hold', { exact: false }).waitFor()
    await expect(page.getByText('subject token was refused', { exact: false }).count()).resolves.toBe(0)
    await expect(page.getByText('The witness:', { exact: false }).count()).resolves.toBe(0)
    await expect(page.getByRole('link', { name: /in Check/ }).count()).resolves.toBe(0)

    await page.getByRole('button', { name: `Explain decision ${resource.id}` }).click()
    await expect(page.getByText('a search records no witness', { exact: false }).count()).resolves.toBe(1)
    const toObjects = page.getByRole('link', { name: 'Ask again in Check (list objects)' })
    expect(Object.fromEntries(new URL((await toObjects.getAttribute('href'))!, pemba.url).searchParams)).toEqual({
      user: allowed.user,
      relation: allowed.relation,
      mode: 'list-objects',
      type,
      model: pemba.modelId,
      run: '1',
    })

    await page.getByRole('button', { name: `Explain decision ${subjectSearch.id}` }).click()
    const toUsers = page.getByRole('link', { name: 'Ask again in Check (list users)' })
    await toUsers.click()
    await page.waitForURL(/\/check\?/)
    expect(Object.fromEntries(new URL(page.url()).searchParams)).toEqual({
      relation: allowed.relation,
      mode: 'list-users',
      user_type: 'user',
      object: allowed.object,
      model: pemba.modelId,
      run: '1',
    })
    // The list users answer, with the user the search found among them.
    const users = page.getByRole('list', { name: 'Users' })
    await users.waitFor()
    await expect(users.getByRole('link', { name: allowed.user, exact: true }).count()).resolves.toBe(1)
    page.assertClean()
    await page.context().close()
  })
})
