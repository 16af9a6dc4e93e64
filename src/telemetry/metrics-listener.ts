/**
 * The metrics listener (PEMBA_METRICS_ADDR): a plain node:http server of its own that answers
 * `GET /metrics` with the instance's exposition and 404 to anything else. It never sees the API's
 * authentication: it is meant for an address only the scraper reaches (loopback, a pod's port),
 * so Prometheus needs no API token; the API port's `/metrics` stays behind authentication.
 *
 * @module
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from './logger.ts'
import type { PembaMetrics } from './metrics.ts'

/** splitHostPort: `127.0.0.1:9464` → ['127.0.0.1', 9464]; `[::1]:9464` → ['::1', 9464]. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/]+):(\d{1,5})$/.exec(addr)
  if (!m || Number(m[2]) > 65535) throw new Error(`PEMBA_METRICS_ADDR must be host:port (such as 127.0.0.1:9464), got '${addr}'`)
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

/**
 * startMetricsListener listens on `addr` and resolves with the server once it listens (its URL
 * logged as `event: "metrics_listening"`), or rejects when it cannot (the address in use).
 */
export function startMetricsListener(addr: string, metrics: Pick<PembaMetrics, 'scrape'>, logger: Logger): Promise<Server> {
  const { host, port } = splitHostPort(addr)
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found: this listener serves GET /metrics\n')
      return
    }
    metrics.scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (err: unknown) => {
        logger.error({ event: 'metrics_failed', err }, 'cannot collect the metrics')
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('cannot collect the metrics\n')
      },
    )
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      server.on('error', (err) => logger.error({ event: 'metrics_listener_failed', err }, 'metrics listener failed'))
      const a = server.address() as AddressInfo
      const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`
      logger.info({ event: 'metrics_listening', url }, `metrics on ${url}`)
      resolve(server)
    })
  })
}
