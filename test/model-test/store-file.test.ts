/**
 * src/formats/store-file.ts on its own: parsing (null fields as fga's zero values, JSON text),
 * loading with references resolved relative to the store file whatever the working directory,
 * and formatStoreFile, which `pemba store export` prints and parseStoreFile reads back unchanged.
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { formatStoreFile, loadStoreFile, parseStoreFile, StoreFileError, type StoreFile } from '../../src/formats/store-file.ts'

const FIXTURES = 'test/fixtures/store-files'

describe('parseStoreFile', () => {
  it('reads empty optional fields as absent, as yaml.v3 decodes them to zero values', () => {
    const f = parseStoreFile('name: x\nmodel: m\ntuples:\ntests:\n  - name: t\n    check:\n    list_users:\n', 'x.fga.yaml')
    expect(f).toEqual({ name: 'x', model: 'm', tests: [{ name: 't' }] })
    // fga requires no test name either (the report then names the test by its index).
    expect(parseStoreFile('tests:\n  - check:\n', 'x').tests).toEqual([{ name: '' }])
  })

  it("takes YAML 1.1's yes/no/on/off for an assertion's answer, as yaml.v3 does for a Go bool", () => {
    const f = parseStoreFile('tests:\n  - name: t\n    check:\n      - user: user:a\n        object: doc:1\n        assertions: { a: yes, b: off, c: true }\n', 'x')
    expect(f.tests[0].check![0].assertions).toEqual({ a: true, b: false, c: true })
  })

  it('resolves anchors and merge keys, as yaml.v3 does', () => {
    const f = parseStoreFile(
      'tests:\n  - name: t\n    check:\n      - &base\n        user: user:a\n        object: doc:1\n        assertions: { viewer: true }\n      - <<: *base\n        object: doc:2\n',
      'x',
    )
    expect(f.tests[0].check).toEqual([
      { user: 'user:a', object: 'doc:1', assertions: { viewer: true } },
      { user: 'user:a', object: 'doc:2', assertions: { viewer: true } },
    ])
  })

  it('reads JSON, which is YAML', () => {
    const f = parseStoreFile(JSON.stringify({ model_file: 'm.fga', tests: [{ name: 't', list_objects: [{ user: 'user:a', type: 'doc', assertions: { viewer: [] } }] }] }), 'x.json')
    expect(f.tests[0].list_objects).toEqual([{ user: 'user:a', type: 'doc', assertions: { viewer: [] } }])
  })

  it('throws a StoreFileError listing each problem with its place', () => {
    let error: unknown
    try {
      parseStoreFile('name: x\nmodel_flie: m.fga\ntests:\n  - name: t\n    check:\n      - user: user:a\n        object: doc:1\n        assertions:\n          viewer: maybe\n', 'x.fga.yaml')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(StoreFileError)
    expect((error as StoreFileError).problems).toEqual([
      "x.fga.yaml:2:1: unknown field 'model_flie'",
      'x.fga.yaml:9:11: tests[0].check[0].assertions.viewer: expected boolean, received string',
    ])
  })
})

describe('parseStoreFile on the edges (what fga reads, nothing dropped)', () => {
  const check = (assertions: string, extra = '') =>
    `tests:\n  - name: t\n    check:\n      - user: user:a\n        object: doc:1\n${extra}        assertions:\n${assertions}`

  it('keeps an assertion keyed __proto__ as an own key, not a prototype', () => {
    const a = parseStoreFile(check('          __proto__: true\n          viewer: false\n'), 'x').tests[0].check![0].assertions
    expect(Object.entries(a)).toEqual([
      ['__proto__', true],
      ['viewer', false],
    ])
    expect(Object.getPrototypeOf(a)).toBe(Object.prototype)
  })

  it('reads scalars in string fields as their text, and an empty answer as false', () => {
    const f = parseStoreFile(`name: 2024\ntests:\n  - name: 010\n    description: true\n    check:\n      - user: user:a\n        object: doc:1\n        assertions: { viewer: }\n`, 'x')
    expect(f.name).toBe('2024')
    expect(f.tests[0]).toMatchObject({ name: '010', description: 'true' })
    expect(f.tests[0].check![0].assertions).toEqual({ viewer: false })
    const users = parseStoreFile('tests:\n  - name: t\n    list_users:\n      - object: doc:1\n        user_filter: [{ type: user }]\n        assertions:\n          viewer:\n', 'x')
    expect(users.tests[0].list_users![0].assertions).toEqual({ viewer: { users: [] } })
  })

  it("resolves numbers in a context as yaml.v3 does (YAML 1.1's octal and underscores), strings quoted stay strings", () => {
    const context = '        context: { a: 010, b: 1_000, c: 0b101, d: 0x1F, e: 1e3, f: "010", g: 08, h: 10.1.2.3, i: -0o17 }\n'
    const f = parseStoreFile(check('          viewer: true\n', context), 'x')
    expect(f.tests[0].check![0].context).toEqual({ a: 8, b: 1000, c: 5, d: 31, e: 1000, f: '010', g: 8, h: '10.1.2.3', i: -15 })
  })

  it('refuses an alias inside the node it names, with its place', () => {
    expect(() => parseStoreFile('name: x\nloop: &a [1, *a]\n', 'x.fga.yaml')).toThrow(/^x\.fga\.yaml:2:14: the alias \*a is inside the node it names/)
  })

  it("gives an inline model's error at the store file's line only for a plain literal block", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const dir = mkdtempSync(join(tmpdir(), 'pemba-inline-'))
    const body = ['model', '  schema 1.1', 'type user', 'type doc', '  relations', '    define viewer: [usr]']
    const load = async (header: string, lines: string[]) => {
      const path = join(dir, 'm.fga.yaml')
      writeFileSync(path, `name: m\n# a comment\nmodel: ${header}\n${lines.join('\n')}\n`)
      return loadStoreFile(path).then(
        () => '',
        (e: StoreFileError) => e.problems[0],
      )
    }
    try {
      const literal = await load('|', body.map((l) => `  ${l}`))
      expect(literal).toMatch(/m\.fga\.yaml:9:23: model: the relation type 'usr'/)
      // `|2`: two columns of indentation, the rest of the spaces belong to the text.
      const indicated = await load('|2', body.map((l) => `    ${l}`))
      expect(indicated).toMatch(/m\.fga\.yaml: model: line \d+(, column \d+)? of the inline model: /)
      const folded = await load('>', body.map((l) => `  ${l}`))
      expect(folded).toMatch(/m\.fga\.yaml: model: line \d+(, column \d+)? of the inline model: /)
      const quoted = await load(JSON.stringify(body.join('\n') + '\n'), [])
      expect(quoted).toMatch(/m\.fga\.yaml: model: line 6, column 21 of the inline model: the relation type 'usr'/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('loadStoreFile', () => {
  it('resolves model and tuple files relative to the store file, not the working directory', async () => {
    const rel = await loadStoreFile(`${FIXTURES}/pass/tuple-files.fga.yaml`)
    const abs = await loadStoreFile(resolve(FIXTURES, 'pass/tuple-files.fga.yaml'))
    expect(abs.tuples).toEqual(rel.tuples)
    // Inline first, then tuple_file, then each of tuple_files in order, as fga appends them.
    expect(rel.tuples.map((t) => t.user)).toEqual(['user:zoe', 'user:yara', 'user:jon', 'user:wes', 'user:lee', 'user:max', 'user:cat', 'user:dan'])
    expect(rel.tuples.at(-1)).toEqual({ user: 'user:dan', relation: 'member', object: 'project:alpha', condition: { name: 'weekday', context: { day: 'mon' } } })
    expect(rel.tests[1].tuples).toEqual([{ user: 'user:eve', relation: 'admin', object: 'project:gamma' }])
    expect(rel.model.type_definitions.map((t) => t.type)).toEqual(['user', 'project'])
  })

  it('combines a modular model and keeps its module metadata', async () => {
    const loaded = await loadStoreFile(join(FIXTURES, 'modular', 'modular.fga.yaml'))
    expect(loaded.model.schema_version).toBe('1.2')
    const org = loaded.model.type_definitions.find((t) => t.type === 'org')!
    expect(org.metadata?.module).toBe('core')
    expect(org.metadata?.relations?.can_file_issue?.module).toBe('tracker')
  })
})

describe('formatStoreFile', () => {
  it('writes what parseStoreFile reads back unchanged, the model as a literal block', () => {
    for (const name of ['pass/documents.fga.yaml', 'pass/conditions.fga.yaml', 'pass/tuple-files.fga.yaml', 'modular/modular.fga.yaml']) {
      const f = parseStoreFile(readFileSync(join(FIXTURES, name), 'utf8'), name)
      const text = formatStoreFile(f)
      expect(parseStoreFile(text, name), name).toEqual(f)
    }
    const f: StoreFile = {
      name: 'Exported',
      model: 'model\n  schema 1.1\ntype user\n',
      tuples: [{ user: 'user:a', relation: 'r', object: 'doc:1', condition: { name: 'c', context: { n: 1 } }, expires_at: '2030-01-01T00:00:00Z' }],
      tests: [],
    }
    const text = formatStoreFile(f)
    expect(text).toContain('model: |\n  model\n    schema 1.1\n  type user\n')
    expect(text.indexOf('name:')).toBeLessThan(text.indexOf('model:'))
    expect(parseStoreFile(text, 'x')).toEqual(f)
  })
})

describe('the example of docs/model-testing.md', () => {
  it('runs and passes, with the tuple files it names', async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { modelTest } = await import('./run.ts')
    const doc = readFileSync('docs/model-testing.md', 'utf8')
    const example = /## The store file[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc)![1]
    const dir = mkdtempSync(join(tmpdir(), 'pemba-docs-example-'))
    try {
      writeFileSync(join(dir, 'store.fga.yaml'), example)
      writeFileSync(join(dir, 'tuples.yaml'), '- user: user:bob\n  relation: viewer\n  object: doc:budget\n')
      writeFileSync(join(dir, 'more.csv'), 'user_type,user_id,relation,object_type,object_id\nuser,cy,viewer,doc,handbook\n')
      writeFileSync(join(dir, 'more.jsonl'), '{"user": "user:cy", "relation": "member", "object": "team:ops"}\n')
      writeFileSync(join(dir, 'test-tuples.yaml'), '- user: user:dee\n  relation: member\n  object: team:eng\n')
      const r = await modelTest(['--tests', join(dir, '*.fga.yaml')])
      expect(r.out).toMatch(/\(PASSING\) viewers: Checks \(1\/1 passing\) \| ListObjects \(1\/1 passing\) \| ListUsers \(1\/1 passing\)\n3 passed, 0 failed$/)
      expect(r.code).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
