/**
 * OpenTelemetry tracing, on only when an OTLP endpoint is configured: a span per HTTP request
 * (src/api/observe.ts) and a child span per query, exported over OTLP/HTTP (JSON) in batches.
 *
 * Configured from the standard OTel environment variables, read from the environment the caller
 * passes in (the CLI passes `process.env`), never from globals: `OTEL_EXPORTER_OTLP_ENDPOINT`
 * (`/v1/traces` is appended) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) turns it on;
 * `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps it off. `OTEL_SERVICE_NAME`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`, `_TIMEOUT`, `_COMPRESSION`,
 * `_PROTOCOL` (only `http/json`), `OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*` mean what the
 * specification says. A value Pemba cannot honour stops the start with a message naming it.
 *
 * Nothing is registered globally (no global tracer provider, context manager or propagator):
 * the tracer and the W3C propagator are handed to the HTTP layer, which keeps each request's
 * context itself (`c.var.observation`) and starts child spans with that context explicitly.
 * Off, there is no Tracing object at all, and the request path checks one field.
 *
 * @module
 */
import { ROOT_CONTEXT, type Context, type Tracer } from '@opentelemetry/api'
import { ExportResultCode, W3CTraceContextPropagator, parseKeyPairsIntoRecord, type ExportResult } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'

export type Env = Record<string, string | undefined>

/** A refused OTel setting: the message names the variable. */
export class TracingConfigError extends Error {
  override name = 'TracingConfigError'
}

/** What the HTTP layer needs to trace requests; absent when tracing is off. */
export interface Tracing {
  readonly tracer: Tracer
  /** Reads `traceparent`/`tracestate` into a parent context (no global propagator). */
  readonly propagator: W3CTraceContextPropagator
  /** The context requests without a parent start from. */
  readonly root: Context
  /** Where spans go (the traces endpoint's URL), for the start-up log line. */
  readonly endpoint: string
  /** Exports the spans still waiting. */
  forceFlush(): Promise<void>
  /** Exports what waits and stops the exporter; Pemba.close() calls it. */
  shutdown(): Promise<void>
}

export interface TracingOptions {
  /** The service's version (resource attribute `service.version`). */
  version?: string
  /** Called when a batch of spans cannot be exported (at most once a minute, with the count dropped since). */
  onExportError?: (err: Error | undefined, droppedSpans: number) => void
}

/**
 * tracingFromEnv builds the tracer when the environment asks for it, and returns undefined
 * when tracing is off (no endpoint, `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
 * Throws TracingConfigError on a value it cannot honour.
 */
export function tracingFromEnv(env: Env, options: TracingOptions = {}): Tracing | undefined {
  const endpoint = tracesEndpoint(env)
  if (!endpoint) return undefined
  if (flag(env, 'OTEL_SDK_DISABLED')) return undefined
  const exporters = (env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((s) => s.trim()).filter(Boolean)
  if (exporters.includes('none')) return undefined
  const unsupported = exporters.filter((e) => e !== 'otlp')
  if (unsupported.length) {
    throw new TracingConfigError(`OTEL_TRACES_EXPORTER=${unsupported.join(',')} is not supported: Pemba exports traces over OTLP/HTTP only (otlp or none)`)
  }
  const protocol = signal(env, 'PROTOCOL')
  if (protocol !== undefined && protocol.value !== 'http/json') {
    throw new TracingConfigError(
      `${protocol.name}=${protocol.value} is not supported: Pemba sends OTLP/HTTP with JSON (set it to http/json or leave it unset)`,
    )
  }
  const compression = signal(env, 'COMPRESSION')
  if (compression !== undefined && compression.value !== 'gzip' && compression.value !== 'none') {
    throw new TracingConfigError(`${compression.name}=${compression.value} is not supported (gzip or none)`)
  }
  const timeout = signal(env, 'TIMEOUT')
  const exporter = new OTLPTraceExporter({
    url: endpoint,
    headers: {
      ...parseKeyPairsIntoRecord(env.OTEL_EXPORTER_OTLP_HEADERS),
      ...parseKeyPairsIntoRecord(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS),
    },
    ...(timeout ? { timeoutMillis: positiveInt(timeout.name, timeout.value) } : {}),
    ...(compression ? { compression: compression.value as never } : {}),
  })
  const provider = new BasicTracerProvider({
    resource: resource(env, options.version),
    sampler: sampler(env),
    spanProcessors: [
      new BatchSpanProcessor(reportingFailures(exporter, options.onExportError), {
        maxQueueSize: optionalInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048,
        maxExportBatchSize: optionalInt(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? 512,
        scheduledDelayMillis: optionalInt(env, 'OTEL_BSP_SCHEDULE_DELAY') ?? 5000,
        exportTimeoutMillis: optionalInt(env, 'OTEL_BSP_EXPORT_TIMEOUT') ?? 30_000,
      }),
    ],
  })
  return {
    tracer: provider.getTracer('pemba', options.version),
    propagator: new W3CTraceContextPropagator(),
    root: ROOT_CONTEXT,
    endpoint,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  }
}

/** The traces URL: the signal's own endpoint as given, or the base endpoint plus `/v1/traces`. */
function tracesEndpoint(env: Env): string | undefined {
  const own = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()
  const [name, url] = own ? ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', own] : base ? ['OTEL_EXPORTER_OTLP_ENDPOINT', base.replace(/\/+$/, '') + '/v1/traces'] : []
  if (!name || !url) return undefined
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TracingConfigError(`${name} is not a URL: ${url}`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TracingConfigError(`${name} must be an http:// or https:// URL (OTLP/HTTP), not ${parsed.protocol}`)
  }
  return url
}

/** A setting with its per-signal override: `OTEL_EXPORTER_OTLP_TRACES_<X>`, else `OTEL_EXPORTER_OTLP_<X>`. */
function signal(env: Env, suffix: string): { name: string; value: string } | undefined {
  for (const name of [`OTEL_EXPORTER_OTLP_TRACES_${suffix}`, `OTEL_EXPORTER_OTLP_${suffix}`]) {
    const value = env[name]?.trim()
    if (value) return { name, value }
  }
  return undefined
}

function flag(env: Env, name: string): boolean {
  return env[name]?.trim().toLowerCase() === 'true'
}

function positiveInt(name: string, value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new TracingConfigError(`${name} must be a positive whole number, not '${value}'`)
  return n
}

function optionalInt(env: Env, name: string): number | undefined {
  const v = env[name]?.trim()
  return v ? positiveInt(name, v) : undefined
}

/** The resource: the SDK's defaults, `OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME` (or `pemba`). */
function resource(env: Env, version: string | undefined) {
  const attributes: Record<string, string> = parseKeyPairsIntoRecord(env.OTEL_RESOURCE_ATTRIBUTES)
  const name = env.OTEL_SERVICE_NAME?.trim() || attributes[ATTR_SERVICE_NAME] || 'pemba'
  return defaultResource().merge(
    resourceFromAttributes({
      ...(version ? { [ATTR_SERVICE_VERSION]: version } : {}),
      ...attributes,
      [ATTR_SERVICE_NAME]: name,
    }),
  )
}

/** `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`) and its `_ARG` ratio. */
function sampler(env: Env): Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim() || 'parentbased_always_on'
  const ratio = () => {
    const raw = env.OTEL_TRACES_SAMPLER_ARG?.trim()
    if (!raw) return 1
    const r = Number(raw)
    if (!Number.isFinite(r) || r < 0 || r > 1) throw new TracingConfigError(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not '${raw}'`)
    return r
  }
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler()
    case 'always_off':
      return new AlwaysOffSampler()
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio())
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) })
    default:
      throw new TracingConfigError(
        `OTEL_TRACES_SAMPLER=${name} is not supported (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)`,
      )
  }
}

/** The time between two reports of failed exports, so an unreachable collector is one line a minute. */
const EXPORT_ERROR_INTERVAL_MS = 60_000

/**
 * reportingFailures wraps the exporter so that a failed export is reported (the SDK itself only
 * tells its global diagnostic logger, which Pemba does not install).
 */
function reportingFailures(inner: SpanExporter, onError: TracingOptions['onExportError']): SpanExporter {
  if (!onError) return inner
  let lastReport = 0
  let dropped = 0
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      inner.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) {
          dropped += spans.length
          const now = Date.now()
          if (now - lastReport >= EXPORT_ERROR_INTERVAL_MS) {
            lastReport = now
            onError(result.error, dropped)
            dropped = 0
          }
        }
        done(result)
      })
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  }
}
