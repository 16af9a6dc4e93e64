/**
 * bodySizeLimit refuses request bodies over `maxBytes` with 413 in the contract's error format
 * (400 on the AuthZEN API, whose contract answers every cap with 400: reference §2.7, §8.20).
 * Unlike hono's bodyLimit it does not touch `c.req.raw.body` when a Content-Length settles the
 * question: on @hono/node-server that property turns the lightweight request into a full
 * WHATWG Request (an AbortController, a stream over the socket), which cost more than the whole
 * check it carried. Bodies without a length (chunked) are counted as they stream in.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Context } from 'hono'

/** The status of a body over the limit: 413, or 400 on the AuthZEN API (`…/access/v1/…`). */
const tooLargeStatus = (c: Context) => (c.req.path.includes('/access/v1/') ? 400 : 413)

export function bodySizeLimit(maxBytes: number): MiddlewareHandler {
  const tooLarge = { code: 'validation_error', message: `request body exceeds the limit of ${maxBytes} bytes` }
  const streaming = bodyLimit({ maxSize: maxBytes, onError: (c) => c.json(tooLarge, tooLargeStatus(c)) })
  return async function bodySizeLimit(c, next) {
    const method = c.req.method
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return next()
    const length = c.req.header('content-length')
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      const n = Number(length)
      if (!Number.isFinite(n) || n > maxBytes) return c.json(tooLarge, tooLargeStatus(c))
      return next()
    }
    return streaming(c, next)
  }
}
