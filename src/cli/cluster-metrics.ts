/**
 * The primary's /metrics (PEMBA_METRICS_ADDR with PEMBA_WORKERS above 1): each serving worker
 * is asked for its series over the cluster's IPC channel (cluster-worker.ts) and prom-client's
 * `AggregatorRegistry.aggregate` combines them by each series' aggregator: counters, histograms
 * and most gauges are summed (`pemba_http_requests_total` is every request the cluster
 * answered), `pemba_datastore_up` is the least of them (one worker's 0 shows), the process
 * metrics as prom-client marks them (resident memory summed, event-loop lag averaged, the
 * version the first). The primary adds its own two series:
 *
 * - `pemba_workers`: workers serving now (a dead one being restarted is not counted);
 * - `pemba_worker_restarts_total`: workers that died and were forked again.
 *
 * Summed counters must never go down (Prometheus reads any fall as a reset, and counts the
 * whole value again): a worker that does not answer within a second (busy, or dying) counts
 * with its last answer, and a worker that has exited leaves its last counters and histograms
 * behind, added to every later scrape (its gauges go with it). So with workers 1 (100
 * requests, then killed) and 2 (50), then 3 (the replacement, 10), the cluster has answered
 * 100 + 50 + 10. Requests a worker answered after its last scrape and before it died are not
 * counted. The API port's own `/metrics` stays the one worker's that answers it.
 *
 * @module
 */
import type { Worker } from 'node:cluster'
import cluster from 'node:cluster'
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client'
import type { MetricsSnapshot } from '../telemetry/metrics.ts'
import type { FromWorker, ToWorker } from './cluster-worker.ts'

/** How long a scrape waits for a worker's answer. */
const ANSWER_TIMEOUT_MS = 1000

export class ClusterMetrics {
  readonly #own = new Registry()
  readonly #restarts: Counter
  readonly #serving: () => Worker[]
  readonly #pending = new Map<number, (m: MetricsSnapshot | undefined) => void>()
  #next = 0
  /** Each live worker's last answer, by worker id. */
  readonly #last = new Map<number, MetricsSnapshot>()
  /** The summed counters and histograms of the workers that have exited. */
  #retired: MetricsSnapshot = []

  /** `serving` lists the workers that serve now (the ones asked, and counted as pemba_workers). */
  constructor(serving: () => Worker[]) {
    this.#serving = serving
    new Gauge({
      name: 'pemba_workers',
      help: 'Worker processes serving now (PEMBA_WORKERS).',
      registers: [this.#own],
      collect() {
        this.set(serving().length)
      },
    })
    this.#restarts = new Counter({
      name: 'pemba_worker_restarts_total',
      help: 'Worker processes that died and were started again.',
      registers: [this.#own],
    })
    cluster.on('message', (_worker: Worker, m: FromWorker) => {
      if (m?.type !== 'pemba:metrics') return
      this.#pending.get(m.id)?.('metrics' in m ? m.metrics : undefined)
    })
    cluster.on('exit', (w: Worker) => {
      const last = this.#last.get(w.id)
      this.#last.delete(w.id)
      if (last) this.#retired = retire(this.#retired, last)
    })
  }

  /** restarted counts one more worker restart. */
  restarted(): void {
    this.#restarts.inc()
  }

  /** scrape: the exposition, every serving worker's series combined, and the primary's own. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const answers = await Promise.all(
      this.#serving().map(async (w) => {
        const answer = await this.#ask(w)
        // A worker may have exited while it was asked: its last answer is retired already.
        if (answer && !w.isDead()) this.#last.set(w.id, answer)
        return answer ?? this.#last.get(w.id)
      }),
    )
    const live = answers.filter((a): a is MetricsSnapshot => a !== undefined)
    const combined = AggregatorRegistry.aggregate(this.#retired.length > 0 ? [...live, this.#retired] : live)
    const all = Registry.merge([combined as Registry, this.#own])
    return { contentType: this.#own.contentType, body: await all.metrics() }
  }

  #ask(w: Worker): Promise<MetricsSnapshot | undefined> {
    const id = this.#next++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        resolve(undefined)
      }, ANSWER_TIMEOUT_MS)
      this.#pending.set(id, (m) => {
        this.#pending.delete(id)
        clearTimeout(timer)
        resolve(m)
      })
      const request: ToWorker = { type: 'pemba:metrics', id }
      // A worker that is gone answers nothing: the scrape goes on without it.
      if (!w.isConnected()) return this.#pending.get(id)?.(undefined)
      w.send(request, undefined, (err) => err && this.#pending.get(id)?.(undefined))
    })
  }
}

/**
 * retire adds a dead worker's last counters and histograms (the summed ones) to those of the
 * workers retired before it; gauges are dropped (they say what is, and it is gone).
 */
function retire(retired: MetricsSnapshot, last: MetricsSnapshot): MetricsSnapshot {
  const byName = new Map(retired.map((m) => [m.name, m]))
  for (const metric of last) {
    const type = String(metric.type)
    const aggregator = (metric as { aggregator?: string }).aggregator ?? 'sum'
    if ((type !== 'counter' && type !== 'histogram') || aggregator !== 'sum') continue
    const into = byName.get(metric.name) ?? { ...metric, values: [] }
    byName.set(metric.name, into)
    const values = new Map(into.values.map((v) => [sampleKey(v), { ...v }]))
    for (const v of metric.values) {
      const key = sampleKey(v)
      const had = values.get(key)
      if (had) had.value += v.value
      else values.set(key, { ...v })
    }
    into.values = [...values.values()]
  }
  return [...byName.values()]
}

function sampleKey(v: { labels: object; metricName?: string }): string {
  const labels = Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify([v.metricName ?? '', labels])
}
