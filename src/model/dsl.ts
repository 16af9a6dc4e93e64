/**
 * OpenFGA DSL → API JSON, for the CLI, fixtures and tests. The conversion is the upstream
 * transformer's (`@openfga/syntax-transformer`), which checks syntax only: run
 * `validateAuthorizationModel` on the result before storing it.
 *
 * @module
 */

import { transformer } from '@openfga/syntax-transformer'
import { PembaError } from '../core/errors.ts'
import type { AuthorizationModelInput } from './types.ts'

/** How many syntax errors one message lists; a broken file can produce dozens. */
const MAX_REPORTED_ERRORS = 5
/** Cap on the text taken from any one error, so a message never embeds a dump of the input. */
const MAX_ERROR_TEXT = 300

/**
 * modelFromDSL converts DSL text such as
 *
 *     model
 *       schema 1.1
 *     type user
 *     type document
 *       relations
 *         define viewer: [user]
 *
 * to an `AuthorizationModelInput`. A syntax error becomes an `invalid_authorization_model`
 * PembaError with 1-based positions (the transformer's are 0-based) and no stack trace: `typ user`
 * on the third line gives "invalid DSL: line 3, column 1: no viable alternative at input '\ntyp'".
 */
export function modelFromDSL(dsl: string): AuthorizationModelInput {
  try {
    return transformer.transformDSLToJSONObject(dsl) as unknown as AuthorizationModelInput
  } catch (e) {
    throw new PembaError('invalid_authorization_model', `invalid DSL: ${describeDSLError(e)}`)
  }
}

/** The parts of the transformer's error classes (errors.BaseError / BaseMultiError) used here. */
interface PositionedError {
  msg?: unknown
  message?: unknown
  line?: { start?: unknown } | null
  column?: { start?: unknown } | null
}

function describeDSLError(e: unknown): string {
  const errors = (e as { errors?: unknown } | null)?.errors
  if (Array.isArray(errors) && errors.length > 0) {
    const shown = errors.slice(0, MAX_REPORTED_ERRORS).map((x) => describeOne(x as PositionedError))
    const more = errors.length - shown.length
    return shown.join('; ') + (more > 0 ? `; and ${more} more` : '')
  }
  if (e !== null && typeof e === 'object') return describeOne(e as PositionedError)
  return clip(String(e))
}

function describeOne(e: PositionedError): string {
  const text = clip(
    typeof e.msg === 'string' && e.msg !== ''
      ? e.msg
      : typeof e.message === 'string'
        ? e.message
        : String(e),
  )
  const line = e.line?.start
  const column = e.column?.start
  if (typeof line !== 'number') return text
  const at =
    typeof column === 'number' ? `line ${line + 1}, column ${column + 1}` : `line ${line + 1}`
  return `${at}: ${text}`
}

/** clip puts a message on one line and keeps at most MAX_ERROR_TEXT characters of it. */
function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > MAX_ERROR_TEXT ? `${flat.slice(0, MAX_ERROR_TEXT)}…` : flat
}
