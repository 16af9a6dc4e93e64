/**
 * `pemba model test` on the edges of the format, where a test tool must neither pass wrongly
 * nor die: empty `users`/`objects` lists beside `user`/`object` (fga falls back to the single
 * one), entries and tests that assert nothing (passed, as fga passes them, but shown), an
 * assertion keyed `__proto__`, anchors reused many times and alias bombs, scalars where fga
 * reads strings, and the reports' escaping of what comes from a file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { escapeControls, junitReport, textReport } from '../../src/cli/model-test/report.ts'
import type { FileResult } from '../../src/cli/model-test/runner.ts'
import { modelTest } from './run.ts'
import { parseXml, type XmlElement } from './xml.ts'

const tmp = mkdtempSync(join(tmpdir(), 'pemba-model-test-edges-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const MODEL = 'model: |\n  model\n    schema 1.1\n  type user\n  type doc\n    relations\n      define viewer: [user]\n'

/** file writes a store file with MODEL and the given rest, returning its path. */
function file(name: string, rest: string): string {
  const path = join(tmp, name)
  writeFileSync(path, `name: ${name}\n${MODEL}${rest}`)
  return path
}

describe('assertions are never dropped', () => {
  it('an empty users or objects list beside user or object: the single one is checked, as fga does', async () => {
    const path = file(
      'empty-lists.fga.yaml',
      [
        'tests:',
        '  - name: empty users',
        '    check:',
        '      - { user: user:anne, users: [], object: doc:1, assertions: { viewer: true } }',
        '  - name: empty objects',
        '    check:',
        '      - { user: user:anne, object: doc:1, objects: [], assertions: { viewer: true } }',
        '',
      ].join('\n'),
    )
    const r = await modelTest(['--tests', path])
    expect(r.out).toContain('(FAILING) empty users: Checks (0/1 passing)\nⅹ Check(user=user:anne,relation=viewer,object=doc:1): expected=true, got=false')
    expect(r.out).toContain('(FAILING) empty objects: Checks (0/1 passing)')
    expect(r.out).toMatch(/\n0 passed, 2 failed$/)
    expect(r.code).toBe(1)
  })

  it("an assertion keyed __proto__ is asserted like any other (here: a relation the model lacks)", async () => {
    const path = file('proto.fga.yaml', 'tests:\n  - name: p\n    check:\n      - user: user:anne\n        object: doc:1\n        assertions:\n          __proto__: true\n')
    const r = await modelTest(['--tests', path])
    expect(r.out).toContain("ⅹ Check(user=user:anne,relation=__proto__,object=doc:1): expected=true, got=N/A, error=relation 'doc#__proto__' not found")
    expect(r.code).toBe(1)
  })

  it('a test or an entry that asserts nothing passes, as in fga, but every report shows it', async () => {
    const path = file(
      'empty.fga.yaml',
      [
        'tests:',
        '  - name: nothing',
        '  - name: half',
        '    check:',
        '      - { user: user:anne, object: doc:1, assertions: { viewer: false } }',
        '      - { user: user:anne, object: doc:1, assertions: {} }',
        '',
      ].join('\n'),
    )
    const junit = join(tmp, 'empty.xml')
    const r = await modelTest(['--tests', path, '--junit', junit])
    expect(r.out.split('\n').slice(1)).toEqual([
      '(PASSING) nothing: no assertions',
      '⚠ the test asserts nothing',
      '(PASSING) half: Checks (1/1 passing)',
      '⚠ check[1] has no assertions',
      '1 passed, 0 failed, 1 test asserts nothing',
    ])
    expect(r.code).toBe(0)
    const suite = parseXml(readFileSync(junit, 'utf8')).children[0]
    expect(suite.attributes).toMatchObject({ tests: '2', failures: '0', errors: '0', skipped: '1' })
    const skipped = suite.children.find((c) => c.children[0]?.name === 'skipped')!
    expect(skipped.attributes).toMatchObject({ classname: 'nothing', name: '(no assertions)' })
    expect(skipped.children[0].attributes.message).toBe('the test asserts nothing')

    const json = JSON.parse((await modelTest(['--tests', path, '--format', 'json'])).out)
    expect(json).toMatchObject({ passed: 1, failed: 0, asserting_nothing: 1 })
    expect(json.files[0].tests.map((t: { warnings?: string[] }) => t.warnings)).toEqual([['the test asserts nothing'], ['check[1] has no assertions']])
  })

  it('a file with no tests is a skipped testcase in JUnit', async () => {
    const junit = join(tmp, 'no-tests.xml')
    const r = await modelTest(['--tests', file('no-tests.fga.yaml', 'tests: []\n'), '--junit', junit])
    expect(r.out).toMatch(/\(no tests\)\n0 passed, 0 failed$/)
    const suite = parseXml(readFileSync(junit, 'utf8')).children[0]
    expect(suite.attributes).toMatchObject({ tests: '1', skipped: '1' })
    expect(suite.children[0].children[0].attributes.message).toBe('the file has no tests')
  })
})

describe('YAML aliases', () => {
  it('an anchor reused hundreds of times is an ordinary file', async () => {
    const reuses = Array.from({ length: 300 }, (_, i) => `      - { <<: *c, user: user:u${i} }`)
    const path = file('reuse.fga.yaml', ['tests:', '  - name: t', '    check:', '      - &c { user: user:x, object: doc:1, assertions: { viewer: false } }', ...reuses, ''].join('\n'))
    const r = await modelTest(['--tests', path])
    expect(r.out).toMatch(/\(PASSING\) t: Checks \(301\/301 passing\)\n301 passed, 0 failed$/)
    expect(r.code).toBe(0)
  })

  it('an alias bomb fails its file with the place; the other files still run and JUnit is written', async () => {
    const levels = Array.from({ length: 8 }, (_, i) => `x${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`)
    const bomb = file('bomb.fga.yaml', ['x0: &a0 [a, a, a, a, a, a, a, a, a, a]', ...levels, 'tests: []', ''].join('\n'))
    const fine = file('fine.fga.yaml', 'tests:\n  - name: ok\n    check:\n      - { user: user:a, object: doc:1, assertions: { viewer: false } }\n')
    const junit = join(tmp, 'bomb.xml')
    const r = await modelTest(['--tests', bomb, '--tests', fine, '--junit', junit])
    expect(r.err).toBe('')
    expect(r.out).toMatch(new RegExp(`${bomb}:14:\\d+: the aliases expand the file beyond 1000000 values \\(stopped at \\*a\\d\\)`))
    expect(r.out).toMatch(/\(PASSING\) ok: Checks \(1\/1 passing\)\n1 passed, 1 failed$/)
    expect(r.code).toBe(1)
    expect(parseXml(readFileSync(junit, 'utf8')).attributes).toMatchObject({ tests: '2', errors: '1' })
  })
})

describe('scalars read as fga reads them', () => {
  it('numbers and booleans where fga reads strings; an empty answer is false', async () => {
    const path = join(tmp, 'scalars.fga.yaml')
    writeFileSync(
      path,
      `name: 2024\n${MODEL}tests:\n  - name: 404\n    description: true\n    check:\n      - user: user:a\n        object: doc:1\n        assertions:\n          viewer:\n`,
    )
    const r = await modelTest(['--tests', path, '--format', 'json'])
    const report = JSON.parse(r.out)
    expect(report.files[0].name).toBe('2024')
    expect(report.files[0].tests[0]).toMatchObject({ name: '404', description: 'true', passed: true })
    expect(report.files[0].tests[0].assertions[0]).toMatchObject({ expected: false, got: false })
    expect(r.code).toBe(0)
  })
})

describe('the reports', () => {
  const withNasties: FileResult = {
    path: 'x.fga.yaml',
    name: 'x\x1b[31m',
    error: 'the run broke after a test',
    durationMs: 1,
    tests: [
      {
        name: 'a\rb\tc\x1b]0;title\x07',
        durationMs: 1,
        assertions: [
          { kind: 'check', label: 'Check(user=user:\u202eevil,relation=r,object=doc:1)', request: {}, expected: true, got: false, passed: false, durationMs: 1 },
        ],
      },
    ],
  }

  it('text: control characters escaped; the tests a broken file ran are still shown', () => {
    const lines = textReport([withNasties])
    expect(lines).toEqual([
      '# x.fga.yaml (x\\x1b[31m)',
      'ⅹ cannot run the file:',
      '  the run broke after a test',
      '(FAILING) a\\x0db\tc\\x1b]0;title\\x07: Checks (0/1 passing)',
      'ⅹ Check(user=user:\\u202eevil,relation=r,object=doc:1): expected=true, got=false',
      '0 passed, 2 failed',
    ])
    expect(escapeControls('\x00\x7f\x9b\u2066')).toBe('\\x00\\x7f\\x9b\\u2066')
  })

  it('JUnit: carriage returns and tabs survive in attributes', () => {
    const root = parseXml(junitReport([withNasties]))
    const cases = (s: XmlElement) => s.children.filter((c) => c.name === 'testcase')
    const test = cases(root.children[0]).find((c) => c.children[0]?.name === 'failure')!
    expect(test.attributes.classname).toBe('a\rb\tc\x1b]0;title\x07'.replace(/[\x1b\x07]/g, ''))
  })

  it('JUnit: a file that cannot be loaded is named by its name when it has one', async () => {
    const junit = join(tmp, 'load.xml')
    await modelTest(['--tests', 'test/fixtures/store-files/malformed/unknown-field.fga.yaml', '--junit', junit])
    const suite = parseXml(readFileSync(junit, 'utf8')).children[0]
    expect(suite.children[0].attributes.classname).toBe('Unknown field')
  })
})
