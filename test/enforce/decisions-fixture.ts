/**
 * What the decision-client tests share: a real Pemba over HTTP (servePemba) with a store where
 * alice may call `read_customer` but not `export_customers`, the assistant acts for alice (and
 * may call both, so only alice's own grants limit it), and helpers to build questions and to
 * find a decision again by its request id.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'vitest'
import type { AuthzenEvaluation } from '../../src/enforce/decisions.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { serveHttp, type HttpClient } from '../authzen/core-fixture.ts'

export const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type tool
  relations
    define caller: [user, agent]
    define call: caller
`
export const TUPLES = [
  'tool:crm/read_customer#caller@user:alice',
  'tool:crm/read_customer#caller@agent:assistant',
  'tool:crm/export_customers#caller@agent:assistant',
  'tool:crm/export_customers#caller@user:bob',
  'user:alice#acts_for@agent:assistant',
]

export interface DecisionsPemba {
  http: HttpClient
  url: string
  storeId: string
  close(): Promise<void>
}

/** startDecisionsPemba serves a Pemba with the store above (decisions flushed every 5 ms). */
export async function startDecisionsPemba(overrides: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<DecisionsPemba> {
  const http = await serveHttp({ decisionLogFlushMs: 5, ...overrides }, headers)
  const storeId = await createStore(http, 'enforce-decisions')
  await writeModel(http, storeId, MODEL)
  await writeTuples(http, storeId, TUPLES)
  return { http, url: http.url, storeId, close: () => http.close() }
}

/** q builds the question `subject` → `call` → `tool:crm/<tool>`. */
export function q(subject: string, tool: string, extra: Partial<AuthzenEvaluation> = {}): AuthzenEvaluation {
  const [type, id] = subject.split(':')
  return { subject: { type, id }, action: { name: 'call' }, resource: { type: 'tool', id: `crm/${tool}` }, ...extra }
}

/** decisionsByRequestId polls the decision log until the request's decisions are written. */
export async function decisionsByRequestId(p: DecisionsPemba, requestId: string, count = 1): Promise<any[]> {
  for (let i = 0; i < 200; i++) {
    const res = await p.http.request('GET', `/stores/${p.storeId}/decisions?request_id=${encodeURIComponent(requestId)}`)
    expect(res.status, res.text).toBe(200)
    if (res.body.decisions.length >= count) return res.body.decisions
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no ${count} decision(s) logged under request id ${requestId}`)
}

/** A loopback HTTP server with the handler given (a server that never answers, one that answers 503…). */
export async function rawServer(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server: Server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<string> {
  const s = await rawServer(() => {})
  await s.close()
  return s.url
}

export const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
