/**
 * The batch service's ordering (src/service/authzen/evaluations.ts), with a decider whose items
 * settle in reverse order: execute_all starts every item at once, the short-circuit semantics
 * a window of SPECULATION_WINDOW; the answer is in request order, and the short-circuit
 * semantics return exactly the prefix up to the stopper (checklist §8.5, §8.9, §8.10), deciding
 * every item with the one model resolved for the batch. Past a settled stopper nothing starts,
 * and the items still in flight are told they are no longer wanted.
 */
import { describe, expect, it } from 'vitest'
import { AuthzenEvaluations, SPECULATION_WINDOW, type SingleDecider } from '../../src/service/authzen/evaluations.ts'
import type { AuthzenEvaluation } from '../../src/service/authzen/types.ts'
import type { TypeSystem } from '../../src/model/typesystem.ts'

/**
 * Item i (resource id `i`) is decided `answers[i]` ('error' throws) after `delay(i)` ms (by
 * default (n - i) × 3: the last settles first). Records which items started, and whether each
 * was still wanted when it settled.
 */
function reverseDecider(answers: (boolean | 'error')[], delay = (i: number) => (answers.length - i) * 3) {
  let running = 0
  let peak = 0
  const models = new Set<string | undefined>()
  const started: number[] = []
  const unwanted: number[] = []
  const decider: SingleDecider = {
    async decide(_store: string, e: AuthzenEvaluation, o) {
      models.add(o.modelId)
      running++
      peak = Math.max(peak, running)
      const i = Number(e.resource.id)
      started.push(i)
      await new Promise((r) => setTimeout(r, delay(i)))
      running--
      if (o.wanted?.() === false) unwanted.push(i)
      const a = answers[i]
      if (a === 'error') throw new Error(`item ${i} failed`)
      return { decision: a }
    },
  }
  return { decider, peak: () => peak, models, started, unwanted }
}

function batch(answers: (boolean | 'error')[], delay?: (i: number) => number) {
  const d = reverseDecider(answers, delay)
  let resolved = 0
  const service = new AuthzenEvaluations({
    decider: d.decider,
    models: {
      resolve: async () => {
        resolved++
        return { id: '01ARZ3NDEKTSV4RRFFQ69G5FAV' } as TypeSystem
      },
    },
    maxItems: 50,
  })
  const run = (semantic: 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit') =>
    service.evaluate('store', {
      defaults: { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' } },
      items: answers.map((_, i) => ({ resource: { type: 'doc', id: String(i) } })),
      semantic,
      pdp: () => 'http://pdp',
    })
  return { run, d, resolved: () => resolved }
}

const shape = (outcomes: { ok: boolean; decision?: { decision: boolean } }[]) => outcomes.map((o) => (o.ok ? o.decision!.decision : 'error'))

describe('speculative parallel evaluation returns the exact prefix, in order', () => {
  const TEN: (boolean | 'error')[] = [true, true, true, true, false, true, true, true, true, true]

  it('§8.5 execute_all: all ten in request order, all started together, one model', async () => {
    const b = batch(TEN)
    expect(shape(await b.run('execute_all'))).toEqual(TEN)
    expect(b.d.peak()).toBe(10)
    expect(b.resolved()).toBe(1)
    expect([...b.d.models]).toEqual(['01ARZ3NDEKTSV4RRFFQ69G5FAV'])
  })

  it('§8.9 deny_on_first_deny: items 0…4 although the later ones settled first', async () => {
    const b = batch(TEN)
    expect(shape(await b.run('deny_on_first_deny'))).toEqual([true, true, true, true, false])
    // A window of items in flight; item 4 settled as the stopper before any slot freed: 8 and 9 never ran.
    expect(b.d.peak()).toBe(SPECULATION_WINDOW)
    expect([...b.d.started].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    // 5…7 settled before the stopper did: they were still wanted then.
    expect(b.d.unwanted).toEqual([])
  })

  it('§8.9 a stopper at 0 in a batch of 50: at most a window starts, and none past it is wanted when it settles', async () => {
    const answers = [false, ...Array<boolean>(49).fill(true)]
    // Item 0 settles first: every other item in flight learns it is no longer wanted.
    const b = batch(answers, (i) => (i === 0 ? 1 : 20))
    expect(shape(await b.run('deny_on_first_deny'))).toEqual([false])
    expect(b.d.started.length).toBeLessThanOrEqual(SPECULATION_WINDOW)
    expect(b.d.started.length).toBeGreaterThan(1)
    await new Promise((r) => setTimeout(r, 60))
    expect([...b.d.unwanted].sort((x, y) => x - y)).toEqual(b.d.started.filter((i) => i > 0).sort((x, y) => x - y))
    // permit_on_first_permit the same way round.
    const p = batch([true, ...Array<boolean>(49).fill(false)], (i) => (i === 0 ? 1 : 20))
    expect(shape(await p.run('permit_on_first_permit'))).toEqual([true])
    expect(p.d.started.length).toBeLessThanOrEqual(SPECULATION_WINDOW)
  })

  it('§8.9 a long batch with no stopper runs every item, never more than a window at once', async () => {
    const b = batch(Array<boolean>(30).fill(true), () => 2)
    expect(shape(await b.run('deny_on_first_deny'))).toEqual(Array(30).fill(true))
    expect(b.d.started.length).toBe(30)
    expect(b.d.peak()).toBeLessThanOrEqual(SPECULATION_WINDOW)
  })

  it('§8.9 §8.10 an error stops deny_on_first_deny and is a non-permit for permit_on_first_permit', async () => {
    expect(shape(await batch([true, 'error', true]).run('deny_on_first_deny'))).toEqual([true, 'error'])
    expect(shape(await batch(['error', false, true, false]).run('permit_on_first_permit'))).toEqual(['error', false, true])
  })

  it('§8.10 permit_on_first_permit: the prefix up to the first permit, or all N', async () => {
    expect(shape(await batch([false, false, false, true, true]).run('permit_on_first_permit'))).toEqual([false, false, false, true])
    expect(shape(await batch([false, false, false]).run('permit_on_first_permit'))).toEqual([false, false, false])
  })
})
