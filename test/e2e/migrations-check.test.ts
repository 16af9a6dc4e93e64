/**
 * `pemba serve` with PEMBA_MIGRATIONS=check on a SQLite file that has not been migrated: it
 * refuses to start, says why and what to do, exits non-zero, and leaves no file behind. (The
 * PostgreSQL run, including `pemba migrate` and the restart, is in replicas-postgres.test.ts.)
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { runPemba, type PembaProcess } from '../helpers/processes.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-check-'))
const procs: PembaProcess[] = []
afterAll(async () => {
  for (const p of procs) p.kill()
  await Promise.all(procs.map((p) => p.exited))
  rmSync(dir, { recursive: true, force: true })
})

it('refuses to serve an unmigrated SQLite file under PEMBA_MIGRATIONS=check', { timeout: 60_000 }, async () => {
  const file = join(dir, 'pemba.db')
  const p = runPemba(['serve'], { PEMBA_DATABASE_URL: `sqlite:${file}`, PEMBA_MIGRATIONS: 'check', PEMBA_PORT: '0' })
  procs.push(p)
  expect(await p.exited).toBe(1)
  expect(p.stdout()).toMatch(/refusing to start: sqlite:.*pemba\.db has 6 pending migration\(s\) \(0000_init, 0001_expiry_and_access_requests, 0002_audit_and_token_issuers, 0003_decision_log_write_optimized, 0004_authzen, 0005_covering_reads\)/)
  expect(p.stdout()).not.toMatch(/listening on/)
  expect(existsSync(file)).toBe(false)
})
