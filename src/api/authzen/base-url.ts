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
 *    the proxy) or a list of proxy addresses (`10.0.0.5,::1`). With `off`, the default, the
 *    headers are ignored, since any client could otherwise make Pemba advertise its host.
 *
 * The PDP identifier of a store is `${origin}/stores/${storeId}` (OpenFGA's layout); with
 * `PEMBA_AUTHZEN_DEFAULT_STORE` the root paths serve that store and its identifier is `${origin}`.
 *
 * Cheap by design: a few header reads and string joins, no URL objects (the evaluation path
 * calls it per request).
 *
 * @module
 */
import type { Context } from 'hono'
import { PembaError } from '../../core/errors.ts'
import type { AppEnv } from '../env.ts'
import { normalAddress, type AuthzenSettings, type TrustProxy } from './settings.ts'

export type { AuthzenSettings } from './settings.ts'

/** A host, optionally with a port: a DNS name, IPv4 or a bracketed IPv6 literal. Nothing else goes into a URL. */
const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

/** The peer's address on @hono/node-server; undefined elsewhere (app.request in tests). */
function peerAddress(c: Context<AppEnv>): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined
  const a = env?.incoming?.socket?.remoteAddress
  return a === undefined ? undefined : normalAddress(a)
}

function trusts(c: Context<AppEnv>, trust: TrustProxy): boolean {
  if (typeof trust === 'boolean') return trust
  const peer = peerAddress(c)
  return peer !== undefined && trust.has(peer)
}

/** The first value of a list header (`X-Forwarded-Host: a, b` → `a`), trimmed. */
function firstValue(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const comma = header.indexOf(',')
  const v = (comma === -1 ? header : header.slice(0, comma)).trim()
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
    const proto = firstValue(c.req.header('x-forwarded-proto'))?.toLowerCase()
    if (proto === 'http' || proto === 'https') scheme = proto
    host = firstValue(c.req.header('x-forwarded-host')) ?? host
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
