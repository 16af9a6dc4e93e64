/**
 * Helpers shared by the condition tests: parameter types, one-condition compilation, and the
 * message prefixes OpenFGA puts before evaluation and conversion errors.
 */
import { expect } from 'vitest'
import { PembaError } from '../../core/errors.ts'
import type { Condition, ConditionParamTypeRef, ConditionTypeName } from '../types.ts'
import { type CompiledCondition, type ConditionOutcome, compileConditions } from './compile.ts'

export type Params = Record<string, ConditionParamTypeRef>

/** t is a parameter type: `t('list', t('int'))` is `list<int>`. */
export const t = (
  name: string,
  ...generics: ConditionParamTypeRef[]
): ConditionParamTypeRef => ({
  type_name: `TYPE_NAME_${name.toUpperCase()}` as ConditionTypeName,
  ...(generics.length ? { generic_types: generics } : {}),
})

/** compile builds one condition named `c`. */
export function compile(
  expression: string,
  parameters: Params = {},
  maxCost?: number,
): CompiledCondition {
  const conditions: Record<string, Condition> = { c: { name: 'c', expression, parameters } }
  return compileConditions(conditions, { maxCost }).get('c')!
}

/** compileError returns the message of the model error, failing if it compiles. */
export function compileError(expression: string, parameters: Params = {}): string {
  try {
    compile(expression, parameters)
  } catch (err) {
    expect(err).toBeInstanceOf(PembaError)
    expect((err as PembaError).code).toBe('invalid_authorization_model')
    return (err as PembaError).message
  }
  throw new Error(`expected '${expression}' not to compile`)
}

export const TRUE: ConditionOutcome = { kind: 'true' }
export const FALSE: ConditionOutcome = { kind: 'false' }
export const PREFIX = "failed to evaluate relationship condition: 'c' - "
export const PARAM_PREFIX =
  "failed to evaluate relationship condition: parameter type error on condition 'c' - "

export function errorMessage(outcome: ConditionOutcome): string {
  if (outcome.kind !== 'error') throw new Error(`expected an error, got ${outcome.kind}`)
  return outcome.message
}

/** conversionError is the message for a context value of `param` that fails conversion. */
export function conversionError(c: CompiledCondition, param: string, value: unknown): string {
  return errorMessage(c.evaluate({ [param]: value }, undefined)).replace(
    `${PARAM_PREFIX}failed to convert context parameter '${param}': `,
    '',
  )
}
