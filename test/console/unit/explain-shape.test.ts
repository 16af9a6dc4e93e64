/**
 * Shaping explained check answers (console/src/explain/shape.ts) on answers captured from a real
 * Pemba (explain-fixtures.json: the bench model at scale 0.1, and examples/nhi for delegation,
 * conditions and tokens).
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  conditionText,
  countNodes,
  failedLeaves,
  parseTupleLabel,
  shapeTree,
  summarise,
  witnessTuples,
  type CheckAnswer,
  type TraceNode,
  type ViewNode,
} from '../../../console/src/explain/shape.ts'

const FIXTURES = JSON.parse(readFileSync(new URL('./explain-fixtures.json', import.meta.url), 'utf8')) as Record<string, { request: any; response: CheckAnswer }>
const answer = (name: string) => FIXTURES[name].response
const shaped = (name: string) => {
  const a = answer(name)
  return shapeTree(a.explanation!.tree!, a.allowed)
}
const all = (root: ViewNode): ViewNode[] => [root, ...root.children.flatMap(all)]
const find = (root: ViewNode, pred: (n: ViewNode) => boolean) => all(root).filter(pred)
const plain = (w: { user: string; relation: string; object: string; condition?: { name: string } | null }) =>
  w.condition?.name ? { object: w.object, relation: w.relation, user: w.user, condition: w.condition.name } : { object: w.object, relation: w.relation, user: w.user }

describe('parseTupleLabel', () => {
  it('reads object#relation@user, usersets and a condition suffix', () => {
    expect(parseTupleLabel('document:d1#viewer@user:u1')).toEqual({ object: 'document:d1', relation: 'viewer', user: 'user:u1' })
    expect(parseTupleLabel('group:g6#member@group:g20#member')).toEqual({ object: 'group:g6', relation: 'member', user: 'group:g20#member' })
    expect(parseTupleLabel('api:billing#caller@service_account:billing-sync (with approved_window)')).toEqual({
      object: 'api:billing',
      relation: 'caller',
      user: 'service_account:billing-sync',
      condition: 'approved_window',
    })
  })
  it('answers undefined for a label that is no tuple', () => {
    expect(parseTupleLabel('computed from viewer')).toBeUndefined()
    expect(parseTupleLabel('but not blocked')).toBeUndefined()
    expect(parseTupleLabel('direct: viewer')).toBeUndefined()
  })
})

describe('an allowed deep-group check', () => {
  const root = shaped('deep-group-allowed')
  it('marks the path that granted it, open, from the object down to the subject', () => {
    expect(root.role).toBe('witness')
    expect(root.open).toBe(true)
    const witness = find(root, (n) => n.role === 'witness')
    expect(witness.every((n) => n.allowed)).toBe(true)
    expect(witness.filter((n) => n.children.length > 0).every((n) => n.open)).toBe(true)
    // The deepest witness node is the user's own membership tuple.
    const leaves = witness.filter((n) => n.children.length === 0)
    expect(leaves.map((n) => n.tuple)).toEqual([{ object: 'group:g70', relation: 'member', user: 'user:u195' }])
  })
  it('lists the witness tuples exactly as the API\'s witness, group#member hops included', () => {
    const tuples = witnessTuples(root)
    expect(tuples).toEqual(answer('deep-group-allowed').witness!.map(plain))
    expect(tuples.filter((t) => t.relation === 'member' && t.user.endsWith('#member')).length).toBe(4)
  })
  it('shows the excluded side of `but not` as false, as required, and closed', () => {
    const [notExcluded] = find(root, (n) => n.role === 'not-excluded' && n.label === 'computed from blocked')
    expect(notExcluded.allowed).toBe(false)
    expect(notExcluded.open).toBe(false)
    expect(find(notExcluded, (n) => n.role !== 'not-excluded')).toEqual([])
    expect(find(notExcluded, (n) => n.reason === 'no tuple document:d791#blocked@user:u195').length).toBe(1)
    expect(failedLeaves(root)).toEqual([])
  })
  it('gives every node a stable id from its position', () => {
    const ids = all(root).map((n) => n.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(countNodes(root)).toBe(ids.length)
    expect(ids[0]).toBe('0')
  })
})

describe('allowed checks of other shapes', () => {
  it('a delegated check: every hop of the intersection is on the path, in the API\'s witness order', () => {
    const root = shaped('delegated-allowed')
    expect(root.step).toBe('intersection')
    expect(root.children.map((c) => [c.step, c.role])).toEqual([
      ['delegation', 'witness'],
      ['delegation', 'witness'],
      ['delegation', 'witness'],
    ])
    expect(witnessTuples(root)).toEqual(answer('delegated-allowed').witness!.map(plain))
  })
  it('a conditioned tuple keeps its condition name and shows the inputs it held for', () => {
    const root = shaped('condition-true')
    const [t] = find(root, (n) => n.step === 'tuple')
    expect(t.tuple).toEqual({ object: 'api:billing', relation: 'caller', user: 'service_account:billing-sync', condition: 'approved_window' })
    expect(t.role).toBe('witness')
    const cond = find(root, (n) => n.reason?.startsWith('condition approved_window is true for ') ?? false)
    expect(cond.length).toBeGreaterThan(0)
    expect(cond.every((n) => n.role === 'witness')).toBe(true)
    expect(cond[0].reason).toContain('"request_ip":')
    expect(witnessTuples(root)).toEqual(answer('condition-true').witness!.map(plain))
  })
  it('a check granted by a contextual tuple has a path but no stored witness', () => {
    const a = answer('contextual-allowed')
    expect(a.witness).toBeUndefined()
    expect(witnessTuples(shapeTree(a.explanation!.tree!, true))).toEqual([{ object: 'document:d1', relation: 'viewer', user: 'user:u1' }])
  })
})

describe('denied checks', () => {
  it('a deep-group denial: every branch tried is open with its reason, one failed leaf per API reason', () => {
    const a = answer('deep-group-denied')
    const root = shaped('deep-group-denied')
    expect(root.role).toBe('failed')
    const failed = find(root, (n) => n.role === 'failed')
    expect(failed.filter((n) => n.children.length > 0).every((n) => n.open)).toBe(true)
    const leaves = failedLeaves(root)
    expect(leaves.length).toBe(a.explanation!.reasons!.length)
    expect(leaves.every((n) => typeof n.reason === 'string' && n.reason.length > 0)).toBe(true)
    // Each API reason ends with its leaf's reason, in the same order.
    a.explanation!.reasons!.forEach((r, i) => expect(r.endsWith(leaves[i].reason!)).toBe(true))
    expect(witnessTuples(root)).toEqual([])
  })
  it('an exclusion: the side that held is open and names the blocking tuple; the base that held is closed', () => {
    const root = shaped('blocked-denied')
    const [excl] = find(root, (n) => n.step === 'exclusion')
    const [base, subtract] = excl.children
    expect(base.role).toBe('held')
    expect(base.open).toBe(false)
    expect(subtract.role).toBe('excluding')
    expect(subtract.open).toBe(true)
    expect(find(subtract, (n) => n.step === 'tuple').map((n) => n.tuple)).toEqual([{ object: 'document:d1967', relation: 'blocked', user: 'user:u388' }])
    expect(answer('blocked-denied').explanation!.reasons).toEqual(['document:d1967#view@user:u388 › excluded: blocked holds (document:d1967#blocked@user:u388)'])
  })
  it('an exclusion whose base held after a failed first branch: only what excluded it decides, as the engine\'s reasons say', () => {
    // Synthetic, in the engine's shape: `view: viewer but not blocked`, viewer not direct but via the folder.
    const tuple = (t: string, allowed: boolean): TraceNode => ({ step: 'tuple', allowed, label: t, tuple: t })
    const tree: TraceNode = {
      step: 'check',
      allowed: false,
      label: 'document:d1#view@user:u1',
      children: [
        {
          step: 'exclusion',
          allowed: false,
          label: 'but not blocked',
          children: [
            {
              step: 'union',
              allowed: true,
              label: 'union',
              children: [
                { step: 'direct', allowed: false, label: 'direct: viewer', reason: 'no tuple document:d1#viewer@user:u1', children: [] },
                { step: 'tuple_to_userset', allowed: true, label: 'viewer from parent', children: [tuple('document:d1#parent@folder:f1', true)] },
              ],
            },
            { step: 'computed', allowed: true, label: 'computed from blocked', children: [tuple('document:d1#blocked@user:u1', true)] },
          ],
        },
      ],
    }
    const root = shapeTree(tree, false)
    const [excl] = find(root, (n) => n.step === 'exclusion')
    expect(excl.children.map((c) => c.role)).toEqual(['held', 'excluding'])
    // The failed direct branch sits under the base that held: it is shown, but it decided nothing.
    expect(find(root, (n) => n.label === 'direct: viewer')[0].role).toBe('failed')
    expect(failedLeaves(root)).toEqual([])
  })
  it('an intersection stops at its first false side', () => {
    const root = shaped('edit-denied')
    const [inter] = find(root, (n) => n.step === 'intersection')
    expect(inter.children.map((c) => [c.label, c.role])).toEqual([['computed from owner', 'failed']])
    expect(failedLeaves(root).map((n) => n.reason)).toEqual(['no tuple document:d793#owner@user:u251'])
  })
  it('a false condition shows its inputs', () => {
    const root = shaped('condition-false')
    const [leaf] = failedLeaves(root)
    expect(leaf.tuple?.condition).toBe('approved_window')
    expect(leaf.reason).toBe(
      'condition approved_window is false for {"request_ip":"10.99.3.4","approved_cidrs":["10.20.0.0/16","192.168.7.0/24"],"current_time":"2026-11-29T02:30:00Z","window_start":"2026-11-29T02:00:00Z","window_duration":"2h"}',
    )
  })
  it('delegation: the hop that failed, and the principal that lacks the relation', () => {
    const hop = shaped('delegated-delegation')
    expect(hop.children.map((c) => [c.label, c.role])).toEqual([['delegation: agent:support-assistant acts for user:bob', 'failed']])
    expect(summarise(answer('delegated-delegation'))).toMatch(/denied_by delegation/)
    const principal = shaped('delegated-principal')
    expect(principal.children.map((c) => [c.step, c.role])).toEqual([
      ['delegation', 'held'],
      ['delegation', 'failed'],
    ])
    expect(failedLeaves(principal).length).toBe(answer('delegated-principal').explanation!.reasons!.length)
    expect(summarise(answer('delegated-principal'))).toMatch(/denied_by principal/)
  })
  it('a refused subject token: one token step with the reason', () => {
    const root = shaped('token-invalid')
    expect(root.step).toBe('token')
    expect(root.role).toBe('failed')
    expect(root.reason).toMatch(/^token_invalid: /)
    expect(summarise(answer('token-invalid'))).toBe('Denied: the subject token was refused (token_invalid)')
  })
})

describe('conditionText', () => {
  it('says why a condition could not be evaluated', () => {
    expect(conditionText({ name: 'in_network', inputs: { ip: '10.0.0.1' }, result: 'error', error: "missing 'cidr'" })).toBe(
      `condition in_network could not be evaluated: missing 'cidr' (inputs {"ip":"10.0.0.1"})`,
    )
  })
})
