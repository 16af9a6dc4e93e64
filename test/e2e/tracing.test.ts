/**
 * OpenTelemetry end to end: a real server with tracing turned on by OTEL_EXPORTER_OTLP_ENDPOINT
 * exports to an OTLP/HTTP receiver running in the test (node:http, JSON), and the spans that
 * arrive are checked: the request's server span is the child of the incoming traceparent, each
 * query's span the child of its request's, with the query's attributes; the access log carries
 * the same trace id. Then the configuration: off without an endpoint, or when disabled, and
 * refused values name their variable.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TracingConfigError, tracingFromEnv } from '../../src/telemetry/tracing.ts'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { accessLineFor, servePemba, type ServedPemba } from '../helpers/http-server.ts'

/** One span as OTLP/JSON carries it, with its resource's attributes. */
interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Record<string, unknown>
  status?: { code?: number }
  resource: Record<string, unknown>
}

/** OTLP's AnyValue → a plain value. */
function anyValue(v: Record<string, unknown>): unknown {
  if ('stringValue' in v) return v.stringValue
  if ('boolValue' in v) return v.boolValue
  if ('intValue' in v) return Number(v.intValue)
  if ('doubleValue' in v) return v.doubleValue
  return v
}

function attributes(list: { key: string; value: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, anyValue(a.value)]))
}

let receiver: Server
let receiverUrl: string
const received: ReceivedSpan[] = []
const requests: { path: string; contentType: string | undefined; headers: Record<string, unknown> }[] = []
let s: ServedPemba
let store: string
let modelId: string

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c'
const PARENT_SPAN_ID = 'b7ad6b7169203331'

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (d: string) => (body += d))
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: req.headers['content-type'], headers: req.headers })
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      const payload = JSON.parse(body) as {
        resourceSpans: { resource: { attributes: never }; scopeSpans: { spans: (Omit<ReceivedSpan, 'attributes' | 'resource'> & { attributes: never })[] }[] }[]
      }
      for (const rs of payload.resourceSpans) {
        const resource = attributes(rs.resource.attributes)
        for (const ss of rs.scopeSpans) {
          for (const span of ss.spans) received.push({ ...span, attributes: attributes(span.attributes), resource })
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
  s = await servePemba({}, {
    otelEnv: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-tenant=pemba-tests',
      OTEL_SERVICE_NAME: 'pemba-under-test',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,service.namespace=authz',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    },
  })
  store = (await post('/stores', { name: 'traced' })).body.id
  modelId = (await post(`/stores/${store}/authorization-models`, SMALL_MODEL)).body.authorization_model_id
  await post(`/stores/${store}/write`, { writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'document:1' }] } })
})

afterAll(async () => {
  await s?.close()
  await new Promise<void>((resolve) => receiver.close(() => resolve()))
})

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(s.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, requestId: res.headers.get('x-request-id')!, body: text ? JSON.parse(text) : undefined }
}

/** The spans of one trace, once `count` of them have arrived. */
async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
  await s.pemba.tracing!.forceFlush()
  for (let i = 0; i < 200; i++) {
    const spans = received.filter((r) => r.traceId === traceId)
    if (spans.length >= count) return spans
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`trace ${traceId}: ${received.filter((r) => r.traceId === traceId).length} spans arrived, expected ${count}`)
}

/** The request span of a request, found by its request id. */
async function requestSpan(requestId: string, count = 2): Promise<{ server: ReceivedSpan; spans: ReceivedSpan[] }> {
  for (let i = 0; i < 200; i++) {
    await s.pemba.tracing!.forceFlush()
    const server = received.find((r) => r.attributes['pemba.request_id'] === requestId)
    if (server) return { server, spans: await spansOf(server.traceId, count) }
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`no span for request ${requestId}`)
}

const SERVER = 2 // OTLP's SPAN_KIND_SERVER
const INTERNAL = 1
const STATUS_ERROR = 2

describe('spans exported over OTLP/HTTP', () => {
  it("a check: the request span is the incoming traceparent's child, the check span the request span's", async () => {
    const check = { authorization_model_id: modelId, tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' } }
    const r = await post(`/stores/${store}/check`, check, { traceparent: `00-${TRACE_ID}-${PARENT_SPAN_ID}-01`, tracestate: 'vendor=x' })
    expect(r.status).toBe(200)
    expect(r.body.allowed).toBe(true)
    const spans = await spansOf(TRACE_ID, 2)
    const server = spans.find((x) => x.kind === SERVER)!
    const checkSpan = spans.find((x) => x.name === 'pemba.check')!
    expect(server).toMatchObject({ name: 'POST /stores/:store/check', parentSpanId: PARENT_SPAN_ID, traceId: TRACE_ID })
    expect(server.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/stores/:store/check',
      'http.response.status_code': 200,
      'pemba.store_id': store,
      'pemba.request_id': r.requestId,
    })
    expect(checkSpan).toMatchObject({ kind: INTERNAL, traceId: TRACE_ID, parentSpanId: server.spanId })
    expect(checkSpan.attributes).toEqual({
      'pemba.store_id': store,
      'pemba.model_id': modelId,
      'pemba.relation': 'viewer',
      'pemba.object_type': 'document',
      'pemba.dispatch_count': expect.any(Number),
      'pemba.cache_hit': false,
      'pemba.allowed': true,
    })
    expect(checkSpan.attributes['pemba.dispatch_count']).toBeGreaterThanOrEqual(1)
    expect(server.resource).toMatchObject({
      'service.name': 'pemba-under-test',
      'deployment.environment': 'test',
      'service.namespace': 'authz',
      'telemetry.sdk.language': 'nodejs',
    })
    // The access log line carries the same trace id.
    expect(await accessLineFor(s, r.requestId)).toMatchObject({ trace_id: TRACE_ID, route: '/stores/:store/check' })
    // The exporter sent JSON to /v1/traces with the configured headers.
    const sent = requests.find((q) => q.path === '/v1/traces')!
    expect(sent.contentType).toBe('application/json')
    expect(sent.headers['x-collector-tenant']).toBe('pemba-tests')

    // The same check again is answered from the cross-request cache, without the engine.
    const again = await post(`/stores/${store}/check`, check)
    const { spans: second } = await requestSpan(again.requestId)
    const cached = second.find((x) => x.name === 'pemba.check')!
    expect(cached.attributes).toMatchObject({ 'pemba.cache_hit': true, 'pemba.dispatch_count': 0, 'pemba.allowed': true })
  })

  it('without a traceparent the request span starts a new trace; a denied check says so', async () => {
    const r = await post(`/stores/${store}/check`, { tuple_key: { user: 'user:bob', relation: 'viewer', object: 'document:1' } })
    expect(r.body.allowed).toBe(false)
    const { server, spans } = await requestSpan(r.requestId)
    expect(server.parentSpanId ?? '').toBe('')
    expect(server.traceId).not.toBe(TRACE_ID)
    expect(spans.find((x) => x.name === 'pemba.check')!.attributes).toMatchObject({ 'pemba.allowed': false, 'pemba.cache_hit': false })
    expect((await accessLineFor(s, r.requestId)).trace_id).toBe(server.traceId)
  })

  it('list objects, list users, expand, batch check, write and read each have their span under the request', async () => {
    const cases: [string, unknown, string, Record<string, unknown>][] = [
      [`/stores/${store}/list-objects`, { type: 'document', relation: 'viewer', user: 'user:anne' }, 'pemba.list_objects', { 'pemba.object_type': 'document', 'pemba.relation': 'viewer', 'pemba.result_count': 1 }],
      [`/stores/${store}/list-users`, { object: { type: 'document', id: '1' }, relation: 'viewer', user_filters: [{ type: 'user' }] }, 'pemba.list_users', { 'pemba.object_type': 'document', 'pemba.result_count': 1 }],
      [`/stores/${store}/expand`, { tuple_key: { relation: 'viewer', object: 'document:1' } }, 'pemba.expand', { 'pemba.object_type': 'document', 'pemba.model_id': modelId }],
      [`/stores/${store}/batch-check`, { checks: [{ tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' }, correlation_id: 'a' }] }, 'pemba.batch_check', { 'pemba.result_count': 1 }],
      [`/stores/${store}/write`, { writes: { tuple_keys: [{ user: 'user:carl', relation: 'viewer', object: 'document:2' }] } }, 'pemba.write', { 'pemba.result_count': 1, 'pemba.model_id': modelId }],
      [`/stores/${store}/read`, { tuple_key: { object: 'document:1' } }, 'pemba.read', { 'pemba.object_type': 'document', 'pemba.result_count': 1 }],
    ]
    for (const [path, body, name, attrs] of cases) {
      const r = await post(path, body)
      expect(r.status, path).toBe(200)
      const { server, spans } = await requestSpan(r.requestId)
      const child = spans.find((x) => x.name === name)
      expect(child, name).toBeDefined()
      expect(child!.parentSpanId).toBe(server.spanId)
      expect(child!.attributes).toMatchObject({ 'pemba.store_id': store, ...attrs })
      if (name === 'pemba.list_objects' || name === 'pemba.list_users') expect(child!.attributes['pemba.dispatch_count']).toBeTypeOf('number')
    }
  })

  it('a failed query: its span has error status and the error code, never the message', async () => {
    const r = await post(`/stores/${store}/check`, { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'folder:secret-name' } })
    expect(r.status).toBe(400)
    const { server, spans } = await requestSpan(r.requestId)
    const failed = spans.find((x) => x.name === 'pemba.check')!
    expect(failed.status?.code).toBe(STATUS_ERROR)
    expect(failed.attributes['error.type']).toBe(r.body.code)
    expect(JSON.stringify(failed)).not.toContain('secret-name')
    expect(server.attributes['http.response.status_code']).toBe(400)
  })

  it('requests that reach no handler get a span named by their method only', async () => {
    const res = await fetch(`${s.url}/no/such/path`)
    expect(res.status).toBe(404)
    const { server } = await requestSpan(res.headers.get('x-request-id')!, 1)
    expect(server.name).toBe('GET')
    expect(server.attributes['http.route']).toBeUndefined()
  })
})

describe('tracing configuration (the OTel environment variables)', () => {
  it('off without an endpoint, with OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none', () => {
    expect(tracingFromEnv({})).toBeUndefined()
    expect(tracingFromEnv({ OTEL_SERVICE_NAME: 'x' })).toBeUndefined()
    expect(tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' })).toBeUndefined()
    expect(tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined()
  })

  it('the endpoint: /v1/traces appended to the base, the traces endpoint used as is', async () => {
    const base = tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })!
    expect(base.endpoint).toBe('http://collector:4318/v1/traces')
    const own = tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' })!
    expect(own.endpoint).toBe('http://b:4318/custom')
    await base.shutdown()
    await own.shutdown()
  })

  it('values Pemba cannot honour are refused, naming the variable', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }
    const refused: [Record<string, string>, RegExp][] = [
      [{ ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }, /OTEL_EXPORTER_OTLP_PROTOCOL=http\/protobuf/],
      [{ ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc/],
      [{ ...on, OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER=zipkin/],
      [{ ...on, OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER=sometimes/],
      [{ ...on, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, /OTEL_TRACES_SAMPLER_ARG/],
      [{ ...on, OTEL_BSP_SCHEDULE_DELAY: 'soon' }, /OTEL_BSP_SCHEDULE_DELAY/],
      [{ ...on, OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }, /OTEL_EXPORTER_OTLP_COMPRESSION=zstd/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT/],
      [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' }, /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not a URL/],
    ]
    for (const [env, message] of refused) {
      expect(() => tracingFromEnv(env), JSON.stringify(env)).toThrow(TracingConfigError)
      expect(() => tracingFromEnv(env)).toThrow(message)
    }
  })
})
