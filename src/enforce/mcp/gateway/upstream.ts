/**
 * The gateway's side towards the MCP server it guards: which headers an upstream request
 * carries, and how an upstream answer is handed back.
 *
 * An upstream request carries only what MCP's streamable HTTP transport needs (`Mcp-Session-Id`,
 * `Mcp-Protocol-Version`, `Accept`, `Content-Type`, `Last-Event-ID`, and the SEP-2243 routing
 * headers), the configured `upstream.headers` (the gateway's own credential for the server), and
 * who is calling as the gateway verified it (`X-Pemba-Subject`, and `X-Pemba-Actor` for an agent
 * acting for someone). The caller's `Authorization` is never forwarded: MCP forbids passing a
 * token through to a server it was not issued for.
 *
 * Answers pass through unchanged, streams included, byte for byte; only answers to list requests
 * are rewritten (their results filtered), and the gateway's own error answers for the messages
 * of a batch it refused are added (to the JSON array, or as extra events of a stream).
 *
 * @module
 */
import { MCP_ERROR, type JsonRpcId, type JsonRpcResponse } from '../types.ts'
import { errorResponse } from './messages.ts'
import { rewriteSse, sseEvent, type MessageRewriter } from './sse.ts'

/** Request headers copied from the client to the upstream server. */
const FORWARDED_REQUEST_HEADERS = ['mcp-session-id', 'mcp-protocol-version', 'accept', 'content-type', 'last-event-id', 'mcp-method', 'mcp-name']
/** Response headers never copied back: hop-by-hop, or no longer true once the body is re-streamed. */
const DROPPED_RESPONSE_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding']

/** Who the gateway verified the caller to be, for the upstream. */
export interface ForwardedIdentity {
  subject: string
  /** The current actor (the agent), when the token has an `act` chain. */
  actor?: string
}

/** UpstreamUnavailable: the MCP server could not be reached (refused, reset, no answer). */
export class UpstreamUnavailable extends Error {
  override readonly name = 'UpstreamUnavailable'
}

export interface UpstreamOptions {
  url: string
  /** Headers every upstream request carries (`upstream.headers`). */
  headers: Record<string, string>
  fetch?: typeof fetch
}

export class Upstream {
  readonly #url: string
  readonly #headers: Record<string, string>
  readonly #fetch: typeof fetch

  constructor(options: UpstreamOptions) {
    this.#url = options.url
    this.#headers = options.headers
    this.#fetch = options.fetch ?? fetch
  }

  /** send makes the upstream request for a client's request; throws UpstreamUnavailable when it cannot be made. */
  async send(client: Request, identity: ForwardedIdentity, body?: string): Promise<Response> {
    const headers = new Headers()
    for (const h of FORWARDED_REQUEST_HEADERS) {
      const v = client.headers.get(h)
      if (v !== null) headers.set(h, v)
    }
    for (const [k, v] of Object.entries(this.#headers)) headers.set(k, v)
    headers.set('x-pemba-subject', identity.subject)
    if (identity.actor !== undefined) headers.set('x-pemba-actor', identity.actor)
    // Streams are relayed as they come: a compressed body would be decoded by fetch anyway.
    headers.set('accept-encoding', 'identity')
    try {
      return await this.#fetch(this.#url, { method: client.method, headers, body, redirect: 'manual', signal: client.signal })
    } catch (e) {
      if (client.signal.aborted) throw e
      throw new UpstreamUnavailable(`the MCP server at ${new URL(this.#url).origin} cannot be reached: ${causeOf(e)}`, { cause: e })
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

/** relay returns the upstream's answer unchanged. */
export function relay(upstream: Response): Response {
  return new Response(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers: relayedHeaders(upstream) })
}

/** What the gateway adds to or changes in an upstream answer to a POST. */
export interface AnswerEdits {
  /** The body was a batch: a JSON answer is an array. */
  batch: boolean
  /** Rewrites a message (a list result, filtered); returns it unchanged otherwise. */
  rewrite: MessageRewriter
  /** Whether any message may need rewriting (when not, the body is relayed untouched). */
  rewrites: boolean
  /** The gateway's own answers, for messages it refused. */
  answers: JsonRpcResponse[]
}

/**
 * editAnswer applies `edits` to the upstream's answer to a POST: a JSON body is read, its
 * messages rewritten and the gateway's answers appended; an event stream is rewritten in flight
 * with the gateway's answers first; a 202 (the upstream answered nothing: only notifications
 * reached it) becomes the gateway's answers alone. An error status is relayed as it is.
 */
export async function editAnswer(upstream: Response, edits: AnswerEdits): Promise<Response> {
  if (!upstream.ok || (!edits.rewrites && edits.answers.length === 0)) return relay(upstream)
  const headers = relayedHeaders(upstream)
  if (upstream.status === 202 || upstream.body === null) {
    await upstream.body?.cancel()
    if (edits.answers.length === 0) return relay(upstream)
    return jsonAnswer(edits.batch ? edits.answers : edits.answers[0], 200)
  }
  const type = (upstream.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase()
  if (type === 'text/event-stream') {
    const body = rewriteSse(upstream.body, edits.rewrite, edits.answers.map(sseEvent))
    return new Response(body, { status: upstream.status, headers })
  }
  // A list result the gateway cannot read is never passed on unfiltered.
  const unreadable = () =>
    edits.rewrites
      ? jsonAnswer(errorResponse(null, { code: MCP_ERROR.pdpFailure, message: 'Bad Gateway: the MCP server answered with a body the gateway cannot read' }), 502)
      : undefined
  if (type !== 'application/json') return unreadable() ?? new Response(upstream.body, { status: upstream.status, headers })
  const text = await upstream.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return unreadable() ?? new Response(text, { status: upstream.status, headers })
  }
  const messages = Array.isArray(parsed) ? parsed : [parsed]
  const rewritten = await Promise.all(messages.map((m) => edits.rewrite(m)))
  const all = [...rewritten, ...edits.answers]
  return new Response(JSON.stringify(edits.batch || all.length > 1 ? all : all[0]), { status: upstream.status, headers })
}

/** A JSON answer made by the gateway. */
export function jsonAnswer(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
}

/** The id a response answers, when it is a result (the only kind list filtering rewrites). */
export function resultIdOf(message: unknown): JsonRpcId | undefined {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return undefined
  const m = message as Record<string, unknown>
  if (!('result' in m) || 'method' in m) return undefined
  return typeof m.id === 'string' || typeof m.id === 'number' ? m.id : undefined
}
