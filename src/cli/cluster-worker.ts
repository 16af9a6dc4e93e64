/**
 * A worker's side of the cluster (PEMBA_WORKERS above 1; the primary is src/cli/cluster.ts):
 * what the primary may ask of a running worker over the cluster's IPC channel.
 *
 * - `sweep`: this worker runs the cluster's one sweeper (expired tuples, overdue access
 *   requests, deleted stores' purge, the decision log's retention). The primary names one
 *   worker, and another when that one dies: the work is the same whoever does it, so the
 *   cluster sweeps the database once per interval instead of once per worker.
 * - `metrics`: this worker's series as values (prom-client's JSON form), which the primary
 *   sums over the workers for PEMBA_METRICS_ADDR.
 *
 * And, on SQLite, what a worker asks of the primary: `decisions`, a decision-log batch for the
 * primary to write (primaryDecisionWriter).
 *
 * @module
 */
import cluster from 'node:cluster'
import { DatastoreUnavailable } from '../core/errors.ts'
import type { Pemba } from '../server.ts'
import type { DecisionStore, GrantUse, StoredDecision } from '../service/decision-store.ts'
import type { Logger } from '../telemetry/logger.ts'
import type { MetricsSnapshot } from '../telemetry/metrics.ts'

/** What the primary sends a worker. */
export type ToWorker =
  | { type: 'pemba:sweep' }
  | { type: 'pemba:metrics'; id: number }
  | { type: 'pemba:decisions-written'; id: number; error?: string; unavailable?: boolean }

/** What a worker sends the primary. */
export type FromWorker =
  | { type: 'pemba:metrics'; id: number; metrics: MetricsSnapshot }
  | { type: 'pemba:metrics'; id: number; error: string }
  | { type: 'pemba:decisions'; id: number; decisions: StoredDecision[]; uses: GrantUse[] }

/**
 * How long a batch handed to the primary may wait for its answer before it counts as not
 * written (the database unavailable): the log keeps it and tries again, and a drain never
 * waits on a primary that no longer answers.
 */
export const DECISION_REPLY_TIMEOUT_MS = 5_000

/** isToWorker: the message is one of the primary's (a worker also receives prom-client's, say). */
function isToWorker(m: unknown): m is ToWorker {
  const type = (m as { type?: unknown } | null)?.type
  return type === 'pemba:sweep' || type === 'pemba:metrics' || type === 'pemba:decisions-written'
}

/**
 * primaryDecisionWriter: the decision log's writer in a worker on SQLite: each batch goes to
 * the primary, which writes it into the file (the one writer of the log: see
 * service/decision-forwarding.ts for why), and resolves once it is committed. A batch the
 * primary could not write because the database is unavailable is refused as such, so the log
 * keeps it and tries again, as it does with its own database.
 */
export function primaryDecisionWriter(): Pick<DecisionStore, 'appendDecisions'> {
  let next = 0
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  const settle = (id: number) => {
    const p = pending.get(id)
    pending.delete(id)
    if (p) clearTimeout(p.timer)
    return p
  }
  const unavailable = (why: string) => new DatastoreUnavailable(new Error(`decision log: ${why}`))
  // The primary gone: no answer will come for any batch in flight.
  process.once('disconnect', () => {
    for (const id of [...pending.keys()]) settle(id)?.reject(unavailable('the primary is gone'))
  })
  process.on('message', (m: unknown) => {
    if (!isToWorker(m) || m.type !== 'pemba:decisions-written') return
    const p = settle(m.id)
    if (m.error === undefined) p?.resolve()
    else if (m.unavailable) p?.reject(new DatastoreUnavailable(new Error(m.error)))
    else p?.reject(new Error(`decision log write failed in the primary: ${m.error}`))
  })
  return {
    appendDecisions(decisions, uses) {
      const id = next++
      return new Promise<void>((resolve, reject) => {
        if (!process.connected) return reject(unavailable('the primary is gone'))
        const timer = setTimeout(
          () => settle(id)?.reject(unavailable(`the primary did not answer within ${DECISION_REPLY_TIMEOUT_MS / 1000} s`)),
          DECISION_REPLY_TIMEOUT_MS,
        )
        pending.set(id, { resolve, reject, timer })
        const message: FromWorker = { type: 'pemba:decisions', id, decisions, uses }
        process.send!(message, undefined, undefined, (err: Error | null) => {
          if (err) settle(id)?.reject(unavailable(err.message))
        })
      })
    },
  }
}

/** joinCluster answers the primary's messages for this worker's instance. */
export function joinCluster(pemba: Pemba, logger: Logger): void {
  const send = (m: FromWorker) => {
    // The primary may be gone (the worker then exits on its own); nothing to answer to. The
    // callback keeps a failed write from becoming an 'error' nobody hears (an uncaught exception).
    if (process.connected) process.send!(m, undefined, undefined, () => {})
  }
  // cluster.worker re-emits the IPC channel's errors; unheard they would kill the worker.
  cluster.worker?.on('error', (err: Error) => logger.warn({ event: 'worker_ipc_error', err }, `IPC with the primary failed: ${err.message}`))
  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return
    if (m.type === 'pemba:decisions-written') return
    if (m.type === 'pemba:sweep') {
      logger.info({ event: 'sweeper_started' }, 'this worker runs the sweeper for the cluster')
      pemba.sweeper.start()
      pemba.decisions.start()
      return
    }
    pemba.metrics.snapshot().then(
      (metrics) => send({ type: 'pemba:metrics', id: m.id, metrics }),
      (err: unknown) => send({ type: 'pemba:metrics', id: m.id, error: String((err as Error)?.message ?? err) }),
    )
  })
}
