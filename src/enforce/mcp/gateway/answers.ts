/**
 * What the gateway does to the upstream's answers: list results are filtered to what the caller
 * may use, and answers it cannot match to a request it forwarded are kept back. It fails closed
 * by construction: while a list request is outstanding (and always on a GET stream, where a
 * resumed stream may replay a stored answer),
 *
 * - a result is filtered when its id (compared as text: `1` and `"1"` are one id) is a list
 *   request's, by the list method recorded *and* by its own shape (a `tools`, `prompts`,
 *   `resources` or `resourceTemplates` array is filtered by its kind whatever was recorded);
 * - a result whose id is no forwarded request's is dropped (and logged);
 * - a data event that is not JSON is dropped; an over-long event ends the stream with -32603;
 * - an error status is read (JSON) and rewritten the same way, else replaced by a 502.
 *
 * Anything else (notifications, the server's requests, errors, results of allowed calls) passes
 * as it came. Without outstanding lists a POST's answer is relayed untouched, byte for byte.
 *
 * @module
 */
import type { Logger } from 'pino'
import { LIST_METHODS } from '../mapping.ts'
import { McpPolicyFailure, type McpPolicy } from '../policy.ts'
import type { JsonRpcId, JsonRpcResponse, McpCaller } from '../types.ts'
import { errorResponse, idKey, isId, isObject } from './messages.ts'
import { DROP, rewriteSse, sseEvent, type MessageRewriter } from './sse.ts'
import { jsonAnswer, relay, relayedHeaders } from './upstream.ts'

/** JSON-RPC's internal error: the gateway or the server failed (not Pemba: that is MCP_ERROR.pdpFailure, the same number). */
export const INTERNAL_ERROR = -32603

/** The most bytes of a JSON answer the gateway reads whole to rewrite it (32 MiB). */
export const MAX_JSON_ANSWER_BYTES = 32 * 1024 * 1024

export interface RewriterOptions {
  policy: McpPolicy
  caller: McpCaller
  /** The forwarded requests this answer may answer: id key (idKey) → method. */
  requests: ReadonlyMap<string, string>
  logger: Logger
  /** Told when a relayed stream says the tool list changed. */
  onToolListChanged?: () => void
}

/** The list methods a result is filtered as: the one recorded for its id, and those its shape names. */
function listMethodsOf(result: Record<string, unknown>, recorded: string | undefined): string[] {
  const methods = new Set<string>()
  if (recorded !== undefined && Object.hasOwn(LIST_METHODS, recorded)) methods.add(recorded)
  for (const [method, spec] of Object.entries(LIST_METHODS)) if (spec.items in result) methods.add(method)
  return [...methods]
}

/** answerRewriter: the MessageRewriter of the module comment, for one answer (a POST's or a GET stream). */
export function answerRewriter(o: RewriterOptions): MessageRewriter {
  const rewrite = async (message: unknown): Promise<unknown> => {
    if (Array.isArray(message)) {
      const out = await Promise.all(message.map(rewrite))
      const kept = out.filter((m) => m !== DROP)
      return kept.length === message.length && out.every((m, i) => m === message[i]) ? message : kept
    }
    if (!isObject(message)) return message
    if (message.method === 'notifications/tools/list_changed') o.onToolListChanged?.()
    if (!('result' in message)) return message
    const id = isId(message.id) ? message.id : undefined
    const recorded = id === undefined ? undefined : o.requests.get(idKey(id))
    if (recorded === undefined) {
      o.logger.warn({ event: 'mcp_answer_dropped', id }, 'MCP gateway: an answer matching no forwarded request is not passed on')
      return DROP
    }
    const methods = isObject(message.result) ? listMethodsOf(message.result, recorded) : []
    if (methods.length === 0) {
      // A list request answered with something that is no object holds nothing to show.
      return Object.hasOwn(LIST_METHODS, recorded) ? errorResponse(id!, { code: INTERNAL_ERROR, message: 'Internal error: the list answer cannot be read' }) : message
    }
    let result = message.result as Record<string, unknown>
    try {
      for (const method of methods) result = await o.policy.filterListResult(method, result, o.caller)
    } catch (e) {
      if (e instanceof McpPolicyFailure) return errorResponse(id!, e.error)
      o.logger.error({ event: 'mcp_filter_failed', err: e }, 'MCP gateway: a list result could not be filtered; it is answered with an error')
      return errorResponse(id!, { code: INTERNAL_ERROR, message: 'Internal error' })
    }
    return { ...message, result }
  }
  return rewrite
}

/** What the gateway adds to or changes in an upstream answer. */
export interface AnswerEdits {
  /** The body was a batch: a JSON answer is an array. */
  batch: boolean
  /** Rewrites a message (answerRewriter). */
  rewrite: MessageRewriter
  /** Whether answers must be rewritten (a list is outstanding, or a GET stream); when not, the body is relayed untouched. */
  rewrites: boolean
  /** The list requests outstanding: each gets a -32603 when the answer cannot be read. */
  listIds: JsonRpcId[]
  /** The gateway's own answers, for messages it refused. */
  answers: JsonRpcResponse[]
  logger: Logger
}

/**
 * editAnswer applies `edits` to the upstream's answer: a JSON body is read, its messages
 * rewritten and the gateway's answers appended; an event stream is rewritten in flight with the
 * gateway's answers first; a 202 (only notifications reached the upstream) becomes the gateway's
 * answers alone. See the module comment for what fails closed.
 */
export async function editAnswer(upstream: Response, edits: AnswerEdits): Promise<Response> {
  if (!edits.rewrites && (edits.answers.length === 0 || !upstream.ok)) return relay(upstream)
  const headers = relayedHeaders(upstream)
  if (upstream.ok && (upstream.status === 202 || upstream.body === null)) {
    await upstream.body?.cancel()
    if (edits.answers.length === 0) return relay(upstream)
    return jsonAnswer(edits.batch ? edits.answers : edits.answers[0], 200)
  }
  const failed = (why: string) => edits.listIds.map((id) => errorResponse(id, { code: INTERNAL_ERROR, message: `Internal error: ${why}` }))
  const type = (upstream.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (type === 'text/event-stream' && upstream.body) {
    const body = rewriteSse(upstream.body, edits.rewrite, {
      prefix: edits.answers.map(sseEvent),
      strict: () => edits.rewrites,
      overflow: () => failed('an event of the answer is too large').map(sseEvent),
      onDrop: (why) => edits.logger.warn({ event: 'mcp_event_dropped' }, `MCP gateway: ${why}`),
    })
    return new Response(body, { status: upstream.status, headers })
  }
  const unreadable = (why: string) => {
    edits.logger.warn({ event: 'mcp_answer_unreadable', upstream_status: upstream.status }, `MCP gateway: ${why}; it is not passed on`)
    const all = [...failed(why), ...edits.answers]
    if (all.length === 0) return jsonAnswer(errorResponse(null, { code: INTERNAL_ERROR, message: 'Bad Gateway: the MCP server answered with a body the gateway cannot read' }), 502)
    return jsonAnswer(edits.batch || all.length > 1 ? all : all[0], upstream.ok ? 200 : 502)
  }
  if (type !== 'application/json') {
    if (!edits.rewrites) return new Response(upstream.body, { status: upstream.status, headers })
    await upstream.body?.cancel()
    return unreadable(`the MCP server answered ${upstream.status} with ${type || 'no content type'}`)
  }
  const declared = Number(upstream.headers.get('content-length') ?? 0)
  if (declared > MAX_JSON_ANSWER_BYTES) {
    await upstream.body?.cancel()
    return unreadable('the answer is too large')
  }
  const text = await upstream.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    if (!edits.rewrites) return new Response(text, { status: upstream.status, headers })
    return unreadable('the answer is not JSON')
  }
  const messages = Array.isArray(parsed) ? parsed : [parsed]
  const rewritten = (await Promise.all(messages.map((m) => edits.rewrite(m)))).filter((m) => m !== DROP)
  const all = [...rewritten, ...edits.answers]
  if (all.length === 0) return unreadable('no message of the answer matches a forwarded request')
  return new Response(JSON.stringify(edits.batch || all.length > 1 ? all : all[0]), { status: upstream.status, headers })
}
