/**
 * The Access Request Service of AuthZEN's access-request profile, rule by rule (checklist
 * §8.30–37, 42–45), over real HTTP with authentication on: binding verification, expiry and
 * replay, Idempotency-Key, who may see and cancel a task, cancellation, the actor chain, and
 * problem+json for every refusal. The flow end to end is arap-flow.test.ts.
 */
import { SignJWT, decodeJwt, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { keyOf } from '../helpers/auth.ts'
import {
  DSL,
  MINUTE,
  PROBLEM,
  T0,
  doc,
  expectProblem,
  requestable,
  startArap,
  submit,
  user,
  type Arap,
} from './arap-support.ts'

const as = (name: string) => ({ authorization: `Bearer ${keyOf(name)}` })
const PEP = as('pep')
const OTHER = as('other')

let a: Arap

beforeAll(async () => {
  a = await startArap(
    { authMode: 'preshared', authPresharedKeys: ['root', 'pep', 'other'].map((n) => `${n}=${keyOf(n)}`).join(','), authAdminClients: 'root' },
    as('root'),
  )
  for (const client of ['pep', 'other']) {
    const g = await a.call('POST', '/system/grants', { client, role: 'checker', store: a.store })
    expect(g.status, g.text).toBe(200)
  }
})
afterAll(() => a.close())
beforeEach(() => {
  a.clock.now = T0
})

/** A fresh requestable denial of maria's viewer on plan-7 (each has its own binding token), evaluated by `client`. */
const mariaDenial = (context?: Record<string, unknown>, client = PEP) => requestable(a, user('maria'), 'viewer', doc(), context, client)
const task = (id: string) => `/stores/${a.store}/access/v1/requests/${id}`

describe('submission: the denial binding', () => {
  it('§8.30 §8.45 a binding that does not match the submission is 400 invalid_denial_binding', async () => {
    const body = await mariaDenial({ ip: '10.0.0.1' })
    const denial = body.denial as Record<string, string>
    const bad = async (over: Record<string, unknown>, detail: RegExp) =>
      expectProblem(await submit(a, { ...body, ...over }, PEP), 400, 'invalid_denial_binding', detail)
    const [h, p, s] = denial.binding_token.split('.')
    const flipped = `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`
    await bad({ denial: { ...denial, binding_token: flipped } }, /does not verify/)
    await bad({ denial: { ...denial, binding_token: 'not-a-jws' } }, /does not verify/)
    await bad({ subject: user('mallory') }, /subject/)
    await bad({ resource: doc('plan-8') }, /resource/)
    await bad({ action: { name: 'editor' } }, /action/)
    // A bound context member may not change, nor go; members may be added (a justification).
    await bad({ context: { ip: '10.0.0.2' } }, /context\.ip/)
    await bad({ context: { justification: 'x' } }, /context\.ip/)
    await bad({ denial: { ...denial, expires_at: '2026-12-01T10:00:00Z' } }, /expires_at/)
    await bad({ denial: { ...denial, evaluation_id: '01JZZZZZZZZZZZZZZZZZZZZZZZ' } }, /evaluation_id/)
    // The same denial, untouched: accepted, with a justification added.
    const ok = await submit(a, { ...body, context: { ip: '10.0.0.1', justification: 'audit' } }, PEP)
    expect(ok.status, ok.text).toBe(202)
  })

  it('§8.31 a denial with only an evaluation_id is refused: Pemba records no evaluation, the binding token is required', async () => {
    const body = await mariaDenial()
    const { binding_token: _t, ...denial } = body.denial as Record<string, string>
    expectProblem(await submit(a, { ...body, denial }, PEP), 400, 'invalid_denial_binding', /binding_token is required/)
  })

  it('§8.30 a late submission is 410 expired_denial', async () => {
    const body = await mariaDenial()
    a.clock.now = T0 + 10 * MINUTE
    expectProblem(await submit(a, body, PEP), 410, 'expired_denial')
  })

  it('§8.30 a relation no longer requestable is 400 not_requestable, and nothing is stored', async () => {
    const body = await mariaDenial()
    const model = await a.call('POST', `/stores/${a.store}/authorization-models`, DSL.replace('    define viewer_approver: [team#member]\n', ''), {
      'content-type': 'text/plain',
    })
    expect(model.status, model.text).toBe(201)
    const pending = async () => (await a.call('GET', `/stores/${a.store}/access-requests?status=pending&page_size=100`)).body.access_requests.length
    const before = await pending()
    try {
      expectProblem(await submit(a, body, PEP), 400, 'not_requestable', /cannot be requested/)
      expect(await pending()).toBe(before)
    } finally {
      const back = await a.call('POST', `/stores/${a.store}/authorization-models`, DSL, { 'content-type': 'text/plain' })
      expect(back.status, back.text).toBe(201)
    }
  })

  it('§8.30 one denial makes one task, for the client that evaluated: another client cannot take it', async () => {
    const body = await mariaDenial()
    expect(decodeJwt((body.denial as Record<string, string>).binding_token).pemba_client).toBe('client:pep')
    // A binding token seen by another client (a log, a browser) is not its denial to request.
    expectProblem(await submit(a, body, OTHER), 400, 'invalid_denial_binding', /another API client/)
    expect((await submit(a, body, PEP)).status).toBe(202)
    expectProblem(await submit(a, body, PEP), 400, 'invalid_denial_binding', /already been submitted/)
    expectProblem(await submit(a, body, OTHER), 400, 'invalid_denial_binding', /another API client/)
  })
})

describe('submission: Idempotency-Key', () => {
  it('§8.32 the same key and body are the same task (even after the denial expired); another body is 409 duplicate_request', async () => {
    const body = await mariaDenial()
    const key = { ...PEP, 'idempotency-key': 'order-4711' }
    const first = await submit(a, body, key)
    expect(first.status, first.text).toBe(202)
    // Member order does not make another body.
    const reordered = Object.fromEntries(Object.entries(body).reverse())
    const again = await submit(a, reordered, key)
    expect(again.status, again.text).toBe(202)
    expect(again.body).toEqual(first.body)
    expect(again.headers.get('location')).toBe(first.headers.get('location'))
    a.clock.now = T0 + 30 * MINUTE
    expect((await submit(a, body, key)).body.task.id).toBe(first.body.task.id)
    expectProblem(await submit(a, { ...body, context: { justification: 'other' } }, key), 409, 'duplicate_request')
    const pending = await a.call('GET', `/stores/${a.store}/access-requests?status=pending`)
    expect(pending.body.access_requests.filter((r: { id: string }) => r.id === first.body.task.id)).toHaveLength(1)
    // Keys are per client: another client's same key is its own, neither read nor refused.
    a.clock.now = T0
    const others = await submit(a, await mariaDenial(undefined, OTHER), { ...OTHER, 'idempotency-key': 'order-4711' })
    expect(others.status, others.text).toBe(202)
    expect(others.body.task.id).not.toBe(first.body.task.id)
  })

  it('§8.33 §8.32 a replayed key whose task has ended answers 201 with the task and its result', async () => {
    const body = await mariaDenial()
    const key = { ...PEP, 'idempotency-key': 'order-4712' }
    const first = await submit(a, body, key)
    expect(first.status, first.text).toBe(202)
    const id = first.body.task.id as string
    const approve = await a.call('POST', `/stores/${a.store}/access-requests/${id}/approve`, { approver: 'user:rita' })
    expect(approve.status, approve.text).toBe(200)
    const replay = await submit(a, body, key)
    expect(replay.status, replay.text).toBe(201)
    expect(replay.headers.get('retry-after')).toBeNull()
    expect(replay.headers.get('location')).toBe(first.headers.get('location'))
    expect(replay.body.task).toMatchObject({ id, status: 'approved' })
    expect(replay.body.result).toMatchObject({ mode: 'reevaluate', approval: { id } })
    // Withdraw the grant: later tests ask for maria's viewer again.
    const del = await a.call('POST', `/stores/${a.store}/write`, {
      deletes: { tuple_keys: [{ user: 'user:maria', relation: 'viewer', object: 'document:plan-7' }] },
    })
    expect(del.status, del.text).toBe(200)
  })

  it('§8.45 a malformed Idempotency-Key is 400 invalid_request', async () => {
    const body = await mariaDenial()
    expectProblem(await submit(a, body, { ...PEP, 'idempotency-key': 'x'.repeat(256) }), 400, 'invalid_request', /Idempotency-Key/)
  })
})

describe('tasks: who sees them, cancellation', () => {
  it('§8.36 a task is visible only to the client that submitted it; unknown and foreign tasks are 404 unknown_task', async () => {
    const r = await submit(a, await mariaDenial(), PEP)
    const id = r.body.task.id as string
    expect((await a.call('GET', task(id), undefined, PEP)).status).toBe(200)
    expectProblem(await a.call('GET', task(id), undefined, OTHER), 404, 'unknown_task')
    // Not even the store's admin: read and cancel are authorised per task.
    expectProblem(await a.call('GET', task(id)), 404, 'unknown_task')
    expectProblem(await a.call('POST', `${task(id)}/cancel`, {}, OTHER), 404, 'unknown_task')
    expect((await a.call('GET', task(id), undefined, PEP)).body.task.status).toBe('pending')
    expectProblem(await a.call('GET', task('01JZZZZZZZZZZZZZZZZZZZZZZZ'), undefined, PEP), 404, 'unknown_task')
    // An id that is no ULID is not echoed back.
    const odd = await a.call('GET', task('not-a-task'), undefined, PEP)
    expectProblem(odd, 404, 'unknown_task')
    expect(odd.body.detail).not.toContain('not-a-task')
    // A request made through Pemba's own API is no task of this profile.
    const jit = await a.call('POST', `/stores/${a.store}/access-requests`, {
      tuple_key: { user: 'user:maria', relation: 'viewer', object: 'document:plan-7' },
      duration: 'PT1H',
      reason: 'direct',
    })
    expect(jit.status, jit.text).toBe(201)
    expectProblem(await a.call('GET', task(jit.body.id)), 404, 'unknown_task')
    // Authentication is the server's, before the route: Pemba's {code, message}.
    const anonymous = await a.call('GET', task(id), undefined, { authorization: '' })
    expect(anonymous.status).toBe(401)
    expect(anonymous.body.code).toBeDefined()
  })

  it('§8.37 cancelling a pending task answers it cancelled; a terminal task is 409 invalid_task_state', async () => {
    const r = await submit(a, await mariaDenial(), PEP)
    const id = r.body.task.id as string
    a.clock.now += MINUTE
    const cancelled = await a.call('POST', `${task(id)}/cancel`, { reason: 'no longer needed', comment: 'ticket closed' }, PEP)
    expect(cancelled.status, cancelled.text).toBe(200)
    expect(cancelled.body).toEqual({
      task: { id, status: 'cancelled', status_endpoint: `${a.pdp}/access/v1/requests/${id}`, expires_at: '2026-12-02T09:01:00Z' },
    })
    expect((await a.call('GET', task(id), undefined, PEP)).body).toEqual(cancelled.body)
    expectProblem(await a.call('POST', `${task(id)}/cancel`, undefined, PEP), 409, 'invalid_task_state', /cancelled/)
    // A body must be declared JSON, also on cancel.
    const undeclared = await a.call('POST', `${task(id)}/cancel`, '{"reason":"x"}', { ...PEP, 'content-type': 'text/plain' })
    expect(undeclared.status, undeclared.text).toBe(415)
    expect(undeclared.headers.get('content-type')).toBe(PROBLEM)
    // Pemba's own view: cancelled, with who and why; approvers can no longer decide it.
    const jit = await a.call('GET', `/stores/${a.store}/access-requests/${id}`)
    expect(jit.body.status).toBe('cancelled')
    expect(jit.body.events.at(-1)).toEqual({ type: 'cancelled', actor: 'client:pep', at: '2026-12-01T09:01:00Z', reason: 'no longer needed: ticket closed' })
    const listed = await a.call('GET', `/stores/${a.store}/access-requests?status=cancelled`)
    expect(listed.body.access_requests.map((x: { id: string }) => x.id)).toContain(id)
    const approve = await a.call('POST', `/stores/${a.store}/access-requests/${id}/approve`, { approver: 'user:rita' })
    expect(approve.status).toBe(409)
    expect(approve.body.code).toBe('access_request_cancelled')
    // A denied task is terminal too.
    const d = await submit(a, await mariaDenial(), PEP)
    expect((await a.call('POST', `/stores/${a.store}/access-requests/${d.body.task.id}/deny`, { approver: 'user:rita' })).status).toBe(200)
    expect((await a.call('GET', task(d.body.task.id), undefined, PEP)).body.task.status).toBe('denied')
    expectProblem(await a.call('POST', `${task(d.body.task.id)}/cancel`, {}, PEP), 409, 'invalid_task_state', /denied/)
  })
})

describe('submission: the actor chain', () => {
  const ISS = 'https://idp.example'
  let privateKey: CryptoKey
  let forger: CryptoKey
  let jwk: JWK

  beforeAll(async () => {
    const k = await generateKeyPair('ES256', { extractable: true })
    privateKey = k.privateKey
    jwk = { ...(await exportJWK(k.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }
    forger = (await generateKeyPair('ES256')).privateKey
    const put = await a.call('PUT', `/stores/${a.store}/token-issuers/idp`, {
      issuer: ISS,
      audience: 'pemba',
      jwks: { keys: [jwk] },
      subject_type: 'user',
      actor_type: 'agent',
    })
    expect(put.status, put.text).toBe(201)
  })

  const mint = (claims: JWTPayload, key = privateKey) => {
    const iat = Math.floor(a.clock.now / 1000)
    return new SignJWT({ iss: ISS, aud: 'pemba', iat, exp: iat + 600, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).sign(key)
  }

  it('§8.43 actors named without a verified credential covering the whole chain are refused with 400 invalid_request', async () => {
    const helperForMaria = await mint({ sub: 'maria', act: { sub: 'helper', act: { sub: 'planner' } } })
    const refuse = async (extra: Record<string, unknown>, detail: RegExp, subject = user('maria')) => {
      const body = { ...(await mariaDenial()), subject, ...extra }
      expectProblem(await submit(a, body, PEP), 400, 'invalid_request', detail)
    }
    const chain = { id: 'helper', act: { sub: 'planner' } }
    await refuse({ client: { actor: chain } }, /no context\.subject_token/)
    await refuse({}, /no context\.subject_token/, user('maria', { act: { sub: 'helper' } }))
    await refuse({ client: { actor: chain }, context: { subject_token: await mint({ sub: 'maria', act: { sub: 'helper', act: { sub: 'planner' } } }, forger) } }, /does not verify \(token_invalid\)/)
    await refuse({ client: { actor: chain }, context: { subject_token: await mint({ sub: 'bob', act: { sub: 'helper', act: { sub: 'planner' } } }) } }, /speaks for user:bob/)
    // Only part of the chain, or another actor: not covered.
    await refuse({ client: { actor: { id: 'helper' } }, context: { subject_token: helperForMaria } }, /does not cover/)
    await refuse({ client: { actor: { id: 'intruder', act: { sub: 'planner' } } }, context: { subject_token: helperForMaria } }, /does not cover/)
    await refuse({ client: { actor: chain }, context: { subject_token: await mint({ sub: 'maria' }) } }, /does not cover/)
    await refuse({ client: { actor: chain }, context: { subject_token: helperForMaria } }, /does not cover/, user('maria', { act: { sub: 'planner' } }))
    // The right ids, but a type or an issuer the verified token does not carry.
    await refuse({ client: { actor: { ...chain, type: 'user' } }, context: { subject_token: helperForMaria } }, /does not cover \(id, type and issuer\)/)
    await refuse({ client: { actor: { ...chain, issuer: 'https://evil' } }, context: { subject_token: helperForMaria } }, /does not cover/)
    await refuse({ context: { subject_token: helperForMaria } }, /does not cover/, user('maria', { act: { sub: 'helper', iss: 'https://evil', act: { sub: 'planner' } } }))
  })

  it('§8.43 a claimed actor whose type and issuer are the token\'s is accepted', async () => {
    const token = await mint({ sub: 'maria', act: { sub: 'helper', act: { sub: 'planner' } } })
    const actor = { id: 'helper', type: 'agent', issuer: ISS, act: { sub: 'planner', iss: ISS } }
    const ok = await submit(a, { ...(await mariaDenial()), client: { actor }, context: { subject_token: token } }, PEP)
    expect(ok.status, ok.text).toBe(202)
  })

  it('an actor chain whose issuer key set cannot be fetched is 503 (an outage), not the caller\'s 400', async () => {
    const down = 'https://down.example'
    const put = await a.call('PUT', `/stores/${a.store}/token-issuers/down`, {
      issuer: down,
      audience: 'pemba',
      jwks_uri: 'https://127.0.0.1:9/keys',
      subject_type: 'user',
      actor_type: 'agent',
    })
    expect(put.status, put.text).toBe(201)
    try {
      const token = await mint({ iss: down, sub: 'maria', act: { sub: 'helper' } })
      const r = await submit(a, { ...(await mariaDenial()), client: { actor: { id: 'helper' } }, context: { subject_token: token } }, PEP)
      expect(r.status, r.text).toBe(503)
      expect(r.headers.get('content-type')).toBe(PROBLEM)
      expect(r.body).toMatchObject({ type: 'about:blank', status: 503, code: 'unavailable' })
    } finally {
      expect((await a.call('DELETE', `/stores/${a.store}/token-issuers/down`)).status).toBeLessThan(300)
    }
  })

  it('§8.43 a chain the subject_token carries is accepted; subject.properties.act does not count in the binding', async () => {
    const token = await mint({ sub: 'maria', act: { sub: 'helper', act: { sub: 'planner' } } })
    const body = await mariaDenial()
    const ok = await submit(a, { ...body, subject: user('maria', { act: { sub: 'helper', act: { sub: 'planner' } } }), client: { actor: { id: 'helper', act: { sub: 'planner' } } }, context: { subject_token: token } }, PEP)
    expect(ok.status, ok.text).toBe(202)
    expect(ok.body.task.status).toBe('pending')
  })
})

describe('submission: what is not supported, malformed bodies', () => {
  it('§8.44 §8.45 callbacks are refused clearly; malformed submissions are 400 invalid_request problems', async () => {
    const body = await mariaDenial()
    const bad = async (b: unknown, detail: RegExp) => expectProblem(await submit(a, b, PEP), 400, 'invalid_request', detail)
    await bad({ ...body, callback: { endpoint: 'https://pep.example/cb' } }, /callbacks are not supported/)
    await bad({ ...body, subject: undefined }, /subject/)
    await bad({ ...body, action: undefined }, /subject, action and resource/)
    await bad({ ...body, denial: undefined }, /denial is required/)
    await bad({ subject: body.subject, denial: body.denial, items: [] }, /items: 1 to 50/)
    await bad({ ...body, items: [{ resource: doc(), action: { name: 'viewer' } }] }, /not at the top level/)
    await bad({ ...body, requested_access: { requested_until: '2026-12-01T08:00:00Z' } }, /not in the future/)
    await bad({ ...body, requested_access: { requested_until: 'tomorrow' } }, /RFC 3339/)
    expectProblem(await submit(a, '[1]', { ...PEP, 'content-type': 'application/json' }), 400, 'invalid_request', /object/)
    const text = await a.call('POST', `/stores/${a.store}/access/v1/requests`, JSON.stringify(body), { ...PEP, 'content-type': 'text/plain' })
    expect(text.status).toBe(415)
    expect(text.headers.get('content-type')).toBe(PROBLEM)
    // Problem types pair with one status: a caller error that is no 400 is about:blank, with Pemba's code.
    expect(text.body).toMatchObject({ type: 'about:blank', status: 415 })
    // §8.18: the request id comes back on a refusal too.
    const traced = await submit(a, { ...body, callback: {} }, { ...PEP, 'x-request-id': 'trace-arap-1' })
    expect(traced.headers.get('x-request-id')).toBe('trace-arap-1')
    // None of them stored anything: the denial is still good for one task.
    expect((await submit(a, body, PEP)).status).toBe(202)
  })

  it('requested_until beyond PEMBA_JIT_MAX_DURATION is capped; none asks for an hour', async () => {
    const long = await submit(a, { ...(await mariaDenial()), requested_access: { requested_until: '2026-12-09T09:00:00Z' } }, PEP)
    expect((await a.call('GET', `/stores/${a.store}/access-requests/${long.body.task.id}`)).body.duration).toBe('PT8H')
    const plain = await submit(a, await mariaDenial(), PEP)
    expect((await a.call('GET', `/stores/${a.store}/access-requests/${plain.body.task.id}`)).body.duration).toBe('PT1H')
  })
})

describe('bulk submissions', () => {
  const item = (body: Record<string, any>) => ({ resource: body.resource, action: body.action, denial: body.denial })

  it('§8.34 items make one task: ordered items, each with its status and result; the aggregate status rule holds', async () => {
    const w = await a.call('POST', `/stores/${a.store}/write`, {
      writes: { tuple_keys: [{ user: 'team:reviewers#member', relation: 'viewer_approver', object: 'document:plan-8' }] },
    })
    expect(w.status, w.text).toBe(200)
    const [one, two] = [await mariaDenial(), await requestable(a, user('maria'), 'viewer', doc('plan-8'), undefined, PEP)]
    // One denial makes one access request, also within a bulk submission.
    expectProblem(await submit(a, { subject: user('maria'), items: [item(one), item(one)] }, PEP), 400, 'invalid_denial_binding', /items\[1\]/)
    // A bad item refuses the whole submission: nothing stored.
    const tampered = { ...item(two), resource: doc('plan-9') }
    expectProblem(await submit(a, { subject: user('maria'), items: [item(one), tampered] }, PEP), 400, 'invalid_denial_binding', /items\[1\]\.resource/)
    const r = await submit(a, { subject: user('maria'), items: [item(one), item(two)], context: { justification: 'both plans' } }, PEP)
    expect(r.status, r.text).toBe(202)
    const id = r.body.task.id as string
    expect(r.body.task).toMatchObject({ id, status: 'pending', links: { cancel: `${a.pdp}/access/v1/requests/${id}/cancel` } })
    expect(r.body.task.items).toEqual([
      { resource: doc(), action: { name: 'viewer' }, status: 'pending' },
      { resource: doc('plan-8'), action: { name: 'viewer' }, status: 'pending' },
    ])
    expect(r.body.result).toBeUndefined()
    // Each item is an access request of its own; only the first is the task's handle.
    const pending = await a.call('GET', `/stores/${a.store}/access-requests?status=pending&page_size=100`)
    const mine = pending.body.access_requests.filter((x: { reason: string }) => x.reason === 'both plans')
    expect(mine.map((x: { tuple_key: { object: string } }) => x.tuple_key.object)).toEqual(['document:plan-7', 'document:plan-8'])
    expectProblem(await a.call('GET', task(mine[1].id), undefined, PEP), 404, 'unknown_task')
    // One approved: still pending. Then the other denied: partial, the approved item with its result.
    expect((await a.call('POST', `/stores/${a.store}/access-requests/${mine[0].id}/approve`, { approver: 'user:rita' })).status).toBe(200)
    expect((await a.call('GET', task(id), undefined, PEP)).body.task.status).toBe('pending')
    expect((await a.call('POST', `/stores/${a.store}/access-requests/${mine[1].id}/deny`, { approver: 'user:rita' })).status).toBe(200)
    const partial = await a.call('GET', task(id), undefined, PEP)
    expect(partial.headers.get('retry-after')).toBeNull()
    expect(partial.body.task.status).toBe('partial')
    expect(partial.body.task.links).toBeUndefined()
    const [approvedItem, deniedItem] = partial.body.task.items
    expect(approvedItem).toMatchObject({ status: 'approved', result: { mode: 'reevaluate', approval: { id: mine[0].id } } })
    expect(deniedItem).toEqual({ resource: doc('plan-8'), action: { name: 'viewer' }, status: 'denied' })
    expect(partial.body.result).toBeUndefined()
    expectProblem(await a.call('POST', `${task(id)}/cancel`, {}, PEP), 409, 'invalid_task_state', /partial/)
    // The approval of the item permits its own evaluation.
    const reevaluated = await a.call('POST', `/stores/${a.store}/access/v1/evaluation`, {
      subject: user('maria'),
      action: { name: 'viewer' },
      resource: doc(),
      context: { approval: approvedItem.result.approval },
    })
    expect(reevaluated.body.decision).toBe(true)
    // Cancelling a pending bulk task cancels its items: all cancelled.
    const fresh = [
      await requestable(a, user('maria'), 'viewer', doc('plan-10'), undefined, PEP),
      await requestable(a, user('maria'), 'viewer', doc('plan-11'), undefined, PEP),
    ]
    const b = await submit(a, { subject: user('maria'), items: fresh.map(item) }, PEP)
    expect(b.status, b.text).toBe(202)
    const cancelled = await a.call('POST', `${task(b.body.task.id)}/cancel`, {}, PEP)
    expect(cancelled.status, cancelled.text).toBe(200)
    expect(cancelled.body.task.status).toBe('cancelled')
    expect(cancelled.body.task.items.map((x: { status: string }) => x.status)).toEqual(['cancelled', 'cancelled'])
  })
})
