/**
 * What the Access Request Service's tests share (arap-flow.test.ts, arap-requests.test.ts): a
 * real Pemba on a loopback port with a fake clock, a model with a requestable relation
 * (`document#viewer`, approved by the reviewers team), and the profile's steps as calls.
 */
import { expect } from 'vitest'
import type { PembaConfig } from '../../src/config.ts'
import type { TestResponse } from '../helpers/client.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { fetchJson } from './core-fixture.ts'

export const DSL = `model
  schema 1.1
type agent
type user
  relations
    define acts_for: [agent]
type team
  relations
    define member: [user]
type document
  relations
    define viewer: [user, agent]
    define viewer_approver: [team#member]
    define editor: [user]
`

export const TUPLES = [
  'team:reviewers#member@user:rita',
  'team:reviewers#member@user:ray',
  'document:plan-7#viewer_approver@team:reviewers#member',
  // ray's helper acts for him: ray may not approve the helper's requests.
  'user:ray#acts_for@agent:helper',
]

export const T0 = Date.parse('2026-12-01T09:00:00Z')
export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const PROBLEM = 'application/problem+json'

/** A running server, its store and PDP identifier, and a clock the test moves. */
export interface Arap {
  served: ServedPemba
  store: string
  pdp: string
  clock: { now: number }
  /** Sends a request (with the headers startArap was given, then these). */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<TestResponse>
  close(): Promise<void>
}

/** startArap serves Pemba (with `config`), creates a store with DSL and TUPLES. `auth`: the admin's headers. */
export async function startArap(config: Partial<PembaConfig> = {}, auth: Record<string, string> = {}): Promise<Arap> {
  const clock = { now: T0 }
  // The tests' token issuers fetch keys from loopback (the SSRF guard refuses it by default).
  const served = await servePemba({ jwksAllowPrivate: 'on', ...config }, { clock: () => new Date(clock.now) })
  const client = {
    pemba: served.pemba,
    request: (method: string, path: string, body?: unknown, h: Record<string, string> = {}) =>
      fetchJson(served.url + path, method, body, { ...auth, ...h }),
    close: () => served.close(),
  }
  const store = await createStore(client)
  await writeModel(client, store, DSL)
  await writeTuples(client, store, TUPLES)
  return {
    served,
    store,
    pdp: `${served.url}/stores/${store}`,
    clock,
    call: async (method, path, body, h = {}) => withServerErrors(served, await fetchJson(served.url + path, method, body, { ...auth, ...h })),
    close: () => served.close(),
  }
}

/**
 * withServerErrors: a 5xx answer's text gains the server's error log lines (level ≥ 50, with the
 * request id and the stack), so an assertion on it (`expect(r.status, r.text)`) says what failed.
 */
function withServerErrors(served: ServedPemba, r: TestResponse): TestResponse {
  if (r.status < 500) return r
  const errors = served.lines.filter((l) => typeof l.level === 'number' && l.level >= 50)
  r.text = `${r.text}\nserver error log (${errors.length} lines):\n${errors.map((l) => JSON.stringify(l)).join('\n')}`
  return r
}

export type Entity = { type: string; id: string; properties?: Record<string, unknown> }

/** evaluate asks one AuthZEN evaluation of the store; a denial of a requestable relation carries access_request. */
export async function evaluate(
  a: Arap,
  subject: Entity,
  action: string,
  resource: Entity,
  context?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ decision: boolean; context?: Record<string, any> }> {
  const r = await a.call('POST', `/stores/${a.store}/access/v1/evaluation`, { subject, action: { name: action }, resource, context }, headers)
  expect(r.status, r.text).toBe(200)
  return r.body
}

/**
 * requestable: evaluates (expecting a requestable denial) and returns the submission a PEP
 * makes from it: the same request (and context), the denial echoed.
 * Evaluate with the submitting client's headers: a denial is only that client's to request.
 */
export async function requestable(...args: Parameters<typeof evaluate>) {
  const [, subject, action, resource, context] = args
  const d = await evaluate(...args)
  expect(d.decision).toBe(false)
  const denial = d.context!
  expect(denial.access_request, JSON.stringify(d)).toBeDefined()
  return {
    subject,
    action: { name: action },
    resource,
    ...(context ? { context } : {}),
    denial: {
      evaluation_id: denial.evaluation_id as string,
      expires_at: denial.access_request.expires_at as string,
      binding_token: denial.access_request.binding_token as string,
    },
  } as Record<string, unknown>
}

export function submit(a: Arap, body: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
  return a.call('POST', `/stores/${a.store}/access/v1/requests`, body, headers)
}

/** expectProblem: a problem+json refusal of the profile (§8.45): the URN of `code`, its status. */
export function expectProblem(r: TestResponse, status: number, code: string, detail?: RegExp): void {
  expect(r.status, r.text).toBe(status)
  expect(r.headers.get('content-type'), r.text).toBe(PROBLEM)
  expect(r.body).toMatchObject({ type: `urn:openid:authzen:access-request:error:${code}`, status, code })
  expect(typeof r.body.title).toBe('string')
  if (detail) expect(r.body.detail).toMatch(detail)
}

export const user = (id: string, properties?: Record<string, unknown>): Entity =>
  properties ? { type: 'user', id, properties } : { type: 'user', id }
export const doc = (id = 'plan-7'): Entity => ({ type: 'document', id })
