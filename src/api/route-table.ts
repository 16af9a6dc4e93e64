/**
 * The route table: the one list of the API's endpoints, each with what it requires of an
 * authenticated API client (when `PEMBA_AUTH_MODE` is not `none`). Everything that needs the
 * list of paths derives it from here:
 *
 * - routes are registered with `route(app, 'POST /stores/:store/check', handler)`, which only
 *   accepts a method and path listed here (a type error, and a refusal at startup);
 * - the auth middleware (auth.ts) looks every request up here; a route registered some other
 *   way has no entry and is refused (`forbidden`) rather than left open;
 * - the 404 answer tells a wrong method on a known path (`unimplemented`) from an unknown path
 *   (`undefined_endpoint`) with `isKnownPath`;
 * - test/api/auth-permissions.test.ts checks every entry's permission for every role, and
 *   test/property/http-fuzz.test.ts fuzzes every entry.
 *
 * - admission control (api/admission.ts) holds the entries marked `expensive` to a bounded
 *   number running at once.
 *
 * Adding an endpoint: its contract (contracts.ts), one line here, and its handler in a route file.
 *
 * Requirements:
 * - `open`: no authentication (health checks).
 * - `client`: any authenticated client.
 * - `{ store: P }`: permission P on the store named by the path's `:store`, decided by the
 *   engine on the system store (see src/auth/access-control.ts). `orObjectTypeWriter`: a
 *   client without it may still write tuples of the object types it is a writer of.
 * - `{ system: R }`: the system role R.
 * - `route`: the handler decides, because the answer depends on the request (ListStores shows
 *   only readable stores; grants need admin of the store they name, or of the system).
 *
 * @module
 */
import type { Context, Handler, Hono } from 'hono'
import type { StorePermission, SystemRole } from '../auth/access-control.ts'
import { bug } from '../core/errors.ts'
import type { AppEnv } from './env.ts'

export type Requirement =
  | 'open'
  | 'client'
  | 'route'
  | { readonly store: StorePermission; readonly orObjectTypeWriter?: true }
  | { readonly system: SystemRole }

export interface RoutePermission {
  /** `ALL`: any method (the gateway decision endpoint, which proxies call with the original method). */
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'ALL'
  /** Hono path syntax; `:store` is the store the permission is checked on; a last `*` matches the rest. */
  readonly path: string
  readonly requires: Requirement
  /**
   * A query whose cost grows with the data it reaches (lists, expand, searches, reviews): it
   * runs only with a slot of admission control (src/service/admission.ts, applied in
   * api/admission.ts). `'stream'`: its answer is streamed, and it holds its slot until the
   * stream ends or the client goes away.
   */
  readonly expensive?: true | 'stream'
}

export const ROUTES = [
  // The hot path first: the table is scanned in order.
  { method: 'POST', path: '/stores/:store/check', requires: { store: 'checker' } },
  { method: 'POST', path: '/stores/:store/batch-check', requires: { store: 'checker' } },
  // AuthZEN's decisions (docs/authzen.md) are hot paths too: a gateway asks one per request.
  { method: 'POST', path: '/stores/:store/access/v1/evaluation', requires: { store: 'checker' } },
  { method: 'POST', path: '/stores/:store/access/v1/evaluations', requires: { store: 'checker' } },
  // The gateway decision (docs/gateway.md): a proxy asks one per request, with the original
  // method (Envoy) or any (nginx's auth subrequest); the proxy's credential is Pemba-Authorization.
  { method: 'ALL', path: '/stores/:store/gateway/authorize', requires: { store: 'checker' } },
  { method: 'ALL', path: '/stores/:store/gateway/authorize/*', requires: { store: 'checker' } },
  { method: 'POST', path: '/stores/:store/write', requires: { store: 'writer', orObjectTypeWriter: true } },
  { method: 'POST', path: '/stores/:store/list-objects', requires: { store: 'checker' }, expensive: true },
  { method: 'POST', path: '/stores/:store/streamed-list-objects', requires: { store: 'checker' }, expensive: 'stream' },
  { method: 'POST', path: '/stores/:store/list-users', requires: { store: 'checker' }, expensive: true },
  { method: 'POST', path: '/stores/:store/expand', requires: { store: 'checker' }, expensive: true },
  { method: 'POST', path: '/stores/:store/read', requires: { store: 'reader' } },
  { method: 'GET', path: '/stores/:store/changes', requires: { store: 'reader' } },

  { method: 'GET', path: '/healthz', requires: 'open' },
  { method: 'GET', path: '/readyz', requires: 'open' },
  { method: 'GET', path: '/metrics', requires: 'client' },
  // The web console's pages and assets (console.ts): static files; its pages call the API with
  // the token typed into them, so the files themselves need none.
  { method: 'GET', path: '/console', requires: 'open' },
  { method: 'GET', path: '/console/*', requires: 'open' },

  { method: 'POST', path: '/stores', requires: { system: 'store_creator' } },
  { method: 'GET', path: '/stores', requires: 'route' },
  { method: 'GET', path: '/stores/:store', requires: { store: 'admin' } },
  // The console's endpoints (routes/console-support.ts): a store's counts (up to a million tuple
  // keys read), and model tools that store nothing but parse and compile a whole model.
  { method: 'GET', path: '/stores/:store/summary', requires: { store: 'reader' }, expensive: true },
  { method: 'POST', path: '/models/validate', requires: 'client', expensive: true },
  { method: 'POST', path: '/models/dsl', requires: 'client', expensive: true },
  { method: 'DELETE', path: '/stores/:store', requires: { store: 'admin' } },

  { method: 'POST', path: '/stores/:store/authorization-models', requires: { store: 'model_writer' } },
  { method: 'GET', path: '/stores/:store/authorization-models', requires: { store: 'model_reader' } },
  { method: 'GET', path: '/stores/:store/authorization-models/:id', requires: { store: 'model_reader' } },
  { method: 'PUT', path: '/stores/:store/assertions/:model', requires: { store: 'model_writer' } },
  { method: 'GET', path: '/stores/:store/assertions/:model', requires: { store: 'model_reader' } },

  // Asking for access grants nothing by itself, so the clients that check may ask. Approving
  // and denying write (or refuse) a grant on the word of the client about who the approver is,
  // so they need `writer`; the approver is then checked through the store's own model.
  { method: 'POST', path: '/stores/:store/access-requests', requires: { store: 'checker' } },
  { method: 'GET', path: '/stores/:store/access-requests', requires: { store: 'reader' } },
  { method: 'GET', path: '/stores/:store/access-requests/:id', requires: { store: 'reader' } },
  { method: 'POST', path: '/stores/:store/access-requests/:id/approve', requires: { store: 'writer' } },
  { method: 'POST', path: '/stores/:store/access-requests/:id/deny', requires: { store: 'writer' } },

  { method: 'GET', path: '/stores/:store/decisions', requires: { store: 'reader' } },
  { method: 'GET', path: '/stores/:store/decision-log-settings', requires: { store: 'reader' } },
  { method: 'PUT', path: '/stores/:store/decision-log-settings', requires: { store: 'admin' } },
  { method: 'GET', path: '/stores/:store/access-review', requires: { store: 'reader' }, expensive: true },
  { method: 'GET', path: '/stores/:store/reach', requires: { store: 'reader' }, expensive: true },

  { method: 'GET', path: '/stores/:store/token-issuers', requires: { store: 'reader' } },
  { method: 'GET', path: '/stores/:store/token-issuers/:name', requires: { store: 'reader' } },
  { method: 'PUT', path: '/stores/:store/token-issuers/:name', requires: { store: 'admin' } },
  { method: 'DELETE', path: '/stores/:store/token-issuers/:name', requires: { store: 'admin' } },

  // AuthZEN 1.0 search (its evaluations are listed first, above), in OpenFGA's layout.
  { method: 'POST', path: '/stores/:store/access/v1/search/subject', requires: { store: 'checker' }, expensive: true },
  { method: 'POST', path: '/stores/:store/access/v1/search/resource', requires: { store: 'checker' }, expensive: true },
  { method: 'POST', path: '/stores/:store/access/v1/search/action', requires: { store: 'checker' }, expensive: true },
  // The Access Request and Approval profile: submitting asks for nothing to be granted yet (as
  // POST access-requests); a task is read or cancelled by the client that submitted it.
  { method: 'POST', path: '/stores/:store/access/v1/requests', requires: { store: 'checker' } },
  { method: 'GET', path: '/stores/:store/access/v1/requests/:task', requires: { store: 'checker' } },
  { method: 'POST', path: '/stores/:store/access/v1/requests/:task/cancel', requires: { store: 'checker' } },
  // Public keys (binding tokens, approval states): nothing secret, needed by whoever verifies.
  { method: 'GET', path: '/stores/:store/access/v1/jwks', requires: 'open' },
  // Discovery: public when PEMBA_AUTHZEN_DISCOVERY says so, otherwise as a check (the handler decides).
  { method: 'GET', path: '/.well-known/authzen-configuration/:store', requires: 'route' },
  { method: 'GET', path: '/.well-known/authzen-configuration/stores/:store', requires: 'route' },

  { method: 'GET', path: '/system/grants', requires: 'route' },
  { method: 'POST', path: '/system/grants', requires: 'route' },
  { method: 'DELETE', path: '/system/grants', requires: 'route' },
] as const satisfies readonly RoutePermission[]

type KeyOf<R> = R extends { method: infer M extends string; path: infer P extends string } ? `${M} ${P}` : never
/** An endpoint as `route()` names it: `'POST /stores/:store/check'`. */
export type RouteKey = KeyOf<(typeof ROUTES)[number]>
type PathOf<K extends string> = K extends `${string} ${infer P}` ? P : never

const LISTED = new Set<string>(ROUTES.map((r) => `${r.method} ${r.path}`))

/**
 * route registers the handler of a listed endpoint. A key the table does not list is a type
 * error, and refused when the app is built, so no endpoint exists without a permission.
 */
export function route<K extends RouteKey>(
  app: Hono<AppEnv>,
  key: K,
  handler: (c: Context<AppEnv, PathOf<K>>) => Response | Promise<Response>,
): void {
  if (!LISTED.has(key)) bug(`the route ${key} is not in the route table (src/api/route-table.ts)`)
  const space = key.indexOf(' ')
  app.on(key.slice(0, space), key.slice(space + 1), handler as unknown as Handler<AppEnv>)
}

const KNOWN_PATHS = [...new Set(ROUTES.map((r) => r.path))].map((p) => compilePath(p).pattern)

/** isKnownPath: is this a listed path (with any method)? A wrong method answers `unimplemented`. */
export function isKnownPath(path: string): boolean {
  return KNOWN_PATHS.some((p) => p.test(path))
}

export interface CompiledRoute extends RoutePermission {
  pattern: RegExp
  /** The index of the `:store` capture, or -1. */
  storeGroup: number
}

/** compilePath turns `/stores/:store/check` into a regex with one capture per parameter. */
export function compilePath(path: string): { pattern: RegExp; params: string[] } {
  const params: string[] = []
  const source = path
    .split('/')
    .map((seg) => {
      if (seg.startsWith(':')) {
        params.push(seg.slice(1))
        return '([^/]+)'
      }
      if (seg === '*') return '.*'
      return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return { pattern: new RegExp(`^${source}$`), params }
}

export function compileRoutes(table: readonly RoutePermission[]): CompiledRoute[] {
  return table.map((r) => {
    const { pattern, params } = compilePath(r.path)
    return { ...r, pattern, storeGroup: params.indexOf('store') + 1 || -1 }
  })
}

/** findRoute returns the entry for a request (HEAD as GET), with the store id when the path names one. */
export function findRoute(
  routes: CompiledRoute[],
  method: string,
  path: string,
): { route: CompiledRoute; storeId?: string } | undefined {
  const m = method === 'HEAD' ? 'GET' : method
  for (const route of routes) {
    if (route.method !== m && route.method !== 'ALL') continue
    const match = route.pattern.exec(path)
    if (match) return { route, storeId: route.storeGroup > 0 ? match[route.storeGroup] : undefined }
  }
  return undefined
}
