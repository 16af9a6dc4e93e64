/**
 * The SSRF guard of token issuers' key sets. A store admin registers a token issuer with a
 * `jwks_uri`, and Pemba fetches it; without a guard, the admin could make Pemba GET any URL on
 * its loopback interface or its private network (a cloud's metadata service at
 * 169.254.169.254, an internal admin page) and learn from the answer's timing and failure mode.
 * So a key set is fetched only from a public address unless the operator allows more:
 *
 * - every address a host name resolves to is checked, and the connection goes to the address
 *   that was checked (node:http's `lookup` option), so a DNS answer that changes between the
 *   check and the connection (DNS rebinding) cannot win;
 * - redirects are followed here, at most MAX_REDIRECTS, and every hop is checked the same way,
 *   its scheme included (https, or plain http to a loopback host only, as at registration; jose
 *   asks for no redirects: it treats any answer but 200 as a failure);
 * - the answer is cut at `maxBytes`, and the whole fetch (lookups, connections, redirects and
 *   body) ends at `timeoutMs` whatever the server does (a 101, a dropped connection);
 * - at most MAX_CONCURRENT_LOOKUPS host name lookups run at once, so slow nameservers cannot
 *   take over the threadpool that every JWT verification needs;
 * - refused: loopback, unspecified, private (RFC 1918), shared (CGNAT, 100.64/10), link-local,
 *   unique-local and site-local IPv6, multicast, reserved and the special-purpose blocks below;
 *   IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) as the IPv4 address they carry. The URL
 *   parser has already turned every other IPv4 spelling (`0x7f000001`, `127.1`, `2130706433`,
 *   octal) into the dotted form checked here.
 *
 * `PEMBA_JWKS_ALLOW_PRIVATE=on` lifts the guard; `PEMBA_JWKS_ALLOWED_HOSTS` lifts it for the
 * host names, addresses and CIDR blocks it lists. Operator-configured key sets
 * (`PEMBA_AUTH_OIDC_JWKS_URI`, the MCP gateway's issuers) are trusted and do not pass here.
 *
 * @module
 */
import { BlockList, isIP } from 'node:net'
import { lookup } from 'node:dns/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isLoopbackHost } from '../core/net.ts'

/** A bad PEMBA_JWKS_ALLOWED_HOSTS entry; the configuration turns it into an error naming the setting. */
export class JwksSettingError extends Error {}

/** The guard refused a destination, an answer too large, or too many redirects. */
export class JwksFetchRefused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'JwksFetchRefused'
  }
}

/** How many redirects one key set fetch follows. */
export const MAX_REDIRECTS = 3

/**
 * How many host name lookups the guard runs at once. `dns.lookup` is getaddrinfo on libuv's
 * threadpool (4 threads by default, shared with WebCrypto, so with every JWT verification), and
 * it cannot be cancelled: a name whose nameserver never answers holds a thread for the resolver's
 * whole timeout, whatever our deadline says. Bounding the guard's lookups keeps the threadpool
 * free for the rest of the process however many slow names store admins register. (c-ares'
 * `dns.Resolver` would use no thread, but it skips /etc/hosts and nsswitch, which operators'
 * allowed host names and `localhost` rely on.)
 */
export const MAX_CONCURRENT_LOOKUPS = 2

/**
 * The special-purpose blocks refused, each with the rule named in refusals: every entry of IANA's
 * IPv4 and IPv6 Special-Purpose Address Registries whose "Globally Reachable" is False (or N/A),
 * plus the IPv6 prefixes that carry an IPv4 address on to it (NAT64, 6to4, Teredo, SIIT), which
 * would otherwise reach an internal IPv4 address through a translator or relay. IPv4-mapped
 * addresses (::ffff:0:0/96) are not listed: BlockList judges them as the IPv4 address they carry.
 * https://www.iana.org/assignments/iana-ipv4-special-registry and iana-ipv6-special-registry
 */
const REFUSED_BLOCKS: readonly { rule: string; blocks: readonly [string, number, 'ipv4' | 'ipv6'][] }[] = [
  { rule: 'loopback', blocks: [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']] },
  { rule: 'unspecified', blocks: [['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']] },
  { rule: 'private', blocks: [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4']] },
  { rule: 'shared (CGNAT)', blocks: [['100.64.0.0', 10, 'ipv4']] },
  { rule: 'link-local', blocks: [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']] },
  { rule: 'unique-local', blocks: [['fc00::', 7, 'ipv6'], ['fec0::', 10, 'ipv6']] },
  { rule: 'multicast', blocks: [['224.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']] },
  {
    rule: 'documentation',
    blocks: [
      ['192.0.2.0', 24, 'ipv4'], // TEST-NET-1
      ['198.51.100.0', 24, 'ipv4'], // TEST-NET-2
      ['203.0.113.0', 24, 'ipv4'], // TEST-NET-3
      ['2001:db8::', 32, 'ipv6'],
      ['3fff::', 20, 'ipv6'],
    ],
  },
  { rule: 'benchmarking', blocks: [['198.18.0.0', 15, 'ipv4'], ['2001:2::', 48, 'ipv6']] },
  {
    rule: 'reserved',
    blocks: [
      ['240.0.0.0', 4, 'ipv4'], // and the broadcast address
      ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
      ['192.88.99.0', 24, 'ipv4'], // 6to4 relay anycast (deprecated)
      ['::', 96, 'ipv6'], // IPv4-compatible (deprecated)
      ['::ffff:0:0:0', 96, 'ipv6'], // IPv4-translated (SIIT): would reach the IPv4 address it carries
      ['64:ff9b::', 96, 'ipv6'], // NAT64: the same
      ['64:ff9b:1::', 48, 'ipv6'],
      ['2002::', 16, 'ipv6'], // 6to4: the same
      ['2001::', 32, 'ipv6'], // Teredo: the same, through a relay
      ['2001::', 23, 'ipv6'], // the rest of the IETF protocol assignments (ORCHID, AMT, …)
      ['100::', 64, 'ipv6'], // discard
      ['100:0:0:1::', 64, 'ipv6'], // dummy prefix
      ['5f00::', 16, 'ipv6'], // SRv6 segment identifiers
    ],
  },
]

const RULES = REFUSED_BLOCKS.map(({ rule, blocks }) => {
  const list = new BlockList()
  for (const [address, prefix, family] of blocks) list.addSubnet(address, prefix, family)
  return { rule, list }
})

/**
 * refusedRule: the rule that refuses an address (`loopback`, `private`, …), or undefined for a
 * public one. An IPv4-mapped IPv6 address is judged as its IPv4 address (BlockList does so).
 */
export function refusedRule(address: string): string | undefined {
  const family = isIP(address)
  if (family === 0) return 'not an IP address'
  const type = family === 4 ? 'ipv4' : 'ipv6'
  return RULES.find((r) => r.list.check(address, type))?.rule
}

/** The hosts and addresses PEMBA_JWKS_ALLOWED_HOSTS lets through. */
export interface JwksAllowList {
  readonly hosts: ReadonlySet<string>
  readonly addresses: BlockList
  readonly empty: boolean
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/

/**
 * parseJwksAllowedHosts reads PEMBA_JWKS_ALLOWED_HOSTS: a comma list of host names
 * (`keys.internal`, matched exactly, in any case), IP addresses (`10.1.0.5`, `::1`, `[::1]`) and
 * CIDR blocks (`10.1.0.0/16`, `fd00::/8`). A host name lets through whatever it resolves to; an
 * address or block, any host that resolves into it.
 */
export function parseJwksAllowedHosts(value: string): JwksAllowList {
  const hosts = new Set<string>()
  const addresses = new BlockList()
  let count = 0
  for (const raw of value.split(',')) {
    const entry = raw.trim().toLowerCase()
    if (entry === '') continue
    count++
    const refuse = (why: string) =>
      new JwksSettingError(
        `PEMBA_JWKS_ALLOWED_HOSTS: '${raw.trim()}' ${why} (host names, IP addresses or CIDR blocks, e.g. keys.internal,10.1.0.5,10.1.0.0/16)`,
      )
    const slash = entry.indexOf('/')
    if (slash !== -1) {
      const address = unbracket(entry.slice(0, slash))
      const prefixText = entry.slice(slash + 1)
      const family = isIP(address)
      const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN
      if (family === 0) throw refuse('is not a CIDR block: the part before / is not an IP address')
      if (!(prefix >= 0 && prefix <= (family === 4 ? 32 : 128))) throw refuse(`is not a CIDR block: the prefix length must be 0 to ${family === 4 ? 32 : 128}`)
      addresses.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6')
      continue
    }
    const address = unbracket(entry)
    const family = isIP(address)
    if (family !== 0) {
      addresses.addAddress(address, family === 4 ? 'ipv4' : 'ipv6')
      continue
    }
    const host = entry.endsWith('.') ? entry.slice(0, -1) : entry
    if (!HOST_NAME.test(host) || /^[\d.]+$/.test(host)) throw refuse('is not a host name, an IP address or a CIDR block')
    hosts.add(host)
  }
  return { hosts, addresses, empty: count === 0 }
}

/** What the guard allows and bounds (PEMBA_JWKS_ALLOW_PRIVATE, _ALLOWED_HOSTS, _MAX_BYTES, _TIMEOUT_MS). */
export interface JwksFetchPolicy {
  allowPrivate: boolean
  allowed: JwksAllowList
  maxBytes: number
  timeoutMs: number
}

/** jose's customFetch: `(url, {method, headers, signal, redirect}) => Response`. */
export type KeySetFetch = (url: string, init: { headers?: Headers | Record<string, string>; signal?: AbortSignal | null }) => Promise<Response>

/** JwksFetchGuard applies a policy: at registration (IP literals) and on every fetch. */
export class JwksFetchGuard {
  readonly #policy: JwksFetchPolicy
  readonly #lookups = new Semaphore(MAX_CONCURRENT_LOOKUPS)

  constructor(policy: JwksFetchPolicy) {
    this.#policy = policy
  }

  get timeoutMs(): number {
    return this.#policy.timeoutMs
  }

  /**
   * literalRefusal: why a `jwks_uri` whose host is an IP address in a refused range cannot be
   * registered (a sentence naming the rule and the settings), or undefined. Host names are
   * checked when fetched, since what they resolve to may change.
   */
  literalRefusal(uri: string): string | undefined {
    let url: URL
    try {
      url = new URL(uri)
    } catch {
      return undefined
    }
    const host = unbracket(url.hostname)
    if (isIP(host) === 0) return undefined
    const rule = this.#refusal(host, host)
    return rule && `jwks_uri: ${host} is a ${rule} address, which token issuers may not fetch keys from; ${ALLOW_HINT}`
  }

  /** fetch is the guarded GET, in the form jose's `customFetch` option takes. */
  readonly fetch: KeySetFetch = async (uri, init) => {
    const deadline = AbortSignal.timeout(this.#policy.timeoutMs)
    const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline
    // The deadline settles the whole fetch whatever happens to the sockets underneath: a hop
    // that never settles (an answer Node hands to no one) cannot outlive PEMBA_JWKS_TIMEOUT_MS.
    return await abortable(this.#follow(new URL(uri), new Headers(init.headers), signal), signal)
  }

  /** The GETs of one fetch: the first URL and each redirect's target, every hop checked alike. */
  async #follow(first: URL, headers: Headers, signal: AbortSignal): Promise<Response> {
    let url = first
    for (let hop = 0; ; hop++) {
      const answer = await this.#fetchOnce(url, headers, signal)
      if ('location' in answer) {
        if (hop >= MAX_REDIRECTS) throw new JwksFetchRefused(`jwks_uri: more than ${MAX_REDIRECTS} redirects`)
        url = new URL(answer.location, url)
        continue
      }
      return answer.response
    }
  }

  /** lookup resolves a host name, at most MAX_CONCURRENT_LOOKUPS at once (waiting counts against the deadline). */
  async #lookup(host: string, signal: AbortSignal): Promise<{ address: string; family: number }[]> {
    await this.#lookups.acquire(signal)
    if (signal.aborted) {
      this.#lookups.release()
      throw timeoutError(signal)
    }
    // The slot is given back when getaddrinfo returns, not when the deadline gives up on it: the
    // thread stays busy until then.
    const pending = lookup(host, { all: true, verbatim: true }).finally(() => this.#lookups.release())
    return await abortable(pending, signal)
  }

  #refusal(host: string, address: string): string | undefined {
    const p = this.#policy
    if (p.allowPrivate) return undefined
    if (p.allowed.hosts.has(host.toLowerCase().replace(/\.$/, ''))) return undefined
    const family = isIP(address)
    if (family !== 0 && p.allowed.addresses.check(address, family === 4 ? 'ipv4' : 'ipv6')) return undefined
    return refusedRule(address)
  }

  /** One GET of `url` at a checked address: a redirect's target, or the answer with its body read. */
  async #fetchOnce(url: URL, headers: Headers, signal: AbortSignal): Promise<{ location: string } | { response: Response }> {
    const refused = schemeRefusal(url)
    if (refused) throw new JwksFetchRefused(refused)
    const host = unbracket(url.hostname)
    const found = isIP(host) !== 0 ? [{ address: host, family: isIP(host) }] : await this.#lookup(host, signal)
    if (found.length === 0) throw new JwksFetchRefused(`jwks_uri: ${host} has no address`)
    for (const { address } of found) {
      const rule = this.#refusal(host, address)
      if (rule) {
        const where = address === host ? `${host} is` : `${host} resolves to ${address},`
        throw new JwksFetchRefused(`jwks_uri: ${where} a ${rule} address, which token issuers may not fetch keys from; ${ALLOW_HINT}`)
      }
    }
    const { address, family } = found[0]
    return await new Promise((resolve, reject) => {
      const fail = (e: unknown) => reject(signal.aborted ? timeoutError(signal) : e)
      let answered = false
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest
      const req = send(
        {
          protocol: url.protocol,
          hostname: url.hostname.startsWith('[') ? host : url.hostname,
          port: url.port || undefined,
          path: url.pathname + url.search,
          method: 'GET',
          headers: Object.fromEntries(headers),
          agent: false,
          signal,
          // Connect to the address checked above, whatever DNS would answer now; TLS still checks
          // the certificate against the host name.
          lookup: (_hostname, options, callback) => {
            if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }])
            else (callback as (e: null, a: string, f: number) => void)(null, address, family)
          },
        },
        (res) => {
          answered = true
          const status = res.statusCode ?? 0
          const location = res.headers.location
          if (status >= 300 && status < 400 && location !== undefined) {
            res.resume()
            resolve({ location })
            return
          }
          readCapped(res, this.#policy.maxBytes).then(
            (body) => resolve({ response: new Response(status === 204 || status === 304 ? null : body, { status: status >= 200 && status <= 599 ? status : 502, headers: plainHeaders(res) }) }),
            (e: unknown) => {
              req.destroy()
              reject(signal.aborted ? timeoutError(signal) : e)
            },
          )
        },
      )
      req.on('error', fail)
      // A 101 (or any upgrade) reaches neither the answer callback nor 'error': without these
      // two, Node drops the socket and the promise would never settle.
      req.on('upgrade', (_res, socket) => {
        socket.destroy()
        reject(new JwksFetchRefused('jwks_uri: the server switched protocols instead of answering'))
      })
      // Closed before an answer's head arrived (once answered, readCapped watches the body).
      req.on('close', () => {
        if (!answered) fail(new Error('jwks_uri: the connection closed without an answer'))
      })
      req.end()
    })
  }
}

const ALLOW_HINT = 'set PEMBA_JWKS_ALLOWED_HOSTS (or PEMBA_JWKS_ALLOW_PRIVATE=on) to allow it'

/**
 * schemeRefusal: why a URL may not be fetched by its form, or undefined. The rule registration
 * applies to `jwks_uri` (https, or plain http to a loopback host only, since keys fetched over
 * plain HTTP could be swapped in transit; no credentials), applied to every hop, so a redirect
 * (https to http, say) cannot fetch what registration refuses.
 */
export function schemeRefusal(url: URL): string | undefined {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `jwks_uri: ${url.protocol} URLs are not fetched`
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) return `jwks_uri: plain http is fetched only from a loopback host, not ${url.host}; use https`
  if (url.username || url.password) return 'jwks_uri: a URL with credentials is not fetched'
  return undefined
}

/** A counting semaphore whose waiters leave the queue, rejected, when their signal aborts. */
class Semaphore {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(size: number) {
    this.#free = size
  }

  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(timeoutError(signal))
    if (this.#free > 0) {
      this.#free--
      return Promise.resolve()
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', leave)
        resolve()
      }
      const leave = () => {
        const i = this.#waiting.indexOf(grant)
        if (i !== -1) this.#waiting.splice(i, 1)
        reject(timeoutError(signal))
      }
      this.#waiting.push(grant)
      signal.addEventListener('abort', leave, { once: true })
    })
  }

  release(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#free++
  }
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

/** readCapped reads a body of at most `maxBytes`, refusing a larger one as soon as it shows. */
function readCapped(res: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = () => new JwksFetchRefused(`jwks_uri: the answer is larger than PEMBA_JWKS_MAX_BYTES (${maxBytes} bytes)`)
  const declared = Number(res.headers['content-length'])
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.destroy()
    return Promise.reject(tooLarge())
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) {
        res.destroy()
        reject(tooLarge())
        return
      }
      chunks.push(chunk)
    })
    res.on('end', () => resolve(Buffer.concat(chunks)))
    res.on('error', reject)
    // Destroyed before its end (the deadline's abort, a dropped connection): a promise settled
    // already ignores this.
    res.on('close', () => reject(new Error('jwks_uri: the answer was cut off')))
  })
}

function plainHeaders(res: IncomingMessage): Headers {
  const h = new Headers()
  const type = res.headers['content-type']
  if (type) h.set('content-type', type)
  return h
}

/** A timeout as jose recognises it (`TimeoutError` becomes its JWKSTimeout). */
function timeoutError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown
  if (reason instanceof Error && reason.name === 'TimeoutError') return reason
  const e = new Error('jwks_uri: the fetch took longer than PEMBA_JWKS_TIMEOUT_MS')
  e.name = 'TimeoutError'
  return e
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(timeoutError(signal))
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(timeoutError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}
