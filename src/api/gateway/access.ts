/**
 * Who may ask the gateway decision endpoint, when API clients authenticate: the proxy (a PEP),
 * with its own credential in `Pemba-Authorization: Bearer <key>`, since `Authorization` there
 * is the end user's token, the subject of the decision. The proxy needs `checker` on the store
 * (route-table.ts). A proxy refused (no credential, a bad one, no rights) gets 403, never 401:
 * nginx and Envoy hand the answer to the end user, to whom a 401 says "log in", which their
 * token cannot fix.
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'

/** The header the proxy's own Pemba credential travels in on the gateway routes. */
export const PEP_AUTHORIZATION = 'Pemba-Authorization'

/** The header naming why the gateway decision endpoint refused a request: a short code, never more. */
export const REFUSAL_HEADER = 'X-Pemba-Refusal'

const GATEWAY = /^\/stores\/:store\/gateway\/authorize(\/\*)?$/

/** isGatewayRoute: is this route table path the gateway decision endpoint? */
export function isGatewayRoute(path: string): boolean {
  return GATEWAY.test(path)
}

const GATEWAY_PATH = /^\/stores\/[^/]+\/gateway\/authorize(?:\/|$)/

/** isGatewayPath: is this request path (already parsed) one of the gateway decision endpoint? */
export function isGatewayPath(path: string): boolean {
  return GATEWAY_PATH.test(path)
}

/** gatewayRefusal: an authentication or permission refusal of the proxy, as 403 naming its header. */
export function gatewayRefusal(e: unknown): unknown {
  if (e instanceof PembaError && (e.status === 401 || e.code === 'forbidden')) {
    // Generic: the answer reaches the end user, so it names no client and no store.
    const why = e.code === 'forbidden' ? 'without the checker permission on this store' : 'missing or not valid'
    return new PembaError('forbidden', `the proxy's ${PEP_AUTHORIZATION} credential is ${why}`, 403)
  }
  return e
}
