/**
 * What `pemba serve` does before it serves, shared by the single process (src/cli/serve.ts)
 * and the primary of a cluster (src/cli/cluster.ts): how many processes PEMBA_WORKERS asks for,
 * the warning about an open network address, and the exit code of a start that failed.
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import { databaseBackend, type PembaConfig } from '../config.ts'
import { isLoopbackHost } from '../core/net.ts'
import { DatabaseUnavailableError } from '../server.ts'
import { MigrationsPendingError } from '../store/migrations.ts'
import type { Logger } from '../telemetry/logger.ts'
import { TracingConfigError } from '../telemetry/tracing.ts'
import { ConfigError } from '../config.ts'

/** How long in-flight requests may take to finish after SIGTERM before the process closes anyway. */
export const DRAIN_TIMEOUT_MS = 10_000

/** workerCount: the processes PEMBA_WORKERS asks for (`auto`: one per core Node may use). */
export function workerCount(config: Pick<PembaConfig, 'workers'>): number {
  return config.workers === 'auto' ? availableParallelism() : config.workers
}

/** warnIfOpen warns when authentication is off on an address beyond loopback. */
export function warnIfOpen(config: PembaConfig, logger: Logger): void {
  if (config.authMode === 'none' && !isLoopbackHost(config.host)) {
    logger.warn(
      { event: 'auth_off_on_network', host: config.host },
      `authentication is off (PEMBA_AUTH_MODE=none) and the server listens on ${config.host}, ` +
        'a non-loopback address: anyone who can reach the port can read and write every store. ' +
        'Set PEMBA_AUTH_MODE=preshared or oidc (see docs/authentication.md).',
    )
  }
}

/**
 * warnPerWorkerLimits says, once, that the overload bounds are each worker's (every worker has
 * its own token buckets, admission and pool), so with n workers the server as a whole admits up
 * to n times each: PEMBA_RATE_LIMIT_PER_CLIENT=100 with 4 workers lets a client make about 400
 * requests a second.
 */
export function warnPerWorkerLimits(config: PembaConfig, workers: number, logger: Logger): void {
  if (workers <= 1) return
  const totals: Record<string, number> = {
    PEMBA_EXPENSIVE_MAX_CONCURRENT: config.expensiveMaxConcurrent * workers,
    PEMBA_EXPENSIVE_MAX_CONCURRENT_PER_CLIENT: config.expensiveMaxConcurrentPerClient * workers,
    PEMBA_EXPENSIVE_QUEUE_MAX: config.expensiveQueueMax * workers,
  }
  if (config.rateLimitPerClient > 0) totals.PEMBA_RATE_LIMIT_PER_CLIENT = config.rateLimitPerClient * workers
  if (config.rateLimitBurst > 0) totals.PEMBA_RATE_LIMIT_BURST = config.rateLimitBurst * workers
  if (databaseBackend(config.databaseUrl).backend.name !== 'sqlite') totals.PEMBA_PG_POOL_SIZE = config.pgPoolSize * workers
  logger.warn(
    { event: 'per_worker_limits', workers, totals },
    `with PEMBA_WORKERS=${workers} these limits apply to each worker, so the server as a whole allows up to ` +
      `${Object.entries(totals).map(([k, v]) => `${k} ${v}`).join(', ')} (${workers} × the setting)`,
  )
}

/**
 * startFailure logs why the instance could not be built and gives the exit code, for the
 * errors that are the configuration's or the database's (not a fault of Pemba's); undefined
 * for any other error.
 */
export function startFailure(e: unknown, logger: Logger): number | undefined {
  if (e instanceof MigrationsPendingError) {
    logger.fatal({ event: 'migrations_pending' }, `refusing to start: ${e.message}`)
    return 1
  }
  if (e instanceof DatabaseUnavailableError) {
    logger.fatal({ event: 'database_unavailable' }, `refusing to start: ${e.message}`)
    return 1
  }
  if (e instanceof ConfigError) {
    logger.fatal({ event: 'config_invalid' }, `refusing to start: ${e.message}`)
    return 2
  }
  if (e instanceof TracingConfigError) {
    logger.fatal({ event: 'tracing_config_invalid' }, `refusing to start: ${e.message}`)
    return 2
  }
  return undefined
}
