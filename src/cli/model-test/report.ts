/**
 * The reports of `pemba model test`: text in fga's style (one line per test with its counts,
 * each failing assertion below it with its explanation, then `N passed, M failed`), JSON for
 * scripts, and JUnit XML for CI systems (one testsuite per store file, one testcase per
 * assertion).
 *
 * Counting: every assertion is one (a check's relation for one user and object; a list's
 * relation); a test that could not run, or a file that could not be read or set up, counts as
 * one failure.
 *
 * @module
 */
import type { AssertionResult, FileResult, TestResult } from './runner.ts'

export interface Totals {
  passed: number
  failed: number
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
    if (f.error) {
      lines.push(`ⅹ cannot run the file:`, ...indent(f.error.split('\n'), 2))
      continue
    }
    if (f.tests.length === 0) lines.push('(no tests)')
    for (const t of f.tests) {
      lines.push(testLine(t))
      if (t.error) lines.push(`ⅹ ${t.error}`)
      for (const a of t.assertions) if (!a.passed) lines.push(...assertionLines(a))
    }
  }
  const { passed, failed } = totals(files)
  lines.push(`${passed} passed, ${failed} failed`)
  return lines
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
 * file that could not run is one testcase with an error.
 */
export function junitReport(files: readonly FileResult[]): string {
  const { passed, failed } = totals(files)
  const seconds = (ms: number) => (ms / 1000).toFixed(3)
  const all = files.reduce((s, f) => s + f.durationMs, 0)
  const errorsOf = (f: FileResult) => (f.error ? 1 : 0) + f.tests.filter((x) => x.error).length
  const errors = files.reduce((s, f) => s + errorsOf(f), 0)
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="pemba model test" tests="${passed + failed}" failures="${failed - errors}" errors="${errors}" time="${seconds(all)}">`,
  ]
  for (const f of files) {
    const t = totals([f])
    const errors = errorsOf(f)
    out.push(
      `  <testsuite name="${xml(f.path)}" tests="${t.passed + t.failed}" failures="${t.failed - errors}" errors="${errors}" time="${seconds(f.durationMs)}">`,
    )
    if (f.error) {
      out.push(`    <testcase classname="${xml(f.name)}" name="load ${xml(f.path)}" time="0">`)
      out.push(`      <error message="${xml(firstLine(f.error))}">${xml(f.error, false)}</error>`, '    </testcase>')
    }
    for (const test of f.tests) {
      if (test.error) {
        out.push(`    <testcase classname="${xml(test.name)}" name="tuples of ${xml(test.name)}" time="0">`)
        out.push(`      <error message="${xml(test.error)}">${xml(test.error, false)}</error>`, '    </testcase>')
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
 * xml escapes text for an attribute (new lines kept as `&#10;`, which attribute normalisation
 * would otherwise turn into spaces) or an element; characters XML 1.0 cannot hold are dropped.
 */
function xml(s: string, attribute = true): string {
  const text = s
    .replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
  return attribute ? text.replace(/"/g, '&quot;').replace(/\n/g, '&#10;') : text
}
