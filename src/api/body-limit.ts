/**
 * bodySizeLimit refuses request bodies over `maxBytes` with 413 in the contract's error format.
 * Unlike hono's bodyLimit it does not touch `c.req.raw.body` when a Content-Length settles the
 * question: on @hono/node-server that property turns the lightweight request into a full
 * WHATWG Request (an AbortController, a stream over the socket), which cost more than the whole
 * check it carried. Bodies without a length (chunked) are counted as they stream in.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'

export function bodySizeLimit(maxBytes: number): MiddlewareHandler {
  const tooLarge = { code: 'validation_error', message: `request body exceeds the limit of ${maxBytes} bytes` }
  const streaming = bodyLimit({ maxSize: maxBytes, onError: (c) => c.json(tooLarge, 413) })
  return async function bodySizeLimit(c, next) {
    const method = c.req.method
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return next()
    const length = c.req.header('content-length')
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      const n = Number(length)
      if (!Number.isFinite(n) || n > maxBytes) return c.json(tooLarge, 413)
      return next()
    }
    return streaming(c, next)
  }
}
