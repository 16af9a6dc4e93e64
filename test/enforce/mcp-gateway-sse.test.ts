/**
 * Rewriting an event stream in flight (src/enforce/mcp/gateway/sse.ts): events split across
 * chunks anywhere (inside a multi-byte character and a CRLF too), any of SSE's line endings
 * mixed freely, `id:` lines and comments kept, untouched events passed through byte for byte, a
 * rewritten one re-emitted in LF form, the gateway's own events first, incomplete and over-long
 * events never passed on raw.
 */
import { describe, expect, it } from 'vitest'
import { DROP, rewriteSse, sseEvent } from '../../src/enforce/mcp/gateway/sse.ts'

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
  if (msg.id === 4) return DROP
  return msg.id === 2 ? { ...msg, result: { tools: msg.result!.tools.filter((t) => t !== 'export') } } : m
}

const run = async (text: string, chunk: number, options = {}) =>
  new Response(rewriteSse(streamOf(new TextEncoder().encode(text), chunk), rewrite, options)).text()

describe('rewriteSse', () => {
  const input =
    ': keep-alive comment\n\n' +
    'event: message\nid: ev-1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"note":"héllo ✓"}}\n\n' +
    'event: message\r\nid: ev-2\r\ndata: {"jsonrpc":"2.0","id":2,\r\ndata: "result":{"tools":["read","export"]}}\r\n\r\n' +
    'data: not json\n\n' +
    'event: message\ndata: {"jsonrpc":"2.0","id":4,"result":{}}\n\n' +
    'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\n'
  const bytes = new TextEncoder().encode(input)

  for (const chunk of [1, 3, 7, bytes.length]) {
    it(`rewrites only the message it must, whatever the chunks (${chunk} bytes)`, async () => {
      const extra = sseEvent({ jsonrpc: '2.0', id: 9, error: { code: -32001, message: 'Forbidden' } })
      expect(await run(input, chunk, { prefix: [extra] })).toBe(
        extra +
          ': keep-alive comment\n\n' +
          'event: message\nid: ev-1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"note":"héllo ✓"}}\n\n' +
          'event: message\nid: ev-2\ndata: {"jsonrpc":"2.0","id":2,"result":{"tools":["read"]}}\n\n' +
          'data: not json\n\n' +
          'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\n',
      )
    })
  }

  const list = '{"jsonrpc":"2.0","id":2,"result":{"tools":["read","export"]}}'
  const filtered = 'data: {"jsonrpc":"2.0","id":2,"result":{"tools":["read"]}}\n\n'
  for (const [name, text] of [
    ['LF then a CRLF blank line', `data: ${list}\n\r\n`],
    ['CR only', `event: message\rdata: ${list}\r\r`],
    ['CRLF then a CR blank line', `data: ${list}\r\n\r`],
    ['CR then an LF blank line', `data: ${list}\r\n`.replace('\r\n', '\r\n\n')],
  ] as const) {
    for (const chunk of [1, 2, 1000]) {
      it(`a list event ending ${name} is filtered, never passed on (${chunk}-byte chunks)`, async () => {
        const out = await run(text, chunk)
        expect(out).not.toContain('export')
        expect(out.endsWith(filtered)).toBe(true)
      })
    }
  }

  it('strict: an event whose data is not JSON is dropped while a list is outstanding', async () => {
    const dropped: string[] = []
    const out = await run('data: {"jsonrpc":"2.0","id":2,\n\ndata: ok\n\n', 4, { strict: () => true, onDrop: (w: string) => dropped.push(w) })
    expect(out).toBe('')
    expect(dropped).toHaveLength(2)
  })

  it('an event larger than the bound ends the stream with the overflow events, never passed on', async () => {
    const big = `data: {"jsonrpc":"2.0","id":2,"result":{"tools":["${'x'.repeat(5000)}","export"]}}`
    const overflow = sseEvent({ jsonrpc: '2.0', id: 2, error: { code: -32603, message: 'too large' } })
    const out = await run(`: hi\n\n${big}`, 100, { maxEventChars: 1000, overflow: () => [overflow] })
    expect(out).toBe(`: hi\n\n${overflow}`)
    // no blank line ever: the same bound holds
    expect(await run('data: x'.repeat(1000), 64, { maxEventChars: 1000, overflow: () => [overflow] })).toBe(overflow)
  })

  it('a stream cut mid-event does not pass the incomplete event on (SSE does not dispatch it)', async () => {
    const cut = 'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\nevent: message\ndata: {"jsonrpc":"2.0","id":2,"result":{"tools":["export"]'
    expect(await run(cut, 5)).toBe('event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{}}\n\n')
  })
})
