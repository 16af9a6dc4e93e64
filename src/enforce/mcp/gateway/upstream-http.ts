/**
 * The gateway's connection pool towards the MCP server: a `fetch`-shaped function over node:http(s)
 * with a keep-alive agent of its own (the approach of enforce/remote.ts for Pemba), used by
 * Upstream unless a `fetch` is given (tests, a proxy).
 *
 * Why not the global fetch: on loopback, undici's request and web-stream machinery cost about a
 * quarter of the gateway's CPU per tools/call (3.8 → 2.9 ms of user CPU per call measured on the
 * MCP example, busy 2-core machine), and its body arrives event-loop turns after the
 * headers. Here the bytes that came with the headers are in the body stream at once, and an
 * answer whose end came with them (the usual SSE answer to a POST: one event, then the end) is
 * a closed stream by the time the gateway relays it, which relay() then sends in one write
 * (upstream.ts). A stream still open (progress notifications, a GET event stream) is relayed
 * chunk by chunk as it comes, with backpressure.
 *
 * A kept-alive socket the server closed just as it was reused fails with ECONNRESET before any
 * answer: the request is sent again once on a fresh socket (Node's documented `reusedSocket`
 * pattern; the server closed the connection, so it did not take the request). Idle sockets are
 * closed by the pool after 4 s, before a Node server's 5 s keep-alive timeout races a request.
 *
 * @module
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'

/** A fetch over a keep-alive pool, and the pool's release. */
export interface PooledFetch {
  fetch: typeof fetch
  /** close destroys the pool's sockets (open streams included). */
  close(): void
}

/** Statuses whose answer has no body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304])

/**
 * keepAliveFetch returns a fetch for `url`'s scheme over a pool of its own. It supports what
 * Upstream sends: a method, headers, a string body, a signal; redirects are never followed (the
 * answer is returned as it is). Failures reject as the global fetch does: a TypeError whose
 * `cause` is the network error (`ECONNREFUSED`…), or the signal's reason once it aborts.
 */
export function keepAliveFetch(url: string): PooledFetch {
  const https = new URL(url).protocol === 'https:'
  const agent = new (https ? HttpsAgent : HttpAgent)({ keepAlive: true, timeout: 4000 })
  const send = https ? httpsRequest : httpRequest

  const once = (target: string, init: RequestInit, retry: boolean): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined
      if (signal?.aborted) return reject(signal.reason)
      const headers: Record<string, string> = {}
      new Headers(init.headers).forEach((v, k) => (headers[k] = v))
      const body = typeof init.body === 'string' ? init.body : undefined
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body))
      let answered = false
      const req = send(target, { method: init.method ?? 'GET', headers, agent }, (res: IncomingMessage) => {
        answered = true
        signal?.removeEventListener('abort', onAbort)
        try {
          resolve(toResponse(res))
        } catch (e) {
          res.destroy()
          reject(new TypeError('fetch failed', { cause: e }))
        }
      })
      const onAbort = () => req.destroy(signal!.reason as Error)
      signal?.addEventListener('abort', onAbort, { once: true })
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (answered) return
        signal?.removeEventListener('abort', onAbort)
        if (signal?.aborted) return reject(signal.reason)
        if (retry && req.reusedSocket && e.code === 'ECONNRESET') return resolve(once(target, init, false))
        reject(new TypeError('fetch failed', { cause: e }))
      })
      req.end(body)
    })

  return {
    fetch: ((input: string | URL | Request, init: RequestInit = {}) => once(String(input), init, true)) as typeof fetch,
    // After the streams the gateway's stop cut have been cancelled (their cancel runs first), so
    // none of them fails loudly for a socket closed under it.
    close: () => void setImmediate(() => agent.destroy()),
  }
}

/** toResponse: the node answer as a web Response whose body streams `res` (see the module comment). */
function toResponse(res: IncomingMessage): Response {
  const headers = new Headers()
  const raw = res.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!)
  const status = res.statusCode ?? 0
  if (NULL_BODY.has(status)) {
    res.resume()
    return new Response(null, { status, statusText: res.statusMessage, headers })
  }
  let settled = false
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        res.on('data', (chunk: Buffer) => {
          controller.enqueue(chunk)
          // Backpressure: the socket is read no further until the client takes what is queued.
          if ((controller.desiredSize ?? 1) <= 0) res.pause()
        })
        res.on('end', () => {
          if (settled) return
          settled = true
          controller.close()
        })
        const fail = (e: Error) => {
          if (settled) return
          settled = true
          controller.error(e)
        }
        res.on('error', fail)
        res.on('close', () => {
          if (!res.complete) fail(new Error('the MCP server closed the connection before the answer ended'))
        })
      },
      pull() {
        res.resume()
      },
      cancel() {
        settled = true
        res.destroy()
      },
    },
    { highWaterMark: 16 },
  )
  return new Response(body, { status, statusText: res.statusMessage, headers })
}
