/**
 * The one error path of the HTTP layer. Services throw typed errors (`PembaError` with an
 * OpenFGA code, `TupleWriteRejected` from the store's write rules, anything else is a fault);
 * every route, batch item and stream turns them into the contract's wire errors here, and every
 * message goes through the configured redactor, because messages quote the caller's input.
 *
 * @module
 */
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { ConflictError, PembaError, TupleWriteRejected, ERROR_CODES, type ErrorCode, type WriteRejection } from '../core/errors.ts'
import { redactSecrets } from '../core/redact.ts'
import { ArapError, arapErrorType } from '../service/authzen/arap-error.ts'
import { describeTuple, type TupleIdentity } from '../core/tuple.ts'

/** What the mapper needs: the configured redactor, where faults go, and the request they belong to. */
export interface ErrorContext {
  redact: (text: string) => string
  logError: (err: unknown, requestId: string) => void
  requestId: string
}

/**
 * errorContext binds the mapper to a request. `redact` is the configured redactor (it hides the
 * configured preshared keys verbatim); only an app built without one (tests) gets the default.
 */
export function errorContext(
  deps: { redact?: (text: string) => string; logError: (err: unknown, requestId: string) => void },
  requestId: string,
): ErrorContext {
  return { redact: deps.redact ?? redactSecrets, logError: deps.logError, requestId }
}

/**
 * WireError is the contract's `{code, message}` with the HTTP status OpenFGA would send, and,
 * for a refusal the caller may retry (503 `unavailable`, 429 `rate_limited`), the seconds to
 * send as `Retry-After`.
 */
export interface WireError {
  status: number
  body: { code: string; message: string }
  retryAfterSeconds?: number
}

/**
 * wireError maps anything thrown by a handler to the contract's error. A fault that is not the
 * caller's is logged (with the request id) and answered as a bare 500 `internal_error`.
 */
export function wireError(err: unknown, ctx: ErrorContext): WireError {
  const e = callerError(err)
  if (e) return { status: e.status, body: { code: e.code, message: ctx.redact(e.message) }, ...retryAfter(e) }
  ctx.logError(err, ctx.requestId)
  return { status: 500, body: { code: 'internal_error', message: 'Internal Server Error' } }
}

/** retryAfter: `{retryAfterSeconds}` when the error carries one, else nothing. */
function retryAfter(e: PembaError): { retryAfterSeconds?: number } {
  return e.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: e.retryAfterSeconds }
}

/** setRetryAfter: the `Retry-After` header of an answer that carries one (a 429 or 503). */
export function setRetryAfter(header: (name: string, value: string) => void, answer: { retryAfterSeconds?: number }): void {
  if (answer.retryAfterSeconds !== undefined) header('Retry-After', String(Math.max(1, Math.ceil(answer.retryAfterSeconds))))
}

/**
 * ProblemDetails is an RFC 9457 `application/problem+json` answer, as AuthZEN's access-request
 * profile answers every refusal: `{type, title, status, detail}`, plus Pemba's `code`.
 */
export interface ProblemDetails {
  status: number
  body: { type: string; title: string; status: number; detail: string; code: string }
  /** As WireError's: the `Retry-After` of a refusal the caller may retry. */
  retryAfterSeconds?: number
}

/**
 * problemDetails maps anything thrown by an access-request route (§5.7 of the profile): an
 * ArapError is its own `urn:openid:authzen:access-request:error:<code>`; any other caller error
 * of status 400 is the profile's `invalid_request`; any other (an unknown store 404, a body not
 * declared JSON 415, a conflict 409, an outage 503) is `about:blank` with Pemba's `code`, since
 * a problem type pairs with one status (RFC 9457); a fault is logged and answered as a bare 500.
 * The detail is redacted as every message.
 */
export function problemDetails(err: unknown, ctx: ErrorContext): ProblemDetails {
  if (err instanceof ArapError) return problem(err.status, arapErrorType(err.code), err.code, ctx.redact(err.message))
  const e = callerError(err)
  if (e) {
    if (e.status !== 400) return { ...problem(e.status, 'about:blank', e.code, ctx.redact(e.message)), ...retryAfter(e) }
    return problem(e.status, arapErrorType('invalid_request'), 'invalid_request', ctx.redact(e.message))
  }
  ctx.logError(err, ctx.requestId)
  return problem(500, 'about:blank', 'internal_error', 'Internal Server Error')
}

/**
 * problemResponse: the one way a problem+json refusal is sent (routes and middleware alike), so
 * every one carries its `Retry-After` when the refusal has one (a 503 or 429).
 */
export function problemResponse(c: Context, p: ProblemDetails): Response {
  c.header('Content-Type', 'application/problem+json')
  setRetryAfter((name, value) => c.header(name, value), p)
  return c.body(JSON.stringify(p.body), p.status as ContentfulStatusCode)
}

function problem(status: number, type: string, code: string, detail: string): ProblemDetails {
  const title = status === 500 ? 'Internal Server Error' : code.replaceAll('_', ' ')
  return { status, body: { type, title, status, detail, code } }
}

/** BatchItemError is one failed item of a batch-check, as OpenFGA's BatchCheck answers it. */
export interface BatchItemError {
  input_error?: string
  internal_error?: string
  message: string
}

/**
 * batchItemError maps the error of one batch-check item: codes of the input ranges (2000–3999)
 * are `input_error`, internal ones (4000–4999) `internal_error`; a fault is logged and answered
 * without detail.
 */
export function batchItemError(err: unknown, ctx: ErrorContext): BatchItemError {
  const e = callerError(err)
  if (!e) {
    ctx.logError(err, ctx.requestId)
    return { internal_error: 'internal_error', message: 'Internal Server Error' }
  }
  const message = ctx.redact(e.message)
  const n = ERROR_CODES[e.code as ErrorCode]
  if (n !== undefined && n >= 2000 && n < 4000) return { input_error: e.code, message }
  if (n !== undefined && n >= 4000 && n < 5000) return { internal_error: e.code, message }
  return { input_error: 'validation_error', message }
}

/** callerError is the caller's error a thrown value stands for, or undefined for a fault. */
function callerError(err: unknown): PembaError | undefined {
  if (err instanceof PembaError) return err
  if (err instanceof TupleWriteRejected) return writeRejectedError(err.reason, err.tuple)
  if (clientClosed(err)) return new PembaError('cancelled', 'the client closed the connection before its request was read', CLIENT_CLOSED)
  return undefined
}

/**
 * The status recorded for a request whose client went away (nginx's 499): the answer reaches
 * no one, and the access log shows it as the client's doing, not a 500 of Pemba's.
 */
const CLIENT_CLOSED = 499

/**
 * clientClosed: the error Node's HTTP server gives a request body whose connection closed
 * before it was complete (`aborted`, ECONNRESET), as reading the body then throws it. It is
 * the client's doing (or its network's), so never logged as an internal error: anyone could
 * otherwise fill the log with stacks by sending half a body.
 */
function clientClosed(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  return (err.message === 'aborted' && code === 'ECONNRESET') || code === 'ERR_STREAM_PREMATURE_CLOSE'
}

/**
 * The write rules' refusals, in OpenFGA's words. A Write of `doc:1#viewer@user:anne` that is
 * already stored answers 400 `write_failed_due_to_invalid_input`, "cannot write a tuple which
 * already exists: user: 'user:anne', relation: 'viewer', object: 'doc:1': …"; with
 * `on_duplicate: ignore` and another condition or expiry, 409 `Aborted`.
 */
function writeRejectedError(reason: WriteRejection, t: TupleIdentity): PembaError {
  switch (reason) {
    case 'delete_missing':
      return new PembaError(
        'write_failed_due_to_invalid_input',
        `cannot delete a tuple which does not exist: ${describeTuple(t)}: tuple to be written already existed or the tuple to be deleted did not exist`,
      )
    case 'write_existing':
      return new PembaError(
        'write_failed_due_to_invalid_input',
        `cannot write a tuple which already exists: ${describeTuple(t)}: tuple to be written already existed or the tuple to be deleted did not exist`,
      )
    case 'different_condition':
      return new ConflictError(`tuple to be written already existed with a different condition: ${describeTuple(t)}`)
    case 'different_expiry':
      return new ConflictError(`tuple to be written already existed with a different expiry: ${describeTuple(t)}`)
  }
}
