/**
 * Overload protection at the HTTP layer, in one place: the per-client rate limit (every route
 * but the health checks and /metrics) and admission control of the routes the route table marks
 * `expensive` (src/service/admission.ts). Both key a request by its API client
 * (`c.var.client`), or by its peer address when authentication is off. A refusal is thrown as
 * `Overloaded`, which the error mapper answers 429 `rate_limited` with `Retry-After` in the
 * route's own error format.
 *
 * An expensive route's slot is taken before its handler reads the body and released when the
 * handler has answered; a streamed answer (`expensive: 'stream'`) keeps it until the query
 * behind the stream has finished (`queryDone`), or its stream ends or the client goes away
 * before that: a client that never reads does not keep a slot. A client that disconnects while
 * queued leaves the queue.
 *
 * @module
 */
import type { Context, Hono, MiddlewareHandler } from 'hono'
import type { Admission, AdmissionSlot } from '../service/admission.ts'
import type { RateLimiter } from '../service/rate-limit.ts'
import type { AppDeps, AppEnv } from './env.ts'
import { authzenFamily } from './authzen/access.ts'
import { isGatewayPath, REFUSAL_HEADER } from './gateway/access.ts'
import { peerAddress } from './authzen/base-url.ts'
import { errorContext, problemDetails, problemResponse } from './errors.ts'
import { ROUTES } from './route-table.ts'

/** The routes a rate limit never applies to: probes and scrapes must see an overloaded server. */
const UNLIMITED = new Set(['/healthz', '/readyz', '/metrics'])

/**
 * clientKey: who a request counts against, the API client or (authentication off) its peer:
 * an IPv6 peer by its /64, since one host usually holds a whole /64 and would otherwise be as
 * many clients as it has addresses (for the per-client bounds and the rate limit alike).
 */
export function clientKey(c: Context<AppEnv>): string {
  return c.get('client') || peerKey(peerAddress(c) || '')
}

/**
 * peerKey: an IPv4 address (also IPv4-mapped IPv6, `::ffff:192.0.2.1`) as it is; an IPv6
 * address as its /64 prefix (`2001:db8:0:1::/64`).
 */
export function peerKey(address: string): string {
  if (!address.includes(':')) return address
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return mapped[1]
  const bare = address.replace(/%.*$/, '')
  const [head, tail] = bare.split('::', 2) as [string, string | undefined]
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  const prefix = groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16))
  return `${prefix.join(':')}::/64`
}

/**
 * rateLimit refuses a client's request once its token bucket is empty: thrown to the error
 * mapper, except on AuthZEN's access-request routes, whose every refusal is problem+json.
 */
export function rateLimit(limiter: RateLimiter, deps: Pick<AppDeps, 'redact' | 'logError'>): MiddlewareHandler<AppEnv> {
  return async function limitRate(c, next) {
    const path = c.req.path
    if (!UNLIMITED.has(path)) {
      try {
        limiter.take(clientKey(c))
      } catch (err) {
        // A proxy tells a refusal from a denial by this header (docs/gateway.md).
        if (isGatewayPath(path)) c.header(REFUSAL_HEADER, 'rate_limited')
        if (authzenFamily(path) !== 'arap') throw err
        return problemResponse(c, problemDetails(err, errorContext(deps, c.get('requestId') ?? '')))
      }
    }
    await next()
  }
}

/**
 * limitFailedAuth charges each request answered 401 to its peer (by peerKey), in a bucket of the
 * rate limit's size, and refuses a peer whose bucket is empty before its credentials are
 * verified: a flood of bad tokens costs a signature check (or a JWKS fetch) only while the
 * peer is under the limit. Successful requests cost nothing here.
 */
export function limitFailedAuth(limiter: RateLimiter, deps: Pick<AppDeps, 'redact' | 'logError'>): MiddlewareHandler<AppEnv> {
  return async function failedAuthLimit(c, next) {
    const path = c.req.path
    if (UNLIMITED.has(path)) return next()
    const peer = peerKey(peerAddress(c) || '')
    try {
      limiter.ensure(peer, `too many failed authentication attempts from this address (PEMBA_RATE_LIMIT_PER_CLIENT); try again later`)
    } catch (err) {
      if (isGatewayPath(path)) c.header(REFUSAL_HEADER, 'rate_limited')
      if (authzenFamily(path) !== 'arap') throw err
      return problemResponse(c, problemDetails(err, errorContext(deps, c.get('requestId') ?? '')))
    }
    await next()
    if (c.res.status === 401) limiter.spend(peer)
  }
}

/**
 * registerAdmission installs admission control on every expensive route of the table, as
 * route-specific middleware: other routes pay nothing for it.
 */
export function registerAdmission(app: Hono<AppEnv>, admission: Admission): void {
  for (const r of ROUTES) {
    if (!('expensive' in r)) continue
    app.on(r.method, r.path, admitted(admission, r.expensive === 'stream'))
  }
}

function admitted(admission: Admission, streamed: boolean): MiddlewareHandler<AppEnv> {
  return async function admit(c, next) {
    const signal = c.req.raw.signal
    const slot = await admission.acquire(clientKey(c), signal)
    let held = false
    try {
      await next()
      // A handler that threw was answered by the error mapper: its work is over.
      if (streamed && c.error === undefined && c.res.body) {
        c.res = new Response(releasedAtEnd(c.res.body, slot), c.res)
        held = true
        // The slot bounds work, not a slow reader: it is free once the query behind the stream
        // has finished, whether or not the client reads the rest (whichever comes first).
        const done = c.get('queryDone')
        if (done) void done.then(slot.release, slot.release)
      }
    } finally {
      if (!held) slot.release()
    }
  }
}

/** releasedAtEnd passes a streamed body through, releasing the slot when it ends or is cancelled. */
function releasedAtEnd(body: ReadableStream<Uint8Array>, slot: AdmissionSlot): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read()
        if (done) {
          slot.release()
          controller.close()
        } else controller.enqueue(value)
      } catch (e) {
        slot.release()
        controller.error(e)
      }
    },
    cancel(reason) {
      slot.release()
      return reader.cancel(reason)
    },
  })
}
