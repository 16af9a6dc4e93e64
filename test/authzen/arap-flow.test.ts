/**
 * The access-request flow of AuthZEN's Access Request and Approval profile end to end, over
 * real HTTP (issue 18, "the access-request flow end to end"): evaluate → a requestable denial →
 * submit it with its binding token → 202 pending → poll → an approver approves through Pemba's
 * own endpoint → poll → approved with `result.approval` → re-evaluate with `context.approval` →
 * permitted; then the grant expires and the same approval no longer permits. On SQLite, and on
 * PostgreSQL when PEMBA_TEST_POSTGRES_URL is set.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import { describePostgres, probePostgres, usePostgresSchema } from '../helpers/postgres.ts'
import { HOUR, MINUTE, T0, doc, evaluate, expectProblem, requestable, startArap, submit, user, type Arap } from './arap-support.ts'

let a: Arap

function flow(config: () => Partial<PembaConfig>) {
  beforeEach(async () => {
    a = await startArap(config())
  })
  afterEach(() => a.close())

  it('§8.33 §8.38 evaluate, deny, request, poll, approve through Pemba, poll, re-evaluate with the approval; the grant expires', async () => {
    const maria = user('maria')
    const body = await requestable(a, maria, 'viewer', doc())
    const submitted = await submit(a, {
      ...body,
      context: { justification: 'quarterly review of plan 7' },
      requested_access: { requested_until: new Date(T0 + 30 * MINUTE).toISOString() },
      client: { id: 'portal', name: 'Self-service portal' },
    })
    expect(submitted.status, submitted.text).toBe(202)
    const task = submitted.body.task
    const endpoint = `${a.pdp}/access/v1/requests/${task.id}`
    expect(submitted.body).toEqual({
      task: {
        id: expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/),
        status: 'pending',
        status_endpoint: endpoint,
        expires_at: '2026-12-02T09:00:00Z',
        links: { cancel: `${endpoint}/cancel` },
      },
    })
    expect(submitted.headers.get('location')).toBe(endpoint)
    expect(submitted.headers.get('retry-after')).toBe('5')

    // Polling: still pending, told when to come back.
    a.clock.now += MINUTE
    const polled = await a.call('GET', `/stores/${a.store}/access/v1/requests/${task.id}`)
    expect(polled.status, polled.text).toBe(200)
    expect(polled.body.task.status).toBe('pending')
    expect(polled.headers.get('retry-after')).toBe('5')
    expect(polled.body.result).toBeUndefined()

    // The task is a Pemba access request: approvers see it, with the justification as its reason.
    const pending = await a.call('GET', `/stores/${a.store}/access-requests/${task.id}`)
    expect(pending.body).toMatchObject({
      tuple_key: { user: 'user:maria', relation: 'viewer', object: 'document:plan-7' },
      status: 'pending',
      reason: 'quarterly review of plan 7',
      duration: 'PT30M',
    })
    // Not granted yet: still a (requestable) denial.
    expect((await evaluate(a, maria, 'viewer', doc())).decision).toBe(false)

    const approved = await a.call('POST', `/stores/${a.store}/access-requests/${task.id}/approve`, { approver: 'user:rita', reason: 'ok' })
    expect(approved.status, approved.text).toBe(200)

    a.clock.now += MINUTE
    const done = await a.call('GET', endpoint.slice(a.served.url.length))
    expect(done.status, done.text).toBe(200)
    expect(done.headers.get('retry-after')).toBeNull()
    expect(done.body.task).toEqual({
      id: task.id,
      status: 'approved',
      status_endpoint: endpoint,
      // Readable for a day after it ended.
      expires_at: '2026-12-02T09:01:00Z',
    })
    const approval = done.body.result.approval
    expect(done.body.result).toEqual({
      mode: 'reevaluate',
      approval: {
        id: task.id,
        approved_at: '2026-12-01T09:01:00Z',
        // Until requested_until (09:30), although the 30 minutes asked run from the approval at 09:01.
        approved_until: '2026-12-01T09:30:00Z',
        state: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
      },
    })

    // Re-evaluation with the approval: permitted.
    const allowed = await evaluate(a, maria, 'viewer', doc(), { approval })
    expect(allowed.decision).toBe(true)

    // A terminal status never changes (§8.35): cancelling the approved task is refused.
    expectProblem(await a.call('POST', `${endpoint.slice(a.served.url.length)}/cancel`), 409, 'invalid_task_state')

    // The grant expires with the approval: the same approval no longer permits.
    a.clock.now = T0 + 32 * MINUTE
    const expired = await evaluate(a, maria, 'viewer', doc(), { approval })
    expect(expired.decision).toBe(false)
    expect(expired.context?.reason).toBe('approval_expired')
    const after = await a.call('GET', endpoint.slice(a.served.url.length))
    expect(after.body.task.status).toBe('approved')

    // A day after it ended, the handle is gone (§8.35).
    a.clock.now = T0 + 25 * HOUR
    expectProblem(await a.call('GET', endpoint.slice(a.served.url.length)), 410, 'task_expired')
  })

  it('the grant never outlasts requested_until, however late approved; approved after it, nothing is granted', async () => {
    const until = new Date(T0 + 30 * MINUTE).toISOString()
    const late = await submit(a, { ...(await requestable(a, user('maria'), 'viewer', doc())), requested_access: { requested_until: until } })
    const later = await submit(a, { ...(await requestable(a, user('mona'), 'viewer', doc())), requested_access: { requested_until: until } })
    expect([late.status, later.status]).toEqual([202, 202])
    a.clock.now = T0 + 20 * MINUTE
    const approved = await a.call('POST', `/stores/${a.store}/access-requests/${late.body.task.id}/approve`, { approver: 'user:rita' })
    expect(approved.status, approved.text).toBe(200)
    expect(approved.body.grant_expires_at).toBe('2026-12-01T09:30:00Z')
    const done = await a.call('GET', `/stores/${a.store}/access/v1/requests/${late.body.task.id}`)
    expect(done.body.result.approval.approved_until).toBe('2026-12-01T09:30:00Z')
    a.clock.now = T0 + 31 * MINUTE
    const tooLate = await a.call('POST', `/stores/${a.store}/access-requests/${later.body.task.id}/approve`, { approver: 'user:rita' })
    expect(tooLate.status, tooLate.text).toBe(409)
    expect(tooLate.body.code).toBe('access_request_window_ended')
    expect(await granted('user:mona')).toEqual([])
    expect((await a.call('GET', `/stores/${a.store}/access/v1/requests/${later.body.task.id}`)).body.task.status).toBe('pending')
  })

  it('cancel racing approve: exactly one wins, the status is the winner, and a cancelled task leaves no tuple', async () => {
    for (let i = 0; i < 10; i++) {
      const who = `racer-${i}`
      const r = await submit(a, await requestable(a, user(who), 'viewer', doc()))
      expect(r.status, r.text).toBe(202)
      const id = r.body.task.id as string
      const [cancel, approve] = await Promise.all([
        a.call('POST', `/stores/${a.store}/access/v1/requests/${id}/cancel`),
        a.call('POST', `/stores/${a.store}/access-requests/${id}/approve`, { approver: 'user:rita' }),
      ])
      expect([cancel.status, approve.status].sort(), `${cancel.text} ${approve.text}`).toEqual([200, 409])
      const status = (await a.call('GET', `/stores/${a.store}/access/v1/requests/${id}`)).body.task.status
      expect(status).toBe(cancel.status === 200 ? 'cancelled' : 'approved')
      expect(await granted(`user:${who}`)).toHaveLength(status === 'approved' ? 1 : 0)
    }
    // A plain cancel: no tuple either.
    const plain = await submit(a, await requestable(a, user('quitter'), 'viewer', doc()))
    expect((await a.call('POST', `/stores/${a.store}/access/v1/requests/${plain.body.task.id}/cancel`)).status).toBe(200)
    expect(await granted('user:quitter')).toEqual([])
  })

  it('§8.34 a bulk task whose items are all approved is approved, each item with its result', async () => {
    const w = await a.call('POST', `/stores/${a.store}/write`, {
      writes: { tuple_keys: [{ user: 'team:reviewers#member', relation: 'viewer_approver', object: 'document:plan-8' }] },
    })
    expect(w.status, w.text).toBe(200)
    const items = []
    for (const d of [doc(), doc('plan-8')]) {
      const b = await requestable(a, user('maria'), 'viewer', d)
      items.push({ resource: b.resource, action: b.action, denial: b.denial })
    }
    const r = await submit(a, { subject: user('maria'), items })
    expect(r.status, r.text).toBe(202)
    const pending = await a.call('GET', `/stores/${a.store}/access-requests?status=pending&page_size=100`)
    for (const x of pending.body.access_requests) {
      expect((await a.call('POST', `/stores/${a.store}/access-requests/${x.id}/approve`, { approver: 'user:rita' })).status).toBe(200)
    }
    const done = await a.call('GET', `/stores/${a.store}/access/v1/requests/${r.body.task.id}`)
    expect(done.body.task.status).toBe('approved')
    expect(done.body.task.items.map((x: { status: string; result?: unknown }) => [x.status, typeof x.result])).toEqual([
      ['approved', 'object'],
      ['approved', 'object'],
    ])
    expect(done.body.result).toBeUndefined()
  })

  it('§8.42 self-approval and approving for an identity one acts for stay refused through the ARAP flow', async () => {
    // rita is a reviewer herself: she asks, she may not approve.
    const own = await submit(a, await requestable(a, user('rita'), 'viewer', doc()))
    expect(own.status, own.text).toBe(202)
    const self = await a.call('POST', `/stores/${a.store}/access-requests/${own.body.task.id}/approve`, { approver: 'user:rita' })
    expect(self.status).toBe(403)
    expect(self.body.code).toBe('self_approval_forbidden')
    // ray's helper asks: ray may not approve it (separation of duties through acts_for).
    const helper = await submit(a, await requestable(a, { type: 'agent', id: 'helper' }, 'viewer', doc()))
    expect(helper.status, helper.text).toBe(202)
    const sod = await a.call('POST', `/stores/${a.store}/access-requests/${helper.body.task.id}/approve`, { approver: 'user:ray' })
    expect(sod.status).toBe(403)
    expect(sod.body.code).toBe('self_approval_forbidden')
    // Someone not an approver at all.
    const outsider = await a.call('POST', `/stores/${a.store}/access-requests/${helper.body.task.id}/approve`, { approver: 'user:maria' })
    expect(outsider.status).toBe(403)
    expect(outsider.body.code).toBe('approver_not_authorized')
    for (const id of [own.body.task.id, helper.body.task.id]) {
      expect((await a.call('GET', `/stores/${a.store}/access/v1/requests/${id}`)).body.task.status).toBe('pending')
    }
    // The other reviewer may: approved.
    expect((await a.call('POST', `/stores/${a.store}/access-requests/${helper.body.task.id}/approve`, { approver: 'user:rita' })).status).toBe(200)
    const done = await a.call('GET', `/stores/${a.store}/access/v1/requests/${helper.body.task.id}`)
    expect(done.body.task.status).toBe('approved')
  })

  it('§8.32 §8.30 racing submissions: one key makes one task, one denial makes one task', async () => {
    const body = await requestable(a, user('maria'), 'viewer', doc())
    const key = { 'idempotency-key': 'race-1' }
    const same = await Promise.all([submit(a, body, key), submit(a, body, key), submit(a, body, key)])
    for (const r of same) expect(r.status, r.text).toBe(202)
    expect(new Set(same.map((r) => r.body.task.id)).size).toBe(1)
    const other = await requestable(a, user('maria'), 'viewer', doc())
    const raced = await Promise.all([submit(a, other), submit(a, other)])
    expect(raced.map((r) => r.status).sort()).toEqual([202, 400])
    expect(raced.find((r) => r.status === 400)!.body.type).toBe('urn:openid:authzen:access-request:error:invalid_denial_binding')
    const pending = await a.call('GET', `/stores/${a.store}/access-requests?status=pending`)
    expect(pending.body.access_requests).toHaveLength(2)
  })

  it('§8.35 an approved task stays readable while its grant lasts, even beyond the day of retention', async () => {
    await a.close()
    a = await startArap({ ...config(), jitMaxDuration: 'P3D' })
    const r = await submit(a, { ...(await requestable(a, user('maria'), 'viewer', doc())), requested_access: { requested_until: '2026-12-03T09:00:00Z' } })
    expect(r.status, r.text).toBe(202)
    expect((await a.call('POST', `/stores/${a.store}/access-requests/${r.body.task.id}/approve`, { approver: 'user:rita' })).status).toBe(200)
    const path = `/stores/${a.store}/access/v1/requests/${r.body.task.id}`
    a.clock.now = T0 + 25 * HOUR
    const late = await a.call('GET', path)
    expect(late.status, late.text).toBe(200)
    expect(late.body.task).toMatchObject({ status: 'approved', expires_at: '2026-12-03T09:00:00Z' })
    expect(late.body.result.approval.approved_until).toBe('2026-12-03T09:00:00Z')
    a.clock.now = Date.parse('2026-12-03T09:00:00Z')
    expectProblem(await a.call('GET', path), 410, 'task_expired')
  })

  /** The viewer tuples of `who` on plan-7 (a grant, if any). */
  async function granted(who: string): Promise<unknown[]> {
    const r = await a.call('POST', `/stores/${a.store}/read`, { tuple_key: { user: who, relation: 'viewer', object: 'document:plan-7' } })
    expect(r.status, r.text).toBe(200)
    return r.body.tuples
  }

  it('§8.35 a task nobody decides on expires at its expires_at, then stays readable as expired for a day', async () => {
    const r = await submit(a, await requestable(a, user('maria'), 'viewer', doc()))
    const path = `/stores/${a.store}/access/v1/requests/${r.body.task.id}`
    a.clock.now = Date.parse(r.body.task.expires_at)
    const expired = await a.call('GET', path)
    expect(expired.status, expired.text).toBe(200)
    expect(expired.body.task).toMatchObject({ status: 'expired', expires_at: '2026-12-03T09:00:00Z' })
    // The sweeper marks it in the store: the answer does not change.
    await a.served.pemba.sweeper.runOnce()
    expect((await a.call('GET', path)).body).toEqual(expired.body)
    expectProblem(await a.call('POST', `${path}/cancel`), 409, 'invalid_task_state')
    a.clock.now = Date.parse('2026-12-03T09:00:00Z')
    expectProblem(await a.call('GET', path), 410, 'task_expired')
  })
}

describe('ARAP flow (SQLite)', () => flow(() => ({})))

const target = await probePostgres()
describePostgres('ARAP flow (PostgreSQL)', target, () => {
  const url = usePostgresSchema(target)
  flow(() => ({ databaseUrl: url() }))
})
