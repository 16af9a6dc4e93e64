/**
 * The AuthZEN routes' answers to clients that may not use them (reference §2.7): an
 * unauthenticated PEP gets 401 with `WWW-Authenticate: Bearer realm="pemba"` (app.ts, on every
 * 401), and an authenticated one without rights on the store 403, where OpenFGA's routes answer
 * their `forbidden` as 401 (kept there for OpenFGA's clients). The discovery documents are
 * public only with PEMBA_AUTHZEN_DISCOVERY=public.
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'

/** The challenge every 401 carries (RFC 6750; AuthZEN §8.19). */
export const BEARER_CHALLENGE = 'Bearer realm="pemba"'

const DISCOVERY_PREFIX = '/.well-known/authzen-configuration/'
const API = '/access/v1/'
const ARAP = '/access/v1/requests'

/**
 * authzenFamily: which AuthZEN contract a path belongs to, for a route table pattern or a
 * request's (mapped) path alike: `arap` (the access-request profile, answered problem+json),
 * `api` (the core API, `{code, message}`), `discovery`, or undefined (not AuthZEN's). The one
 * place that knows the layout (auth.ts, body-limit.ts).
 */
export function authzenFamily(path: string): 'api' | 'arap' | 'discovery' | undefined {
  const api = path.indexOf(API)
  if (api !== -1) return path.startsWith(ARAP, api) ? 'arap' : 'api'
  return path.startsWith(DISCOVERY_PREFIX) ? 'discovery' : undefined
}

/** isAuthzenRoute: is this route table path one of AuthZEN's (its API, ARAP, or discovery)? */
export function isAuthzenRoute(path: string): boolean {
  return authzenFamily(path) !== undefined
}

/** isDiscoveryRoute: is this route table path a discovery document? */
export function isDiscoveryRoute(path: string): boolean {
  return path.startsWith(DISCOVERY_PREFIX)
}

/** authzenRefusal: a `forbidden` refusal as AuthZEN answers it, 403; anything else unchanged. */
export function authzenRefusal(e: unknown): unknown {
  if (e instanceof PembaError && e.code === 'forbidden' && e.status !== 403) return new PembaError('forbidden', e.message, 403)
  return e
}
