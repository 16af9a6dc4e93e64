/**
 * bodySizeLimit refuses request bodies over `maxBytes` with 413 in the contract's error format
 * (400 on the AuthZEN API, whose contract answers every cap with 400: reference §2.7, §8.20;
 * problem+json on its access-request routes, as the profile answers every refusal).
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
import { arapErrorType } from '../service/authzen/arap-error.ts'
import { authzenFamily } from './authzen/access.ts'

export function bodySizeLimit(maxBytes: number): MiddlewareHandler {
  const message = `request body exceeds the limit of ${maxBytes} bytes`
  const tooLarge = { code: 'validation_error', message }
  // ARAP's refusals are problem+json (errors.ts problemDetails: a 400 is `invalid_request`).
  const problem = JSON.stringify({ type: arapErrorType('invalid_request'), title: 'invalid request', status: 400, detail: message, code: 'invalid_request' })
  /** A body over the limit: 413, 400 on the AuthZEN API (`…/access/v1/…`), as problem+json on ARAP's. */
  const refuse = (c: Context): Response => {
    const family = authzenFamily(c.req.path)
    if (family === 'arap') return c.body(problem, 400, { 'Content-Type': 'application/problem+json' })
    return c.json(tooLarge, family === 'api' ? 400 : 413)
  }
  const streaming = bodyLimit({ maxSize: maxBytes, onError: refuse })
  return async function bodySizeLimit(c, next) {
    const method = c.req.method
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return next()
    const length = c.req.header('content-length')
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      const n = Number(length)
      if (!Number.isFinite(n) || n > maxBytes) return refuse(c)
      return next()
    }
    return streaming(c, next)
  }
}
