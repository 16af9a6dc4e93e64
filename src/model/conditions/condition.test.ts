import { describe, expect, it } from 'vitest'
import {
  compile,
  errorMessage,
  FALSE,
  PARAM_PREFIX,
  PREFIX,
  t,
  TRUE,
} from './test-support.ts'

describe('context merging', () => {
  const c = compile('x < 100', { x: t('int') })

  it('lets the tuple context override the request context key by key', () => {
    expect(c.evaluate({ x: 5 }, { x: 200 })).toEqual(FALSE)
    expect(c.evaluate({ x: 500 }, { x: 5 })).toEqual(TRUE)
    expect(c.evaluate({ x: 5 }, {})).toEqual(TRUE)
    expect(c.evaluate(undefined, { x: 5 })).toEqual(TRUE)
  })

  it('ignores undeclared keys at check time', () => {
    expect(c.evaluate({ x: 5, other: 'ignored' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ param2: 'ok' }, undefined)).toMatchObject({ missingParameters: ['x'] })
  })

  it('reports a conversion error before missing parameters', () => {
    const xy = compile('x < y', { x: t('int'), y: t('int') })
    expect(errorMessage(xy.evaluate({ y: 'no' }, undefined))).toBe(
      `${PARAM_PREFIX}failed to convert context parameter 'y': ` +
        "expected a int64 value, but found invalid string value 'no'",
    )
  })

  it('refuses any context for a condition without parameters', () => {
    const none = compile('true')
    expect(none.evaluate(undefined, undefined)).toEqual(TRUE)
    expect(none.evaluate({}, {})).toEqual(TRUE)
    expect(errorMessage(none.evaluate({ x: 1 }, undefined))).toBe(
      `${PARAM_PREFIX}no parameters defined for the condition`,
    )
  })
})

describe('evaluation errors', () => {
  it('reports runtime errors as error outcomes', () => {
    const c = compile('10 / x == 1', { x: t('int') })
    expect(errorMessage(c.evaluate({ x: 0 }, undefined))).toBe(
      `${PREFIX}failed to evaluate condition expression: division by zero`,
    )
    const m = compile('m.missing == 1', { m: t('map', t('int')) })
    expect(errorMessage(m.evaluate({ m: {} }, undefined))).toBe(
      `${PREFIX}failed to evaluate condition expression: no such key: missing`,
    )
  })

  it('absorbs an error on one side of || and && like CEL does', () => {
    const c = compile('10 / x == 1 || y', { x: t('int'), y: t('bool') })
    expect(c.evaluate({ x: 0, y: true }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: 0, y: false }, undefined).kind).toBe('error')
  })
})
