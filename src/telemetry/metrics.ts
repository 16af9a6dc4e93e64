/**
 * Pemba's Prometheus metrics: one prom-client `Registry` per instance (never the global default
 * registry, so several instances in one process keep their own counts), exposed with
 *
 * - the process's default metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag, GC),
 *   from one registry per process (processRegistry);
 * - RED per route pattern: `pemba_http_requests_total{route,method,status}` and
 *   `pemba_http_request_duration_seconds{route,method}`;
 * - checks: `pemba_check_total{outcome}`, `pemba_check_duration_seconds`,
 *   `pemba_check_cached_total`; the other queries: `pemba_query_total{kind,outcome}`,
 *   `pemba_query_duration_seconds{kind}`; `pemba_query_dispatches{kind}` (subproblems);
 * - the datastore: `pemba_datastore_query_duration_seconds{operation}`,
 *   `pemba_datastore_query_errors_total{operation}`, and for a pooled backend
 *   `pemba_datastore_pool_connections`, `…_pool_idle_connections`, `…_pool_waiting_requests`;
 * - the services' own counters, read at scrape time under their historical names: the check
 *   and tuple caches, the tuple index, the decision log; every bounded cache and buffer against
 *   its bound, `pemba_cache_size{cache}` and `pemba_cache_capacity{cache}` (docs/memory.md);
 *   overload: `pemba_expensive_queries_in_flight`, `…_queued`, `…_refused_total` and
 *   `pemba_rate_limited_total`.
 *
 * The HTTP layer sees only `RequestMetrics` (request-metrics.ts); the datastore only a
 * `QueryObserver`-shaped function (`observeDatastore`). The hot-path families are series.ts's,
 * bound once per label set.
 *
 * @module
 */
import { collectDefaultMetrics, Registry } from 'prom-client'
import type { QueryKind, QueryObservation, RequestMetrics } from './request-metrics.ts'
import {
  CounterFamily,
  HistogramFamily,
  LabelledSampledFamily,
  SampledFamily,
  type CounterSeries,
  type Family,
  type HistogramSeries,
} from './series.ts'

/** Latency buckets from 5 µs (a warm in-process check, a SQLite read) to 10 s (a deadline). */
const LATENCY_BUCKETS: readonly number[] = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25, 0.5, 1, 2.5, 5, 10,
]

/** Dispatch-count buckets: powers of two up to the default PEMBA_MAX_DISPATCHES_PER_REQUEST and beyond. */
const DISPATCH_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]

/** A cache's counters as the evaluation service reports them. */
export interface CacheCounters {
  hits: number
  misses: number
  entries: number
}

/** The counters the services keep themselves, read at scrape time (see PembaMetrics.collectFrom). */
export interface StatSources {
  /** The cross-request check cache. */
  checkCache(): CacheCounters
  /** The cross-request tuple cache. */
  tupleCache(): CacheCounters
  /** The tuple index; undefined when it is off (no series then). */
  tupleIndex(): { stores: number; tuples: number; builds: number; changesApplied: number; fallbacks: number } | undefined
  /** The membership closures (nested groups without walking them); undefined when off (no series then). */
  membershipClosure?(): { closures: number; entries: number; builds: number; fallbacks: number; answered: number } | undefined
  /** The decision log's counters. */
  decisionLog(): { recorded: number; dropped: number; failed: number; buffered: number }
  /** The connection pool, for a pooled backend (PostgreSQL); undefined otherwise (no series). */
  pool(): { total: number; idle: number; waiting: number } | undefined
  /**
   * Overload (src/service/admission.ts, rate-limit.ts): expensive queries running and queued,
   * those refused (queue full or wait run out), and requests refused by the rate limit.
   */
  admission?(): { inFlight: number; queued: number; refused: number; rateLimited: number }
  /** The database outage tracker (service/datastore-outage.ts); none when absent. */
  datastoreOutage?(): { down: boolean; unavailableTotal: number; outages: number }
  /** The PostgreSQL read replicas (PEMBA_DATABASE_READ_URL); undefined when there are none (no series). */
  readReplicas?():
    | { standbys: { name: string; up: boolean; lagSeconds: number | undefined; reads: number }[]; primaryReads: number }
    | undefined
  /** What each bounded in-memory cache or buffer holds and its bound (docs/memory.md); none when absent. */
  memory?(): MemoryUse[]
}

/**
 * One cache or buffer that grows with traffic: what it holds now and the most it may hold, in
 * the unit its setting counts (entries, tuples, bytes). `cache` is a fixed name (`check`,
 * `tuple_index`, …), never a store or a key.
 */
export interface MemoryUse {
  cache: string
  size: number
  capacity: number
}

export interface PembaMetrics extends RequestMetrics {
  /** This instance's own series (the process's default metrics are added at scrape time). */
  readonly registry: Registry
  /** The datastore's QueryObserver: one call per operation, with its duration and whether it failed. */
  readonly observeDatastore: (operation: string, seconds: number, failed: boolean) => void
  /** Adds the services' own counters (once, when they exist: they are built after the datastore). */
  collectFrom(sources: StatSources): void
  /** The exposition and its content type, for a `/metrics` answer. */
  scrape(): Promise<{ contentType: string; body: string }>
  /**
   * The same series as values (prom-client's `getMetricsAsJSON()`, each with its aggregator),
   * for a worker's answer to the primary, which sums them over the workers (src/cli/cluster.ts).
   */
  snapshot(): Promise<MetricsSnapshot>
}

/** Every series of one registry as values, as prom-client's `getMetricsAsJSON()` gives them. */
export type MetricsSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

export interface MetricsOptions {
  /** Process metrics (`process_*`, `nodejs_*`) in the exposition; default true. */
  defaultMetrics?: boolean
}

let processMetrics: Registry | undefined

/**
 * The process's default metrics, in a registry of their own made on first use. They describe
 * the one process, whatever the instances in it, and prom-client's collectors never stop (an
 * event-loop delay monitor and a GC observer per call): one set, read into every instance's
 * exposition, instead of one more per instance.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry()
    collectDefaultMetrics({ register: processMetrics })
  }
  return processMetrics
}

const KINDS: readonly QueryKind[] = ['check', 'batch_check', 'expand', 'list_objects', 'list_users', 'write', 'read']
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** createMetrics builds an instance's registry and the families it feeds. */
export function createMetrics(options: MetricsOptions = {}): PembaMetrics {
  const registry = new Registry()
  const exposed = options.defaultMetrics === false ? [registry] : [processRegistry(), registry]

  const httpRequests = new CounterFamily(
    'pemba_http_requests_total',
    'HTTP requests answered, by route pattern, method and status.',
  ).register(registry)
  const httpDuration = new HistogramFamily(
    'pemba_http_request_duration_seconds',
    'HTTP request latency, by route pattern and method.',
    LATENCY_BUCKETS,
  ).register(registry)
  const checks = new CounterFamily('pemba_check_total', 'Checks answered, by outcome (allowed, denied, error).').register(
    registry,
  )
  const checkDuration = new HistogramFamily('pemba_check_duration_seconds', 'Check latency.', LATENCY_BUCKETS).register(
    registry,
  )
  const checkCached = new CounterFamily(
    'pemba_check_cached_total',
    'Checks answered whole from the cross-request cache.',
  ).register(registry)
  const queries = new CounterFamily(
    'pemba_query_total',
    'Queries other than Check (batch check, expand, list objects, list users, write, read), by kind and outcome.',
  ).register(registry)
  const queryDuration = new HistogramFamily(
    'pemba_query_duration_seconds',
    'Latency of the queries other than Check, by kind.',
    LATENCY_BUCKETS,
  ).register(registry)
  const dispatches = new HistogramFamily(
    'pemba_query_dispatches',
    'Subproblems one query dispatched, by kind.',
    DISPATCH_BUCKETS,
  ).register(registry)
  const dsDuration = new HistogramFamily(
    'pemba_datastore_query_duration_seconds',
    'Datastore operation latency, by operation (readObject, write, …).',
    LATENCY_BUCKETS,
  ).register(registry)
  const dsErrors = new CounterFamily(
    'pemba_datastore_query_errors_total',
    'Datastore operations that failed, by operation.',
  ).register(registry)

  // Series bound once: an observation is then a few map look-ups at most. The outcomes a kind
  // has are there from the start (at 0, so rate() sees the first one); any other when it comes.
  const checkOutcome = outcomeSeries(checks, {}, ['allowed', 'denied', 'error'])
  const checkLatency = checkDuration.series({})
  const checkCachedSeries = checkCached.series({})
  const byKind = new Map(
    KINDS.map((kind) => [
      kind,
      kind === 'check'
        ? { dispatches: dispatches.series({ kind }) }
        : {
            outcome: outcomeSeries(queries, { kind }, ['ok', 'error']),
            latency: queryDuration.series({ kind }),
            dispatches: dispatches.series({ kind }),
          },
    ]),
  )
  /** route → method → { latency, status → count } */
  const http = new Map<string, Map<string, { latency: HistogramSeries; status: Map<number, CounterSeries> }>>()
  const datastore = new Map<string, { latency: HistogramSeries; errors?: CounterSeries }>()
  let collecting = false

  return {
    registry,
    observeHttp(route, rawMethod, status, seconds) {
      // A client may send any method token; the label keeps to the known ones.
      const method = HTTP_METHODS.has(rawMethod) ? rawMethod : 'OTHER'
      let methods = http.get(route)
      if (!methods) http.set(route, (methods = new Map()))
      let m = methods.get(method)
      if (!m) methods.set(method, (m = { latency: httpDuration.series({ route, method }), status: new Map() }))
      let count = m.status.get(status)
      if (!count) m.status.set(status, (count = httpRequests.series({ route, method, status })))
      count.inc()
      m.latency.observe(seconds)
    },
    observeQuery(q) {
      const k = byKind.get(q.kind)
      if (!k) return
      if (q.kind === 'check') {
        checkOutcome(q.outcome).inc()
        checkLatency.observe(q.seconds)
        if (q.cacheHit) checkCachedSeries.inc()
      } else {
        k.outcome?.(q.outcome).inc()
        k.latency?.observe(q.seconds)
      }
      if (q.dispatches !== undefined) k.dispatches.observe(q.dispatches)
    },
    observeDatastore(operation, seconds, failed) {
      let s = datastore.get(operation)
      if (!s) datastore.set(operation, (s = { latency: dsDuration.series({ operation }) }))
      s.latency.observe(seconds)
      if (failed) (s.errors ??= dsErrors.series({ operation })).inc()
    },
    collectFrom(sources) {
      if (collecting) return
      collecting = true
      for (const family of statFamilies(sources)) family.register(registry)
    },
    async scrape() {
      const all = exposed.length === 1 ? registry : Registry.merge(exposed)
      return { contentType: registry.contentType, body: await all.metrics() }
    },
    async snapshot() {
      return (exposed.length === 1 ? registry : Registry.merge(exposed)).getMetricsAsJSON()
    },
  }
}

/** outcomeSeries: the counter series of each outcome of one kind, `expected` ones bound at once. */
function outcomeSeries(
  family: CounterFamily,
  labels: Record<string, string>,
  expected: readonly QueryObservation['outcome'][],
): (outcome: QueryObservation['outcome']) => CounterSeries {
  const bound = new Map(expected.map((outcome) => [outcome, family.series({ ...labels, outcome })]))
  return (outcome) => {
    let s = bound.get(outcome)
    if (!s) bound.set(outcome, (s = family.series({ ...labels, outcome })))
    return s
  }
}

/** The services' counters, under the names /metrics has always used for them. */
function statFamilies(s: StatSources): Family[] {
  const counter = (name: string, help: string, read: () => number | undefined) =>
    new SampledFamily(name, help, 'counter', read)
  const gauge = (name: string, help: string, read: () => number | undefined) => new SampledFamily(name, help, 'gauge', read)
  const families: Family[] = [
    counter('pemba_check_cache_hits_total', 'Subproblem answers served from the cross-request cache.', () => s.checkCache().hits),
    counter('pemba_check_cache_misses_total', 'Cross-request cache look-ups that found nothing.', () => s.checkCache().misses),
    gauge('pemba_check_cache_entries', 'Entries in the cross-request cache.', () => s.checkCache().entries),
    counter('pemba_tuple_cache_hits_total', 'Tuple reads served from the cross-request tuple cache.', () => s.tupleCache().hits),
    counter('pemba_tuple_cache_misses_total', 'Tuple cache look-ups that found nothing.', () => s.tupleCache().misses),
    gauge('pemba_tuple_cache_entries', 'Entries in the cross-request tuple cache.', () => s.tupleCache().entries),
    counter('pemba_decisions_recorded_total', 'Decisions written to the decision log.', () => s.decisionLog().recorded),
    counter(
      'pemba_decisions_dropped_total',
      'Decisions dropped because PEMBA_DECISION_LOG_BUFFER_MAX decisions were already waiting.',
      () => s.decisionLog().dropped,
    ),
    counter(
      'pemba_decisions_write_failed_total',
      'Decisions lost because their batch could not be written.',
      () => s.decisionLog().failed,
    ),
    gauge('pemba_decisions_buffered', 'Decisions waiting to be written.', () => s.decisionLog().buffered),
    counter(
      'pemba_datastore_unavailable_total',
      'Database operations that failed because the database was unavailable (answered 503, or retried later in the background).',
      () => s.datastoreOutage?.().unavailableTotal ?? 0,
    ),
    counter('pemba_datastore_outages_total', 'Database outages seen (each logged once, with its cause).', () => s.datastoreOutage?.().outages ?? 0),
    // Summed over workers, 1 + 1 would say nothing: any worker's 0 shows.
    gauge('pemba_datastore_up', '0 while the database is known to be unavailable, else 1.', () => (s.datastoreOutage?.().down ? 0 : 1)).aggregatedBy('min'),
  ]
  // The tuple index and the pool are fixed at start: their families exist only when they do.
  if (s.tupleIndex()) {
    families.push(
      // Every worker indexes the same stores: the most of them, not their sum (2 workers × 3 stores is 3).
      gauge('pemba_tuple_index_stores', 'Stores answered from the in-memory tuple index.', () => s.tupleIndex()?.stores).aggregatedBy('max'),
      gauge('pemba_tuple_index_tuples', 'Tuples held by the tuple index (summed over workers: it is memory).', () => s.tupleIndex()?.tuples),
      counter('pemba_tuple_index_builds_total', 'Stores read into the tuple index.', () => s.tupleIndex()?.builds),
      counter(
        'pemba_tuple_index_changes_applied_total',
        'Changelog entries applied to the tuple index.',
        () => s.tupleIndex()?.changesApplied,
      ),
      counter(
        'pemba_tuple_index_fallbacks_total',
        'Requests that read the database because their store was not indexed.',
        () => s.tupleIndex()?.fallbacks,
      ),
    )
  }
  const closure = s.membershipClosure
  if (closure?.()) {
    families.push(
      gauge('pemba_membership_closure_closures', 'Membership closures (store and group relation) ready to answer.', () => closure()?.closures).aggregatedBy('max'),
      gauge('pemba_membership_closure_entries', 'Entries held by the membership closures (a subject in a group, transitively).', () => closure()?.entries),
      counter('pemba_membership_closure_builds_total', 'Membership closures built.', () => closure()?.builds),
      counter(
        'pemba_membership_closure_answers_total',
        'Group memberships answered from a membership closure instead of walking the groups.',
        () => closure()?.answered,
      ),
      counter(
        'pemba_membership_closure_fallbacks_total',
        'Group memberships walked because the closure could not answer exactly (building, over budget, contextual tuples, expired tuples, depth limit).',
        () => closure()?.fallbacks,
      ),
    )
  }
  const memory = s.memory
  if (memory) {
    families.push(
      new LabelledSampledFamily(
        'pemba_cache_size',
        'What each bounded in-memory cache or buffer holds, in the unit its setting counts (entries, tuples or bytes; docs/memory.md); summed over workers.',
        () => memory().map((m) => ({ labels: { cache: m.cache }, value: m.size })),
      ),
      new LabelledSampledFamily(
        'pemba_cache_capacity',
        'The most each bounded in-memory cache or buffer may hold (its setting), in the unit of pemba_cache_size; summed over workers.',
        () => memory().map((m) => ({ labels: { cache: m.cache }, value: m.capacity })),
      ),
    )
  }
  if (s.pool()) {
    families.push(
      gauge('pemba_datastore_pool_connections', 'Connections the database pool holds, idle or in use.', () => s.pool()?.total),
      gauge('pemba_datastore_pool_idle_connections', 'Idle connections in the database pool.', () => s.pool()?.idle),
      gauge(
        'pemba_datastore_pool_waiting_requests',
        'Operations waiting for a connection from the database pool.',
        () => s.pool()?.waiting,
      ),
    )
  }
  const replicas = s.readReplicas
  if (replicas?.()) {
    const standbys = () => replicas()?.standbys ?? []
    families.push(
      new LabelledSampledFamily('pemba_datastore_standby_up', '1 while a read replica (PostgreSQL standby) is reachable, else 0.', () =>
        standbys().map((r) => ({ labels: { standby: r.name }, value: r.up ? 1 : 0 })),
      ).aggregatedBy('min'),
      new LabelledSampledFamily(
        'pemba_datastore_standby_lag_seconds',
        'How far a reachable read replica may lag the primary, as last measured; above PEMBA_CHECK_CACHE_STALENESS_MS it is skipped.',
        () => standbys().flatMap((r) => (r.lagSeconds === undefined ? [] : [{ labels: { standby: r.name }, value: r.lagSeconds }])),
      ).aggregatedBy('max'),
      new LabelledSampledFamily(
        'pemba_datastore_replica_reads_total',
        'Reads that may lag (MINIMIZE_LATENCY tuple reads, changelog pages, head revisions), by where they went: a standby, or `primary` (none had the revision, or it failed).',
        () => [
          ...standbys().map((r) => ({ labels: { target: r.name }, value: r.reads })),
          { labels: { target: 'primary' }, value: replicas()?.primaryReads ?? 0 },
        ],
        'counter',
      ),
    )
  }
  const admission = s.admission
  if (admission) {
    families.push(
      gauge('pemba_expensive_queries_in_flight', 'Expensive queries (lists, expand, searches, reviews) running now.', () => admission().inFlight),
      gauge('pemba_expensive_queries_queued', 'Expensive queries waiting for a slot (PEMBA_EXPENSIVE_QUEUE_MAX).', () => admission().queued),
      counter(
        'pemba_expensive_queries_refused_total',
        'Expensive queries refused with 429 rate_limited: the queue was full, or the wait for a slot ran out.',
        () => admission().refused,
      ),
      counter(
        'pemba_rate_limited_total',
        'Requests refused with 429 rate_limited by the per-client rate limit (PEMBA_RATE_LIMIT_PER_CLIENT).',
        () => admission().rateLimited,
      ),
    )
  }
  return families
}
