import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { tokenizeDsl, type Token, type TokenKind } from '../../../console/src/model/tokenize.ts'

const BENCH = readFileSync(new URL('../../../bench/model.fga', import.meta.url), 'utf8')

/** The tokens of one kind, in order, as text. */
const of = (lines: Token[][], kind: TokenKind) => lines.flat().filter((t) => t.kind === kind).map((t) => t.text)

describe('the DSL tokenizer', () => {
  it('gives back every character: each line is its tokens joined', () => {
    const lines = tokenizeDsl(BENCH)
    expect(lines.map((l) => l.map((t) => t.text).join('')).join('\n')).toBe(BENCH)
  })

  it('tells keywords, type names, relation names and operators apart in the bench model', () => {
    const lines = tokenizeDsl(BENCH)
    expect(of(lines, 'keyword').slice(0, 4)).toEqual(['model', 'schema', 'type', 'type'])
    expect(of(lines, 'number')).toEqual(['1.1'])
    // Type names: after `type`, and inside [...].
    expect(new Set(of(lines, 'type'))).toEqual(new Set(['user', 'group', 'folder', 'document']))
    // `define view: (viewer or owner or view from parent) but not blocked`
    const view = lines.find((l) => l.map((t) => t.text).join('').includes('but not blocked'))!
    expect(view.filter((t) => t.kind === 'operator').map((t) => t.text)).toEqual(['or', 'or', 'from', 'but', 'not'])
    expect(view.filter((t) => t.kind === 'relation').map((t) => t.text)).toEqual(['view', 'viewer', 'owner', 'view', 'parent', 'blocked'])
    // `[user, group#member]`: group is a type, member a relation, the # punctuation, not a comment.
    const member = lines.find((l) => l.map((t) => t.text).join('').includes('define member'))!
    expect(member.map((t) => [t.kind, t.text]).filter(([k]) => k !== 'space')).toEqual([
      ['keyword', 'define'],
      ['relation', 'member'],
      ['punct', ':'],
      ['punct', '['],
      ['type', 'user'],
      ['punct', ','],
      ['type', 'group'],
      ['punct', '#'],
      ['relation', 'member'],
      ['punct', ']'],
    ])
    expect(of(lines, 'comment')).toEqual([])
  })

  it('reads comments, wildcards, `with` conditions and a condition with its parameters and body', () => {
    const dsl = [
      '# the model',
      'model',
      '  schema 1.1',
      'type user',
      'type doc',
      '  relations',
      '    define viewer: [user, user:*, user with in_office] # inline comment',
      '',
      'condition in_office(ip: ipaddress, allowed: list<string>) {',
      '  ip.in_cidr("10.0.0.0/8") && "x" in allowed',
      '}',
    ].join('\n')
    const lines = tokenizeDsl(dsl)
    expect(of(lines, 'comment')).toEqual(['# the model', '# inline comment'])
    expect(of(lines, 'wildcard')).toEqual([':*'])
    expect(of(lines, 'operator')).toEqual(['with'])
    expect(of(lines, 'condition')).toEqual(['in_office', 'in_office'])
    expect(of(lines, 'param')).toEqual(['ip', 'allowed'])
    expect(of(lines, 'param-type')).toEqual(['ipaddress', 'list', 'string'])
    // The CEL body is one expression token, not relation names or comments.
    expect(of(lines, 'expression')).toEqual(['  ip.in_cidr("10.0.0.0/8") && "x" in allowed'])
    expect(lines[10]).toEqual([{ kind: 'punct', text: '}' }])
    expect(lines.map((l) => l.map((t) => t.text).join('')).join('\n')).toBe(dsl)
  })

  it('treats the line after a condition body as the model again', () => {
    const lines = tokenizeDsl('condition c(x: int) { x < 3 }\ntype user')
    expect(of(lines, 'expression').join('')).toBe(' x < 3 ')
    expect(lines[1].map((t) => t.kind)).toEqual(['keyword', 'space', 'type'])
  })

  it('skips braces inside CEL strings and // comments when finding the end of a condition body', () => {
    const dsl = [
      'condition c(x: map<string>) {',
      '  x["}"] == "a{" && x[\'\\\'}\'] != r"\\}" // not { balanced',
      '}',
      'type user',
    ].join('\n')
    const lines = tokenizeDsl(dsl)
    expect(lines[1].filter((t) => t.kind !== 'comment').map((t) => t.kind)).toEqual(['expression'])
    expect(of(lines, 'comment')).toEqual(['// not { balanced'])
    expect(lines[2]).toEqual([{ kind: 'punct', text: '}' }])
    expect(lines[3].map((t) => t.kind)).toEqual(['keyword', 'space', 'type'])
    expect(lines.map((l) => l.map((t) => t.text).join('')).join('\n')).toBe(dsl)
  })

  it('keeps a triple-quoted CEL string over lines as text', () => {
    const lines = tokenizeDsl(['condition c(x: string) {', '  x == """a }', '} b""" && true', '}', 'type user'].join('\n'))
    expect(lines[2].map((t) => t.kind)).toEqual(['expression'])
    expect(lines[3]).toEqual([{ kind: 'punct', text: '}' }])
    expect(lines[4].map((t) => t.kind)).toEqual(['keyword', 'space', 'type'])
  })
})
