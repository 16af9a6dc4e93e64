/**
 * Limits of the node:http server that carries the app, against clients that send too much
 * before the app ever sees a request (oversized headers) or too slowly (slow-loris: headers or a
 * body trickled in to hold sockets open), and the answers node sends for them, in the
 * contract's `{code, message}` format rather than node's bare status lines.
 *
 * @module
 */
import { STATUS_CODES, type ServerOptions } from 'node:http'
import type { Duplex } from 'node:stream'
import type { PembaConfig } from '../config.ts'

type HttpLimits = Pick<PembaConfig, 'maxHeaderBytes' | 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs'>

/** httpServerOptions turns the configured limits into node:http server options. */
export function httpServerOptions(limits: HttpLimits): ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // node looks for connections past the two deadlines above only this often (every 30 s by
    // default), which would give a slow client up to 30 s more than configured.
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  }
}

/**
 * answerClientError is the server's `clientError` listener: node calls it when a connection
 * sends what cannot become a request (headers over the limit, a malformed request line or
 * chunk) or does not finish sending one in time. It answers once in the contract's format and
 * closes the connection, as node's default would, but with a body SDKs can read.
 */
export function answerClientError(limits: HttpLimits) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    // node's own rule: nothing can be said on a dead socket or after a response has begun.
    const current = (socket as Duplex & { _httpMessage?: { _headerSent?: boolean } })._httpMessage
    if (err.code === 'ECONNRESET' || !socket.writable || current?._headerSent) {
      socket.destroy()
      return
    }
    let status = 400
    let message = 'malformed HTTP request'
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431
      message = `request headers exceed the limit of ${limits.maxHeaderBytes} bytes`
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408
      message = 'the request was not received in time'
    }
    const body = JSON.stringify({ code: 'validation_error', message })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${crypto.randomUUID()}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    )
  }
}
