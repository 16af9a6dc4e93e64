/**
 * embeddedDecisions against a real, in-process Pemba (the instance servePemba runs): the same
 * answers as over HTTP without HTTP, delegated checks, batches in order with a failed item, the
 * decision logged under the request id and client, and the two failures (DecisionRejected for
 * what Pemba refuses, DecisionUnavailable for a Pemba that cannot decide).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DecisionRejected, DecisionUnavailable } from '../../src/enforce/decisions.ts'
import { embeddedDecisions } from '../../src/enforce/embedded.ts'
import { createTestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'
import { decisionsByRequestId, MODEL, q, startDecisionsPemba, ULID, type DecisionsPemba } from './decisions-fixture.ts'

let p: DecisionsPemba

beforeAll(async () => {
  p = await startDecisionsPemba()
})
afterAll(async () => {
  await p?.close()
})

describe('embeddedDecisions', () => {
  it('allows, denies and asks the delegated check in-process', async () => {
    const c = embeddedDecisions(p.http.pemba, p.storeId)
    expect(c.storeId).toBe(p.storeId)
    const allowed = await c.evaluate(q('user:alice', 'read_customer'))
    expect(allowed).toEqual({ decision: true, requestId: expect.stringMatching(ULID) })
    expect((await c.evaluate(q('user:alice', 'export_customers'))).decision).toBe(false)
    expect((await c.evaluate(q('agent:assistant', 'read_customer'), { onBehalfOf: ['user:alice'] })).decision).toBe(true)
    expect((await c.evaluate(q('agent:assistant', 'export_customers'), { onBehalfOf: ['user:alice'] })).decision).toBe(false)
    expect((await c.evaluate(q('agent:assistant', 'read_customer'), { onBehalfOf: ['user:bob'] })).decision).toBe(false)
  })

  it('answers a batch in order, a failed item as {decision: false, context.error}', async () => {
    const c = embeddedDecisions(p.http.pemba, p.storeId)
    const bad = { subject: { type: 'user', id: 'alice' }, action: { name: 'nope' }, resource: { type: 'tool', id: 'crm/read_customer' } }
    const answers = await c.evaluateAll(
      [q('user:alice', 'read_customer'), bad, q('user:bob', 'export_customers'), q('user:bob', 'read_customer')],
      { requestId: 'embedded-batch-1' },
    )
    expect(answers.map((a) => a.decision)).toEqual([true, false, true, false])
    expect(answers[1].context).toEqual({ error: { status: 400, message: expect.stringContaining('nope') } })
    expect(answers.every((a) => a.requestId === 'embedded-batch-1')).toBe(true)
    // The failed item is no decision; the three others are logged under the batch's id.
    const logged = await decisionsByRequestId(p, 'embedded-batch-1', 3)
    expect(logged.map((d) => d.object).sort()).toEqual(['tool:crm/export_customers', 'tool:crm/read_customer', 'tool:crm/read_customer'])
  })

  it('logs the decision under the request id with the client given', async () => {
    const c = embeddedDecisions(p.http.pemba, p.storeId, { client: 'client:orders-api' })
    const d = await c.evaluate(q('agent:assistant', 'read_customer'), { onBehalfOf: ['user:alice'], requestId: 'orders-42' })
    expect(d.requestId).toBe('orders-42')
    const [logged] = await decisionsByRequestId(p, 'orders-42')
    expect(logged).toMatchObject({ client: 'client:orders-api', user: 'agent:assistant', on_behalf_of: ['user:alice'], allowed: true, detail: { authzen: true } })
  })

  it('explains to its in-process caller (the operator), details included', async () => {
    const c = embeddedDecisions(p.http.pemba, p.storeId)
    const d = await c.evaluate(q('user:alice', 'export_customers'), { explain: true })
    expect(d.decision).toBe(false)
    expect(d.context).toMatchObject({ reason: 'no_path', reason_admin: { 403: expect.stringContaining('no tuple tool:crm/export_customers#caller@user:alice') } })
  })

  it('is DecisionRejected for what Pemba refuses: an unknown relation, an unknown store (a batch too)', async () => {
    const c = embeddedDecisions(p.http.pemba, p.storeId)
    const e = await c.evaluate({ ...q('user:alice', 'read_customer'), action: { name: 'nope' } }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DecisionRejected)
    expect(e).toMatchObject({ status: 400, requestId: expect.stringMatching(ULID) })
    const unknown = embeddedDecisions(p.http.pemba, '01ARZ3NDEKTSV4RRFFQ69G5FAV')
    await expect(unknown.evaluate(q('user:alice', 'read_customer'))).rejects.toMatchObject({ name: 'DecisionRejected', code: 'latest_authorization_model_not_found' })
    await expect(unknown.evaluateAll([q('user:alice', 'read_customer')])).rejects.toBeInstanceOf(DecisionRejected)
  })

  it('is DecisionUnavailable when the embedded Pemba cannot decide (its database closed)', async () => {
    const t = await createTestClient()
    const { storeId } = await setup(t, MODEL, ['tool:crm/read_customer#caller@user:alice'])
    const c = embeddedDecisions(t.pemba, storeId)
    expect((await c.evaluate(q('user:alice', 'read_customer'))).decision).toBe(true)
    await t.close()
    // A question the caches cannot answer: it must read the closed database.
    const e = await c.evaluate(q('user:carol', 'read_customer'), { consistency: 'HIGHER_CONSISTENCY' }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DecisionUnavailable)
    expect((e as DecisionUnavailable).kind).toBe('server_error')
    expect((e as Error).message).toMatch(/^the embedded Pemba could not decide: /)
    await expect(c.evaluateAll([q('user:carol', 'read_customer')], { consistency: 'HIGHER_CONSISTENCY' })).rejects.toBeInstanceOf(DecisionUnavailable)
  })
})
