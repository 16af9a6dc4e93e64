/**
 * AuthZEN search paging on SQLite (in memory; and a file that two replicas share): the cases of
 * search-paging.case.test.ts. PostgreSQL: search-paging-postgres.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe } from 'vitest'
import { searchPagingCases } from './search-paging.case.test.ts'

describe('AuthZEN search paging (SQLite in memory)', () => {
  searchPagingCases(() => ({ databaseUrl: 'sqlite::memory:' }), false)
})

describe('AuthZEN search paging (SQLite file, two replicas)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-search-'))
  let n = 0
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  searchPagingCases(() => ({ databaseUrl: `sqlite:${join(dir, `case-${n++}.db`)}` }), true)
})
