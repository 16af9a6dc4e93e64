/**
 * Granting and revoking API clients' roles (Pemba): `GET/POST/DELETE /system/grants`.
 * A store role is granted by an admin of that store (or a system admin, who administers every
 * store); a system role (`admin`, `store_creator`) only by a system admin. See
 * src/auth/access-control.ts for the roles.
 *
 * @module
 */
import type { Hono } from 'hono'
import { z } from 'zod'
import type { AccessControl, Grant } from '../../auth/access-control.ts'
import type { AppEnv } from '../app.ts'
import { checkStoreId, parseInput, parseJsonBody } from '../validation.ts'
import { queryParams } from './stores.ts'

const grantBody = z.strictObject({
  client: z.string().min(1),
  role: z.string().min(1),
  store: z.string().optional(),
  type: z.string().optional(),
})
const grantQuery = grantBody
const listQuery = z.strictObject({ client: z.string().min(1).optional(), store: z.string().optional() })

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

  app.get('/system/grants', async (c) => {
    const q = parseInput(listQuery, queryParams(c.req.url), 'ListGrantsRequest')
    const store = q.store === undefined ? undefined : checkStoreId(q.store)
    await requireAdminOf(c.get('client'), store)
    const grants = await access.list({ client: q.client, store })
    return c.json({ grants: grants.map(grantJson) })
  })

  app.post('/system/grants', async (c) => {
    const g = parseGrant(parseInput(grantBody, await parseJsonBody(c.req.raw), 'GrantRequest'))
    await requireAdminOf(c.get('client'), g.store)
    return c.json({ grant: grantJson(await access.grant(g)) })
  })

  app.delete('/system/grants', async (c) => {
    const g = parseGrant(parseInput(grantQuery, queryParams(c.req.url), 'RevokeRequest'))
    await requireAdminOf(c.get('client'), g.store)
    return c.json({ revoked: await access.revoke(g) })
  })
}
