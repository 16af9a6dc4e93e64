/**
 * Just-in-time access requests (Pemba): create, read, list, approve and deny. See
 * AccessRequestService for the rules; these routes only parse and render.
 *
 * @module
 */
import type { Hono } from 'hono'
import { validationError } from '../../core/errors.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import {
  ULID_ID,
  createAccessRequestRequest,
  decideAccessRequestRequest,
  listAccessRequestsQuery,
} from '../contracts.ts'
import { accessRequestJson } from '../serialize.ts'
import { checkStoreId, decodeToken, encodeToken, parseInput, parseJsonBody, queryParams } from '../validation.ts'

function checkRequestId(id: string): string {
  if (!ULID_ID.test(id)) throw validationError(`invalid access request id '${id}'`)
  return id
}

export function registerAccessRequestRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { accessRequests } = deps

  route(app, 'POST /stores/:store/access-requests', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(
      createAccessRequestRequest,
      await parseJsonBody(c.req.raw),
      'CreateAccessRequest',
    )
    const r = await accessRequests.create(storeId, {
      tupleKey: body.tuple_key,
      duration: body.duration,
      reason: body.reason,
      requestedBy: body.requested_by ?? undefined,
    })
    return c.json(accessRequestJson(r), 201)
  })

  route(app, 'GET /stores/:store/access-requests', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const q = parseInput(listAccessRequestsQuery, queryParams(c.req.url), 'ListAccessRequests')
    // The token remembers the status filter: it continues only the listing it came from.
    const kind = `access-requests:${q.status ?? ''}`
    const page = await accessRequests.list(storeId, {
      status: q.status,
      pageSize: q.page_size ?? 50,
      after: decodeToken(q.continuation_token, kind),
    })
    return c.json({
      access_requests: page.items.map(accessRequestJson),
      continuation_token: encodeToken(page.next, kind),
    })
  })

  route(app, 'GET /stores/:store/access-requests/:id', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const r = await accessRequests.get(storeId, checkRequestId(c.req.param('id')))
    return c.json(accessRequestJson(r))
  })

  // Approve and deny take the same body and answer the request as it now stands.
  for (const decision of ['approve', 'deny'] as const) {
    route(app, `POST /stores/:store/access-requests/:id/${decision}`, async (c) => {
      const storeId = checkStoreId(c.req.param('store'))
      const id = checkRequestId(c.req.param('id'))
      const body = parseInput(
        decideAccessRequestRequest,
        await parseJsonBody(c.req.raw),
        decision === 'approve' ? 'ApproveAccessRequest' : 'DenyAccessRequest',
      )
      const r = await accessRequests[decision](storeId, id, {
        approver: body.approver,
        reason: body.reason ?? undefined,
      })
      return c.json(accessRequestJson(r))
    })
  }
}
