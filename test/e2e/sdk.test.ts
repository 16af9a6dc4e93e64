/**
 * The real server on a loopback port, driven only through `OpenFgaClient` from @openfga/sdk
 * 0.9.7: every client method an app would call, the values they return, and the SDK's error
 * behaviour (error classes, `apiErrorCode`, no retries on 400). A thin wrapper around the app's
 * fetch records what the SDK actually sent, so the request counts are the server's own view.
 */
import { serve, type ServerType } from '@hono/node-server'
import {
  ClientWriteRequestOnDuplicateWrites,
  ClientWriteRequestOnMissingDeletes,
  ConsistencyPreference,
  FgaApiError,
  FgaApiNotFoundError,
  FgaApiValidationError,
  OpenFgaClient,
  type ClientWriteResponse,
  type TupleKey,
} from '@openfga/sdk'
import { transformer } from '@openfga/syntax-transformer'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba, type Pemba } from '../../src/server.ts'

/** The SDK's own client-side id check (`isWellFormedUlidString`). */
const SDK_ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/

interface Seen {
  method: string
  path: string
  headers: Headers
  body: string
  /** Filled in when the app answers. */
  status?: number
  responseHeaders?: Headers
}

let pemba: Pemba
let server: ServerType
let apiUrl: string
const seen: Seen[] = []

beforeAll(async () => {
  pemba = await createPemba({
    ...loadConfig({ env: {}, argv: [] }),
    databaseUrl: 'sqlite::memory:',
    logLevel: 'warn',
  })
  const app = pemba.app
  server = serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: async (req: Request, env: unknown) => {
      const url = new URL(req.url)
      const body = req.method === 'GET' || req.method === 'HEAD' ? '' : await req.clone().text()
      const entry: Seen = {
        method: req.method,
        path: url.pathname + url.search,
        headers: req.headers,
        body,
      }
      seen.push(entry)
      const res = await app.fetch(req, env as never)
      entry.status = res.status
      entry.responseHeaders = res.headers
      return res
    },
  })
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve()
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  const { port } = server.address() as AddressInfo
  apiUrl = `http://127.0.0.1:${port}`
}, 20_000)

afterAll(async () => {
  await new Promise<void>((resolve) => {
    if (!server) return resolve()
    ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
    server.close(() => resolve())
  })
  await pemba?.close()
}, 20_000)

/** newClient: short retry waits so a wrongly retried request shows up fast, not slowly. */
function newClient(extra: { storeId?: string; authorizationModelId?: string } = {}): OpenFgaClient {
  return new OpenFgaClient({ apiUrl, retryParams: { maxRetry: 3, minWaitInMs: 10 }, ...extra })
}

/** caught runs a call that must fail and returns what it threw. */
async function caught(p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected the call to throw')
}

/** requestsDuring counts the HTTP requests the server saw while `fn` ran. */
async function requestsDuring(fn: () => Promise<unknown>): Promise<Seen[]> {
  const before = seen.length
  await fn()
  return seen.slice(before)
}

const TYPES_V1 = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type folder
  relations
    define viewer: [user]
type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, group#member] or owner
    define viewer: [user, user:*, user with in_subnet, group#member] or editor or viewer from parent
    define blocked: [user]
    define can_read: viewer but not blocked
`

const CIDR_CONDITION = `
condition in_subnet(request_ip: ipaddress, cidr: string) {
  request_ip.in_cidr(cidr)
}
`

const MODEL_V1 = TYPES_V1 + CIDR_CONDITION

/** V2 adds a type whose relations need int and timestamp conditions (the DSL puts types first). */
const MODEL_V2 = `${TYPES_V1}type job
  relations
    define runner: [user with not_expired]
    define submitter: [user with under_quota]
${CIDR_CONDITION}
condition not_expired(current_time: timestamp, expires_at: timestamp) {
  current_time < expires_at
}

condition under_quota(used: int, quota: int) {
  used < quota
}
`

function modelJson(dsl: string) {
  return transformer.transformDSLToJSONObject(dsl) as any
}

const tk = (user: string, relation: string, object: string): TupleKey => ({
  user,
  relation,
  object,
})

const TUPLES: TupleKey[] = [
  tk('user:bob', 'member', 'group:eng'),
  tk('user:anne', 'owner', 'document:1'),
  tk('group:eng#member', 'editor', 'document:1'),
  tk('folder:x', 'parent', 'document:1'),
  tk('user:dave', 'viewer', 'folder:x'),
  tk('user:dave', 'blocked', 'document:1'),
  tk('user:anne', 'viewer', 'document:2'),
  tk('user:*', 'viewer', 'document:public'),
]
const CIDR_TUPLE: TupleKey = {
  ...tk('user:carol', 'viewer', 'document:cond'),
  condition: { name: 'in_subnet', context: { cidr: '10.0.0.0/8' } },
}
const JOB_TUPLES: TupleKey[] = [
  {
    ...tk('user:erin', 'runner', 'job:build'),
    condition: { name: 'not_expired', context: { expires_at: '2030-01-01T00:00:00Z' } },
  },
  {
    ...tk('user:erin', 'submitter', 'job:build'),
    condition: { name: 'under_quota', context: { quota: 10 } },
  },
]

describe('@openfga/sdk 0.9.7 against Pemba', () => {
  let fga: OpenFgaClient
  let storeId: string
  let modelV1: string
  let modelV2: string

  beforeAll(async () => {
    fga = newClient()
  })

  it('createStore returns a ULID the SDK itself accepts, with 201 and timestamps', async () => {
    const store = await fga.createStore({ name: 'sdk-e2e' })
    expect(store.$response.status).toBe(201)
    expect(store.id).toMatch(SDK_ULID)
    expect(store.name).toBe('sdk-e2e')
    expect(new Date(store.created_at).toString()).not.toBe('Invalid Date')
    expect(store.updated_at).toBe(store.created_at)
    expect(store.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    storeId = store.id
    // The SDK validates store ids client-side: this would throw if the id were not a ULID.
    fga = newClient({ storeId })
    const got = await fga.getStore()
    expect(got.id).toBe(storeId)
    expect(got.name).toBe('sdk-e2e')
    expect(got.created_at).toBe(store.created_at)
    expect(got.$response.data).toHaveProperty('deleted_at', null)
  })

  it('writeAuthorizationModel (with conditions), then read them back three ways', async () => {
    const w1 = await fga.writeAuthorizationModel(modelJson(MODEL_V1))
    expect(w1.$response.status).toBe(201)
    expect(w1.authorization_model_id).toMatch(SDK_ULID)
    modelV1 = w1.authorization_model_id
    const w2 = await fga.writeAuthorizationModel(modelJson(MODEL_V2))
    expect(w2.authorization_model_id).toMatch(SDK_ULID)
    modelV2 = w2.authorization_model_id
    expect(modelV2 > modelV1).toBe(true)

    const list = await fga.readAuthorizationModels()
    expect(list.authorization_models.map((m) => m.id)).toEqual([modelV2, modelV1]) // newest first
    expect(list.continuation_token).toBe('')

    const paged = await fga.readAuthorizationModels({ pageSize: 1 })
    expect(paged.authorization_models.map((m) => m.id)).toEqual([modelV2])
    expect(paged.continuation_token).not.toBe('')
    const page2 = await fga.readAuthorizationModels({
      pageSize: 1,
      continuationToken: paged.continuation_token,
    })
    expect(page2.authorization_models.map((m) => m.id)).toEqual([modelV1])

    const latest = await fga.readLatestAuthorizationModel()
    expect(latest.authorization_model?.id).toBe(modelV2)
    expect(Object.keys(latest.authorization_model?.conditions ?? {}).sort()).toEqual([
      'in_subnet',
      'not_expired',
      'under_quota',
    ])

    const one = await fga.readAuthorizationModel({ authorizationModelId: modelV1 })
    const m = one.authorization_model!
    expect(m.id).toBe(modelV1)
    expect(m.schema_version).toBe('1.1')
    expect(m.type_definitions.map((t) => t.type)).toEqual(['user', 'group', 'folder', 'document'])
    // Unpopulated fields are emitted: `relations: {}` and `metadata: null` on a bare type.
    expect(m.type_definitions[0]).toEqual({ type: 'user', relations: {}, metadata: null })
    expect(m.conditions!['in_subnet']).toEqual({
      name: 'in_subnet',
      expression: modelJson(MODEL_V1).conditions.in_subnet.expression,
      parameters: {
        request_ip: { type_name: 'TYPE_NAME_IPADDRESS', generic_types: [] },
        cidr: { type_name: 'TYPE_NAME_STRING', generic_types: [] },
      },
      metadata: null,
    })
    const doc = m.type_definitions.find((t) => t.type === 'document')!
    expect(doc.relations!['viewer'].union?.child).toEqual([
      { this: {} },
      { computedUserset: { object: '', relation: 'editor' } },
      {
        tupleToUserset: {
          tupleset: { object: '', relation: 'parent' },
          computedUserset: { object: '', relation: 'viewer' },
        },
      },
    ])
    // Each reference carries `condition` ("" when none); `relation`/`wildcard` only when set.
    expect(doc.metadata?.relations?.['viewer'].directly_related_user_types).toEqual([
      { type: 'user', condition: '' },
      { type: 'user', wildcard: {}, condition: '' },
      { type: 'user', condition: 'in_subnet' },
      { type: 'group', relation: 'member', condition: '' },
    ])

    const v2 = (await fga.readAuthorizationModel({ authorizationModelId: modelV2 }))
      .authorization_model!
    expect(v2.conditions!['not_expired'].parameters!['current_time'].type_name).toBe(
      'TYPE_NAME_TIMESTAMP',
    )
    expect(v2.conditions!['under_quota'].parameters!['used'].type_name).toBe('TYPE_NAME_INT')

    fga = newClient({ storeId, authorizationModelId: modelV2 })
  })

  it('write (plain and conditional), writeTuples and deleteTuples', async () => {
    const calls = await requestsDuring(async () => {
      const r = await fga.write({ writes: [...TUPLES, CIDR_TUPLE] })
      expect(r.writes).toHaveLength(TUPLES.length + 1)
      expect(r.writes.every((w) => w.status === 'success')).toBe(true)
      expect(r.deletes).toEqual([])
    })
    expect(calls).toHaveLength(1)
    expect(calls[0].method).toBe('POST')
    expect(calls[0].path).toBe(`/stores/${storeId}/write`)
    expect(JSON.parse(calls[0].body)).toMatchObject({
      authorization_model_id: modelV2,
      writes: { on_duplicate: 'error' },
    })
    expect(calls[0].status).toBe(200)
    expect(calls[0].responseHeaders?.get('openfga-authorization-model-id')).toBe(modelV2)

    const tmp: TupleKey = {
      ...tk('user:zed', 'viewer', 'document:tmp'),
      condition: { name: 'in_subnet' },
    }
    const wt = await fga.writeTuples([...JOB_TUPLES, tmp])
    expect(wt.writes.map((w) => w.status)).toEqual(['success', 'success', 'success'])
    const dt = await fga.deleteTuples([tk('user:zed', 'viewer', 'document:tmp')])
    expect(dt.deletes).toEqual([
      { tuple_key: tk('user:zed', 'viewer', 'document:tmp'), status: 'success' },
    ])

    const gone = await fga.read({ user: 'user:zed', relation: 'viewer', object: 'document:tmp' })
    expect(gone.tuples).toEqual([])
    const cond = await fga.read({ user: 'user:carol', relation: 'viewer', object: 'document:cond' })
    expect(cond.tuples).toHaveLength(1)
    expect(cond.tuples[0].key).toEqual({
      user: 'user:carol',
      relation: 'viewer',
      object: 'document:cond',
      condition: { name: 'in_subnet', context: { cidr: '10.0.0.0/8' } },
    })
    expect(new Date(cond.tuples[0].timestamp).toString()).not.toBe('Invalid Date')
    const plain = await fga.read({ user: 'user:anne', relation: 'owner', object: 'document:1' })
    expect(plain.tuples.map((t) => t.key)).toEqual([
      { ...tk('user:anne', 'owner', 'document:1'), condition: null },
    ])
  })

  it('write conflict options: duplicates and missing deletes error, unless ignored', async () => {
    const dup = tk('user:anne', 'owner', 'document:1')
    const e1 = await caught(fga.write({ writes: [dup] }))
    expect(e1).toBeInstanceOf(FgaApiValidationError)
    expect(e1.apiErrorCode).toBe('write_failed_due_to_invalid_input')

    const ok = await fga.write(
      { writes: [dup] },
      { conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore } },
    )
    expect(ok.writes[0].status).toBe('success')

    const missing = tk('user:nobody', 'owner', 'document:1')
    const e2 = await caught(fga.deleteTuples([missing]))
    expect(e2).toBeInstanceOf(FgaApiValidationError)
    expect(e2.apiErrorCode).toBe('write_failed_due_to_invalid_input')
    const del = await fga.deleteTuples([missing], {
      conflict: { onMissingDeletes: ClientWriteRequestOnMissingDeletes.Ignore },
    })
    expect(del.deletes[0].status).toBe('success')

    const ignoredWire = await requestsDuring(() =>
      fga.writeTuples([dup], {
        conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore },
      }),
    )
    expect(JSON.parse(ignoredWire[0].body).writes.on_duplicate).toBe('ignore')
    expect(ignoredWire[0].headers.get('x-openfga-client-method')).toBe('WriteTuples')

    // The same tuple with a different condition is a conflict even with ignore: 409, not retried.
    const changed: TupleKey = {
      ...CIDR_TUPLE,
      condition: { name: 'in_subnet', context: { cidr: '172.16.0.0/12' } },
    }
    let e3: any
    const wire = await requestsDuring(async () => {
      e3 = await caught(
        fga.write(
          { writes: [changed] },
          { conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore } },
        ),
      )
    })
    expect(e3).toBeInstanceOf(FgaApiError)
    expect(e3.statusCode).toBe(409)
    expect(wire).toHaveLength(1)
  })

  it('write with transaction disabled reports success and failure per tuple', async () => {
    const good = tk('user:gina', 'viewer', 'document:3')
    const bad = tk('user:gina', 'no_such_relation', 'document:3')
    const r: ClientWriteResponse = await fga.write(
      { writes: [good, bad] },
      { transaction: { disable: true } },
    )
    const byRelation = Object.fromEntries(r.writes.map((w) => [w.tuple_key.relation, w]))
    expect(byRelation['viewer'].status).toBe('success')
    expect(byRelation['no_such_relation'].status).toBe('failure')
    expect(byRelation['no_such_relation'].err).toBeInstanceOf(FgaApiValidationError)
    expect((byRelation['no_such_relation'].err as FgaApiValidationError).apiErrorCode).toBe(
      'validation_error',
    )
    await fga.deleteTuples([good])
  })

  it('read with a filter, and every tuple through continuation tokens', async () => {
    const doc1 = await fga.read({ object: 'document:1' })
    expect(doc1.tuples.map((t) => `${t.key.relation}@${t.key.user}`).sort()).toEqual([
      'blocked@user:dave',
      'editor@group:eng#member',
      'owner@user:anne',
      'parent@folder:x',
    ])
    const anneDocs = await fga.read({ user: 'user:anne', relation: 'viewer', object: 'document:' })
    expect(anneDocs.tuples.map((t) => t.key.object)).toEqual(['document:2'])

    const all: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const page = await fga.read({}, { pageSize: 3, continuationToken: token })
      expect(page.tuples.length).toBeLessThanOrEqual(3)
      all.push(...page.tuples.map((t) => `${t.key.object}#${t.key.relation}@${t.key.user}`))
      token = page.continuation_token || undefined
      if (token) expect(token).toMatch(/^[A-Za-z0-9_-]+={0,2}$/)
      pages++
    } while (token && pages < 20)
    const expected = [...TUPLES, CIDR_TUPLE, ...JOB_TUPLES].map(
      (t) => `${t.object}#${t.relation}@${t.user}`,
    )
    expect(all.sort()).toEqual(expected.sort())
    expect(pages).toBeGreaterThanOrEqual(4)
  })

  it('check: rewrites, conditions with context, contextual tuples, model header', async () => {
    const c = (user: string, relation: string, object: string, extra: object = {}) =>
      fga.check({ user, relation, object, ...extra }).then((r) => r.allowed)

    const r = await fga.check({ user: 'user:anne', relation: 'viewer', object: 'document:1' })
    expect(r.allowed).toBe(true)
    expect(r.resolution).toBe('')
    expect(r.$response.headers['openfga-authorization-model-id']).toBe(modelV2)
    expect(r.$response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)

    expect(await c('user:bob', 'viewer', 'document:1')).toBe(true)
    expect(await c('user:dave', 'viewer', 'document:1')).toBe(true)
    expect(await c('user:dave', 'can_read', 'document:1')).toBe(false)
    expect(await c('user:anne', 'can_read', 'document:1')).toBe(true)
    expect(await c('user:frank', 'viewer', 'document:1')).toBe(false)
    expect(await c('user:frank', 'viewer', 'document:public')).toBe(true)

    expect(
      await c('user:carol', 'viewer', 'document:cond', { context: { request_ip: '10.1.2.3' } }),
    ).toBe(true)
    expect(
      await c('user:carol', 'viewer', 'document:cond', { context: { request_ip: '192.168.1.1' } }),
    ).toBe(false)

    const now = { current_time: '2026-06-01T00:00:00Z' }
    const later = { current_time: '2031-01-01T00:00:00Z' }
    expect(await c('user:erin', 'runner', 'job:build', { context: now })).toBe(true)
    expect(await c('user:erin', 'runner', 'job:build', { context: later })).toBe(false)
    expect(await c('user:erin', 'submitter', 'job:build', { context: { used: 3 } })).toBe(true)
    expect(await c('user:erin', 'submitter', 'job:build', { context: { used: 12 } })).toBe(false)

    const ctx = { contextualTuples: [tk('user:frank', 'member', 'group:eng')] }
    expect(await c('user:frank', 'viewer', 'document:1', ctx)).toBe(true)
    // Contextual tuples are not stored.
    expect(await c('user:frank', 'viewer', 'document:1')).toBe(false)

    const condCtx = {
      contextualTuples: [
        { ...tk('user:hank', 'viewer', 'document:9'), condition: { name: 'in_subnet' } },
      ],
      context: { request_ip: '10.9.9.9', cidr: '10.0.0.0/8' },
    }
    expect(await c('user:hank', 'viewer', 'document:9', condCtx)).toBe(true)

    // An older model by id: job does not exist there.
    const old = await fga.check(
      { user: 'user:anne', relation: 'viewer', object: 'document:1' },
      { authorizationModelId: modelV1 },
    )
    expect(old.allowed).toBe(true)
    expect(old.$response.headers['openfga-authorization-model-id']).toBe(modelV1)

    const hc = await fga.check(
      { user: 'user:anne', relation: 'viewer', object: 'document:1' },
      { consistency: ConsistencyPreference.HigherConsistency },
    )
    expect(hc.allowed).toBe(true)
  })

  it('batchCheck: server-side, by correlation id, a bad item is a per-item error', async () => {
    let result!: Awaited<ReturnType<OpenFgaClient['batchCheck']>>
    const wire = await requestsDuring(async () => {
      result = await fga.batchCheck({
        checks: [
          { user: 'user:anne', relation: 'viewer', object: 'document:1', correlationId: 'anne-1' },
          {
            user: 'user:frank',
            relation: 'viewer',
            object: 'document:1',
            correlationId: 'frank-1',
          },
          {
            user: 'user:frank',
            relation: 'viewer',
            object: 'document:1',
            correlationId: 'frank-ctx',
            contextualTuples: { tuple_keys: [tk('user:frank', 'member', 'group:eng')] },
          },
          {
            user: 'user:carol',
            relation: 'viewer',
            object: 'document:cond',
            correlationId: 'carol-ip',
            context: { request_ip: '10.0.0.1' },
          },
          {
            user: 'user:anne',
            relation: 'no_such_relation',
            object: 'document:1',
            correlationId: 'bad-1',
          },
          { user: 'user:anne', relation: 'owner', object: 'document:1' }, // the SDK mints an id
        ],
      })
    })
    expect(wire).toHaveLength(1)
    expect(wire[0].path).toBe(`/stores/${storeId}/batch-check`)
    expect(wire[0].headers.get('x-openfga-client-bulk-request-id')).toBeTruthy()
    expect(wire[0].responseHeaders?.get('openfga-authorization-model-id')).toBe(modelV2)

    const by = Object.fromEntries(result.result.map((r) => [r.correlationId, r]))
    expect(Object.keys(by)).toHaveLength(6)
    expect(by['anne-1'].allowed).toBe(true)
    expect(by['anne-1'].error).toBeUndefined()
    expect(by['anne-1'].request.object).toBe('document:1')
    expect(by['frank-1'].allowed).toBe(false)
    expect(by['frank-1'].error).toBeUndefined()
    expect(by['frank-ctx'].allowed).toBe(true)
    expect(by['carol-ip'].allowed).toBe(true)
    expect(by['bad-1'].allowed).toBe(false)
    expect(by['bad-1'].error?.input_error).toBe('validation_error')
    expect(by['bad-1'].error?.message).toMatch(/no_such_relation/)
    const minted = result.result.find((r) => r.request.relation === 'owner')!
    expect(minted.allowed).toBe(true)
    expect(minted.correlationId).toMatch(/^[\w-]{1,36}$/)
  })

  it('clientBatchCheck and listRelations fan out to /check', async () => {
    const r = await fga.clientBatchCheck([
      { user: 'user:anne', relation: 'viewer', object: 'document:1' },
      { user: 'user:frank', relation: 'viewer', object: 'document:2' },
      { user: 'user:anne', relation: 'no_such_relation', object: 'document:1' },
    ])
    expect(r.result).toHaveLength(3)
    const byKey = Object.fromEntries(
      r.result.map((x) => [`${x._request.user}/${x._request.relation}`, x]),
    )
    expect(byKey['user:anne/viewer'].allowed).toBe(true)
    expect(byKey['user:frank/viewer'].allowed).toBe(false)
    const bad = byKey['user:anne/no_such_relation'] as { allowed: undefined; error: any }
    expect(bad.allowed).toBeUndefined()
    expect(bad.error).toBeInstanceOf(FgaApiValidationError)
    expect(bad.error.apiErrorCode).toBe('validation_error')

    const lr = await fga.listRelations({
      user: 'user:anne',
      object: 'document:1',
      relations: ['owner', 'editor', 'viewer', 'blocked', 'can_read'],
    })
    expect(lr.relations.sort()).toEqual(['can_read', 'editor', 'owner', 'viewer'])
    const dave = await fga.listRelations({
      user: 'user:dave',
      object: 'document:1',
      relations: ['owner', 'viewer', 'blocked', 'can_read'],
    })
    expect(dave.relations.sort()).toEqual(['blocked', 'viewer'])
  })

  it('listObjects and streamedListObjects agree', async () => {
    const r = await fga.listObjects({ user: 'user:anne', relation: 'viewer', type: 'document' })
    expect(r.objects.sort()).toEqual(['document:1', 'document:2', 'document:public'])
    expect(r.$response.headers['openfga-authorization-model-id']).toBe(modelV2)

    const carol = await fga.listObjects({
      user: 'user:carol',
      relation: 'viewer',
      type: 'document',
      context: { request_ip: '10.20.30.40' },
    })
    expect(carol.objects.sort()).toEqual(['document:cond', 'document:public'])

    const ctx = await fga.listObjects({
      user: 'user:frank',
      relation: 'editor',
      type: 'document',
      contextualTuples: [tk('user:frank', 'member', 'group:eng')],
    })
    expect(ctx.objects).toEqual(['document:1'])

    const streamed: string[] = []
    const wire = await requestsDuring(async () => {
      const it = fga.streamedListObjects({
        user: 'user:anne',
        relation: 'viewer',
        type: 'document',
      })
      for await (const item of it) streamed.push(item.object)
    })
    expect(wire[0].path).toBe(`/stores/${storeId}/streamed-list-objects`)
    // Soft: a missing header is reported, and the rest of this test still runs.
    expect.soft(wire[0].responseHeaders?.get('openfga-authorization-model-id')).toBe(modelV2)
    expect(streamed.sort()).toEqual(['document:1', 'document:2', 'document:public'])

    const none: string[] = []
    for await (const item of fga.streamedListObjects({
      user: 'user:nobody',
      relation: 'owner',
      type: 'document',
    })) {
      none.push(item.object)
    }
    expect(none).toEqual([])
  })

  it('listUsers: objects, usersets, wildcards and contextual tuples (a bare array)', async () => {
    const users = await fga.listUsers({
      object: { type: 'document', id: '1' },
      relation: 'viewer',
      user_filters: [{ type: 'user' }],
    })
    expect(users.users.map((u) => u.object?.id).sort()).toEqual(['anne', 'bob', 'dave'])
    expect(users.users.every((u) => u.object?.type === 'user')).toBe(true)

    const sets = await fga.listUsers({
      object: { type: 'document', id: '1' },
      relation: 'editor',
      user_filters: [{ type: 'group', relation: 'member' }],
    })
    expect(sets.users).toEqual([{ userset: { type: 'group', id: 'eng', relation: 'member' } }])

    const pub = await fga.listUsers({
      object: { type: 'document', id: 'public' },
      relation: 'viewer',
      user_filters: [{ type: 'user' }],
    })
    expect(pub.users).toEqual([{ wildcard: { type: 'user' } }])

    let ctx!: Awaited<ReturnType<OpenFgaClient['listUsers']>>
    const wire = await requestsDuring(async () => {
      ctx = await fga.listUsers({
        object: { type: 'document', id: '2' },
        relation: 'viewer',
        user_filters: [{ type: 'user' }],
        contextualTuples: [tk('user:ivy', 'viewer', 'document:2')],
      })
    })
    expect(Array.isArray(JSON.parse(wire[0].body).contextual_tuples)).toBe(true)
    expect(ctx.$response.headers['openfga-authorization-model-id']).toBe(modelV2)
    expect(ctx.users.map((u) => u.object?.id).sort()).toEqual(['anne', 'ivy'])
  })

  it('expand returns one level of the rewrite as a UsersetTree', async () => {
    const viewer = await fga.expand({ relation: 'viewer', object: 'document:1' })
    expect(viewer.tree?.root).toEqual({
      name: 'document:1#viewer',
      union: {
        nodes: [
          { name: 'document:1#viewer', leaf: { users: { users: [] } } },
          { name: 'document:1#viewer', leaf: { computed: { userset: 'document:1#editor' } } },
          {
            name: 'document:1#viewer',
            leaf: {
              tupleToUserset: {
                tupleset: 'document:1#parent',
                computed: [{ userset: 'folder:x#viewer' }],
              },
            },
          },
        ],
      },
    })
    expect(viewer.$response.headers['openfga-authorization-model-id']).toBe(modelV2)
    const editor = await fga.expand({ relation: 'editor', object: 'document:1' })
    expect(editor.tree?.root?.name).toBe('document:1#editor')
    const nodes = editor.tree?.root?.union?.nodes ?? []
    expect(nodes[0].leaf?.users?.users).toEqual(['group:eng#member'])
    expect(nodes[1].leaf?.computed?.userset).toBe('document:1#owner')
  })

  it('readChanges: type filter, pagination, and the token comes back when caught up', async () => {
    const jobs = await fga.readChanges({ type: 'job' })
    expect(
      jobs.changes.map((ch) => [ch.operation, ch.tuple_key.relation, ch.tuple_key.user]),
    ).toEqual([
      ['TUPLE_OPERATION_WRITE', 'runner', 'user:erin'],
      ['TUPLE_OPERATION_WRITE', 'submitter', 'user:erin'],
    ])
    expect(jobs.changes[0].tuple_key.condition?.name).toBe('not_expired')

    const docs: string[] = []
    let token: string | undefined
    let pages = 0
    for (;;) {
      const page = await fga.readChanges(
        { type: 'document' },
        { pageSize: 2, continuationToken: token },
      )
      expect(page.changes.length).toBeLessThanOrEqual(2)
      expect(page.changes.every((ch) => ch.tuple_key.object.startsWith('document:'))).toBe(true)
      docs.push(
        ...page.changes.map(
          (ch) => `${ch.operation === 'TUPLE_OPERATION_WRITE' ? '+' : '-'}${ch.tuple_key.object}`,
        ),
      )
      pages++
      if (page.changes.length === 0) {
        expect(page.continuation_token).toBe(token) // caught up: the same token again
        break
      }
      expect(page.continuation_token).not.toBe('')
      token = page.continuation_token
      if (pages > 30) throw new Error('readChanges did not converge')
    }
    // 6 plain document tuples, the conditional one, and document:tmp and document:3 (both deleted).
    expect(docs.filter((d) => d.startsWith('+')).length).toBe(9)
    expect(docs.filter((d) => d.startsWith('-')).sort()).toEqual(['-document:3', '-document:tmp'])
    expect(docs.indexOf('+document:tmp')).toBeLessThan(docs.indexOf('-document:tmp'))

    // A write change carries its condition; a delete change never does (`condition: null`).
    const all = await fga.readChanges({ type: 'document' }, { pageSize: 100 })
    const tmp = all.changes.filter((ch) => ch.tuple_key.object === 'document:tmp')
    expect(tmp.map((ch) => ch.operation)).toEqual([
      'TUPLE_OPERATION_WRITE',
      'TUPLE_OPERATION_DELETE',
    ])
    expect(tmp[0].tuple_key.condition).toEqual({ name: 'in_subnet', context: {} })
    expect(tmp[1].tuple_key.condition).toBeNull()
    expect(tmp[0].timestamp <= tmp[1].timestamp).toBe(true)

    const wrongType = await caught(fga.readChanges({ type: 'job' }, { continuationToken: token }))
    expect(wrongType).toBeInstanceOf(FgaApiValidationError)
    expect(wrongType.apiErrorCode).toBe('query_string_type_continuation_token_mismatch')
  })

  it('writeAssertions and readAssertions', async () => {
    const w = await fga.writeAssertions([
      { user: 'user:anne', relation: 'viewer', object: 'document:1', expectation: true },
      { user: 'user:frank', relation: 'viewer', object: 'document:1', expectation: false },
    ])
    expect(w.$response.status).toBe(204)
    expect(w.$response.headers['openfga-authorization-model-id']).toBe(modelV2)
    const r = await fga.readAssertions()
    expect(r.authorization_model_id).toBe(modelV2)
    expect(r.$response.headers['openfga-authorization-model-id']).toBe(modelV2)
    expect(
      r.assertions?.map((a) => [
        a.tuple_key.user,
        a.tuple_key.relation,
        a.tuple_key.object,
        a.expectation,
      ]),
    ).toEqual([
      ['user:anne', 'viewer', 'document:1', true],
      ['user:frank', 'viewer', 'document:1', false],
    ])
    const empty = await fga.readAssertions({ authorizationModelId: modelV1 })
    expect(empty.assertions).toEqual([])
  })

  describe('errors, as the SDK sees them against OpenFGA', () => {
    it('check, unknown relation: FgaApiValidationError validation_error, one request', async () => {
      let err: any
      const wire = await requestsDuring(async () => {
        err = await caught(
          fga.check({ user: 'user:anne', relation: 'no_such_relation', object: 'document:1' }),
        )
      })
      expect(err).toBeInstanceOf(FgaApiValidationError)
      expect(err.statusCode).toBe(400)
      expect(err.apiErrorCode).toBe('validation_error')
      expect(typeof err.apiErrorMessage).toBe('string')
      expect(wire).toHaveLength(1) // a 400 is never retried
    })

    it('check against a model id that does not exist: authorization_model_not_found', async () => {
      const missing = '01ARZ3NDEKTSV4RRFFQ69G5FAV'
      let err: any
      const wire = await requestsDuring(async () => {
        err = await caught(
          fga.check(
            { user: 'user:anne', relation: 'viewer', object: 'document:1' },
            { authorizationModelId: missing },
          ),
        )
      })
      expect(err).toBeInstanceOf(FgaApiValidationError)
      expect(err.apiErrorCode).toBe('authorization_model_not_found')
      expect(wire).toHaveLength(1)

      const read = await caught(fga.readAuthorizationModel({ authorizationModelId: missing }))
      expect(read).toBeInstanceOf(FgaApiValidationError)
      expect(read.apiErrorCode).toBe('authorization_model_not_found')
    })

    it('listObjects and expand: relation_not_found, type_not_found', async () => {
      const e1 = await caught(
        fga.listObjects({ user: 'user:anne', relation: 'no_such_relation', type: 'document' }),
      )
      expect(e1).toBeInstanceOf(FgaApiValidationError)
      expect(e1.apiErrorCode).toBe('relation_not_found')
      const e2 = await caught(
        fga.listObjects({ user: 'user:anne', relation: 'viewer', type: 'no_such_type' }),
      )
      expect(e2).toBeInstanceOf(FgaApiValidationError)
      expect(e2.apiErrorCode).toBe('type_not_found')
      const e3 = await caught(fga.expand({ relation: 'no_such_relation', object: 'document:1' }))
      expect(e3).toBeInstanceOf(FgaApiValidationError)
      expect(e3.apiErrorCode).toBe('relation_not_found')
    })

    it('streamedListObjects: an early error is a 400 the SDK throws, not retried', async () => {
      let err: any
      const wire = await requestsDuring(async () => {
        err = await caught(
          (async () => {
            const it = fga.streamedListObjects({
              user: 'user:anne',
              relation: 'no_such_relation',
              type: 'document',
            })
            for await (const _ of it) void _
          })(),
        )
      })
      expect(err).toBeInstanceOf(FgaApiValidationError)
      expect(err.statusCode).toBe(400)
      expect(wire).toHaveLength(1)
      expect(wire[0].status).toBe(400)
    })

    it('a store with no model: latest_authorization_model_not_found (check, write)', async () => {
      const bare = await fga.createStore({ name: 'sdk-e2e-bare' })
      const c = newClient({ storeId: bare.id })
      const e1 = await caught(
        c.check({ user: 'user:anne', relation: 'viewer', object: 'document:1' }),
      )
      expect(e1).toBeInstanceOf(FgaApiValidationError)
      expect(e1.apiErrorCode).toBe('latest_authorization_model_not_found')
      const e2 = await caught(c.writeTuples([tk('user:anne', 'viewer', 'document:1')]))
      expect(e2).toBeInstanceOf(FgaApiValidationError)
      expect(e2.apiErrorCode).toBe('latest_authorization_model_not_found')
      await c.deleteStore()
    })

    it('request-level limits and inputs: each a 400 with its code, sent once', async () => {
      const expect400 = async (call: () => Promise<unknown>, code: string) => {
        let err: any
        const wire = await requestsDuring(async () => {
          err = await caught(call())
        })
        expect(err, code).toBeInstanceOf(FgaApiValidationError)
        expect(err.statusCode).toBe(400)
        expect(err.apiErrorCode).toBe(code)
        expect(wire, code).toHaveLength(1)
      }
      const many = (n: number) =>
        Array.from({ length: n }, (_, i) => tk(`user:u${i}`, 'viewer', 'document:many'))
      // The SDK chunks at 50; asking it for bigger chunks shows the server's own limit.
      await expect400(
        () => fga.batchCheck({ checks: many(51) }, { maxBatchSize: 51 }),
        'validation_error',
      )
      await expect400(() => fga.writeTuples(many(101)), 'exceeded_entity_limit')
      const one = tk('user:u1', 'viewer', 'document:many')
      await expect400(
        () => fga.writeTuples([one, one]),
        'cannot_allow_duplicate_tuples_in_one_request',
      )
      await expect400(
        () => fga.readChanges({ type: 'document' }, { pageSize: 101 }),
        'page_size_invalid',
      )
      await expect400(
        () => fga.readChanges({ type: 'document', startTime: '2999-01-01T00:00:00Z' }),
        'invalid_start_time',
      )
      await expect400(
        () => fga.read({}, { continuationToken: 'bm90LWEtdG9rZW4' }),
        'invalid_continuation_token',
      )
      await expect400(
        () =>
          fga.check({
            ...tk('user:anne', 'viewer', 'document:1'),
            contextualTuples: [tk('user:anne', 'no_such_relation', 'document:1')],
          }),
        'invalid_tuple',
      )
      await expect400(() => fga.createStore({ name: 'x' }), 'validation_error')
      // Nothing from the refused writes landed.
      expect((await fga.read({ object: 'document:many' })).tuples).toEqual([])
    })

    it('a tuple the model does not allow: validation_error on write', async () => {
      const err = await caught(fga.writeTuples([tk('folder:x', 'viewer', 'document:1')]))
      expect(err).toBeInstanceOf(FgaApiValidationError)
      expect(err.apiErrorCode).toBe('validation_error')
    })

    it('an invalid model: invalid_authorization_model', async () => {
      const bad = modelJson(`model
  schema 1.1
type user
type document
  relations
    define viewer: [user]
`)
      bad.type_definitions[1].relations.viewer = {
        computedUserset: { object: '', relation: 'nope' },
      }
      bad.type_definitions[1].metadata = null
      const err = await caught(fga.writeAuthorizationModel(bad))
      expect(err).toBeInstanceOf(FgaApiValidationError)
      expect(err.apiErrorCode).toBe('invalid_authorization_model')
    })
  })

  it('listStores (name filter, pagination), getStore, deleteStore', async () => {
    const created: string[] = []
    for (let i = 0; i < 3; i++) created.push((await fga.createStore({ name: 'sdk-e2e-page' })).id)
    const seenIds: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const page = await fga.listStores({
        name: 'sdk-e2e-page',
        pageSize: 2,
        continuationToken: token,
      })
      expect(page.stores.length).toBeLessThanOrEqual(2)
      expect(page.stores.every((s) => s.name === 'sdk-e2e-page')).toBe(true)
      seenIds.push(...page.stores.map((s) => s.id))
      token = page.continuation_token || undefined
      pages++
    } while (token && pages < 10)
    expect(seenIds.sort()).toEqual([...created].sort())

    const all = await fga.listStores()
    expect(all.stores.map((s) => s.id)).toContain(storeId)

    const victim = created[0]
    const d = await fga.deleteStore({ storeId: victim })
    expect(d.$response.status).toBe(204)
    const err = await caught(fga.getStore({ storeId: victim }))
    expect(err).toBeInstanceOf(FgaApiNotFoundError)
    expect(err.apiErrorCode).toBe('store_id_not_found')
    expect(err.statusCode).toBe(404)
    const after = await fga.listStores({ name: 'sdk-e2e-page' })
    expect(after.stores.map((s) => s.id).sort()).toEqual(created.slice(1).sort())

    // Deleting a store that is already gone is still 204.
    const again = await fga.deleteStore({ storeId: victim })
    expect(again.$response.status).toBe(204)

    await fga.deleteStore()
    const mine = await caught(fga.getStore())
    expect(mine).toBeInstanceOf(FgaApiNotFoundError)
  })

  it('no SDK request got a 5xx, and every response carried X-Request-Id', () => {
    expect(seen.length).toBeGreaterThan(50)
    expect(
      seen.filter((s) => (s.status ?? 0) >= 500).map((s) => `${s.method} ${s.path} ${s.status}`),
    ).toEqual([])
    expect(seen.filter((s) => !s.responseHeaders?.get('x-request-id')).map((s) => s.path)).toEqual(
      [],
    )
    // The SDK's own headers on every call, tolerated by the server.
    expect(
      seen.every((s) => /openfga-sdk js\/0\.9\.7/.test(s.headers.get('user-agent') ?? '')),
    ).toBe(true)
  })
})
