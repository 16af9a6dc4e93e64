/**
 * Deleted means gone: every route of the route table that names a store (`:store`) answers 404
 * `store_id_not_found` for a deleted store, before its handler runs, so it changes nothing. The
 * question costs the hot path no database read: the store service answers from the head
 * revisions it already keeps (a deletion on this replica counts at once, one on another replica
 * within PEMBA_CHECK_CACHE_STALENESS_MS; HIGHER_CONSISTENCY requests read the store row afresh
 * in their service, and every write is refused by the datastore itself).
 *
 * Installed after authentication: a client is told a store is gone only once it is known, and
 * with authentication on the deleted store's grants are gone too, so only a system admin gets
 * this far (others are refused as for any store they hold no role on).
 *
 * The refusal has each route family's shape: problem+json on AuthZEN's access-request routes,
 * and the refusal header on the gateway decision (which never sends the message to the end user).
 *
 * @module
 */
import type { Context, MiddlewareHandler } from 'hono'
import { PembaError } from '../core/errors.ts'
import type { StoreService } from '../service/stores.ts'
import { authzenFamily } from './authzen/access.ts'
import type { AppDeps, AppEnv } from './env.ts'
import { errorContext, problemDetails, problemResponse } from './errors.ts'
import { isGatewayRoute, REFUSAL_HEADER } from './gateway/access.ts'
import { compileRoutes, findRoute, ROUTES } from './route-table.ts'
import { ULID_ID } from './contracts.ts'

/**
 * refusesDeletedStores: does this route table entry answer 404 for a deleted store? Every entry
 * naming a store, except DeleteStore, which stays idempotent (204 again; it changes nothing, and
 * a repeat finishes a deletion whose grant removal failed half-way).
 */
export function refusesDeletedStores(r: { method: string; path: string }): boolean {
  return r.path.includes(':store') && !(r.method === 'DELETE' && r.path === '/stores/:store')
}

export function liveStores(deps: Pick<AppDeps, 'redact' | 'logError'> & { stores: Pick<StoreService, 'requireLive'> }): MiddlewareHandler<AppEnv> {
  const storeRoutes = compileRoutes(ROUTES.filter(refusesDeletedStores))
  const refuse = (c: Context<AppEnv>, path: string, err: unknown): Response => {
    if (authzenFamily(path) === 'arap') {
      return problemResponse(c, problemDetails(err, errorContext(deps, c.get('requestId') ?? '')))
    }
    if (isGatewayRoute(path) && err instanceof PembaError && err.code === 'store_id_not_found') c.header(REFUSAL_HEADER, err.code)
    throw err
  }

  return async function refuseDeletedStores(c, next) {
    const found = findRoute(storeRoutes, c.req.method, c.req.path)
    const storeId = found?.storeId
    // A malformed id is the route's to refuse (400); it names no store to look up.
    if (storeId === undefined || !ULID_ID.test(storeId)) return next()
    try {
      const pending = deps.stores.requireLive(storeId)
      if (pending) await pending
    } catch (err) {
      // store_id_not_found, or the datastore's failure (an outage answers as on any route).
      return refuse(c, found!.route.path, err)
    }
    return next()
  }
}
