/**
 * The AuthZEN settings as the HTTP layer holds them, and the parsers that check
 * PEMBA_PUBLIC_URL and PEMBA_TRUST_PROXY at start (src/config/settings.ts calls them, so what is
 * accepted there is what runs). How the URLs are built from them: base-url.ts.
 *
 * @module
 */

/** Who may set X-Forwarded-Proto/Host: nobody (`false`), every peer (`true`), or these addresses. */
export type TrustProxy = boolean | ReadonlySet<string>

/** The AuthZEN settings the HTTP layer needs (src/config/settings.ts, group AuthZEN). */
export interface AuthzenSettings {
  /** PEMBA_PUBLIC_URL without a trailing `/`; '' = build from the request. */
  publicUrl: string
  /** PEMBA_TRUST_PROXY, parsed. */
  trustProxy: TrustProxy
  /** PEMBA_AUTHZEN_DEFAULT_STORE: the store the root paths serve; '' = none. */
  defaultStore: string
  /** PEMBA_AUTHZEN_DISCOVERY: whether the discovery documents need a client's credentials. */
  discovery: 'public' | 'authenticated'
}

/** AuthzenSettingError: a PEMBA_PUBLIC_URL or PEMBA_TRUST_PROXY that cannot work (names the setting). */
export class AuthzenSettingError extends Error {}

/**
 * parsePublicUrl checks PEMBA_PUBLIC_URL: an absolute http(s) URL with a host, no query,
 * fragment or credentials; returns it without a trailing `/` (`https://a.example/` → `https://a.example`).
 */
export function parsePublicUrl(value: string): string {
  const refuse = (why: string): never => {
    throw new AuthzenSettingError(`PEMBA_PUBLIC_URL must be an absolute http(s) URL such as https://authz.example.com${why}, got '${value}'`)
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return refuse('')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') refuse('')
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) refuse(' (no query or fragment)')
  if (url.username !== '' || url.password !== '') refuse(' (no user name or password)')
  return url.href.replace(/\/+$/, '')
}

/** One IPv4 or IPv6 address, as a socket reports a peer. */
const ADDRESS = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$/

/**
 * parseTrustProxy reads PEMBA_TRUST_PROXY: `off` or '' (never), `on` (every peer), or a comma
 * list of the proxies' IP addresses (`10.0.0.5, ::1`; IPv4-mapped IPv6 peers match their IPv4 form).
 */
export function parseTrustProxy(value: string): TrustProxy {
  const v = value.trim()
  if (v === '' || v === 'off') return false
  if (v === 'on') return true
  const addresses = new Set<string>()
  for (const part of v.split(',')) {
    const a = part.trim()
    if (!ADDRESS.test(a)) {
      throw new AuthzenSettingError(
        `PEMBA_TRUST_PROXY must be 'off', 'on' or a comma-separated list of proxy IP addresses, got '${value}' ('${a}' is not an IP address)`,
      )
    }
    addresses.add(normalAddress(a))
  }
  return addresses
}

/** `::ffff:10.0.0.5` → `10.0.0.5`; IPv6 lower-cased. */
export function normalAddress(a: string): string {
  const lower = a.toLowerCase()
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower
}
