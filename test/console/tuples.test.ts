import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { tupleKey } from '../../bench/dataset.ts'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePage, type ConsolePemba, startsConsolePemba } from './harness.ts'

const chromium = findChromium()

type Key = { object: string; relation: string; user: string; expires_at?: string; condition?: unknown }

/** The tuples the API reads for a filter, every page. */
async function readAll(pemba: ConsolePemba, tuple_key?: Record<string, string>): Promise<Key[]> {
  const out: Key[] = []
  let token = ''
  do {
    const r = await pemba.api('POST', `/stores/${pemba.store}/read`, { tuple_key, page_size: 100, continuation_token: token || undefined })
    expect(r.status).toBe(200)
    out.push(...r.body.tuples.map((t: { key: Key }) => t.key))
    token = r.body.continuation_token
  } while (token)
  return out
}

const text = (k: Key) => `${k.object}#${k.relation}@${k.user}`

/** The rows of the tuples table as `object#relation@user`. */
async function rowsOf(page: ConsolePage): Promise<string[]> {
  const table = page.getByRole('table')
  await table.waitFor()
  await expect.poll(() => table.getAttribute('aria-busy')).toBe('false')
  const rows = await table.locator('tbody tr').all()
  const out: string[] = []
  for (const row of rows) {
    const cells = await row.getByRole('cell').allInnerTexts()
    out.push(`${cells[0].trim()}#${cells[1].trim()}@${cells[2].trim()}`)
  }
  return out
}

/** A `datetime-local` value for a time, in this process's (and the browser's) time zone. */
function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

describeChromium('console: tuples page', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  startsConsolePemba(chromium, { scale: 0.1 }, (p, b) => ((pemba = p), (browser = b)))

  it('filters by type, relation and user: exactly the tuples the API reads', async () => {
    // The user with the most direct document viewer grants who also has other tuples on documents.
    const keys = pemba.dataset.tuples.map(tupleKey)
    const counts = new Map<string, number>()
    for (const k of keys) if (k.object.startsWith('document:') && k.relation === 'viewer') counts.set(k.user, (counts.get(k.user) ?? 0) + 1)
    const others = new Set(keys.filter((k) => k.object.startsWith('document:') && k.relation !== 'viewer').map((k) => k.user))
    const user = [...counts.entries()].filter(([u]) => others.has(u)).sort((a, b) => b[1] - a[1])[0][0]
    const expected = await readAll(pemba, { object: 'document:', relation: 'viewer', user })
    const everything = await readAll(pemba, { object: 'document:', user })
    expect(expected.length).toBeGreaterThan(1)
    expect(everything.length).toBeGreaterThan(expected.length)

    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`)
    const filter = page.getByRole('form', { name: 'Filter' })
    await filter.getByLabel('Object type').fill('document')
    await filter.getByLabel('Relation').fill('viewer')
    await filter.getByLabel('User').fill(user)
    await filter.getByRole('button', { name: 'Filter' }).click()
    await page.waitForURL(/relation=viewer/)
    const url = new URL(page.url())
    expect(Object.fromEntries(url.searchParams)).toEqual({ type: 'document', relation: 'viewer', user })
    await expect.poll(() => rowsOf(page)).toEqual(expected.map(text))

    // Only the type and the relation: the API's own refusal, in place, with why.
    await filter.getByLabel('User').fill('')
    await filter.getByRole('button', { name: 'Filter' }).click()
    const refusal = page.getByRole('alert')
    await expect.poll(() => refusal.getAttribute('data-code')).toBe('validation_error')
    await expect.poll(() => refusal.textContent()).toMatch(/object type field is required/)
    await expect.poll(() => page.getByText('give an object id or a user too').count()).toBe(1)
    page.assertClean(/400 \(Bad Request\)/)
    await page.context().close()
  })

  it('pages forward and back by continuation token, kept in the URL across a reload', async () => {
    const first = await pemba.api('POST', `/stores/${pemba.store}/read`, { page_size: 10 })
    const second = await pemba.api('POST', `/stores/${pemba.store}/read`, { page_size: 10, continuation_token: first.body.continuation_token })
    const third = await pemba.api('POST', `/stores/${pemba.store}/read`, { page_size: 10, continuation_token: second.body.continuation_token })
    const pageOf = (r: { body: { tuples: { key: Key }[] } }) => r.body.tuples.map((t) => text(t.key))

    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples`)
    await page.getByLabel('Page size').selectOption('10')
    await page.waitForURL(/size=10/)
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(first))
    const pager = page.getByRole('navigation', { name: 'Tuple pages' })
    await pager.getByRole('button', { name: 'Next page' }).click()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(second))
    await pager.getByRole('button', { name: 'Next page' }).click()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(third))
    expect(new URL(page.url()).searchParams.get('token')).toBe(second.body.continuation_token)
    await expect.poll(() => pager.getByText('Page 3').count()).toBe(1)

    await pager.getByRole('button', { name: 'Previous page' }).click()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(second))
    expect(new URL(page.url()).searchParams.get('token')).toBe(first.body.continuation_token)
    await page.reload()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(second))
    await expect.poll(() => pager.getByText('Page 2').count()).toBe(1)
    // The browser's back goes to the page before too (page 3), forward again to page 2.
    await page.goBack()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(third))
    await page.goForward()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(second))
    await pager.getByRole('button', { name: 'Previous page' }).click()
    await expect.poll(() => rowsOf(page)).toEqual(pageOf(first))
    expect(new URL(page.url()).searchParams.has('token')).toBe(false)
    page.assertClean()
    await page.context().close()
  })

  it('adds a tuple with expires_at and deletes it: exactly that tuple written, then gone', async () => {
    const started = new Date(Date.now() - 1000).toISOString()
    const user = 'user:u1'
    const before = await readAll(pemba, { object: 'document:', user })
    const expires = new Date(Date.now() + 3 * 86_400_000)
    expires.setMilliseconds(0)
    const added: Key = { object: 'document:console-added', relation: 'viewer', user }

    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?type=document&user=${user}`)
    const form = page.getByRole('form', { name: 'Add a tuple' })
    await form.getByLabel('Object', { exact: true }).fill(added.object)
    await form.getByLabel('Relation').fill(added.relation)
    await form.getByLabel('User').fill(added.user)
    await form.getByLabel(/Expires at/).fill(localInput(expires))
    // Typing keeps the fields in the URL (replacing the entry).
    await expect.poll(() => new URL(page.url()).searchParams.get('new_object')).toBe(added.object)
    await form.getByRole('button', { name: 'Add tuple' }).click()
    await expect.poll(() => page.getByRole('status').filter({ hasText: /Wrote document:console-added#viewer@user:u1, expiring/ }).count()).toBe(1)

    const after = await readAll(pemba, { object: 'document:', user })
    expect(after.map(text).sort()).toEqual([...before.map(text), text(added)].sort())
    const written = after.find((k) => text(k) === text(added))!
    expect(new Date(written.expires_at!).getTime()).toBe(expires.getTime())
    expect(new URL(page.url()).searchParams.has('new_object')).toBe(false)

    // From the keyboard: Enter opens the confirmation, Esc closes it and sends nothing.
    const deleteButton = page.getByRole('button', { name: `Delete ${text(added)}` })
    await deleteButton.focus()
    await page.keyboard.press('Enter')
    const dialog = page.getByRole('dialog', { name: 'Delete this tuple?' })
    await dialog.waitFor()
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    expect((await readAll(pemba, { object: added.object })).map(text)).toEqual([text(added)])

    // Delete it from its row, after the confirmation with the body.
    await deleteButton.click()
    await dialog.waitFor()
    const shown = JSON.parse((await dialog.locator('pre').textContent()) ?? '')
    expect(shown).toEqual({ deletes: { tuple_keys: [{ object: added.object, relation: added.relation, user: added.user }] } })
    await dialog.getByRole('button', { name: 'Delete tuple' }).click()
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Deleted document:console-added#viewer@user:u1' }).count()).toBe(1)
    await expect.poll(() => page.getByRole('button', { name: `Delete ${text(added)}` }).count()).toBe(0)
    // The row and its button are gone: focus is on the note, not lost to <body>.
    await expect.poll(() => page.getByRole('status').getByText('Deleted document:console-added#viewer@user:u1').evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true)
    // The note is cleared when a new action starts (here: an add the form itself refuses).
    await form.getByRole('button', { name: 'Add tuple' }).click()
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Deleted document:' }).count()).toBe(0)

    const end = await readAll(pemba, { object: 'document:', user })
    expect(end.map(text).sort()).toEqual(before.map(text).sort())
    // The change feed since the test began: that one write and that one delete, nothing else.
    const feed = await pemba.api('GET', `/stores/${pemba.store}/changes?start_time=${encodeURIComponent(started)}&page_size=100`)
    expect(
      feed.body.changes.map((c: { operation: string; tuple_key: Key }) => `${c.operation} ${text(c.tuple_key)}`),
    ).toEqual([`TUPLE_OPERATION_WRITE ${text(added)}`, `TUPLE_OPERATION_DELETE ${text(added)}`])
    page.assertClean()
    await page.context().close()
  })

  it('shows a refused add in place with its code, and checks the context before sending', async () => {
    const page = await openConsole(
      browser,
      pemba,
      `/console/stores/${pemba.store}/tuples?type=document&object=d1&new_object=document:d1&new_relation=approver&new_user=user:u1`,
    )
    const form = page.getByRole('form', { name: 'Add a tuple' })
    // The link filled the form.
    await expect.poll(() => form.getByLabel('Relation').inputValue()).toBe('approver')
    // Each form suggests the relations of the type typed in it, not the filter's applied type.
    const suggested = (field: ReturnType<ConsolePage['getByLabel']>) =>
      field.evaluate((el) => Array.from((el as unknown as { list: { options: ArrayLike<{ value: string }> } | null }).list?.options ?? []).map((o) => o.value).sort())
    await expect.poll(() => suggested(form.getByLabel('Relation'))).toEqual(['blocked', 'edit', 'owner', 'parent', 'view', 'viewer'])
    await form.getByLabel('Object', { exact: true }).fill('folder:f1')
    await expect.poll(() => suggested(form.getByLabel('Relation'))).toEqual(['owner', 'parent', 'view', 'viewer'])
    const filter = page.getByRole('form', { name: 'Filter' })
    await filter.getByLabel('Object type').fill('group')
    await expect.poll(() => suggested(filter.getByLabel('Relation'))).toEqual(['member'])
    await filter.getByLabel('Object type').fill('document')
    await form.getByLabel('Object', { exact: true }).fill('document:d1')

    // A context that is not JSON: caught in the form, nothing sent.
    const writes: string[] = []
    page.on('request', (r) => {
      if (r.url().endsWith('/write')) writes.push(r.method())
    })
    await form.getByLabel(/Condition context/).fill('{not json')
    await form.getByRole('button', { name: 'Add tuple' }).click()
    await expect.poll(() => form.getByText(/Not valid JSON/).count()).toBe(1)
    await expect.poll(() => form.getByLabel(/Condition context/).getAttribute('aria-invalid')).toBe('true')
    expect(writes).toEqual([])
    expect(await form.getByRole('alert').count()).toBe(0)

    await form.getByLabel(/Condition context/).fill('')
    await form.getByRole('button', { name: 'Add tuple' }).click()
    const alert = form.getByRole('alert')
    await alert.waitFor()
    expect(await alert.getAttribute('data-code')).toBe('validation_error')
    expect(await alert.textContent()).toMatch(/approver/)
    expect(writes).toEqual(['POST'])
    const read = await pemba.api('POST', `/stores/${pemba.store}/read`, { tuple_key: { object: 'document:d1' } })
    expect(read.status).toBe(200)
    expect(read.body.tuples.filter((t: { key: Key }) => t.key.relation === 'approver')).toEqual([])
    await screenshot(page, 'tuples')
    page.assertClean(/400 \(Bad Request\)/)
    await page.context().close()
  })

  it("says when a link's expiry cannot be shown in the date field, and clears it", async () => {
    const page = await openConsole(browser, pemba, `/console/stores/${pemba.store}/tuples?new_object=document:d1&new_expires=next%20week`)
    const form = page.getByRole('form', { name: 'Add a tuple' })
    await expect.poll(() => form.getByText('‘next week’ from the link is not a date and time.').count()).toBe(1)
    expect(await form.getByLabel(/Expires at/).getAttribute('aria-invalid')).toBe('true')
    await form.getByRole('button', { name: 'Clear expiry' }).click()
    await expect.poll(() => new URL(page.url()).searchParams.has('new_expires')).toBe(false)
    expect(await form.getByText(/from the link/).count()).toBe(0)

    // An ISO time with its zone (as another tool would write it) shows as local time.
    const expires = new Date(Date.now() + 86_400_000)
    expires.setMilliseconds(0)
    await page.goto(new URL(`/console/stores/${pemba.store}/tuples?new_expires=${encodeURIComponent(expires.toISOString())}`, pemba.url).href)
    await expect.poll(() => page.getByRole('form', { name: 'Add a tuple' }).getByLabel(/Expires at/).inputValue()).toBe(localInput(expires))
    page.assertClean()
    await page.context().close()
  })
})
