import { describe, expect, it } from 'vitest'
import { compileRegex, expandedSize, regexSearch, withoutCaptureNames } from './regex.ts'
import { compile, errorMessage, FALSE, PREFIX, t, TRUE } from './test-support.ts'

describe('matches (RE2 syntax)', () => {
  const c = compile('s.matches(p)', { s: t('string'), p: t('string') }, 1_000_000)
  const m = (s: string, p: string) => c.evaluate({ s, p }, undefined)

  it.each([
    ['abc', 'b', true],
    ['abc', '^b', false],
    ['abc', '^a.c$', true],
    ['a\nc', '^a.c$', false],
    ['a\nc', '(?s)^a.c$', true],
    ['x\nyz', '(?m)^yz$', true],
    ['x\nyz', '^yz$', false],
    ['ABC', '(?i)abc', true],
    ['ABC', 'a(?i:b)c', false],
    ['aBc', 'a(?i:b)c', true],
    ['user-42', '^[a-z]+-\\d{2}$', true],
    ['user-4', '^[a-z]+-\\d{2,3}$', false],
    ['foo bar', '\\bbar\\b', true],
    ['foobar', '\\bbar\\b', false],
    ['cat', '^(cat|dog)$', true],
    ['cow', '^(cat|dog)$', false],
    ['a.b', 'a\\.b', true],
    ['axb', 'a\\.b', false],
    ['x]', '[]]', true],
    ['-', '[a-]', true],
    ['é', '^\\pL$', true],
    ['1', '^\\PL$', true],
    ['A', '^[[:upper:]]$', true],
    ['tab\there', '\\t', true],
    ['a+b', '\\Qa+b\\E', true],
    ['😀x', '^.x$', true],
    ['', '^$', true],
    ['abc', '', true],
    ['aaa', '^a{3}$', true],
    ['aaaa', '^a{3}$', false],
    ['ab', '^a{0,}b+?$', true],
    ['aé', '^a[^a]$', true],
    // where Pemba's earlier hand-written matcher and Go differed, re2js follows Go
    ['ſ', '(?i)s', true], // case folding by Unicode orbits: s, S, ſ
    ['\u212a', '(?i)k', true], // K, k and the Kelvin sign
    ['\u212a', '(?i)\\W', false], // so (?i)\W excludes the Kelvin sign
    ['k', '\\Qk*\\E{2}', false], // a repetition after \Q…\E applies to its last character
    ['k**', '^\\Qk*\\E{2}$', true],
    ['_', '\\_', true], // Go accepts \_
    ['a', '(?)a', true], // an empty flag group
    ['aa', 'a(?i){2}', true], // a flag group between an operand and its repetition
    ['xy', '(?P<n>x)(?P<n>y)', true], // Go accepts a capture name twice
    ['xy', '(?<n>x)[(?<n>]*(?P<n>y)', true],
  ])('%j matches %j: %s', (s, p, want) => {
    expect(m(s, p)).toEqual(want ? TRUE : FALSE)
  })

  it.each([
    ['(a', 'missing closing ): `(a`'],
    ['a)', 'unexpected ): `a)`'],
    ['*a', 'missing argument to repetition operator: `*`'],
    ['a**', 'invalid nested repetition operator: `**`'],
    ['a{1001}', 'invalid repeat count: `{1001}`'],
    ['[a', 'missing closing ]: `[a`'],
    ['[z-a]', 'invalid character class range: `z-a`'],
    ['(a)\\1', 'invalid escape sequence: `\\1`'],
    ['a(?=b)', 'invalid or unsupported Perl syntax: `(?=`'],
    ['\\', 'trailing backslash at end of expression: ``'],
    // Go's texts, where Pemba's earlier matcher and re2js differ from them
    ['*?', 'missing argument to repetition operator: `*?`'],
    ['(?i', 'invalid or unsupported Perl syntax: `(?i`'],
    ['(?P=n)', 'invalid or unsupported Perl syntax: `(?P`'],
    ['\\x{110000}', 'invalid escape sequence: `\\x{110000`'],
    ['(a{1000}){1000}', 'invalid repeat count: `{1000}`'],
    ['a\\', 'trailing backslash at end of expression: ``'],
    ['(?P<n>x)(?P<n>y))', 'unexpected ): `(?P<n>x)(?P<n>y))`'],
    ['(?P<n>x)(?P<n>y', 'missing closing ): `(?P<n>x)(?P<n>y`'],
  ])('rejects %j', (p, message) => {
    expect(errorMessage(m('a', p))).toBe(
      `${PREFIX}failed to evaluate condition expression: error parsing regexp: ${message}`,
    )
  })

  it('refuses nesting deeper than Go allows, quoting the pattern', () => {
    const p = '('.repeat(1001) + ')'.repeat(1001)
    expect(errorMessage(m('a', p))).toBe(
      `${PREFIX}failed to evaluate condition expression: error parsing regexp: ` +
        `expression nests too deeply: \`${p}\``,
    )
  })

  it('refuses patterns that expand past 10,000 instructions before compiling them', () => {
    const alternatives = Array.from({ length: 60 }, (_, i) => `x${i}y`).join('|')
    for (const p of [`(?:${alternatives}){1000}`, '[\\s\\S]{1000}'.repeat(11)]) {
      const start = performance.now()
      expect(errorMessage(m('a', p))).toBe(
        `${PREFIX}failed to evaluate condition expression: error parsing regexp: ` +
          `expression too large: \`${p}\``,
      )
      expect(performance.now() - start).toBeLessThan(100)
    }
    // a syntax error anywhere is reported first, as Go parses before sizing
    const invalid = 'abcdefghijk'.replace(/./g, '$&{1000}') + '('
    expect(errorMessage(m('a', invalid))).toContain('missing closing )')
    // just under the limit compiles and matches
    expect(m('a'.repeat(9), 'a{9}')).toEqual(TRUE)
    expect(m('x', '[a-z]{1000}[0-9]{1000}[A-Z]{1000}|x')).toEqual(TRUE)
  })
})

describe('the pattern scanner', () => {
  it.each([
    ['abc', 3],
    ['a{3}', 3],
    ['a{1,3}', 5], // a(a(a)?)?
    ['a{2,}', 3], // aa+
    ['a*', 2],
    ['(ab){10}', 20],
    ['(?:(?:a{10}){10}){10}', 1000],
    ['[a{9}]{2}', 2], // a class is one operand
    ['\\Qa{9}\\E', 4], // and \Q…\E is literal
    ['\\Qab\\E{4}', 5], // whose last character a repetition applies to
    ['\\x{41}{3}\\p{Greek}{2}', 5],
    ['a|b', 3],
    ['x{,5}', 5], // not a repetition
  ])('sizes %j as %d instructions', (p, size) => {
    expect(expandedSize(p)).toBe(size)
  })

  it('removes capture names only where they are group names', () => {
    expect(withoutCaptureNames('(?P<a>x)(?<b>y)(?:z)(?i)')).toBe('(x)(y)(?:z)(?i)')
    const notNames = '[(?P<a>]\\(?P<b>x)\\Q(?P<c>\\E'
    expect(withoutCaptureNames(notNames)).toBe(notNames)
    expect(withoutCaptureNames('(?P<a-b>x)')).toBe('(?P<a-b>x)')
  })

  it('compiles and searches without anchoring', () => {
    expect(regexSearch(compileRegex('b+'), 'abbc')).toBe(true)
    expect(regexSearch(compileRegex('^b+$'), 'abbc')).toBe(false)
  })
})
