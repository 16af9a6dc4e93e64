/**
 * `pemba serve`: builds a Pemba instance from its configuration, listens, and drains in-flight
 * requests on SIGTERM/SIGINT before closing the database. Startup, listening and shutdown are
 * structured log events (`event: "listening"`, …) on the instance's logger.
 *
 * @module
 */
import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import type { PembaConfig } from '../config.ts'
import { createPemba, DatabaseUnavailableError, type Pemba } from '../server.ts'
import { startMetricsListener } from '../telemetry/metrics-listener.ts'
import type { Server as HttpServer } from 'node:http'
import { MigrationsPendingError } from '../store/migrations.ts'
import { TracingConfigError } from '../telemetry/tracing.ts'
import { isLoopbackHost } from '../core/net.ts'
import type { Redactor } from '../core/redact.ts'
import type { Logger } from '../telemetry/logger.ts'
import { answerClientError, httpServerOptions } from './http-limits.ts'

/** How long in-flight requests may take to finish after SIGTERM before the process closes anyway. */
const DRAIN_TIMEOUT_MS = 10_000

/**
 * runServe starts the server; resolves with an exit code when it could not start, or with -1
 * once it listens (the process then lives until a signal).
 */
export async function runServe(config: PembaConfig, startup: { logger: Logger; redactor: Redactor }): Promise<number> {
  const { logger } = startup
  if (config.authMode === 'none' && !isLoopbackHost(config.host)) {
    logger.warn(
      { event: 'auth_off_on_network', host: config.host },
      `authentication is off (PEMBA_AUTH_MODE=none) and the server listens on ${config.host}, ` +
        'a non-loopback address: anyone who can reach the port can read and write every store. ' +
        'Set PEMBA_AUTH_MODE=preshared or oidc (see docs/authentication.md).',
    )
  }
  let pemba: Pemba
  try {
    // The OpenTelemetry variables (OTEL_*) are read from the process's environment, here only.
    pemba = await createPemba(config, { logger, otelEnv: process.env })
  } catch (e) {
    if (e instanceof MigrationsPendingError) {
      logger.fatal({ event: 'migrations_pending' }, `refusing to start: ${e.message}`)
      return 1
    }
    if (e instanceof DatabaseUnavailableError) {
      logger.fatal({ event: 'database_unavailable' }, `refusing to start: ${e.message}`)
      return 1
    }
    if (e instanceof TracingConfigError) {
      logger.fatal({ event: 'tracing_config_invalid' }, `refusing to start: ${e.message}`)
      return 2
    }
    throw e
  }
  // PEMBA_METRICS_ADDR: /metrics on a listener of its own, without the API's authentication.
  let metricsServer: HttpServer | undefined
  if (config.metricsAddr) {
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
      logger.info({ event: 'listening', url }, `listening on ${url}`)
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
  return -1
}
