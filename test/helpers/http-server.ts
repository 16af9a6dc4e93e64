/**
 * A real Pemba behind a real HTTP listener on a loopback port (createPemba + @hono/node-server),
 * for tests that need what only a socket shows: headers as sent, node-server's own request and
 * response objects, and the log lines a request writes.
 */
import { serve, type ServerType } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import { loadConfig, type PembaConfig } from '../../src/config.ts'
import { createRedactor } from '../../src/core/redact.ts'
import { createPemba, type Pemba, type PembaOverrides } from '../../src/server.ts'
import { createLogger } from '../../src/telemetry/logger.ts'

export interface ServedPemba {
  pemba: Pemba
  url: string
  /** Every line the instance logged, parsed. */
  lines: Record<string, unknown>[]
  /** The raw text of every line, as it would reach stdout. */
  raw: string[]
  close(): Promise<void>
}

/**
 * servePemba starts an instance on an in-memory SQLite database, logging at `info` into `lines`
 * through a logger that redacts like the CLI's (the configured preshared keys, `secrets`).
 */
export async function servePemba(
  overrides: Partial<PembaConfig> = {},
  wiring: PembaOverrides = {},
  secrets: string[] = [],
): Promise<ServedPemba> {
  const raw: string[] = []
  const lines: Record<string, unknown>[] = []
  const logger = createLogger({
    level: 'info',
    format: 'json',
    redact: createRedactor(secrets).text,
    destination: {
      write(line: string) {
        raw.push(line)
        lines.push(JSON.parse(line) as Record<string, unknown>)
      },
    },
  })
  const config = { ...loadConfig({ env: {}, argv: [] }), databaseUrl: 'sqlite::memory:', ...overrides }
  const pemba = await createPemba(config, { logger, sweeper: false, ...wiring })
  const server: ServerType = serve({ hostname: '127.0.0.1', port: 0, fetch: pemba.app.fetch })
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve()
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  const { port } = server.address() as AddressInfo
  return {
    pemba,
    url: `http://127.0.0.1:${port}`,
    lines,
    raw,
    async close() {
      await new Promise<void>((resolve) => {
        ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
        server.close(() => resolve())
      })
      await pemba.close()
    },
  }
}

/** The access log lines (`event: "request"`) logged so far. */
export function accessLines(s: ServedPemba): Record<string, unknown>[] {
  return s.lines.filter((l) => l.event === 'request')
}

/**
 * accessLineFor waits for the access log line of the request that got `requestId` (the line
 * is written as the response is handed to node, so it may trail the client's read by a tick).
 */
export async function accessLineFor(s: ServedPemba, requestId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = accessLines(s).find((l) => l.request_id === requestId)
    if (line) return line
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no access log line for request ${requestId}`)
}
