/**
 * The baseline for the HTTP figures: the smallest Hono route on @hono/node-server that reads a
 * Check body and answers like Pemba, so that `bench/run.ts` can show how much of a Pemba Check's
 * cost over HTTP is the framework's and how much is Pemba's. Prints `listening on <url>` like
 * `pemba serve`; PORT=0 (the default) picks a free port.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { AddressInfo } from 'node:net'

const app = new Hono()
app.post('/stores/:id/check', async (c) => {
  await c.req.json()
  return c.json({ allowed: true, resolution: '' })
})

const server = serve(
  { fetch: app.fetch, hostname: '127.0.0.1', port: Number(process.env.PORT ?? 0) },
  (info: AddressInfo) => {
    console.log(`listening on http://127.0.0.1:${info.port}`)
  },
)
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
