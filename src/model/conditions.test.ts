import { readFileSync } from 'node:fs'
import { transformer } from '@openfga/syntax-transformer'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { PembaError } from '../core/errors.ts'
import {
  type CompiledCondition,
  type ConditionOutcome,
  compileConditions,
  conditionContextSize,
  MAX_CONDITION_CONTEXT_BYTES,
  parseGoDuration,
  parseRFC3339,
  validateConditionContext,
} from './conditions.ts'
import type { Condition, ConditionParamTypeRef, ConditionTypeName } from './types.ts'

type Params = Record<string, ConditionParamTypeRef>

const t = (name: string, ...generics: ConditionParamTypeRef[]): ConditionParamTypeRef => ({
  type_name: `TYPE_NAME_${name.toUpperCase()}` as ConditionTypeName,
  ...(generics.length ? { generic_types: generics } : {}),
})

/** compile builds one condition named `c`. */
function compile(expression: string, parameters: Params = {}, maxCost?: number): CompiledCondition {
  const conditions: Record<string, Condition> = { c: { name: 'c', expression, parameters } }
  return compileConditions(conditions, { maxCost }).get('c')!
}

/** compileError returns the message of the model error, failing if it compiles. */
function compileError(expression: string, parameters: Params = {}): string {
  try {
    compile(expression, parameters)
  } catch (err) {
    expect(err).toBeInstanceOf(PembaError)
    expect((err as PembaError).code).toBe('invalid_authorization_model')
    return (err as PembaError).message
  }
  throw new Error(`expected '${expression}' not to compile`)
}

const TRUE: ConditionOutcome = { kind: 'true' }
const FALSE: ConditionOutcome = { kind: 'false' }
const PREFIX = "failed to evaluate relationship condition: 'c' - "
const PARAM_PREFIX =
  "failed to evaluate relationship condition: parameter type error on condition 'c' - "

function errorMessage(outcome: ConditionOutcome): string {
  if (outcome.kind !== 'error') throw new Error(`expected an error, got ${outcome.kind}`)
  return outcome.message
}

/** conversionError is the message for a context value of `param` that fails conversion. */
function conversionError(c: CompiledCondition, param: string, value: unknown): string {
  return errorMessage(c.evaluate({ [param]: value }, undefined)).replace(
    `${PARAM_PREFIX}failed to convert context parameter '${param}': `,
    '',
  )
}

describe('conformance suite conditions', () => {
  const suite = parseYaml(
    readFileSync(new URL('../../test/conformance/data/abac_tests.yaml', import.meta.url), 'utf8'),
  ) as {
    tests: {
      name: string
      stages: {
        model: string
        tuples?: { condition?: { name: string; context?: Record<string, unknown> } }[]
      }[]
    }[]
  }

  it('compiles every condition of every model and admits every written tuple context', () => {
    let conditions = 0
    let contexts = 0
    for (const test of suite.tests) {
      for (const stage of test.stages) {
        const model = transformer.transformDSLToJSONObject(stage.model) as {
          conditions?: Record<string, Condition>
        }
        const compiled = compileConditions(model.conditions)
        conditions += compiled.size
        for (const tuple of stage.tuples ?? []) {
          const cond = tuple.condition && compiled.get(tuple.condition.name)
          if (!cond) continue
          expect(validateConditionContext(cond, tuple.condition!.context), test.name).toBeNull()
          contexts++
        }
      }
    }
    expect(conditions).toBeGreaterThanOrEqual(29)
    expect(contexts).toBeGreaterThan(0)
  })

  it('handles_floats: out-of-range double strings are errors, extreme doubles are not', () => {
    const c = compile('x > 0.0', { x: t('double') })
    expect(c.evaluate({ x: 1.797693134862315708145274237317 }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: -1.797693134862315708145274237317 }, undefined)).toEqual(FALSE)
    for (const x of [
      '1.79769313486231570814527423731704356798070e+309',
      '-1.79769313486231570814527423731704356798070e+309',
    ]) {
      expect(conversionError(c, 'x', x)).toMatch(
        /^number cannot be represented as a float64: -?1\.797693135e\+309$/,
      )
    }
  })

  it('direct_relations_with_condition: a missing parameter is an error, even if unneeded', () => {
    const c = compile('x < 100 || y < 50', { x: t('int'), y: t('int') })
    expect(c.evaluate({ x: 10, y: 5 }, undefined)).toEqual(TRUE)
    expect(c.evaluate({ x: 101, y: 51 }, undefined)).toEqual(FALSE)
    expect(c.evaluate({ x: 10 }, undefined)).toEqual({
      kind: 'error',
      message: `${PREFIX}context is missing parameters '[y]'`,
      missingParameters: ['y'],
    })
    expect(c.evaluate(undefined, undefined)).toMatchObject({ missingParameters: ['x', 'y'] })
  })
})

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
    expect(parseGoDuration('1h')).toBe(3_600_000_000_000n)
    expect(parseGoDuration('1.5s')).toBe(1_500_000_000n)
    expect(parseGoDuration('-1.5h')).toBe(-5_400_000_000_000n)
    expect(parseGoDuration('1µs2ns')).toBe(1_002n)
    expect(parseGoDuration('.5s')).toBe(500_000_000n)
    expect(parseGoDuration('0')).toBe(0n)
    for (const bad of ['', '1', 's', '.s', '1d', '1h ', '+', '9223372036854775808ns', '3000000h']) {
      expect(parseGoDuration(bad), bad).toBeNull()
    }
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
    expect(parseRFC3339('1972-01-01T10:00:20.021Z')?.toISOString()).toBe('1972-01-01T10:00:20.021Z')
    for (const bad of [
      '2023-02-29T00:00:00Z',
      '2023-01-01 00:00:00Z',
      '2023-01-01T00:00:00',
      '2023-01-01T00:00:60Z',
      '2023-01-01T00:00:00+0100',
    ]) {
      expect(parseRFC3339(bad), bad).toBeNull()
    }
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

describe('ipaddress', () => {
  const c = compile('user_ip.in_cidr(cidr)', { user_ip: t('ipaddress'), cidr: t('string') })
  const inCidr = (ip: string, cidr: string) => c.evaluate({ user_ip: ip, cidr }, undefined)

  it('tests IPv4 and IPv6 membership like netip.Prefix.Contains', () => {
    expect(inCidr('10.1.2.3', '10.0.0.0/8')).toEqual(TRUE)
    expect(inCidr('11.1.2.3', '10.0.0.0/8')).toEqual(FALSE)
    expect(inCidr('192.168.0.255', '192.168.0.0/24')).toEqual(TRUE)
    expect(inCidr('192.168.1.0', '192.168.0.0/24')).toEqual(FALSE)
    expect(inCidr('1.2.3.4', '0.0.0.0/0')).toEqual(TRUE)
    expect(inCidr('2001:db8::1', '2001:db8::/32')).toEqual(TRUE)
    expect(inCidr('2001:db9::1', '2001:db8::/32')).toEqual(FALSE)
    expect(inCidr('::ffff:10.0.0.1', '::ffff:10.0.0.0/104')).toEqual(TRUE)
    // different families and zoned addresses never match
    expect(inCidr('::ffff:10.0.0.1', '10.0.0.0/8')).toEqual(FALSE)
    expect(inCidr('10.0.0.1', '::/0')).toEqual(FALSE)
    expect(inCidr('fe80::1%eth0', 'fe80::/10')).toEqual(FALSE)
  })

  it('reports malformed CIDRs and addresses', () => {
    expect(errorMessage(inCidr('10.1.2.3', '10.0.0/8'))).toBe(
      `${PREFIX}failed to evaluate condition expression: '10.0.0/8' is a malformed CIDR string`,
    )
    expect(errorMessage(inCidr('10.1.2.3', '10.0.0.0/33'))).toContain('malformed CIDR')
    expect(errorMessage(inCidr('10.1.2.3', '10.0.0.0/08'))).toContain('malformed CIDR')
    for (const bad of ['10.0.0', '010.0.0.1', '256.0.0.1', 'example.com', '1::2::3', '::1%']) {
      expect(conversionError(c, 'user_ip', bad)).toBe(
        `expected a well-formed IP address, but found: '${bad}'`,
      )
    }
    expect(conversionError(c, 'user_ip', 1)).toBe(
      "expected an ipaddress string, but found: float64 '1'",
    )
  })

  it('supports ipaddress() literals and equality', () => {
    expect(compile('ipaddress("192.168.0.1").in_cidr("192.168.0.0/24")').evaluate({}, {})).toEqual(
      TRUE,
    )
    expect(
      errorMessage(compile('ipaddress("192.168.0").in_cidr("192.168.0.0/24")').evaluate({}, {})),
    ).toBe(
      `${PREFIX}failed to evaluate condition expression: ` +
        'ParseAddr("192.168.0"): IPv4 address too short',
    )
    const eq = compile('a == ipaddress("::1")', { a: t('ipaddress') })
    expect(eq.evaluate({ a: '0:0::1' }, undefined)).toEqual(TRUE)
    expect(eq.evaluate({ a: '::2' }, undefined)).toEqual(FALSE)
    expect(compileError('ipaddress(true).in_cidr("192.168.0.0/24")')).toBe(
      "failed to compile expression on condition 'c' - " +
        "ERROR: c:1:10: found no matching overload for 'ipaddress' applied to '(bool)'\n" +
        ' | ipaddress(true).in_cidr("192.168.0.0/24")\n' +
        ' | .........^',
    )
  })
})

describe('compilation', () => {
  it('rejects expressions that do not type-check, naming the condition', () => {
    expect(compileError('invalid', { param1: t('string') })).toBe(
      "failed to compile expression on condition 'c' - " +
        "ERROR: c:1:1: undeclared reference to 'invalid' (in container '')\n | invalid\n | ^",
    )
    expect(compileError('x + 1.0 > 2', { x: t('int') })).toContain(
      "found no matching overload for '_+_' applied to '(int, double)'",
    )
    expect(compileError('x < ', { x: t('int') })).toContain("condition 'c' - ERROR: c:1:")
  })

  it('rejects non-bool expressions', () => {
    expect(compileError('param1', { param1: t('string') })).toBe(
      "failed to compile expression on condition 'c' - " +
        "expected a bool condition expression output, but got 'string'",
    )
    expect(compileError('l', { l: t('list', t('int')) })).toContain("but got 'list(int)'")
  })

  it('rejects cross-type numeric comparisons like cel-go', () => {
    expect(compileError('x > 0', { x: t('double') })).toContain(
      "ERROR: c:1:3: found no matching overload for '_>_' applied to '(double, int)'",
    )
    expect(compile('x > 0.0', { x: t('double') }).evaluate({ x: 1 }, undefined)).toEqual(TRUE)
  })

  it('rejects functions outside cel-go’s standard library', () => {
    expect(compileError('"a,b".split(",").size() == 2')).toContain(
      "undeclared reference to 'split'",
    )
    expect(compileError('cel.bind(x, 1, x == 1)')).toContain('undeclared reference to')
    expect(compileError('s.lowerAscii() == "a"', { s: t('string') })).toContain(
      "undeclared reference to 'lowerAscii'",
    )
  })

  it('rejects malformed parameter types', () => {
    expect(compileError('x.size() > 0', { x: t('list') })).toBe(
      "failed to compile expression on condition 'c' - " +
        "failed to decode parameter type for parameter 'x': " +
        // OpenFGA swaps the two counts in this message
        'condition parameter type `TYPE_NAME_LIST` requires 0 generic types; found 1',
    )
    expect(compileError('true', { x: t('int', t('int')) })).toContain('`TYPE_NAME_INT` requires 1')
    expect(compileError('true', { x: { type_name: 'TYPE_NAME_UNSPECIFIED' } })).toContain(
      'unknown condition parameter type `TYPE_NAME_UNSPECIFIED`',
    )
  })

  it('compiles literal regexes with the model', () => {
    expect(compileError('s.matches("(a")', { s: t('string') })).toBe(
      "failed to compile expression on condition 'c' - " +
        'condition expression construction: error parsing regexp: missing closing ): `(a`',
    )
  })

  it('requires the key to match the condition name', () => {
    expect(() =>
      compileConditions({ a: { name: 'b', expression: 'true', parameters: {} } }),
    ).toThrow("condition key 'a' does not match condition name 'b'")
  })

  it('supports the standard conversions cel-js lacks', () => {
    const c = compile(
      'int(ts) == 1696932000 && string(ts) == "2023-10-10T10:00:00Z" && ' +
        'string(d) == "5400s" && int(d) == 5400000000000',
      { ts: t('timestamp'), d: t('duration') },
    )
    expect(c.evaluate({ ts: '2023-10-10T10:00:00Z', d: '1h30m' }, undefined)).toEqual(TRUE)
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
  ])('rejects %j', (p, message) => {
    expect(errorMessage(m('a', p))).toBe(
      `${PREFIX}failed to evaluate condition expression: error parsing regexp: ${message}`,
    )
  })
})

describe('validateConditionContext', () => {
  const c = compile('x < 100 && s != ""', { x: t('int'), s: t('string') })

  it('accepts declared parameters with convertible values, and empty contexts', () => {
    expect(validateConditionContext(c, { x: 1, s: 'a' })).toBeNull()
    expect(validateConditionContext(c, { x: 1 })).toBeNull()
    expect(validateConditionContext(c, {})).toBeNull()
    expect(validateConditionContext(c, undefined)).toBeNull()
  })

  it('rejects unconvertible values and undeclared keys', () => {
    expect(validateConditionContext(c, { x: 'abc' })).toBe(
      "parameter type error on condition 'c' - failed to convert context parameter 'x': " +
        "expected a int64 value, but found invalid string value 'abc'",
    )
    expect(validateConditionContext(c, { x: 1, y: 2 })).toBe('found invalid context parameter: y')
    expect(validateConditionContext(compile('true'), { x: 1 })).toBe(
      "parameter type error on condition 'c' - no parameters defined for the condition",
    )
  })

  it('measures the context as a protobuf Struct and limits it to 32 KiB', () => {
    // Struct{"x": 1}: entry = key(1+1+1) + value(1+1+9) = 14, field = 1+1+14
    expect(conditionContextSize({ x: 1 })).toBe(16)
    expect(conditionContextSize({})).toBe(0)
    // each entry is field(key field + value field); Values: string field(len), bool/null 2,
    // number 9, list field(Σ field(Value)), struct field(Σ entries)
    const entry = (valueSize: number) => 2 + 3 + 2 + valueSize
    const sizes = {
      s: entry(4), // "ab"
      b: entry(2),
      n: entry(2),
      l: entry(2 + (2 + 9) + (2 + 3)), // [1, "a"]
      m: entry(2 + entry(2)), // {k: false}
    }
    expect(conditionContextSize({ s: 'ab', b: true, n: null, l: [1, 'a'], m: { k: false } })).toBe(
      Object.values(sizes).reduce((a, b) => a + b, 0),
    )
    expect(Object.values(sizes).reduce((a, b) => a + b, 0)).toBe(72)
    // one string entry costs 15 bytes of framing beyond its characters at this size
    const under = { s: 'x'.repeat(MAX_CONDITION_CONTEXT_BYTES - 15) }
    expect(conditionContextSize(under)).toBe(MAX_CONDITION_CONTEXT_BYTES)
    expect(validateConditionContext(c, under)).toBeNull()
    const over = { s: 'x'.repeat(MAX_CONDITION_CONTEXT_BYTES) }
    const size = conditionContextSize(over)
    expect(validateConditionContext(c, over)).toBe(
      `condition context size limit exceeded: ${size} bytes exceeds 32768 bytes`,
    )
  })
})
