/**
 * The baseline for the HTTP figures: the smallest Hono route on @hono/node-server that reads a
 * Check body and answers like Pemba, so that `bench/run.ts` can show how much of a Pemba Check's
 * cost over HTTP is the framework's and how much is Pemba's. Prints `listening on <url>` like
 * `pemba serve`; PORT=0 (the default) picks a free port.
 *
 * WORKERS=n (default 1) runs it as Pemba runs with PEMBA_WORKERS=n: a node:cluster primary
 * that forks n processes sharing the port (the same scheduling, round robin by the primary),
 * and prints `listening on` once all of them listen; bench/workers.ts compares the two at the
 * same worker count.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'

const workers = Number(process.env.WORKERS ?? 1)

if (workers > 1 && cluster.isPrimary) {
  let listening = 0
  let stopping = false
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('listening', (address: { port: number }) => {
      if (++listening === workers) console.log(`listening on http://127.0.0.1:${address.port} with ${workers} workers`)
    })
  }
  cluster.on('exit', () => {
    if (!stopping) return
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0)
  })
  const stop = () => {
    stopping = true
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM')
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else {
  const app = new Hono()
  app.post('/stores/:id/check', async (c) => {
    await c.req.json()
    return c.json({ allowed: true, resolution: '' })
  })

  const server = serve(
    { fetch: app.fetch, hostname: '127.0.0.1', port: Number(process.env.PORT ?? 0) },
    (info: AddressInfo) => {
      if (cluster.isPrimary) console.log(`listening on http://127.0.0.1:${info.port}`)
    },
  )
  const stop = () => server.close(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
