/**
 * The model page against a real Pemba with the bench data set (scale 0.1): the highlighted DSL,
 * the graph (every type of the bench model, read back from cytoscape's own node collection after
 * layout), validation errors shown in place, and writing a second version then diffing it
 * against the first. The tests run in order: the last one writes a version.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { buildGraph } from '../../console/src/model/graph.ts'
import { diffRows } from '../../console/src/model/diff.ts'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { openConsole, screenshot, startConsolePemba, type ConsolePemba, startsConsolePemba } from './harness.ts'

const chromium = findChromium()

describeChromium('console: the model page', chromium, () => {
  let pemba: ConsolePemba
  let browser: Browser
  startsConsolePemba(chromium, { scale: 0.1 }, (p, b) => ((pemba = p), (browser = b)))

  const modelPath = (query = '') => `/console/stores/${pemba.store}/model${query}`
  const dslOf = async (id: string) => {
    const model = await pemba.api('GET', `/stores/${pemba.store}/authorization-models/${id}`)
    expect(model.status).toBe(200)
    const dsl = await pemba.api('POST', '/models/dsl', { authorization_model: model.body.authorization_model })
    expect(dsl.status).toBe(200)
    return dsl.body.dsl as string
  }

  it('shows the latest version’s DSL, highlighted, as the server writes it', async () => {
    const page = await openConsole(browser, pemba, modelPath())
    try {
      await page.getByRole('heading', { level: 1, name: 'Model' }).waitFor()
      const pre = page.getByLabel(`The DSL of version ${pemba.modelId}`)
      await pre.waitFor()
      const dsl = await dslOf(pemba.modelId)
      // The text is the server's DSL, line for line (the line numbers are not part of it).
      const lines = await pre.evaluate((el) =>
        [...el.querySelector('code')!.children].map((line) => line.children[1].textContent!.replace(/\n$/, '')),
      )
      expect(lines.join('\n').trimEnd()).toBe(dsl.trimEnd())
      expect(dsl).toContain('but not blocked')
      // Highlighted as spans: keywords, types and operators each marked.
      const kinds = await pre.evaluate((el) =>
        [...el.querySelectorAll('span.tok')].map((s) => `${s.className.replace('tok tok-', '')}:${s.textContent}`),
      )
      expect(kinds).toContain('keyword:define')
      expect(kinds).toContain('type:document')
      expect(kinds).toContain('operator:but')
      expect(kinds).toContain('relation:blocked')
      await page.getByText('latest', { exact: true }).waitFor()
      await screenshot(page, 'model-dsl')
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('draws every type of the bench model in the graph, with an accessible list of the same nodes', async () => {
    const page = await openConsole(browser, pemba, modelPath('?tab=graph'))
    try {
      const canvas = page.getByRole('img', { name: /model as a graph/ })
      await canvas.waitFor()
      // data-ready is set once cytoscape's layout has stopped.
      await canvas.and(page.locator('[data-ready="true"]')).waitFor({ timeout: 30_000 })
      const model = await pemba.api('GET', `/stores/${pemba.store}/authorization-models/${pemba.modelId}`)
      const expected = buildGraph(model.body.authorization_model)
      // The counts are cytoscape's own collections after layout.
      expect(await canvas.getAttribute('data-node-count')).toBe(String(expected.nodes.length))
      expect(await canvas.getAttribute('data-edge-count')).toBe(String(expected.edges.length))
      // Cytoscape drew into the container (its canvases), at a real size.
      const box = await canvas.boundingBox()
      expect(box!.width).toBeGreaterThan(600)
      expect(await canvas.evaluate((el) => el.querySelectorAll('canvas').length)).toBeGreaterThan(0)

      const list = page.getByRole('list', { name: 'Types and relations' })
      const drawnTypes = await list.evaluate((ul) => [...ul.children].map((li) => li.getAttribute('data-node')))
      expect(drawnTypes).toEqual(['user', 'group', 'folder', 'document'])
      for (const relation of ['group#member', 'folder#view', 'document#view', 'document#edit']) {
        await list.getByText(relation, { exact: true }).waitFor()
      }
      const edges = page.getByRole('table', { name: 'Edges' })
      expect(await edges.getByRole('row').count()).toBe(expected.edges.length + 1)
      const subtract = edges.getByRole('row').filter({ hasText: 'document#blocked' }).filter({ hasText: 'exclusion, subtract' })
      expect(await subtract.count()).toBe(1)
      // The view buttons work with the keyboard.
      await page.getByRole('button', { name: 'Zoom in' }).focus()
      await page.keyboard.press('Enter')
      await page.getByRole('button', { name: 'Fit' }).click()
      await screenshot(page, 'model-graph')
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('shows validation errors in place, on their line, and writes nothing', async () => {
    const page = await openConsole(browser, pemba, modelPath('?tab=write'))
    try {
      const editor = page.getByLabel('Model DSL')
      await editor.waitFor()
      // Prefilled with the shown version.
      expect((await editor.inputValue()).trimEnd()).toBe((await dslOf(pemba.modelId)).trimEnd())
      const broken = ['model', '  schema 1.1', 'type user', 'type doc', '  relations', '    define viewer: [usr]', '    define owner: [user]', ''].join('\n')
      await editor.fill(broken)
      // The draft goes to the URL after a pause in typing (a reload keeps it).
      await page.waitForURL((u) => u.searchParams.get('draft') === broken)
      // Another tab and back: the draft is still there (and flagged while away).
      const views = page.getByRole('navigation', { name: 'Model views' })
      await views.getByRole('link', { name: 'Graph' }).click()
      await page.getByRole('link', { name: 'unsaved draft' }).waitFor()
      await views.getByRole('link', { name: 'Write a new version' }).click()
      expect(await page.getByLabel('Model DSL').inputValue()).toBe(broken)
      await page.reload()
      expect(await editor.inputValue()).toBe(broken)
      await page.getByRole('button', { name: 'Validate' }).click()
      const verdict = page.getByRole('alert').filter({ hasText: /error/ })
      await verdict.waitFor()
      const api = await pemba.api('POST', '/models/validate', { dsl: broken })
      expect([api.status, api.body.valid]).toEqual([200, false])
      const first = api.body.errors[0] as { message: string; line: number; column?: number }
      expect(first.line).toBe(6)
      const at = first.column === undefined ? `line ${first.line}` : `${first.line}:${first.column}`
      expect(await verdict.textContent()).toContain(`${at} ${first.message}`)
      // In place: right under line 6 of the highlighted draft, which is marked.
      const draft = page.getByLabel('The draft, highlighted')
      const marked = await draft.evaluate((el) =>
        [...el.querySelectorAll('.dsl-line.has-error')].map((l) => l.getAttribute('data-line')),
      )
      expect(marked).toEqual(['6'])
      const note = await draft.evaluate(
        (el, line) => el.querySelector(`.dsl-line[data-line="${line}"] .dsl-error-text`)?.textContent,
        first.line,
      )
      expect(note).toBe(`${at}: ${first.message}`)
      expect(await editor.getAttribute('aria-invalid')).toBe('true')
      await screenshot(page, 'model-write')

      // Writing it is refused the same way; no version is added.
      const writeButton = page.getByRole('button', { name: 'Write version' })
      await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/models/validate') && r.request().method() === 'POST'),
        writeButton.click(),
      ])
      await verdict.waitFor()
      await expect.poll(() => writeButton.isEnabled()).toBe(true)
      const models = await pemba.api('GET', `/stores/${pemba.store}/authorization-models`)
      expect(models.body.authorization_models.map((m: { id: string }) => m.id)).toEqual([pemba.modelId])
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('keeps a draft too large for a link in the page only, and says so', async () => {
    const page = await openConsole(browser, pemba, modelPath('?tab=write'))
    try {
      const editor = page.getByLabel('Model DSL')
      await editor.waitFor()
      const big = `${await editor.inputValue()}\n${'# a long comment line to make the draft large\n'.repeat(300)}`
      await editor.fill(big)
      await page.getByRole('status').filter({ hasText: 'too large to keep in the link' }).waitFor()
      expect(new URL(page.url()).searchParams.get('draft')).toBeNull()
      // Still the page's draft: another tab and back keep it.
      const views = page.getByRole('navigation', { name: 'Model views' })
      await views.getByRole('link', { name: 'DSL' }).click()
      await views.getByRole('link', { name: 'Write a new version' }).click()
      expect(await page.getByLabel('Model DSL').inputValue()).toBe(big)
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })

  it('draws the graph and offers the editor when the DSL cannot be had', async () => {
    const page = await openConsole(browser, pemba, 'about:blank')
    try {
      // POST /models/dsl fails at the network: the graph needs only the model.
      await page.route('**/models/dsl', (route) => route.abort())
      await page.goto(new URL(modelPath('?tab=graph'), pemba.url).href)
      const canvas = page.getByRole('img', { name: /model as a graph/ })
      await canvas.and(page.locator('[data-ready="true"]')).waitFor({ timeout: 30_000 })
      await page.getByRole('navigation', { name: 'Model views' }).getByRole('link', { name: 'Write a new version' }).click()
      await page.getByRole('alert').filter({ hasText: 'into DSL' }).waitFor()
      await page.getByText('The editor starts from a starter model').waitFor()
      const starter = await page.getByLabel('Model DSL').inputValue()
      expect(starter).toContain('define viewer: [user]')
      expect(starter).not.toContain('type folder')
      expect(await page.getByRole('button', { name: 'Write version' }).isEnabled()).toBe(true)
      // A version that does not exist: its error in place, and the editor all the same.
      await page.goto(new URL(modelPath('?tab=write&version=01ARZ3NDEKTSV4RRFFQ69G5FAV'), pemba.url).href)
      await page.getByRole('alert').filter({ hasText: 'Loading version 01ARZ3NDEKTSV4RRFFQ69G5FAV' }).waitFor()
      await page.getByLabel('Model DSL').waitFor()
      page.assertClean(/Failed to load resource|status of 404/)
    } finally {
      await page.context().close()
    }
  })

  it('writes a second version and diffs it against the first', async () => {
    const page = await openConsole(browser, pemba, modelPath('?tab=write'))
    try {
      const editor = page.getByLabel('Model DSL')
      await editor.waitFor()
      const before = await editor.inputValue()
      const after = before.replace('    define blocked: [user]', '    define blocked: [user]\n    define commenter: [user, group#member]')
      expect(after).not.toBe(before)
      await editor.fill(after)
      await page.getByRole('button', { name: 'Write version' }).click()
      await page.waitForURL((u) => u.searchParams.get('version') !== null && u.searchParams.get('version') !== pemba.modelId)
      const second = new URL(page.url()).searchParams.get('version')!
      const models = await pemba.api('GET', `/stores/${pemba.store}/authorization-models`)
      expect(models.body.authorization_models.map((m: { id: string }) => m.id)).toEqual([second, pemba.modelId])
      await page.getByLabel(`The DSL of version ${second}`).getByText('commenter', { exact: true }).waitFor()
      // The version just written is the latest now, and the editor's draft is gone.
      await page.locator('.model-version').getByText('latest', { exact: true }).waitFor()
      expect(new URL(page.url()).searchParams.get('draft')).toBeNull()

      // History: both versions; compare the shown (new) one with the first.
      await page.getByRole('navigation', { name: 'Model views' }).getByRole('link', { name: 'History' }).click()
      const versions = page.getByRole('table', { name: 'Versions' })
      await versions.getByRole('row').nth(2).waitFor()
      expect(await versions.getByRole('row').count()).toBe(3)
      expect(await page.getByLabel(`Show ${second}`).isChecked()).toBe(true)
      const latestRow = versions.getByRole('row').filter({ hasText: 'latest' })
      expect(await latestRow.count()).toBe(1)
      expect(await latestRow.textContent()).toContain(second)
      await page.getByLabel(`Compare with ${pemba.modelId}`).check()
      const diffTable = page.getByRole('table', { name: `Unified diff, ${pemba.modelId} to ${second}` })
      await diffTable.waitFor()
      const expected = diffRows(await dslOf(pemba.modelId), await dslOf(second))
      expect(expected.added).toBeGreaterThan(0)
      const added = diffTable.getByRole('row').filter({ hasText: 'added:' })
      expect(await added.count()).toBe(expected.added)
      expect(await diffTable.getByRole('row').filter({ hasText: 'removed:' }).count()).toBe(expected.removed)
      expect(await added.first().textContent()).toContain('+added:     define commenter: [user, group#member]')
      await page.getByText(`${expected.added} line${expected.added === 1 ? '' : 's'} added, ${expected.removed} removed`).waitFor()
      // Unchanged runs far from the change are folded; "Show every line" shows them all.
      const gaps = diffTable.getByRole('row').filter({ hasText: /unchanged lines?$/ })
      expect(await gaps.count()).toBeGreaterThan(0)
      await page.getByRole('button', { name: 'Show every line' }).click()
      await gaps.first().waitFor({ state: 'detached' })
      expect(await diffTable.getByRole('row').count()).toBe(expected.rows.length + 1)
      await page.getByRole('button', { name: 'Show only the changes' }).click()
      await gaps.first().waitFor()
      // The comparison is in the URL: a reload shows it again.
      const url = new URL(page.url())
      expect([url.searchParams.get('tab'), url.searchParams.get('compare'), url.searchParams.get('version')]).toEqual(['history', pemba.modelId, second])
      await page.reload()
      await diffTable.waitFor()
      await screenshot(page, 'model-diff')
      page.assertClean()
    } finally {
      await page.context().close()
    }
  })
})
