/**
 * CEL's `matches`: an unanchored RE2 search with Go's `regexp` syntax, as cel-go runs it, by
 * re2js (a port of RE2/J, itself a port of Go's `regexp`): linear time whatever the pattern, so
 * a caller-supplied `(a+)+$` cannot pin the CPU as JS RegExp's backtracking would. re2js follows
 * Go's parser, error texts included (`error parsing regexp: missing closing ): \`(a\``), with
 * three differences this module removes:
 *
 * - re2js leaves out the quoted text where Go quotes an empty one (trailing backslash) or the
 *   whole pattern (size and nesting limits); {@link goSyntaxError} restores Go's text.
 * - re2js refuses a capture name used twice, which Go accepts; names do not change whether a
 *   pattern matches, so such a pattern is compiled with its groups unnamed.
 * - re2js accepts programs of up to 1.4 M instructions: a 300-character pattern, well within
 *   the cost budget (which charges by pattern length), can expand to 290 k of them and take
 *   half a second to compile. Patterns whose expansion exceeds {@link MAX_PROGRAM} instructions
 *   are refused before compiling, with RE2's `expression too large`, as Pemba's earlier
 *   matcher did (which bounds a compile to about 10 ms).
 *
 * @module
 */
import { RE2JS, RE2JSSyntaxException, RE2Set } from 're2js'

/** A compiled `matches` pattern. */
export type CompiledRegex = RE2JS

/** Bigger programs are refused, like RE2's "expression too large", to bound compile time. */
const MAX_PROGRAM = 10_000

const ERR_LARGE = 'expression too large'
const ERR_NESTING_DEPTH = 'expression nests too deeply'
const ERR_DUPLICATE_NAME = 'duplicate capture group name'

/** RegexError carries a Go regexp/syntax message: "error parsing regexp: unexpected ): `)`". */
class RegexError extends Error {}

/**
 * compileRegex compiles an RE2 pattern; throws RegexError with Go's message if the pattern is
 * invalid or too large (syntax errors first, as Go parses the whole pattern before sizing it).
 */
export function compileRegex(pattern: string): CompiledRegex {
  if (expandedSize(pattern) > MAX_PROGRAM) {
    // RE2Set.add parses (and simplifies) without building a program: cheap, and it reports
    // any syntax error before the size
    withGoSyntax(pattern, (p) => new RE2Set().add(p))
    throw new RegexError(`error parsing regexp: ${ERR_LARGE}: \`${pattern}\``)
  }
  return withGoSyntax(pattern, (p) => RE2JS.compile(p))
}

/** regexSearch tells whether the pattern matches anywhere in s (RE2 search, not a full match). */
export function regexSearch(regex: CompiledRegex, s: string): boolean {
  return regex.test(s)
}

const regexCache = new Map<string, CompiledRegex>()

/** cachedRegex compiles patterns supplied at check time, keeping the last 256. */
export function cachedRegex(pattern: string): CompiledRegex {
  let regex = regexCache.get(pattern)
  if (!regex) {
    regex = compileRegex(pattern)
    if (regexCache.size >= 256) regexCache.clear()
    regexCache.set(pattern, regex)
  }
  return regex
}

/** withGoSyntax runs re2js on the pattern with Go's acceptance and Go's error texts. */
function withGoSyntax<T>(pattern: string, build: (p: string) => T): T {
  try {
    return build(pattern)
  } catch (err) {
    if (!(err instanceof RE2JSSyntaxException)) throw err
    if (err.error !== ERR_DUPLICATE_NAME) throw goSyntaxError(err, pattern, pattern)
  }
  const unnamed = withoutCaptureNames(pattern)
  try {
    return build(unnamed)
  } catch (err) {
    if (!(err instanceof RE2JSSyntaxException)) throw err
    throw goSyntaxError(err, pattern, unnamed)
  }
}

/**
 * goSyntaxError is Go's `*syntax.Error` text for a re2js syntax exception raised on `compiled`
 * (the pattern, or the pattern with its capture names removed): Go always quotes the offending
 * text, the whole pattern for the size and nesting limits.
 */
function goSyntaxError(err: RE2JSSyntaxException, pattern: string, compiled: string): RegexError {
  const limit = err.error === ERR_LARGE || err.error === ERR_NESTING_DEPTH
  let expr = err.input ?? (limit ? pattern : '')
  if (expr === compiled) expr = pattern
  return new RegexError(`error parsing regexp: ${err.error}: \`${expr}\``)
}

// ---------------------------------------------------------------------------------------------
// A scanner of RE2 syntax, just deep enough to size a pattern and find its named groups
// ---------------------------------------------------------------------------------------------

type TokenKind = 'atom' | 'quote' | 'open' | 'named' | 'flags' | 'close' | 'alt' | 'repeat'

interface Token {
  kind: TokenKind
  /** Index just after the token. */
  end: number
  /** `repeat`: the counts (max -1 when unbounded); `quote`: the number of literal characters. */
  min: number
  max: number
}

const COUNTED_REPEAT = /\{(\d+)(,(\d*))?\}/y
const FLAGS = /[imsU-]*/y
const CAPTURE_NAME = /^[A-Za-z0-9_]+$/

/** escapeEnd is the index after the escape at i (`\x41`, `\x{41}`, `\pL`, `\p{Greek}`, `\101`). */
function escapeEnd(p: string, i: number): number {
  const c = p[i + 1]
  if ((c === 'p' || c === 'P' || c === 'x') && p[i + 2] === '{') {
    const close = p.indexOf('}', i + 3)
    return close < 0 ? p.length : close + 1
  }
  if (c === 'p' || c === 'P') return i + 3
  if (c === 'x') return i + 4
  if (c >= '0' && c <= '7') {
    let j = i + 2
    while (j < i + 4 && p[j] >= '0' && p[j] <= '7') j++
    return j
  }
  return Math.min(i + 2, p.length)
}

/** classEnd is the index after the class opened at i, read Go's way (`[]a]`, `[[:alpha:]]`). */
function classEnd(p: string, i: number): number {
  let j = i + 1
  if (p[j] === '^') j++
  let first = true
  while (j < p.length) {
    if (p[j] === ']' && !first) return j + 1
    first = false
    if (p[j] === '[' && p[j + 1] === ':') {
      const close = p.indexOf(':]', j + 2)
      if (close >= 0) {
        j = close + 2
        continue
      }
    }
    j = p[j] === '\\' ? escapeEnd(p, j) : j + 1
  }
  return p.length
}

/** tokenAt reads the token at i; malformed syntax reads as something re2js then rejects. */
function tokenAt(p: string, i: number): Token {
  const token = (kind: TokenKind, end: number, min = 0, max = 0): Token => ({ kind, end, min, max })
  switch (p[i]) {
    case '\\': {
      if (p[i + 1] !== 'Q') return token('atom', escapeEnd(p, i))
      const close = p.indexOf('\\E', i + 2)
      const end = close < 0 ? p.length : close
      return token('quote', close < 0 ? end : end + 2, end - (i + 2))
    }
    case '[':
      return token('atom', classEnd(p, i))
    case '(': {
      if (p[i + 1] !== '?') return token('open', i + 1)
      const nameStart = p.startsWith('P<', i + 2) ? i + 4 : p[i + 2] === '<' ? i + 3 : -1
      if (nameStart >= 0) {
        const close = p.indexOf('>', nameStart)
        if (close >= 0 && CAPTURE_NAME.test(p.slice(nameStart, close))) {
          return token('named', close + 1)
        }
        return token('open', i + 2)
      }
      FLAGS.lastIndex = i + 2
      const j = i + 2 + FLAGS.exec(p)![0].length
      if (p[j] === ')') return token('flags', j + 1)
      return token('open', p[j] === ':' ? j + 1 : i + 2)
    }
    case ')':
      return token('close', i + 1)
    case '|':
      return token('alt', i + 1)
    case '*':
    case '+':
    case '?': {
      const end = p[i + 1] === '?' ? i + 2 : i + 1
      return token('repeat', end, p[i] === '+' ? 1 : 0, p[i] === '?' ? 1 : -1)
    }
    case '{': {
      COUNTED_REPEAT.lastIndex = i
      const m = COUNTED_REPEAT.exec(p)
      if (!m) return token('atom', i + 1)
      const end = p[i + m[0].length] === '?' ? i + m[0].length + 1 : i + m[0].length
      const min = Number(m[1])
      return token('repeat', end, min, m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3]))
    }
  }
  return token('atom', i + 1)
}

/**
 * expandedSize estimates the number of instructions the pattern compiles to: counted
 * repetitions copy their operand (`x{3}` is `xxx`, `x{1,3}` is `x(x(x)?)?`), everything else
 * is about one instruction per character, class or escape.
 */
export function expandedSize(p: string): number {
  const outer: number[] = []
  let size = 0 // of the group being read
  let last = 0 // of its last operand, which a repetition applies to
  for (let i = 0; i < p.length; ) {
    const t = tokenAt(p, i)
    switch (t.kind) {
      case 'atom':
        size += 1
        last = 1
        break
      case 'quote':
        size += t.min
        if (t.min > 0) last = 1
        break
      case 'open':
      case 'named':
        outer.push(size)
        size = 0
        last = 0
        break
      case 'close':
        last = size
        size = (outer.pop() ?? 0) + last
        break
      case 'alt':
        size += 1
        last = 0
        break
      case 'repeat': {
        const total =
          t.max < 0 ? Math.max(t.min, 1) * last + 1 : t.min * last + (t.max - t.min) * (last + 1)
        size += total - last
        last = total
        break
      }
      case 'flags':
        break
    }
    i = t.end
  }
  for (const s of outer) size += s
  return size
}

/** withoutCaptureNames turns `(?P<name>x)` and `(?<name>x)` into `(x)`. */
export function withoutCaptureNames(p: string): string {
  let out = ''
  for (let i = 0; i < p.length; ) {
    const t = tokenAt(p, i)
    out += t.kind === 'named' ? '(' : p.slice(i, t.end)
    i = t.end
  }
  return out
}
