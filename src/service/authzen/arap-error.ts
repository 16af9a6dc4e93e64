/**
 * ArapError: a refusal of the AuthZEN Access Request and Approval profile. The profile answers
 * them as `application/problem+json` (RFC 9457) with `type`
 * `urn:openid:authzen:access-request:error:<code>` and its own status per code (src/api/errors.ts
 * renders them):
 *
 * | code | status |
 * |---|---|
 * | not_requestable, invalid_denial_binding | 400 |
 * | expired_denial, task_expired | 410 |
 * | duplicate_request, invalid_task_state | 409 |
 * | unknown_task | 404 |
 *
 * Pemba adds `invalid_request` (400) for a submission that is not well formed.
 *
 * @module
 */
export type ArapErrorCode =
  | 'not_requestable'
  | 'invalid_denial_binding'
  | 'expired_denial'
  | 'duplicate_request'
  | 'unknown_task'
  | 'task_expired'
  | 'invalid_task_state'
  | 'invalid_request'

const STATUS: Record<ArapErrorCode, number> = {
  not_requestable: 400,
  invalid_denial_binding: 400,
  expired_denial: 410,
  duplicate_request: 409,
  unknown_task: 404,
  task_expired: 410,
  invalid_task_state: 409,
  invalid_request: 400,
}

/** The problem type URN of a code. */
export function arapErrorType(code: ArapErrorCode): string {
  return `urn:openid:authzen:access-request:error:${code}`
}

export class ArapError extends Error {
  readonly code: ArapErrorCode
  readonly status: number
  constructor(code: ArapErrorCode, detail: string) {
    super(detail)
    this.code = code
    this.status = STATUS[code]
  }
}
