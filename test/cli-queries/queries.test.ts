/**
 * The query commands (`pemba check`, `list-objects`, `list-users`, `expand`, `read`, `changes`)
 * in-process against a real Pemba behind a real HTTP listener: their table and JSON output,
 * paging with continuation tokens, exit codes, and usage errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { queryCommand, DENIED_EXIT } from '../../src/cli/queries.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { api } from '../helpers/processes.ts'

const MODEL = `model
  schema 1.1
type user
type folder
  relations
    define viewer: [user, team#member]
type team
  relations
    define member: [user]
type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user] or owner
    define blocked: [user]
    define viewer: ([user, user:*, team#member, user with in_office] or editor or viewer from parent) but not blocked

condition in_office(ip: ipaddress) {
  ip.in_cidr("10.0.0.0/8")
}
`

const TUPLES = [
  { user: 'user:bob', relation: 'member', object: 'team:eng' },
  { user: 'user:anne', relation: 'owner', object: 'document:roadmap' },
  { user: 'team:eng#member', relation: 'viewer', object: 'document:roadmap' },
  { user: 'folder:plans', relation: 'parent', object: 'document:roadmap' },
  { user: 'user:dana', relation: 'viewer', object: 'folder:plans' },
  { user: 'user:erin', relation: 'viewer', object: 'document:roadmap' },
  { user: 'user:erin', relation: 'blocked', object: 'document:roadmap' },
  { user: 'user:*', relation: 'viewer', object: 'document:spec' },
  { user: 'user:carl', relation: 'viewer', object: 'document:plan-b', condition: { name: 'in_office' } },
]

let s: ServedPemba
let storeId: string
let env: Record<string, string>

beforeAll(async () => {
  s = await servePemba()
  const store = await api(s.url, 'POST', '/stores', { name: 'cli-queries' })
  storeId = store.body.id
  expect((await api(s.url, 'POST', `/stores/${storeId}/authorization-models`, MODEL)).status).toBe(201)
  expect((await api(s.url, 'POST', `/stores/${storeId}/write`, { writes: { tuple_keys: TUPLES } })).status).toBe(200)
  env = { FGA_API_URL: s.url, FGA_STORE_ID: storeId }
})
afterAll(() => s.close())

/** run runs `pemba <argv…>` in-process and collects what it prints. */
async function run(argv: string[], e: Record<string, string | undefined> = env) {
  const out: string[] = []
  const err: string[] = []
  const code = await queryCommand(argv, e, { log: (l) => out.push(l), error: (l) => err.push(l) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

describe('check', () => {
  it('prints allowed or denied on a table, the API answer as JSON, and exits 0 either way', async () => {
    expect(await run(['check', 'user:anne', 'viewer', 'document:roadmap', '--table'])).toEqual({ code: 0, out: 'allowed', err: '' })
    expect(await run(['check', 'user:erin', 'viewer', 'document:roadmap', '--table'])).toEqual({ code: 0, out: 'denied', err: '' })
    // Not a terminal (vitest's stdout): JSON without asking.
    const json = await run(['check', 'user:bob', 'viewer', 'document:roadmap'])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.out)).toEqual({ allowed: true, resolution: '' })
    expect(JSON.parse((await run(['check', 'user:frank', 'viewer', 'document:roadmap', '--json'])).out).allowed).toBe(false)
  })

  it(`--exit-code: a denial exits ${DENIED_EXIT}, an allowed check 0`, async () => {
    expect((await run(['check', 'user:erin', 'viewer', 'document:roadmap', '--exit-code', '--table'])).code).toBe(DENIED_EXIT)
    expect((await run(['check', 'user:anne', 'viewer', 'document:roadmap', '--exit-code'])).code).toBe(0)
  })

  it('--contextual-tuple (repeatable), --context for conditions, --consistency, --model-id', async () => {
    const frank = ['check', 'user:frank', 'viewer', 'document:roadmap', '--table']
    expect((await run(frank)).out).toBe('denied')
    expect((await run([...frank, '--contextual-tuple', 'user:frank member team:eng', '--contextual-tuple', 'user:x owner document:y'])).out).toBe(
      'allowed',
    )
    // A contextual tuple with a condition and its context.
    const cond = ['--contextual-tuple', 'user:frank viewer document:roadmap in_office {"ip": "10.0.0.9"}']
    expect((await run([...frank, ...cond])).out).toBe('allowed')
    const carl = ['check', 'user:carl', 'viewer', 'document:plan-b', '--table', '--consistency', 'higher_consistency']
    expect((await run([...carl, '--context', '{"ip":"10.1.2.3"}'])).out).toBe('allowed')
    expect((await run([...carl, '--context', '{"ip":"192.168.0.1"}'])).out).toBe('denied')
    const models = await api(s.url, 'GET', `/stores/${storeId}/authorization-models`)
    const modelId = models.body.authorization_models[0].id as string
    expect((await run([...carl, '--context', '{"ip":"10.1.2.3"}', '--model-id', modelId])).out).toBe('allowed')
  })

  it('--explain (Pemba): the path that grants access, or why each branch failed', async () => {
    const why = await run(['check', 'user:dana', 'viewer', 'document:roadmap', '--explain', '--table'])
    expect(why.code).toBe(0)
    const lines = why.out.split('\n')
    expect(lines.slice(0, 2)).toEqual(['allowed', 'why:'])
    expect(lines.slice(2).every((l) => l.startsWith('  '))).toBe(true)
    expect(why.out).toContain('document:roadmap#parent@folder:plans')
    expect(why.out).toContain('folder:plans#viewer@user:dana')
    const whyNot = await run(['check', 'user:erin', 'viewer', 'document:roadmap', '--explain', '--table'])
    expect(whyNot.out.split('\n').slice(0, 2)).toEqual(['denied', 'why not:'])
    expect(whyNot.out).toMatch(/\n  - .*blocked/)
    const json = JSON.parse((await run(['check', 'user:erin', 'viewer', 'document:roadmap', '--explain'])).out)
    expect(json).toMatchObject({ allowed: false, explanation: { allowed: false } })
    expect(json.explanation.reasons.length).toBeGreaterThan(0)
  })

  it("a refusal prints the server's code, message and HTTP status, and exits 1", async () => {
    // The condition's parameter is missing: OpenFGA's 400 validation_error.
    const r = await run(['check', 'user:carl', 'viewer', 'document:plan-b'])
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
    expect(r.err).toBe(
      "pemba check: the server refused the request: HTTP 400 validation_error: failed to evaluate relationship condition: 'in_office' - context is missing parameters '[ip]'",
    )
    const relation = await run(['check', 'user:anne', 'nope', 'document:roadmap'])
    expect(relation.code).toBe(1)
    expect(relation.err).toMatch(/HTTP 400 \w+: .*nope/)
    const model = await run(['check', 'user:anne', 'viewer', 'document:roadmap', '--model-id', '01HZZZZZZZZZZZZZZZZZZZZZZZ'])
    expect(model.code).toBe(1)
    expect(model.err).toMatch(/HTTP 4\d\d \w+/)
  })
})

describe('list-objects, list-users, expand', () => {
  it('list-objects: a column of objects, or the API answer', async () => {
    const t = await run(['list-objects', 'user:bob', 'viewer', 'document', '--table'])
    expect(t.code).toBe(0)
    const [header, ...rows] = t.out.split('\n')
    expect(header).toBe('OBJECT')
    expect(rows.sort()).toEqual(['document:roadmap', 'document:spec'])
    const j = JSON.parse((await run(['list-objects', 'user:erin', 'viewer', 'document'])).out)
    expect(j).toEqual({ objects: ['document:spec'] })
    expect((await run(['list-objects', 'user:nobody', 'owner', 'document', '--table'])).out).toBe('no document objects')
    const ctx = await run(['list-objects', 'user:carl', 'viewer', 'document', '--context', '{"ip":"10.0.0.1"}', '--json'])
    expect(JSON.parse(ctx.out).objects.sort()).toEqual(['document:plan-b', 'document:spec'])
  })

  it('list-users: by type or userset kind, printed as tuples write them', async () => {
    const t = await run(['list-users', 'document:roadmap', 'viewer', 'user', '--table'])
    expect(t.code).toBe(0)
    const [header, ...rows] = t.out.split('\n')
    expect(header).toBe('USER')
    expect(rows.sort()).toEqual(['user:anne', 'user:bob', 'user:dana'])
    expect((await run(['list-users', 'document:roadmap', 'viewer', 'team#member', '--table'])).out).toBe('USER\nteam:eng#member')
    expect(JSON.parse((await run(['list-users', 'document:spec', 'viewer', 'user'])).out)).toEqual({ users: [{ wildcard: { type: 'user' } }] })
    expect((await run(['list-users', 'document:spec', 'viewer', 'user', '--table'])).out).toBe('USER\nuser:*')
    const withTuple = await run(['list-users', 'document:spec', 'owner', 'user', '--contextual-tuple', 'user:zoe owner document:spec', '--json'])
    expect(JSON.parse(withTuple.out)).toEqual({ users: [{ object: { type: 'user', id: 'zoe' } }] })
    const bad = await run(['list-users', 'roadmap', 'viewer', 'user'])
    expect(bad.code).toBe(2)
    expect(bad.err).toContain("the object must be <type>:<id>, got 'roadmap'")
  })

  it('expand: an indented tree on a terminal, the UsersetTree as JSON', async () => {
    const t = await run(['expand', 'viewer', 'document:roadmap', '--table'])
    expect(t.code).toBe(0)
    expect(t.out).toBe(
      [
        'document:roadmap#viewer (difference)',
        '├── base',
        '│   └── document:roadmap#viewer (union)',
        '│       ├── document:roadmap#viewer (direct)',
        '│       │   ├── team:eng#member',
        '│       │   └── user:erin',
        '│       ├── document:roadmap#viewer (computed)',
        '│       │   └── document:roadmap#editor',
        '│       └── document:roadmap#viewer (from document:roadmap#parent)',
        '│           └── folder:plans#viewer',
        '└── but not',
        '    └── document:roadmap#viewer (computed)',
        '        └── document:roadmap#blocked',
      ].join('\n'),
    )
    const j = JSON.parse((await run(['expand', 'owner', 'document:roadmap'])).out)
    expect(j).toEqual({ tree: { root: { name: 'document:roadmap#owner', leaf: { users: { users: ['user:anne'] } } } } })
  })
})

describe('a list the server cut short', () => {
  it('prints what came, and says on stderr that it is incomplete', async () => {
    const small = await servePemba({ listMaxResults: 1 })
    try {
      const id = (await api(small.url, 'POST', '/stores', { name: 'cut-short' })).body.id
      await api(small.url, 'POST', `/stores/${id}/authorization-models`, SMALL_MODEL)
      const keys = ['document:a', 'document:b'].map((object) => ({ user: 'user:anne', relation: 'viewer', object }))
      await api(small.url, 'POST', `/stores/${id}/write`, { writes: { tuple_keys: keys } })
      const e = { FGA_API_URL: small.url, FGA_STORE_ID: id }
      const t = await run(['list-objects', 'user:anne', 'viewer', 'document', '--table'], e)
      expect(t.code).toBe(0)
      expect(t.out).toMatch(/^OBJECT\ndocument:[ab]$/)
      expect(t.err).toBe('pemba list-objects: the list is incomplete (max_results)')
      const j = await run(['list-users', 'document:a', 'viewer', 'user', '--json'], e)
      expect(JSON.parse(j.out)).toEqual({ users: [{ object: { type: 'user', id: 'anne' } }] })
    } finally {
      await small.close()
    }
  })
})

describe('read and changes', () => {
  it('read pages through every tuple; --max-pages stops with a token to resume from', async () => {
    const all = JSON.parse((await run(['read', '--page-size', '2'])).out)
    expect(all.continuation_token).toBe('')
    expect(all.tuples).toHaveLength(TUPLES.length)
    const first = JSON.parse((await run(['read', '--page-size', '2', '--max-pages', '2'])).out)
    expect(first.tuples).toHaveLength(4)
    expect(first.continuation_token).not.toBe('')
    const rest = JSON.parse((await run(['read', '--page-size', '2', '--continuation-token', first.continuation_token])).out)
    expect(rest.tuples).toHaveLength(TUPLES.length - 4)
    const keys = [...first.tuples, ...rest.tuples].map((t: { key: unknown }) => t.key)
    expect(keys).toEqual(all.tuples.map((t: { key: unknown }) => t.key))
    const carl = all.tuples.find((t: { key: { user: string } }) => t.key.user === 'user:carl')
    expect(carl.key.condition).toEqual({ name: 'in_office', context: {} })
  })

  it('read filters, and prints a table with the condition column when one has a condition', async () => {
    const r = await run(['read', '--object', 'document:roadmap', '--relation', 'viewer', '--table'])
    expect(r.code).toBe(0)
    const [header, ...rows] = r.out.split('\n')
    expect(header).toMatch(/^WRITTEN\s+USER\s+RELATION\s+OBJECT$/)
    expect(rows.map((l) => l.split(/\s+/).slice(1).join(' ')).sort()).toEqual([
      'team:eng#member viewer document:roadmap',
      'user:erin viewer document:roadmap',
    ])
    const typed = await run(['read', '--user', 'user:carl', '--object', 'document:', '--table'])
    expect(typed.out.split('\n')[0]).toMatch(/^WRITTEN\s+USER\s+RELATION\s+OBJECT\s+CONDITION$/)
    expect(typed.out.split('\n')[1]).toMatch(/user:carl\s+viewer\s+document:plan-b\s+in_office$/)
    const more = await run(['read', '--page-size', '3', '--max-pages', '1', '--table'])
    expect(more.out).toMatch(/\n\nmore tuples: resume with --continuation-token \S+$/)
    expect((await run(['read', '--object', 'document:none', '--table'])).out).toBe('no tuples')
  })

  it('changes: the whole feed, by type, and resumable from the last token', async () => {
    const all = JSON.parse((await run(['changes', '--page-size', '4'])).out)
    expect(all.changes).toHaveLength(TUPLES.length)
    expect(all.changes.every((c: { operation: string }) => c.operation === 'TUPLE_OPERATION_WRITE')).toBe(true)
    expect(all.continuation_token).not.toBe('')
    const folders = JSON.parse((await run(['changes', '--type', 'folder'])).out)
    expect(folders.changes).toHaveLength(1)
    expect(folders.changes[0].tuple_key).toMatchObject({ user: 'user:dana', relation: 'viewer', object: 'folder:plans' })
    // Nothing new yet: the same token back; then a delete shows up after it.
    const idle = JSON.parse((await run(['changes', '--continuation-token', all.continuation_token])).out)
    expect(idle).toEqual({ changes: [], continuation_token: all.continuation_token })
    await api(s.url, 'POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [{ user: 'user:dana', relation: 'viewer', object: 'folder:plans' }] } })
    const next = await run(['changes', '--continuation-token', all.continuation_token, '--table'])
    expect(next.out.split('\n')[0]).toMatch(/^TIME\s+OPERATION\s+USER\s+RELATION\s+OBJECT$/)
    expect(next.out.split('\n')[1]).toMatch(/\s+delete\s+user:dana\s+viewer\s+folder:plans$/)
    expect(next.out).toMatch(/\n\nnext changes: --continuation-token \S+$/)
    const firstPage = JSON.parse((await run(['changes', '--page-size', '3', '--max-pages', '1'])).out)
    expect(firstPage.changes).toHaveLength(3)
    const future = await run(['changes', '--start-time', '2999-01-01T00:00:00Z'])
    expect(future.code).toBe(1)
    expect(future.err).toMatch(/HTTP 400 invalid_start_time/)
  })
})

describe('usage errors exit 2', () => {
  it('no store, a bad URL, bad JSON context, a bad consistency, bad tuples, unknown flags, bad page sizes', async () => {
    const noStore = await run(['check', 'user:anne', 'viewer', 'document:roadmap'], { FGA_API_URL: s.url })
    expect(noStore).toMatchObject({ code: 2, out: '' })
    expect(noStore.err).toContain('pemba check: no store: give --store-id <id> or set FGA_STORE_ID')
    const cases = [
      [['check', 'u:a', 'r', 'o:b', '--api-url', 'ftp://x'], 'pemba check: --api-url (FGA_API_URL) must be an http or https URL'],
      [['check', 'u:a', 'r', 'o:b', '--context', '{nope'], "option '--context <json>' argument '{nope' is invalid. not JSON"],
      [['check', 'u:a', 'r', 'o:b', '--context', '[1]'], 'must be a JSON object'],
      [['check', 'u:a', 'r', 'o:b', '--consistency', 'fast'], 'must be one of UNSPECIFIED, MINIMIZE_LATENCY, HIGHER_CONSISTENCY'],
      [['check', 'u:a', 'r', 'o:b', '--contextual-tuple', 'user:a viewer'], 'is not "<user> <relation> <object>'],
      [['check', 'u:a', 'r', 'o:b', '--json', '--table'], "option '--json' cannot be used with option '--table'"],
      [['check', 'u:a', 'r'], "missing required argument 'object'"],
      [['read', '--max-page', '2'], "unknown option '--max-page'"],
      [['read', '--page-size', '500'], '--page-size must be from 1 to 100, got 500'],
      [['changes', '--max-pages', '-1'], "option '--max-pages <n>' argument '-1' is invalid"],
      // Refused here, not by the server (which would be a failure, exit 1).
      [['changes', '--start-time', 'yesterday'], "pemba changes: --start-time must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got 'yesterday'"],
      [['changes', '--start-time', '2026-13-45T00:00:00Z'], '--start-time must be an RFC 3339 time'],
      [['check', 'u:a', 'r', 'o:b', '--client-id', 'ci'], 'pemba check: the client credentials flow needs --client-id, --client-secret and --api-token-issuer together'],
      // A filter is a type or one type#relation: nothing after a second '#' is dropped silently.
      [['list-users', 'document:roadmap', 'viewer', 'team#member#x'], "the user filter must be <type> or <type>#<relation>, got 'team#member#x'"],
      [['list-users', 'document:roadmap', 'viewer', 'team#'], "the user filter must be <type> or <type>#<relation>, got 'team#'"],
      [['list-users', 'document:roadmap', 'viewer', '#member'], 'the user filter must be <type> or <type>#<relation>'],
      // fetch refuses credentials in a URL, and a query or fragment would swallow the paths appended to it.
      [['check', 'u:a', 'r', 'o:b', '--api-url', 'http://127.0.0.1:8080/?x=1'], "without a query (?…) or fragment (#…): give 'http://127.0.0.1:8080'"],
      [['check', 'u:a', 'r', 'o:b', '--api-url', 'http://127.0.0.1:8080/pemba#top'], "give 'http://127.0.0.1:8080/pemba'"],
      [
        ['check', 'u:a', 'r', 'o:b', '--client-id', 'ci', '--client-secret', 's', '--api-token-issuer', 'idp.example', '--api-token', 't'],
        'give either --api-token (FGA_API_TOKEN) or client credentials (--client-id …), not both',
      ],
    ] as const
    for (const [argv, message] of cases) {
      const r = await run([...argv])
      expect(r.code, argv.join(' ')).toBe(2)
      expect(r.err, argv.join(' ')).toContain(message)
    }
  })

  it('an --api-url with a user name or password: a usage error that shows neither', async () => {
    for (const [url, hidden] of [
      ['http://admin:s3cret-pass@127.0.0.1:8080', ['admin', 's3cret-pass']],
      ['http://tok-3f9a8b7c6d@127.0.0.1:8080', ['tok-3f9a8b7c6d']],
      ['ftp://admin:s3cret-pass@host', ['admin', 's3cret-pass']],
    ] as const) {
      const r = await run(['check', 'u:a', 'r', 'o:b', '--api-url', url])
      expect(r.code, url).toBe(2)
      expect(r.err, url).toMatch(/--api-url \(FGA_API_URL\) must (not hold a user name or password|be an http or https URL)/)
      for (const secret of hidden) expect(r.err, url).not.toContain(secret)
      const fromEnv = await run(['check', 'u:a', 'r', 'o:b'], { ...env, FGA_API_URL: url })
      expect(fromEnv.code, url).toBe(2)
      for (const secret of hidden) expect(fromEnv.err, url).not.toContain(secret)
    }
  })

  it('--help lists the OpenFGA CLI flags with their variables', async () => {
    const r = await run(['check', '--help'])
    expect(r.code).toBe(0)
    const text = r.out.replace(/\s+/g, ' ')
    for (const s of ['Usage: pemba check [options] <user> <relation> <object>', '--api-url <url>', 'env: FGA_API_URL', '--store-id <id>', 'env: FGA_STORE_ID', '--api-token <token>', 'FGA_API_TOKEN, then PEMBA_API_TOKEN', '--contextual-tuple', '--exit-code', '--client-id']) {
      expect(text).toContain(s)
    }
  })
})
