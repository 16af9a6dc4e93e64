/**
 * Every relative link of README.md, docs/*.md and bench/README.md points at a file that exists,
 * and a link to a heading (`api.md#conditions-access-that-depends-on-the-request`) at a heading
 * that exists, with GitHub's anchor rules. Text moved between pages keeps its links true.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const PAGES = [
  'README.md',
  'bench/README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]

/** The text outside fenced code blocks and inline code spans, where links live. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '')
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]!)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** The relative links of a page: `[text](target)` whose target has no scheme. */
function relativeLinks(page: string): string[] {
  const text = prose(readFileSync(join(ROOT, page), 'utf8'))
  return [...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t))
}

describe('the documentation links', () => {
  it('has pages to check', () => {
    expect(PAGES).toContain('docs/configuration.md')
    expect(PAGES.length).toBeGreaterThan(8)
  })

  it.each(PAGES)('%s: every relative link resolves', (page) => {
    const broken: string[] = []
    for (const link of relativeLinks(page)) {
      const [path, anchor] = link.split('#') as [string, string | undefined]
      const target = path === '' ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), decodeURI(path))
      if (!existsSync(target)) {
        broken.push(`${link}: no file ${relative(ROOT, target)}`)
        continue
      }
      if (anchor !== undefined && statSync(target).isFile() && target.endsWith('.md') && !anchorsOf(target).has(anchor)) {
        broken.push(`${link}: no heading #${anchor} in ${relative(ROOT, target)}`)
      }
    }
    expect(broken).toEqual([])
  })

  it('the slug follows GitHub', () => {
    expect(slug("Token-native checks: the caller's token is the subject")).toBe('token-native-checks-the-callers-token-is-the-subject')
    expect(slug('Browsers: CORS, Origin and Host')).toBe('browsers-cors-origin-and-host')
    expect(slug('`/healthz` and `/readyz`')).toBe('healthz-and-readyz')
  })
})
