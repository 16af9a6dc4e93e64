/**
 * The absolute URLs of the AuthZEN API: discovery advertises absolute endpoints, a requestable
 * denial names its access-request endpoint, and a binding token's audience is the PDP
 * identifier. They are built from:
 *
 * 1. `PEMBA_PUBLIC_URL` when set (`https://authz.example.com`, or with a path prefix a proxy
 *    strips, `https://gw.example.com/pemba`): what the clients see, whatever reached Pemba;
 * 2. else the listening scheme (Pemba serves plain HTTP) and the request's `Host`;
 * 3. `X-Forwarded-Proto` / `X-Forwarded-Host` replace them only when `PEMBA_TRUST_PROXY`
 *    trusts the peer the request came from: `on` (every peer: Pemba is reachable only through
 *    the proxy) or a list of proxy addresses or CIDR blocks (`10.0.0.5,::1,172.16.0.0/12`).
 *    With `off`, the default, the headers are ignored, since any client could otherwise make
 *    Pemba advertise its host. Of a list header (`X-Forwarded-Host: evil, gw.example`) the
 *    LAST value is taken: the one the trusted proxy next to Pemba appended (a proxy that
 *    appends passes the client's own value along in front). A proxy chain of several hops
 *    must overwrite the headers rather than append.
 *
 * The PDP identifier of a store is `${origin}/stores/${storeId}` (OpenFGA's layout); with
 * `PEMBA_AUTHZEN_DEFAULT_STORE` the root paths serve that store and its identifier is `${origin}`.
 *
 * Cheap by design: a few header reads and string joins, no URL objects. The evaluation routes
 * build the identifier lazily (pdpOf behind a getter): a plain decision never reads the Host.
 *
 * @module
 */
import type { Context } from 'hono'
import { PembaError } from '../../core/errors.ts'
import type { AppEnv } from '../env.ts'
import { servedAtRoot } from './root-paths.ts'
import type { AuthzenSettings, TrustProxy } from './settings.ts'

export type { AuthzenSettings } from './settings.ts'

/** A host, optionally with a port: a DNS name, IPv4 or a bracketed IPv6 literal. Nothing else goes into a URL. */
const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

/** The peer's address on @hono/node-server; undefined elsewhere (app.request in tests). */
export function peerAddress(c: Context<AppEnv>): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined
  return env?.incoming?.socket?.remoteAddress
}

function trusts(c: Context<AppEnv>, trust: TrustProxy): boolean {
  if (typeof trust === 'boolean') return trust
  const peer = peerAddress(c)
  return peer !== undefined && trust.has(peer)
}

/** The last value of a list header (`X-Forwarded-Host: a, b` → `b`), trimmed: the nearest proxy's. */
function lastValue(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const v = header.slice(header.lastIndexOf(',') + 1).trim()
  return v === '' ? undefined : v
}

/**
 * requestOrigin: the origin clients reach this server at, `http://127.0.0.1:8080` (see the module
 * comment). A request without a usable Host (and no PEMBA_PUBLIC_URL) is a 400: no absolute URL
 * can be built for it.
 */
export function requestOrigin(c: Context<AppEnv>, s: AuthzenSettings): string {
  if (s.publicUrl !== '') return s.publicUrl
  let scheme = 'http'
  let host = c.req.header('host')
  if (s.trustProxy !== false && trusts(c, s.trustProxy)) {
    const proto = lastValue(c.req.header('x-forwarded-proto'))?.toLowerCase()
    if (proto === 'http' || proto === 'https') scheme = proto
    host = lastValue(c.req.header('x-forwarded-host')) ?? host
  }
  if (host === undefined || !HOST.test(host)) {
    throw new PembaError(
      'validation_error',
      'the request has no valid Host header to build absolute URLs from; send one, or set PEMBA_PUBLIC_URL',
    )
  }
  return `${scheme}://${host.toLowerCase()}`
}

/**
 * pdpIdentifier: the PDP identifier (`policy_decision_point`) of a store,
 * `http://127.0.0.1:8080/stores/01J…`, or the origin itself when the store is served at the
 * root (PEMBA_AUTHZEN_DEFAULT_STORE).
 */
export function pdpIdentifier(origin: string, storeId: string, atRoot: boolean): string {
  return atRoot ? origin : `${origin}/stores/${storeId}`
}

/**
 * pdpOf: the PDP identifier of the request's store; the origin alone when the request came in
 * through the root paths of PEMBA_AUTHZEN_DEFAULT_STORE (root-paths.ts). Build it only when a
 * URL is needed (discovery, a requestable denial, an approval): it reads the Host, and a plain
 * evaluation needs neither.
 */
export function pdpOf(c: Context<AppEnv>, s: AuthzenSettings, storeId: string): string {
  return pdpIdentifier(requestOrigin(c, s), storeId, s.defaultStore === storeId && servedAtRoot(c.req.raw, s))
}
