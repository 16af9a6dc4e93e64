/**
 * Rewriting an event stream in flight (src/enforce/mcp/gateway/sse.ts): events split across
 * chunks anywhere (inside a multi-byte character too), any of SSE's line endings, `id:` lines
 * and comments kept, untouched events passed through byte for byte, the gateway's own events first.
 */
import { describe, expect, it } from 'vitest'
import { rewriteSse, sseEvent } from '../../src/enforce/mcp/gateway/sse.ts'

function streamOf(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  let at = 0
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close()
      controller.enqueue(bytes.slice(at, at + chunk))
      at += chunk
    },
  })
}

const rewrite = async (m: unknown) => {
  const msg = m as { id?: number; result?: { tools: string[] } }
  return msg.id === 2 ? { ...msg, result: { tools: msg.result!.tools.filter((t) => t !== 'export') } } : m
}

describe('rewriteSse', () => {
  const input =
    ': keep-alive comment\n\n' +
    'event: message\nid: ev-1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"note":"héllo ✓"}}\n\n' +
    'event: message\r\nid: ev-2\r\ndata: {"jsonrpc":"2.0","id":2,\r\ndata: "result":{"tools":["read","export"]}}\r\n\r\n' +
    'data: not json\n\n' +
    'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\n'
  const bytes = new TextEncoder().encode(input)

  for (const chunk of [1, 3, 7, bytes.length]) {
    it(`rewrites only the message it must, whatever the chunks (${chunk} bytes)`, async () => {
      const extra = sseEvent({ jsonrpc: '2.0', id: 9, error: { code: -32001, message: 'Forbidden' } })
      const out = await new Response(rewriteSse(streamOf(bytes, chunk), rewrite, [extra])).text()
      expect(out).toBe(
        extra +
          ': keep-alive comment\n\n' +
          'event: message\nid: ev-1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"note":"héllo ✓"}}\n\n' +
          'event: message\nid: ev-2\ndata: {"jsonrpc":"2.0","id":2,"result":{"tools":["read"]}}\n\n' +
          'data: not json\n\n' +
          'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\n',
      )
    })
  }

  it('a stream cut mid-event passes the rest through as it came', async () => {
    const cut = new TextEncoder().encode('event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\nevent: message\ndata: {"jso')
    expect(await new Response(rewriteSse(streamOf(cut, 5), rewrite)).text()).toBe(new TextDecoder().decode(cut))
  })
})
