/**
 * How long each console page takes to show its content over loopback with the bench data set
 * at scale 1 (~97k tuples): issue 21's "the console pages load in under 1 s". A measurement, not
 * a test of speed: nothing here is asserted against a time; the figures are printed and written
 * to test/console/screenshots/load-time.json (git-ignored) for bench/README.md.
 *
 * Run on demand (the scale-1 load takes minutes; CI does not run it):
 *
 *   PEMBA_CONSOLE_LOAD_SCALE=1 npx vitest run test/console/load-time.test.ts
 *
 * Without PEMBA_CONSOLE_LOAD_SCALE the suite is skipped with that reason printed.
 *
 * Measured in the browser: from navigation start (performance.timeOrigin) to the first animation
 * frame in which the page's main content is there and nothing on it is still loading: the stores
 * table's row of the bench store with its tuple count, the model graph laid out (`data-ready`),
 * the tuples table's first page, the change timeline's entries, the answer of an allowed
 * deep-group check opened from its URL, the decision log's rows, an identity's grants, the
 * access requests' list. Each page: `COLD` runs in fresh browser contexts (nothing cached) and
 * `WARM` reloads (the hashed assets cached, as on a second visit).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import { describeChromium, findChromium, launchChromium } from '../helpers/chromium.ts'
import { SCREENSHOTS, screenshot, startConsolePemba, VIEWPORT, type ConsolePemba } from './harness.ts'

// Functions passed to page.evaluate run in the browser; the Node type-check has no DOM library.
declare const document: any
interface PerformanceResourceTiming {
  name: string
  startTime: number
  responseEnd: number
}

const chromium = findChromium()
const SCALE_SETTING = process.env.PEMBA_CONSOLE_LOAD_SCALE
const SCALE = Number(SCALE_SETTING ?? '')
// Set but not a positive number: a mistake, not "not set" (which skips the suite).
if (SCALE_SETTING !== undefined && SCALE_SETTING !== '' && !(Number.isFinite(SCALE) && SCALE > 0)) {
  throw new Error(`PEMBA_CONSOLE_LOAD_SCALE=${JSON.stringify(SCALE_SETTING)} is not a positive number (e.g. 1 for the full bench data set)`)
}
const COLD = 3
const WARM = 3
const LOAD_TIMEOUT_MS = 30 * 60_000

interface Measured {
  page: string
  path: string
  cold: number[]
  warm: number[]
  /** The longest API call of each cold load (ms). */
  coldApi: number[]
}

/** A page to measure: its URL, what its content is (printed), the argument of `contentShown`. */
interface PageCase {
  name: string
  path: (p: ConsolePemba, extra: Extra) => string
  waitsFor: string
  /** The argument `contentShown` gets for this page. */
  arg: (p: ConsolePemba, extra: Extra) => string
}

interface Extra {
  deepCheck: { user: string; relation: string; object: string }
  reviewUser: string
}

const CASES: PageCase[] = [
  {
    name: 'stores',
    path: () => '/console/',
    waitsFor: "the bench store's row with its tuple count",
    arg: (p) => JSON.stringify({ id: p.store, count: p.dataset.tuples.length }),
  },
  {
    name: 'model',
    path: (p) => `/console/stores/${p.store}/model?tab=graph`,
    waitsFor: 'the model graph laid out (data-ready="true")',
    arg: () => '',
  },
  {
    name: 'tuples',
    path: (p) => `/console/stores/${p.store}/tuples`,
    waitsFor: "the tuples table's first page",
    arg: () => '',
  },
  {
    name: 'changes',
    path: (p) => `/console/stores/${p.store}/changes`,
    waitsFor: 'the change timeline with entries',
    arg: () => '',
  },
  {
    name: 'check',
    path: (p, x) => `/console/stores/${p.store}/check?${new URLSearchParams({ ...x.deepCheck, run: '1' })}`,
    waitsFor: 'the answer and explanation of an allowed deep-group check opened from its URL',
    arg: () => '',
  },
  {
    name: 'decisions',
    path: (p) => `/console/stores/${p.store}/decisions`,
    waitsFor: "the decision log's rows",
    arg: () => '',
  },
  {
    name: 'review',
    path: (p, x) => `/console/stores/${p.store}/review?${new URLSearchParams({ user: x.reviewUser })}`,
    waitsFor: "a user's grants",
    arg: () => '',
  },
  {
    name: 'requests',
    path: (p) => `/console/stores/${p.store}/requests`,
    waitsFor: 'the access requests (none pending in the bench store)',
    arg: () => '',
  },
]

/**
 * contentShown runs in the browser (serialised by playwright: it may use nothing from this
 * file): whether `page`'s main content is rendered.
 */
function contentShown({ page, arg }: { page: string; arg: string }): { ms: number; apiMs: number } | false {
  const main = document.getElementById('main')
  if (!main || !main.querySelector('h1')) return false
  // Nothing still loading: no busy region, no loading note.
  // (Shown ones only: a closed dialog may hold a loading note of its own.)
  if ([...main.querySelectorAll('[aria-busy="true"], .loading')].some((e: any) => e.getClientRects().length > 0)) return false
  const rows = main.querySelectorAll('tbody tr').length
  let shown: boolean
  switch (page) {
    case 'stores': {
      const { id, count } = JSON.parse(arg) as { id: string; count: number }
      const forms = [String(count), count.toLocaleString(), count.toLocaleString('en-US')]
      shown = [...main.querySelectorAll('tr')].some((tr) => {
        const t = tr.textContent ?? ''
        return t.includes(id) && forms.some((f) => t.includes(f))
      })
      break
    }
    case 'model':
      shown = main.querySelector('[data-ready="true"]') !== null
      break
    case 'changes':
      shown = main.querySelectorAll('tbody tr, ol li, ul li').length > 0
      break
    case 'check':
      // The allowed answer's witness path, drawn.
      shown = main.querySelector('ol[aria-label="Witness tuples"] li') !== null
      break
    case 'requests':
      // The requests table (its caption says how many, or that there are none).
      shown = main.querySelector('table') !== null
      break
    default:
      shown = rows > 0
  }
  if (!shown) return false
  // The API's share: the longest API call (anything outside /console/) of this load, start to end.
  const api = (performance.getEntriesByType('resource') as unknown as PerformanceResourceTiming[]).filter(
    (e) => !new URL(e.name).pathname.startsWith('/console/'),
  )
  return { ms: performance.now(), apiMs: Math.max(0, ...api.map((e) => e.responseEnd - e.startTime)) }
}

/** measure opens `url` in `page` and answers ms from navigation start to the first frame the page's content is shown. */
async function measure(page: Page, url: string, c: PageCase, arg: string, reload: boolean): Promise<{ ms: number; apiMs: number }> {
  if (reload) await page.reload({ waitUntil: 'commit' })
  else await page.goto(url, { waitUntil: 'commit' })
  try {
    const handle = await page.waitForFunction(contentShown, { page: c.name, arg }, { polling: 'raf', timeout: 60_000 })
    return (await handle.jsonValue()) as { ms: number; apiMs: number }
  } catch (e) {
    // Say which page never showed its content, and what it showed instead.
    const shown = await page.evaluate(() => document.getElementById('main')?.innerText ?? '(no main)').catch(() => '(page gone)')
    await screenshot(page, `load-time-${c.name}-not-ready`).catch(() => undefined)
    throw new Error(`${c.name} (${url}) did not show ${c.waitsFor}: ${String(e)}\nthe page showed:\n${shown.slice(0, 2000)}`)
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const enabled = Number.isFinite(SCALE) && SCALE > 0
if (!enabled) {
  console.warn('console load time not measured: set PEMBA_CONSOLE_LOAD_SCALE (e.g. 1) to run test/console/load-time.test.ts')
}

;(enabled ? describeChromium : (name: string, _a: unknown, fn: () => void) => describe.skip(name, fn))(
  `console load time at scale ${SCALE}`,
  chromium,
  () => {
    let pemba: ConsolePemba
    let browser: Browser
    let extra: Extra
    let loadSeconds = 0
    beforeAll(async () => {
      const t0 = Date.now()
      ;[pemba, browser] = await Promise.all([startConsolePemba({ scale: SCALE }), launchChromium(chromium)])
      loadSeconds = (Date.now() - t0) / 1000
      extra = await prepare(pemba)
    }, LOAD_TIMEOUT_MS)
    afterAll(async () => {
      await browser?.close()
      await pemba?.stop()
    })

    it(
      'measures each page from navigation start to its content (printed, not asserted)',
      async () => {
        const results: Measured[] = []
        for (const c of CASES) {
          const path = c.path(pemba, extra)
          const url = new URL(path, pemba.url).href
          const arg = c.arg(pemba, extra)
          const m: Measured = { page: c.name, path, cold: [], warm: [], coldApi: [] }
          for (let i = 0; i < COLD; i++) {
            const context = await browser.newContext({ viewport: VIEWPORT })
            try {
              const page = await context.newPage()
              const cold = await measure(page, url, c, arg, false)
              m.cold.push(cold.ms)
              m.coldApi.push(cold.apiMs)
              if (i === COLD - 1) for (let j = 0; j < WARM; j++) m.warm.push((await measure(page, url, c, arg, true)).ms)
            } finally {
              await context.close()
            }
          }
          results.push(m)
        }
        const load = os.loadavg().map((l) => l.toFixed(2)).join(' ')
        const header = [
          `console page load at scale ${SCALE} (${pemba.dataset.tuples.length} tuples; loaded in ${loadSeconds.toFixed(0)} s), ` +
            `${new Date().toISOString()}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}, load ${load}`,
          `navigation start → content shown, ms (median of ${COLD} cold loads in fresh contexts; median of ${WARM} warm reloads)`,
        ]
        const table = [
          '| page | waits for | cold ms (median; runs) | of which the longest API call | warm ms (median; runs) |',
          '|---|---|---|---|---|',
          ...results.map((r) => {
            const c = CASES.find((x) => x.name === r.page)!
            const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ')
            return (
              `| ${r.page} | ${c.waitsFor} | ${median(r.cold).toFixed(0)} (${runs(r.cold)}) | ${median(r.coldApi).toFixed(0)} ` +
              `| ${median(r.warm).toFixed(0)} (${runs(r.warm)}) |`
            )
          }),
        ]
        console.log([...header, ...table].join('\n'))
        mkdirSync(SCREENSHOTS, { recursive: true })
        writeFileSync(
          join(SCREENSHOTS, 'load-time.json'),
          JSON.stringify({ scale: SCALE, tuples: pemba.dataset.tuples.length, header, results, table }, null, 2),
        )
        // Not a timing assertion: every page was measured (it reached its content).
        expect(results.map((r) => r.cold.length + r.warm.length)).toEqual(CASES.map(() => COLD + WARM))
      },
      LOAD_TIMEOUT_MS,
    )
  },
)

/**
 * prepare picks an allowed deep-group check (through nested groups) for the check page, a user
 * with direct grants for the review page, and fills the decision log with the data set's checks.
 */
async function prepare(pemba: ConsolePemba): Promise<Extra> {
  let deepCheck: Extra['deepCheck'] | undefined
  for (const c of pemba.dataset.checks) {
    const key = { user: c.subject, relation: c.permission, object: c.resource }
    const r = await pemba.api('POST', `/stores/${pemba.store}/check`, { tuple_key: key })
    if (r.status !== 200) throw new Error(`check: ${r.status} ${JSON.stringify(r.body)}`)
    if (!deepCheck && r.body.allowed === true && c.kind === 'deep-group') deepCheck = key
  }
  if (!deepCheck) throw new Error('no allowed deep-group check in the data set')
  // A user with the most direct grants (`…@user:uN`).
  const perUser = new Map<string, number>()
  for (const t of pemba.dataset.tuples) {
    const user = t.slice(t.indexOf('@') + 1)
    if (/^user:[^#]+$/.test(user)) perUser.set(user, (perUser.get(user) ?? 0) + 1)
  }
  const reviewUser = [...perUser.entries()].sort((a, b) => b[1] - a[1])[0][0]
  return { deepCheck, reviewUser }
}
