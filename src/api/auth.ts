/**
 * The authentication and permission middleware, installed only when `PEMBA_AUTH_MODE` is not
 * `none`. For each request: look the route up in the route table (route-table.ts); unless it is open,
 * authenticate the bearer token (401 `bearer_token_missing` / `unauthenticated` / …), set
 * `c.var.client`, and check the route's permission on the system store (401 `forbidden`, as
 * OpenFGA sends it; 403 on the AuthZEN routes, as AuthZEN requires, see authzen/access.ts). The
 * AuthZEN discovery documents skip all this when PEMBA_AUTHZEN_DISCOVERY=public. Every 401 carries
 * `WWW-Authenticate: Bearer realm="pemba"` (app.ts's error handler). A refused request never
 * reaches its handler, so it changes nothing.
 *
 * It only reads request headers and sets context variables before `next()`, and never touches
 * the response afterwards, so @hono/node-server keeps its lightweight request/response.
 *
 * @module
 */
import type { Hono, MiddlewareHandler } from 'hono'
import { PembaError } from '../core/errors.ts'
import type { AccessControl } from '../auth/access-control.ts'
import type { Authenticator } from '../auth/authenticate.ts'
import type { AppEnv } from './env.ts'
import { compilePath, compileRoutes, findRoute, ROUTES } from './route-table.ts'
import { checkStoreId } from './validation.ts'
import { authzenRefusal, isAuthzenRoute, isDiscoveryRoute } from './authzen/access.ts'
import { gatewayRefusal, isGatewayRoute, PEP_AUTHORIZATION, REFUSAL_HEADER } from './gateway/access.ts'

/**
 * requireObjectTypeWriter lets a Write through when the client is a writer of every object type
 * it touches (`store_type:<store>/<type>#writer`). Only clients without the store-wide role get
 * here, so only they pay for reading the body twice (bounded by the body size limit, which runs
 * first). A body it cannot read types from gets the store-wide refusal.
 */
async function requireObjectTypeWriter(
  access: AccessControl,
  client: string,
  storeId: string,
  req: Request,
  refusal: PembaError,
): Promise<void> {
  let body: unknown
  try {
    body = JSON.parse(await req.clone().text())
  } catch {
    throw refusal
  }
  const types = new Set<string>()
  for (const part of ['writes', 'deletes'] as const) {
    const keys = (body as Record<string, { tuple_keys?: unknown } | undefined> | null)?.[part]?.tuple_keys
    if (keys === undefined) continue
    if (!Array.isArray(keys)) throw refusal
    for (const k of keys) {
      const object = (k as { object?: unknown } | null)?.object
      const colon = typeof object === 'string' ? object.indexOf(':') : -1
      if (colon <= 0) throw refusal
      types.add((object as string).slice(0, colon))
    }
  }
  if (types.size === 0) throw refusal
  const denied = await access.typeNotWritable(client, storeId, types)
  if (denied !== undefined) {
    throw new PembaError('forbidden', `${refusal.message} (nor on its object type '${denied}')`)
  }
}

export function authMiddleware(deps: {
  app: Hono<AppEnv>
  authenticator: Authenticator
  access: AccessControl
  /** PEMBA_AUTHZEN_DISCOVERY=public: the AuthZEN discovery documents need no credentials. */
  publicDiscovery?: boolean
}): MiddlewareHandler<AppEnv> {
  const routes = compileRoutes(ROUTES)
  // Registered routes the table does not list, found on first need (routes are registered
  // after this middleware is installed). A request to one of them is refused, not let through.
  let unlisted: { method: string; pattern: RegExp }[] | undefined
  const isUnlisted = (method: string, path: string) => {
    unlisted ??= deps.app.routes
      .filter((r) => r.method !== 'ALL' && !r.path.includes('*'))
      .filter((r) => !routes.some((t) => t.method === r.method && t.path.replace(/:[^/]+/g, ':') === r.path.replace(/:[^/]+/g, ':')))
      .map((r) => ({ method: r.method, pattern: compilePath(r.path).pattern }))
    const m = method === 'HEAD' ? 'GET' : method
    return unlisted.some((r) => r.method === m && r.pattern.test(path))
  }

  return async function authenticateAndAuthorize(c, next) {
    const path = c.req.path
    const found = findRoute(routes, c.req.method, path)
    if (found?.route.requires === 'open') return next()
    if (deps.publicDiscovery && found && isDiscoveryRoute(found.route.path)) return next()
    // The gateway decision: `Authorization` is the end user's token there, so the proxy's own
    // credential travels in Pemba-Authorization, and a refusal is 403 (a proxy hands a 401 to
    // the end user as a request to log in, which their token cannot fix).
    if (found && isGatewayRoute(found.route.path)) {
      try {
        c.set('client', await deps.authenticator.authenticate(c.req.header(PEP_AUTHORIZATION)))
        const required = found.route.requires
        if (typeof required === 'object' && 'store' in required) {
          await deps.access.requireOnStore(c.get('client'), required.store, checkStoreId(found.storeId ?? ''))
        }
      } catch (e) {
        c.header(REFUSAL_HEADER, 'proxy_refused')
        throw gatewayRefusal(e)
      }
      return next()
    }
    const client = await deps.authenticator.authenticate(c.req.header('authorization'))
    c.set('client', client)
    if (!found) {
      if (isUnlisted(c.req.method, path)) {
        throw new PembaError('forbidden', `no permission is defined for ${c.req.method} ${path}, so no client may call it`)
      }
      // Not a route at all: the usual 404 (undefined_endpoint / unimplemented).
      return next()
    }
    const req = found.route.requires
    if (typeof req === 'object') {
      if ('store' in req) {
        // The route would refuse a malformed id anyway; refuse it here, before asking the engine.
        const storeId = checkStoreId(found.storeId ?? '')
        try {
          await deps.access.requireOnStore(client, req.store, storeId)
        } catch (e) {
          // AuthZEN answers an authenticated client without rights on the store 403, not 401.
          if (isAuthzenRoute(found.route.path)) throw authzenRefusal(e)
          if (!req.orObjectTypeWriter || !(e instanceof PembaError) || e.code !== 'forbidden') throw e
          await requireObjectTypeWriter(deps.access, client, storeId, c.req.raw, e)
        }
      } else {
        await deps.access.requireOnSystem(client, req.system)
      }
    }
    return next()
  }
}
