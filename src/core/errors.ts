/**
 * Errors that reach a caller. Each carries the OpenFGA error `code` string; the HTTP status is
 * derived from the code's numeric range exactly as OpenFGA's gateway does (1xxx → 401,
 * 2000–3499 → 400, 35xx → 422, 4xxx → 500, ≥5000 → 404), so SDK retry logic behaves the same.
 *
 * @module
 */
import type { TupleIdentity } from './tuple.ts'

/** Numeric values of the OpenFGA error codes Pemba emits; the range decides the HTTP status. */
export const ERROR_CODES = {
  // AuthErrorCode
  auth_failed_invalid_subject: 1001,
  auth_failed_invalid_audience: 1002,
  auth_failed_invalid_issuer: 1003,
  invalid_claims: 1004,
  auth_failed_invalid_bearer_token: 1005,
  bearer_token_missing: 1010,
  unauthenticated: 1500,
  forbidden: 1600,
  // ErrorCode
  validation_error: 2000,
  authorization_model_not_found: 2001,
  authorization_model_resolution_too_complex: 2002,
  invalid_write_input: 2003,
  cannot_allow_duplicate_tuples_in_one_request: 2004,
  cannot_allow_duplicate_types_in_one_request: 2005,
  cannot_allow_multiple_references_to_one_relation: 2006,
  invalid_continuation_token: 2007,
  invalid_tuple_set: 2008,
  invalid_check_input: 2009,
  invalid_expand_input: 2010,
  unsupported_user_set: 2011,
  invalid_object_format: 2012,
  write_failed_due_to_invalid_input: 2017,
  authorization_model_assertions_not_found: 2018,
  latest_authorization_model_not_found: 2020,
  type_not_found: 2021,
  relation_not_found: 2022,
  empty_relation_definition: 2023,
  invalid_user: 2025,
  invalid_tuple: 2027,
  unknown_relation: 2028,
  store_id_invalid_length: 2030,
  assertions_too_many_items: 2033,
  id_too_long: 2034,
  authorization_model_id_too_long: 2036,
  tuple_key_value_not_specified: 2037,
  tuple_keys_too_many_or_too_few_items: 2038,
  page_size_invalid: 2039,
  param_missing_value: 2040,
  difference_base_missing_value: 2041,
  subtract_base_missing_value: 2042,
  object_too_long: 2043,
  relation_too_long: 2044,
  type_definitions_too_few_items: 2045,
  type_invalid_length: 2046,
  type_invalid_pattern: 2047,
  relations_too_few_items: 2048,
  relations_too_long: 2049,
  relations_invalid_pattern: 2050,
  object_invalid_pattern: 2051,
  query_string_type_continuation_token_mismatch: 2052,
  exceeded_entity_limit: 2053,
  invalid_contextual_tuple: 2054,
  duplicate_contextual_tuple: 2055,
  invalid_authorization_model: 2056,
  unsupported_schema_version: 2057,
  cancelled: 2058,
  invalid_start_time: 2059,
  // Pemba's: a JSON endpoint was sent a body declared as another type (HTTP 415, given explicitly)
  unsupported_media_type: 2060,
  // Throttling
  throttled_timeout_error: 3500,
  // InternalErrorCode
  internal_error: 4000,
  deadline_exceeded: 4004,
  already_exists: 4005,
  resource_exhausted: 4006,
  failed_precondition: 4007,
  aborted: 4008,
  out_of_range: 4009,
  unavailable: 4010,
  data_loss: 4011,
  // Pemba's: admission control refused the request (HTTP 429 with Retry-After; not the input's fault)
  rate_limited: 4012,
  // NotFoundErrorCode
  undefined_endpoint: 5000,
  store_id_not_found: 5002,
  unimplemented: 5004,
} as const

export type ErrorCode = keyof typeof ERROR_CODES

/** httpStatusForCode maps an error code to the HTTP status OpenFGA's gateway would send. */
export function httpStatusForCode(code: ErrorCode): number {
  const n = ERROR_CODES[code]
  if (n < 2000) return 401
  if (n < 3500) return 400
  if (n < 4000) return 422
  if (n < 5000) return 500
  return 404
}

/**
 * PembaError is an error meant for the caller: `code` is the OpenFGA code string and `status`
 * the HTTP status. Anything thrown that is not a PembaError is an internal fault (500).
 */
export class PembaError extends Error {
  readonly code: string
  readonly status: number
  /** When set, the answer carries `Retry-After: <seconds>` (a 429 or 503 the caller may retry). */
  readonly retryAfterSeconds?: number

  constructor(code: ErrorCode, message: string, status?: number, options?: { retryAfterSeconds?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PembaError'
    this.code = code
    this.status = status ?? httpStatusForCode(code)
    if (options?.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds
  }
}

/**
 * DatastoreUnavailable: the database cannot be reached or lost the connection mid-operation
 * (PostgreSQL down, restarting, failing over, a backend terminated; SQLite's file locked past
 * the busy timeout or its disk failing). The caller's request was fine and may be retried:
 * 503 `unavailable` with `Retry-After`. `cause` is the driver's error, for the log only (the
 * message sent is always this generic one, never the driver's text).
 */
export class DatastoreUnavailable extends PembaError {
  constructor(cause: unknown, retryAfterSeconds = 1) {
    super('unavailable', 'the database is unavailable; try again later', 503, { retryAfterSeconds, cause })
    this.name = 'DatastoreUnavailable'
  }
}

/**
 * Overloaded: admission control refused the request (too many expensive queries running and
 * queued, or the client's rate limit): 429 `rate_limited` with `Retry-After`.
 */
export class Overloaded extends PembaError {
  constructor(message: string, retryAfterSeconds = 1) {
    super('rate_limited', message, 429, { retryAfterSeconds })
    this.name = 'Overloaded'
  }
}

/**
 * UnsupportedMediaType: a body sent to a JSON endpoint was declared as another type (a browser's
 * `text/plain` or form submission, curl's default form encoding) or not declared at all: 415
 * `unsupported_media_type`, before anything is done with it (api/validation.ts).
 */
export class UnsupportedMediaType extends PembaError {
  constructor(message: string) {
    super('unsupported_media_type', message, 415)
    this.name = 'UnsupportedMediaType'
  }
}

/**
 * ConflictError is OpenFGA's gRPC `Aborted` (HTTP 409), e.g. writing with `on_duplicate: ignore`
 * a tuple that already exists with a different condition.
 */
export class ConflictError extends PembaError {
  constructor(message: string) {
    super('aborted', message, 409)
    ;(this as { code: string }).code = 'Aborted'
  }
}

/** validationError is the common 400 `validation_error`. */
export function validationError(message: string): PembaError {
  return new PembaError('validation_error', message)
}

/** bug reports a broken invariant: a fault in Pemba, never the caller's. */
export function bug(message: string): never {
  throw new Error(`pemba bug: ${message}`)
}

/** Why the store's write rules refused a tuple (see store/write-plan.ts). */
export type WriteRejection = 'delete_missing' | 'write_existing' | 'different_condition' | 'different_expiry'

/**
 * TupleWriteRejected: a Write broke the store's write rules for `tuple`, and nothing was written.
 * `delete_missing` (a delete of a tuple that does not exist, `on_missing: error`) and
 * `write_existing` (a write of one that does, `on_duplicate: error`) are the caller's invalid
 * input; `different_condition` and `different_expiry` are `on_duplicate: ignore` meeting the same
 * tuple stored with another condition or expiry (a conflict). The API maps each to OpenFGA's
 * wire answer; the store only says which rule and which tuple.
 */
export class TupleWriteRejected extends Error {
  constructor(
    readonly reason: WriteRejection,
    readonly tuple: TupleIdentity,
  ) {
    super(`tuple write rejected (${reason})`)
    this.name = 'TupleWriteRejected'
  }
}
