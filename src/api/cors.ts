/**
 * Browsers: CORS, and the refusal of cross-origin writes.
 *
 * CORS is off unless `PEMBA_CORS_ORIGINS` lists origins: no `Access-Control-Allow-*` header is
 * ever sent, so no web page can read an answer. With a list, an allowed origin is echoed with
 * `Access-Control-Allow-Credentials: true` (it is named, so trusted); `*` means any origin
 * *without* credentials and is answered with a literal `*`, never an echoed origin, which a
 * browser would then let carry cookies or HTTP authentication.
 *
 * CORS alone does not stop a write: a page may POST a "simple" request (`Content-Type:
 * text/plain`, no preflight) and the server acts on it even though the page cannot read the
 * answer. With authentication off by default, any page a developer opened could write tuples
 * to their local Pemba. So a state-changing request (POST, PUT, PATCH, DELETE) whose `Origin`
 * is neither an allowed origin nor the server's own (`scheme://Host` of the request) is
 * refused with 403 before it reaches a handler; a preflight from such an origin is refused the
 * same way. Requests without `Origin` (curl, SDKs, servers) are not browsers and pass.
 *
 * The refusal is 403 `forbidden`: OpenFGA sends its own `forbidden` (a client's missing
 * permission) as 401 by its code range, but here no credential would help, and SDKs retry
 * neither status.
 *
 * Written here rather than taken from hono/cors because that one sets headers through
 * `c.res.headers` on every request, which on @hono/node-server turns the lightweight response
 * into a full WHATWG Response and cost a sizeable share of each check. Headers are set with
 * `c.header()` before `next()`, and a request without `Origin` costs one header read.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import { PembaError } from '../core/errors.ts'

const METHODS = 'GET,POST,HEAD,PATCH,DELETE,PUT'
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** A browser setting that cannot work; config.ts turns it into a ConfigError naming the variable. */
export class BrowserSettingError extends Error {}

/** The origins allowed to call the API from a browser: none (CORS off), any (`*`), or a list. */
export type CorsPolicy =
  | { readonly kind: 'off' }
  | { readonly kind: 'any' }
  | { readonly kind: 'list'; readonly origins: ReadonlySet<string> }

/**
 * parseCorsOrigins reads `PEMBA_CORS_ORIGINS`: '' (off), `*`, or a comma list of origins
 * `scheme://host[:port]` exactly as a browser sends them in `Origin` (lower case, no path, no
 * default port): `https://console.example.com,http://localhost:3000`.
 */
export function parseCorsOrigins(value: string): CorsPolicy {
  const entries = value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
  if (entries.length === 0) return { kind: 'off' }
  if (entries.includes('*')) {
    if (entries.length > 1) {
      throw new BrowserSettingError(`PEMBA_CORS_ORIGINS: '*' (any origin, without credentials) cannot be combined with other origins`)
    }
    return { kind: 'any' }
  }
  return { kind: 'list', origins: new Set(entries.map(checkOrigin)) }
}

function checkOrigin(entry: string): string {
  const example = 'scheme://host[:port], e.g. https://console.example.com or http://localhost:3000'
  let url: URL
  try {
    url = new URL(entry)
  } catch {
    throw new BrowserSettingError(`PEMBA_CORS_ORIGINS: '${entry}' is not an origin (${example})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BrowserSettingError(`PEMBA_CORS_ORIGINS: '${entry}' is not an http or https origin (${example})`)
  }
  if (url.origin !== entry) {
    // A path, credentials, a default port or upper case: browsers never send those in Origin,
    // so the entry would silently match nothing.
    throw new BrowserSettingError(`PEMBA_CORS_ORIGINS: '${entry}' is not an origin as browsers send it; did you mean '${url.origin}'?`)
  }
  return entry
}

/**
 * browserOrigins is the middleware: CORS headers for allowed origins, preflights answered, and
 * cross-origin writes from other origins refused. `exposeHeaders` are the response headers a
 * page may read (the request id, the model id, the truncation flag).
 */
export function browserOrigins(policy: CorsPolicy, exposeHeaders: string[]): MiddlewareHandler {
  const expose = exposeHeaders.join(',')
  // With a list, answers differ by Origin: say so on every answer, so a shared cache never
  // serves one origin's answer (or a non-browser's) to another.
  const vary = policy.kind === 'list'
  return async function browserOrigins(c, next) {
    if (vary) c.header('Vary', 'Origin')
    const origin = c.req.header('origin')
    if (origin === undefined) return next()
    const method = c.req.method
    const preflight = method === 'OPTIONS' && c.req.header('access-control-request-method') !== undefined
    const allowed = policy.kind === 'any' || (policy.kind === 'list' && policy.origins.has(origin))
    if (!allowed) {
      if (preflight || (STATE_CHANGING.has(method) && !isOwnOrigin(origin, c.req.url, c.req.header('host')))) {
        throw new PembaError(
          'forbidden',
          `${preflight ? 'preflight' : method} request from origin '${origin}' not allowed; set PEMBA_CORS_ORIGINS to let a web page on that origin call Pemba`,
          403,
        )
      }
      return next()
    }
    if (policy.kind === 'any') {
      c.header('Access-Control-Allow-Origin', '*')
    } else {
      c.header('Access-Control-Allow-Origin', origin)
      c.header('Access-Control-Allow-Credentials', 'true')
    }
    if (preflight) {
      c.header('Access-Control-Allow-Methods', METHODS)
      const requested = c.req.header('access-control-request-headers')
      if (requested) c.header('Access-Control-Allow-Headers', requested)
      c.header('Access-Control-Max-Age', '600')
      return c.body(null, 204)
    }
    c.header('Access-Control-Expose-Headers', expose)
    return next()
  }
}

/**
 * isOwnOrigin: does `origin` name this request's own host (the Host header)? A page served by
 * Pemba's own host (none today, but a proxy may serve a console there) is same-origin, and a
 * browser sends `Origin` on its same-origin POSTs too. The scheme is not compared: behind a
 * proxy that ends TLS the request arrives as http while the page's origin is https, and one
 * host and port serve one scheme.
 */
function isOwnOrigin(origin: string, url: string, host: string | undefined): boolean {
  const at = origin.indexOf('://')
  return at > 0 && origin.slice(at + 3).toLowerCase() === (host ?? authorityOf(url)).toLowerCase()
}

/** authorityOf(`http://127.0.0.1:8080/stores`) is `127.0.0.1:8080`. */
export function authorityOf(url: string): string {
  const start = url.indexOf('//') + 2
  const end = url.indexOf('/', start)
  return end === -1 ? url.slice(start) : url.slice(start, end)
}
