/**
 * Rewriting a server-sent event stream in flight, for the few answers the gateway must change
 * (list results, filtered to what the caller may use): each event is read whole, an event whose
 * data is a JSON-RPC message the gateway wants to rewrite is re-emitted with the new message,
 * and every other event passes through exactly as it came (its text, its `id:` for resumption,
 * its comments). Events the gateway adds itself (its own error answers inside a batch) go first.
 *
 * @module
 */

/** Turns a message into the one to send instead (the same object when nothing changes). */
export type MessageRewriter = (message: unknown) => Promise<unknown>

/** sseEvent: one `message` event carrying `data` as JSON. */
export function sseEvent(data: unknown): string {
  return `event: message\ndata: ${JSON.stringify(data)}\n\n`
}

/** The end of an event: a blank line, in any of the three line endings SSE allows. */
const EVENT_END = /\r\n\r\n|\n\n|\r\r/

/**
 * rewriteSse returns `body` with each event's data passed through `rewrite` (events whose data is
 * not JSON pass untouched), and the `prefix` events first.
 */
export function rewriteSse(
  body: ReadableStream<Uint8Array>,
  rewrite: MessageRewriter,
  prefix: readonly string[] = [],
): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()
  let pending = ''
  const emitEvents = async (controller: TransformStreamDefaultController<Uint8Array>, final: boolean) => {
    for (;;) {
      const m = EVENT_END.exec(pending)
      if (!m) break
      const end = m.index + m[0].length
      const event = pending.slice(0, end)
      pending = pending.slice(end)
      controller.enqueue(encoder.encode(await rewriteEvent(event, m[0], rewrite)))
    }
    if (final && pending) {
      controller.enqueue(encoder.encode(pending))
      pending = ''
    }
  }
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        for (const p of prefix) controller.enqueue(encoder.encode(p))
      },
      async transform(chunk, controller) {
        pending += decoder.decode(chunk, { stream: true })
        await emitEvents(controller, false)
      },
      async flush(controller) {
        pending += decoder.decode()
        await emitEvents(controller, true)
      },
    }),
  )
}

/**
 * rewriteEvent rewrites one event's data (its `data:` lines joined by newlines, as SSE defines)
 * when it is JSON the rewriter changes; otherwise returns the event's text unchanged.
 */
async function rewriteEvent(event: string, terminator: string, rewrite: MessageRewriter): Promise<string> {
  const lines = event.slice(0, event.length - terminator.length).split(/\r\n|\n|\r/)
  const data: string[] = []
  for (const line of lines) if (line === 'data' || line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
  if (data.length === 0) return event
  let message: unknown
  try {
    message = JSON.parse(data.join('\n'))
  } catch {
    return event
  }
  const replaced = await rewrite(message)
  if (replaced === message) return event
  const kept = lines.filter((l) => !(l === 'data' || l.startsWith('data:')))
  return `${[...kept, `data: ${JSON.stringify(replaced)}`].join('\n')}\n\n`
}
