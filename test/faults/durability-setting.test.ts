/**
 * PEMBA_SQLITE_SYNCHRONOUS (issue 22, item 8) reaches the SQLite connection: `full` by default,
 * `normal` when asked, and any other value stops the server with a message naming the setting.
 * What each guarantees is in docs/failure-behaviour.md; what `full` costs, in bench/README.md.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba } from '../../src/server.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { runPemba } from '../helpers/processes.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-durability-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** SQLite's numbers for the pragma: 1 NORMAL, 2 FULL. */
const PRAGMA = { normal: 1, full: 2 } as const

async function synchronousOf(env: Record<string, string>): Promise<number> {
  const file = join(dir, `db-${Math.random().toString(36).slice(2)}.db`)
  const pemba = await createPemba(loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${file}`, PEMBA_LOG_LEVEL: 'silent', ...env }, argv: [] }), {
    sweeper: false,
  })
  try {
    expect(pemba.datastore).toBeInstanceOf(SqliteDatastore)
    return (pemba.datastore as SqliteDatastore).db.pragma('synchronous', { simple: true }) as number
  } finally {
    await pemba.close()
  }
}

describe('PEMBA_SQLITE_SYNCHRONOUS', () => {
  it('is FULL by default: an acknowledged write is on the disk', async () => {
    expect(await synchronousOf({})).toBe(PRAGMA.full)
    expect(await synchronousOf({ PEMBA_SQLITE_SYNCHRONOUS: 'full' })).toBe(PRAGMA.full)
  })

  it('is NORMAL when asked', async () => {
    expect(await synchronousOf({ PEMBA_SQLITE_SYNCHRONOUS: 'normal' })).toBe(PRAGMA.normal)
  })

  it('a datastore opened directly (tests, tools) is FULL too, like the server', () => {
    const ds = new SqliteDatastore({ filename: join(dir, 'direct.db') })
    try {
      expect(ds.db.pragma('synchronous', { simple: true })).toBe(PRAGMA.full)
    } finally {
      void ds.close()
    }
  })

  it('any other value stops the server, naming the setting', async () => {
    const p = runPemba(['serve'], {
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite:${join(dir, 'refused.db')}`,
      PEMBA_SQLITE_SYNCHRONOUS: 'off',
    })
    try {
      const code = await p.exited
      expect(code).not.toBe(0)
      expect(p.stderr() + p.stdout()).toMatch(/PEMBA_SQLITE_SYNCHRONOUS must be 'full' or 'normal', got 'off'/)
    } finally {
      p.kill()
    }
  }, 90_000)
})
