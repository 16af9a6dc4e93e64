/**
 * Compile-time diagnostics in cel-go's format: where cel-go places an issue, how
 * `issues.Err()` prints it (`ERROR: name:line:col: message` with the source line and a caret),
 * and the rewording of cel-js type-check errors and type names into cel-go's.
 *
 * @module
 */
import type { CelNode } from './cel-ast.ts'
import { GLOBAL_FUNCTIONS, MEMBER_FUNCTIONS } from './environment.ts'

/** cel-go's names of the ordering operators, as its overload errors print them. */
export const COMPARISONS: Record<string, string> = {
  '<': '_<_',
  '<=': '_<=_',
  '>': '_>_',
  '>=': '_>=_',
}
const OPERATOR_NAMES: Record<string, string> = {
  ...COMPARISONS,
  '==': '_==_',
  '!=': '_!=_',
  '+': '_+_',
  '-': '_-_',
  '*': '_*_',
  '/': '_/_',
  '%': '_%_',
  in: '@in',
  '!': '!_',
}
/** The numeric types, which cel-go never orders against one another. */
export const NUMERIC = new Set(['int', 'uint', 'double'])

/** celGoType spells a cel-js type name the way cel-go prints it. */
export function celGoType(t: string): string {
  if (t === 'list') return 'list(dyn)'
  if (t === 'map') return 'map(dyn, dyn)'
  return t.replaceAll('<', '(').replaceAll('>', ')')
}

export interface CelError {
  code?: string
  summary?: string
  message: string
  range?: { start: number }
  node?: CelNode
}

/**
 * issuePosition is where cel-go places an issue: at the operator of a binary expression and at
 * the opening parenthesis of a call, where cel-js reports the start of the expression.
 */
export function issuePosition(expression: string, n: CelNode): number {
  const a = n.args
  const after = (from: number, pattern: RegExp): number => {
    pattern.lastIndex = from
    const m = pattern.exec(expression)
    return m ? m.index : n.pos
  }
  if (OPERATOR_NAMES[n.op] && Array.isArray(a) && a.length === 2 && typeof a[0]?.end === 'number') {
    return after(a[0].end, /\S/g)
  }
  if (n.op === 'call') return after(n.pos, /\(/g)
  if (n.op === 'rcall' && typeof a[1]?.end === 'number') return after(a[1].end, /\(/g)
  return n.pos ?? 0
}

/** celIssue formats a CEL error the way cel-go's `issues.Err()` does. */
export function celIssue(name: string, expression: string, pos: number, message: string): string {
  const before = Array.from(expression.slice(0, pos))
  let line = 1
  let col = 0
  for (const ch of before) {
    if (ch === '\n') {
      line++
      col = 0
    } else col++
  }
  const text = expression.split('\n')[line - 1] ?? ''
  return `ERROR: ${name}:${line}:${col + 1}: ${message}\n | ${text}\n | ${'.'.repeat(col)}^`
}

/** celTypeMessage rewords cel-js type-check errors into cel-go's wording where they map. */
export function celTypeMessage(e: CelError): string {
  const summary = e.summary ?? e.message
  if (e.code === 'unknown_variable') {
    const variable = summary.replace(/^Unknown variable: /, '')
    return `undeclared reference to '${variable}' (in container '')`
  }
  if (e.code === 'no_matching_overload') {
    const m = /^found no matching overload for '(?:(.+)\.)?([A-Za-z_]\w*)\((.*)\)'$/.exec(summary)
    if (m) {
      const [, receiver, fn, args] = m
      if (!(receiver ? MEMBER_FUNCTIONS : GLOBAL_FUNCTIONS).has(fn)) {
        return `undeclared reference to '${fn}' (in container '')`
      }
      const target = receiver ? `${celGoType(receiver)}.` : ''
      const argList = args ? args.split(', ').map(celGoType).join(', ') : ''
      return `found no matching overload for '${fn}' applied to '${target}(${argList})'`
    }
  }
  if (e.code === 'no_such_overload') {
    const m = /^no such overload: (?:(\S+) (\S+) (\S+)|([!-])(\S+))$/.exec(summary)
    if (m) {
      if (m[4]) return `found no matching overload for '${m[4]}_' applied to '(${celGoType(m[5])})'`
      const op = OPERATOR_NAMES[m[2]] ?? m[2]
      const args = `${celGoType(m[1])}, ${celGoType(m[3])}`
      return `found no matching overload for '${op}' applied to '(${args})'`
    }
  }
  return summary
}
