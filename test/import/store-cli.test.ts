/**
 * `pemba store export` → `pemba store import`, through HTTP and directly against the database:
 * a store (name, model, tuples with conditions and expiries, assertions with context and
 * contextual tuples) moves into a new store and exports again the same; `--tuple-file` puts the
 * tuples in a file of their own beside the store file.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { storeCli } from '../../src/cli/store.ts'
import { tupleCli } from '../../src/cli/tuple.ts'
import { parseStoreFile } from '../../src/formats/store-file.ts'
import type { Pemba } from '../../src/server.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { createImportStore, dataSet, openDatabase, pemba, sorted } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-store-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const ASSERTIONS = [
  { tupleKey: { user: 'user:u1', relation: 'viewer', object: 'doc:1' }, expectation: true, contextualTuples: [], context: undefined },
  { tupleKey: { user: 'user:u1', relation: 'owner', object: 'doc:1' }, expectation: false, contextualTuples: [], context: undefined },
  { tupleKey: { user: 'user:bob', relation: 'viewer', object: 'doc:budget' }, expectation: true, contextualTuples: [], context: { limit: 3 } },
  {
    tupleKey: { user: 'user:zed', relation: 'viewer', object: 'doc:design' },
    expectation: true,
    contextualTuples: [{ user: 'user:zed', relation: 'member', object: 'group:eng' }],
    context: undefined,
  },
]

/** A store to move: the import model, 120 tuples of every kind, four assertions. */
async function sourceStore(p: Pemba): Promise<string> {
  const storeId = await createImportStore(p, dataSet(120))
  const model = await p.models.resolve(storeId)
  await p.assertions.write(storeId, model.id, ASSERTIONS)
  return storeId
}

/** The parts of a store file that must survive the move (tuples in any order). */
function essence(text: string) {
  const f = parseStoreFile(text, 'store.fga.yaml')
  return { name: f.name, model: f.model, tuples: f.tuples ? sorted(f.tuples) : undefined, tuple_file: f.tuple_file, tests: f.tests }
}

function suite(name: string, connect: () => Promise<{ flags: string[]; pemba: () => Promise<Pemba>; done: (p: Pemba) => Promise<void> }>) {
  describe(name, () => {
    let flags: string[]
    let source: string
    let open: () => Promise<Pemba>
    let done: (p: Pemba) => Promise<void>
    beforeAll(async () => {
      ;({ flags, pemba: open, done } = await connect())
      const p = await open()
      source = await sourceStore(p)
      await done(p)
    })

    it('export → import → export: the same store', async () => {
      const first = join(dir, `${name.length}-first.fga.yaml`)
      // Expiring tuples make the default export refuse: OpenFGA would keep them forever.
      const refused = await pemba(['store', 'export', '--store-id', source, '--output-file', first, ...flags], [storeCli])
      expect(refused.code).toBe(1)
      expect(refused.err).toMatch(/expires at 2099-01-01T00:00:00Z: OpenFGA has no expiring tuples .*--expiring keep .*--expiring omit/)
      const omitted = await pemba(['store', 'export', '--store-id', source, '--expiring', 'omit', ...flags], [storeCli])
      expect(omitted.code, omitted.err).toBe(0)
      expect(omitted.err).toMatch(/124 tuples, 2 expiring tuples left out, 4 assertions/)
      expect(parseStoreFile(omitted.out, 'o.fga.yaml').tuples!.some((t) => t.expires_at)).toBe(false)
      const exported = await pemba(['store', 'export', '--store-id', source, '--output-file', first, '--expiring', 'keep', ...flags], [storeCli])
      expect(exported.code, exported.err).toBe(0)
      expect(exported.err).toMatch(/126 tuples, 4 assertions/)
      const text = readFileSync(first, 'utf8')
      expect(text).toMatch(/^name: import-test\nmodel: \|/)
      const file = parseStoreFile(text, first)
      expect(file.tests).toEqual([
        {
          name: 'Tests',
          check: [
            { user: 'user:u1', object: 'doc:1', assertions: { viewer: true, owner: false } },
            { user: 'user:bob', object: 'doc:budget', context: { limit: 3 }, assertions: { viewer: true } },
          ],
        },
        {
          name: 'Tests with contextual tuples 1',
          tuples: [{ user: 'user:zed', relation: 'member', object: 'group:eng' }],
          check: [{ user: 'user:zed', object: 'doc:design', assertions: { viewer: true } }],
        },
      ])

      const imported = await pemba(['store', 'import', '--file', first, ...flags], [storeCli])
      expect(imported.code, imported.err).toBe(0)
      const answer = JSON.parse(imported.out) as { store: { id: string; name: string }; tuples: { accepted: number; refused: number }; assertions: number }
      expect(answer).toMatchObject({ store: { name: 'import-test' }, tuples: { accepted: 126, refused: 0 }, assertions: 4 })
      expect(answer.store.id).not.toBe(source)

      const second = join(dir, `${name.length}-second.fga.yaml`)
      const again = await pemba(['store', 'export', '--store-id', answer.store.id, '--output-file', second, '--expiring', 'keep', ...flags], [storeCli])
      expect(again.code, again.err).toBe(0)
      expect(essence(readFileSync(second, 'utf8'))).toEqual(essence(text))
    })

    it('a store name the API refuses is refused on this path too, before anything is created', async () => {
      const file = join(dir, `${name.length}-short-name.fga.yaml`)
      writeFileSync(file, 'name: rv\nmodel: |\n  model\n    schema 1.1\n  type user\ntuples: []\ntests: []\n')
      const p = await open()
      const before = (await p.stores.list('', { pageSize: 100 })).items.length
      await done(p)
      const r = await pemba(['store', 'import', '--file', file, ...flags], [storeCli])
      expect(r.code).toBe(1)
      expect(r.err).toMatch(/the store name 'rv' is not 3 to 64 letters/)
      const q = await open()
      expect((await q.stores.list('', { pageSize: 100 })).items.length).toBe(before)
      await done(q)
    })

    it('--tuple-file: the tuples in a file of their own, imported from there', async () => {
      const storeFile = join(dir, `${name.length}-split.fga.yaml`)
      const tupleFile = join(dir, `${name.length}-split-tuples.csv`)
      const exported = await pemba(['store', 'export', '--store-id', source, '--output-file', storeFile, '--tuple-file', tupleFile, '--expiring', 'keep', ...flags], [storeCli])
      expect(exported.code, exported.err).toBe(0)
      expect(parseStoreFile(readFileSync(storeFile, 'utf8'), storeFile).tuple_file).toBe(`${name.length}-split-tuples.csv`)
      expect(readFileSync(tupleFile, 'utf8').split('\n')[0]).toMatch(/^user_type,user_id,/)
      // Into an existing store this time (--store-id), as fga allows.
      const p = await open()
      const target = (await p.stores.create('empty', '')).id
      await done(p)
      const imported = await pemba(['store', 'import', '--file', storeFile, '--store-id', target, ...flags], [storeCli])
      expect(imported.code, imported.err).toBe(0)
      // The store's own name reported, and said on stderr that an existing store was filled.
      expect(JSON.parse(imported.out)).toMatchObject({ store: { id: target, name: 'empty' }, tuples: { accepted: 126 } })
      expect(imported.err).toContain(`filling the existing store ${target} 'empty' (--store-id)`)
      const back = await pemba(['store', 'export', '--store-id', target, '--expiring', 'keep', ...flags], [storeCli])
      const original = await pemba(['store', 'export', '--store-id', source, '--expiring', 'keep', ...flags], [storeCli])
      expect({ ...essence(back.out), name: 'x' }).toEqual({ ...essence(original.out), name: 'x' })
    })

    it('FGA_STORE_ID fills that store, said on stderr; no assertions export no tests', async () => {
      const p = await open()
      const target = await createImportStore(p)
      await done(p)
      const bare = await pemba(['store', 'export', '--store-id', target, ...flags], [storeCli])
      expect(bare.code, bare.err).toBe(0)
      expect(parseStoreFile(bare.out, 'b.fga.yaml').tests).toEqual([])
      const file = join(dir, `${name.length}-env.fga.yaml`)
      writeFileSync(file, bare.out.replace('name: import-test', 'name: other-name'))
      const r = await pemba(['store', 'import', '--file', file, ...flags], [storeCli], { FGA_STORE_ID: target })
      expect(r.code, r.err).toBe(0)
      expect(r.err).toContain(`filling the existing store ${target} 'import-test' (FGA_STORE_ID)`)
      expect(JSON.parse(r.out)).toMatchObject({ store: { id: target, name: 'import-test' } })
    })

    it("a check on a relation the model lacks: the test named, nothing created", async () => {
      const file = join(dir, `${name.length}-bad-test.fga.yaml`)
      writeFileSync(
        file,
        'name: Documents\nmodel: |\n  model\n    schema 1.1\n  type user\n  type doc\n    relations\n      define viewer: [user]\n' +
          'tuples:\n  - { user: "user:a", relation: viewer, object: "doc:1" }\ntests:\n  - name: editors\n    check:\n      - user: user:a\n        object: doc:1\n        assertions: { viewer: true, editor: false }\n',
      )
      const p = await open()
      const before = (await p.stores.list('', { pageSize: 100 })).items.length
      await done(p)
      const r = await pemba(['store', 'import', '--file', file, ...flags], [storeCli])
      expect(r.code).toBe(1)
      expect(r.err).toMatch(/test 'editors' \(tests\[0\]\), check\[0\] on doc:1: relation 'doc#editor' not found in the model/)
      const q = await open()
      expect((await q.stores.list('', { pageSize: 100 })).items.length).toBe(before)
      await done(q)
    })

    it('--tuple-file is taken beside --output-file, never replaces a file unless --force, and a refused export leaves none', async () => {
      const sub = mkdtempSync(join(dir, `${name.length}-beside-`))
      const storeFile = join(sub, 's.fga.yaml')
      const name_ = `beside-${name.length}.csv`
      // Relative to the store file's directory, not to the working directory.
      const exported = await pemba(['store', 'export', '--store-id', source, '--output-file', storeFile, '--tuple-file', name_, '--expiring', 'keep', ...flags], [storeCli])
      expect(exported.code, exported.err).toBe(0)
      expect(existsSync(join(sub, name_))).toBe(true)
      expect(existsSync(name_)).toBe(false)
      expect(parseStoreFile(readFileSync(storeFile, 'utf8'), storeFile).tuple_file).toBe(name_)
      const again = await pemba(['store', 'export', '--store-id', source, '--output-file', storeFile, '--tuple-file', name_, '--expiring', 'keep', ...flags], [storeCli])
      expect(again.code).toBe(2)
      expect(again.err).toMatch(/the tuple file .* exists; give --force to replace it/)
      const forced = await pemba(['store', 'export', '--store-id', source, '--output-file', storeFile, '--tuple-file', name_, '--force', '--expiring', 'keep', ...flags], [storeCli])
      expect(forced.code, forced.err).toBe(0)
      const outside = await pemba(['store', 'export', '--store-id', source, '--output-file', storeFile, '--tuple-file', '../out.csv', ...flags], [storeCli])
      expect(outside.code).toBe(2)
      expect(outside.err).toMatch(/--tuple-file '\.\.\/out\.csv' is outside the store file's directory/)
      // Refused on an expiring tuple half way: no partial tuple file (nor its temporary) left.
      const refused = await pemba(['store', 'export', '--store-id', source, '--output-file', join(sub, 'r.fga.yaml'), '--tuple-file', 'refused.csv', ...flags], [storeCli])
      expect(refused.code).toBe(1)
      expect(readdirSync(sub).sort()).toEqual([name_, 's.fga.yaml'].sort())
      const tuples = await pemba(['tuple', 'export', '--store-id', source, '--output', join(sub, 'refused.jsonl'), ...flags], [tupleCli])
      expect(tuples.code).toBe(1)
      expect(readdirSync(sub).sort()).toEqual([name_, 's.fga.yaml'].sort())
    })
  })
}

let served: ServedPemba
suite('through HTTP', async () => {
  served = await servePemba({ logLevel: 'warn' })
  return { flags: ['--api-url', served.url], pemba: async () => served.pemba, done: async () => {} }
})
afterAll(async () => served?.close())

const databaseUrl = `sqlite:${join(dir, 'stores.db')}`
suite('directly against the database', async () => ({
  flags: ['--database-url', databaseUrl],
  pemba: () => openDatabase(databaseUrl),
  done: (p) => p.close(),
}))

describe('store import refusals', () => {
  it('a store file that cannot be read: its problems, exit 1, nothing created', async () => {
    const r = await pemba(['store', 'import', '--file', join(dir, 'missing.fga.yaml'), '--database-url', databaseUrl], [storeCli])
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/missing\.fga\.yaml: cannot read the file: no such file/)
  })
})

describe('store import --help', () => {
  it("shows --max-tuples-per-write as fga's flag among the command's options, not the server setting", async () => {
    const r = await pemba(['store', 'import', '--help'], [storeCli])
    const text = r.out + r.err
    const options = text.slice(text.indexOf('Options:'), text.indexOf('\n\n', text.indexOf('Options:')))
    expect(options).toMatch(/--max-tuples-per-write <n>\s+tuples per write request, as fga's flag/)
    expect(text).not.toMatch(/PEMBA_MAX_TUPLES_PER_WRITE/)
  })
})
