/**
 * The check page against a real Pemba with the bench data set (scale 0.1): an allowed
 * deep-group check drawn as its witness path, a denied one as every branch with its reason,
 * errors in place (context JSON before sending, the API's own), list-objects and list-users
 * answering as the API does and linking each answer to its check.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePemba, startsConsolePemba } from './harness.ts'

const chromium = findChromium()

type Key = { user: string; relation: string; object: string }
const text = (k: Key) => `${k.object}#${k.relation}@${k.user}`

describeChromium('console: check and explain', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  const checkPath = (params: Record<string, string>) => `/console/stores/${pemba.store}/check?${new URLSearchParams(params)}`
  const explained = async (k: Key) => {
    const r = await pemba.api('POST', `/stores/${pemba.store}/check`, { tuple_key: k, explain: true })
    expect(r.status).toBe(200)
    return r.body
  }
  /** The first check of `kind` in the data set whose answer is `allowed`, with that answer. */
  const pick = async (kind: string, allowed: boolean) => {
    for (const c of pemba.dataset.checks.filter((c) => c.kind === kind)) {
      const key = { user: c.subject, relation: c.permission, object: c.resource }
      const body = await explained(key)
      if (body.allowed === allowed) return { key, body }
    }
    throw new Error(`no ${kind} check answered allowed=${allowed}`)
  }

  startsConsolePemba(chromium, { scale: 0.1 }, (p, b) => ((pemba = p), (browser = b)))

  it('an allowed deep-group check shows the witness path: the API\'s witness tuples, object first, with group#member hops', async () => {
    const { key } = await pick('deep-group', true)
    const page = await openConsole(browser, pemba, checkPath({}))
    // The check the page sends, and the API's answer to it: the witness to compare with.
    const answered = page.waitForResponse((r) => r.url().endsWith(`/stores/${pemba.store}/check`) && r.request().method() === 'POST')
    await page.goto(new URL(checkPath({ ...key, run: '1' }), pemba.url).href)
    const response = await answered
    expect(response.status()).toBe(200)
    expect(JSON.parse(response.request().postData() ?? '{}')).toEqual({ tuple_key: key, explain: true })
    const body = await response.json()
    expect(body.allowed).toBe(true)
    const witness = (body.witness as Key[]).map(text)
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Check')
    // The form is filled from the URL.
    await expect(page.getByLabel('User', { exact: true }).inputValue()).resolves.toBe(key.user)
    await expect(page.getByLabel('Object', { exact: true }).inputValue()).resolves.toBe(key.object)
    const list = page.getByRole('list', { name: 'Witness tuples' })
    await list.waitFor()
    await expect(page.getByRole('heading', { name: /Answer/ }).textContent()).resolves.toMatch(/allowed/)
    const shown = await list.getByRole('listitem').allTextContents()
    expect(shown).toEqual(witness)
    expect(shown.length).toBeGreaterThan(2)
    expect(shown[0].startsWith(`${key.object}#`)).toBe(true)
    expect(shown.at(-1)).toMatch(new RegExp(`#member@${key.user}$`))
    expect(shown.some((t) => /^group:[^#]+#member@group:[^#]+#member$/.test(t))).toBe(true)
    // The tree: every witness tuple sits on an open, emphasised branch.
    const tree = page.getByRole('list', { name: 'Explanation tree' })
    for (const t of (body.witness as Key[]).filter((k) => k.user.includes('#'))) {
      const toggle = tree.getByRole('button', { name: new RegExp(escape(text(t))) }).first()
      await expect(toggle.getAttribute('aria-expanded')).resolves.toBe('true')
      await expect(toggle.locator('xpath=..').getAttribute('data-role')).resolves.toBe('witness')
    }
    // The excluded side of `but not blocked` is there, false as required, closed.
    const notBlocked = tree.getByRole('button', { name: /computed from blocked/ })
    await expect(notBlocked.getAttribute('aria-expanded')).resolves.toBe('false')
    await screenshot(page, 'check-allowed')
    page.assertClean()
    await page.context().close()
  })

  it('a denied check, filled in by keyboard, shows every branch tried and why it failed', async () => {
    const { key, body } = await pick('deep-group-denied', false)
    const page = await openConsole(browser, pemba, checkPath({}))
    await page.getByLabel('User', { exact: true }).fill(key.user)
    await page.getByLabel('Relation', { exact: true }).fill(key.relation)
    await page.getByLabel('Object', { exact: true }).fill(key.object)
    await page.getByLabel('Object', { exact: true }).press('Enter')
    const reasons = page.getByRole('list', { name: 'Reasons' })
    await reasons.waitFor()
    await expect(page.getByRole('heading', { name: /Answer/ }).textContent()).resolves.toMatch(/denied/)
    // The filled form is a link.
    const url = new URL(page.url())
    expect(Object.fromEntries(url.searchParams)).toEqual({ ...key, run: '1' })
    // The reasons, as the API gives them, one per failed branch.
    const shown = (await reasons.getByRole('listitem').allTextContents()).map((s) => s.replace(/\s+/g, ' '))
    expect(shown).toEqual((body.explanation.reasons as string[]).map((s) => s.replace(/\s+/g, ' ')))
    expect(shown.length).toBeGreaterThan(3)
    // Every branch is in the tree, open, with its reason; a branch closes and opens with the keyboard.
    const tree = page.getByRole('list', { name: 'Explanation tree' })
    const firstReason = (body.explanation.reasons as string[])[0].split(' › ').at(-1)!.replace(/^direct: \w+: /, '')
    await expect(tree.getByText(firstReason, { exact: true }).first().isVisible()).resolves.toBe(true)
    const union = tree.getByRole('button', { name: /any of/ }).first()
    await expect(union.getAttribute('aria-expanded')).resolves.toBe('true')
    await union.focus()
    await page.keyboard.press('Enter')
    await expect(union.getAttribute('aria-expanded')).resolves.toBe('false')
    await expect(tree.getByText(firstReason, { exact: true }).count()).resolves.toBe(0)
    await page.keyboard.press('Space')
    await expect(union.getAttribute('aria-expanded')).resolves.toBe('true')
    await page.getByRole('button', { name: 'Expand all' }).click()
    await expect(tree.getByRole('button', { expanded: false }).count()).resolves.toBe(0)
    await page.getByRole('button', { name: 'Reset' }).click()
    await page.evaluate('window.scrollTo(0, 0)')
    await screenshot(page, 'check-denied')
    page.assertClean()
    // Back: the empty form again (state in the URL).
    await page.goBack()
    await expect(page.getByRole('list', { name: 'Reasons' }).count()).resolves.toBe(0)
    await page.context().close()
  })

  it('shows errors in place: context that is not JSON (nothing sent), and the API\'s code and message', async () => {
    const page = await openConsole(browser, pemba, checkPath({ user: 'user:u1', relation: 'view', object: 'document:d1' }))
    const checks: string[] = []
    page.on('request', (r) => void (r.url().endsWith('/check') && checks.push(r.url())))
    await page.getByLabel('Context (JSON)').fill('{"ip": ')
    // As you type: a note tied to the field, not an alert (announced at every key otherwise).
    const note = page.locator('#context-error[data-code="invalid_json"]')
    await expect(note.textContent()).resolves.toMatch(/context is not valid JSON/)
    await expect(note.getAttribute('role')).resolves.toBeNull()
    await expect(page.getByLabel('Context (JSON)').getAttribute('aria-describedby')).resolves.toBe('context-error')
    await expect(page.locator('[role="alert"][data-code="invalid_json"]').count()).resolves.toBe(0)
    await page.getByRole('button', { name: 'Check', exact: true }).click()
    await expect(page.getByText('Not sent:').count()).resolves.toBe(1)
    await expect(page.locator('[role="alert"][data-code="invalid_json"]').count()).resolves.toBe(1)
    expect(checks).toEqual([])
    expect(new URL(page.url()).searchParams.get('run')).toBeNull()
    expect(new URL(page.url()).searchParams.get('context')).toBe('{"ip": ')
    // Valid JSON clears it; a relation the model lacks is the API's 400, in place.
    await page.getByLabel('Context (JSON)').fill('{"ip": "10.0.0.1"}')
    await page.getByLabel('Relation', { exact: true }).fill('nope')
    await page.getByRole('button', { name: 'Check', exact: true }).click()
    const api = page.locator('[role="alert"][data-code="validation_error"]')
    await api.waitFor()
    await expect(api.textContent()).resolves.toMatch(/relation 'document#nope' not found.*HTTP 400/)
    expect(checks.length).toBe(1)
    // on_behalf_of where the principal's type has no acts_for: the API's refusal, in place.
    const expected = await pemba.api('POST', `/stores/${pemba.store}/check`, {
      tuple_key: { user: 'user:u1', relation: 'view', object: 'document:d1' },
      on_behalf_of: 'user:u2',
      explain: true,
    })
    expect(expected.status).toBe(400)
    await page.goto(new URL(checkPath({ user: 'user:u1', relation: 'view', object: 'document:d1', obo: 'user:u2', run: '1' }), pemba.url).href)
    const obo = page.locator(`[role="alert"][data-code="${expected.body.code}"]`)
    await obo.waitFor()
    await expect(obo.textContent()).resolves.toContain(expected.body.message)
    page.assertClean(/status of 400/)
    await page.context().close()
  })

  it('a token-native check sends the pasted subject_token, keeps it out of the URL, and shows why the token was refused', async () => {
    // The URL holds a chain (as a delegated decision's "Explain in Check" does): choosing a token
    // clears it, since the API refuses on_behalf_of beside a subject_token.
    const page = await openConsole(browser, pemba, checkPath({ user: 'user:u1', relation: 'view', object: 'document:d1', obo: 'user:u2' }))
    await page.getByRole('radio', { name: /subject token/ }).check()
    await expect.poll(() => new URL(page.url()).searchParams.get('obo')).toBeNull()
    await expect(page.getByLabel('User', { exact: true }).count()).resolves.toBe(0)
    const token = 'not-a-jwt.of-any.issuer'
    await page.getByRole('textbox', { name: 'Subject token' }).fill(token)
    const answered = page.waitForResponse((r) => r.url().endsWith('/check') && r.request().method() === 'POST')
    await page.getByRole('button', { name: 'Check', exact: true }).click()
    const response = await answered
    expect(JSON.parse(response.request().postData() ?? '{}')).toEqual({ tuple_key: { relation: 'view', object: 'document:d1' }, subject_token: token, explain: true })
    const body = await response.json()
    expect(body.allowed).toBe(false)
    expect(typeof body.reason).toBe('string')
    await expect(page.getByText(`the subject token was refused (${body.reason})`, { exact: false }).count()).resolves.toBe(1)
    const tree = page.getByRole('list', { name: 'Explanation tree' })
    await expect(tree.getByText(body.explanation.tree.reason, { exact: true }).count()).resolves.toBe(1)
    const url = page.url()
    expect(new URL(url).searchParams.get('token_kind')).toBe('subject_token')
    expect(new URL(url).searchParams.get('obo')).toBeNull()
    expect(url).not.toContain('not-a-jwt')
    // Reloaded, the link asks for the token again instead of checking without it.
    await page.reload()
    const note = page.locator('[role="alert"][data-code="subject_token_missing"]')
    await note.waitFor()
    // A link that names both (made by hand): the check is still asked with the token alone.
    await page.goto(new URL(checkPath({ relation: 'view', object: 'document:d1', obo: 'user:u2', token_kind: 'subject_token' }), pemba.url).href)
    await page.getByRole('textbox', { name: 'Subject token' }).fill(token)
    const again = page.waitForResponse((r) => r.url().endsWith('/check') && r.request().method() === 'POST')
    await page.getByRole('button', { name: 'Check', exact: true }).click()
    const second = await again
    expect(JSON.parse(second.request().postData() ?? '{}')).toEqual({ tuple_key: { relation: 'view', object: 'document:d1' }, subject_token: token, explain: true })
    expect(second.status()).toBe(200)
    page.assertClean()
    await page.context().close()
  })

  it('contextual tuples added in the form grant for that request only, and are kept in the URL', async () => {
    const { key } = await pick('deep-folder-denied', false)
    const page = await openConsole(browser, pemba, checkPath({ user: key.user, relation: key.relation, object: key.object }))
    await page.getByRole('button', { name: 'Add contextual tuple' }).click()
    await page.getByLabel('Object 1').fill(key.object)
    await page.getByLabel('Relation 1').fill('viewer')
    await page.getByLabel('User 1').fill(key.user)
    const sent = page.waitForRequest((r) => r.url().endsWith('/check') && r.method() === 'POST')
    await page.getByRole('button', { name: 'Check', exact: true }).click()
    expect(JSON.parse((await sent).postData() ?? '{}')).toEqual({
      tuple_key: key,
      explain: true,
      contextual_tuples: { tuple_keys: [{ user: key.user, relation: 'viewer', object: key.object }] },
    })
    await expect(page.getByRole('heading', { name: /Answer/ }).textContent()).resolves.toMatch(/allowed/)
    await expect(page.getByText('Granted by contextual tuples only', { exact: false }).count()).resolves.toBe(1)
    // Only the short verdict is announced, not the whole answer.
    await expect(page.getByRole('status').filter({ hasText: 'Answer: allowed.' }).count()).resolves.toBe(1)
    await expect(page.locator('[aria-live]').count()).resolves.toBe(0)
    expect(JSON.parse(new URL(page.url()).searchParams.get('ctuples') ?? '[]')).toEqual([{ object: key.object, relation: 'viewer', user: key.user }])
    // Removing the row (by keyboard) and checking again: denied, as stored.
    await page.getByRole('button', { name: 'Remove contextual tuple 1' }).focus()
    await page.keyboard.press('Enter')
    // Focus is not lost: with no row left it moves to "Add contextual tuple".
    await expect.poll(() => page.locator(':focus').textContent()).toBe('Add contextual tuple')
    await page.getByRole('button', { name: 'Check', exact: true }).click()
    await expect(page.getByRole('heading', { name: /Answer/ }).textContent()).resolves.toMatch(/denied/)
    expect((await pemba.api('POST', `/stores/${pemba.store}/check`, { tuple_key: key })).body.allowed).toBe(false)
    page.assertClean()
    await page.context().close()
  })

  it('list-objects and list-users answer as the API does, each answer linking to its check', async () => {
    const c = pemba.dataset.checks.find((c) => c.kind === 'direct-viewer')!
    const lo = await pemba.api('POST', `/stores/${pemba.store}/list-objects`, { user: c.subject, relation: 'view', type: 'document' })
    expect(lo.status).toBe(200)
    expect(lo.body.objects.length).toBeGreaterThan(0)
    const page = await openConsole(browser, pemba, checkPath({ mode: 'list-objects', user: c.subject, relation: 'view', type: 'document', run: '1' }))
    const objects = page.getByRole('list', { name: 'Objects' })
    await objects.waitFor()
    const shown = await objects.getByRole('link').allTextContents()
    expect([...shown].sort()).toEqual([...(lo.body.objects as string[])].sort())
    await expect(page.getByRole('heading', { name: `${shown.length} ${shown.length === 1 ? 'object' : 'objects'}` }).count()).resolves.toBe(1)
    // An answer opens its check, run: allowed.
    await objects.getByRole('link', { name: shown[0], exact: true }).click()
    await page.getByRole('list', { name: 'Witness tuples' }).waitFor()
    expect(Object.fromEntries(new URL(page.url()).searchParams)).toEqual({ user: c.subject, relation: 'view', object: shown[0], run: '1' })
    await expect(page.getByRole('radio', { name: 'Check', exact: true }).isChecked()).resolves.toBe(true)

    // List users from the same form: switch the mode, the fields stay.
    const lu = await pemba.api('POST', `/stores/${pemba.store}/list-users`, {
      object: { type: 'document', id: shown[0].split(':')[1] },
      relation: 'view',
      user_filters: [{ type: 'user' }],
    })
    expect(lu.status).toBe(200)
    await page.getByRole('radio', { name: 'List users' }).check()
    await expect(page.getByLabel('User type or userset').inputValue()).resolves.toBe('user')
    await page.getByRole('button', { name: 'List users', exact: true }).click()
    const users = page.getByRole('list', { name: 'Users' })
    await users.waitFor()
    const listed = await users.getByRole('link').allTextContents()
    expect([...listed].sort()).toEqual((lu.body.users as { object: { type: string; id: string } }[]).map((u) => `${u.object.type}:${u.object.id}`).sort())
    expect(listed).toContain(c.subject)
    expect(new URL(page.url()).searchParams.get('mode')).toBe('list-users')
    // A list-users answer links to a plain check: list-users took no on_behalf_of, so a stale one is dropped.
    await page.goto(new URL(checkPath({ mode: 'list-users', user_type: 'user', relation: 'view', object: shown[0], obo: 'user:u2', run: '1' }), pemba.url).href)
    await users.waitFor()
    const link = await users.getByRole('link', { name: c.subject, exact: true }).getAttribute('href')
    expect(Object.fromEntries(new URL(link!, pemba.url).searchParams)).toEqual({ user: c.subject, relation: 'view', object: shown[0], run: '1' })
    page.assertClean()
    await page.context().close()
  })
})

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
