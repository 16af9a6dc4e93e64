/**
 * Explanations (`"explain": true` on check and batch-check) and witnesses: for an allowed
 * answer the witness path from the object to the subject, for a denied one every branch tried
 * and why it failed — for each rewrite operator, conditions, exclusion and delegation. An
 * explained check always gives the unexplained answer.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

const DOCS = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent
type document
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user, group#member]
    define editor: [user] or owner
    define approved: [user]
    define viewer: [user, user:*, group#member] or editor or viewer from parent
    define can_view: viewer but not blocked
    define can_publish: editor and approved
`

const DOC_TUPLES = [
  'group:g1#member@user:u1',
  'group:g7#member@group:g1#member',
  'folder:root#viewer@group:g7#member',
  'folder:f3#parent@folder:root',
  'document:d1#parent@folder:f3',
  'document:d2#owner@user:u2',
  'document:d2#approved@user:u2',
  'document:d3#viewer@user:u3',
  'document:d3#blocked@group:g1#member',
  'document:d3#viewer@group:g1#member',
  'document:pub#viewer@user:*',
]

async function explain(storeId: string, t: string, extra: Record<string, unknown> = {}) {
  const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey(t), explain: true, ...extra })
  expect(res.status, res.text).toBe(200)
  return res.body
}

describe('explained checks', () => {
  it('shows the witness path through tuple-to-userset and nested groups', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const r = await explain(storeId, 'document:d1#viewer@user:u1')
    expect(r.allowed).toBe(true)
    expect(r.explanation.allowed).toBe(true)
    expect(r.explanation.path).toEqual([
      'document:d1#viewer@user:u1',
      'viewer from parent',
      'document:d1#parent@folder:f3',
      'folder:f3#viewer@user:u1',
      'viewer from parent',
      'folder:f3#parent@folder:root',
      'folder:root#viewer@user:u1',
      'folder:root#viewer@group:g7#member',
      'group:g7#member@user:u1',
      'group:g7#member@group:g1#member',
      'group:g1#member@user:u1',
    ])
    // The witness: every stored tuple on the path, object first.
    expect(r.witness).toEqual([
      tupleKey('document:d1#parent@folder:f3'),
      tupleKey('folder:f3#parent@folder:root'),
      tupleKey('folder:root#viewer@group:g7#member'),
      tupleKey('group:g7#member@group:g1#member'),
      tupleKey('group:g1#member@user:u1'),
    ])
  })

  it('shows a computed userset and the direct tuple behind it', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const r = await explain(storeId, 'document:d2#viewer@user:u2')
    expect(r.allowed).toBe(true)
    expect(r.explanation.path).toEqual([
      'document:d2#viewer@user:u2',
      'computed from editor',
      'document:d2#editor@user:u2',
      'computed from owner',
      'document:d2#owner@user:u2',
    ])
    expect(r.witness).toEqual([tupleKey('document:d2#owner@user:u2')])
  })

  it('shows a wildcard tuple as the witness', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const r = await explain(storeId, 'document:pub#viewer@user:anyone')
    expect(r.allowed).toBe(true)
    expect(r.witness).toEqual([tupleKey('document:pub#viewer@user:*')])
  })

  it('shows both sides of an intersection, and the failing side when denied', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const yes = await explain(storeId, 'document:d2#can_publish@user:u2')
    expect(yes.allowed).toBe(true)
    expect(yes.explanation.tree.children[0].step).toBe('intersection')
    expect(yes.explanation.path).toContain('[1/2] document:d2#owner@user:u2')
    expect(yes.explanation.path).toContain('[2/2] document:d2#approved@user:u2')
    expect(yes.witness).toEqual([tupleKey('document:d2#owner@user:u2'), tupleKey('document:d2#approved@user:u2')])

    const no = await explain(storeId, 'document:d2#can_publish@user:u3')
    expect(no.allowed).toBe(false)
    expect(no.witness).toBeUndefined()
    expect(no.explanation.reasons.length).toBeGreaterThan(0)
    expect(no.explanation.reasons.join('\n')).toMatch(/document:d2#editor@user:u3 › direct: editor: no tuple document:d2#editor@user:u3/)
    // The intersection stopped at its first false side: the second was never evaluated.
    const inter = no.explanation.tree.children[0]
    expect(inter.step).toBe('intersection')
    expect(inter.children).toHaveLength(1)
  })

  it('says an exclusion denied because the subject is blocked, and which tuple blocks it', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const r = await explain(storeId, 'document:d3#can_view@user:u1')
    expect(r.allowed).toBe(false)
    const text = r.explanation.reasons.join('\n')
    expect(text).toContain(
      'document:d3#can_view@user:u1 › excluded: blocked holds (document:d3#blocked@group:g1#member, group:g1#member@user:u1)',
    )
    const blocked = JSON.stringify(r.explanation.tree)
    expect(blocked).toContain('document:d3#blocked@group:g1#member')

    const allowed = await explain(storeId, 'document:d3#can_view@user:u3')
    expect(allowed.allowed).toBe(true)
    expect(allowed.explanation.path).toContain('but not blocked: false')
    expect(allowed.witness).toEqual([tupleKey('document:d3#viewer@user:u3')])
  })

  it('lists every branch tried for a denied check', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const r = await explain(storeId, 'document:d1#viewer@user:nobody')
    expect(r.allowed).toBe(false)
    const reasons: string[] = r.explanation.reasons
    // direct tuples, the editor path (owner), and the parent chain up to the root folder
    expect(reasons.some((x) => x.includes('document:d1#viewer@user:nobody › direct: viewer: no tuple'))).toBe(true)
    expect(reasons.some((x) => x.includes('document:d1#owner@user:nobody'))).toBe(true)
    expect(reasons.some((x) => x.includes('folder:root#viewer@user:nobody'))).toBe(true)
    expect(reasons.some((x) => x.includes('group:g1#member@user:nobody › direct: member: no tuple'))).toBe(true)
    // Every userset looked into is in the tree, though only leaves carry reasons.
    expect(JSON.stringify(r.explanation.tree)).toContain('group:g7#member@user:nobody')
    expect(reasons.some((x) => x.includes('folder:root#viewer@user:nobody › viewer from parent: no folder:root#parent tuple leads to a viewer'))).toBe(true)
  })

  it('names the missing direct tuple beside the usersets tried', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const r = await explain(storeId, 'document:d3#viewer@user:nobody')
    expect(r.allowed).toBe(false)
    const reasons: string[] = r.explanation.reasons
    // The direct branch looked for the subject itself (and the wildcard) and found nothing:
    // said first, before the userset document:d3#viewer@group:g1#member that was looked into.
    expect(reasons[0]).toBe('document:d3#viewer@user:nobody › direct: viewer: no tuple document:d3#viewer@user:nobody or user:*')
    expect(reasons[1]).toBe('group:g1#member@user:nobody › direct: member: no tuple group:g1#member@user:nobody or <a userset containing it>')
  })

  it('explains an answer reached through a cycle', async () => {
    const { storeId } = await setup(
      client,
      `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
`,
      ['group:a#member@group:b#member', 'group:b#member@group:a#member'],
    )
    const r = await explain(storeId, 'group:a#member@user:x')
    expect(r.allowed).toBe(false)
    expect(JSON.stringify(r.explanation.tree)).toContain('"step":"cycle"')
  })
})

describe('explained conditions', () => {
  const MODEL = `model
  schema 1.1
type user
type account
  relations
    define caller: [user with in_network]
condition in_network(ip: ipaddress, cidr: string) {
  ip.in_cidr(cidr)
}
`
  it('shows the condition and its inputs when it holds, when it is false, and when a parameter is missing', async () => {
    const { storeId } = await setup(client, MODEL)
    const w = await client.request('POST', `/stores/${storeId}/write`, {
      writes: {
        tuple_keys: [
          { ...tupleKey('account:a1#caller@user:svc'), condition: { name: 'in_network', context: { cidr: '10.0.0.0/8' } } },
        ],
      },
    })
    expect(w.status, w.text).toBe(200)

    const yes = await explain(storeId, 'account:a1#caller@user:svc', { context: { ip: '10.1.2.3' } })
    expect(yes.allowed).toBe(true)
    const leaf = yes.explanation.tree.children[0].children[0]
    expect(leaf.condition).toEqual({ name: 'in_network', inputs: { ip: '10.1.2.3', cidr: '10.0.0.0/8' }, result: 'true' })
    expect(yes.explanation.path.join('\n')).toContain('condition in_network({"ip":"10.1.2.3","cidr":"10.0.0.0/8"}) = true')

    const no = await explain(storeId, 'account:a1#caller@user:svc', { context: { ip: '192.168.0.1' } })
    expect(no.allowed).toBe(false)
    expect(no.explanation.reasons.join('\n')).toContain(
      'condition in_network is false for {"ip":"192.168.0.1","cidr":"10.0.0.0/8"}',
    )

    // A missing parameter is the same 400 with or without explain.
    const plain = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('account:a1#caller@user:svc') })
    const explained = await client.request('POST', `/stores/${storeId}/check`, {
      tuple_key: tupleKey('account:a1#caller@user:svc'),
      explain: true,
    })
    expect(plain.status).toBe(400)
    expect(explained.status).toBe(400)
    expect(explained.body).toEqual(plain.body)
    expect(explained.body.message).toMatch(/context is missing parameters '\[ip\]'/)
  })
})

describe('explained delegated checks', () => {
  const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type customer_record
  relations
    define reader: [user, agent]
`
  it('says which hop, principal or actor failed, and shows every grant of an allowed answer', async () => {
    const { storeId } = await setup(client, MODEL, [
      'user:alice#acts_for@agent:summarizer',
      'customer_record:42#reader@user:alice',
      'customer_record:42#reader@agent:summarizer',
      'customer_record:43#reader@user:alice',
    ])
    const yes = await explain(storeId, 'customer_record:42#reader@agent:summarizer', { on_behalf_of: ['user:alice'] })
    expect(yes.allowed).toBe(true)
    expect(yes.explanation.path).toEqual(
      expect.arrayContaining([
        '[1/3] delegation: agent:summarizer acts for user:alice',
        '[2/3] principal user:alice has reader on customer_record:42',
        '[3/3] actor agent:summarizer has reader on customer_record:42',
      ]),
    )
    expect(yes.witness).toEqual([
      tupleKey('user:alice#acts_for@agent:summarizer'),
      tupleKey('customer_record:42#reader@user:alice'),
      tupleKey('customer_record:42#reader@agent:summarizer'),
    ])

    const actor = await explain(storeId, 'customer_record:43#reader@agent:summarizer', { on_behalf_of: ['user:alice'] })
    expect(actor).toMatchObject({ allowed: false, denied_by: 'actor' })
    expect(actor.explanation.reasons.join('\n')).toContain('no tuple customer_record:43#reader@agent:summarizer')

    const hop = await explain(storeId, 'customer_record:42#reader@agent:other', { on_behalf_of: ['user:alice'] })
    expect(hop).toMatchObject({ allowed: false, denied_by: 'delegation' })
    expect(hop.explanation.reasons.join('\n')).toContain('no tuple user:alice#acts_for@agent:other')
  })
})

describe('explained and unexplained answers agree', () => {
  it('for every subject, relation and object of the data set, in check and batch-check', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const users = ['user:u1', 'user:u2', 'user:u3', 'user:nobody', 'group:g1#member', 'group:g7#member']
    const objects = ['document:d1', 'document:d2', 'document:d3', 'document:pub', 'folder:f3', 'folder:root']
    let compared = 0
    for (const object of objects) {
      const type = object.split(':')[0]
      const relations = type === 'document' ? ['viewer', 'editor', 'can_view', 'can_publish', 'blocked'] : ['viewer']
      for (const relation of relations) {
        const checks = users.map((user, i) => ({ tuple_key: { user, relation, object }, correlation_id: String(i) }))
        const plain = await client.request('POST', `/stores/${storeId}/batch-check`, { checks })
        const explained = await client.request('POST', `/stores/${storeId}/batch-check`, {
          checks: checks.map((c) => ({ ...c, explain: true })),
        })
        expect(plain.status).toBe(200)
        expect(explained.status).toBe(200)
        for (const c of checks) {
          const p = plain.body.result[c.correlation_id]
          const e = explained.body.result[c.correlation_id]
          expect(e.allowed, `${object}#${relation}@${c.tuple_key.user}`).toBe(p.allowed)
          expect(e.explanation.allowed).toBe(p.allowed)
          // An allowed answer's witness holds only stored tuples, each of them real.
          for (const w of e.witness ?? []) {
            const read = await client.request('POST', `/stores/${storeId}/read`, { tuple_key: w })
            expect(read.body.tuples, JSON.stringify(w)).toHaveLength(1)
          }
          compared++
        }
      }
    }
    expect(compared).toBe(4 * 5 * users.length + 2 * users.length)
  })

  it('leaves contextual tuples out of the witness', async () => {
    const { storeId } = await setup(client, DOCS, ['group:g1#member@user:u9'])
    const r = await explain(storeId, 'document:x#viewer@user:u9', {
      contextual_tuples: { tuple_keys: [tupleKey('document:x#viewer@group:g1#member')] },
    })
    expect(r.allowed).toBe(true)
    expect(r.witness).toEqual([tupleKey('group:g1#member@user:u9')])
  })
})

describe('witnesses of unexplained checks', () => {
  it('are found by the upward userset walk and kept by the cross-request cache', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const expected = [
      tupleKey('document:d1#parent@folder:f3'),
      tupleKey('folder:f3#parent@folder:root'),
      tupleKey('folder:root#viewer@group:g7#member'),
      tupleKey('group:g7#member@group:g1#member'),
      tupleKey('group:g1#member@user:u1'),
    ]
    const ask = () =>
      client.pemba.checks.check(storeId, { tupleKey: tupleKey('document:d1#viewer@user:u1'), witness: true })
    const before = client.pemba.evaluation.cacheStats().hits
    expect((await ask()).witness).toEqual(expected)
    // The same question again is a cache hit at the top, and still names its witness.
    expect((await ask()).witness).toEqual(expected)
    expect(client.pemba.evaluation.cacheStats().hits).toBeGreaterThan(before)
    const denied = await client.pemba.checks.check(storeId, { tupleKey: tupleKey('document:d1#viewer@user:nobody'), witness: true })
    expect(denied).toMatchObject({ allowed: false })
    expect(denied.witness).toBeUndefined()
  })

  it('name every side of an intersection and the base of an exclusion', async () => {
    const { storeId } = await setup(client, DOCS, DOC_TUPLES)
    const publish = await client.pemba.checks.check(storeId, { tupleKey: tupleKey('document:d2#can_publish@user:u2'), witness: true })
    expect(publish.witness).toEqual([tupleKey('document:d2#owner@user:u2'), tupleKey('document:d2#approved@user:u2')])
    const view = await client.pemba.checks.check(storeId, { tupleKey: tupleKey('document:d3#can_view@user:u3'), witness: true })
    expect(view.witness).toEqual([tupleKey('document:d3#viewer@user:u3')])
  })
})
