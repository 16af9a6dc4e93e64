/**
 * The AuthZEN settings as the HTTP layer holds them, and the parsers that check
 * PEMBA_PUBLIC_URL and PEMBA_TRUST_PROXY at start (src/config/settings.ts calls them, so what is
 * accepted there is what runs). How the URLs are built from them: base-url.ts.
 *
 * @module
 */
import { BlockList, isIP } from 'node:net'

/** Who may set X-Forwarded-Proto/Host: nobody (`false`), every peer (`true`), or these proxies. */
export type TrustProxy = boolean | ProxyList

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

/**
 * ProxyList: the proxies PEMBA_TRUST_PROXY names, addresses or CIDR blocks. `has` takes a peer
 * address as the socket reports it; IPv6 is compared as numbers (`0:0:0:0:0:0:0:1` is `::1`),
 * and an IPv4-mapped peer (`::ffff:10.0.0.5`, `::ffff:a00:5`) matches its IPv4 entry.
 */
export class ProxyList {
  readonly #list = new BlockList()
  /** The entries as configured (for messages and tests). */
  readonly entries: readonly string[]

  constructor(entries: readonly string[]) {
    this.entries = entries
    for (const e of entries) {
      const slash = e.indexOf('/')
      const address = slash === -1 ? e : e.slice(0, slash)
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4'
      if (slash === -1) this.#list.addAddress(address, family)
      else this.#list.addSubnet(address, Number(e.slice(slash + 1)), family)
    }
  }

  has(peer: string): boolean {
    const family = isIP(peer)
    if (family === 0) return false
    return this.#list.check(peer, family === 6 ? 'ipv6' : 'ipv4')
  }
}

/** One entry of the list: an IP address (checked by `net.isIP`), or one with a prefix length. */
function validEntry(entry: string): boolean {
  const slash = entry.indexOf('/')
  if (slash === -1) return isIP(entry) !== 0
  const family = isIP(entry.slice(0, slash))
  const bits = entry.slice(slash + 1)
  return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}

/**
 * parseTrustProxy reads PEMBA_TRUST_PROXY: `off` or '' (never), `on` (every peer), or a comma
 * list of the proxies' IP addresses or CIDR blocks (`10.0.0.5, ::1, 172.16.0.0/12`).
 */
export function parseTrustProxy(value: string): TrustProxy {
  const v = value.trim()
  if (v === '' || v === 'off') return false
  if (v === 'on') return true
  const entries: string[] = []
  for (const part of v.split(',')) {
    const a = part.trim()
    if (!validEntry(a)) {
      throw new AuthzenSettingError(
        `PEMBA_TRUST_PROXY must be 'off', 'on' or a comma-separated list of proxy IP addresses or CIDR blocks, got '${value}' ('${a}' is not one)`,
      )
    }
    entries.push(a)
  }
  return new ProxyList(entries)
}
