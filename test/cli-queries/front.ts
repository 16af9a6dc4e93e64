/**
 * A real HTTP front for the client tests: it answers a request itself when `answer` gives an
 * answer for it (a busy server's 429, a proxy's error page, a page another server would send),
 * and otherwise passes it on to `target` (a real Pemba) and relays the answer.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FrontAnswer {
  status: number
  headers?: Record<string, string>
  body?: string
}

export interface Front {
  url: string
  close(): Promise<void>
}

export async function startFront(target: string, answer: (req: IncomingMessage) => FrontAnswer | undefined): Promise<Front> {
  const front = createServer((req, res) => {
    const own = answer(req)
    if (own) {
      res.writeHead(own.status, own.headers ?? {}).end(own.body ?? '')
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      const relayed = await fetch(target + req.url, {
        method: req.method,
        headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
        body: body.length ? body : undefined,
      })
      res.writeHead(relayed.status, { 'content-type': 'application/json' }).end(await relayed.text())
    })
  })
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(front.address() as AddressInfo).port}`,
    close: async () => {
      front.closeAllConnections()
      await new Promise((resolve) => front.close(resolve))
    },
  }
}
