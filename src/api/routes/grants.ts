/**
 * Granting and revoking API clients' roles (Pemba): `GET/POST/DELETE /system/grants`.
 * A store role is granted by an admin of that store (or a system admin, who administers every
 * store); a system role (`admin`, `store_creator`) only by a system admin. See
 * src/auth/access-control.ts for the roles.
 *
 * @module
 */
import type { Hono } from 'hono'
import type { AccessControl, Grant } from '../../auth/access-control.ts'
import type { AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { grantRequest, listGrantsQuery, revokeGrantQuery } from '../contracts.ts'
import { checkStoreId, parseInput, parseJsonBody, queryParams } from '../validation.ts'

function grantJson(g: Grant): Record<string, string> {
  const out: Record<string, string> = { client: g.client, role: g.role }
  if (g.store !== undefined) out.store = g.store
  if (g.type !== undefined) out.type = g.type
  return out
}

export function registerGrantRoutes(app: Hono<AppEnv>, deps: { access: AccessControl }): void {
  const { access } = deps

  /** The caller must administer what the grant is about: its store, or the system. */
  const requireAdminOf = async (client: string, store: string | undefined) => {
    if (store === undefined) await access.requireOnSystem(client, 'admin')
    else await access.requireOnStore(client, 'admin', store)
  }
  const parseGrant = (input: { client: string; role: string; store?: string; type?: string }): Grant =>
    access.normalizeGrant({ ...input, store: input.store === undefined ? undefined : checkStoreId(input.store) })

  route(app, 'GET /system/grants', async (c) => {
    const q = parseInput(listGrantsQuery, queryParams(c.req.url), 'ListGrantsRequest')
    const store = q.store === undefined ? undefined : checkStoreId(q.store)
    await requireAdminOf(c.get('client'), store)
    const grants = await access.list({ client: q.client, store })
    return c.json({ grants: grants.map(grantJson) })
  })

  route(app, 'POST /system/grants', async (c) => {
    const g = parseGrant(parseInput(grantRequest, await parseJsonBody(c.req.raw), 'GrantRequest'))
    await requireAdminOf(c.get('client'), g.store)
    return c.json({ grant: grantJson(await access.grant(g)) })
  })

  route(app, 'DELETE /system/grants', async (c) => {
    const g = parseGrant(parseInput(revokeGrantQuery, queryParams(c.req.url), 'RevokeRequest'))
    await requireAdminOf(c.get('client'), g.store)
    return c.json({ revoked: await access.revoke(g) })
  })
}
