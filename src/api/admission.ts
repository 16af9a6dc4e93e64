/**
 * Overload protection at the HTTP layer, in one place: the per-client rate limit (every route
 * but the health checks and /metrics) and admission control of the routes the route table marks
 * `expensive` (src/service/admission.ts). Both key a request by its API client
 * (`c.var.client`), or by its peer address when authentication is off. A refusal is thrown as
 * `Overloaded`, which the error mapper answers 429 `rate_limited` with `Retry-After` in the
 * route's own error format.
 *
 * An expensive route's slot is taken before its handler reads the body and released when the
 * handler has answered; a streamed answer (`expensive: 'stream'`) keeps it until its stream
 * ends or the client goes away. A client that disconnects while queued leaves the queue.
 *
 * @module
 */
import type { Context, Hono, MiddlewareHandler } from 'hono'
import type { Admission, AdmissionSlot } from '../service/admission.ts'
import type { RateLimiter } from '../service/rate-limit.ts'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { AppDeps, AppEnv } from './env.ts'
import { authzenFamily } from './authzen/access.ts'
import { peerAddress } from './authzen/base-url.ts'
import { errorContext, problemDetails, setRetryAfter } from './errors.ts'
import { ROUTES } from './route-table.ts'

/** The routes a rate limit never applies to: probes and scrapes must see an overloaded server. */
const UNLIMITED = new Set(['/healthz', '/readyz', '/metrics'])

/** clientKey: who a request counts against, the API client or (authentication off) its peer. */
export function clientKey(c: Context<AppEnv>): string {
  return c.get('client') || peerAddress(c) || ''
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
        if (authzenFamily(path) !== 'arap') throw err
        const p = problemDetails(err, errorContext(deps, c.get('requestId') ?? ''))
        c.header('Content-Type', 'application/problem+json')
        setRetryAfter((name, value) => c.header(name, value), p)
        return c.body(JSON.stringify(p.body), p.status as ContentfulStatusCode)
      }
    }
    await next()
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
