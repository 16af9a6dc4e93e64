/**
 * `npm run example:load` (examples/nhi/load.ts) against a real `pemba serve` with preshared
 * keys: it sends `Authorization: Bearer $PEMBA_API_TOKEN` when that is set, and without it the
 * server's 401 is what it reports.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startServer, type PembaProcess } from '../helpers/processes.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const KEY = 'loader-key-0123456789abcdef'
let server: PembaProcess & { url: string }

beforeAll(async () => {
  server = await startServer({
    PEMBA_DATABASE_URL: 'sqlite::memory:',
    PEMBA_AUTH_MODE: 'preshared',
    PEMBA_AUTH_PRESHARED_KEYS: `loader=${KEY}`,
    PEMBA_AUTH_ADMIN_CLIENTS: 'loader',
  })
})
afterAll(async () => {
  server?.kill()
  await server?.exited
})

function load(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const { PEMBA_API_TOKEN: _, ...rest } = process.env
    const p = spawn(join(ROOT, 'node_modules', '.bin', 'tsx'), ['examples/nhi/load.ts', ...args], { cwd: ROOT, env: { ...rest, ...env } })
    let out = ''
    let err = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    p.on('close', (code) => resolve({ code, out, err }))
  })
}

it('loads the example with the token from PEMBA_API_TOKEN, and reports the 401 without it', async () => {
  const [withToken, without, stray] = await Promise.all([
    load(['--url', server.url], { PEMBA_API_TOKEN: KEY }),
    load([`--url=${server.url}`], {}),
    load(['--url', server.url, '--bogus'], { PEMBA_API_TOKEN: KEY }),
  ])
  expect(withToken.err).toMatch(/^loaded \d+ tuples and model \w{26} into http:/)
  expect(withToken).toMatchObject({ code: 0 })
  expect(withToken.out).toMatch(/^\w{26}\n$/)
  expect(without.code).toBe(1)
  expect(without.err).toMatch(/create store: HTTP 401/)
  expect(stray.code).toBe(1)
  expect(stray.err).toMatch(/Unknown option '--bogus'/)
})
