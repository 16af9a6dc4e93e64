/**
 * The decision context of one AuthZEN evaluation, over HTTP against a real server: nothing
 * extra by default; Pemba's options under `context.pemba` (validated, never condition
 * parameters); reasons when asked (`context.pemba.explain` or `Pemba-Explain: true`), with a
 * machine-readable failed branch for each rewrite operator (direct, computed userset,
 * tuple-to-userset, union, intersection, exclusion, a false condition, a missing condition
 * parameter), for delegation, and a permit's witness path; ARAP's requestable denial and
 * approval verdict added by the decider; every evaluation in the decision log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AuthzenDecider } from '../../src/service/authzen/decider.ts'
import type { AuthzenEvaluation } from '../../src/service/authzen/types.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { serveHttp, type HttpClient } from './core-fixture.ts'

const DSL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type group
  relations
    define member: [user, agent]
type folder
  relations
    define viewer: [user, group#member]
    define archivist: [user]
type doc
  relations
    define parent: [folder]
    define owner: [user, agent]
    define editor: [user, agent] or owner
    define can_edit: editor
    define viewer: [user, user with in_office, group#member] or editor or viewer from parent
    define door: [group#member with in_office]
    define approved: [user]
    define publisher: editor and approved
    define blocked: [user]
    define reader: viewer but not blocked
    define archivist: archivist from parent
    define grantee: [user, agent]
    define grantee_approver: [user]
condition in_office(office: string) {
  office == "zanzibar"
}`

const TUPLES = [
  'doc:d1#parent@folder:f1',
  'doc:d1#owner@user:bob',
  'doc:d1#blocked@user:bob',
  'folder:f1#viewer@group:g#member',
  'doc:d2#owner@agent:helper',
  'doc:d2#owner@user:dana',
  'user:dana#acts_for@agent:helper',
]

let client: HttpClient
let storeId: string

beforeAll(async () => {
  client = await serveHttp({ decisionLogFlushMs: 5 })
  storeId = await createStore(client, 'decision-context')
  await writeModel(client, storeId, DSL)
  await writeTuples(client, storeId, TUPLES)
  const conditional = await client.request('POST', `/stores/${storeId}/write`, {
    writes: {
      tuple_keys: [
        { user: 'user:carl', relation: 'viewer', object: 'doc:d1', condition: { name: 'in_office' } },
        { user: 'group:g#member', relation: 'door', object: 'doc:d1', condition: { name: 'in_office' } },
      ],
    },
  })
  expect(conditional.status, conditional.text).toBe(200)
})
afterAll(async () => {
  await client?.close()
})

type Who = [type: string, id: string]
function evaluation(who: string | Who, action: string, doc = 'd1', context?: Record<string, unknown>): Record<string, unknown> {
  const [type, id] = typeof who === 'string' ? ['user', who] : who
  const e: Record<string, unknown> = { subject: { type, id }, action: { name: action }, resource: { type: 'doc', id: doc } }
  if (context) e.context = context
  return e
}

async function evaluate(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, body, headers)
  expect(res.status, res.text).toBe(200)
  return res.body as { decision: boolean; context?: Record<string, any> }
}

/** explain evaluates with `context.pemba.explain: true` (plus `context`). */
function explain(who: string | Who, action: string, doc = 'd1', context: Record<string, unknown> = {}) {
  return evaluate(evaluation(who, action, doc, { ...context, pemba: { ...(context.pemba as object), explain: true } }))
}

describe('the plain decision', () => {
  it('§8.1 is exactly {decision} with nothing extra unless asked, permit or deny', async () => {
    expect(await evaluate(evaluation('bob', 'editor'))).toEqual({ decision: true })
    expect(await evaluate(evaluation('alice', 'editor'))).toEqual({ decision: false })
    // A context of condition parameters only adds nothing either.
    expect(await evaluate(evaluation('carl', 'viewer', 'd1', { office: 'zanzibar' }))).toEqual({ decision: true })
    expect(await evaluate(evaluation('carl', 'viewer', 'd1', { office: 'home' }))).toEqual({ decision: false })
  })

  it('records every evaluation in the decision log as a check marked authzen', async () => {
    const ref = evaluation('alice', 'owner', 'd1')
    ;(ref.subject as Record<string, string>).id = 'logged'
    await evaluate(ref)
    await client.pemba.decisions.flush()
    const res = await client.request('GET', `/stores/${storeId}/decisions?page_size=100`)
    expect(res.status, res.text).toBe(200)
    const mine = res.body.decisions.filter((d: any) => d.user === 'user:logged')
    expect(mine).toHaveLength(1)
    expect(mine[0]).toMatchObject({ kind: 'check', relation: 'owner', object: 'doc:d1', allowed: false, detail: { authzen: true } })
  })
})

describe("Pemba's options in context.pemba", () => {
  it('a wrong type is a 400 naming context.pemba.<key>, and changes nothing', async () => {
    for (const [pemba, field] of [
      [{ explain: 'yes' }, 'context.pemba.explain'],
      [{ consistency: 'FASTEST' }, 'context.pemba.consistency'],
      [{ contextual_tuples: { user: 'user:x' } }, 'context.pemba.contextual_tuples'],
      [{ contextual_tuples: [{ user: 'user:x', relation: 1, object: 'doc:d1' }] }, 'context.pemba.contextual_tuples[0].relation'],
      [{ on_behalf_of: 'user:dana' }, 'context.pemba.on_behalf_of'],
      ['explain', 'context.pemba'],
    ] as const) {
      const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('alice', 'viewer', 'd1', { pemba }))
      expect(res.status, res.text).toBe(400)
      expect(res.body.message).toContain(field)
    }
  })

  it('contextual tuples and consistency apply; unknown keys are ignored; pemba is no condition parameter', async () => {
    const contextual = { contextual_tuples: [{ user: 'user:alice', relation: 'editor', object: 'doc:d1' }] }
    expect(await evaluate(evaluation('alice', 'can_edit', 'd1', { pemba: contextual }))).toEqual({ decision: true })
    expect(await evaluate(evaluation('alice', 'can_edit', 'd1', { pemba: { consistency: 'HIGHER_CONSISTENCY', future_option: 1 } }))).toEqual({
      decision: false,
    })
    // The condition still sees only its own parameters: `pemba` does not disturb `office`.
    expect(await evaluate(evaluation('carl', 'viewer', 'd1', { office: 'zanzibar', pemba: { consistency: 'MINIMIZE_LATENCY' } }))).toEqual({
      decision: true,
    })
  })

  it('contextual tuples are capped at /check’s 100: 101 is a 400 naming the field, 100 is fine', async () => {
    const tuples = (n: number) => Array.from({ length: n }, (_, i) => ({ user: `user:u${i}`, relation: 'editor', object: 'doc:d1' }))
    const over = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('alice', 'viewer', 'd1', { pemba: { contextual_tuples: tuples(101) } }))
    expect(over.status, over.text).toBe(400)
    expect(over.body.message).toContain('context.pemba.contextual_tuples: at most 100')
    expect(await evaluate(evaluation('u99', 'can_edit', 'd1', { pemba: { contextual_tuples: tuples(100) } }))).toEqual({ decision: true })
  })

  it('a contextual tuple keeps its expires_at, as on /check: an expired one grants nothing', async () => {
    const key = { user: 'user:alice', relation: 'editor', object: 'doc:d1' }
    const past = { ...key, expires_at: '2001-01-01T00:00:00Z' }
    expect(await evaluate(evaluation('alice', 'can_edit', 'd1', { pemba: { contextual_tuples: [past] } }))).toEqual({ decision: false })
    const future = { ...key, expires_at: '2999-01-01T00:00:00Z' }
    expect(await evaluate(evaluation('alice', 'can_edit', 'd1', { pemba: { contextual_tuples: [future] } }))).toEqual({ decision: true })
    const bad = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('alice', 'can_edit', 'd1', { pemba: { contextual_tuples: [{ ...key, expires_at: 5 }] } }))
    expect(bad.status, bad.text).toBe(400)
    expect(bad.body.message).toContain('context.pemba.contextual_tuples[0].expires_at')
  })

  it('an empty on_behalf_of and a bad consistency name the field and every accepted value', async () => {
    const empty = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('alice', 'viewer', 'd1', { pemba: { on_behalf_of: [] } }))
    expect(empty.status, empty.text).toBe(400)
    expect(empty.body.message).toContain('context.pemba.on_behalf_of')
    const bad = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('alice', 'viewer', 'd1', { pemba: { consistency: 'FAST' } }))
    expect(bad.body.message).toContain('UNSPECIFIED')
  })

  it('consistency is applied: the decision log records HIGHER_CONSISTENCY', async () => {
    await evaluate(evaluation('consistent', 'owner', 'd1', { pemba: { consistency: 'HIGHER_CONSISTENCY' } }))
    await client.pemba.decisions.flush()
    const res = await client.request('GET', `/stores/${storeId}/decisions?page_size=100`)
    const mine = res.body.decisions.filter((d: any) => d.user === 'user:consistent')
    expect(mine).toEqual([expect.objectContaining({ consistency: 'HIGHER_CONSISTENCY', allowed: false })])
  })

  it('a bad contextual tuple is the model’s 400', async () => {
    const pemba = { contextual_tuples: [{ user: 'user:alice', relation: 'no_such', object: 'doc:d1' }] }
    const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('alice', 'viewer', 'd1', { pemba }))
    expect(res.status, res.text).toBe(400)
  })
})

describe('reasons, only when asked', () => {
  it('the Pemba-Explain header asks as context.pemba.explain does; a permit carries its witness path', async () => {
    const byHeader = await evaluate(evaluation('bob', 'viewer'), { 'Pemba-Explain': 'true' })
    const byContext = await explain('bob', 'viewer')
    expect(byHeader).toEqual(byContext)
    expect(byHeader.decision).toBe(true)
    expect(byHeader.context!.reason).toBeUndefined()
    expect(byHeader.context!.pemba.explanation.path).toEqual([
      'doc:d1#viewer@user:bob',
      'computed from editor',
      'doc:d1#editor@user:bob',
      'computed from owner',
      'doc:d1#owner@user:bob',
    ])
    expect(byHeader.context!.pemba.explanation.tree.allowed).toBe(true)
  })

  it('the header and context.pemba.explain are OR’d: explain false in the context does not turn the header off', async () => {
    const d = await evaluate(evaluation('alice', 'owner', 'd1', { pemba: { explain: false } }), { 'Pemba-Explain': 'true' })
    expect(d.context!.reason).toBe('no_path')
    expect(await evaluate(evaluation('alice', 'owner', 'd1', { pemba: { explain: false } }))).toEqual({ decision: false })
  })

  it('a denial has a machine code, an admin text keyed by 403 and the failed branches', async () => {
    const d = await explain('alice', 'owner')
    expect(d.decision).toBe(false)
    expect(d.context!.reason).toBe('no_path')
    expect(d.context!.reason_user).toEqual({ '403': 'access denied' })
    expect(Object.keys(d.context!.reason_admin)).toEqual(['403'])
    expect(d.context!.reason_admin['403']).toContain('doc:d1#owner@user:alice')
    expect(d.context!.pemba.explanation.failed).toEqual([
      { operator: 'direct', via: [], object: 'doc:d1', relation: 'owner', cause: 'no_tuple', detail: 'no tuple doc:d1#owner@user:alice' },
    ])
    expect(d.context!.pemba.explanation.reasons).toHaveLength(1)
  })

  it('computed userset: the failure sits under `computed`, on the computed relation', async () => {
    const failed = (await explain('alice', 'can_edit')).context!.pemba.explanation.failed
    expect(failed.map((f: any) => [f.operator, f.via, `${f.object}#${f.relation}`, f.cause])).toEqual([
      ['direct', ['computed', 'union'], 'doc:d1#editor', 'no_tuple'],
      ['direct', ['computed', 'union', 'computed'], 'doc:d1#owner', 'no_tuple'],
    ])
  })

  it('union: every branch failed, each listed under the union (direct, computed, tuple-to-userset)', async () => {
    const failed = (await explain('alice', 'viewer')).context!.pemba.explanation.failed
    expect(failed.every((f: any) => f.via[0] === 'union')).toBe(true)
    const where = failed.map((f: any) => `${f.via.join('>')} ${f.operator} ${f.object}#${f.relation}`)
    expect(where).toEqual([
      'union direct doc:d1#viewer',
      'union>computed>union direct doc:d1#editor',
      'union>computed>union>computed direct doc:d1#owner',
      'union>tuple_to_userset>direct direct folder:f1#viewer',
      'union>tuple_to_userset>direct direct group:g#member',
    ])
  })

  it('tuple-to-userset: no tupleset tuple at all is the tuple_to_userset operator’s own failure', async () => {
    const d = await explain('alice', 'archivist', 'd9')
    expect(d.context!.pemba.explanation.failed).toEqual([
      expect.objectContaining({ operator: 'tuple_to_userset', via: [], object: 'doc:d9', relation: 'archivist', cause: 'no_tupleset_tuple' }),
    ])
  })

  it('intersection: only the side that failed is listed, under the intersection', async () => {
    const d = await explain('bob', 'publisher')
    expect(d.context!.reason).toBe('no_path')
    expect(d.context!.pemba.explanation.failed).toEqual([
      expect.objectContaining({ operator: 'direct', via: ['intersection', 'computed'], object: 'doc:d1', relation: 'approved', cause: 'no_tuple' }),
    ])
  })

  it('exclusion: the `but not` branch held', async () => {
    const d = await explain('bob', 'reader')
    expect(d.context!.pemba.explanation.failed).toEqual([
      expect.objectContaining({ operator: 'exclusion', via: [], object: 'doc:d1', relation: 'reader', cause: 'excluded' }),
    ])
    expect(d.context!.pemba.explanation.failed[0].detail).toContain('blocked holds')
  })

  it('a condition that is false, with the inputs it saw', async () => {
    const d = await explain('carl', 'viewer', 'd1', { office: 'home' })
    const cond = d.context!.pemba.explanation.failed.filter((f: any) => f.operator === 'condition')
    expect(cond).toEqual([
      expect.objectContaining({
        via: ['union', 'direct'],
        object: 'doc:d1',
        relation: 'viewer',
        cause: 'condition_false',
        condition: { name: 'in_office', inputs: { office: 'home' }, result: 'false' },
      }),
    ])
  })

  it('a missing condition parameter on a userset tuple is a failed condition; on a direct tuple a 400', async () => {
    const d = await explain('alice', 'door')
    expect(d.decision).toBe(false)
    expect(d.context!.pemba.explanation.failed).toEqual(
      expect.arrayContaining([expect.objectContaining({ operator: 'condition', relation: 'door', cause: 'condition_missing_parameters' })]),
    )
    // As OpenFGA: a condition that decides the answer and cannot be evaluated is the caller's mistake.
    const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('carl', 'viewer'))
    expect(res.status, res.text).toBe(400)
    expect(res.body.message).toContain('office')
  })

  it('delegation: denied_by_delegation when the hop is missing, denied_by_principal when the principal lacks it', async () => {
    const hop = await explain(['agent', 'helper'], 'owner', 'd2', { pemba: { on_behalf_of: ['user:erin'] } })
    expect(hop.decision).toBe(false)
    expect(hop.context!.reason).toBe('denied_by_delegation')
    expect(hop.context!.pemba.explanation.denied_by).toBe('delegation')
    expect(hop.context!.pemba.explanation.failed[0]).toMatchObject({ via: ['intersection', 'delegation'], object: 'user:erin', relation: 'acts_for', cause: 'no_tuple' })

    const principal = await explain(['agent', 'helper'], 'owner', 'd1', { pemba: { on_behalf_of: ['user:dana'] } })
    expect(principal.context!.reason).toBe('denied_by_principal')
    expect(principal.context!.pemba.explanation.denied_by).toBe('principal')

    // Allowed through the chain; without explain, nothing extra.
    expect(await evaluate(evaluation(['agent', 'helper'], 'owner', 'd2', { pemba: { on_behalf_of: ['user:dana'] } }))).toEqual({ decision: true })
  })
})

describe('ARAP hooks', () => {
  it('§8.27 a requestable denial advertises access_request always; a relation nobody approves stays bare', async () => {
    const d = await evaluate(evaluation('alice', 'grantee'))
    expect(d.decision).toBe(false)
    expect(d.context!.access_request.expires_at).toEqual(expect.any(String))
    expect(d.context!.access_request.endpoint).toBe(`${client.url}/stores/${storeId}/access/v1/requests`)
    expect(d.context!.access_request.binding_token).toEqual(expect.any(String))
    expect(d.context!.evaluation_id).toEqual(expect.any(String))
    expect(d.context!.reason).toBe('no_path')
    expect(await evaluate(evaluation('alice', 'approved'))).toEqual({ decision: false })
  })

  it('§8.41 a forged approval on a denial: approval_unverifiable, next_action none, nothing to request', async () => {
    const approval = { id: 'req-1', approved_until: '2099-01-01T00:00:00Z', state: 'not.a.jws' }
    const d = await evaluate(evaluation('alice', 'grantee', 'd1', { approval }))
    expect(d.decision).toBe(false)
    expect(d.context).toEqual({ reason: 'approval_unverifiable', next_action: 'none' })
    // A permit is decided by the model; an approval that does not apply adds nothing.
    expect(await evaluate(evaluation('bob', 'owner', 'd1', { approval }))).toEqual({ decision: true })
  })
})

describe('ARAP beside delegation', () => {
  it('§8.27 a delegated denial is never advertised as requestable: an approval binds the subject alone', async () => {
    // The subject alone could request it…
    expect((await evaluate(evaluation(['agent', 'helper'], 'grantee'))).context!.access_request).toEqual(expect.any(Object))
    // …but not a denial of its chain on behalf of dana.
    const delegated = evaluation(['agent', 'helper'], 'grantee', 'd1', { pemba: { on_behalf_of: ['user:dana'] } })
    expect(await evaluate(delegated)).toEqual({ decision: false })
    const explained = await explain(['agent', 'helper'], 'grantee', 'd1', { pemba: { on_behalf_of: ['user:dana'] } })
    expect(explained.context!.reason).toMatch(/^denied_by_/)
    expect(explained.context!.access_request).toBeUndefined()
  })

  it('an approval beside a delegated denial: the denial’s own reason and next_action none', async () => {
    const approval = { id: 'req-1', approved_until: '2099-01-01T00:00:00Z', state: 'not.a.jws' }
    const d = await evaluate(evaluation(['agent', 'helper'], 'grantee', 'd1', { approval, pemba: { on_behalf_of: ['user:dana'] } }))
    expect(d).toEqual({ decision: false, context: { reason: expect.stringMatching(/^denied_by_/), next_action: 'none' } })
  })
})

describe('the plain path', () => {
  /** A decider over the server's real services, counting what the plain path must not call. */
  function countingDecider() {
    const p = client.pemba
    const calls = { resolve: 0, requestableDenial: 0, checkInputs: [] as Record<string, unknown>[] }
    const decider = new AuthzenDecider({
      checks: { check: (store, input, meta) => (calls.checkInputs.push({ ...input }), p.checks.check(store, input, meta)) },
      tokenChecks: p.tokenChecks,
      models: { known: (s, id) => p.models.known(s, id), resolve: (...a) => (calls.resolve++, p.models.resolve(...a)) },
      advisor: {
        isRequestable: (ts, e) => p.authzenBinding.isRequestable(ts, e),
        requestableDenial: (...a) => (calls.requestableDenial++, p.authzenBinding.requestableDenial(...a)),
        checkApproval: (...a) => p.authzenBinding.checkApproval(...a),
      },
    })
    return { decider, calls }
  }
  const asked = (id: string, action: string, context?: Record<string, unknown>): AuthzenEvaluation => ({
    subject: { type: 'user', id },
    action: { name: action },
    resource: { type: 'doc', id: 'd1' },
    ...(context ? { context } : {}),
  })

  it('a context without reserved members, {} included, is the plain check; a bare denial asks no advisor and no model', async () => {
    await evaluate(evaluation('alice', 'owner')) // the model is cached
    const { decider, calls } = countingDecider()
    for (const context of [undefined, {}, { office: 'x' }]) {
      expect(await decider.decide(storeId, asked('alice', 'owner', context), { pdp: () => 'http://pdp' })).toEqual({ decision: false })
    }
    expect(calls.requestableDenial).toBe(0)
    expect(calls.resolve).toBe(0)
    // The check's own query: no consistency, no contextual tuples, no explain; `{}` gives no condition context.
    expect(calls.checkInputs.map((i) => Object.keys(i).filter((k) => i[k] !== undefined).sort())).toEqual([
      ['tupleKey'],
      ['tupleKey'],
      ['context', 'tupleKey'],
    ])
    // A requestable denial does ask the advisor.
    const d = await decider.decide(storeId, asked('alice', 'grantee', {}), { pdp: () => 'http://pdp' })
    expect(d.context!.access_request).toEqual(expect.any(Object))
    expect(calls.requestableDenial).toBe(1)
  })
})

describe('§3 who sees the details of an explained decision', () => {
  const key = (name: string) => `key-${name}-0123456789abcdef`
  let authed: HttpClient
  let store: string

  beforeAll(async () => {
    const names = ['root', 'checker', 'reader']
    authed = await serveHttp(
      { authMode: 'preshared', authPresharedKeys: names.map((n) => `${n}=${key(n)}`).join(','), authAdminClients: 'root' },
      { authorization: `Bearer ${key('root')}` },
    )
    store = await createStore(authed, 'details')
    await writeModel(authed, store, DSL)
    await writeTuples(authed, store, TUPLES)
    // The reader evaluates too, so it holds checker as well.
    for (const [client, role] of [['checker', 'checker'], ['reader', 'checker'], ['reader', 'reader']]) {
      const r = await authed.request('POST', '/system/grants', { client: `client:${client}`, role, store })
      expect(r.status, r.text).toBe(200)
    }
  })
  afterAll(async () => {
    await authed?.close()
  })

  const explainAs = async (who: string) => {
    const res = await authed.request('POST', `/stores/${store}/access/v1/evaluation`, evaluation('alice', 'owner'), {
      authorization: `Bearer ${key(who)}`,
      'Pemba-Explain': 'true',
    })
    expect(res.status, res.text).toBe(200)
    return res.body as { decision: boolean; context: Record<string, any> }
  }

  it('a checker gets reason and reason_user only: no reason_admin, no explanation tree', async () => {
    const d = await explainAs('checker')
    expect(d).toEqual({ decision: false, context: { reason: 'no_path', reason_user: { '403': 'access denied' } } })
    expect(JSON.stringify(d)).not.toContain('doc:d1#')
  })

  it('a reader of the store, and a system admin, get reason_admin and the explanation', async () => {
    for (const who of ['reader', 'root']) {
      const d = await explainAs(who)
      expect(d.context.reason).toBe('no_path')
      expect(d.context.reason_user).toEqual({ '403': 'access denied' })
      expect(d.context.reason_admin['403']).toContain('doc:d1#owner@user:alice')
      expect(d.context.pemba.explanation.failed).toHaveLength(1)
    }
  })

  it('the same rule holds for every item of a batch', async () => {
    const batchAs = async (who: string) => {
      const res = await authed.request(
        'POST',
        `/stores/${store}/access/v1/evaluations`,
        { ...evaluation('alice', 'owner'), evaluations: [{}, {}] },
        { authorization: `Bearer ${key(who)}`, 'Pemba-Explain': 'true' },
      )
      expect(res.status, res.text).toBe(200)
      return (res.body as { evaluations: { decision: boolean; context: Record<string, any> }[] }).evaluations
    }
    for (const d of await batchAs('checker')) {
      expect(d).toEqual({ decision: false, context: { reason: 'no_path', reason_user: { '403': 'access denied' } } })
    }
    for (const d of await batchAs('reader')) {
      expect(d.context.reason_admin['403']).toContain('doc:d1#owner@user:alice')
      expect(d.context.pemba.explanation.failed).toHaveLength(1)
    }
  })
})
