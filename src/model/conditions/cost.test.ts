import { describe, expect, it } from 'vitest'
import {
  compile,
  errorMessage,
  FALSE,
  type Params,
  PREFIX,
  t,
  TRUE,
} from './test-support.ts'

describe('cost bound', () => {
  const cost = (
    expression: string,
    params: Params,
    context: Record<string, unknown>,
    max: number,
  ) => compile(expression, params, max).evaluate(context, undefined)
  const exceeded =
    `${PREFIX}failed to evaluate condition expression: ` +
    'operation cancelled: actual cost limit exceeded'

  it('charges like cel-go (OpenFGA TestEvaluateWithMaxCost)', () => {
    const ints = { x: t('int'), y: t('int') }
    expect(errorMessage(cost('x < y', ints, { x: 1, y: 2 }, 2))).toBe(exceeded)
    expect(cost('x < y', ints, { x: 1, y: 2 }, 3)).toEqual(TRUE)
    const strs = { x: t('string'), y: t('string') }
    expect(errorMessage(cost('x == y', strs, { x: 'ab', y: 'ab' }, 2))).toBe(exceeded)
    const list = { strlist: t('list', t('string')) }
    expect(errorMessage(cost("'a' in strlist", list, { strlist: ['c', 'b', 'a'] }, 3))).toBe(
      exceeded,
    )
    expect(cost("'d' in strlist", list, { strlist: ['a', 'b', 'c'] }, 4)).toEqual(FALSE)
  })

  it('stops nested comprehensions over a large context list quickly', () => {
    const c = compile('l.all(a, l.all(b, l.all(c, a + b + c >= 0)))', { l: t('list', t('int')) })
    const l = Array.from({ length: 2000 }, (_, i) => i)
    const start = performance.now()
    expect(errorMessage(c.evaluate({ l }, undefined))).toBe(exceeded)
    expect(performance.now() - start).toBeLessThan(500)
    // the same expression is fine on a small list
    expect(c.evaluate({ l: [1] }, undefined)).toEqual(TRUE)
  })

  it('cannot be absorbed by || or &&', () => {
    const c = compile('l.exists(x, l.exists(y, x + y < 0)) || true', { l: t('list', t('int')) })
    const l = Array.from({ length: 1000 }, (_, i) => i)
    expect(errorMessage(c.evaluate({ l }, undefined))).toBe(exceeded)
  })

  it('bounds list growth and string work by size', () => {
    const c = compile('l.map(x, l + l).size() > 0', { l: t('list', t('int')) }, 10_000)
    const l = Array.from({ length: 20_000 }, (_, i) => i)
    const start = performance.now()
    expect(errorMessage(c.evaluate({ l }, undefined))).toBe(exceeded)
    expect(performance.now() - start).toBeLessThan(500)
    const s = compile('l.all(x, big.contains(x))', { l: t('list', t('string')), big: t('string') })
    expect(errorMessage(s.evaluate({ l: ['a', 'b'], big: 'x'.repeat(100_000) }, undefined))).toBe(
      exceeded,
    )
  })

  it('matches in linear time, even for patterns that make backtracking explode', () => {
    const c = compile('s.matches(p)', { s: t('string'), p: t('string') }, 1_000_000)
    const start = performance.now()
    expect(c.evaluate({ s: 'a'.repeat(5_000) + '!', p: '(a+)+$' }, undefined)).toEqual(FALSE)
    expect(c.evaluate({ s: 'a'.repeat(5_000), p: '(a|aa)*b' }, undefined)).toEqual(FALSE)
    expect(performance.now() - start).toBeLessThan(1000)
  })
})
