/**
 * What the gateway reads of a POST before it decides anything: the body (at most 4 MiB), parsed
 * as one JSON-RPC message or a batch of them, each checked for the JSON-RPC 2.0 shape; and the
 * SEP-2243 routing headers (`Mcp-Method`, `Mcp-Name`), which must agree with the body (the
 * gateway routes on neither: it authorises on the body, and refuses a request whose headers say
 * something else, so that a proxy in front that routes on the headers cannot be steered past it).
 *
 * @module
 */
import { decodeHeaderValue } from '../../../core/header-value.ts'
import type { JsonRpcErrorObject, JsonRpcId, JsonRpcMessage } from '../types.ts'

/** The largest POST body the gateway reads (4 MiB); larger ones are refused with 413. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024
/** The most messages one batch may hold: each may cost a decision. */
export const MAX_BATCH = 100

/** JSON-RPC's own error codes. */
export const JSONRPC_ERROR = { parse: -32700, invalidRequest: -32600 } as const

/** A request the gateway refuses as a whole: the HTTP status and the JSON-RPC error it answers with. */
export class RequestRefused extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message)
  }
}

/** A parsed POST body: its messages and whether it was a batch. */
export interface ParsedBody {
  messages: JsonRpcMessage[]
  batch: boolean
}

/**
 * checkContentType refuses (415) anything but `application/json` with no charset or
 * `charset=utf-8`: the gateway reads the body as UTF-8, and an upstream decoding another charset
 * (body-parser decodes `utf-7`) would read other messages than the ones decided.
 */
export function checkContentType(header: string | undefined): void {
  const [type, ...params] = (header ?? '').split(';').map((p) => p.trim().toLowerCase())
  const refused = (why: string) => new RequestRefused(415, JSONRPC_ERROR.invalidRequest, `Unsupported Media Type: ${why}`)
  if (type !== 'application/json') throw refused('Content-Type must be application/json')
  for (const p of params) {
    if (p === '') continue
    const [name, value] = p.split('=', 2).map((x) => x.trim())
    if (name !== 'charset' || !/^"?utf-8"?$/.test(value ?? '')) throw refused('the only charset accepted is utf-8')
  }
}

/** The key under which a request id is compared: JSON-RPC peers may re-type ids, so `1` and `"1"` are one id. */
export function idKey(id: JsonRpcId): string {
  return String(id)
}

/**
 * readBody reads at most MAX_BODY_BYTES of a request body as UTF-8; throws RequestRefused (413)
 * beyond that, without reading the rest.
 */
export async function readBody(request: Pick<Request, 'body' | 'text'>, declaredLength: string | undefined): Promise<string> {
  if (declaredLength !== undefined && Number(declaredLength) > MAX_BODY_BYTES) throw tooLarge()
  if (declaredLength !== undefined && /^\d+$/.test(declaredLength)) {
    // Node's HTTP parser delivers no more than the declared length, so text() is bounded too; it
    // skips building a web stream (@hono/node-server's direct path: ~0.14 ms of CPU per request).
    const text = await request.text()
    return text.startsWith('\uFEFF') ? text.slice(1) : text
  }
  const body = request.body
  if (!body) return ''
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined)
      throw tooLarge()
    }
    chunks.push(value)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  // A UTF-8 byte order mark is no part of the JSON text (RFC 8259 §8.1 lets a parser ignore it).
  return text.startsWith('\uFEFF') ? text.slice(1) : text
}

const tooLarge = () => new RequestRefused(413, JSONRPC_ERROR.parse, `Parse error: the body is larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB`)

/**
 * parseBody parses the text as one message or a batch; throws RequestRefused (400) when it is
 * neither, or when two requests of a batch share an id (JSON-RPC requires unique ids, and an
 * answer must never be taken for another's).
 */
export function parseBody(text: string): ParsedBody {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new RequestRefused(400, JSONRPC_ERROR.parse, 'Parse error: the body is not JSON')
  }
  const batch = Array.isArray(json)
  const items: unknown[] = batch ? (json as unknown[]) : [json]
  if (items.length === 0) throw new RequestRefused(400, JSONRPC_ERROR.invalidRequest, 'Invalid Request: an empty batch')
  if (items.length > MAX_BATCH) {
    throw new RequestRefused(400, JSONRPC_ERROR.invalidRequest, `Invalid Request: a batch holds at most ${MAX_BATCH} messages`)
  }
  for (const [i, item] of items.entries()) {
    const problem = messageProblem(item)
    if (problem) throw new RequestRefused(400, JSONRPC_ERROR.invalidRequest, `Invalid Request: ${batch ? `message ${i}: ` : ''}${problem}`)
  }
  const messages = items as JsonRpcMessage[]
  const ids = new Set<string>()
  for (const m of messages) {
    const id = requestIdOf(m)
    if (id === undefined) continue
    if (ids.has(idKey(id))) throw new RequestRefused(400, JSONRPC_ERROR.invalidRequest, `Invalid Request: duplicate request id ${JSON.stringify(id)} in the batch`)
    ids.add(idKey(id))
  }
  return { messages, batch }
}

/**
 * keyClash names two keys of `o` that differ only in case (`method` and `Method`): a parser that
 * matches names case-insensitively (Go's encoding/json) could read the other one.
 */
function keyClash(o: Record<string, unknown>): string | undefined {
  const seen = new Map<string, string>()
  for (const k of Object.keys(o)) {
    const other = seen.get(k.toLowerCase())
    if (other !== undefined) return `the keys '${other}' and '${k}' differ only in case`
    seen.set(k.toLowerCase(), k)
  }
  return undefined
}

export const isId = (v: unknown): v is JsonRpcId => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))
export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** messageProblem says what makes a value no JSON-RPC 2.0 message (undefined when it is one). */
function messageProblem(m: unknown): string | undefined {
  if (!isObject(m)) return 'a message must be a JSON object'
  if (m.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"'
  const clash = keyClash(m) ?? (isObject(m.params) ? keyClash(m.params) : undefined)
  if (clash) return clash
  if ('method' in m) {
    if (typeof m.method !== 'string' || m.method === '') return 'method must be a non-empty string'
    if ('id' in m && !isId(m.id)) return 'id must be a string or a number'
    if ('params' in m && !isObject(m.params)) return 'params must be an object'
    return undefined
  }
  if (!('result' in m) && !('error' in m)) return 'a message needs a method (a request or notification), or a result or error (a response)'
  if (!isId(m.id) && !(m.id === null && 'error' in m)) return 'a response needs the id of the request it answers'
  return undefined
}

/** The id of a request (a message with a method and an id); undefined for notifications and responses. */
export function requestIdOf(m: JsonRpcMessage): JsonRpcId | undefined {
  return 'method' in m && 'id' in m ? m.id : undefined
}

/** The method of a request or notification. */
export function methodOf(m: JsonRpcMessage): string | undefined {
  return 'method' in m ? m.method : undefined
}

/** What `Mcp-Name` carries for a message: `params.name` (tools, prompts) or `params.uri` (resources). */
export function nameOf(m: JsonRpcMessage): string | undefined {
  const params = 'method' in m ? m.params : undefined
  if (!params) return undefined
  if (typeof params.name === 'string') return params.name
  if (typeof params.uri === 'string') return params.uri
  return undefined
}

/**
 * checkRoutingHeaders refuses (400) a request whose `Mcp-Method` or `Mcp-Name` header disagrees
 * with a message of its body. A header, when present, must match every request and notification
 * of the body (a batch routed by one header must be all of that method); `Mcp-Name` values
 * outside ASCII come as `=?base64?<base64 of the UTF-8>?=` (SEP-2243).
 */
export function checkRoutingHeaders(messages: readonly JsonRpcMessage[], method: string | undefined, name: string | undefined): void {
  if (method === undefined && name === undefined) return
  const calls = messages.filter((m) => 'method' in m)
  if (calls.length === 0) {
    throw new RequestRefused(400, JSONRPC_ERROR.invalidRequest, 'Invalid Request: Mcp-Method or Mcp-Name sent with a body of responses only')
  }
  if (method !== undefined) {
    const other = calls.find((m) => methodOf(m) !== method)
    if (other) {
      throw new RequestRefused(
        400,
        JSONRPC_ERROR.invalidRequest,
        `Invalid Request: the Mcp-Method header '${method}' disagrees with the body's method '${methodOf(other)}'`,
      )
    }
  }
  if (name !== undefined) {
    const decoded = decodeHeaderValue(name)
    const other = calls.find((m) => nameOf(m) !== decoded)
    if (other) {
      throw new RequestRefused(400, JSONRPC_ERROR.invalidRequest, `Invalid Request: the Mcp-Name header disagrees with the body's name or uri`)
    }
  }
}

/** An error response echoing `id` (null when the request's id is unknown or absent). */
export function errorResponse(id: JsonRpcId | null, error: JsonRpcErrorObject): { jsonrpc: '2.0'; id: JsonRpcId | null; error: JsonRpcErrorObject } {
  return { jsonrpc: '2.0', id, error }
}
