/**
 * Least-privilege reviews through the HTTP API and the CLI: an agent with five grants uses two
 * of them (its checks' witnesses mark them used), and the review finds the other three, with
 * ready-made delete bodies that revoke them; grants newer than the window are not called
 * unused; identities of a type rank by unused share; reach agrees with list-objects.
 * A fake clock drives time.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { reviewCommand } from '../../src/cli/review.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey, writeTuples } from '../helpers/fixtures.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'

const MODEL = `model
  schema 1.1
type user
type agent
type team
  relations
    define member: [user, agent]
type folder
  relations
    define viewer: [user, agent, team#member]
type doc
  relations
    define parent: [folder]
    define owner: [user, agent]
    define reader: [user, agent, agent:*, team#member] or owner or viewer from parent
`

/** agent:bot's five grants. */
const BOT_GRANTS = [
  'doc:1#reader@agent:bot',
  'doc:2#reader@agent:bot',
  'doc:3#owner@agent:bot',
  'folder:f#viewer@agent:bot',
  'team:t#member@agent:bot',
]
const OTHERS = [
  'doc:4#parent@folder:f',
  'doc:5#reader@team:t#member',
  'doc:6#reader@agent:helper',
  'doc:7#reader@agent:helper',
  'doc:8#reader@agent:*',
  'doc:9#owner@user:alice',
]

const DAY = 86_400_000
let T0 = Date.parse('2026-10-01T09:00:00Z')
let now: number
let client: TestClient

async function review(storeId: string, query: string) {
  const res = await client.request('GET', `/stores/${storeId}/access-review?${query}`)
  expect(res.status, res.text).toBe(200)
  return res.body
}

/** The scenario: five grants to agent:bot at T0; 31 days later it uses two of them. */
async function scenario(config: Partial<PembaConfig>) {
  client = await createTestClient(config, { clock: () => new Date(now), sweeper: false })
  const s = await setup(client, MODEL, [...BOT_GRANTS, ...OTHERS])
  now = T0 + 31 * DAY
  expect(await s.check('doc:1#reader@agent:bot')).toBe(true) // doc:1#reader@agent:bot
  expect(await s.check('doc:4#reader@agent:bot')).toBe(true) // folder:f#viewer@agent:bot, via doc:4's parent
  expect(await s.check('doc:6#reader@agent:helper')).toBe(true)
  expect(await s.check('doc:7#reader@agent:bot')).toBe(false)
  await client.pemba.decisions.flush()
  return s
}

describe('reviews (SQLite)', () => suite(() => ({})))
const target = await probePostgres()
describePostgres('reviews (PostgreSQL)', target, () => {
  const url = usePostgresSchema(target)
  suite(() => ({ databaseUrl: url() }))
})

function suite(config: () => Partial<PembaConfig>) {
  beforeEach(() => {
    now = T0
  })
  afterEach(async () => {
    await client?.close()
  })

  it('finds the three grants an agent did not use, and revokes them with the bodies it gives', async () => {
    const { storeId, check } = await scenario(config())
    now = T0 + 31 * DAY + 3_600_000
    const r = await review(storeId, 'user=agent:bot&unused_for=P30D')
    expect(r.user).toBe('agent:bot')
    expect(r.unused_for).toBe('P30D')
    expect(r.unused_since).toBe(new Date(now - 30 * DAY).toISOString().replace('.000Z', 'Z'))
    expect(r.continuation_token).toBe('')
    const byKey = new Map(r.grants.map((g: any) => [`${g.tuple_key.object}#${g.tuple_key.relation}@${g.tuple_key.user}`, g]))
    expect([...byKey.keys()].sort()).toEqual([...BOT_GRANTS].sort())
    const used = r.grants.filter((g: any) => !g.unused)
    const unused = r.grants.filter((g: any) => g.unused)
    expect(used.map((g: any) => g.tuple_key.object).sort()).toEqual(['doc:1', 'folder:f'])
    for (const g of used) {
      expect(g.reason).toBe('used within the window')
      expect(g.last_used_at).toBe(new Date(T0 + 31 * DAY).toISOString().replace('.000Z', 'Z'))
      expect(g.delete_request).toBeUndefined()
    }
    expect(unused.map((g: any) => g.tuple_key.object).sort()).toEqual(['doc:2', 'doc:3', 'team:t'])
    for (const g of unused) {
      expect(g).toMatchObject({ unused: true, reason: 'never used', last_used_at: null, granted_at: '2026-10-01T09:00:00Z' })
      expect(g.delete_request).toEqual({ deletes: { tuple_keys: [g.tuple_key] } })
      const res = await client.request('POST', `/stores/${storeId}/write`, g.delete_request)
      expect(res.status, res.text).toBe(200)
    }
    expect(await check('doc:2#reader@agent:bot')).toBe(false)
    expect(await check('doc:5#reader@agent:bot')).toBe(false)
    const after = await review(storeId, 'user=agent:bot')
    expect(after.grants.map((g: any) => g.tuple_key.object).sort()).toEqual(['doc:1', 'folder:f'])
    expect(after.grants.every((g: any) => !g.unused)).toBe(true)
  })

  it('does not call a grant unused before it has had the whole window, and ages used grants out of it', async () => {
    const { storeId } = await scenario(config())
    // Looking back only a week from day 31: the grants are older than that, two were used.
    now = T0 + 31 * DAY
    const week = await review(storeId, 'user=agent:bot&unused_for=P7D')
    expect(week.grants.filter((g: any) => g.unused)).toHaveLength(3)
    // Looking back 60 days: every grant is newer than the window; two were used in it anyway.
    const long = await review(storeId, 'user=agent:bot&unused_for=P60D')
    expect(long.grants.map((g: any) => [g.tuple_key.object, g.unused, g.reason])).toEqual([
      ['doc:1', false, 'used within the window'],
      ['doc:2', false, 'granted within the window'],
      ['doc:3', false, 'granted within the window'],
      ['folder:f', false, 'used within the window'],
      ['team:t', false, 'granted within the window'],
    ])
    // Day 70, window 30 days: the two uses (day 31) are before it now.
    now = T0 + 70 * DAY
    const later = await review(storeId, 'user=agent:bot')
    expect(later.unused_for).toBe('P30D')
    const reasons = later.grants.map((g: any) => `${g.tuple_key.object}:${g.reason}`).sort()
    expect(reasons).toEqual([
      'doc:1:not used within the window',
      'doc:2:never used',
      'doc:3:never used',
      'folder:f:not used within the window',
      'team:t:never used',
    ])
    expect(later.grants.every((g: any) => g.unused && g.delete_request)).toBe(true)
  })

  it('reviews wildcards and usersets as identities, and pages', async () => {
    const { storeId } = await scenario(config())
    now = T0 + 40 * DAY
    const wildcard = await review(storeId, `user=${encodeURIComponent('agent:*')}`)
    expect(wildcard.grants.map((g: any) => g.tuple_key)).toEqual([{ user: 'agent:*', relation: 'reader', object: 'doc:8' }])
    const team = await review(storeId, `user=${encodeURIComponent('team:t#member')}`)
    expect(team.grants.map((g: any) => g.tuple_key.object)).toEqual(['doc:5'])
    const pages: string[] = []
    let token = ''
    do {
      const p = await review(storeId, `user=agent:bot&page_size=2${token ? `&continuation_token=${token}` : ''}`)
      expect(p.grants.length).toBeLessThanOrEqual(2)
      pages.push(...p.grants.map((g: any) => g.tuple_key.object))
      token = p.continuation_token
    } while (token)
    expect(pages).toEqual(['doc:1', 'doc:2', 'doc:3', 'folder:f', 'team:t'])
  })

  it('ranks the identities of a type by unused share', async () => {
    const { storeId } = await scenario(config())
    // agent:idle: two grants never used; agent:fresh: granted yesterday (not judged).
    now = T0 + DAY
    await writeTuples(client, storeId, ['doc:10#reader@agent:idle', 'doc:11#reader@agent:idle'])
    now = T0 + 31 * DAY
    await writeTuples(client, storeId, ['doc:12#reader@agent:fresh'])
    now = T0 + 32 * DAY
    const r = await review(storeId, 'user_type=agent&unused_for=P30D')
    expect(r).toMatchObject({ user_type: 'agent', unused_for: 'P30D', continuation_token: '' })
    expect(r.identities).toEqual([
      { user: 'agent:*', grants: 1, unused: 1, unused_share: 1 },
      { user: 'agent:idle', grants: 2, unused: 2, unused_share: 1 },
      { user: 'agent:bot', grants: 5, unused: 3, unused_share: 0.6 },
      { user: 'agent:helper', grants: 2, unused: 1, unused_share: 0.5 },
      { user: 'agent:fresh', grants: 1, unused: 0, unused_share: 0 },
    ])
    const paged: unknown[] = []
    let token = ''
    do {
      const p = await review(storeId, `user_type=agent&unused_for=P30D&page_size=2${token ? `&continuation_token=${token}` : ''}`)
      paged.push(...p.identities)
      token = p.continuation_token
    } while (token)
    expect(paged).toEqual(r.identities)
  })

  it('refuses bad review requests with a 400', async () => {
    const { storeId } = await scenario(config())
    const bad = [
      '',
      'user=agent:bot&user_type=agent',
      'user=agent:bot&unused_for=P1M',
      'user=agent:bot&unused_for=PT0S',
      'user=agent:bot&unused_for=30d',
      'user=bot',
      'user_type=agent:x',
      'user=agent:bot&page_size=0',
      'user=agent:bot&continuation_token=zzz',
    ]
    for (const q of bad) {
      const res = await client.request('GET', `/stores/${storeId}/access-review?${q}`)
      expect(res.status, q).toBe(400)
      expect(typeof res.body.code).toBe('string')
    }
    // A token of one identity's review does not continue another's.
    const p = await review(storeId, 'user=agent:bot&page_size=1')
    const other = await client.request('GET', `/stores/${storeId}/access-review?user=agent:helper&continuation_token=${p.continuation_token}`)
    expect(other.status).toBe(400)
    const missing = await client.request('GET', '/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ/access-review?user=agent:bot')
    expect(missing.status).toBe(404)
    for (const q of ['', 'user=bot', 'user=robot:x']) {
      const res = await client.request('GET', `/stores/${storeId}/reach?${q}`)
      expect(res.status, q).toBe(400)
    }
  })

  it('reach counts what list-objects lists, for every type and relation', async () => {
    const { storeId, modelId } = await scenario(config())
    for (const user of ['agent:bot', 'agent:helper', 'user:alice', 'team:t#member']) {
      const res = await client.request('GET', `/stores/${storeId}/reach?user=${encodeURIComponent(user)}`)
      expect(res.status, res.text).toBe(200)
      expect(res.body.user).toBe(user)
      expect(res.body.authorization_model_id).toBe(modelId)
      const expected: [string, string][] = [
        ['team', 'member'],
        ['folder', 'viewer'],
        ['doc', 'parent'],
        ['doc', 'owner'],
        ['doc', 'reader'],
      ]
      expect(res.body.relations.map((e: any) => [e.type, e.relation])).toEqual(expected)
      for (const e of res.body.relations) {
        const listed = await client.request('POST', `/stores/${storeId}/list-objects`, { type: e.type, relation: e.relation, user })
        expect(listed.status, listed.text).toBe(200)
        expect(e.count, `${user} ${e.type}#${e.relation}`).toBe(listed.body.objects.length)
        expect([...e.objects].sort()).toEqual([...listed.body.objects].sort())
        expect(e.truncated).toBe(false)
      }
    }
    const bot = (await client.request('GET', `/stores/${storeId}/reach?user=agent:bot`)).body
    const reader = bot.relations.find((e: any) => e.relation === 'reader')
    // doc:1, doc:2 direct; doc:3 as owner; doc:4 via folder:f; doc:5 via team:t; doc:8 via agent:*.
    expect([...reader.objects].sort()).toEqual(['doc:1', 'doc:2', 'doc:3', 'doc:4', 'doc:5', 'doc:8'])
  })
}

describe('reach, cut by the list limit', () => {
  afterEach(async () => {
    await client?.close()
  })

  it('says when a count was truncated', async () => {
    now = T0
    client = await createTestClient({ listMaxResults: 2 }, { clock: () => new Date(now), sweeper: false })
    const { storeId } = await setup(client, MODEL, [...BOT_GRANTS, ...OTHERS])
    const res = await client.request('GET', `/stores/${storeId}/reach?user=agent:bot`)
    const reader = res.body.relations.find((e: any) => e.type === 'doc' && e.relation === 'reader')
    expect(reader).toMatchObject({ count: 2, truncated: true, truncated_by: 'max_results' })
    expect(reader.objects).toHaveLength(2)
    const owner = res.body.relations.find((e: any) => e.type === 'doc' && e.relation === 'owner')
    expect(owner).toMatchObject({ count: 1, objects: ['doc:3'], truncated: false })
  })
})

describe('pemba review (CLI)', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pemba-review-'))
    // The command reads the real clock: the scenario is laid out relative to it.
    T0 = Date.now() - 40 * DAY
    now = T0
  })
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('prints the review as aligned tables', async () => {
    const databaseUrl = `sqlite:${join(dir, 'pemba.db')}`
    const { storeId } = await scenario({ databaseUrl })
    await client.close()
    client = undefined as unknown as TestClient
    const run = async (args: string[]) => {
      const out: string[] = []
      const err: string[] = []
      const code = await reviewCommand(args, { PEMBA_DATABASE_URL: databaseUrl }, {
        log: (s) => out.push(s),
        error: (s) => err.push(s),
      })
      return { code, out: out.join('\n'), err: err.join('\n') }
    }

    const one = await run(['--store', storeId, '--user', 'agent:bot', '--unused-for', 'P30D'])
    expect(one.err).toBe('')
    expect(one.code).toBe(0)
    const lines = one.out.split('\n')
    expect(lines[0]).toMatch(/^Access review of agent:bot in store \w{26}: grants unused for P30D \(since /)
    const header = lines.find((l) => l.startsWith('OBJECT'))!
    expect(header).toMatch(/^OBJECT\s+RELATION\s+GRANTED\s+LAST USED\s+STATUS$/)
    const rows = lines.slice(lines.indexOf(header) + 1, lines.indexOf(header) + 6)
    // Aligned: every row's STATUS column starts where the header's does.
    const col = header.indexOf('STATUS')
    for (const r of rows) expect(r.slice(col - 2, col)).toBe('  ')
    expect(rows.filter((r) => r.includes('UNUSED (never used)')).map((r) => r.split(/\s+/)[0]).sort()).toEqual([
      'doc:2',
      'doc:3',
      'team:t',
    ])
    expect(one.out).toContain('3 of 5 grants unused.')
    const body = JSON.parse(lines[lines.length - 1].trim())
    expect(body.deletes.tuple_keys).toHaveLength(3)

    const type = await run(['--store', storeId, '--user-type', 'agent'])
    expect(type.code).toBe(0)
    const typeLines = type.out.split('\n')
    const h = typeLines.indexOf(typeLines.find((l) => l.startsWith('USER'))!)
    expect(typeLines.slice(h).map((l) => l.split(/\s+/))).toEqual([
      ['USER', 'GRANTS', 'UNUSED', 'SHARE'],
      ['agent:*', '1', '1', '100%'],
      ['agent:bot', '5', '3', '60%'],
      ['agent:helper', '2', '1', '50%'],
    ])

    expect((await run(['--user', 'agent:bot'])).code).toBe(2)
    expect((await run(['--store', storeId, '--user', 'agent:bot', '--user-type', 'agent'])).code).toBe(2)
    expect((await run(['--store', storeId, '--user', 'agent:bot', '--unused-for', 'P1M'])).code).toBe(2)
    const bad = await run(['--store', storeId, '--user', 'bot'])
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/invalid user 'bot'/)
  })
})
