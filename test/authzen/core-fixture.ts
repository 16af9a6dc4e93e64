/**
 * The AuthZEN core tests' fixture: a real Pemba on a loopback port, a fetch client for it, and
 * a store with a model whose answers make each rule of the evaluation APIs visible.
 */
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import type { PembaConfig } from '../../src/config.ts'
import type { TestClient, TestResponse } from '../helpers/client.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'

export interface HttpClient extends TestClient {
  served: ServedPemba
  url: string
}

/** fetchJson sends one request over HTTP; a non-string body is sent as JSON with its Content-Type. */
export async function fetchJson(
  url: string,
  method: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<TestResponse> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    if (typeof body !== 'string') (init.headers as Record<string, string>)['content-type'] ??= 'application/json'
  }
  const res = await fetch(url, init)
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, body: parseBody(text) }
}

/** parseBody: the parsed JSON of a response, or undefined when it is empty or not JSON. */
function parseBody(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * rawRequest sends one request with node:http, whose headers go out as given (fetch replaces
 * `Host` with the URL's): for the tests of Host and X-Forwarded-* handling.
 */
export function rawRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const h = data === undefined ? headers : { 'content-type': 'application/json', ...headers }
    const req = httpRequest(url, { method, headers: h }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parseBody(text) }))
    })
    req.on('error', reject)
    req.end(data)
  })
}

/**
 * http10Request sends one HTTP/1.0 POST over a bare socket, exactly as written: without a Host
 * header (which neither fetch nor node:http can leave out). Answers the status and the body.
 */
export function http10Request(url: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const { hostname, port } = new URL(url)
  const data = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.end(`POST ${path} HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(data)}\r\n\r\n${data}`)
    })
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (text += chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      const split = text.indexOf('\r\n\r\n')
      resolve({ status: Number(text.slice(9, 12)), body: parseBody(text.slice(split + 4)) })
    })
  })
}

/** serveHttp starts a server and a client for it (`headers` on every request, e.g. a bearer token). */
export async function serveHttp(overrides: Partial<PembaConfig> = {}, headers: Record<string, string> = {}): Promise<HttpClient> {
  const served = await servePemba(overrides)
  return {
    served,
    url: served.url,
    pemba: served.pemba,
    request: (method, path, body, h = {}) => fetchJson(served.url + path, method, body, { ...headers, ...h }),
    close: () => served.close(),
  }
}

/**
 * The model: `viewer` directly or through `owner`; `can_read` is `viewer`; `can_audit` is
 * conditional on the properties (`subject_team`, `resource_team`, `action_mode`).
 */
export const CORE_DSL = `model
  schema 1.1
type user
type doc
  relations
    define owner: [user]
    define viewer: [user] or owner
    define can_read: viewer
    define auditor: [user with same_team]
    define can_audit: auditor
condition same_team(subject_team: string, resource_team: string, action_mode: string) {
  subject_team == resource_team && action_mode == "read"
}`

/** The same model with `can_read` narrowed to owners: pinning the first model gives other answers. */
export const CORE_DSL_V2 = CORE_DSL.replace('define can_read: viewer', 'define can_read: owner')

/**
 * The tuples: maria views doc:0…doc:9 except doc:4; ben owns doc:7 only; ana is an auditor of
 * doc:1 under the condition.
 */
export const CORE_TUPLES = [
  ...[0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => `doc:${i}#viewer@user:maria`),
  'doc:7#owner@user:ben',
  'doc:1#auditor@user:ana',
]

export interface CoreStore {
  storeId: string
  /** The first model (can_read = viewer) and the latest (can_read = owner) when `twoModels`. */
  firstModel: string
  latestModel: string
}

/** coreStore creates the store; with `twoModels` the latest model is CORE_DSL_V2. */
export async function coreStore(client: TestClient, twoModels = false): Promise<CoreStore> {
  const storeId = await createStore(client, 'authzen-core')
  const firstModel = await writeModel(client, storeId, CORE_DSL)
  // The conditional tuple needs its condition named: write it apart.
  await writeTuples(client, storeId, CORE_TUPLES.filter((t) => !t.includes('auditor')))
  const r = await client.request('POST', `/stores/${storeId}/write`, {
    writes: { tuple_keys: [{ user: 'user:ana', relation: 'auditor', object: 'doc:1', condition: { name: 'same_team' } }] },
  })
  if (r.status !== 200) throw new Error(r.text)
  const latestModel = twoModels ? await writeModel(client, storeId, CORE_DSL_V2) : firstModel
  return { storeId, firstModel, latestModel }
}

/** An evaluation of `action` on `doc:<doc>` by `user:<who>`. */
export function ev(who: string, action: string, doc: string | number): Record<string, unknown> {
  return { subject: { type: 'user', id: who }, action: { name: action }, resource: { type: 'doc', id: String(doc) } }
}

/** Valid bodies for each POST endpoint of the document, against the core fixture's data. */
export function validBodies(): Record<string, unknown> {
  return {
    access_evaluation_endpoint: ev('maria', 'viewer', 0),
    access_evaluations_endpoint: { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, evaluations: [{ resource: { type: 'doc', id: '0' } }] },
    search_subject_endpoint: { subject: { type: 'user' }, action: { name: 'viewer' }, resource: { type: 'doc', id: '0' } },
    search_resource_endpoint: { subject: { type: 'user', id: 'maria' }, action: { name: 'viewer' }, resource: { type: 'doc' } },
    search_action_endpoint: { subject: { type: 'user', id: 'maria' }, resource: { type: 'doc', id: '0' } },
  }
}
