/**
 * The batch service's ordering (src/service/authzen/evaluations.ts), with a decider whose items
 * settle in reverse order: every item starts at once, the answer is still in request order, and
 * the short-circuit semantics return exactly the prefix up to the stopper (checklist §8.5,
 * §8.9, §8.10), deciding every item with the one model resolved for the batch.
 */
import { describe, expect, it } from 'vitest'
import { AuthzenEvaluations, type SingleDecider } from '../../src/service/authzen/evaluations.ts'
import type { AuthzenEvaluation } from '../../src/service/authzen/types.ts'
import type { TypeSystem } from '../../src/model/typesystem.ts'

/** Item i (resource id `i`) is decided `answers[i]` ('error' throws) after (n - i) ms: the last settles first. */
function reverseDecider(answers: (boolean | 'error')[]) {
  let running = 0
  let peak = 0
  const models = new Set<string | undefined>()
  const decider: SingleDecider = {
    async decide(_store: string, e: AuthzenEvaluation, o) {
      models.add(o.modelId)
      running++
      peak = Math.max(peak, running)
      const i = Number(e.resource.id)
      await new Promise((r) => setTimeout(r, (answers.length - i) * 3))
      running--
      const a = answers[i]
      if (a === 'error') throw new Error(`item ${i} failed`)
      return { decision: a }
    },
  }
  return { decider, peak: () => peak, models }
}

function batch(answers: (boolean | 'error')[]) {
  const d = reverseDecider(answers)
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
      pdp: 'http://pdp',
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
    expect(b.d.peak()).toBe(10)
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
