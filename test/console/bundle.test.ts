/**
 * The console's size budget (issue 21: "console assets add under 300 KB gzipped"), measured on the
 * build the server serves (dist/console, from `npm run build`; vitest's globalSetup rebuilds it
 * when console/ changed). A size, not a timing: asserted.
 *
 * - every file of dist/console gzipped on its own, summed: < 300 KB;
 * - the first page (index.html and the JS and CSS it names, with the chunks those import
 *   statically, not the pages loaded with `import()`) is printed, with each lazy chunk;
 * - the graph library (cytoscape, dagre) is in a lazily loaded chunk, never in the first page.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DIST = join(ROOT, 'dist', 'console')
const BUDGET_BYTES = 300 * 1024

/** Strings only the graph libraries' code holds: cytoscape's options and its plugin message; dagre's ranker and graphlib. */
const GRAPH_LIBRARIES: Record<string, string[]> = {
  cytoscape: ['boxSelectionEnabled', 'cytoscape.use()'],
  dagre: ['network-simplex', 'graphlib'],
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : [path]
  })
}

const gzipped = (path: string) => gzipSync(readFileSync(path), { level: 9 }).length
const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`

/** A tag's attribute value, wherever it sits in the tag. */
const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1]

/** The assets index.html loads itself: `<script src>`, `<link rel=stylesheet|modulepreload href>` (attributes in any order). */
function entryAssets(html: string): string[] {
  const out: string[] = []
  for (const m of html.matchAll(/<script\b[^>]*>/g)) {
    const src = attr(m[0], 'src')
    if (src) out.push(src)
  }
  for (const m of html.matchAll(/<link\b[^>]*>/g)) {
    const rel = attr(m[0], 'rel')
    const href = attr(m[0], 'href')
    if (href && (rel === 'stylesheet' || rel === 'modulepreload')) out.push(href)
  }
  return out
}

/** The modules a chunk imports statically (`import…from"./x.js"`, `import"./x.js"`), not `import("./x.js")`. */
function staticImports(js: string): string[] {
  const out: string[] = []
  for (const m of js.matchAll(/\bfrom\s*["'`](\.\/[^"'`]+\.js)["'`]/g)) out.push(m[1])
  for (const m of js.matchAll(/\bimport\s*["'`](\.\/[^"'`]+\.js)["'`]/g)) out.push(m[1])
  return out
}

describe('console bundle', () => {
  it('is built', () => {
    expect(existsSync(join(DIST, 'index.html')), `${DIST}/index.html (npm run build)`).toBe(true)
  })

  it('index.html has no inline script or style (the CSP allows only files from the server)', () => {
    const html = readFileSync(join(DIST, 'index.html'), 'utf8')
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      expect(m[1], 'every script has a src').toMatch(/\bsrc="/)
      expect(m[2].trim(), 'no inline script body').toBe('')
    }
    expect(html).not.toMatch(/<style\b/)
    expect(html).not.toMatch(/\sstyle="/)
    expect(html).not.toMatch(/https?:\/\//)
  })

  it('stays under 300 KB gzipped, with the graph library out of the first page', () => {
    const all = files(DIST)
    const sizes = new Map(all.map((p) => [relative(DIST, p), gzipped(p)]))
    const total = [...sizes.values()].reduce((a, b) => a + b, 0)

    // The first page: index.html, its own assets and their static imports, transitively.
    const html = readFileSync(join(DIST, 'index.html'), 'utf8')
    const first = new Set<string>(['index.html'])
    const queue = entryAssets(html).map((url) => url.replace(/^\/console\//, ''))
    while (queue.length > 0) {
      const name = queue.shift()!
      if (first.has(name)) continue
      expect(sizes.has(name), `index.html names ${name}, which the build has`).toBe(true)
      first.add(name)
      if (name.endsWith('.js')) {
        const dir = name.slice(0, name.lastIndexOf('/') + 1)
        for (const imp of staticImports(readFileSync(join(DIST, name), 'utf8'))) queue.push(dir + imp.slice(2))
      }
    }
    // Every stylesheet link was read (none missed by the parsing above).
    const stylesheetLinks = [...html.matchAll(/<link\b[^>]*>/g)].filter((m) => /\brel=["']?stylesheet/.test(m[0])).length
    expect(stylesheetLinks, 'index.html links at least one stylesheet').toBeGreaterThan(0)
    expect([...first].filter((n) => n.endsWith('.css')).length, 'every stylesheet index.html links is counted').toBe(stylesheetLinks)
    const firstBytes = [...first].reduce((a, n) => a + (sizes.get(n) ?? 0), 0)
    const lazy = [...sizes.keys()].filter((n) => !first.has(n) && /\.(js|css)$/.test(n)).sort()

    const lines = [
      `console bundle: ${all.length} files, ${kb(total)} gzipped in total (budget ${kb(BUDGET_BYTES)})`,
      `  first page (index.html + its JS/CSS): ${kb(firstBytes)} gzipped`,
      ...[...first].sort().map((n) => `    ${n}: ${kb(sizes.get(n)!)}`),
      `  loaded when needed:`,
      ...lazy.map((n) => `    ${n}: ${kb(sizes.get(n)!)}`),
    ]
    console.log(lines.join('\n'))

    expect(total, `the console's files add ${kb(total)} gzipped`).toBeLessThan(BUDGET_BYTES)

    // The graph library is built in (the model page draws with it) and only in lazy chunks.
    const js = [...sizes.keys()].filter((n) => n.endsWith('.js'))
    for (const [library, markers] of Object.entries(GRAPH_LIBRARIES)) {
      const withGraph = js.filter((n) => {
        const text = readFileSync(join(DIST, n), 'utf8')
        return markers.some((m) => text.includes(m))
      })
      expect(withGraph.length, `a chunk holds ${library} (the model graph)`).toBeGreaterThan(0)
      for (const n of withGraph) expect(first.has(n), `${n} (${library}) is loaded by the first page`).toBe(false)
    }
    expect([...first].some((n) => n.endsWith('.js')), 'the first page has a script').toBe(true)
  })
})
