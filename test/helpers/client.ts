/**
 * A test client that drives the real Hono app in-process through `app.request()`, with a fresh
 * in-memory SQLite database per client unless a database URL is given.
 */
import { createPemba, type Pemba, type PembaOverrides } from '../../src/server.ts'
import { loadConfig, type PembaConfig } from '../../src/config.ts'

export interface TestResponse {
  status: number
  headers: Headers
  text: string
  /** The parsed JSON body, or undefined when the body is empty or not JSON. */
  body: any
}

export interface TestClient {
  pemba: Pemba
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<TestResponse>
  close(): Promise<void>
}

export async function createTestClient(
  overrides: Partial<PembaConfig> = {},
  wiring: PembaOverrides = {},
): Promise<TestClient> {
  // Warnings and errors only on the test's stdout: not an access log line per request (the
  // access-log tests ask for `logLevel: 'info'` and their own logger).
  const config = { ...loadConfig({ env: {}, argv: [] }), databaseUrl: 'sqlite::memory:', logLevel: 'warn' as const, ...overrides }
  const pemba = await createPemba(config, wiring)
  return {
    pemba,
    async request(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } }
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body)
        ;(init.headers as Record<string, string>)['content-type'] ??= 'application/json'
      }
      const res = await pemba.app.request(path, init)
      const text = await res.text()
      let parsed: unknown
      try {
        parsed = text ? JSON.parse(text) : undefined
      } catch {
        parsed = undefined
      }
      return { status: res.status, headers: res.headers, text, body: parsed }
    },
    async close() {
      await pemba.close()
    },
  }
}
