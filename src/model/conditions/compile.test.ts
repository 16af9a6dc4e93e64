import { readFileSync } from 'node:fs'
import { transformer } from '@openfga/syntax-transformer'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import type { Condition } from '../types.ts'
import {
  compileConditions,
  conditionContextSize,
  MAX_CONDITION_CONTEXT_BYTES,
  validateConditionContext,
} from './compile.ts'
import {
  compile,
  compileError,
  conversionError,
  FALSE,
  PREFIX,
  t,
  TRUE,
} from './test-support.ts'

describe('conformance suite conditions', () => {
  const suite = parseYaml(
    readFileSync(
      new URL('../../../test/conformance/data/abac_tests.yaml', import.meta.url),
      'utf8',
    ),
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
