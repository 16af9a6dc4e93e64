/**
 * The gateway's side towards the MCP server it guards: which headers an upstream request
 * carries, and how an upstream answer is handed back.
 *
 * An upstream request carries only what MCP's streamable HTTP transport needs (`Mcp-Session-Id`,
 * `Mcp-Protocol-Version`, `Accept`, `Last-Event-ID`, and the SEP-2243 routing headers), the
 * gateway's own `Content-Type: application/json` for a body (the body is the JSON the gateway
 * decided, re-serialised), the configured `upstream.headers` (the gateway's own credential for the
 * server), and who is calling as the gateway verified it: `X-Pemba-Subject`, `X-Pemba-Actor` (the
 * current actor) and `X-Pemba-Actors` (the whole chain, current first, comma-separated) for an
 * agent acting for someone, and `X-Pemba-Issuer`. Each value is printable ASCII as it is, or
 * `=?base64?<base64 of the UTF-8>?=` (core/header-value.ts). The caller's `Authorization` is never
 * forwarded: MCP forbids passing a token through to a server it was not issued for.
 *
 * The upstream has `timeoutMs` (30 s) to send its answer's headers (504 after that).
 * What is done to answers: answers.ts.
 *
 * @module
 */
import type { McpCaller } from '../types.ts'
import { encodeHeaderValue } from '../../../core/header-value.ts'
import { keepAliveFetch } from './upstream-http.ts'

/** Request headers copied from the client to the upstream server. */
export const FORWARDED_REQUEST_HEADERS = ['mcp-session-id', 'mcp-protocol-version', 'accept', 'last-event-id', 'mcp-method', 'mcp-name']
/** Headers the gateway sets itself on every upstream request (the configuration may not set them). */
export const GATEWAY_SET_HEADERS = [
  ...FORWARDED_REQUEST_HEADERS,
  'x-pemba-subject',
  'x-pemba-actor',
  'x-pemba-actors',
  'x-pemba-issuer',
  'content-type',
  'accept-encoding',
  'content-length',
  'host',
]
/** Response headers never copied back: hop-by-hop, or no longer true once the body is re-streamed. */
const DROPPED_RESPONSE_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'set-cookie', 'www-authenticate']

/** Who the gateway verified the caller to be, for the upstream: the principal, the actors (current first), the issuer's name. */
export type ForwardedIdentity = Pick<McpCaller, 'subject' | 'actors' | 'issuer'>

/** identityHeaders: the X-Pemba-* headers for `identity` (see the module comment). */
export function identityHeaders(identity: ForwardedIdentity): Record<string, string> {
  const h: Record<string, string> = { 'x-pemba-subject': encodeHeaderValue(identity.subject), 'x-pemba-issuer': encodeHeaderValue(identity.issuer) }
  if (identity.actors.length > 0) {
    h['x-pemba-actor'] = encodeHeaderValue(identity.actors[0]!)
    h['x-pemba-actors'] = identity.actors.map(encodeHeaderValue).join(',')
  }
  return h
}

/** UpstreamUnavailable: the MCP server could not be reached (refused, reset, no answer). */
export class UpstreamUnavailable extends Error {
  override readonly name = 'UpstreamUnavailable'
}

/** UpstreamTimeout: the MCP server sent no answer headers in time. */
export class UpstreamTimeout extends Error {
  override readonly name = 'UpstreamTimeout'
}

export interface UpstreamOptions {
  url: string
  /** Headers every upstream request carries (`upstream.headers`). */
  headers: Record<string, string>
  /** The fetch for upstream requests; by default the Upstream's own keep-alive pool (upstream-http.ts), released by close(). */
  fetch?: typeof fetch
  /** How long the upstream may take to send an answer's headers (ms; 30 s). */
  timeoutMs?: number
}

export class Upstream {
  readonly #url: string
  readonly #headers: Record<string, string>
  readonly #fetch: typeof fetch
  readonly #timeoutMs: number
  readonly #close: () => void

  constructor(options: UpstreamOptions) {
    this.#url = options.url
    this.#headers = options.headers
    if (options.fetch) {
      this.#fetch = options.fetch
      this.#close = () => {}
    } else {
      const pool = keepAliveFetch(options.url)
      this.#fetch = pool.fetch
      this.#close = pool.close
    }
    this.#timeoutMs = options.timeoutMs ?? 30_000
  }

  /** close releases the connection pool (open streams are cut). */
  close(): void {
    this.#close()
  }

  get url(): string {
    return this.#url
  }

  /** The configured `upstream.headers`. */
  get headers(): Record<string, string> {
    return { ...this.#headers }
  }

  /**
   * send makes the upstream request for a client's request, with `body` (JSON) when given;
   * throws UpstreamUnavailable when it cannot be made, UpstreamTimeout when no answer comes.
   */
  async send(client: Request, identity: ForwardedIdentity, body?: string): Promise<Response> {
    const headers = new Headers(identityHeaders(identity))
    for (const h of FORWARDED_REQUEST_HEADERS) {
      const v = client.headers.get(h)
      if (v !== null) headers.set(h, v)
    }
    for (const [k, v] of Object.entries(this.#headers)) headers.set(k, v)
    if (body !== undefined) headers.set('content-type', 'application/json')
    // Streams are relayed as they come: a compressed body would be decoded by fetch anyway.
    headers.set('accept-encoding', 'identity')
    return this.#request(client.method, headers, body, client.signal)
  }

  /** endSession ends an upstream session the gateway forgot (DELETE, best effort: failures are ignored). */
  async endSession(sessionId: string, identity: ForwardedIdentity): Promise<void> {
    const headers = new Headers({ ...identityHeaders(identity), ...this.#headers, 'mcp-session-id': sessionId })
    const res = await this.#request('DELETE', headers, undefined, new AbortController().signal).catch(() => undefined)
    await res?.body?.cancel().catch(() => undefined)
  }

  async #request(method: string, headers: Headers, body: string | undefined, signal: AbortSignal): Promise<Response> {
    // The timeout covers the answer's headers only: a stream may then stay open as long as it likes.
    const abort = new AbortController()
    const onAbort = () => abort.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      abort.abort()
    }, this.#timeoutMs)
    try {
      return await this.#fetch(this.#url, { method, headers, body, redirect: 'manual', signal: abort.signal })
    } catch (e) {
      if (signal.aborted) throw e
      if (timedOut) throw new UpstreamTimeout(`the MCP server at ${new URL(this.#url).origin} sent no answer within ${this.#timeoutMs} ms`)
      throw new UpstreamUnavailable(`the MCP server at ${new URL(this.#url).origin} cannot be reached: ${causeOf(e)}`, { cause: e })
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    }
  }
}

/** The message of a fetch failure's cause (`connect ECONNREFUSED 127.0.0.1:9000`), or its own. */
function causeOf(e: unknown): string {
  const cause = (e as { cause?: { message?: unknown; code?: unknown } }).cause
  if (typeof cause?.code === 'string') return cause.code
  return typeof cause?.message === 'string' ? cause.message : (e as Error).message
}

/** The upstream's response headers as they may be copied back to the client. */
export function relayedHeaders(upstream: Response): Headers {
  const headers = new Headers(upstream.headers)
  for (const h of DROPPED_RESPONSE_HEADERS) headers.delete(h)
  return headers
}

/**
 * relay returns the upstream's answer unchanged. An answer the upstream has already finished
 * (the usual SSE answer to a POST: one event, then the end) is handed on whole, so it leaves in
 * one write with a Content-Length instead of headers, chunk and last chunk as three packets; a
 * stream still open is relayed as it comes (nothing is waited for: see settledBody).
 */
export async function relay(upstream: Response): Promise<Response> {
  const body = upstream.body ? await settledBody(upstream.body) : null
  return new Response(body, { status: upstream.status, statusText: upstream.statusText, headers: relayedHeaders(upstream) })
}

const NOT_YET: unique symbol = Symbol('not yet')

/**
 * settledBody reads what `body` already holds without waiting for more: the whole body when it
 * has ended, else a stream of what was read followed by the rest as it comes.
 */
export async function settledBody(body: ReadableStream<Uint8Array>): Promise<Uint8Array | ReadableStream<Uint8Array>> {
  const reader = body.getReader()
  const read: Uint8Array[] = []
  let pending: ReturnType<typeof reader.read> | undefined
  try {
    for (;;) {
      // A read of a chunk already queued settles first; one still to come loses to NOT_YET (and is kept).
      pending = reader.read()
      const next = await Promise.race([pending, Promise.resolve().then((): typeof NOT_YET => NOT_YET)])
      if (next === NOT_YET) break
      pending = undefined
      if (next.done) return read.length === 1 ? read[0]! : Buffer.concat(read)
      read.push(next.value)
    }
    // Its failure is met by pull; until then it must not count as unhandled.
    pending.catch(() => undefined)
  } catch (e) {
    // The body failed while read: it fails for the client as it would have relayed as a stream.
    return new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of read) controller.enqueue(chunk)
        controller.error(e)
      },
    })
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of read) controller.enqueue(chunk)
    },
    async pull(controller) {
      const next = pending ?? reader.read()
      pending = undefined
      const { done, value } = await next
      if (done) controller.close()
      else controller.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

/** A JSON answer made by the gateway. */
export function jsonAnswer(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
}
