/**
 * How the bulk commands open the database named by `--database-url` (src/cli/import/connect.ts):
 * a SQLite file that does not exist is refused, not created and migrated into an empty
 * database; a PostgreSQL that cannot be reached fails the command at once with one line naming
 * the flag, its password hidden, where a server would retry for PEMBA_DB_STARTUP_TIMEOUT_MS.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { storeCli } from '../../src/cli/store.ts'
import { tupleCli } from '../../src/cli/tuple.ts'
import { describePostgres, probePostgres } from '../helpers/postgres.ts'
import { IMPORT_DSL, createImportStore, openDatabase, pemba } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-connect-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const tuples = join(dir, 'tuples.jsonl')
writeFileSync(tuples, '{"user":"user:anne","relation":"viewer","object":"doc:1"}\n')
const storeFile = join(dir, 's.fga.yaml')
writeFileSync(storeFile, `name: s\nmodel: |\n${IMPORT_DSL.replace(/^/gm, '  ')}\ntuples: []\ntests: []\n`)

describe('a SQLite file that does not exist', () => {
  const missing = join(dir, 'nonexist.db')
  const commands: [string, string[]][] = [
    ['tuple import', ['tuple', 'import', tuples, '--store-id', '01JSTORE0000000000000000AA']],
    ['tuple export', ['tuple', 'export', '--store-id', '01JSTORE0000000000000000AA']],
    ['store export', ['store', 'export', '--store-id', '01JSTORE0000000000000000AA']],
    ['store import', ['store', 'import', '--file', storeFile]],
  ]
  for (const [name, argv] of commands) {
    it(`${name} refuses it, exit 1, and creates nothing`, async () => {
      const r = await pemba([...argv, '--database-url', `sqlite:${missing}`], [tupleCli, storeCli])
      expect(r).toEqual({
        code: 1,
        out: '',
        err:
          `pemba ${name}: sqlite:${missing}: no such database file (--database-url); ` +
          `to start a new one, run \`pemba migrate --database-url sqlite:${missing}\` first\n`,
      })
      expect(existsSync(missing)).toBe(false)
    })
  }

  it('an existing file is opened as before', async () => {
    const url = `sqlite:${join(dir, 'existing.db')}`
    const p = await openDatabase(url)
    const storeId = await createImportStore(p)
    await p.close()
    const r = await pemba(['tuple', 'import', tuples, '--store-id', storeId, '--database-url', url, '--progress', 'none'])
    expect(r.err).toBe(`pemba tuple import: tuples.jsonl (jsonl) → database ${url}, store ${storeId}\n`)
    expect(r.code).toBe(0)
  })
})

describe('a PostgreSQL that cannot be reached', () => {
  it('fails tuple import at once with one line naming --database-url, its password hidden, and no log lines', async () => {
    // A server retries for PEMBA_DB_STARTUP_TIMEOUT_MS, logging each attempt on stderr.
    const logged: string[] = []
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk))
      return true
    })
    const t0 = Date.now()
    try {
      const argv = ['tuple', 'import', tuples, '--store-id', '01JSTORE0000000000000000AA', '--database-url', 'postgres://pemba:s3cret-pw@127.0.0.1:1/pemba']
      const r = await pemba(argv, [tupleCli], { PEMBA_DB_STARTUP_TIMEOUT_MS: '30000' })
      expect(r).toEqual({
        code: 1,
        out: '',
        err: 'pemba tuple import: cannot reach the database --database-url=postgres://pemba:***@127.0.0.1:1/pemba: connect ECONNREFUSED 127.0.0.1:1\n',
      })
    } finally {
      write.mockRestore()
    }
    expect(Date.now() - t0).toBeLessThan(5_000)
    expect(logged).toEqual([])
  }, 40_000)
})

describePostgres('a PostgreSQL that refuses the password', await probePostgres(), () => {
  it('fails with one line naming --database-url, the password hidden', async () => {
    const url = new URL((await probePostgres()).url!)
    url.password = 'not-the-password'
    const shown = new URL(url)
    shown.password = '***'
    const r = await pemba(['tuple', 'export', '--store-id', '01JSTORE0000000000000000AA', '--database-url', url.href])
    expect(r.err).toBe(`pemba tuple export: cannot open the database --database-url=${shown.href}: password authentication failed for user "${url.username}"\n`)
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
  })
})
