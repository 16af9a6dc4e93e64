/**
 * The Host check: a defence against DNS rebinding, installed only when authentication is off.
 *
 * A page on `http://attacker.example:8080` can have its DNS name re-resolve to 127.0.0.1; the
 * browser then sends the page's requests to the local Pemba and, the origin being the page's
 * own, lets it read the answers: CORS and the Origin check see a same-origin request. What
 * gives it away is the Host header, which always carries the attacker's name. So with
 * `PEMBA_AUTH_MODE=none`, a request is answered only when its Host is
 *
 * - an IP literal (`127.0.0.1:8080`, `[::1]:8080`): rebinding needs a DNS name;
 * - `localhost` or a name under `.localhost`, which resolve to loopback by definition (RFC 6761);
 * - the name Pemba listens on (`PEMBA_HOST`, when it is a name);
 * - a name listed in `PEMBA_ALLOWED_HOSTS` (the name clients use through a proxy, or a
 *   container's service name).
 *
 * With authentication on, every request needs a token the attacker's page does not have, so
 * there is no check.
 *
 * The refusal is 403 `forbidden`, as dev servers (Vite, webpack-dev-server) answer a foreign
 * Host. 421 Misdirected Request would describe it too, but RFC 9110 §15.5.20 lets a client
 * retry a 421 on another connection, which can only repeat the same refusal.
 *
 * Cheap on the hot path: the last accepted Host is remembered, so a client that keeps sending
 * the same one costs a string comparison.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import { PembaError } from '../core/errors.ts'
import { authorityOf, BrowserSettingError } from './cors.ts'

/** A DNS name: dot-separated labels of letters, digits and inner hyphens (underscores tolerated, as in service names). */
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/
const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

/**
 * parseAllowedHosts reads `PEMBA_ALLOWED_HOSTS`: a comma list of host names without scheme or
 * port (`pemba.internal,authz`), compared without regard to case.
 */
export function parseAllowedHosts(value: string): string[] {
  const names = value
    .split(',')
    .map((e) => e.trim().toLowerCase().replace(/\.$/, ''))
    .filter((e) => e !== '')
  for (const name of names) {
    if (!DNS_NAME.test(name)) {
      throw new BrowserSettingError(
        `PEMBA_ALLOWED_HOSTS: '${name}' is not a host name (give names such as pemba.internal, without scheme or port)`,
      )
    }
  }
  return names
}

/**
 * hostCheck refuses a request whose Host is a DNS name other than localhost, the listen name
 * and the allowed names. `listenHost` is PEMBA_HOST.
 */
export function hostCheck(allowedHosts: readonly string[], listenHost: string): MiddlewareHandler {
  const allowed = new Set(allowedHosts)
  const listen = listenHost.toLowerCase().replace(/\.$/, '')
  if (DNS_NAME.test(listen) && !IPV4.test(listen)) allowed.add(listen)
  let lastAccepted = ''
  return async function hostCheck(c, next) {
    const host = c.req.header('host') ?? authorityOf(c.req.url)
    if (host === lastAccepted) return next()
    if (!isAcceptedHost(host, allowed)) {
      throw new PembaError(
        'forbidden',
        `host '${host}' not allowed: with authentication off (PEMBA_AUTH_MODE=none) Pemba answers only requests ` +
          'addressed to an IP address, localhost or a name in PEMBA_ALLOWED_HOSTS (a defence against DNS rebinding); ' +
          'add the name to PEMBA_ALLOWED_HOSTS, or turn authentication on',
        403,
      )
    }
    lastAccepted = host
    return next()
  }
}

/** isAcceptedHost looks at a Host header's name (its port aside). */
export function isAcceptedHost(host: string, allowed: ReadonlySet<string>): boolean {
  if (host.startsWith('[')) {
    // A bracketed IPv6 literal, with or without a port: `[::1]`, `[::1]:8080`.
    const close = host.indexOf(']')
    return close > 1 && (close === host.length - 1 || /^:\d{1,5}$/.test(host.slice(close + 1)))
  }
  const colon = host.indexOf(':')
  if (colon !== -1 && !/^\d{1,5}$/.test(host.slice(colon + 1))) return false
  const name = (colon === -1 ? host : host.slice(0, colon)).toLowerCase().replace(/\.$/, '')
  if (IPV4.test(name)) return true
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  return allowed.has(name)
}
