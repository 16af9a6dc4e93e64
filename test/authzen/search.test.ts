/**
 * AuthZEN search, what is not paging (search-paging*.test.ts has that): the three searches'
 * answers (transitive, wildcards, only the searched kind), the action rule (actions only,
 * never structure), 400s for a missing `type` and for limits, complete-or-nothing answers, and
 * Pemba's options, over a real server on HTTP.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import type { TestClient } from '../helpers/client.ts'
import { setup, writeModel } from '../helpers/fixtures.ts'
import { SEARCH_MODEL, httpClient } from './search-paging.case.test.ts'

let served: ServedPemba
let client: TestClient
let storeId: string
let check: (t: string) => Promise<boolean>

const TUPLES = [
  // Structure: owner, parent, a role; and a group (transitive search).
  'doc:plan#owner@user:anne',
  'doc:plan#parent@folder:shared',
  'folder:shared#viewer@user:carl',
  'doc:plan#editor@user:dana',
  'doc:plan#viewer@group:eng#member',
  'group:eng#member@group:backend#member',
  'group:backend#member@user:bob',
  'doc:public#viewer@user:*',
  'doc:public#viewer@user:erin',
  'doc:other#owner@user:anne',
]

beforeAll(async () => {
  served = await servePemba({ authzenSearchMaxResults: 5, authzenPageLimit: 2, authzenPageLimitMax: 3 })
  client = httpClient(served)
  ;({ storeId, check } = await setup(client, SEARCH_MODEL, TUPLES))
})
afterAll(async () => {
  await served.close()
})

const search = (kind: string, body: unknown, headers: Record<string, string> = {}, store = storeId) =>
  client.request('POST', `/stores/${store}/access/v1/search/${kind}`, body, headers)

/** all: every result of a search, following next_token. */
async function all(kind: string, body: Record<string, unknown>): Promise<unknown[]> {
  const out: unknown[] = []
  let token = ''
  do {
    const res = await search(kind, { ...body, page: token ? { token } : {} })
    expect(res.status, res.text).toBe(200)
    out.push(...res.body.results)
    token = res.body.page.next_token
  } while (token)
  return out
}

describe('action search (§8.14)', () => {
  it('§8.14 returns only actions, sorted: never owner, parent or editor, even when the subject holds them', async () => {
    // anne is owner, and so editor: every permission of the type.
    const res = await search('action', { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: 'plan' } })
    expect(res.status, res.text).toBe(200)
    expect(await all('action', { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: 'plan' } })).toEqual([
      { name: 'can_delete' },
      { name: 'can_edit' },
      { name: 'can_share' },
      { name: 'can_view' },
    ])
    // dana is an editor (a written role): can_edit and can_view, not editor itself.
    expect(await all('action', { subject: { type: 'user', id: 'dana' }, resource: { type: 'doc', id: 'plan' } })).toEqual([
      { name: 'can_edit' },
      { name: 'can_view' },
    ])
    // carl views through the parent folder; bob through nested groups (transitive).
    for (const who of ['carl', 'bob']) {
      expect(await all('action', { subject: { type: 'user', id: who }, resource: { type: 'doc', id: 'plan' } })).toEqual([{ name: 'can_view' }])
    }
    expect(await all('action', { subject: { type: 'user', id: 'zoe' }, resource: { type: 'doc', id: 'plan' } })).toEqual([])
  })

  it('§8.14 the action rule at its edges: only relations with no directly assignable type are actions', async () => {
    const s = await setup(
      client,
      `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type folder
  relations
    define viewer: [user]
type doc
  relations
    define owner: [user]
    define parent: [folder]
    define cond_role: [user with cond]
    define public_role: [user:*]
    define team_role: [group#member]
    define via_parent: viewer from parent
    define can_x: [user] or owner
    define can_y: owner or cond_role
condition cond(x: int) {
  x == 1
}
`,
      [
        'doc:d#owner@user:anne',
        'doc:d#parent@folder:f',
        'folder:f#viewer@user:anne',
        'doc:d#public_role@user:*',
        'doc:d#team_role@group:team#member',
        'group:team#member@user:anne',
        'doc:d#can_x@user:anne',
      ],
    )
    await client.request('POST', `/stores/${s.storeId}/write`, {
      writes: { tuple_keys: [{ user: 'user:anne', relation: 'cond_role', object: 'doc:d', condition: { name: 'cond', context: { x: 1 } } }] },
    })
    // anne holds cond_role, public_role, team_role, can_x (all writable: structure) and via_parent, can_y (computed: actions).
    for (const r of ['cond_role', 'public_role', 'team_role', 'can_x', 'via_parent', 'can_y']) expect(await s.check(`doc:d#${r}@user:anne`), r).toBe(true)
    const res = await search('action', { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: 'd' }, page: { limit: 3 } }, {}, s.storeId)
    expect(res.status, res.text).toBe(200)
    expect(res.body).toEqual({ page: { next_token: '', count: 2, total: 2 }, results: [{ name: 'can_y' }, { name: 'via_parent' }] })
    // Someone who holds nothing: no actions, and still never structure.
    const none = await search('action', { subject: { type: 'user', id: 'zoe' }, resource: { type: 'doc', id: 'd' } }, {}, s.storeId)
    expect(none.body.results).toEqual([])
  })

  it('§8.14 takes no action: one given is ignored', async () => {
    const res = await search('action', { subject: { type: 'user', id: 'dana' }, action: { name: 'owner' }, resource: { type: 'doc', id: 'plan' } })
    expect(res.status, res.text).toBe(200)
    expect(res.body.results).toEqual([{ name: 'can_edit' }, { name: 'can_view' }])
  })

  it('§8.15 every action found evaluates to true', async () => {
    for (const r of (await all('action', { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: 'plan' } })) as { name: string }[]) {
      expect(await check(`doc:plan#${r.name}@user:anne`)).toBe(true)
    }
  })
})

describe('subject and resource search (§8.13–§8.15)', () => {
  it('§8.15 subject search is transitive (group members) and sees through the parent; only users come back', async () => {
    const users = await all('subject', { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'plan' } })
    expect(users).toEqual([
      { type: 'user', id: 'anne' },
      { type: 'user', id: 'bob' },
      { type: 'user', id: 'carl' },
      { type: 'user', id: 'dana' },
    ])
    for (const u of users as { id: string }[]) expect(await check(`doc:plan#can_view@user:${u.id}`)).toBe(true)
  })

  it('§8.14 subject search of another type returns that type only (groups, not their users)', async () => {
    const res = await search('subject', { subject: { type: 'group' }, action: { name: 'viewer' }, resource: { type: 'doc', id: 'plan' } })
    expect(res.status, res.text).toBe(200)
    // `group:eng#member` is a userset, not a group: nothing of type group is a viewer itself.
    expect(res.body.results).toEqual([])
  })

  it('§8.15 a wildcard comes back as id "*"', async () => {
    expect(await all('subject', { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'public' } })).toEqual([
      { type: 'user', id: '*' },
      { type: 'user', id: 'erin' },
    ])
  })

  it('§8.15 resource search is transitive: a member of a nested group finds the document', async () => {
    // plan through group:backend ⊂ group:eng; public through its wildcard.
    expect(await all('resource', { subject: { type: 'user', id: 'bob' }, action: { name: 'can_view' }, resource: { type: 'doc' } })).toEqual([
      { type: 'doc', id: 'plan' },
      { type: 'doc', id: 'public' },
    ])
    // The wildcard grants anyone doc:public.
    expect(await all('resource', { subject: { type: 'user', id: 'erin' }, action: { name: 'can_view' }, resource: { type: 'doc' } })).toEqual([
      { type: 'doc', id: 'public' },
    ])
  })

  it('§8.15 every resource found evaluates to true', async () => {
    for (const who of ['anne', 'bob', 'carl']) {
      const found = (await all('resource', { subject: { type: 'user', id: who }, action: { name: 'can_view' }, resource: { type: 'doc' } })) as { id: string }[]
      expect(found.length).toBeGreaterThan(0)
      for (const r of found) expect(await check(`doc:${r.id}#can_view@user:${who}`)).toBe(true)
    }
  })

  it('§8.13 a searched id is ignored', async () => {
    const without = await search('resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_delete' }, resource: { type: 'doc' } })
    const withId = await search('resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_delete' }, resource: { type: 'doc', id: 'nope' } })
    expect(withId.status, withId.text).toBe(200)
    expect(withId.body).toEqual(without.body)
    expect(without.body.results).toEqual([{ type: 'doc', id: 'other' }, { type: 'doc', id: 'plan' }])
    const subjects = await search('subject', { subject: { type: 'user', id: 'zoe' }, action: { name: 'can_delete' }, resource: { type: 'doc', id: 'plan' } })
    expect(subjects.body.results).toEqual([{ type: 'user', id: 'anne' }])
  })

  it('§8.13 a missing type → 400 naming it', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: {} }, /resource\.type/],
      ['resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' } }, /resource/],
      ['subject', { subject: { id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'plan' } }, /subject\.type/],
      ['subject', { subject: { type: 'user' }, resource: { type: 'doc', id: 'plan' } }, /action/],
      ['action', { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc' } }, /resource\.id/],
      ['action', { subject: { type: 'user' }, resource: { type: 'doc', id: 'plan' } }, /subject\.id/],
    ]
    for (const [kind, body, field] of cases) {
      const res = await search(kind, body)
      expect(res.status, `${kind} ${JSON.stringify(body)}: ${res.text}`).toBe(400)
      expect(res.body.message).toMatch(field)
      expect(Object.keys(res.body).sort()).toEqual(['code', 'message'])
    }
  })

  it('unknown types and relations are 400, not empty answers', async () => {
    const a = await search('resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'report' } })
    expect(a.status, a.text).toBe(400)
    const b = await search('subject', { subject: { type: 'user' }, action: { name: 'can_fly' }, resource: { type: 'doc', id: 'plan' } })
    expect(b.status, b.text).toBe(400)
    const c = await search('action', { subject: { type: 'user', id: 'anne' }, resource: { type: 'report', id: 'x' } })
    expect(c.status, c.text).toBe(400)
  })
})

describe('pages and limits', () => {
  it('the default limit applies; count is always sent, total too; a single page has next_token ""', async () => {
    const res = await search('subject', { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'plan' } })
    expect(res.body.page).toMatchObject({ count: 2, total: 4 })
    expect(res.body.page.next_token).not.toBe('')
    const one = await search('resource', { subject: { type: 'user', id: 'carl' }, action: { name: 'can_view' }, resource: { type: 'doc' } })
    expect(one.text).toBe('{"page":{"next_token":"","count":2,"total":2},"results":[{"type":"doc","id":"plan"},{"type":"doc","id":"public"}]}')
    const none = await search('resource', { subject: { type: 'user', id: 'zoe' }, action: { name: 'can_edit' }, resource: { type: 'doc' } })
    expect(none.body).toEqual({ page: { next_token: '', count: 0, total: 0 }, results: [] })
  })

  it('limit 0 asks only for the size: no results, the total, next_token ""', async () => {
    const res = await search('subject', { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'plan' }, page: { limit: 0 } })
    expect(res.status, res.text).toBe(200)
    expect(res.body).toEqual({ page: { next_token: '', count: 0, total: 4 }, results: [] })
  })

  it('the page settings: defaults 100 / 1,000 / PT10M / 10,000 / 1,000 open / 32 MiB; a default limit above the maximum stops the start', () => {
    expect(loadConfig({ env: {} })).toMatchObject({
      authzenPageLimit: 100,
      authzenPageLimitMax: 1000,
      authzenPageTokenTtl: 'PT10M',
      authzenSearchMaxResults: 10_000,
      authzenSearchSnapshotsMax: 1000,
      authzenSearchCacheBytes: 33_554_432,
    })
    expect(loadConfig({ env: { PEMBA_AUTHZEN_SEARCH_CACHE_BYTES: '0' } }).authzenSearchCacheBytes).toBe(0)
    expect(() => loadConfig({ env: { PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX: '0' } })).toThrow(/PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX must be at least 1/)
    expect(() => loadConfig({ env: { PEMBA_AUTHZEN_PAGE_LIMIT: '500', PEMBA_AUTHZEN_PAGE_LIMIT_MAX: '100' } })).toThrow(
      /PEMBA_AUTHZEN_PAGE_LIMIT must not exceed PEMBA_AUTHZEN_PAGE_LIMIT_MAX \(100\)/,
    )
    expect(() => loadConfig({ env: { PEMBA_AUTHZEN_PAGE_TOKEN_TTL: '10m' } })).toThrow(/PEMBA_AUTHZEN_PAGE_TOKEN_TTL must be a positive ISO 8601 duration/)
  })

  it('a limit over PEMBA_AUTHZEN_PAGE_LIMIT_MAX, negative or not an integer → 400', async () => {
    for (const limit of [4, -1, 1.5, '2']) {
      const res = await search('subject', { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'plan' }, page: { limit } })
      expect(res.status, `${limit}: ${res.text}`).toBe(400)
      expect(res.body.message).toMatch(/page\.limit/)
    }
  })

  it('a search with more results than PEMBA_AUTHZEN_SEARCH_MAX_RESULTS → 400, never a partial list', async () => {
    const many = await setup(client, SEARCH_MODEL, Array.from({ length: 6 }, (_, i) => `doc:d${i}#viewer@user:anne`))
    const over = await search('resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc' } }, {}, many.storeId)
    expect(over.status, over.text).toBe(400)
    expect(over.body.code).toBe('exceeded_entity_limit')
    expect(over.body.message).toMatch(/more than 5 results/)
    // Paged too: the whole answer is refused, not cut to the first pages.
    const six = await search('resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc' }, page: { limit: 3 } }, {}, many.storeId)
    expect(six.status, six.text).toBe(400)
    // Exactly the maximum is fine.
    await client.request('POST', `/stores/${many.storeId}/write`, { deletes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'doc:d5' }] } })
    const ok = await search('resource', { subject: { type: 'user', id: 'anne' }, action: { name: 'can_view' }, resource: { type: 'doc' }, page: { limit: 3 } }, {}, many.storeId)
    expect(ok.status, ok.text).toBe(200)
    expect(ok.body.page).toMatchObject({ count: 3, total: 5 })
  })
})

describe('context, options and the model', () => {
  it('context.pemba.contextual_tuples count; properties and context reach conditions', async () => {
    const s = await setup(
      client,
      `model
  schema 1.1
type user
type doc
  relations
    define viewer: [user, user with in_team]
    define can_view: viewer
condition in_team(team: string, subject_team: string) {
  subject_team == team
}
`,
      [],
    )
    await client.request('POST', `/stores/${s.storeId}/write`, {
      writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'doc:ops', condition: { name: 'in_team', context: { team: 'ops' } } }] },
    })
    const q = (extra: Record<string, unknown>) =>
      search('resource', { subject: { type: 'user', id: 'anne', ...extra }, action: { name: 'can_view' }, resource: { type: 'doc' } }, {}, s.storeId)
    expect((await q({ properties: { team: 'ops' } })).body.results).toEqual([{ type: 'doc', id: 'ops' }])
    expect((await q({ properties: { team: 'dev' } })).body.results).toEqual([])
    const ctx = await search(
      'resource',
      {
        subject: { type: 'user', id: 'bob' },
        action: { name: 'can_view' },
        resource: { type: 'doc' },
        context: { pemba: { contextual_tuples: [{ user: 'user:bob', relation: 'viewer', object: 'doc:tmp' }] } },
      },
      {},
      s.storeId,
    )
    expect(ctx.status, ctx.text).toBe(200)
    expect(ctx.body.results).toEqual([{ type: 'doc', id: 'tmp' }])
    const bad = await search('resource', { subject: { type: 'user', id: 'bob' }, action: { name: 'can_view' }, resource: { type: 'doc' }, context: { pemba: { consistency: 'NOW' } } }, {}, s.storeId)
    expect(bad.status, bad.text).toBe(400)
    expect(bad.body.message).toMatch(/context\.pemba\.consistency/)
  })

  it('the Openfga-Authorization-Model-Id header pins a model, and is echoed', async () => {
    const s = await setup(client, SEARCH_MODEL, ['doc:plan#owner@user:anne'])
    const newer = await writeModel(
      client,
      s.storeId,
      SEARCH_MODEL.replace('define can_delete: owner', 'define can_delete: owner\n    define can_archive: owner'),
    )
    const body = { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: 'plan' } }
    const latest = await search('action', body, {}, s.storeId)
    expect(latest.headers.get('openfga-authorization-model-id')).toBe(newer)
    expect(latest.body.page.total).toBe(5)
    const pinned = await search('action', body, { 'Openfga-Authorization-Model-Id': s.modelId }, s.storeId)
    expect(pinned.status, pinned.text).toBe(200)
    expect(pinned.headers.get('openfga-authorization-model-id')).toBe(s.modelId)
    expect(pinned.body.page.total).toBe(4)
    // A token of one model is not good for another.
    const token = pinned.body.page.next_token
    const swapped = await client.request('POST', `/stores/${s.storeId}/access/v1/search/action`, { ...body, page: { token } })
    expect(swapped.status, swapped.text).toBe(400)
    expect(swapped.body.message).toMatch(/different search/)
  })

  it('a computed search is recorded in the decision log like a list-objects', async () => {
    const res = await search('resource', { subject: { type: 'user', id: 'bob' }, action: { name: 'can_view' }, resource: { type: 'doc' } }, { 'X-Request-Id': 'search-logged-1' })
    expect(res.status).toBe(200)
    await served.pemba.decisions.flush()
    const page = await client.request('GET', `/stores/${storeId}/decisions?subject=user:bob`)
    expect(page.status, page.text).toBe(200)
    const d = page.body.decisions.find((x: { request_id: string }) => x.request_id === 'search-logged-1')
    expect(d).toMatchObject({ kind: 'search', user: 'user:bob', relation: 'can_view', object: 'doc', allowed: true })
    expect(d.detail).toMatchObject({ search: 'resource', count: 2 })
  })

  it('subject and action searches are logged as kind search, with truthful fields', async () => {
    const subj = await search('subject', { subject: { type: 'user' }, action: { name: 'can_edit' }, resource: { type: 'doc', id: 'plan' } }, { 'X-Request-Id': 'search-logged-2' })
    expect(subj.status, subj.text).toBe(200)
    const act = await search('action', { subject: { type: 'user', id: 'dana' }, resource: { type: 'doc', id: 'plan' } }, { 'X-Request-Id': 'search-logged-3' })
    expect(act.status, act.text).toBe(200)
    await served.pemba.decisions.flush()
    const searches = await client.request('GET', `/stores/${storeId}/decisions?kind=search`)
    expect(searches.status, searches.text).toBe(200)
    const byId = (id: string) => searches.body.decisions.find((x: { request_id: string }) => x.request_id === id)
    // A subject search: the searched side is the type alone; the resource as asked.
    expect(byId('search-logged-2')).toMatchObject({ kind: 'search', user: 'user', relation: 'can_edit', object: 'doc:plan', allowed: true })
    expect(byId('search-logged-2').detail).toMatchObject({ search: 'subject', count: 2 })
    // An action search: the subject as asked, so an audit of user:dana finds it.
    const dana = await client.request('GET', `/stores/${storeId}/decisions?subject=user:dana`)
    const d = dana.body.decisions.find((x: { request_id: string }) => x.request_id === 'search-logged-3')
    expect(d).toMatchObject({ kind: 'search', user: 'user:dana', relation: '', object: 'doc:plan', allowed: true })
    expect(d.detail).toMatchObject({ search: 'action', count: 2 })
  })

  it('a delegated resource search refused by its chain keeps detail.denied_by', async () => {
    const s = await setup(
      client,
      `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type doc
  relations
    define reader: [user, agent]
`,
      ['doc:1#reader@agent:bot', 'doc:1#reader@user:alice', 'user:alice#acts_for@agent:bot'],
    )
    const body = (who: string) => ({
      subject: { type: 'agent', id: 'bot' },
      action: { name: 'reader' },
      resource: { type: 'doc' },
      context: { pemba: { on_behalf_of: [who] } },
    })
    expect((await search('resource', body('user:alice'), {}, s.storeId)).body.results).toEqual([{ type: 'doc', id: '1' }])
    const refused = await search('resource', body('user:bob'), { 'X-Request-Id': 'search-denied-1' }, s.storeId)
    expect(refused.status, refused.text).toBe(200)
    expect(refused.body.results).toEqual([])
    await served.pemba.decisions.flush()
    const page = await client.request('GET', `/stores/${s.storeId}/decisions?kind=search`)
    const d = page.body.decisions.find((x: { request_id: string }) => x.request_id === 'search-denied-1')
    expect(d).toMatchObject({ kind: 'search', user: 'agent:bot', allowed: false })
    expect(d.detail).toMatchObject({ search: 'resource', count: 0, denied_by: 'delegation' })
  })
})

describe('page tokens are read strictly (§8.17)', () => {
  it('an altered token → 400 invalid_continuation_token: padding, junk, a non-canonical last character', async () => {
    const body = { subject: { type: 'user' }, action: { name: 'can_view' }, resource: { type: 'doc', id: 'plan' } }
    const first = await search('subject', body)
    const token: string = first.body.page.next_token
    expect(token).not.toBe('')
    expect((await search('subject', { ...body, page: { token } })).status).toBe(200)
    const [payload, sig] = token.split('.')
    // The signature's last character has 2 spare bits: flip one, the decoded bytes stay the same.
    const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const sameBytes = sig.slice(0, -1) + last[last.indexOf(sig.at(-1)!) ^ 1]
    for (const altered of [`${token}=`, `${token}!`, `${payload}=.${sig}`, `${payload}.${sameBytes}`, ` ${token}`, `${payload}.${sig}.x`]) {
      const res = await search('subject', { ...body, page: { token: altered } })
      expect(res.status, `${altered}: ${res.text}`).toBe(400)
      expect(res.body.code).toBe('invalid_continuation_token')
    }
  })
})

describe('transport, deadline and the root paths', () => {
  it('a body not declared as JSON → 415; not an object → 400', async () => {
    const body = JSON.stringify({ subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: 'plan' } })
    const res = await fetch(`${served.url}/stores/${storeId}/access/v1/search/action`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
    expect(res.status).toBe(415)
    const arr = await search('action', '[1]', { 'content-type': 'application/json' })
    expect(arr.status, arr.text).toBe(400)
  })

  it('a search that does not finish within PEMBA_LIST_DEADLINE_MS fails as a whole (deadline_exceeded), never partial', async () => {
    const slow = await servePemba({ listDeadlineMs: 1, maxTuplesPerWrite: 1000 })
    try {
      const c = httpClient(slow)
      const s = await setup(c, SEARCH_MODEL)
      const keys = Array.from({ length: 3000 }, (_, i) => ({ user: 'user:anne', relation: 'viewer', object: `doc:d${i}` }))
      for (let i = 0; i < keys.length; i += 1000) {
        expect((await c.request('POST', `/stores/${s.storeId}/write`, { writes: { tuple_keys: keys.slice(i, i + 1000) } })).status).toBe(200)
      }
      // (Resource search: list-objects watches the deadline between candidates.)
      const res = await c.request('POST', `/stores/${s.storeId}/access/v1/search/resource`, {
        subject: { type: 'user', id: 'anne' },
        action: { name: 'can_view' },
        resource: { type: 'doc' },
      })
      expect(res.body.code, res.text).toBe('deadline_exceeded')
      // As a check past its deadline (the module comment of search.ts documents 500).
      expect(res.status).toBe(500)
      expect(res.body.message).toMatch(/did not complete within 1 ms .*no partial answer/)
      expect(res.body.results).toBeUndefined()
    } finally {
      await slow.close()
    }
  })

  it('with PEMBA_AUTHZEN_DEFAULT_STORE the searches answer at the root too, and page there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pemba-search-root-'))
    const databaseUrl = `sqlite:${join(dir, 'root.db')}`
    try {
      const first = await servePemba({ databaseUrl })
      const s = await setup(httpClient(first), SEARCH_MODEL, ['doc:a#owner@user:anne', 'doc:b#owner@user:anne', 'doc:c#owner@user:anne'])
      await first.close()
      const root = await servePemba({ databaseUrl, authzenDefaultStore: s.storeId })
      try {
        const c = httpClient(root)
        const body = { subject: { type: 'user', id: 'anne' }, action: { name: 'can_delete' }, resource: { type: 'doc' } }
        const p1 = await c.request('POST', '/access/v1/search/resource', { ...body, page: { limit: 2 } })
        expect(p1.status, p1.text).toBe(200)
        expect(p1.body.results).toEqual([{ type: 'doc', id: 'a' }, { type: 'doc', id: 'b' }])
        // The token is the store's: good at the root and under /stores/{id} alike.
        const p2 = await c.request('POST', `/stores/${s.storeId}/access/v1/search/resource`, { ...body, page: { limit: 2, token: p1.body.page.next_token } })
        expect(p2.status, p2.text).toBe(200)
        expect(p2.body).toEqual({ page: { next_token: '', count: 1, total: 3 }, results: [{ type: 'doc', id: 'c' }] })
      } finally {
        await root.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
