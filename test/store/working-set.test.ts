/**
 * The working set over SQLite: the shared suite (working-set.case.test.ts) with two handles on
 * one file, as two processes would have.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { runWorkingSetBatchSuite, runWorkingSetSuite } from './working-set.case.test.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-working-set-'))
let n = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

runWorkingSetSuite({
  name: 'sqlite file, two handles',
  open: async () => {
    const filename = join(dir, `db-${n++}.sqlite`)
    return { primary: new SqliteDatastore({ filename }), other: new SqliteDatastore({ filename }) }
  },
})

runWorkingSetBatchSuite({
  name: 'sqlite',
  open: async (observe) => new SqliteDatastore({ filename: join(dir, `db-${n++}.sqlite`), observer: (operation) => observe(operation) }),
})
