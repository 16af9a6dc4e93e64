/**
 * AuthZEN 1.0 Access Evaluations over real HTTP (reference §2.4, §7.2 item 7; checklist §8.5–§8.12).
 *
 * The data: maria views doc:0…doc:9 except doc:4, so "maria viewer doc:0…9" is a batch of ten
 * with its only deny at position 4; ben owns doc:7 only, so "ben can_read doc:0…9" (pinned to
 * the first model, where owners read) permits first at position 7.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SPECULATION_WINDOW } from '../../src/service/authzen/evaluations.ts'
import { startArap } from './arap-support.ts'
import { coreStore, ev, serveHttp, type CoreStore, type HttpClient } from './core-fixture.ts'

let t: HttpClient
let s: CoreStore
const path = () => `/stores/${s.storeId}/access/v1/evaluations`
const TEN = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
const decisions = (body: { evaluations: { decision: boolean }[] }) => body.evaluations.map((e) => e.decision)
/** maria's ten items, with the subject at the top level. */
const mariaBatch = (semantic?: string) => ({
  subject: { type: 'user', id: 'maria' },
  action: { name: 'viewer' },
  evaluations: TEN.map((i) => ({ resource: { type: 'doc', id: String(i) } })),
  ...(semantic ? { options: { evaluations_semantic: semantic } } : {}),
})

beforeAll(async () => {
  t = await serveHttp()
  s = await coreStore(t, true)
})
afterAll(() => t.close())

describe('the three semantics on a batch of ten with a deny at position 4', () => {
  it('§8.5 execute_all is the default and returns all ten, in order', async () => {
    const expected = TEN.map((i) => i !== 4)
    const byDefault = await t.request('POST', path(), mariaBatch())
    expect(byDefault.status, byDefault.text).toBe(200)
    expect(decisions(byDefault.body)).toEqual(expected)
    // With evaluations present the top-level decision is left out (PEPs ignore it).
    expect(byDefault.body).not.toHaveProperty('decision')
    const explicit = await t.request('POST', path(), mariaBatch('execute_all'))
    expect(decisions(explicit.body)).toEqual(expected)
  })

  it('§8.9 deny_on_first_deny returns the prefix up to and including the first deny: five items', async () => {
    const r = await t.request('POST', path(), mariaBatch('deny_on_first_deny'))
    expect(r.status).toBe(200)
    expect(decisions(r.body)).toEqual([true, true, true, true, false])
    expect(r.body.evaluations[4]).toEqual({ decision: false })
  })

  it('§8.10 permit_on_first_permit returns the prefix up to and including the first permit', async () => {
    // maria's batch permits at once: one item.
    const first = await t.request('POST', path(), mariaBatch('permit_on_first_permit'))
    expect(decisions(first.body)).toEqual([true])
    // ben (the first model: owners read) permits first at position 7: eight items.
    const ben = await t.request(
      'POST',
      path(),
      {
        subject: { type: 'user', id: 'ben' },
        action: { name: 'can_read' },
        evaluations: TEN.map((i) => ({ resource: { type: 'doc', id: String(i) } })),
        options: { evaluations_semantic: 'permit_on_first_permit' },
      },
      { 'openfga-authorization-model-id': s.firstModel },
    )
    expect(decisions(ben.body)).toEqual([false, false, false, false, false, false, false, true])
  })

  it('§8.9 §8.10 a batch with no stopper returns all N under either short-circuit', async () => {
    const allPermit = { ...mariaBatch('deny_on_first_deny'), evaluations: [0, 1, 2, 3].map((i) => ({ resource: { type: 'doc', id: String(i) } })) }
    expect(decisions((await t.request('POST', path(), allPermit)).body)).toEqual([true, true, true, true])
    const noPermit = { subject: { type: 'user', id: 'nobody' }, action: { name: 'viewer' }, ...{ evaluations: TEN.map((i) => ({ resource: { type: 'doc', id: String(i) } })) }, options: { evaluations_semantic: 'permit_on_first_permit' } }
    expect(decisions((await t.request('POST', path(), noPermit)).body)).toEqual(TEN.map(() => false))
  })
})

describe('errors in items', () => {
  const withError = (semantic: string) => ({
    subject: { type: 'user', id: 'maria' },
    action: { name: 'viewer' },
    evaluations: [
      { resource: { type: 'doc', id: '0' } },
      { resource: { type: 'folder', id: '1' } }, // no such type: this item fails
      { resource: { type: 'doc', id: '2' } },
      { resource: { type: 'doc', id: '3' }, subject: { type: 'user', id: 'a#b' } }, // an id Pemba cannot check
    ],
    options: { evaluations_semantic: semantic },
  })

  it('§8.11 an erroring item is false with context.error {status, message}; the others are unaffected', async () => {
    const r = await t.request('POST', path(), withError('execute_all'))
    expect(r.status, r.text).toBe(200)
    const [a, b, c, d] = r.body.evaluations
    expect(a).toEqual({ decision: true })
    expect(b.decision).toBe(false)
    expect(b.context.error.status).toBe(400)
    expect(b.context.error.message).toContain('folder')
    expect(c).toEqual({ decision: true })
    expect(d.decision).toBe(false)
    expect(d.context.error).toMatchObject({ status: 400 })
    expect(d.context.error.message).toContain('subject.id')
  })

  it('§8.9 an error stops deny_on_first_deny like a deny', async () => {
    const r = await t.request('POST', path(), withError('deny_on_first_deny'))
    expect(decisions(r.body)).toEqual([true, false])
    expect(r.body.evaluations[1].context.error.status).toBe(400)
  })

  it('§8.10 an error is a non-permit for permit_on_first_permit', async () => {
    const body = withError('permit_on_first_permit')
    body.evaluations = [body.evaluations[1], { resource: { type: 'doc', id: '4' } }, body.evaluations[2], body.evaluations[0]]
    const r = await t.request('POST', path(), body)
    expect(decisions(r.body)).toEqual([false, false, true])
    expect(r.body.evaluations[0].context.error.status).toBe(400)
  })
})

describe('defaults', () => {
  /** ana audits doc:1 with the properties that permit it: team ops on both sides, mode read. */
  const ANA_AUDITS_DOC_1 = {
    subject: { type: 'user', id: 'ana', properties: { team: 'ops' } },
    action: { name: 'can_audit', properties: { mode: 'read' } },
    resource: { type: 'doc', id: '1', properties: { team: 'ops' } },
  }

  it('§8.6 an item member replaces the default whole: no merge of context or properties', async () => {
    const r = await t.request('POST', path(), {
      ...ANA_AUDITS_DOC_1,
      context: { note: 'default' },
      evaluations: [
        {}, // every default: allowed
        { context: { subject_team: 'dev' } }, // replaces the default context, wins over the property
        { resource: { type: 'doc', id: '1', properties: { team: 'dev' } } }, // the item's properties, not the default's
        { subject: { type: 'user', id: 'ana' }, context: { subject_team: 'ops' } }, // no properties; context supplies it
        { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '0' } },
      ],
    })
    expect(r.status, r.text).toBe(200)
    expect(decisions(r.body)).toEqual([true, false, false, true, true])
  })

  it('§8.6 cases a merge would answer otherwise: the item context drops the default one, the item subject its properties', async () => {
    const r = await t.request('POST', path(), {
      ...ANA_AUDITS_DOC_1,
      context: { subject_team: 'dev' },
      evaluations: [
        {}, // the default context wins over the property: dev ≠ ops
        { context: { resource_team: 'ops' } }, // replaces it: subject_team is ops again (merged, dev would stay)
      ],
    })
    expect(r.status, r.text).toBe(200)
    expect(decisions(r.body)).toEqual([false, true])
    // An item subject with other properties: the default's team is gone (merged, ops would stay and permit).
    const p = await t.request('POST', path(), {
      ...ANA_AUDITS_DOC_1,
      evaluations: [{}, { subject: { type: 'user', id: 'ana', properties: { level: 3 } } }],
    })
    expect(p.status, p.text).toBe(200)
    expect(decisions(p.body)).toEqual([true, false])
    expect(p.body.evaluations[1].context.error.message).toContain('subject_team')
  })

  it('§8.7 a top-level member may be missing only if every item has it; otherwise 400 naming the item', async () => {
    const everyItem = await t.request('POST', path(), {
      action: { name: 'viewer' },
      evaluations: [ev('maria', 'viewer', 0), ev('maria', 'viewer', 4)].map(({ subject, resource }) => ({ subject, resource })),
    })
    expect(everyItem.status, everyItem.text).toBe(200)
    expect(decisions(everyItem.body)).toEqual([true, false])
    const oneLacks = await t.request('POST', path(), {
      action: { name: 'viewer' },
      resource: { type: 'doc', id: '0' },
      evaluations: [{ subject: { type: 'user', id: 'maria' } }, { context: {} }],
    })
    expect(oneLacks.status).toBe(400)
    expect(oneLacks.body.code).toBe('validation_error')
    expect(oneLacks.body.message).toContain('evaluations[1].subject')
  })

  it('§8.8 absent or empty evaluations is the single evaluation: its decision and a one-element evaluations (§7.2 item 7)', async () => {
    for (const extra of [{}, { evaluations: [] }]) {
      const allowed = await t.request('POST', path(), { ...ev('maria', 'viewer', 0), ...extra })
      expect(allowed.status, allowed.text).toBe(200)
      expect(allowed.body).toEqual({ decision: true, evaluations: [{ decision: true }] })
      const denied = await t.request('POST', path(), { ...ev('maria', 'viewer', 4), ...extra })
      expect(denied.body).toEqual({ decision: false, evaluations: [{ decision: false }] })
      // As a single evaluation: a missing member, or an item's own error, fails the request.
      const missing = await t.request('POST', path(), { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, ...extra })
      expect(missing.status).toBe(400)
      expect(missing.body.message).toContain('EvaluationsRequest.resource: value is required')
      const unknownType = await t.request('POST', path(), { ...ev('maria', 'viewer', 0), resource: { type: 'folder', id: '1' }, ...extra })
      expect(unknownType.status).toBe(400)
    }
  })
})

describe('options, limits and the model', () => {
  it('§8.12 an unknown evaluations_semantic is 400; §8.3 unknown option keys are ignored', async () => {
    const unknown = await t.request('POST', path(), mariaBatch('first_match'))
    expect(unknown.status).toBe(400)
    expect(unknown.body.message).toContain('evaluations_semantic')
    const extraKeys = await t.request('POST', path(), { ...mariaBatch(), options: { evaluations_semantic: 'deny_on_first_deny', parallel: 3 }, extra: 1 })
    expect(extraKeys.status).toBe(200)
    expect(decisions(extraKeys.body)).toHaveLength(5)
  })

  it('an item that is not well formed fails the whole request with a 400 naming it', async () => {
    const r = await t.request('POST', path(), { ...mariaBatch(), evaluations: [{ resource: { type: 'doc' } }] })
    expect(r.status).toBe(400)
    expect(r.body.message).toContain('evaluations.0.resource.id')
  })

  it('§8.20 more items than PEMBA_MAX_CHECKS_PER_BATCH is 400', async () => {
    const max = t.pemba.config.maxChecksPerBatch
    const items = (n: number) => Array.from({ length: n }, (_, i) => ({ resource: { type: 'doc', id: String(i % 10) } }))
    const over = await t.request('POST', path(), { ...mariaBatch(), evaluations: items(max + 1) })
    expect(over.status).toBe(400)
    expect(over.body.message).toContain(`at most ${max}`)
    const at = await t.request('POST', path(), { ...mariaBatch(), evaluations: items(max) })
    expect(at.status).toBe(200)
    expect(at.body.evaluations).toHaveLength(max)
  })

  it('§8.50 the model header applies to every item of the batch', async () => {
    const body = { subject: { type: 'user', id: 'maria' }, action: { name: 'can_read' }, evaluations: [0, 1, 7].map((i) => ({ resource: { type: 'doc', id: String(i) } })) }
    expect(decisions((await t.request('POST', path(), body)).body)).toEqual([false, false, false])
    const pinned = await t.request('POST', path(), body, { 'openfga-authorization-model-id': s.firstModel })
    expect(decisions(pinned.body)).toEqual([true, true, true])
  })

  it('§8.18 X-Request-ID is echoed on a batch and on its 400', async () => {
    const ok = await t.request('POST', path(), mariaBatch(), { 'x-request-id': 'batch-ok' })
    expect(ok.headers.get('x-request-id')).toBe('batch-ok')
    const bad = await t.request('POST', path(), mariaBatch('nope'), { 'x-request-id': 'batch-bad' })
    expect(bad.status).toBe(400)
    expect(bad.headers.get('x-request-id')).toBe('batch-bad')
  })
})

describe('speculation past the stopper is bounded', () => {
  it('§8.9 deny_on_first_deny of 50 requestable denials, the stopper at 0: at most a window of items is decided and logged', async () => {
    const a = await startArap()
    try {
      const body = {
        subject: { type: 'user', id: 'maria' },
        action: { name: 'viewer' },
        evaluations: Array.from({ length: 50 }, (_, i) => ({ resource: { type: 'document', id: `d${i}` } })),
        options: { evaluations_semantic: 'deny_on_first_deny' },
      }
      const r = await a.call('POST', `/stores/${a.store}/access/v1/evaluations`, body)
      expect(r.status, r.text).toBe(200)
      expect(decisions(r.body)).toEqual([false])
      await a.served.pemba.decisions.flush()
      const log = await a.call('GET', `/stores/${a.store}/decisions?page_size=100&subject=user:maria`)
      expect(log.status, log.text).toBe(200)
      expect(log.body.decisions.length).toBeGreaterThanOrEqual(1)
      expect(log.body.decisions.length).toBeLessThanOrEqual(SPECULATION_WINDOW)
    } finally {
      await a.close()
    }
  })
})
