/**
 * AuthZEN's Access Request and Approval profile: the Access Request Service's routes (see
 * src/service/authzen/arap-requests.ts for the rules).
 *
 * ```
 * POST /stores/{store_id}/access/v1/requests            → 202 {task:{id, status:"pending", status_endpoint, expires_at, links:{cancel}}}
 * GET  /stores/{store_id}/access/v1/requests/{task}     → 200 {task, result?}  (Retry-After while pending)
 * POST /stores/{store_id}/access/v1/requests/{task}/cancel → 200 {task:{…, status:"cancelled"}}
 * ```
 *
 * Every refusal of these routes is `application/problem+json` (RFC 9457) with the profile's
 * `urn:openid:authzen:access-request:error:<code>` type and status (errors.ts problemDetails),
 * malformed bodies included (`invalid_request`). Authentication and permission failures, and a
 * body over the size limit, are answered before the route, in Pemba's `{code, message}`.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { z } from 'zod'
import { ArapError } from '../../service/authzen/arap-error.ts'
import { POLL_AFTER_SECONDS, type TaskView } from '../../service/authzen/arap-requests.ts'
import { ULID_ID } from '../contracts.ts'
import { errorContext, problemDetails, problemResponse } from '../errors.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId, parseInput } from '../validation.ts'
import { action, context, entity } from './entities.ts'
import { pdpOf } from './base-url.ts'
import { readAuthzenBody } from './contracts.ts'

const text = z.string().max(1024)

/** The echoed denial: `expires_at` required; the binding token is what Pemba verifies. */
const denial = z.object({
  evaluation_id: z.string().max(256).optional(),
  evaluated_at: z.string().max(64).optional(),
  expires_at: z.string().min(1).max(64),
  reason: text.optional(),
  binding_token: z.string().min(1).max(16_384).optional(),
  template: text.optional(),
})

const requestedAccess = z.object({ requested_until: z.string().max(64).optional(), emergency: z.boolean().optional() })

/** One item of a bulk submission. */
const item = z.object({ resource: entity, action, denial: denial.optional(), requested_access: requestedAccess.optional() })

/** `POST …/access/v1/requests` (§5.4): one resource and action, or bulk `items`. `callback` is parsed only to be refused clearly. */
export const submissionRequest = z.object({
  subject: entity,
  action: action.optional(),
  resource: entity.optional(),
  items: z.array(item).optional(),
  context: context.optional(),
  denial: denial.optional(),
  requested_access: requestedAccess.optional(),
  callback: z.unknown().optional(),
  client: z
    .object({
      id: text.optional(),
      name: text.optional(),
      actor: z.record(z.string(), z.unknown()).optional(),
      source: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
})

/** `POST …/requests/{task}/cancel`: `{reason?, comment?}`, an empty body allowed. */
const cancelRequest = z.object({ reason: text.optional(), comment: text.optional() })

/** The problem+json answer of anything a route threw. */
function problem(c: Context<AppEnv>, deps: AppDeps, err: unknown): Response {
  return problemResponse(c, problemDetails(err, errorContext(deps, c.get('requestId') ?? '')))
}

/** A task id is a ULID; anything else names no task (404, as an unknown one; never echoed). */
function checkTaskId(id: string): string {
  if (!ULID_ID.test(id)) throw new ArapError('unknown_task', 'task not found: a task id is a ULID')
  return id
}

function taskJson(c: Context<AppEnv>, view: TaskView, status: ContentfulStatusCode, retryAfter?: number): Response {
  if (retryAfter !== undefined) c.header('Retry-After', String(retryAfter))
  return c.json(view, status)
}

export function registerAuthzenRequestRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { authzenRequests: ars, authzenSettings: settings } = deps
  const caller = (c: Context<AppEnv>, storeId: string) => ({ client: c.get('client') ?? '', pdp: pdpOf(c, settings, storeId) })

  route(app, 'POST /stores/:store/access/v1/requests', async (c) => {
    try {
      const storeId = checkStoreId(c.req.param('store'))
      const body = parseInput(submissionRequest, await readAuthzenBody(c), 'AccessRequest')
      const idempotencyKey = c.req.header('idempotency-key')
      const { view } = await ars.submit(storeId, body, { ...caller(c, storeId), idempotencyKey })
      c.header('Location', view.task.status_endpoint)
      // §5.5: 202 only for a pending task; a replayed key whose task has ended is 201 with its result.
      if (view.task.status !== 'pending') return taskJson(c, view, 201)
      return taskJson(c, view, 202, POLL_AFTER_SECONDS)
    } catch (e) {
      return problem(c, deps, e)
    }
  })

  route(app, 'GET /stores/:store/access/v1/requests/:task', async (c) => {
    try {
      const storeId = checkStoreId(c.req.param('store'))
      const { view, retryAfter } = await ars.status(storeId, checkTaskId(c.req.param('task')), caller(c, storeId))
      return taskJson(c, view, 200, retryAfter)
    } catch (e) {
      return problem(c, deps, e)
    }
  })

  route(app, 'POST /stores/:store/access/v1/requests/:task/cancel', async (c) => {
    try {
      const storeId = checkStoreId(c.req.param('store'))
      const taskId = checkTaskId(c.req.param('task'))
      // No body at all (and no declared type) is an empty cancel; a body, or a declared type, must
      // be JSON (415 otherwise), as on every AuthZEN POST.
      const length = c.req.header('content-length')
      const bodiless =
        (length === undefined || length === '0') && c.req.header('transfer-encoding') === undefined && c.req.header('content-type') === undefined
      const raw = bodiless ? {} : await readAuthzenBody(c)
      const body = parseInput(cancelRequest, raw, 'CancelAccessRequest')
      return taskJson(c, await ars.cancel(storeId, taskId, body, caller(c, storeId)), 200)
    } catch (e) {
      return problem(c, deps, e)
    }
  })
}
