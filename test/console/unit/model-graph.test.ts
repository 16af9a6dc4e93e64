import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { buildGraph, conditionsOf } from '../../../console/src/model/graph.ts'
import type { AuthorizationModel } from '../../../console/src/types.ts'
import { modelFromDSL } from '../../../src/model/dsl.ts'

const BENCH = readFileSync(new URL('../../../bench/model.fga', import.meta.url), 'utf8')
const model = (dsl: string) => modelFromDSL(dsl) as unknown as AuthorizationModel
/** `source -[kind label]-> target` for every edge, to compare as a set. */
const edgeText = (g: ReturnType<typeof buildGraph>) => g.edges.map((e) => `${e.source} -[${e.kind} ${e.label}]-> ${e.target}`)

describe('the model graph', () => {
  it('has every type, relation and operator of the bench model as a node', () => {
    const g = buildGraph(model(BENCH))
    const types = g.nodes.filter((n) => n.kind === 'type').map((n) => n.id)
    expect(types).toEqual(['user', 'group', 'folder', 'document'])
    const relations = g.nodes.filter((n) => n.kind === 'relation').map((n) => n.id)
    expect(relations).toEqual([
      'group#member',
      'folder#parent',
      'folder#owner',
      'folder#viewer',
      'folder#view',
      'document#parent',
      'document#owner',
      'document#viewer',
      'document#blocked',
      'document#view',
      'document#edit',
    ])
    for (const n of g.nodes.filter((n) => n.kind !== 'type')) expect(n.parent).toBe(n.type)
    const operators = g.nodes.filter((n) => n.kind === 'operator').map((n) => `${n.parent}:${n.operator}`)
    expect(operators.sort()).toEqual(['document:exclusion', 'document:intersection', 'document:union', 'folder:union'])
    // Every edge joins two nodes that exist; ids are unique.
    const ids = new Set(g.nodes.map((n) => n.id))
    expect(ids.size).toBe(g.nodes.length)
    for (const e of g.edges) expect([ids.has(e.source), ids.has(e.target)]).toEqual([true, true])
    expect(new Set(g.edges.map((e) => e.id)).size).toBe(g.edges.length)
  })

  it('draws the bench rewrites: direct, userset, computed, tuple to userset, union, exclusion, intersection', () => {
    const g = buildGraph(model(BENCH))
    const edges = edgeText(g)
    expect(edges).toContain('group#member -[direct [user]]-> user')
    expect(edges).toContain('group#member -[userset [group#member]]-> group#member')
    expect(edges).toContain('folder#view/or0 -[ttu view from parent]-> folder#view')
    // document#view: (viewer or owner or view from parent) but not blocked
    const view = g.edges.filter((e) => e.source === 'document#view' || e.source.startsWith('document#view/'))
    expect(view.map((e) => `${e.source} -[${e.kind} ${e.label}]-> ${e.target}`)).toEqual([
      'document#view -[rewrite ]-> document#view/but-not0',
      'document#view/but-not0 -[rewrite base]-> document#view/or1',
      'document#view/or1 -[computed viewer]-> document#viewer',
      'document#view/or1 -[computed owner]-> document#owner',
      'document#view/or1 -[ttu view from parent]-> folder#view',
      'document#view/but-not0 -[computed not blocked]-> document#blocked',
    ])
    const subtract = view.find((e) => e.target === 'document#blocked')!
    expect([subtract.operator, subtract.side]).toEqual(['exclusion', 'subtract'])
    // A rewrite edge carries the operator it leads into (its colour in the graph and legend).
    expect(view.filter((e) => e.kind === 'rewrite').map((e) => [e.target, e.into])).toEqual([
      ['document#view/but-not0', 'exclusion'],
      ['document#view/or1', 'union'],
    ])
    expect(g.edges.filter((e) => e.kind !== 'rewrite').every((e) => e.into === undefined)).toBe(true)
    expect(edges).toContain('document#edit/and2 -[computed owner]-> document#owner')
    expect(g.edges.find((e) => e.source === 'document#edit/and2' && e.kind === 'ttu')?.operator).toBe('intersection')
    expect(conditionsOf(g).size).toBe(0)
  })

  it('shows wildcards, conditions on the edges they restrict, and a tupleset with no matching type', () => {
    const dsl = `model
  schema 1.1
type user
type team
  relations
    define member: [user, user:*, user with in_hours]
type repo
  relations
    define owner: [team]
    define admin: [user with in_hours, team#member]
    define reader: [user:* with in_hours] or admin or member from owner
    define writer: admin and reader
    define pusher: writer but not reader
    define lonely: [user]
    define odd: reader from lonely
condition in_hours(hour: int) {
  hour >= 9 && hour < 17
}
`
    const g = buildGraph(model(dsl))
    const edges = edgeText(g)
    expect(edges).toContain('team#member -[wildcard [user:*]]-> user')
    expect(edges).toContain('team#member -[direct [user with in_hours]]-> user')
    expect(edges).toContain('repo#admin -[userset [team#member]]-> team#member')
    expect(edges).toContain('repo#reader/or0 -[wildcard [user:* with in_hours]]-> user')
    expect(edges).toContain('repo#reader/or0 -[computed admin]-> repo#admin')
    expect(edges).toContain('repo#reader/or0 -[ttu member from owner]-> team#member')
    expect(edges).toContain('repo#writer/and1 -[computed reader]-> repo#reader')
    expect(edges).toContain('repo#pusher/but-not2 -[computed writer]-> repo#writer')
    expect(edges).toContain('repo#pusher/but-not2 -[computed not reader]-> repo#reader')
    // `reader from lonely`: lonely holds users, which have no reader: the edge points at the tupleset.
    expect(edges).toContain('repo#odd -[tupleset reader from lonely]-> repo#lonely')
    const conditions = conditionsOf(g)
    expect([...conditions.keys()]).toEqual(['in_hours'])
    expect(conditions.get('in_hours')!.map((e) => `${e.source}->${e.target}`)).toEqual([
      'team#member->user',
      'repo#admin->user',
      'repo#reader/or0->user',
    ])
    const operators = g.nodes.filter((n) => n.kind === 'operator').map((n) => [n.id, n.label, n.operator])
    expect(operators).toEqual([
      ['repo#reader/or0', 'or', 'union'],
      ['repo#writer/and1', 'and', 'intersection'],
      ['repo#pusher/but-not2', 'but not', 'exclusion'],
    ])
  })

  it('adds a node for a type the model names but does not define, so no edge dangles', () => {
    const g = buildGraph({
      type_definitions: [
        { type: 'doc', relations: { viewer: { this: {} } }, metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'ghost', relation: 'member' }] } } } },
      ],
    })
    expect(g.nodes.map((n) => n.id)).toEqual(['doc', 'doc#viewer', 'ghost', 'ghost#member'])
    expect(edgeText(g)).toEqual(['doc#viewer -[userset [ghost#member]]-> ghost#member'])
  })
})
