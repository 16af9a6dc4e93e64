/**
 * How `read` and `changes` page, and what tables show, against a real Pemba behind a real HTTP
 * front that sees every request: pages are printed as they arrive (nothing is held until the
 * end), the change feed keeps its place when a server answers an empty page without a token,
 * and strings the server sends (ids holding terminal escape sequences) are printed escaped in
 * tables and trees, never raw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { queryCommand } from '../../src/cli/queries.ts'
import { printable, table, tree } from '../../src/cli/output.ts'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { api } from '../helpers/processes.ts'
import { startFront, type Front } from './front.ts'

const ESC = '\x1b'
/** An object id that, printed raw, would turn a terminal's text red and set its title. */
const HOSTILE = `document:${ESC}[31mred${ESC}]0;pwned${String.fromCharCode(7)}`

let s: ServedPemba
let storeId: string
let front: Front
/** Lines printed so far by the command under test, and what the front saw when. */
let printed: string[] = []
const requests: { url: string; printedBefore: number }[] = []
/** An answer the front gives instead of passing the request on, when `when` matches it (`body` may be a function: one answer per call). */
let scripted: { when: (url: string) => boolean; body: unknown; status?: number } | undefined

beforeAll(async () => {
  s = await servePemba()
  storeId = (await api(s.url, 'POST', '/stores', { name: 'paging' })).body.id
  expect((await api(s.url, 'POST', `/stores/${storeId}/authorization-models`, SMALL_MODEL)).status).toBe(201)
  const keys = Array.from({ length: 5 }, (_, i) => ({ user: 'user:anne', relation: 'viewer', object: `document:${i}` }))
  expect((await api(s.url, 'POST', `/stores/${storeId}/write`, { writes: { tuple_keys: keys } })).status).toBe(200)
  front = await startFront(s.url, (req) => {
    requests.push({ url: req.url ?? '', printedBefore: printed.length })
    if (!scripted?.when(req.url ?? '')) return undefined
    const body = typeof scripted.body === 'function' ? (scripted.body as () => unknown)() : scripted.body
    return { status: scripted.status ?? 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
  })
})
afterAll(async () => {
  await front.close()
  await s.close()
})

async function run(argv: string[]) {
  printed = []
  requests.length = 0
  const err: string[] = []
  const code = await queryCommand(argv, { FGA_API_URL: front.url, FGA_STORE_ID: storeId }, { log: (l) => printed.push(l), error: (l) => err.push(l) })
  return { code, out: printed.join('\n'), err: err.join('\n') }
}

describe('read prints each page as it arrives', () => {
  it('as one JSON document, a tuple a line, written before the next page is asked for', async () => {
    const r = await run(['read', '--page-size', '2', '--json'])
    expect(r.code).toBe(0)
    const doc = JSON.parse(r.out) as { tuples: { key: { object: string } }[]; continuation_token: string }
    expect(doc.tuples.map((t) => t.key.object).sort()).toEqual(['document:0', 'document:1', 'document:2', 'document:3', 'document:4'])
    expect(doc.continuation_token).toBe('')
    // Three pages of 2, 2 and 1 tuples: each request after the first came once the page before was printed.
    const reads = requests.filter((q) => q.url.endsWith('/read'))
    expect(reads.map((q) => q.printedBefore)).toEqual([0, 3, 5])
    expect(printed).toHaveLength(7)
  })

  it('as table rows, aligned as the columns widen, with the token to resume from', async () => {
    const r = await run(['read', '--page-size', '2', '--max-pages', '2', '--table'])
    expect(r.code).toBe(0)
    const reads = requests.filter((q) => q.url.endsWith('/read'))
    expect(reads.map((q) => q.printedBefore)).toEqual([0, 1])
    const lines = r.out.split('\n')
    expect(lines[0]).toMatch(/^WRITTEN\s+USER\s+RELATION\s+OBJECT$/)
    expect(lines.slice(1, 5).every((l) => /^\S+\s+user:anne {2}viewer {4}document:\d$/.test(l))).toBe(true)
    expect(lines.slice(5)).toEqual(['', expect.stringMatching(/^more tuples: resume with --continuation-token \S+$/)])
  })

  it('prints the header again when a later page brings a CONDITION column', async () => {
    const tuple = (object: string, condition?: { name: string }) => ({
      key: { user: 'user:anne', relation: 'viewer', object, ...(condition ? { condition } : {}) },
      timestamp: '2026-01-01T00:00:00Z',
    })
    const pages = [
      { tuples: [tuple('document:a')], continuation_token: 'p2' },
      { tuples: [tuple('document:long-name', { name: 'in_office' })], continuation_token: '' },
    ]
    let served = 0
    scripted = { when: (url) => url.endsWith('/read'), body: () => pages[served++] }
    try {
      const r = await run(['read', '--table'])
      expect(r.out.split('\n')).toEqual([
        'WRITTEN               USER       RELATION  OBJECT',
        '2026-01-01T00:00:00Z  user:anne  viewer    document:a',
        '',
        'WRITTEN               USER       RELATION  OBJECT              CONDITION',
        '2026-01-01T00:00:00Z  user:anne  viewer    document:long-name  in_office',
      ])
    } finally {
      scripted = undefined
    }
  })

  it('a refused first page prints nothing on stdout', async () => {
    scripted = { when: (url) => url.endsWith('/read'), status: 400, body: { code: 'validation_error', message: 'no' } }
    try {
      const r = await run(['read', '--json'])
      expect(r).toEqual({ code: 1, out: '', err: 'pemba read: the server refused the request: HTTP 400 validation_error: no' })
    } finally {
      scripted = undefined
    }
  })
})

describe('changes keeps its place', () => {
  it('an empty page without a token gives back the token it was asked with', async () => {
    const all = JSON.parse((await run(['changes', '--json'])).out) as { changes: unknown[]; continuation_token: string }
    expect(all.changes).toHaveLength(5)
    expect(all.continuation_token).not.toBe('')
    // A server that ends its feed with an empty token (as OpenFGA may on an empty page).
    scripted = { when: (url) => url.includes('/changes'), body: { changes: [], continuation_token: '' } }
    try {
      const idle = await run(['changes', '--continuation-token', all.continuation_token, '--json'])
      expect(JSON.parse(idle.out)).toEqual({ changes: [], continuation_token: all.continuation_token })
      const table = await run(['changes', '--continuation-token', all.continuation_token, '--table'])
      expect(table.out).toBe(`no changes\n\nnext changes: --continuation-token ${all.continuation_token}`)
    } finally {
      scripted = undefined
    }
  })
})

describe('terminal escape codes from the server', () => {
  it('are printed escaped in tables, trees and check explanations, and stay JSON-escaped in JSON', async () => {
    const read = { key: { user: 'user:anne', relation: 'viewer', object: HOSTILE }, timestamp: '2026-01-01T00:00:00Z' }
    scripted = { when: (url) => url.endsWith('/read'), body: { tuples: [read], continuation_token: `tok${ESC}[2J` } }
    try {
      const t = await run(['read', '--max-pages', '1', '--table'])
      expect(t.out).not.toContain(ESC)
      expect(t.out).toContain('document:\\x1b[31mred\\x1b]0;pwned\\x07')
      expect(t.out).toContain('--continuation-token tok\\x1b[2J')
      const j = await run(['read', '--max-pages', '1', '--json'])
      expect(j.out).not.toContain(ESC)
      expect(JSON.parse(j.out).tuples[0].key.object).toBe(HOSTILE)
    } finally {
      scripted = undefined
    }
    scripted = { when: (url) => url.endsWith('/list-objects'), body: { objects: [HOSTILE] } }
    try {
      const list = await run(['list-objects', 'user:anne', 'viewer', 'document', '--table'])
      expect(list.out).toBe('OBJECT\ndocument:\\x1b[31mred\\x1b]0;pwned\\x07')
    } finally {
      scripted = undefined
    }
    scripted = { when: (url) => url.endsWith('/check'), body: { allowed: true, explanation: { path: [`${HOSTILE}#viewer@user:anne`] } } }
    try {
      const check = await run(['check', 'user:anne', 'viewer', 'document:1', '--table'])
      expect(check.out).toBe('allowed\nwhy:\n  document:\\x1b[31mred\\x1b]0;pwned\\x07#viewer@user:anne')
    } finally {
      scripted = undefined
    }
  })

  it('printable escapes C0, DEL, C1 and bidirectional overrides; table and tree use it', () => {
    expect(printable(`a${ESC}b\x7f\x9b\u202ez\ttab\nnl`)).toBe('a\\x1bb\\x7f\\x9b\\u202ez\\x09tab\\x0anl')
    expect(printable('user:anne — café')).toBe('user:anne — café')
    expect(table(['A', 'B'], [[`x${ESC}`, 'y']])).toBe('A      B\nx\\x1b  y')
    expect(tree({ label: `r${ESC}`, children: [{ label: `c\u202e` }] })).toBe('r\\x1b\n└── c\\u202e')
  })
})
