/**
 * CORS as OpenFGA configures it by default: any origin (echoed, since credentials are
 * allowed), any request header, the API's methods. Written here rather than taken from
 * hono/cors because that one sets headers through `c.res.headers` on every request, which on
 * @hono/node-server turns the lightweight response into a full WHATWG Response and cost a
 * sizeable share of each check.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'

const METHODS = 'GET,POST,HEAD,PATCH,DELETE,PUT'

export function openfgaCors(exposeHeaders: string[]): MiddlewareHandler {
  const expose = exposeHeaders.join(',')
  return async function cors(c, next) {
    const origin = c.req.header('origin')
    if (origin === undefined) return next()
    c.header('Access-Control-Allow-Origin', origin)
    c.header('Access-Control-Allow-Credentials', 'true')
    c.header('Vary', 'Origin')
    if (c.req.method === 'OPTIONS' && c.req.header('access-control-request-method')) {
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
