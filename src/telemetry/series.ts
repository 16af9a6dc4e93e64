/**
 * Metric families for the hot path, exposed through a prom-client `Registry` like any other
 * metric. prom-client's own `Histogram.observe` and `Counter.inc` hash their label object on
 * every call: measured 250–280 ns each, five of them per HTTP check, and one per SQLite read
 * (which itself takes a few µs). These families bind a label set once, to a series object the
 * caller keeps (per route pattern, per datastore operation), so an observation is a loop over
 * the bucket bounds and two additions (~15 ns). The registry reads them at scrape time through
 * `get()`, in prom-client's own value format, so the exposition (text and OpenMetrics) is
 * prom-client's.
 *
 * Every label value comes from a bounded set the caller controls (route patterns, operation
 * names, outcomes, status codes): never a raw path or a store id.
 *
 * @module
 */
import type { Registry } from 'prom-client'

type Labels = Record<string, string | number>

/** One value prom-client's registry writes as a line: `name{labels} value`. */
interface SampleValue {
  value: number
  labels: Labels
  metricName?: string
}

/** What prom-client's registry asks a metric for when it writes the exposition. */
interface CollectedMetric {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  values: SampleValue[]
  aggregator: Aggregator
}

/**
 * How the primary of a multi-process server (PEMBA_WORKERS) combines one series across its
 * workers (prom-client's aggregators): counters and most gauges add up, `min` for a gauge where
 * one worker's 0 must show (pemba_datastore_up).
 */
export type Aggregator = 'sum' | 'min' | 'max' | 'first'


/** The part of prom-client's `Metric` the registry uses (`registerMetric`, `metrics()`, `getMetricsAsJSON()`). */
export abstract class Family {
  aggregator: Aggregator = 'sum'
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}

  abstract values(): SampleValue[]

  async get(): Promise<CollectedMetric> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator }
  }

  /** The registry's reset hook (`registry.resetMetrics()`); the families keep their counts. */
  reset(): void {}

  /** aggregatedBy sets how the workers' values combine (default `sum`). */
  aggregatedBy(aggregator: Aggregator): this {
    this.aggregator = aggregator
    return this
  }

  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
    return this
  }
}

/** One histogram series: non-cumulative bucket counts, added up at scrape time. */
export class HistogramSeries {
  readonly #bounds: readonly number[]
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(
    readonly labels: Labels,
    bounds: readonly number[],
  ) {
    this.#bounds = bounds
    this.counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    const bounds = this.#bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    if (i < bounds.length) this.counts[i]++
    this.sum += value
    this.count++
  }
}

/** A histogram family; `series(labels)` binds a label set once (keep the result). */
export class HistogramFamily extends Family {
  readonly #bounds: readonly number[]
  readonly #series = new Map<string, HistogramSeries>()

  constructor(name: string, help: string, bounds: readonly number[]) {
    super(name, help, 'histogram')
    this.#bounds = bounds
  }

  series(labels: Labels): HistogramSeries {
    const key = JSON.stringify(labels)
    let s = this.#series.get(key)
    if (!s) this.#series.set(key, (s = new HistogramSeries(labels, this.#bounds)))
    return s
  }

  values(): SampleValue[] {
    const out: SampleValue[] = []
    for (const s of this.#series.values()) {
      let cumulative = 0
      this.#bounds.forEach((le, i) => {
        cumulative += s.counts[i]
        out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: cumulative })
      })
      out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count })
      out.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum })
      out.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count })
    }
    return out
  }
}

/** One counter series. */
export class CounterSeries {
  value = 0
  constructor(readonly labels: Labels) {}
  inc(by = 1): void {
    this.value += by
  }
}

/** A counter family; `series(labels)` binds a label set once (keep the result). */
export class CounterFamily extends Family {
  readonly #series = new Map<string, CounterSeries>()

  constructor(name: string, help: string) {
    super(name, help, 'counter')
  }

  series(labels: Labels): CounterSeries {
    const key = JSON.stringify(labels)
    let s = this.#series.get(key)
    if (!s) this.#series.set(key, (s = new CounterSeries(labels)))
    return s
  }

  values(): SampleValue[] {
    return [...this.#series.values()].map((s) => ({ labels: s.labels, value: s.value }))
  }
}

/**
 * A family read at scrape time from a service's own counters (the caches, the tuple index, the
 * decision log, the pool): `read` returns the value, or undefined for no sample.
 */
export class SampledFamily extends Family {
  readonly #read: () => number | undefined

  constructor(name: string, help: string, type: 'counter' | 'gauge', read: () => number | undefined) {
    super(name, help, type)
    this.#read = read
  }

  values(): SampleValue[] {
    const value = this.#read()
    return value === undefined ? [] : [{ labels: {}, value }]
  }
}

/** One labelled value read at scrape time (see LabelledSampledFamily). */
export interface LabelledValue {
  labels: Labels
  value: number
}

/**
 * A gauge family read whole at scrape time, one value per label set: for figures kept by their
 * owners (the caches' sizes), where the label values come from the owner's fixed list.
 */
export class LabelledSampledFamily extends Family {
  readonly #read: () => LabelledValue[]

  constructor(name: string, help: string, read: () => LabelledValue[], type: 'gauge' | 'counter' = 'gauge') {
    super(name, help, type)
    this.#read = read
  }

  values(): SampleValue[] {
    return this.#read().map((v) => ({ labels: v.labels, value: v.value }))
  }
}
