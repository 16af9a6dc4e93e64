import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, writeTuples, type ConsolePemba } from './harness.ts'

const chromium = findChromium()

/** The bench model has no approval relation: a small model where release managers approve deployers. */
const JIT_MODEL = `model
  schema 1.1
type user
type team
  relations
    define member: [user]
type namespace
  relations
    define deployer: [user]
    define deployer_approver: [user, team#member]
`

describeChromium('console: access requests page', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  let store: string
  const ids: Record<string, string> = {}

  beforeAll(async () => {
    ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: 0.1 }), launchChromium(chromium)])
    const created = await pemba.api('POST', '/stores', { name: 'jit' })
    expect(created.status).toBe(201)
    store = created.body.id
    expect((await pemba.api('POST', `/stores/${store}/authorization-models`, JIT_MODEL)).status).toBe(201)
    await writeTuples(pemba.api, store, [
      { object: 'namespace:production', relation: 'deployer_approver', user: 'team:release#member' },
      { object: 'team:release', relation: 'member', user: 'user:rita' },
    ])
    for (const [who, duration, reason] of [
      ['user:ci1', 'PT1H', 'hotfix for INC-42'],
      ['user:ci2', 'PT30M', 'rollback drill'],
    ]) {
      const r = await pemba.api('POST', `/stores/${store}/access-requests`, {
        tuple_key: { user: who, relation: 'deployer', object: 'namespace:production' },
        duration,
        reason,
      })
      expect(r.status).toBe(201)
      ids[who] = r.body.id
    }
  })
  afterAll(async () => {
    await browser?.close()
    await pemba?.stop()
  })

  const statusOf = async (who: string) => (await pemba.api('GET', `/stores/${store}/access-requests/${ids[who]}`)).body

  it('approves one pending request and denies another; a refused approver is shown in place', async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${store}/requests`)
    const table = page.getByRole('table')
    await table.waitFor()
    await expect.poll(() => table.locator('tbody tr').count()).toBe(2)
    const ci1 = table.getByRole('row', { name: /user:ci1/ })
    await expect.poll(() => ci1.textContent()).toMatch(/PT1H.*hotfix for INC-42.*pending/)
    // The events: created by the requester.
    await ci1.getByText('1 event').click()
    await expect.poll(() => ci1.getByRole('listitem').textContent()).toMatch(/created by user:ci1/)

    // No approver yet: asked for in place, no request sent.
    const approve1 = page.getByRole('button', { name: 'Approve namespace:production#deployer@user:ci1' })
    await approve1.click()
    await expect.poll(() => page.getByText('Type who decides').count()).toBe(1)
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0)

    // An approver the model does not allow: the API's refusal in the dialog, nothing decided.
    const approver = page.getByLabel('Approver (who decides)')
    await approver.fill('user:mallory')
    await approve1.click()
    const dialog = page.getByRole('dialog', { name: 'Approve this request?' })
    await dialog.waitFor()
    await dialog.getByRole('button', { name: 'Approve request' }).click()
    const refusal = dialog.getByRole('alert')
    await refusal.waitFor()
    expect(await refusal.getAttribute('data-code')).toBe('approver_not_authorized')
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    expect((await statusOf('user:ci1')).status).toBe('pending')

    // rita approves ci1's request, with a reason; the dialog shows exactly what is sent.
    await approver.fill('user:rita')
    await expect.poll(() => new URL(page.url()).searchParams.get('approver')).toBe('user:rita')
    await approve1.click()
    await dialog.waitFor()
    await dialog.getByLabel('Reason (optional)').fill('INC-42 confirmed')
    expect(JSON.parse((await dialog.locator('pre').textContent()) ?? '')).toEqual({ approver: 'user:rita', reason: 'INC-42 confirmed' })
    expect(await dialog.textContent()).toContain(`POST /stores/${store}/access-requests/${ids['user:ci1']}/approve`)
    await dialog.getByRole('button', { name: 'Approve request' }).click()
    await expect.poll(() => page.getByRole('status').filter({ hasText: /Approved namespace:production#deployer@user:ci1: now approved, the grant expires/ }).count()).toBe(1)
    const approved = await statusOf('user:ci1')
    expect(approved.status).toBe('approved')
    expect(approved.events.at(-1)).toMatchObject({ type: 'approved', actor: 'user:rita', reason: 'INC-42 confirmed' })
    const check = await pemba.api('POST', `/stores/${store}/check`, { tuple_key: { user: 'user:ci1', relation: 'deployer', object: 'namespace:production' } })
    expect(check.body.allowed).toBe(true)
    // Gone from the pending list, with the button that opened the dialog: focus is on the note.
    await expect.poll(() => table.locator('tbody tr').count()).toBe(1)
    await expect.poll(() => page.getByRole('status').getByText('Approved namespace:production#deployer@user:ci1').evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true)

    // rita denies ci2's, without a reason.
    await page.getByRole('button', { name: 'Deny namespace:production#deployer@user:ci2' }).click()
    const deny = page.getByRole('dialog', { name: 'Deny this request?' })
    await deny.waitFor()
    // A new decision clears the last note.
    expect(await page.getByRole('status').filter({ hasText: /Approved namespace/ }).count()).toBe(0)
    expect(JSON.parse((await deny.locator('pre').textContent()) ?? '')).toEqual({ approver: 'user:rita' })
    await deny.getByRole('button', { name: 'Deny request' }).click()
    await expect.poll(() => page.getByRole('status').filter({ hasText: /Denied namespace:production#deployer@user:ci2: now denied/ }).count()).toBe(1)
    const denied = await statusOf('user:ci2')
    expect(denied.status).toBe('denied')
    expect(denied.events.at(-1)).toMatchObject({ type: 'denied', actor: 'user:rita' })
    await expect.poll(() => page.getByRole('table').getByText('No pending requests.').count()).toBe(1)
    page.assertClean(/403 \(Forbidden\)/)
    await page.context().close()
  })

  it('filters by status in the URL and keeps the approver for the session', async () => {
    const third = await pemba.api('POST', `/stores/${store}/access-requests`, {
      tuple_key: { user: 'user:ci3', relation: 'deployer', object: 'namespace:production' },
      duration: 'PT2H',
      reason: 'release 4.2',
      requested_by: 'user:ci-bot',
    })
    expect(third.status).toBe(201)
    const page = await openConsole(browser, pemba, `/console/stores/${store}/requests?approver=user:rita`)
    await page.getByLabel('Status').selectOption('approved')
    await page.waitForURL(/status=approved/)
    const table = page.getByRole('table')
    await expect.poll(() => table.locator('tbody tr').count()).toBe(1)
    await expect.poll(() => table.getByRole('row', { name: /user:ci1/ }).textContent()).toMatch(/no longer pending.*approved.*grant until/)
    await page.getByLabel('Status').selectOption('all')
    await page.waitForURL(/status=all/)
    await expect.poll(() => table.locator('tbody tr').count()).toBe(3)
    await page.goBack()
    await expect.poll(() => page.getByLabel('Status').inputValue()).toBe('approved')
    await page.goForward()
    await expect.poll(() => table.locator('tbody tr').count()).toBe(3)
    // Who asked, when it is not the requested identity.
    await expect.poll(() => table.getByRole('row', { name: /user:ci3/ }).textContent()).toMatch(/by user:ci-bot.*pending/)
    await table.getByRole('row', { name: /user:ci2/ }).getByText('2 events').click()
    await expect.poll(() => table.getByRole('row', { name: /user:ci2/ }).getByRole('listitem').allInnerTexts()).toEqual([
      expect.stringMatching(/^created by user:ci2/),
      expect.stringMatching(/^denied by user:rita/),
    ])
    await screenshot(page, 'requests')

    // The approver comes back from the session on a link without it, and goes into the URL.
    await page.goto(new URL(`/console/stores/${store}/requests?status=denied`, pemba.url).href)
    await expect.poll(() => page.getByLabel('Approver (who decides)').inputValue()).toBe('user:rita')
    await expect.poll(() => new URL(page.url()).searchParams.get('approver')).toBe('user:rita')
    // The top nav's link (no approver in it) on the mounted page: the approver goes back into the URL.
    await page.getByRole('navigation', { name: 'Store pages' }).getByRole('link', { name: 'Requests', exact: true }).click()
    await expect.poll(() => new URL(page.url()).searchParams.get('status')).toBe(null)
    await expect.poll(() => new URL(page.url()).searchParams.get('approver')).toBe('user:rita')
    page.assertClean()
    await page.context().close()
  })
})
