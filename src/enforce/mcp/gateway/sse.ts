/**
 * Rewriting a server-sent event stream in flight, for the answers the gateway must change (list
 * results, filtered to what the caller may use) or keep back (answers it cannot match). The
 * parser follows the SSE specification: a line ends at CRLF, LF or CR (mixed freely; a CR at the
 * end of a chunk waits for a possible LF), and an event is dispatched at an empty line.
 *
 * - An event whose data is a JSON-RPC message the rewriter changes is re-emitted in canonical LF
 *   form (its other lines, such as `id:`, kept); one the rewriter drops is left out; every other
 *   event passes through exactly as it came (its text, its `id:` for resumption, its comments).
 * - A data event that is not JSON is dropped (with a warning) when `strict` says so (a list
 *   answer is outstanding), else passed on.
 * - One event may hold at most `maxEventChars` characters (8 Mi): past that the stream is ended
 *   with the `overflow` events (the gateway's -32603 for what is outstanding), never relayed raw.
 * - An event left incomplete when the stream ends is not dispatched (as SSE prescribes).
 *
 * Events the gateway adds itself (its own error answers inside a batch) go first.
 *
 * @module
 */

/** What a rewriter returns to leave a message out. */
export const DROP: unique symbol = Symbol('drop')

/** Turns a message into the one to send instead (the same object when nothing changes), or DROP. */
export type MessageRewriter = (message: unknown) => Promise<unknown>

/** The most characters one event may hold before the stream is ended (8 Mi). */
export const MAX_EVENT_CHARS = 8 * 1024 * 1024

export interface SseRewriteOptions {
  /** Events sent before the upstream's. */
  prefix?: readonly string[]
  /** Whether a data event that is not JSON must be dropped (asked per event). */
  strict?: () => boolean
  /** The events that end a stream whose event grew past the bound. */
  overflow?: () => string[]
  /** Told of each event dropped or the stream cut (for a log line). */
  onDrop?: (why: string) => void
  maxEventChars?: number
}

/** sseEvent: one `message` event carrying `data` as JSON. */
export function sseEvent(data: unknown): string {
  return `event: message\ndata: ${JSON.stringify(data)}\n\n`
}

/** rewriteSse returns `body` with each event's data passed through `rewrite` (see the module comment). */
export function rewriteSse(body: ReadableStream<Uint8Array>, rewrite: MessageRewriter, options: SseRewriteOptions = {}): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()
  const max = options.maxEventChars ?? MAX_EVENT_CHARS
  let buffer = ''
  /** The current event: its lines (without endings) and its exact text so far. */
  let lines: string[] = []
  let raw = ''
  let ended = false

  const dispatch = async (controller: TransformStreamDefaultController<Uint8Array>) => {
    const event = { lines, raw }
    lines = []
    raw = ''
    const out = event.lines.length === 0 ? event.raw : await rewriteEvent(event.lines, event.raw, rewrite, options)
    if (out) controller.enqueue(encoder.encode(out))
  }
  const feed = async (text: string, controller: TransformStreamDefaultController<Uint8Array>, final: boolean) => {
    if (ended) return
    buffer += text
    let start = 0
    const eol = /\r\n|\r|\n/g
    for (;;) {
      eol.lastIndex = start
      const m = eol.exec(buffer)
      if (!m) break
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (m[0] === '\r' && m.index === buffer.length - 1 && !final) break
      const line = buffer.slice(start, m.index)
      raw += buffer.slice(start, m.index + m[0].length)
      start = m.index + m[0].length
      if (line === '') await dispatch(controller)
      else lines.push(line)
    }
    buffer = buffer.slice(start)
    if (raw.length + buffer.length > max) {
      ended = true
      options.onDrop?.(`an event longer than ${max} characters: the stream is ended`)
      for (const e of options.overflow?.() ?? []) controller.enqueue(encoder.encode(e))
      controller.terminate()
      return
    }
    if (final && (lines.length > 0 || buffer !== '')) options.onDrop?.('the stream ended inside an event: the incomplete event is not passed on')
  }
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        for (const p of options.prefix ?? []) controller.enqueue(encoder.encode(p))
      },
      async transform(chunk, controller) {
        await feed(decoder.decode(chunk, { stream: true }), controller, false)
      },
      async flush(controller) {
        await feed(decoder.decode(), controller, true)
      },
    }),
  )
}

/** The value of an SSE `data` field line (`data: x` → `x`), or undefined for other lines. */
function dataOf(line: string): string | undefined {
  if (line === 'data') return ''
  if (!line.startsWith('data:')) return undefined
  return line.startsWith('data: ') ? line.slice(6) : line.slice(5)
}

/**
 * rewriteEvent rewrites one event's data (its `data:` lines joined by newlines, as SSE defines):
 * the event's text unchanged, a new event, or '' (left out).
 */
async function rewriteEvent(lines: string[], raw: string, rewrite: MessageRewriter, options: SseRewriteOptions): Promise<string> {
  const data = lines.map(dataOf).filter((d): d is string => d !== undefined)
  // No data (a comment, a priming event carrying only its `id:` for resumption): no message to check.
  if (data.length === 0 || data.join('\n').trim() === '') return raw
  let message: unknown
  try {
    message = JSON.parse(data.join('\n'))
  } catch {
    if (!options.strict?.()) return raw
    options.onDrop?.('an event whose data is not JSON, while a list answer is outstanding')
    return ''
  }
  const replaced = await rewrite(message)
  if (replaced === message) return raw
  if (replaced === DROP) return ''
  const kept = lines.filter((l) => dataOf(l) === undefined)
  return `${[...kept, `data: ${JSON.stringify(replaced)}`].join('\n')}\n\n`
}
