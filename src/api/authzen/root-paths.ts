/**
 * PEMBA_AUTHZEN_DEFAULT_STORE: the AuthZEN API of one store also at the root, for gateways
 * configured with a bare PDP URL (`https://authz.example.com`):
 *
 * | request path | served as |
 * |---|---|
 * | `/access/v1/evaluation` (and every `/access/v1/…`) | `/stores/<default>/access/v1/evaluation` |
 * | `/.well-known/authzen-configuration` | `/.well-known/authzen-configuration/<default>` |
 *
 * The mapping is the app's path function (Hono's `getPath`), so everything after it (the
 * route table's permissions in auth.ts, the handlers, the access log's route pattern) sees the
 * store path and applies unchanged. The handlers tell a root request by its raw path, for the
 * PDP identifier (the origin instead of `…/stores/<id>`). Without the setting the app keeps
 * Hono's own path function: nothing is added to any request.
 *
 * @module
 */
import { getPath } from 'hono/utils/url'

const ROOT_API = '/access/v1/'
const ROOT_DISCOVERY = '/.well-known/authzen-configuration'

/** The Hono options that serve the default store at the root; `{}` when there is none. */
export function authzenRootPaths(defaultStore: string): { getPath?: (req: Request) => string } {
  if (defaultStore === '') return {}
  const api = `/stores/${defaultStore}/access/v1/`
  const discovery = `${ROOT_DISCOVERY}/${defaultStore}`
  return {
    getPath(req: Request): string {
      const path = getPath(req)
      if (path.startsWith(ROOT_API)) return api + path.slice(ROOT_API.length)
      if (path === ROOT_DISCOVERY) return discovery
      return path
    },
  }
}

/** isRootDiscovery: did this request ask for the root discovery document (raw path)? */
export function isRootDiscovery(req: Request): boolean {
  return getPath(req) === ROOT_DISCOVERY
}
