import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { runDatastoreSuite } from './datastore.case.test.ts'
import { runTupleIndexSuite } from './tuple-index.case.test.ts'

runDatastoreSuite({ name: 'sqlite in memory', open: async () => new SqliteDatastore({ filename: ':memory:' }) })

const dir = mkdtempSync(join(tmpdir(), 'pemba-store-'))
let n = 0
runDatastoreSuite({ name: 'sqlite file', open: async () => new SqliteDatastore({ filename: join(dir, `db-${n++}.sqlite`) }) })
// Two handles on one file: another process writing behind the indexed one's back.
runTupleIndexSuite({
  name: 'sqlite file, two connections',
  open: async () => {
    const filename = join(dir, `db-${n++}.sqlite`)
    return { primary: new SqliteDatastore({ filename }), other: new SqliteDatastore({ filename }) }
  },
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))
