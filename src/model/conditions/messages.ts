/**
 * The texts of condition errors, in OpenFGA's wording (`internal/condition/errors.go`), and
 * the rewording of cel-js runtime errors into cel-go's.
 *
 * @module
 */
import { EvaluationError } from '@marcbachmann/cel-js'
import { PembaError } from '../../core/errors.ts'

export const EVALUATION_FAILED = 'failed to evaluate relationship condition'
export const NO_PARAMETERS = 'no parameters defined for the condition'
export const COST_LIMIT_MESSAGE = 'operation cancelled: actual cost limit exceeded'

export function parameterTypeError(condition: string, cause: string): string {
  return `parameter type error on condition '${condition}' - ${cause}`
}

export function conversionCause(param: string, err: unknown): string {
  return `failed to convert context parameter '${param}': ${errorText(err)}`
}

export function compilationError(condition: string, cause: string): PembaError {
  return new PembaError(
    'invalid_authorization_model',
    `failed to compile expression on condition '${condition}' - ${cause}`,
  )
}

export function errorText(err: unknown): string {
  if (err instanceof EvaluationError) return celEvaluationMessage(err)
  return err instanceof Error ? err.message : String(err)
}

/** ConversionError carries an OpenFGA conversion message verbatim. */
export class ConversionError extends Error {}

/** celEvaluationMessage rewords common cel-js runtime errors into cel-go's wording. */
export function celEvaluationMessage(e: EvaluationError): string {
  const summary = e.summary ?? e.message
  switch (e.code) {
    case 'no_such_key':
      return summary.replace(/^No such key: /, 'no such key: ')
    case 'modulo_by_zero':
      return 'modulus by zero'
    case 'numeric_overflow':
      return summary.startsWith('Unsigned') ? 'unsigned integer overflow' : 'integer overflow'
  }
  return summary
}

