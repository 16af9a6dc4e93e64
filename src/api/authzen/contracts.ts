/**
 * The wire contracts of the AuthZEN 1.0 evaluation APIs (zod, built on entities.ts), and the
 * transport rules every AuthZEN POST shares: `Content-Type: application/json` (else 415), a body
 * that is a JSON object (else 400). Unknown members are dropped, as the spec requires (also in
 * `options`); a missing or mistyped required member is a 400 naming it
 * (`invalid EvaluationRequest.subject.id: value is required`).
 *
 * @module
 */
import type { Context } from 'hono'
import { z } from 'zod'
import { PembaError, validationError } from '../../core/errors.ts'
import { MODEL_HEADER, ULID_ID } from '../contracts.ts'
import type { AppEnv } from '../env.ts'
import { parseJsonBody, requireDeclaredJson } from '../validation.ts'
import { action, context, entity } from './entities.ts'

/** `POST …/access/v1/evaluation`: `{subject, action, resource, context?}`. */
export const evaluationRequest = z.object({
  subject: entity,
  action,
  resource: entity,
  context: context.optional(),
})

/** One item of `evaluations`: every member optional; a missing one comes from the top level. */
const evaluationItem = z.object({
  subject: entity.optional(),
  action: action.optional(),
  resource: entity.optional(),
  context: context.optional(),
})

/** `POST …/access/v1/evaluations`: top-level defaults, the items, and `options`. */
export const evaluationsRequest = z.object({
  subject: entity.optional(),
  action: action.optional(),
  resource: entity.optional(),
  context: context.optional(),
  evaluations: z.array(evaluationItem).optional(),
  options: z
    .object({
      evaluations_semantic: z
        .enum(['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'], {
          error: (iss) =>
            `expected 'execute_all', 'deny_on_first_deny' or 'permit_on_first_permit', got ${JSON.stringify(iss.input)}`,
        })
        .optional(),
    })
    .optional(),
})

export type EvaluationsRequest = z.output<typeof evaluationsRequest>

/** requireObject refuses a JSON body that is not an object (an array, a string, null…): 400. */
export function requireObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw validationError(`invalid request body: expected a JSON object, got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`)
  }
  return body as Record<string, unknown>
}

/** The header that asks for reasons, as `context.pemba.explain: true` does. */
export const EXPLAIN_HEADER = 'Pemba-Explain'

/**
 * pinnedModel: the model the `Openfga-Authorization-Model-Id` header pins, or undefined (the
 * latest); a value that is not a ULID is ignored, as OpenFGA's AuthZEN does.
 */
export function pinnedModel(c: Context<AppEnv>): string | undefined {
  const id = c.req.header(MODEL_HEADER)
  return id !== undefined && ULID_ID.test(id) ? id : undefined
}

/** readAuthzenBody: the transport rules of every AuthZEN POST (JSON declared, a JSON object). */
export async function readAuthzenBody(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  requireDeclaredJson(c.req.header('content-type'))
  return requireObject(await parseJsonBody(c.req.raw))
}
