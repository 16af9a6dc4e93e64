/**
 * `pemba serve`: builds a Pemba instance from its configuration, listens, and drains in-flight
 * requests on SIGTERM/SIGINT before closing the database. Startup, listening and shutdown are
 * structured log events (`event: "listening"`, …) on the instance's logger.
 *
 * With PEMBA_WORKERS above 1 this process becomes the primary of a cluster (src/cli/cluster.ts)
 * and each worker process it forks runs this same path as one Pemba instance, with three
 * differences: its log lines carry `worker: <id>`, its sweeper starts only when the primary
 * says so (one sweeper for the whole cluster), PEMBA_METRICS_ADDR is the primary's, and on
 * SQLite its decision-log batches are written by the primary.
 *
 * @module
 */
import { serve } from '@hono/node-server'
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { databaseBackend, type PembaConfig } from '../config.ts'
import { createPemba, type Pemba } from '../server.ts'
import { startMetricsListener } from '../telemetry/metrics-listener.ts'
import type { Server as HttpServer } from 'node:http'
import type { Redactor } from '../core/redact.ts'
import type { Logger } from '../telemetry/logger.ts'
import { answerClientError, httpServerOptions } from './http-limits.ts'
import { joinCluster, primaryDecisionWriter } from './cluster-worker.ts'
import { DRAIN_TIMEOUT_MS, startFailure, warnIfOpen, workerCount } from './serve-startup.ts'

/**
 * runServe starts the server; resolves with an exit code when it could not start, or with -1
 * once it listens (the process then lives until a signal).
 */
export async function runServe(config: PembaConfig, startup: { logger: Logger; redactor: Redactor }): Promise<number> {
  const worker = cluster.isWorker ? cluster.worker : undefined
  if (!worker && workerCount(config) > 1) {
    // Loaded on use: a single process never loads the cluster's primary.
    const { runCluster } = await import('./cluster.ts')
    return runCluster(config, { logger: startup.logger, workers: workerCount(config) })
  }
  // Every line a worker logs says which worker: `"worker":2`.
  const logger = worker ? startup.logger.child({ worker: worker.id }) : startup.logger
  // The primary has said it once for the whole cluster.
  if (!worker) warnIfOpen(config, logger)
  let pemba: Pemba
  try {
    // The OpenTelemetry variables (OTEL_*) are read from the process's environment, here only.
    // A worker's sweeper waits for the primary's word (joinCluster): one sweeps for all.
    // On SQLite a worker's decision batches are written by the primary (decision-forwarding.ts).
    const decisionWriter = worker && databaseBackend(config.databaseUrl).backend.name === 'sqlite' ? primaryDecisionWriter() : undefined
    pemba = await createPemba(config, { logger, otelEnv: process.env, ...(worker ? { sweeper: false, decisionWriter } : {}) })
  } catch (e) {
    const code = startFailure(e, logger)
    if (code === undefined) throw e
    return code
  }
  // PEMBA_METRICS_ADDR: /metrics on a listener of its own, without the API's authentication.
  // In a cluster the primary listens there and sums every worker's series.
  let metricsServer: HttpServer | undefined
  if (config.metricsAddr && !worker) {
    try {
      metricsServer = await startMetricsListener(config.metricsAddr, pemba.metrics, logger)
    } catch (e) {
      logger.fatal({ event: 'listen_failed' }, `cannot listen on PEMBA_METRICS_ADDR=${config.metricsAddr}: ${(e as Error).message}`)
      await pemba.close()
      return 1
    }
  }
  let stopping = false
  const app = pemba.app
  // While draining, every answer says `Connection: close`, so keep-alive clients let go of
  // their sockets as soon as their in-flight request is answered.
  const fetch = async (req: Request, env: unknown): Promise<Response> => {
    const res = await app.fetch(req, env)
    if (!stopping) return res
    const headers = new Headers(res.headers)
    headers.set('connection', 'close')
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers })
  }
  const server = serve(
    { fetch, hostname: config.host, port: config.port, serverOptions: httpServerOptions(config) },
    (info: AddressInfo) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address
      const url = `http://${host}:${info.port}`
      // In a cluster the primary logs `listening` once, when every worker serves.
      if (worker) logger.info({ event: 'worker_listening', url, pid: process.pid }, `worker ${worker.id} serving ${url}`)
      else logger.info({ event: 'listening', url }, `listening on ${url}`)
    },
  )
  server.on('clientError', answerClientError(config))
  server.on('error', (err) => {
    logger.fatal({ event: 'listen_failed', err }, `cannot listen on ${config.host}:${config.port}: ${err.message}`)
    void pemba.close().then(() => process.exit(1))
  })

  const closeIdle = () => (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.()
  server.on('request', (_req, res) => res.on('finish', () => stopping && setImmediate(closeIdle)))
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ event: 'draining', signal }, `${signal} received: draining in-flight requests`)
    metricsServer?.close()
    metricsServer?.closeAllConnections()
    // close() stops accepting and waits for in-flight requests; idle keep-alive sockets are closed.
    server.close(() => {
      void pemba.close().then(() => {
        logger.info({ event: 'stopped' }, 'stopped')
        process.exit(0)
      })
    })
    closeIdle()
    setTimeout(() => {
      logger.error({ event: 'drain_timeout' }, `drain timed out after ${DRAIN_TIMEOUT_MS / 1000} s; closing`)
      void pemba.close().then(() => process.exit(1))
    }, DRAIN_TIMEOUT_MS).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  if (worker) joinCluster(pemba, logger)
  return -1
}
