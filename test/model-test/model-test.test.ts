/**
 * `pemba model test`: store files written for these tests (test/fixtures/store-files/) cover
 * every field of OpenFGA's format — check (with `users`/`objects`), list_objects, list_users
 * (usersets and wildcards), conditions with every parameter type, test-level tuples, a JSON
 * model, a modular model (fga.mod), tuple files in YAML, JSON, JSONL and CSV — and pass;
 * failing files print each failing assertion with its explanation and exit 1; malformed files
 * are reported with file, line and field; the JSON and JUnit reports are parsed and checked;
 * and one run goes through the real `node bin/pemba.js` process.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runPemba } from '../helpers/processes.ts'
import { modelTest } from './run.ts'
import { parseXml, type XmlElement } from './xml.ts'

const FIXTURES = 'test/fixtures/store-files'
const PASSING = [`${FIXTURES}/pass/*.fga.yaml`, `${FIXTURES}/modular/*.fga.yaml`]
const tmp = mkdtempSync(join(tmpdir(), 'pemba-model-test-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const tests = (patterns: string[]) => patterns.flatMap((p) => ['--tests', p])

describe('store files that pass', () => {
  it('run every field of the format and exit 0', async () => {
    const r = await modelTest(tests(PASSING))
    expect(r.err).toBe('')
    expect(r.out.split('\n')).toEqual([
      `# ${FIXTURES}/pass/conditions.fga.yaml (Conditions)`,
      '(PASSING) every parameter type: Checks (19/19 passing) | ListObjects (1/1 passing) | ListUsers (2/2 passing)',
      `# ${FIXTURES}/pass/documents.fga.yaml (Documents)`,
      '(PASSING) folder inheritance: Checks (9/9 passing) | ListObjects (3/3 passing) | ListUsers (3/3 passing)',
      "(PASSING) blocking, with this test's own tuples: Checks (2/2 passing)",
      "(PASSING) the previous test's tuples are gone: Checks (1/1 passing)",
      `# ${FIXTURES}/pass/tuple-files.fga.yaml (Tuple files)`,
      '(PASSING) tuples from every file: Checks (5/5 passing) | ListUsers (2/2 passing)',
      "(PASSING) a test's tuple file: ListUsers (1/1 passing)",
      `# ${FIXTURES}/modular/modular.fga.yaml (Modular)`,
      '(PASSING) relations from both modules: Checks (4/4 passing) | ListObjects (1/1 passing)',
      '53 passed, 0 failed',
    ])
    expect(r.code).toBe(0)
  })

  it('runs a file of ~20 assertions well under a second', async () => {
    const r = await modelTest([...tests([`${FIXTURES}/pass/conditions.fga.yaml`]), '--format', 'json'])
    const report = JSON.parse(r.out)
    expect(report.files[0].passed).toBe(22)
    expect(report.files[0].duration_ms).toBeLessThan(500)
  })

  it('takes the files a shell expanded from an unquoted glob as arguments', async () => {
    const r = await modelTest([`${FIXTURES}/pass/documents.fga.yaml`, '--tests', `${FIXTURES}/modular/modular.fga.yaml`])
    expect(r.out).toMatch(/\n23 passed, 0 failed$/)
    expect(r.code).toBe(0)
  })
})

describe('failing store files', () => {
  it('print each failing assertion with its explanation, and exit 1', async () => {
    const r = await modelTest(tests([`${FIXTURES}/fail/failing.fga.yaml`]))
    expect(r.code).toBe(1)
    expect(r.out).toBe(
      [
        `# ${FIXTURES}/fail/failing.fga.yaml (Failing)`,
        '(FAILING) wrong expectations: Checks (1/4 passing) | ListObjects (0/1 passing) | ListUsers (0/1 passing)',
        // Should be allowed, is denied: every branch tried.
        'ⅹ Check(user=user:bob,relation=viewer,object=doc:spec): expected=true, got=false',
        '    denied; every branch tried failed:',
        // The direct tuple looked for, beside the userset looked into (src/engine/local-checker.ts).
        '      doc:spec#viewer@user:bob › direct: viewer: no tuple doc:spec#viewer@user:bob',
        '      group:eng#member@user:bob › direct: member: no tuple group:eng#member@user:bob',
        '      doc:spec#owner@user:bob › direct: owner: no tuple doc:spec#owner@user:bob',
        // Should be denied, is allowed: the witness path.
        'ⅹ Check(user=user:anne,relation=viewer,object=doc:spec): expected=false, got=true',
        '    allowed through:',
        '      doc:spec#viewer@user:anne',
        '      doc:spec#viewer@group:eng#member',
        '      group:eng#member@user:anne',
        "ⅹ Check(user=user:anne,relation=approver,object=doc:spec): expected=true, got=N/A, error=relation 'doc#approver' not found",
        'ⅹ ListObjects(user=user:bob,relation=viewer,type=doc): expected=[doc:spec], got=[doc:plan]',
        '    missing doc:spec: denied; every branch tried failed:',
        '      doc:spec#viewer@user:bob › direct: viewer: no tuple doc:spec#viewer@user:bob',
        '      group:eng#member@user:bob › direct: member: no tuple group:eng#member@user:bob',
        '      doc:spec#owner@user:bob › direct: owner: no tuple doc:spec#owner@user:bob',
        '    unexpected doc:plan: allowed through:',
        '      doc:plan#viewer@user:bob',
        '      computed from owner',
        '      doc:plan#owner@user:bob',
        'ⅹ ListUsers(object=doc:spec,relation=viewer,user_filter=user): expected=[user:anne user:carl], got=[user:anne]',
        '    missing user:carl: denied; every branch tried failed:',
        '      doc:spec#viewer@user:carl › direct: viewer: no tuple doc:spec#viewer@user:carl',
        '      group:eng#member@user:carl › direct: member: no tuple group:eng#member@user:carl',
        '      doc:spec#owner@user:carl › direct: owner: no tuple doc:spec#owner@user:carl',
        // Test-level tuples are written, as fga writes them: the model refuses this one.
        '(FAILING) tuples the model refuses: no assertions',
        "ⅹ the test's tuples cannot be written: Invalid tuple 'group:eng#owner@user:anne'. Reason: relation 'group#owner' not found",
        '1 passed, 6 failed',
      ].join('\n'),
    )
  })

  it("write a test's tuples, as fga does: one repeating a tuple of the file fails that test only", async () => {
    const r = await modelTest(tests([`${FIXTURES}/fail/duplicate.fga.yaml`]))
    expect(r.out.split('\n').slice(1)).toEqual([
      '(FAILING) the same tuple again: no assertions',
      "ⅹ the test's tuples cannot be written: cannot write a tuple which already exists: user: 'user:a', relation: 'viewer', " +
        "object: 'doc:1': tuple to be written already existed or the tuple to be deleted did not exist",
      '(PASSING) after it: Checks (1/1 passing)',
      '1 passed, 1 failed',
    ])
    expect(r.code).toBe(1)
  })

  it('report an invalid model at its line in the store file; the other files still run', async () => {
    const r = await modelTest(tests([`${FIXTURES}/fail/bad-model.fga.yaml`, `${FIXTURES}/pass/documents.fga.yaml`]))
    expect(r.code).toBe(1)
    expect(r.out).toContain(
      `ⅹ cannot run the file:\n  ${FIXTURES}/fail/bad-model.fga.yaml:8:32: model: 'doc#editor' relation is undefined ` +
        "(referenced by relation 'viewer' in object type 'doc')",
    )
    expect(r.out).toContain('(PASSING) folder inheritance')
    expect(r.out).toMatch(/\n18 passed, 1 failed$/)
  })
})

describe('malformed store files', () => {
  const run = async (name: string, extra: string[] = []) => {
    const r = await modelTest([...tests([`${FIXTURES}/malformed/${name}`]), ...extra])
    return { ...r, problems: r.out.split('\n').slice(2, -1).map((l) => l.trim()) }
  }

  it('name the file, line, column and field: an unknown field is refused, as fga refuses it', async () => {
    const r = await run('unknown-field.fga.yaml')
    expect(r.code).toBe(1)
    const f = `${FIXTURES}/malformed/unknown-field.fga.yaml`
    expect(r.problems).toEqual([
      `${f}:12:9: tests[0].check[0].assertions: required`,
      `${f}:14:9: tests[0].check[0]: unknown field 'asserts'`,
    ])
    expect(r.out).toMatch(/\n0 passed, 1 failed$/)
  })

  it("report every problem: a malformed user, fga's user/users and object/objects rules, two user filters", async () => {
    const r = await run('conflicts.fga.yaml')
    const f = `${FIXTURES}/malformed/conflicts.fga.yaml`
    expect(r.problems).toEqual([
      `${f}:9:5: tuples[0].user: expected a user type:id, type:* or type:id#relation`,
      `${f}:15:9: tests[0].check[0]: cannot contain both 'user' and 'users'`,
      `${f}:15:9: tests[0].check[0]: must specify 'object' or 'objects'`,
      `${f}:21:9: tests[0].list_users[0].user_filter: expected exactly one filter ({type} or {type, relation}): ListUsers takes one`,
    ])
    expect(r.code).toBe(1)
  })

  it('report a bad line of a tuple file with its line, and YAML that does not parse', async () => {
    const bad = await run('bad-tuple-file.fga.yaml')
    expect(bad.problems).toEqual([
      `${FIXTURES}/malformed/bad-tuple-file.fga.yaml: tuple_file 'bad-tuples.jsonl': line 2: object 'doc' is not type:id`,
    ])
    const yaml = await run('not-yaml.fga.yaml')
    expect(yaml.problems[0]).toMatch(/^test\/fixtures\/store-files\/malformed\/not-yaml\.fga\.yaml:1:\d+: invalid YAML: /)
    expect([bad.code, yaml.code]).toEqual([1, 1])
  })

  it('refuse a reference outside the store file directory unless --allow-external-files', async () => {
    const refused = await run('outside.fga.yaml')
    expect(refused.problems[0]).toContain(
      "outside.fga.yaml: model_file '../pass/conditions.fga': ../pass/conditions.fga is outside the store file's directory",
    )
    expect(refused.code).toBe(1)
    const allowed = await run('outside.fga.yaml', ['--allow-external-files'])
    expect(allowed.out).toMatch(/\(no tests\)\n0 passed, 0 failed$/)
    expect(allowed.code).toBe(0)

    // A symlink inside the directory that leads out of it is outside too.
    const dir = join(tmp, 'linked')
    mkdirSync(dir)
    symlinkSync(join(process.cwd(), FIXTURES, 'pass', 'conditions.fga'), join(dir, 'model.fga'))
    writeFileSync(join(dir, 'store.fga.yaml'), 'model_file: model.fga\n')
    const linked = await modelTest(['--tests', join(dir, 'store.fga.yaml')])
    expect(linked.out).toContain("model_file 'model.fga': model.fga is outside the store file's directory")
    expect(linked.code).toBe(1)
  })

  it('require a model', async () => {
    const file = join(tmp, 'no-model.fga.yaml')
    writeFileSync(file, 'name: nothing\ntests: []\n')
    const r = await modelTest(['--tests', file])
    expect(r.out).toContain(`${file}: the file has no model: give 'model' (DSL) or 'model_file'`)
    expect(r.code).toBe(1)
  })
})

describe('usage errors exit 2', () => {
  it('no --tests, a glob matching nothing, an unknown format or flag', async () => {
    const none = await modelTest([])
    expect(none).toMatchObject({ code: 2, out: '' })
    expect(none.err).toContain('give the store files with --tests <glob>')
    const nothing = await modelTest(['--tests', 'no/such/*.fga.yaml', '--tests', `${FIXTURES}/pass/*.fga.yaml`])
    expect(nothing).toMatchObject({ code: 2, out: '' })
    expect(nothing.err).toContain("no store file matches 'no/such/*.fga.yaml'")
    const format = await modelTest(['--tests', `${FIXTURES}/pass/*.fga.yaml`, '--format', 'xml'])
    expect(format.code).toBe(2)
    expect(format.err).toContain("argument 'xml' is invalid")
    const flag = await modelTest(['--test', `${FIXTURES}/pass/*.fga.yaml`])
    expect(flag.code).toBe(2)
    expect(flag.err).toContain('(Did you mean --tests?)')
  })
})

describe('reports for machines', () => {
  it('--format json: the totals, every test and assertion, the explanations', async () => {
    const r = await modelTest([...tests([`${FIXTURES}/fail/failing.fga.yaml`, `${FIXTURES}/malformed/unknown-field.fga.yaml`]), '--format', 'json'])
    expect(r.code).toBe(1)
    const report = JSON.parse(r.out)
    expect(report).toMatchObject({ passed: 1, failed: 7 })
    const [failing, malformed] = report.files
    expect(malformed).toMatchObject({ file: `${FIXTURES}/malformed/unknown-field.fga.yaml`, passed: 0, failed: 1, tests: [] })
    expect(malformed.error).toContain("14:9: tests[0].check[0]: unknown field 'asserts'")
    expect(failing).toMatchObject({ name: 'Failing', passed: 1, failed: 6 })
    const [wrong, refused] = failing.tests
    expect(refused).toMatchObject({ name: 'tuples the model refuses', passed: false, assertions: [] })
    expect(refused.error).toContain("relation 'group#owner' not found")
    expect(wrong.assertions.map((a: { kind: string; passed: boolean }) => [a.kind, a.passed])).toEqual([
      ['check', false],
      ['check', false],
      ['check', true],
      ['check', false],
      ['list_objects', false],
      ['list_users', false],
    ])
    expect(wrong.assertions[0]).toEqual({
      kind: 'check',
      request: { user: 'user:bob', relation: 'viewer', object: 'doc:spec' },
      expected: true,
      got: false,
      passed: false,
      explanation: [
        'denied; every branch tried failed:',
        '  doc:spec#viewer@user:bob › direct: viewer: no tuple doc:spec#viewer@user:bob',
        '  group:eng#member@user:bob › direct: member: no tuple group:eng#member@user:bob',
        '  doc:spec#owner@user:bob › direct: owner: no tuple doc:spec#owner@user:bob',
      ],
    })
    expect(wrong.assertions[3]).toMatchObject({ expected: true, passed: false, error: "relation 'doc#approver' not found" })
    expect(wrong.assertions[3]).not.toHaveProperty('got')
    expect(wrong.assertions[4]).toMatchObject({
      kind: 'list_objects',
      request: { user: 'user:bob', relation: 'viewer', type: 'doc' },
      expected: ['doc:spec'],
      got: ['doc:plan'],
    })
    expect(wrong.assertions[5]).toMatchObject({
      kind: 'list_users',
      request: { object: 'doc:spec', relation: 'viewer', user_filter: [{ type: 'user' }] },
      expected: ['user:anne', 'user:carl'],
      got: ['user:anne'],
    })
  })

  it('--junit: one testsuite per store file, one testcase per assertion, failures with their message', async () => {
    const out = join(tmp, 'report.xml')
    const r = await modelTest([
      ...tests([`${FIXTURES}/pass/documents.fga.yaml`, `${FIXTURES}/fail/failing.fga.yaml`, `${FIXTURES}/malformed/conflicts.fga.yaml`]),
      '--junit',
      out,
    ])
    expect(r.code).toBe(1)
    const root = parseXml(readFileSync(out, 'utf8'))
    expect(root.name).toBe('testsuites')
    expect(root.attributes).toMatchObject({ tests: '26', failures: '5', errors: '2' })
    const suites = root.children
    expect(suites.map((s) => [s.attributes.name, s.attributes.tests, s.attributes.failures, s.attributes.errors])).toEqual([
      [`${FIXTURES}/pass/documents.fga.yaml`, '18', '0', '0'],
      [`${FIXTURES}/fail/failing.fga.yaml`, '7', '5', '1'],
      [`${FIXTURES}/malformed/conflicts.fga.yaml`, '1', '0', '1'],
    ])
    const cases = (s: XmlElement) => s.children.filter((c) => c.name === 'testcase')
    expect(cases(suites[0])).toHaveLength(18)
    expect(cases(suites[0]).every((c) => c.children.length === 0)).toBe(true)
    expect(cases(suites[0])[0].attributes).toMatchObject({
      classname: 'folder inheritance',
      name: 'Check(user=user:anne,relation=viewer,object=doc:roadmap)',
    })
    const failed = cases(suites[1]).find((c) => c.attributes.name === 'Check(user=user:bob,relation=viewer,object=doc:spec)')!
    const failure = failed.children[0]
    expect(failure.name).toBe('failure')
    expect(failure.attributes.message).toBe('expected=true, got=false')
    expect(failure.text).toContain('denied; every branch tried failed:\n  doc:spec#viewer@user:bob › direct: viewer: no tuple doc:spec#viewer@user:bob\n  group:eng#member@user:bob')
    const refused = cases(suites[1]).find((c) => c.children[0]?.name === 'error')!
    expect(refused.attributes.name).toBe('tuples of tuples the model refuses')
    const load = cases(suites[2])[0].children[0]
    expect(load.name).toBe('error')
    expect(load.text).toContain("cannot contain both 'user' and 'users'")
    // The report on stdout is the text one.
    expect(r.out).toMatch(/\n19 passed, 7 failed$/)
  })

  it('a JUnit file that cannot be written fails the run, after the report', async () => {
    const r = await modelTest([...tests([`${FIXTURES}/pass/documents.fga.yaml`]), '--junit', join(tmp, 'no', 'such', 'dir.xml')])
    expect(r.out).toMatch(/\n18 passed, 0 failed$/)
    expect(r.err).toMatch(/^pemba model test: cannot write the JUnit report .*dir\.xml: ENOENT/)
    expect(r.code).toBe(1)
  })
})

describe('the pemba command', () => {
  it('node bin/pemba.js model test runs a store file and writes the JUnit report', async () => {
    const out = join(tmp, 'process.xml')
    const p = runPemba(['model', 'test', '--tests', `${FIXTURES}/pass/tuple-files.fga.yaml`, '--junit', out], {})
    try {
      expect(await p.exited).toBe(0)
    } finally {
      p.kill()
    }
    expect(p.stdout()).toBe(
      [
        `# ${FIXTURES}/pass/tuple-files.fga.yaml (Tuple files)`,
        '(PASSING) tuples from every file: Checks (5/5 passing) | ListUsers (2/2 passing)',
        "(PASSING) a test's tuple file: ListUsers (1/1 passing)",
        '8 passed, 0 failed',
        '',
      ].join('\n'),
    )
    expect(p.stderr()).toBe('')
    expect(parseXml(readFileSync(out, 'utf8')).attributes).toMatchObject({ tests: '8', failures: '0', errors: '0' })
  })
})
