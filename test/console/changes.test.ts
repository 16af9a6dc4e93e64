import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { BENCH_MODEL, openConsole, screenshot, startConsolePemba, type ConsolePage, type ConsolePemba, startsConsolePemba } from './harness.ts'

const chromium = findChromium()

/** The bench model, with document viewers that may also be granted under a condition. */
const CONDITIONAL_MODEL =
  BENCH_MODEL.replace('define viewer: [user, group#member]\n    define blocked', 'define viewer: [user, user with office_hours, group#member]\n    define blocked') +
  '\ncondition office_hours(hour: int, start: int) {\n  hour >= start && hour < 18\n}\n'

/** A `datetime-local` value for a time, in this process's (and the browser's) time zone. */
function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

/** The timeline's entries, in order, as their text. */
async function entriesOf(page: ConsolePage): Promise<string[]> {
  const timeline = page.getByRole('list', { name: 'Changes by minute' })
  await timeline.waitFor()
  return (await timeline.getByRole('list').getByRole('listitem').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim().replace(/^[+−] /, ''))
}

describeChromium('console: changes page', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  startsConsolePemba(chromium, { scale: 0.1 }, (p, b) => ((pemba = p), (browser = b)))

  it("shows the test's writes and its delete as a timeline, with condition and expiry, filtered by type", async () => {
    const model = await pemba.api('POST', `/stores/${pemba.store}/authorization-models`, CONDITIONAL_MODEL)
    expect(model.status).toBe(201)
    // The feed's start_time is to the second: wait for the bench load's second to pass.
    await new Promise((r) => setTimeout(r, 1100))
    const started = new Date()
    started.setMilliseconds(0)
    const expires = new Date(Date.now() + 2 * 86_400_000)
    expires.setMilliseconds(0)
    const write = (body: unknown) => pemba.api('POST', `/stores/${pemba.store}/write`, body)
    expect((await write({ writes: { tuple_keys: [{ object: 'document:timeline-a', relation: 'viewer', user: 'user:u2', expires_at: expires.toISOString() }] } })).status).toBe(200)
    expect(
      (await write({ writes: { tuple_keys: [{ object: 'document:timeline-b', relation: 'viewer', user: 'user:u3', condition: { name: 'office_hours', context: { start: 9 } } }] } })).status,
    ).toBe(200)
    expect((await write({ writes: { tuple_keys: [{ object: 'folder:timeline-f', relation: 'viewer', user: 'user:u4' }] } })).status).toBe(200)
    expect((await write({ deletes: { tuple_keys: [{ object: 'document:timeline-a', relation: 'viewer', user: 'user:u2' }] } })).status).toBe(200)

    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/changes`)
    const filter = page.getByRole('form', { name: 'Filter the change feed' })
    await filter.getByLabel('From (local time)').fill(localInput(started))
    await filter.getByRole('button', { name: 'Show' }).click()
    await page.waitForURL(/from=/)
    expect(new Date(new URL(page.url()).searchParams.get('from')!).getTime()).toBe(started.getTime())
    await expect.poll(() => entriesOf(page)).toHaveLength(4)
    const entries = await entriesOf(page)
    expect(entries[0]).toMatch(/^Written document:timeline-a#viewer@user:u2 expires /)
    expect(entries[1]).toMatch(/^Written document:timeline-b#viewer@user:u3 condition office_hours \{"start":9\}/)
    expect(entries[2]).toMatch(/^Written folder:timeline-f#viewer@user:u4/)
    expect(entries[3]).toMatch(/^Deleted document:timeline-a#viewer@user:u2/)
    // The expiry is the one written (its ISO text is the time's title).
    const times = await page.getByRole('list', { name: 'Changes by minute' }).getByRole('listitem').first().getByRole('list').getByRole('listitem').first().locator('time').evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')))
    expect(times.map((t) => new Date(t!).getTime())).toContain(expires.getTime())
    await expect.poll(() => page.getByRole('status').filter({ hasText: '3 written, 1 deleted' }).count()).toBe(1)
    await screenshot(page, 'changes')

    // Only documents: the folder's write is gone from the timeline.
    await filter.getByLabel('Object type').fill('document')
    await filter.getByRole('button', { name: 'Show' }).click()
    await page.waitForURL(/type=document/)
    await expect.poll(() => entriesOf(page)).toHaveLength(3)
    expect((await entriesOf(page)).some((e) => e.includes('folder:'))).toBe(false)

    // Newer: past the end of the feed, nothing yet; a new write shows when looked for again.
    const pager = page.getByRole('navigation', { name: 'Change pages' })
    await pager.getByRole('button', { name: 'Newer' }).click()
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'No newer changes yet.' }).count()).toBe(1)
    expect(new URL(page.url()).searchParams.get('token')).toBeTruthy()
    expect((await write({ writes: { tuple_keys: [{ object: 'document:timeline-c', relation: 'owner', user: 'user:u5' }] } })).status).toBe(200)
    await page.getByRole('button', { name: 'Look for newer changes' }).click()
    await expect.poll(() => entriesOf(page)).toEqual([expect.stringMatching(/^Written document:timeline-c#owner@user:u5/)])
    // Older goes back to the page before (read again: from the start time, now with the new write too), as a reload does.
    await pager.getByRole('button', { name: 'Older' }).click()
    await expect.poll(() => entriesOf(page)).toHaveLength(4)
    expect(new URL(page.url()).searchParams.has('token')).toBe(false)
    await page.reload()
    await expect.poll(() => entriesOf(page)).toHaveLength(4)
    expect((await entriesOf(page))[3]).toMatch(/^Written document:timeline-c#owner@user:u5/)
    page.assertClean()
    await page.context().close()
  })

  it('looks for new changes from an empty first page; the quick start times keep the typed type', async () => {
    // The feed from a start time after every change so far (start_time counts whole seconds).
    await new Promise((r) => setTimeout(r, 1100))
    const from = new Date()
    from.setMilliseconds(0)
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/changes?from=${encodeURIComponent(from.toISOString())}`)
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'No changes match.' }).count()).toBe(1)
    await expect.poll(() => page.getByRole('navigation', { name: 'Change pages' }).getByRole('button', { name: 'Newer' }).isDisabled()).toBe(true)
    const write = await pemba.api('POST', `/stores/${pemba.store}/write`, { writes: { tuple_keys: [{ object: 'folder:quiet-1', relation: 'viewer', user: 'user:u6' }] } })
    expect(write.status).toBe(200)
    await page.getByRole('button', { name: 'Look for newer changes' }).click()
    await expect.poll(() => entriesOf(page)).toEqual([expect.stringMatching(/^Written folder:quiet-1#viewer@user:u6/)])

    // A typed but not applied type goes with a quick start time, so the field and the feed agree.
    const filter = page.getByRole('form', { name: 'Filter the change feed' })
    await filter.getByLabel('Object type').fill('folder')
    await filter.getByRole('button', { name: 'Last 24 hours' }).click()
    await page.waitForURL(/type=folder/)
    await expect.poll(async () => (await entriesOf(page)).length).toBeGreaterThan(0)
    expect((await entriesOf(page)).every((e) => /^(Written|Deleted) folder:/.test(e))).toBe(true)
    await filter.getByLabel('Object type').fill('document')
    await filter.getByRole('button', { name: 'From the beginning' }).click()
    await page.waitForURL(/type=document/)
    expect(new URL(page.url()).searchParams.has('from')).toBe(false)
    await expect.poll(async () => (await entriesOf(page)).length).toBeGreaterThan(0)
    expect((await entriesOf(page)).every((e) => /^(Written|Deleted) document:/.test(e))).toBe(true)
    expect(await filter.getByLabel('Object type').inputValue()).toBe('document')
    page.assertClean()
    await page.context().close()
  })

  it('pages through the whole feed, oldest first, as the API does', async () => {
    const first = await pemba.api('GET', `/stores/${pemba.store}/changes?page_size=10`)
    const second = await pemba.api('GET', `/stores/${pemba.store}/changes?page_size=10&continuation_token=${first.body.continuation_token}`)
    const texts = (r: { body: { changes: { operation: string; tuple_key: { object: string; relation: string; user: string } }[] } }) =>
      r.body.changes.map((c) => `${c.operation === 'TUPLE_OPERATION_DELETE' ? 'Deleted' : 'Written'} ${c.tuple_key.object}#${c.tuple_key.relation}@${c.tuple_key.user}`)
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/changes?size=10`)
    const starts = async () => (await entriesOf(page)).map((e) => e.split(' ').slice(0, 2).join(' '))
    await expect.poll(starts).toEqual(texts(first))
    await page.getByRole('navigation', { name: 'Change pages' }).getByRole('button', { name: 'Newer' }).click()
    await expect.poll(starts).toEqual(texts(second))
    await page.goBack()
    await expect.poll(starts).toEqual(texts(first))

    // A start time in the future: the API's refusal in place.
    await page.goto(new URL(`/console/stores/${pemba.store}/changes?from=2999-01-01T00:00:00.000Z`, pemba.url).href)
    const alert = page.getByRole('alert')
    await alert.waitFor()
    expect(await alert.getAttribute('data-code')).toBe('invalid_start_time')
    page.assertClean(/400 \(Bad Request\)/)
    await page.context().close()
  })
})
