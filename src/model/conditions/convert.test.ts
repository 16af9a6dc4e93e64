import { describe, expect, it } from 'vitest'
import {
  compile,
  conversionError,
  errorMessage,
  FALSE,
  PREFIX,
  t,
  TRUE,
} from './test-support.ts'

describe('parameter types and context conversion', () => {
  it('int: integral numbers and numeric strings; int64 saturates', () => {
    const c = compile('x == 42', { x: t('int') })
    expect(c.evaluate({ x: 42 }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: '42' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: '4.2e1' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: 41 }, undefined)).toEqual(FALSE)
    const big = compile('x == 9223372036854775807', { x: t('int') })
    expect(big.evaluate({ x: 1e30 }, undefined)).toEqual(TRUE)
    expect(big.evaluate({ x: '99999999999999999999999' }, undefined)).toEqual(TRUE)
    expect(conversionError(c, 'x', 10.5)).toBe(
      "expected an int value, but found numeric value '10.5'",
    )
    expect(conversionError(c, 'x', '3.5')).toBe(
      "expected an int value, but found numeric value '3.5'",
    )
    expect(conversionError(c, 'x', true)).toBe("expected type value 'int64', but found 'bool'")
    expect(conversionError(c, 'x', null)).toBe(
      "expected type value 'int64', but found '%!s(<nil>)'",
    )
    expect(conversionError(c, 'x', 'ten')).toBe(
      "expected a int64 value, but found invalid string value 'ten'",
    )
  })

  it('uint: non-negative integers', () => {
    const c = compile('x == 7u', { x: t('uint') })
    expect(c.evaluate({ x: 7 }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: '7' }, undefined)).toEqual(TRUE)
    expect(conversionError(c, 'x', -1)).toBe("expected a uint value, but found int64 value '-1'")
    expect(conversionError(c, 'x', '-1')).toBe("expected a uint value, but found int64 value '-1'")
    expect(conversionError(c, 'x', -10.5)).toBe(
      "expected a uint value, but found numeric value '-10.5'",
    )
  })

  it('double: numbers, and numeric strings that are exact float64 values', () => {
    const c = compile('x == 3.5', { x: t('double') })
    expect(c.evaluate({ x: 3.5 }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: '3.5' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: '35e-1' }, undefined)).toEqual(TRUE)
    expect(compile('x == 0.1', { x: t('double') }).evaluate({ x: 0.1 }, undefined)).toEqual(TRUE)
    expect(conversionError(c, 'x', '0.1')).toBe('number cannot be represented as a float64: 0.1')
    expect(conversionError(c, 'x', '1e-400')).toBe(
      'number cannot be represented as a float64: 1e-400',
    )
    expect(conversionError(c, 'x', 'abc')).toBe(
      "expected a float64 value, but found invalid string value 'abc'",
    )
    expect(conversionError(c, 'x', [1])).toBe(
      "expected type value 'float64', but found '[]interface {}'",
    )
  })

  it('bool and string: only values of that JSON type', () => {
    const b = compile('flag', { flag: t('bool') })
    expect(b.evaluate({ flag: true }, undefined)).toEqual(TRUE)
    expect(b.evaluate({ flag: false }, undefined)).toEqual(FALSE)
    expect(conversionError(b, 'flag', 'true')).toBe(
      "expected type value 'bool', but found 'string'",
    )
    const s = compile("s == 'ok'", { s: t('string') })
    expect(s.evaluate({ s: 'ok' }, undefined)).toEqual(TRUE)
    expect(conversionError(s, 's', 1)).toBe("expected type value 'string', but found 'float64'")
    expect(conversionError(s, 's', { a: 1 })).toBe(
      "expected type value 'string', but found 'map[string]interface {}'",
    )
  })

  it('duration: Go duration strings', () => {
    const c = compile('d == duration("630s")', { d: t('duration') })
    expect(c.evaluate({ d: '10m30s' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ d: '10.5m' }, undefined)).toEqual(TRUE)
    expect(
      compile('d > duration("1s")', { d: t('duration') }).evaluate({ d: '1.5s' }, undefined),
    ).toEqual(TRUE)
    expect(
      compile('d < duration("0s")', { d: t('duration') }).evaluate({ d: '-1h' }, undefined),
    ).toEqual(TRUE)
    expect(conversionError(c, 'd', '1 hour')).toBe(
      "expected a valid duration string, but found: '1 hour'",
    )
    expect(conversionError(c, 'd', 10)).toBe("expected a duration string, but found: float64 '10'")
  })

  it('timestamp: RFC 3339 strings', () => {
    const c = compile('ts == timestamp("2023-10-11T10:00:00Z")', { ts: t('timestamp') })
    expect(c.evaluate({ ts: '2023-10-11T10:00:00Z' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ ts: '2023-10-11T12:30:00+02:30' }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ ts: '2023-10-11T10:00:00.000000000Z' }, undefined)).toEqual(TRUE)
    expect(conversionError(c, 'ts', '2023-0914')).toBe(
      "expected RFC 3339 formatted timestamp string, but found '2023-0914'",
    )
    expect(conversionError(c, 'ts', 5)).toBe(
      "expected RFC 3339 formatted timestamp string, but found: float64 '5'",
    )
  })

  it('timestamps and durations combine: current_time < grant_time + grant_duration', () => {
    const c = compile('current_time < grant_time + grant_duration', {
      current_time: t('timestamp'),
      grant_time: t('timestamp'),
      grant_duration: t('duration'),
    })
    const grant = { grant_time: '2023-01-01T00:00:00Z', grant_duration: '1h' }
    expect(c.evaluate({ current_time: '2023-01-01T00:10:00Z' }, grant)).toEqual(TRUE)
    expect(c.evaluate({ current_time: '2023-01-01T02:00:00Z' }, grant)).toEqual(FALSE)
    expect(errorMessage(c.evaluate(undefined, grant))).toBe(
      `${PREFIX}context is missing parameters '[current_time]'`,
    )
    expect(errorMessage(c.evaluate(undefined, grant, 'document:1#viewer@user:anne'))).toBe(
      `${PREFIX}tuple 'document:1#viewer@user:anne' is missing context parameters '[current_time]'`,
    )
  })

  it('list<T>: every item converts', () => {
    const c = compile("'a' in l && l.size() == 2", { l: t('list', t('string')) })
    expect(c.evaluate({ l: ['a', 'b'] }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ l: ['b', 'c'] }, undefined)).toEqual(FALSE)
    expect(conversionError(c, 'l', 'a')).toBe('list requires a list, found: string')
    expect(conversionError(c, 'l', ['a', 1])).toBe(
      "found an invalid list item at index `1`: expected type value 'string', but found 'float64'",
    )
    const ints = compile('l.all(x, x > 0) && l.exists_one(x, x == 2)', { l: t('list', t('int')) })
    expect(ints.evaluate({ l: [1, 2, 3] }, undefined)).toEqual(TRUE)
    expect(ints.evaluate({ l: [1, 2, 2] }, undefined)).toEqual(FALSE)
  })

  it('map<T>: string keys, every value converts, no inherited keys', () => {
    const c = compile("m.a == 1 && 'b' in m && m.filter(k, m[k] > 1) == ['b']", {
      m: t('map', t('int')),
    })
    expect(c.evaluate({ m: { a: 1, b: 2 } }, undefined)).toEqual(TRUE)
    expect(conversionError(c, 'm', [1])).toBe('map requires a map, found: []interface {}')
    expect(conversionError(c, 'm', { a: true })).toBe(
      "found an invalid value for key 'a': expected type value 'int64', but found 'bool'",
    )
    const missing = compile('m.constructor == 1', { m: t('map', t('int')) })
    expect(errorMessage(missing.evaluate({ m: {} }, undefined))).toBe(
      `${PREFIX}failed to evaluate condition expression: no such key: constructor`,
    )
  })

  it('any: JSON values as they are (numbers are doubles)', () => {
    const c = compile("a.user.age >= 18.0 && a.roles.exists(r, r == 'admin')", { a: t('any') })
    expect(c.evaluate({ a: { user: { age: 30 }, roles: ['admin'] } }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ a: { user: { age: 3 }, roles: ['admin'] } }, undefined)).toEqual(FALSE)
    const n = compile('a == 1', { a: t('any') })
    expect(n.evaluate({ a: 1 }, undefined)).toEqual(TRUE)
    expect(compile('a == null', { a: t('any') }).evaluate({ a: null }, undefined)).toEqual(TRUE)
  })
})
