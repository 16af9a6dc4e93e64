/**
 * The primary of `pemba serve` with PEMBA_WORKERS above 1 (node:cluster): it serves no request
 * itself. It
 *
 * - checks, before it forks anything, that an instance can start (the configuration, the
 *   database reachable and migrated, the OTEL_* settings): what would stop one worker would
 *   stop them all, so it stops here once, with the same message and exit code as one process;
 * - forks the workers, each `pemba serve` with the same settings, each a whole Pemba instance
 *   (engine, caches, tuple index) accepting on the shared port; the primary logs `listening`
 *   once every worker serves;
 * - names one worker the sweeper (cluster-worker.ts), and another when that one dies;
 * - on SQLite, writes the workers' decision-log batches into the file, its one decision writer
 *   (service/decision-forwarding.ts says why), until the last worker has exited;
 * - restarts a worker that dies (`event: "worker_exited"` with its code or signal) after a
 *   backoff that doubles from 100 ms to 30 s, back to 100 ms once a worker has served for
 *   30 s; before the cluster has first served, a worker that dies before serving three times in
 *   a row stops the whole server, exit code 1, rather than forking forever; once it has served,
 *   failed starts only do so when no worker serves any more (a database blip while a worker is
 *   replaced must not take the healthy ones down); a worker that has not listened within
 *   START_TIMEOUT_MS (PRELOAD_START_TIMEOUT_MS when it preloads the tuple index) is killed,
 *   and counts as a failed start;
 * - on SIGTERM or SIGINT, sends SIGTERM to every worker (each drains its in-flight requests,
 *   as a single process does) and exits once they all have: 0 when each drained cleanly. A
 *   second signal, or the drain outlasting the workers' own timeout, kills them (exit 1);
 * - serves PEMBA_METRICS_ADDR: every worker's series summed (cluster-metrics.ts), with
 *   `pemba_workers` and `pemba_worker_restarts_total`.
 *
 * @module
 */
import cluster, { type Worker } from 'node:cluster'
import type { Server as HttpServer } from 'node:http'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PembaConfig } from '../config.ts'
import { databaseBackend } from '../config.ts'
import { DatastoreUnavailable } from '../core/errors.ts'
import { createPemba, openDatastore } from '../server.ts'
import type { Datastore } from '../store/store.ts'
import type { Logger } from '../telemetry/logger.ts'
import { startMetricsListener } from '../telemetry/metrics-listener.ts'
import { ClusterMetrics } from './cluster-metrics.ts'
import type { FromWorker, ToWorker } from './cluster-worker.ts'
import { DRAIN_TIMEOUT_MS, startFailure, warnIfOpen, warnPerWorkerLimits } from './serve-startup.ts'

/** The first wait before a dead worker is forked again; it doubles up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 100
export const MAX_BACKOFF_MS = 30_000
/** A worker that has served this long is healthy: the next restart waits FIRST_BACKOFF_MS again. */
export const STABLE_AFTER_MS = 30_000
/** Starts in a row of one worker that died before serving, after which the server stops. */
export const MAX_FAILED_STARTS = 3
/** A worker that has not listened this long after its fork is stuck (a lock, a connect): it is killed. */
export const START_TIMEOUT_MS = 60_000
/** The same with PEMBA_TUPLE_INDEX_PRELOAD=on: a worker reads every store before it listens. */
export const PRELOAD_START_TIMEOUT_MS = 10 * 60_000
/** How long the primary waits for the workers to drain: their own timeout, and a margin to exit. */
const PRIMARY_DRAIN_TIMEOUT_MS = DRAIN_TIMEOUT_MS + 5_000

/** One of the N places a worker runs in: a worker, then its replacement, and so on. */
interface Slot {
  index: number
  worker?: Worker
  /** The current worker has listened (it serves). */
  serving: boolean
  backoffMs: number
  /** Workers of this slot in a row that died before they served. */
  failedStarts: number
  restartTimer?: NodeJS.Timeout
  stableTimer?: NodeJS.Timeout
  startTimer?: NodeJS.Timeout
}

/**
 * runCluster starts the primary: resolves with an exit code when the server cannot start, or
 * with -1 once the workers are forked (the process then lives until a signal or a fatal stop).
 */
export async function runCluster(config: PembaConfig, options: { logger: Logger; workers: number }): Promise<number> {
  const { logger, workers } = options
  warnIfOpen(config, logger)
  warnPerWorkerLimits(config, workers, logger)
  const preflight = await checkStart(config, logger)
  if (preflight !== 0) return preflight
  // The workers run this very code, whatever started the primary: the CLI's entry point beside
  // this module (dist/cli/main.js, or src/cli/main.ts under tsx), not bin/pemba.js, which
  // would first check dist/ against src/ and might rebuild it under the running primary.
  // Advanced serialization: decision batches cross the IPC channel as they are (structured clone).
  const self = fileURLToPath(import.meta.url)
  cluster.setupPrimary({ exec: join(dirname(self), `main${extname(self)}`), args: process.argv.slice(2), serialization: 'advanced' })
  let decisionStore: Datastore | undefined
  /** Set once the decision store is closing: a batch that trails its worker's exit is refused. */
  let closing = false
  if (databaseBackend(config.databaseUrl).backend.name === 'sqlite') {
    try {
      decisionStore = await openDatastore(config, { logger })
    } catch (e) {
      const code = startFailure(e, logger)
      if (code === undefined) throw e
      return code
    }
    const store = decisionStore
    cluster.on('message', (w: Worker, m: FromWorker) => {
      if (m?.type !== 'pemba:decisions') return
      const reply = (r: Omit<Extract<ToWorker, { type: 'pemba:decisions-written' }>, 'type' | 'id'>) => {
        if (w.isConnected()) w.send({ type: 'pemba:decisions-written', id: m.id, ...r } satisfies ToWorker, undefined, () => {})
      }
      if (closing) {
        // IPC data can trail its worker's exit: writing it now would reopen the writer on a
        // closing file. Its worker is gone, so the batch is lost: say so.
        logger.error({ event: 'decisions_dropped', worker: w.id, decisions: m.decisions.length }, 'decision batch arrived after the decision log closed; dropped')
        return reply({ error: 'the primary is stopping', unavailable: true })
      }
      store.appendDecisions(m.decisions, m.uses).then(
        () => reply({}),
        (err: unknown) => reply({ error: String((err as Error)?.message ?? err), unavailable: err instanceof DatastoreUnavailable }),
      )
    })
  }

  const slots: Slot[] = Array.from({ length: workers }, (_, index) => ({
    index,
    serving: false,
    backoffMs: FIRST_BACKOFF_MS,
    failedStarts: 0,
  }))
  const metrics = new ClusterMetrics(() => slots.flatMap((s) => (s.serving && s.worker ? [s.worker] : [])))
  let metricsServer: HttpServer | undefined
  if (config.metricsAddr) {
    try {
      metricsServer = await startMetricsListener(config.metricsAddr, metrics, logger)
    } catch (e) {
      logger.fatal({ event: 'listen_failed' }, `cannot listen on PEMBA_METRICS_ADDR=${config.metricsAddr}: ${(e as Error).message}`)
      await decisionStore?.close()
      return 1
    }
  }

  let stopping = false
  let exitCode = 0
  let announced = false
  let sweeper: Worker | undefined

  // A worker that has just died cannot be told: its exit names another sweeper.
  const send = (w: Worker, m: ToWorker) => {
    if (w.isConnected()) w.send(m, undefined, () => {})
  }
  /** assignSweeper names the first serving worker the sweeper when none is. */
  const assignSweeper = () => {
    if (stopping || (sweeper && !sweeper.isDead())) return
    sweeper = slots.find((s) => s.serving && s.worker)?.worker
    if (!sweeper) return
    send(sweeper, { type: 'pemba:sweep' })
    logger.info({ event: 'sweeper_assigned', worker: sweeper.id }, `worker ${sweeper.id} runs the sweeper`)
  }

  const startTimeoutMs = config.tupleIndexPreload === 'on' ? PRELOAD_START_TIMEOUT_MS : START_TIMEOUT_MS
  const fork = (slot: Slot) => {
    slot.restartTimer = undefined
    slot.serving = false
    const w = cluster.fork()
    slot.worker = w
    // An IPC write to a worker that has just died (Node's own handing over of a connection has
    // no callback) is emitted here; unheard, it would kill the primary and so every worker. The
    // worker's 'exit' does the recovery.
    w.on('error', (err: Error) => logger.warn({ event: 'worker_ipc_error', worker: w.id, err }, `IPC with worker ${w.id} failed: ${err.message}`))
    slot.startTimer = setTimeout(() => {
      if (slot.worker !== w || slot.serving || stopping) return
      logger.error({ event: 'worker_start_timeout', worker: w.id, pid: w.process.pid }, `worker ${w.id} did not listen within ${startTimeoutMs / 1000} s; killing it`)
      w.process.kill('SIGKILL')
    }, startTimeoutMs)
    w.on('listening', (address: { address: string | null; port: number }) => {
      if (slot.worker !== w || stopping) return
      clearTimeout(slot.startTimer)
      slot.serving = true
      slot.failedStarts = 0
      clearTimeout(slot.stableTimer)
      slot.stableTimer = setTimeout(() => (slot.backoffMs = FIRST_BACKOFF_MS), STABLE_AFTER_MS).unref()
      assignSweeper()
      if (!announced && slots.every((s) => s.serving)) {
        announced = true
        const host = address.address ?? config.host
        const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`
        logger.info({ event: 'listening', url, workers }, `listening on ${url} with ${workers} workers`)
      }
    })
    w.on('exit', (code: number | null, signal: string | null) => onExit(slot, w, code, signal))
  }

  const onExit = (slot: Slot, w: Worker, code: number | null, signal: string | null) => {
    const served = slot.serving
    if (slot.worker === w) {
      slot.worker = undefined
      slot.serving = false
      clearTimeout(slot.stableTimer)
      clearTimeout(slot.startTimer)
    }
    if (sweeper === w) sweeper = undefined
    if (stopping) {
      // SIGTERM before a worker had its handlers is a clean stop too: it was serving nothing.
      if (code !== 0 && signal !== 'SIGTERM') exitCode = 1
      if (slots.every((s) => !s.worker)) finish()
      return
    }
    metrics.restarted()
    const failedStarts = served ? 0 : slot.failedStarts + 1
    slot.failedStarts = failedStarts
    // Once the cluster has served, failed starts stop it only when nothing serves any more:
    // while one worker serves, the server keeps answering and the slot keeps trying.
    const fatal = failedStarts >= MAX_FAILED_STARTS && (!announced || slots.every((s) => !s.serving))
    logger.error(
      { event: 'worker_exited', worker: w.id, pid: w.process.pid, code, signal, served, restart_in_ms: slot.backoffMs },
      `worker ${w.id} (pid ${w.process.pid}) exited (${signal ? `signal ${signal}` : `code ${code}`})` +
        (fatal ? '' : `; restarting it in ${slot.backoffMs} ms`),
    )
    if (fatal) {
      logger.fatal(
        { event: 'workers_failing', failed_starts: failedStarts },
        `a worker died before serving ${failedStarts} times in a row (its log says why); stopping the server`,
      )
      exitCode = 1
      stop('workers_failing')
      return
    }
    assignSweeper()
    slot.restartTimer = setTimeout(() => fork(slot), slot.backoffMs)
    slot.backoffMs = Math.min(slot.backoffMs * 2, MAX_BACKOFF_MS)
  }

  const finish = () => {
    metricsServer?.close()
    metricsServer?.closeAllConnections()
    // The workers' last decisions, handed over as they drained, are written before the file closes.
    closing = true
    void (decisionStore?.close() ?? Promise.resolve())
      .catch((err: unknown) => {
        logger.error({ event: 'decision_log_close_failed', err }, `closing the decision log failed: ${(err as Error)?.message ?? err}`)
        exitCode = 1
      })
      .then(() => {
        logger.info({ event: 'stopped', code: exitCode }, 'stopped')
        process.exit(exitCode)
      })
  }

  const stop = (reason: string) => {
    if (stopping) {
      // A second signal: no more waiting.
      logger.warn({ event: 'drain_forced', signal: reason }, `${reason} received again: killing the workers`)
      for (const s of slots) s.worker?.process.kill('SIGKILL')
      exitCode = 1
      return
    }
    stopping = true
    const live = slots.flatMap((s) => (s.worker ? [s.worker] : []))
    logger.info({ event: 'draining', signal: reason, workers: live.length }, `${reason}: draining ${live.length} workers`)
    for (const s of slots) {
      clearTimeout(s.restartTimer)
      clearTimeout(s.stableTimer)
      clearTimeout(s.startTimer)
    }
    if (live.length === 0) return finish()
    for (const w of live) w.process.kill('SIGTERM')
    setTimeout(() => {
      logger.error({ event: 'drain_timeout' }, `the workers did not stop within ${PRIMARY_DRAIN_TIMEOUT_MS / 1000} s; killing them`)
      for (const s of slots) s.worker?.process.kill('SIGKILL')
      exitCode = 1
    }, PRIMARY_DRAIN_TIMEOUT_MS).unref()
  }

  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  logger.info({ event: 'starting_workers', workers }, `starting ${workers} workers`)
  for (const slot of slots) fork(slot)
  return -1
}

/**
 * checkStart builds an instance once and closes it, as every worker is about to: the
 * configuration, the database (reached, migrated, the system store made), the OTEL_*
 * settings. 0 when it could; else the exit code a single process would give.
 */
async function checkStart(config: PembaConfig, logger: Logger): Promise<number> {
  try {
    // Nothing is loaded into memory: only whether it can start is asked.
    const pemba = await createPemba(
      { ...config, tupleIndexPreload: 'off', tupleIndexMaxTuples: 0 },
      { logger, otelEnv: process.env, sweeper: false },
    )
    await pemba.close()
    return 0
  } catch (e) {
    const code = startFailure(e, logger)
    if (code === undefined) throw e
    return code
  }
}
