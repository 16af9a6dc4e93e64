/**
 * Property-based fuzzing of the HTTP API, in-process (the real app over an in-memory SQLite
 * store). For every endpoint of the route table (src/api/route-table.ts) it
 * sends garbage (arbitrary JSON values, text, invalid UTF-8 bytes, deep nesting, huge strings,
 * random query strings and path segments) and near-valid payloads (a valid request with one
 * field removed or replaced by a wrong type or a boundary value), and checks:
 *
 * - never a 5xx, and nothing reaches the internal-error logger;
 * - every 4xx is JSON with exactly `{code, message}`, both strings; on the routes of AuthZEN's
 *   Access Request and Approval profile, a refusal is `application/problem+json` with its
 *   `type` (the profile's URN, §5.7, or `about:blank`), `title`, `status` and `detail`;
 * - when the answer is an error, nothing stored changed: stores, models, tuples (read), the
 *   change feed, assertions and access requests are compared before and after.
 *
 * fast-check prints the seed and the shrunk counterexample on failure; rerun one with
 * PEMBA_FUZZ_SEED=<seed>. PEMBA_FUZZ_RUNS scales the number of runs (default keeps the file
 * well under a minute on a 2-core machine).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { transformer } from '@openfga/syntax-transformer'
import fc from 'fast-check'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROUTES as ROUTE_TABLE } from '../../src/api/route-table.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const RUNS = Number(process.env.PEMBA_FUZZ_RUNS ?? 2)
// A fixed seed by default, so CI runs the same cases every time; PEMBA_FUZZ_SEED=<n> replays a
// failure, PEMBA_FUZZ_SEED=random explores new cases (fast-check prints the seed it used).
const SEED_SETTING = process.env.PEMBA_FUZZ_SEED ?? '20261129'
const SEED = SEED_SETTING === 'random' ? undefined : Number(SEED_SETTING)
const runs = (n: number) => ({ numRuns: Math.max(1, Math.round(n * RUNS)), ...(SEED === undefined ? {} : { seed: SEED }) })

const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type team
  relations
    define member: [user, agent, team#member]
type doc
  relations
    define owner: [user]
    define blocked: [user]
    define viewer: [user, user:*, team#member, user with in_region] or owner
    define can_read: viewer but not blocked
    define viewer_approver: [user, team#member]
condition in_region(region: string, allowed: list<string>) {
  region in allowed
}
`

const TUPLES = [
  'doc:1#owner@user:anne',
  'team:a#member@user:bob',
  'team:a#member@agent:helper',
  'doc:1#viewer@team:a#member',
  'doc:2#viewer@user:*',
  'doc:1#blocked@user:eve',
  'doc:1#viewer_approver@user:rita',
  'doc:2#viewer_approver@user:rita',
  'doc:3#viewer_approver@user:rita',
  'doc:4#viewer_approver@user:rita',
  'user:anne#acts_for@agent:helper',
]

/** One request as the fuzzer sends it. `body` is sent as it is (text or bytes). */
interface Req {
  method: string
  path: string
  body?: string | Uint8Array
  contentType?: string
  /** Extra request headers (the gateway's original method, path and the end user's token). */
  headers?: Record<string, string>
}

interface State {
  storeId: string
  modelId: string
  requestId: string
  /** An AuthZEN access request's task (ARAP), pending. */
  taskId: string
  /** A requestable denial (`doc:5#viewer@user:dave`) not submitted yet. */
  denial: { expires_at: string; binding_token: string }
  /** A token of the store's issuer for `user:anne` (the gateway's end user). */
  token: string
}

/** The gateway's routes: `/docs/{docId}` asks `viewer` on `doc:{docId}`; `/files/…` any method. */
const GATEWAY_ROUTES = `routes:
  - template: /docs/{docId}
    methods: [GET]
    resource: {type: doc, id: "{docId}"}
    action: viewer
  - template: /files/{path*}
    resource: {type: doc, id: "{path}"}
    action: can_read
`
const ISSUER = 'https://issuer.fuzz'

/** The question of the ARAP denials: `user:dave` may not view doc:5, and may ask to. */
const DAVE_VIEWS_DOC5 = { subject: { type: 'user', id: 'dave' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '5' } }
/** What a search or evaluation shares: properties, context, and Pemba's options. */
const AUTHZEN_CONTEXT = { region: 'eu', pemba: { consistency: 'HIGHER_CONSISTENCY', contextual_tuples: [tupleKey('doc:7#viewer@user:anne')] } }

/**
 * The valid requests, one per endpoint, that near-valid payloads are mutated from. `json` is
 * the body before serialisation. DELETE /stores/{id} appears only with ids that are not the
 * fuzzed store's (deleting it is a success, and every later request would be a 404).
 */
function validRequests(s: State): { method: string; path: string; json?: unknown; query?: Record<string, string>; headers?: Record<string, string> }[] {
  const tk = (t: string) => tupleKey(t)
  // The same model again: writing it makes it the latest, and every request still fits.
  const model = transformer.transformDSLToJSONObject(MODEL)
  return [
    { method: 'POST', path: '/stores', json: { name: 'fuzzed-store' } },
    { method: 'GET', path: '/stores', query: { page_size: '10', name: 'x' } },
    { method: 'GET', path: `/stores/${s.storeId}` },
    { method: 'GET', path: `/stores/${s.storeId}/summary` },
    { method: 'POST', path: '/models/validate', json: { dsl: MODEL } },
    { method: 'POST', path: '/models/dsl', json: { authorization_model: model } },
    { method: 'GET', path: '/console/stores/x/tuples', query: { relation: 'viewer', user: 'user:anne' } },
    { method: 'POST', path: `/stores/${s.storeId}/authorization-models`, json: model },
    { method: 'GET', path: `/stores/${s.storeId}/authorization-models`, query: { page_size: '5' } },
    { method: 'GET', path: `/stores/${s.storeId}/authorization-models/${s.modelId}` },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/write`,
      json: {
        writes: {
          tuple_keys: [
            { ...tk('doc:9#viewer@user:zed'), condition: { name: 'in_region', context: { allowed: ['eu'] } } },
            { ...tk('doc:9#owner@user:zed'), expires_at: '2999-01-01T00:00:00Z' },
          ],
          on_duplicate: 'ignore',
        },
        deletes: { tuple_keys: [tk('doc:8#owner@user:nobody')], on_missing: 'ignore' },
        authorization_model_id: s.modelId,
      },
    },
    { method: 'POST', path: `/stores/${s.storeId}/read`, json: { tuple_key: { object: 'doc:1', relation: 'viewer', user: 'team:a#member' }, page_size: 10, continuation_token: '' } },
    { method: 'GET', path: `/stores/${s.storeId}/changes`, query: { type: 'doc', page_size: '10', start_time: '2020-01-01T00:00:00Z' } },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/check`,
      json: {
        tuple_key: tk('doc:1#can_read@agent:helper'),
        contextual_tuples: { tuple_keys: [tk('team:b#member@user:carl')] },
        context: { region: 'eu' },
        authorization_model_id: s.modelId,
        consistency: 'HIGHER_CONSISTENCY',
        on_behalf_of: ['user:anne'],
      },
    },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/batch-check`,
      json: {
        checks: [
          { tuple_key: tk('doc:1#viewer@user:bob'), correlation_id: 'a' },
          { tuple_key: tk('doc:2#viewer@user:x'), context: { region: 'us' }, correlation_id: 'b', contextual_tuples: { tuple_keys: [] } },
        ],
        authorization_model_id: s.modelId,
      },
    },
    { method: 'POST', path: `/stores/${s.storeId}/expand`, json: { tuple_key: { object: 'doc:1', relation: 'viewer' }, consistency: 'MINIMIZE_LATENCY' } },
    { method: 'POST', path: `/stores/${s.storeId}/list-objects`, json: { type: 'doc', relation: 'viewer', user: 'user:bob', context: { region: 'eu' }, contextual_tuples: { tuple_keys: [] } } },
    { method: 'POST', path: `/stores/${s.storeId}/streamed-list-objects`, json: { type: 'doc', relation: 'can_read', user: 'agent:helper', on_behalf_of: 'user:anne' } },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/list-users`,
      json: { object: { type: 'doc', id: '1' }, relation: 'viewer', user_filters: [{ type: 'team', relation: 'member' }], contextual_tuples: [], context: {} },
    },
    {
      method: 'PUT',
      path: `/stores/${s.storeId}/assertions/${s.modelId}`,
      json: { assertions: [{ tuple_key: tk('doc:1#viewer@user:anne'), expectation: true, contextual_tuples: [], context: { region: 'eu' } }] },
    },
    { method: 'GET', path: `/stores/${s.storeId}/assertions/${s.modelId}` },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access-requests`,
      json: { tuple_key: tk('doc:1#viewer@user:dave'), duration: 'PT1H', reason: 'fuzzing', requested_by: 'user:dave' },
    },
    { method: 'GET', path: `/stores/${s.storeId}/access-requests`, query: { status: 'pending', page_size: '10' } },
    { method: 'GET', path: `/stores/${s.storeId}/access-requests/${s.requestId}` },
    { method: 'POST', path: `/stores/${s.storeId}/access-requests/${s.requestId}/approve`, json: { approver: 'user:rita', reason: 'ok' } },
    { method: 'POST', path: `/stores/${s.storeId}/access-requests/${s.requestId}/deny`, json: { approver: 'user:rita', reason: 'no' } },
    { method: 'GET', path: '/healthz' },
    { method: 'GET', path: '/metrics' },
    // AuthZEN (docs/authzen.md)
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access/v1/evaluation`,
      json: {
        subject: { type: 'agent', id: 'helper', properties: { tier: 'gold' } },
        action: { name: 'can_read', properties: { via: 'api' } },
        resource: { type: 'doc', id: '1', properties: { allowed: ['eu'] } },
        context: { ...AUTHZEN_CONTEXT, pemba: { ...AUTHZEN_CONTEXT.pemba, explain: true } },
      },
    },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access/v1/evaluations`,
      json: {
        subject: { type: 'user', id: 'bob' },
        action: { name: 'viewer' },
        context: AUTHZEN_CONTEXT,
        evaluations: [{ resource: { type: 'doc', id: '1' } }, { resource: { type: 'doc', id: '2' }, action: { name: 'can_read' } }, { resource: { type: 'doc', id: '3' }, subject: { type: 'user', id: 'eve' } }],
        options: { evaluations_semantic: 'deny_on_first_deny' },
      },
    },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access/v1/search/subject`,
      json: { subject: { type: 'user' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '1' }, context: AUTHZEN_CONTEXT, page: { limit: 1 } },
    },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access/v1/search/resource`,
      json: { subject: { type: 'user', id: 'anne' }, action: { name: 'can_read' }, resource: { type: 'doc' }, context: AUTHZEN_CONTEXT, page: { limit: 2 } },
    },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access/v1/search/action`,
      json: { subject: { type: 'user', id: 'anne' }, resource: { type: 'doc', id: '1' }, context: { region: 'eu' }, page: { limit: 5 } },
    },
    {
      method: 'POST',
      path: `/stores/${s.storeId}/access/v1/requests`,
      json: { ...DAVE_VIEWS_DOC5, denial: s.denial, requested_access: { requested_until: '2999-01-01T00:00:00Z' }, context: { justification: 'fuzzing' } },
    },
    { method: 'GET', path: `/stores/${s.storeId}/access/v1/requests/${s.taskId}` },
    { method: 'POST', path: `/stores/${s.storeId}/access/v1/requests/${s.taskId}/cancel`, json: { reason: 'fuzzed', comment: 'done' } },
    { method: 'GET', path: `/stores/${s.storeId}/access/v1/jwks` },
    { method: 'GET', path: `/.well-known/authzen-configuration/${s.storeId}` },
    { method: 'GET', path: `/.well-known/authzen-configuration/stores/${s.storeId}` },
    // The gateway decision: nginx's form (headers) and Envoy's (the path); anyone may view doc:2.
    {
      method: 'GET',
      path: `/stores/${s.storeId}/gateway/authorize`,
      headers: { authorization: `Bearer ${s.token}`, 'x-original-method': 'GET', 'x-original-uri': '/docs/2?x=1' },
    },
    { method: 'GET', path: `/stores/${s.storeId}/gateway/authorize/docs/2`, headers: { authorization: `Bearer ${s.token}` } },
  ]
}

/**
 * Path templates for garbage: every endpoint of the route table (src/api/route-table.ts), but
 * DELETE /stores/:store (fuzzed on its own below, with ids that are not the fuzzed store's),
 * then wrong methods on known paths and an unknown path.
 */
const ROUTES: [string, string][] = [
  ...ROUTE_TABLE.filter((r) => !(r.method === 'DELETE' && r.path === '/stores/:store')).flatMap((r): [string, string][] =>
    // Any method (the gateway): a read and a write.
    r.method === 'ALL' ? [['GET', r.path], ['POST', r.path]] : [[r.method, r.path]],
  ),
  ['PATCH', '/stores/:store/check'],
  ['DELETE', '/stores/:store/write'],
  ['POST', '/nope/:store'],
]

/** A token issuer name for `:name` (none is configured, so every request about it is refused). */
const ISSUER_NAME = 'fuzz-issuer'

/**
 * fill puts ids into a template: `:store` the fuzzed store (or `store`), the other parameter
 * (`:model`, `:id`, `:name`, `:task`) the fuzzed model, access request, issuer name or ARAP task
 * (or `id`). A template without a second parameter gets `id` appended when one is given.
 */
function fill(template: string, s: State, ids: { store?: string; id?: string } = {}): string {
  let second = false
  const path = template.replace(':store', ids.store ?? s.storeId).replace(/:(model|id|name|task)\b/, (_m, p: string) => {
    second = true
    if (ids.id !== undefined) return ids.id
    if (p === 'task') return s.taskId
    return p === 'name' ? ISSUER_NAME : template.includes('/access-requests/') ? s.requestId : s.modelId
  })
  // The gateway's original path (Envoy's form).
  if (path.endsWith('/*')) return `${path.slice(0, -1)}${ids.id ?? 'docs/2'}`
  return !second && ids.id !== undefined ? `${path}/${ids.id}` : path
}

// --- arbitraries -------------------------------------------------------------------------

const BOUNDARY_STRINGS = [
  '', ' ', '\t', ':', '#', '@', '*', 'user:', ':anne', 'user:*', 'user:anne#', 'user:anne#member', 'team:a#member',
  'doc:1#viewer@user:anne', 'a'.repeat(51), 'a'.repeat(257), 'a'.repeat(513), 'x'.repeat(70_000), '\u0000', '\ud800',
  '\u202e', '😀', 'PT0S', 'P1000Y', '-PT1H', 'PT', 'HIGHER_CONSISTENCY', 'UNSPECIFIED', '01ARZ3NDEKTSV4RRFFQ69G5FAV',
  '2999-01-01T00:00:00Z', '1970-01-01T00:00:00Z', 'not a time', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
]
const BOUNDARY_NUMBERS = [0, -1, 1, 100, 101, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5, 200]

const boundary: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...BOUNDARY_STRINGS),
  fc.constantFrom(...BOUNDARY_NUMBERS),
  fc.constantFrom(null, true, false, [], {}, [[[[]]]], { '': '' }, ['user:anne'], { name: 'c' }),
)
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(boundary, fc.jsonValue({ maxDepth: 3 }), fc.string({ unit: 'binary', maxLength: 40 }))

type Mutation = { kind: 'remove' } | { kind: 'replace'; value: unknown } | { kind: 'add'; key: string; value: unknown }
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant({ kind: 'remove' as const }),
  wrongValue.map((value) => ({ kind: 'replace' as const, value })),
  fc.record({ key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'tuple_key', 'user', 'context'), fc.string()), value: wrongValue }).map(
    ({ key, value }) => ({ kind: 'add' as const, key, value }),
  ),
)

/** Every position in a JSON value (objects' keys and arrays' indexes), the root included. */
function positions(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at)
  if (Array.isArray(v)) v.forEach((x, i) => positions(x, [...at, i], out))
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) positions(x, [...at, k], out)
  return out
}

/** mutate applies one mutation at one position of a deep copy of `v`. */
function mutate(v: unknown, at: (string | number)[], m: Mutation): unknown {
  const copy = structuredClone(v)
  if (at.length === 0) {
    if (m.kind === 'replace') return m.value
    if (m.kind === 'remove') return undefined
  }
  let parent: any = copy
  for (const k of at.slice(0, -1)) parent = parent[k]
  const last = at[at.length - 1]
  if (m.kind === 'remove') {
    if (Array.isArray(parent)) parent.splice(last as number, 1)
    else delete parent[last]
  } else if (m.kind === 'replace') {
    parent[last] = m.value
  } else {
    const target = at.length === 0 ? copy : parent[last]
    if (target && typeof target === 'object' && !Array.isArray(target)) {
      // defineProperty, so `__proto__` becomes an own key as JSON.parse would make it.
      Object.defineProperty(target, m.key, { value: m.value, enumerable: true, configurable: true, writable: true })
    } else if (Array.isArray(target)) {
      target.push(m.value)
    }
  }
  return copy
}

const garbageBody: fc.Arbitrary<{ body: string | Uint8Array; contentType?: string }> = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }).map((v) => ({ body: JSON.stringify(v) })),
  fc.string({ unit: 'binary', maxLength: 300 }).map((body) => ({ body })),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((body) => ({ body })),
  // Invalid UTF-8 inside otherwise well-formed JSON text.
  fc.uint8Array({ minLength: 1, maxLength: 20 }).map((bytes) => ({
    body: Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28, 0xff, ...bytes]), Buffer.from('"}')]),
  })),
  fc.integer({ min: 50, max: 200_000 }).chain((n) =>
    fc.constantFrom('[', '{"a":').map((open) => ({
      body: open === '[' ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '1' + '}'.repeat(n),
    })),
  ),
  fc.integer({ min: 10_000, max: 1_200_000 }).map((n) => ({ body: JSON.stringify({ name: 'x'.repeat(n), tuple_key: 'y'.repeat(n) }) })),
  fc.constantFrom('{', '{"a":1,}', 'null', '"str"', '[]', '1e999', '{"__proto__":{"polluted":true}}', '\ufeff{}', ' ').map((body) => ({ body })),
  // Text the DSL parser has to read.
  fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.integer({ min: 1, max: 3000 }).map((n) => `model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define v: ${'('.repeat(n)}[user]${')'.repeat(n)}\n`),
    fc.constantFrom('model\n  schema 1.1\ntype user\n  relations\n    define x: y from z\n', 'model\n  schema 9.9\n', 'type user'),
  ).map((body) => ({ body, contentType: 'text/plain' })),
)

const contentType = fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'text/plain; charset=latin1', 'garbage/garbage')

const QUERY_KEYS = ['page_size', 'pageSize', 'continuation_token', 'continuationToken', 'type', 'start_time', 'startTime', 'status', 'name']
const queryValue = fc.oneof(
  fc.constantFrom('', '0', '-1', '100', '101', '1e3', 'NaN', 'Infinity', '0x10', ' 5', 'pending', 'eyJjIjoieCIsImsiOiJ4In0', 'doc', '2020-13-45T99:99:99Z'),
  fc.string({ unit: 'binary', maxLength: 30 }),
)
const randomQuery: fc.Arbitrary<string> = fc.oneof(
  fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 10 })), queryValue), { maxLength: 5 }).map((pairs) => {
    const q = new URLSearchParams()
    for (const [k, v] of pairs) q.append(k, v)
    return q.toString()
  }),
  // Raw text, with broken percent-escapes.
  fc.array(fc.constantFrom('page_size=', '%', '%ZZ', '%C0%80', '%FF', '&', '=', '%00', 'a', '+', '%E2%82'), { maxLength: 10 }).map((parts) => parts.join('')),
)
const pathSegment: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => encodeURIComponent(s)),
  fc.constantFrom('%', '%ZZ', '%C0%80', '%FF', '%00', '..', '.', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '01arz3ndektsv4rrffq69g5fav', 'A'.repeat(26), 'I'.repeat(26), '0'.repeat(27)),
)

// --- the harness -------------------------------------------------------------------------

let client: TestClient
let state: State
const internalErrors: unknown[] = []

async function send(r: Req): Promise<{ status: number; text: string; contentType: string }> {
  // A Host, as every HTTP/1.1 request has: AuthZEN builds absolute URLs from it.
  const init: RequestInit = { method: r.method, headers: { ...r.headers, host: 'localhost' } }
  if (r.body !== undefined) {
    init.body = r.body as RequestInit['body']
    if (r.contentType) (init.headers as Record<string, string>)['content-type'] = r.contentType
  }
  const res = await client.pemba.app.request(r.path, init)
  return { status: res.status, text: await res.text(), contentType: res.headers.get('content-type') ?? '' }
}

async function getJson(path: string, body?: unknown): Promise<any> {
  const res = await client.request(body === undefined ? 'GET' : 'POST', path, body)
  expect(res.status, `${path}: ${res.text}`).toBe(200)
  return res.body
}

/** Every page of a paginated listing. */
async function allPages(path: (token: string) => string, key: string, body?: (token: string) => unknown): Promise<unknown[]> {
  const items: unknown[] = []
  let token = ''
  do {
    const page = await getJson(path(token), body?.(token))
    items.push(...page[key])
    // The change feed always hands back a token (to poll with later): an empty page ends it.
    token = page[key].length ? page.continuation_token : ''
  } while (token)
  return items
}

/** snapshot is everything stored that a request could change, as one comparable string. */
async function snapshot() {
  const s = state.storeId
  const q = (t: string) => (t ? `&continuation_token=${t}` : '')
  const stores = await allPages((t) => `/stores?page_size=100${q(t)}`, 'stores')
  const models = (await allPages((t) => `/stores/${s}/authorization-models?page_size=100${q(t)}`, 'authorization_models')) as { id: string }[]
  const tuples = await allPages(() => `/stores/${s}/read`, 'tuples', (t) => ({ page_size: 100, continuation_token: t }))
  const changes = await allPages((t) => `/stores/${s}/changes?page_size=100${q(t)}`, 'changes')
  const assertions = await Promise.all(models.map((m) => getJson(`/stores/${s}/assertions/${m.id}`)))
  const requests = await allPages((t) => `/stores/${s}/access-requests?page_size=100${q(t)}`, 'access_requests')
  return { stores, models, tuples, changes, assertions, requests }
}

type Snapshot = Awaited<ReturnType<typeof snapshot>>

/** changedParts names the parts of two snapshots that differ (a short message, not two dumps). */
function changedParts(before: Snapshot, after: Snapshot): string[] {
  return (Object.keys(before) as (keyof Snapshot)[]).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
}

let known: Snapshot

/**
 * exchange sends one request and checks the properties. The stored state is compared after
 * every error answer; after a success that may have written, it is taken anew.
 */
async function exchange(r: Req): Promise<void> {
  const res = await send(r)
  const where = `${r.method} ${r.path.slice(0, 200)} -> ${res.status} ${res.text.slice(0, 300)}`
  expect(res.status, where).toBeLessThan(500)
  expect(internalErrors, where).toEqual([])
  if (res.status >= 400) {
    const body = JSON.parse(res.text)
    if (res.contentType.startsWith('application/problem+json')) {
      // ARAP's errors (reference §5.7), on its routes only.
      expect(r.path, where).toMatch(/\/access\/v1\/requests(\/|$|\?)/)
      // The profile's URN for what the access-request service refuses; RFC 9457's `about:blank`
      // for a transport refusal before it (a 415 for a body not declared JSON).
      expect(body.type, where).toMatch(/^(urn:openid:authzen:access-request:error:[a-z_]+|about:blank)$/)
      expect(body.status, where).toBe(res.status)
      expect(typeof body.title, where).toBe('string')
      expect(typeof body.detail, where).toBe('string')
    } else {
      expect(res.contentType, where).toMatch(/^application\/json/)
      expect(Object.keys(body).sort(), where).toEqual(['code', 'message'])
      expect(typeof body.code, where).toBe('string')
      expect(typeof body.message, where).toBe('string')
    }
    expect(changedParts(known, await snapshot()), `state changed by an error answer: ${where}`).toEqual([])
  } else {
    if (r.path.endsWith('/streamed-list-objects')) {
      for (const line of res.text.split('\n').filter(Boolean)) {
        const parsed = JSON.parse(line)
        expect(parsed.error?.message, where).not.toBe('Internal Server Error')
      }
    }
    if (r.method !== 'GET') known = await snapshot()
  }
}

describe('HTTP fuzzing: garbage and near-valid input never gets a 5xx, always {code, message}, and changes nothing', () => {
  beforeAll(async () => {
    const routesFile = join(mkdtempSync(join(tmpdir(), 'pemba-fuzz-')), 'routes.yaml')
    writeFileSync(routesFile, GATEWAY_ROUTES)
    client = await createTestClient({ gatewayRoutes: routesFile }, { logError: (err) => internalErrors.push(err), sweeper: false })
    const { storeId, modelId } = await setup(client, MODEL, TUPLES)
    const token = await trustedToken(storeId)
    const ar = await client.request('POST', `/stores/${storeId}/access-requests`, {
      tuple_key: tupleKey('doc:1#viewer@user:dave'),
      duration: 'PT1H',
      reason: 'seed',
    })
    expect(ar.status, ar.text).toBe(201)
    const assertion = await client.request('PUT', `/stores/${storeId}/assertions/${modelId}`, {
      assertions: [{ tuple_key: tupleKey('doc:1#viewer@user:bob'), expectation: true }],
    })
    expect(assertion.status, assertion.text).toBe(204)
    state = { storeId, modelId, requestId: ar.body.id, taskId: '', denial: await requestableDenial(storeId), token }
    const task = await client.request('POST', `/stores/${storeId}/access/v1/requests`, { ...DAVE_VIEWS_DOC5, denial: state.denial }, { host: 'localhost' })
    expect(task.status, task.text).toBe(202)
    state.taskId = task.body.task.id
    state.denial = await requestableDenial(storeId)
    known = await snapshot()
  })
  afterAll(() => client.close())

  it('the valid requests the mutations start from are valid', async () => {
    // Otherwise "near-valid" would mean nothing: each one succeeds as it is.
    const fresh = async (object: string) => {
      const ar = await client.request('POST', `/stores/${state.storeId}/access-requests`, {
        tuple_key: tupleKey(`${object}#viewer@user:dave`),
        duration: 'PT1H',
        reason: 'seed again',
      })
      expect(ar.status, ar.text).toBe(201)
      state.requestId = ar.body.id
      known = await snapshot()
    }
    for (const template of validRequests(state)) {
      // Approve and deny each need a request still pending.
      if (/\/(approve|deny)$/.test(template.path)) await fresh(`doc:${template.path.endsWith('approve') ? 3 : 4}`)
      const v = validRequests(state).find((x) => x.method === template.method && x.path.replace(/[^/]+\/(approve|deny)$/, '') === template.path.replace(/[^/]+\/(approve|deny)$/, '') && x.path.split('/').pop() === template.path.split('/').pop())!
      const path = v.query ? `${v.path}?${new URLSearchParams(v.query)}` : v.path
      const res = await send({ method: v.method, path, body: v.json === undefined ? undefined : JSON.stringify(v.json), contentType: 'application/json', headers: v.headers })
      expect(res.status, `${v.method} ${v.path}: ${res.text}`).toBeLessThan(300)
      if (v.method !== 'GET') known = await snapshot()
    }
    // The fuzzing below starts from a pending request, and a denial not submitted yet.
    await fresh('doc:2')
    state.denial = await requestableDenial(state.storeId)
    known = await snapshot()
  })

  it('garbage bodies on every endpoint', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), garbageBody, contentType, async ([method, template], garbage, type) => {
        await exchange({
          method,
          path: fill(template, state),
          body: method === 'GET' ? undefined : garbage.body,
          contentType: garbage.contentType ?? type,
        })
      }),
      runs(250),
    )
  })

  it('near-valid payloads: one field removed, replaced by a wrong type or boundary value, or an extra key', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.nat(), mutation, async (which, where, m) => {
        const all = validRequests(state).filter((v) => v.json !== undefined || v.query !== undefined)
        const v = all[which % all.length]
        if (v.json !== undefined) {
          const at = positions(v.json)
          const mutated = mutate(v.json, at[where % at.length], m)
          await exchange({
            method: v.method,
            path: v.path,
            body: mutated === undefined ? '' : JSON.stringify(mutated),
            contentType: 'application/json',
          })
        } else {
          const keys = Object.keys(v.query!)
          const q = { ...v.query! }
          const key = keys[where % keys.length]
          if (m.kind === 'remove') delete q[key]
          else q[m.kind === 'add' ? m.key : key] = typeof m.value === 'string' ? m.value : JSON.stringify(m.value) ?? ''
          await exchange({ method: v.method, path: `${v.path}?${new URLSearchParams(q)}` })
        }
      }),
      runs(500),
    )
  })

  it('random query strings and path segments', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        fc.option(pathSegment, { nil: undefined }),
        fc.option(pathSegment, { nil: undefined }),
        randomQuery,
        async ([method, template], storeSegment, idSegment, query) => {
          const path = fill(template, state, { store: storeSegment, id: idSegment })
          await exchange({ method, path: `${path}?${query}`, body: method === 'GET' ? undefined : '{}', contentType: 'application/json' })
        },
      ),
      runs(250),
    )
  })

  it('the gateway decision: random original methods, paths and tokens, in both forms', async () => {
    const headerText = fc.stringMatching(/^[\x21-\x7e\xa0-\xff]{0,80}$/)
    const target = fc.oneof(
      fc.array(pathSegment, { maxLength: 5 }).map((segs) => `/${segs.join('/')}`),
      fc.constantFrom('/docs/2', '/docs/../docs/2', '/docs/%2e%2e/x', '/docs/a%2fb', '/files/a/b', '/files', '//docs/2', '/docs/*', `/docs/${'a'.repeat(300)}`, '/docs/x:y#z'),
      headerText,
    )
    const token = fc.oneof(fc.constant(state.token), headerText, fc.constant(`${state.token.slice(0, -3)}abc`))
    const method = fc.oneof(fc.constantFrom('GET', 'POST', 'HEAD', 'PROPFIND', 'M-SEARCH', 'get', ''), headerText)
    await fc.assert(
      fc.asyncProperty(fc.boolean(), method, target, token, fc.constantFrom('Bearer ', 'bearer ', 'Basic ', ''), async (nginx, m, t, tok, scheme) => {
        const authorization = `${scheme}${tok}`.trim()
        const headers: Record<string, string> = authorization ? { authorization } : {}
        if (nginx) {
          await exchange({ method: 'GET', path: `/stores/${state.storeId}/gateway/authorize`, headers: { ...headers, 'x-original-method': m, 'x-original-uri': t } })
        } else {
          const safe = /^[A-Z][A-Z-]*$/.test(m) && m !== 'HEAD' ? m : 'GET'
          const path = t.startsWith('/') && /^[\x21-\x7e]*$/.test(t) ? t : `/${encodeURIComponent(t)}`
          await exchange({ method: safe, path: `/stores/${state.storeId}/gateway/authorize${path}`, headers })
        }
      }),
      runs(250),
    )
  })

  it('DELETE of a store that is not there, by any id', async () => {
    await fc.assert(
      fc.asyncProperty(pathSegment, async (id) => {
        fc.pre(decodeURIComponentSafe(id) !== state.storeId)
        await exchange({ method: 'DELETE', path: `/stores/${id}` })
      }),
      runs(50),
    )
  })
})

/** trustedToken trusts an issuer (inline keys) on the store and returns a token it signed for `user:anne`. */
async function trustedToken(storeId: string): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: 'fuzz', alg: 'ES256', use: 'sig' }
  const put = await client.request('PUT', `/stores/${storeId}/token-issuers/fuzz`, {
    issuer: ISSUER,
    audience: 'gateway',
    jwks: { keys: [jwk] },
    subject_type: 'user',
    actor_type: 'agent',
  })
  expect(put.status, put.text).toBe(201)
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ iss: ISSUER, aud: 'gateway', sub: 'anne', iat: now, exp: now + 3600 }).setProtectedHeader({ alg: 'ES256', kid: 'fuzz' }).sign(privateKey)
}

/** A requestable denial of DAVE_VIEWS_DOC5: its `access_request` as a submission's `denial`. */
async function requestableDenial(storeId: string): Promise<State['denial']> {
  const r = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, DAVE_VIEWS_DOC5, { host: 'localhost' })
  expect(r.status, r.text).toBe(200)
  const ar = r.body.context?.access_request
  expect(ar?.binding_token, r.text).toBeTypeOf('string')
  return { expires_at: ar.expires_at, binding_token: ar.binding_token }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
