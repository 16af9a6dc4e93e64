/**
 * One request's telemetry, kept in `c.var.observation` by the HTTP layer's middleware
 * (src/api/observe.ts): its id, its trace context, and the query it runs. The query routes call
 * `beginQuery` before their service call and `endQuery` with its result; the query's outcome,
 * latency and engine facts go to the metrics (request-metrics.ts) and, when tracing is on
 * (tracing.ts), to a child span of the request's span. Attribute names are `pemba.*`.
 *
 * @module
 */
import { SpanKind, SpanStatusCode, type Attributes, type Context as TraceContext, type Span } from '@opentelemetry/api'
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions'
import { PembaError } from '../core/errors.ts'
import type { Logger } from './logger.ts'
import type { QueryKind, QueryObservation, RequestMetrics } from './request-metrics.ts'
import type { Tracing } from './tracing.ts'

export interface ObserveOptions {
  /** Where the access log goes; absent when `PEMBA_ACCESS_LOG=off`. */
  accessLog?: Logger
  metrics?: RequestMetrics
  tracing?: Tracing
  /** The configured redactor: an incoming request id it would change is not kept. */
  redact?: (text: string) => string
}

/** What a query reports when it ends; a check's or a list's result object is one already. */
export interface QueryFacts {
  modelId?: string
  /** Subproblems dispatched through the engine. */
  dispatches?: number
  /** A check answered whole from the cross-request cache. */
  cacheHit?: boolean
}

/**
 * One request's telemetry: its id, trace context and the query it runs. Created by the
 * middleware; the query routes call `beginQuery` before their service call and `endQuery` with
 * its result. A query still open when its handler threw is ended as an error by the middleware.
 */
export class RequestObservation {
  readonly requestId: string
  readonly started = performance.now()
  /** The trace this request belongs to: its span's, or the incoming traceparent's. */
  traceId: string | undefined
  /** The request's server span (tracing on). */
  span: Span | undefined
  /** The context a child span of this request starts from (tracing on). */
  context: TraceContext | undefined
  readonly #o: ObserveOptions
  #query: QueryKind | undefined
  #queryStarted = 0
  #querySpan: Span | undefined

  constructor(options: ObserveOptions, requestId: string) {
    this.#o = options
    this.requestId = requestId
  }

  /**
   * beginQuery starts timing this request's query, and its span as a child of the request's.
   * `object` is an object (`document:1`) or a type; only its type is recorded.
   */
  beginQuery(kind: QueryKind, storeId: string, relation?: string, object?: string): void {
    this.#query = kind
    this.#queryStarted = performance.now()
    const tracing = this.#o.tracing
    if (!tracing || !this.context) return
    const attributes: Attributes = { 'pemba.store_id': storeId }
    if (relation) attributes['pemba.relation'] = relation
    if (object) attributes['pemba.object_type'] = object.includes(':') ? object.slice(0, object.indexOf(':')) : object
    this.#querySpan = tracing.tracer.startSpan(`pemba.${kind}`, { kind: SpanKind.INTERNAL, attributes }, this.context)
  }

  /** endQuery reports the query begun: its outcome, latency and what the engine did. */
  endQuery(outcome: QueryObservation['outcome'], facts?: QueryFacts, resultCount?: number, error?: unknown): void {
    const kind = this.#query
    if (kind === undefined) return
    this.#query = undefined
    const seconds = (performance.now() - this.#queryStarted) / 1000
    this.#o.metrics?.observeQuery({ kind, outcome, seconds, dispatches: facts?.dispatches, cacheHit: facts?.cacheHit })
    const span = this.#querySpan
    if (!span) return
    this.#querySpan = undefined
    if (facts?.modelId) span.setAttribute('pemba.model_id', facts.modelId)
    if (facts?.dispatches !== undefined) span.setAttribute('pemba.dispatch_count', facts.dispatches)
    if (facts?.cacheHit !== undefined) span.setAttribute('pemba.cache_hit', facts.cacheHit)
    if (outcome === 'allowed' || outcome === 'denied') span.setAttribute('pemba.allowed', outcome === 'allowed')
    if (resultCount !== undefined) span.setAttribute('pemba.result_count', resultCount)
    if (outcome === 'error') {
      // The error's code, never its message (which may quote the request).
      span.setAttribute(ATTR_ERROR_TYPE, error instanceof PembaError ? error.code : 'internal_error')
      span.setStatus({ code: SpanStatusCode.ERROR })
    }
    span.end()
  }

  /** failQuery ends a query whose handler threw. */
  failQuery(error: unknown): void {
    if (this.#query !== undefined) this.endQuery('error', undefined, undefined, error)
  }
}
