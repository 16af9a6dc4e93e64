/**
 * The reports of `pemba model test`: text in fga's style (one line per test with its counts,
 * each failing assertion below it with its explanation, then `N passed, M failed`), JSON for
 * scripts, and JUnit XML for CI systems (one testsuite per store file, one testcase per
 * assertion).
 *
 * Counting: every assertion is one (a check's relation for one user and object; a list's
 * relation); a test that could not run, or a file that could not be read or set up, counts as
 * one failure. A test that asserts nothing passes, as in fga, but every report shows it (the
 * text and JSON with a warning, JUnit as a skipped testcase), and so is a file with no tests.
 *
 * Everything in the text report that comes from a file (names, ids, messages) has its control
 * characters escaped, so that a store file cannot drive the terminal.
 *
 * @module
 */
import type { AssertionResult, FileResult, TestResult } from './runner.ts'

export interface Totals {
  passed: number
  failed: number
}

/** The tests that assert nothing (they pass, as in fga, and are shown). */
export function assertingNothing(files: readonly FileResult[]): number {
  return files.reduce((n, f) => n + f.tests.filter(isEmpty).length, 0)
}

function isEmpty(t: TestResult): boolean {
  return t.error === undefined && t.assertions.length === 0
}

export function totals(files: readonly FileResult[]): Totals {
  let passed = 0
  let failed = 0
  for (const f of files) {
    if (f.error) failed++
    for (const t of f.tests) {
      if (t.error) failed++
      for (const a of t.assertions) a.passed ? passed++ : failed++
    }
  }
  return { passed, failed }
}

const KINDS = [
  ['check', 'Checks'],
  ['list_objects', 'ListObjects'],
  ['list_users', 'ListUsers'],
] as const

/** The text report, as lines. */
export function textReport(files: readonly FileResult[]): string[] {
  const lines: string[] = []
  for (const f of files) {
    lines.push(f.name === f.path ? `# ${f.path}` : `# ${f.path} (${f.name})`)
    // A file that failed part-way keeps the tests it ran (they are counted): shown too.
    if (f.error) lines.push(`ⅹ cannot run the file:`, ...indent(f.error.split('\n'), 2))
    else if (f.tests.length === 0) lines.push('(no tests)')
    for (const t of f.tests) {
      lines.push(testLine(t))
      if (t.error) lines.push(`ⅹ ${t.error}`)
      for (const w of t.warnings ?? []) lines.push(`⚠ ${w}`)
      for (const a of t.assertions) if (!a.passed) lines.push(...assertionLines(a))
    }
  }
  const { passed, failed } = totals(files)
  const empty = assertingNothing(files)
  lines.push(`${passed} passed, ${failed} failed${empty ? `, ${empty} ${empty === 1 ? 'test asserts' : 'tests assert'} nothing` : ''}`)
  return lines.map(escapeControls)
}

/**
 * escapeControls shows a line's control characters (C0 but tab, DEL, C1) and bidirectional
 * overrides as escapes (`\x1b`, `\u202e`): they come from store files and must not reach a
 * terminal as such.
 */
export function escapeControls(line: string): string {
  return line.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}

/** `(FAILING) name: Checks (3/4 passing) | ListObjects (1/1 passing)`, as fga heads a test. */
function testLine(t: TestResult): string {
  const parts = KINDS.flatMap(([kind, title]) => {
    const of = t.assertions.filter((a) => a.kind === kind)
    return of.length ? [`${title} (${of.filter((a) => a.passed).length}/${of.length} passing)`] : []
  })
  const failing = t.error !== undefined || t.assertions.some((a) => !a.passed)
  return `(${failing ? 'FAILING' : 'PASSING'}) ${t.name}: ${parts.join(' | ') || 'no assertions'}`
}

function assertionLines(a: AssertionResult): string[] {
  const got = a.got === undefined ? 'N/A' : show(a.got)
  const head = `ⅹ ${a.label}: expected=${show(a.expected)}, got=${got}${a.error ? `, error=${a.error}` : ''}`
  return [head, ...indent(a.explanation ?? [], 4)]
}

function show(v: boolean | string[]): string {
  return typeof v === 'boolean' ? String(v) : `[${v.join(' ')}]`
}

function indent(lines: readonly string[], n: number): string[] {
  const pad = ' '.repeat(n)
  return lines.map((l) => pad + l)
}

/** The JSON report: every file, test and assertion, with the totals. */
export function jsonReport(files: readonly FileResult[]): unknown {
  return {
    ...totals(files),
    asserting_nothing: assertingNothing(files),
    files: files.map((f) => ({
      file: f.path,
      name: f.name,
      ...(f.error ? { error: f.error } : {}),
      ...totals([f]),
      duration_ms: round(f.durationMs),
      tests: f.tests.map((t) => ({
        name: t.name,
        ...(t.description ? { description: t.description } : {}),
        ...(t.error ? { error: t.error } : {}),
        ...(t.warnings ? { warnings: t.warnings } : {}),
        passed: t.error === undefined && t.assertions.every((a) => a.passed),
        duration_ms: round(t.durationMs),
        assertions: t.assertions.map((a) => ({
          kind: a.kind,
          request: a.request,
          expected: a.expected,
          ...(a.got !== undefined ? { got: a.got } : {}),
          passed: a.passed,
          ...(a.error ? { error: a.error } : {}),
          ...(a.explanation ? { explanation: a.explanation } : {}),
        })),
      })),
    })),
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/**
 * The JUnit XML report: a testsuite per store file, a testcase per assertion (classname: the
 * test's name), a failure with the expected and actual answers and the explanation; a test or
 * file that could not run is one testcase with an error; a test that asserts nothing, or a
 * file with no tests, one skipped testcase (so that CI shows it).
 */
export function junitReport(files: readonly FileResult[]): string {
  const { passed, failed } = totals(files)
  const seconds = (ms: number) => (ms / 1000).toFixed(3)
  const all = files.reduce((s, f) => s + f.durationMs, 0)
  const errorsOf = (f: FileResult) => (f.error ? 1 : 0) + f.tests.filter((x) => x.error).length
  const skippedOf = (f: FileResult) => (!f.error && f.tests.length === 0 ? 1 : 0) + f.tests.filter(isEmpty).length
  const errors = files.reduce((s, f) => s + errorsOf(f), 0)
  const skipped = files.reduce((s, f) => s + skippedOf(f), 0)
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="pemba model test" tests="${passed + failed + skipped}" failures="${failed - errors}" errors="${errors}" ` +
      `skipped="${skipped}" time="${seconds(all)}">`,
  ]
  for (const f of files) {
    const t = totals([f])
    const errors = errorsOf(f)
    const skipped = skippedOf(f)
    out.push(
      `  <testsuite name="${xml(f.path)}" tests="${t.passed + t.failed + skipped}" failures="${t.failed - errors}" errors="${errors}" ` +
        `skipped="${skipped}" time="${seconds(f.durationMs)}">`,
    )
    if (!f.error && f.tests.length === 0) {
      out.push(`    <testcase classname="${xml(f.name)}" name="(no tests)" time="0">`, '      <skipped message="the file has no tests"/>', '    </testcase>')
    }
    if (f.error) {
      out.push(`    <testcase classname="${xml(f.name)}" name="load ${xml(f.path)}" time="0">`)
      out.push(`      <error message="${xml(firstLine(f.error))}">${xml(f.error, false)}</error>`, '    </testcase>')
    }
    for (const test of f.tests) {
      if (test.error) {
        out.push(`    <testcase classname="${xml(test.name)}" name="tuples of ${xml(test.name)}" time="0">`)
        out.push(`      <error message="${xml(test.error)}">${xml(test.error, false)}</error>`, '    </testcase>')
      }
      if (isEmpty(test)) {
        const why = (test.warnings ?? ['the test asserts nothing']).join('; ')
        out.push(`    <testcase classname="${xml(test.name)}" name="(no assertions)" time="${seconds(test.durationMs)}">`)
        out.push(`      <skipped message="${xml(why)}"/>`, '    </testcase>')
      }
      for (const a of test.assertions) {
        const open = `    <testcase classname="${xml(test.name)}" name="${xml(a.label)}" time="${seconds(a.durationMs)}"`
        if (a.passed) {
          out.push(`${open}/>`)
          continue
        }
        const got = a.got === undefined ? 'N/A' : show(a.got)
        const message = `expected=${show(a.expected)}, got=${got}${a.error ? `, error=${a.error}` : ''}`
        out.push(`${open}>`)
        out.push(`      <failure message="${xml(message)}" type="AssertionError">${xml([message, ...(a.explanation ?? [])].join('\n'), false)}</failure>`)
        out.push('    </testcase>')
      }
    }
    out.push('  </testsuite>')
  }
  out.push('</testsuites>', '')
  return out.join('\n')
}

function firstLine(s: string): string {
  return s.split('\n')[0]
}

/**
 * xml escapes text for an attribute (new lines, carriage returns and tabs kept as `&#10;`,
 * `&#13;` and `&#9;`, which attribute normalisation would otherwise turn into spaces) or an
 * element; characters XML 1.0 cannot hold are dropped.
 */
function xml(s: string, attribute = true): string {
  const text = s
    .replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    // A parser turns a raw carriage return into a new line, in text too.
    .replace(/\r/g, '&#13;')
  return attribute ? text.replace(/"/g, '&quot;').replace(/\n/g, '&#10;').replace(/\t/g, '&#9;') : text
}
