/**
 * The error of a model Pemba refuses, with what it knows of where the fault is: the type,
 * relation or condition a validation rule is about (`subject`), and, for a model read from files,
 * diagnostics with 1-based file positions (`docs/models.md`). It is an
 * `invalid_authorization_model` PembaError, so the API answers it as before.
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'

/** What a refused rule is about: a type, a relation of a type, or a condition. */
export interface ModelSubject {
  type?: string
  relation?: string
  condition?: string
}

/** One problem in a model file: 1-based line and column, as editors and compilers count. */
export interface ModelDiagnostic {
  file?: string
  line?: number
  column?: number
  /** Set last, so that JSON reports read file, line, column, message. */
  message: string
}

/** How many diagnostics one error message lists; a broken file can produce dozens. */
const MAX_LISTED = 5

export class InvalidModelError extends PembaError {
  readonly subject?: ModelSubject
  readonly diagnostics: readonly ModelDiagnostic[]

  constructor(message: string, subject?: ModelSubject, diagnostics: readonly ModelDiagnostic[] = []) {
    super('invalid_authorization_model', message)
    this.subject = subject
    this.diagnostics = diagnostics
  }
}

/**
 * diagnosticsError builds the error for problems found in files: its message lists the first
 * few as `core.fga:7:20: \`usr\` is not a valid type.`, joined by `; `.
 */
export function diagnosticsError(
  diagnostics: readonly ModelDiagnostic[],
  subject?: ModelSubject,
): InvalidModelError {
  const shown = diagnostics.slice(0, MAX_LISTED).map(formatDiagnostic)
  const more = diagnostics.length - shown.length
  const message = shown.join('; ') + (more > 0 ? `; and ${more} more` : '')
  return new InvalidModelError(message, subject, diagnostics)
}

/**
 * formatDiagnostic: `file:line:column: message` (a compiler's form, which editors link), or
 * `line 3, column 5: message` without a file; the parts not known are left out.
 */
export function formatDiagnostic(d: ModelDiagnostic): string {
  let at: string
  if (d.file !== undefined) {
    at = d.file
    if (d.line !== undefined) at += d.column !== undefined ? `:${d.line}:${d.column}` : `:${d.line}`
  } else if (d.line !== undefined) {
    at = d.column !== undefined ? `line ${d.line}, column ${d.column}` : `line ${d.line}`
  } else {
    return d.message
  }
  return `${at}: ${d.message}`
}
