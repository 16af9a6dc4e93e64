/**
 * The AuthZEN paths Pemba serves besides `/stores/{id}/…` and `/.well-known/authzen-configuration/…`:
 *
 * - PEMBA_AUTHZEN_DEFAULT_STORE: the AuthZEN API of one store also at the root, for gateways
 *   configured with a bare PDP URL (`https://authz.example.com`);
 * - a path prefix P in PEMBA_PUBLIC_URL (`https://gw.example.com/pemba`, a proxy that strips
 *   `/pemba` before Pemba): RFC 8615 puts the discovery document of the identifier
 *   `https://gw.example.com/pemba/stores/{id}` at `/.well-known/authzen-configuration/pemba/stores/{id}`
 *   (between the host and the path, reference §2.6). The proxy forwards that path unchanged.
 *
 * | request path | served as |
 * |---|---|
 * | `/access/v1/evaluation` (and every `/access/v1/…`) | `/stores/<default>/access/v1/evaluation` |
 * | `/.well-known/authzen-configuration${P}` | `/.well-known/authzen-configuration/<default>` |
 * | `/.well-known/authzen-configuration${P}/stores/{id}` (P ≠ '') | `/.well-known/authzen-configuration/stores/{id}` |
 *
 * The mapping is the app's path function (Hono's `getPath`), so everything after it (the
 * route table's permissions in auth.ts, the handlers, the access log's route pattern) sees the
 * store path and applies unchanged. servedAtRoot tells a root request by its raw path, for the
 * PDP identifier (the origin instead of `…/stores/<id>`). Without either setting the app keeps
 * Hono's own path function: nothing is added to any request.
 *
 * @module
 */
import { getPath } from 'hono/utils/url'
import type { AuthzenSettings } from './settings.ts'

const ROOT_API = '/access/v1/'
const DISCOVERY = '/.well-known/authzen-configuration'

/** publicPathPrefix: the path of PEMBA_PUBLIC_URL without a trailing `/` (`https://gw/pemba` → `/pemba`), or ''. */
export function publicPathPrefix(publicUrl: string): string {
  return publicUrl === '' ? '' : new URL(publicUrl).pathname.replace(/\/+$/, '')
}

/** The Hono options that serve the paths above; `{}` when there is nothing to map. */
export function authzenRootPaths(s: Pick<AuthzenSettings, 'defaultStore' | 'publicUrl'>): { getPath?: (req: Request) => string } {
  const prefix = publicPathPrefix(s.publicUrl)
  const defaultStore = s.defaultStore
  if (defaultStore === '' && prefix === '') return {}
  const api = `/stores/${defaultStore}/access/v1/`
  const rootDiscovery = DISCOVERY + prefix
  const storeDiscovery = `${rootDiscovery}/stores/`
  return {
    getPath(req: Request): string {
      const path = getPath(req)
      if (defaultStore !== '') {
        if (path.startsWith(ROOT_API)) return api + path.slice(ROOT_API.length)
        if (path === rootDiscovery) return `${DISCOVERY}/${defaultStore}`
      }
      if (prefix !== '' && path.startsWith(storeDiscovery)) return `${DISCOVERY}/stores/${path.slice(storeDiscovery.length)}`
      return path
    },
  }
}

/**
 * servedAtRoot: did this request come in through the default store's root paths (raw path:
 * `/access/v1/…` or the root discovery document)? Only then is the PDP identifier the origin.
 */
export function servedAtRoot(req: Request, s: Pick<AuthzenSettings, 'defaultStore' | 'publicUrl'>): boolean {
  if (s.defaultStore === '') return false
  const path = getPath(req)
  return path.startsWith(ROOT_API) || path === DISCOVERY + publicPathPrefix(s.publicUrl)
}
