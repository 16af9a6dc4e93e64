/**
 * Start-up as structured log events: the migrations `auto` applies are one `migrations_applied`
 * line naming them, and a start with nothing pending logs none.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { DEFAULTS } from '../../src/config.ts'
import { createPemba } from '../../src/server.ts'
import { createLogger } from '../../src/telemetry/logger.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-startup-log-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function startAndStop(databaseUrl: string): Promise<Record<string, unknown>[]> {
  const lines: string[] = []
  const logger = createLogger({ level: 'info', format: 'json', redact: (s) => s, destination: { write: (l: string) => void lines.push(l) } })
  const pemba = await createPemba({ ...DEFAULTS, databaseUrl }, { logger, sweeper: false })
  await pemba.close()
  logger.flush()
  return lines.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
}

it('logs the migrations applied at start as one event, and none when nothing is pending', async () => {
  const url = `sqlite:${join(dir, 'pemba.db')}`
  const first = (await startAndStop(url)).filter((e) => e.event === 'migrations_applied')
  expect(first).toHaveLength(1)
  expect(first[0]).toMatchObject({ level: 'info', database: url })
  expect(first[0]!.migrations).toEqual(expect.arrayContaining(['0000_init']))
  expect((first[0]!.migrations as string[]).length).toBeGreaterThanOrEqual(4)
  const second = (await startAndStop(url)).filter((e) => e.event === 'migrations_applied')
  expect(second).toEqual([])
})
