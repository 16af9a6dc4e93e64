/**
 * A small tokenizer for OpenFGA's DSL, for highlighting only (the server parses and validates):
 * keywords, type names, relation names, `[...]` type restrictions with `#relation`, `:*` and
 * `with condition`, the rewrite operators, conditions (name, parameters, CEL body) and comments.
 * Answers one token list per line, so a view can mark the lines an error names. Pure: no DOM.
 */

export type TokenKind =
  | 'keyword' // model, schema, type, relations, define, condition, module, extend
  | 'operator' // or, and, but not, from, with
  | 'type' // a type name (after `type`, inside [...])
  | 'relation' // a relation name (defined, referenced, `#member`, `from parent`)
  | 'condition' // a condition's name (after `condition`, after `with`)
  | 'param' // a condition parameter's name
  | 'param-type' // its type (int, string, map<string>, …)
  | 'expression' // the condition's CEL body
  | 'wildcard' // :*
  | 'number' // 1.1
  | 'comment'
  | 'punct'
  | 'space'
  | 'text' // anything else

export interface Token {
  kind: TokenKind
  text: string
}

type Mode = 'top' | 'type' | 'define-name' | 'rewrite' | 'condition-name' | 'condition-params' | 'condition-body'

const KEYWORDS = new Set(['model', 'schema', 'type', 'relations', 'define', 'condition', 'module', 'extend'])
const IDENT = /^[A-Za-z_][A-Za-z0-9_\-./]*/
const NUMBER = /^\d+(?:\.\d+)*/
const SPACE = /^\s+/

/** tokenizeDsl: the DSL's lines, each as its tokens (joined, a line's tokens are the line). */
export function tokenizeDsl(dsl: string): Token[][] {
  const lines = dsl.replace(/\r\n?/g, '\n').split('\n')
  const state: State = { mode: 'top', depth: 0 }
  return lines.map((line) => tokenizeLine(line, state))
}

interface State {
  mode: Mode
  /** How deep in `{ … }` a condition's body is. */
  depth: number
  /** Inside a CEL triple-quoted string that goes on to the next line: its quote, and whether raw. */
  quote?: { close: string; raw: boolean }
}

/** CEL string literal openings: an optional r/b prefix, then """, ''', " or '. */
const CEL_STRING = /^([rRbB]{0,2})("""|'''|"|')/

/** endOfString: the index just after the closing quote from `from` on, or -1 (not closed on this line). */
function endOfString(line: string, from: number, close: string, raw: boolean): number {
  for (let j = from; j < line.length; j++) {
    if (!raw && line[j] === '\\') {
      j++
      continue
    }
    if (line.startsWith(close, j)) return j + close.length
  }
  return -1
}

function tokenizeLine(line: string, state: State): Token[] {
  const out: Token[] = []
  const push = (kind: TokenKind, text: string) => {
    const last = out[out.length - 1]
    if (last && last.kind === kind && (kind === 'expression' || kind === 'text' || kind === 'space')) last.text += text
    else out.push({ kind, text })
  }
  // A line of its own ends a `define` (a rewrite never spans lines in the DSL).
  if (state.mode === 'rewrite' || state.mode === 'define-name' || state.mode === 'type') state.mode = 'top'
  let inBrackets = false
  let afterHash = false
  let afterWith = false
  let i = 0
  while (i < line.length) {
    const rest = line.slice(i)
    if (state.mode === 'condition-body') {
      // Strings and `//` comments in the CEL body are text: a brace in them counts for nothing.
      if (state.quote) {
        const end = endOfString(line, i, state.quote.close, state.quote.raw)
        if (end < 0) {
          push('expression', rest)
          break
        }
        push('expression', line.slice(i, end))
        state.quote = undefined
        i = end
        continue
      }
      const str = /[A-Za-z0-9_]/.test(line[i - 1] ?? '') ? null : CEL_STRING.exec(rest)
      if (str) {
        const raw = /[rR]/.test(str[1])
        const end = endOfString(line, i + str[0].length, str[2], raw)
        if (end < 0) {
          push('expression', rest)
          // A triple-quoted string may go on over lines; a single-quoted one ends with its line.
          if (str[2].length === 3) state.quote = { close: str[2], raw }
          break
        }
        push('expression', line.slice(i, end))
        i = end
        continue
      }
      if (rest.startsWith('//')) {
        push('comment', rest)
        break
      }
      const ch = rest[0]
      if (ch === '{') state.depth++
      if (ch === '}') {
        state.depth--
        if (state.depth === 0) {
          push('punct', ch)
          state.mode = 'top'
          i++
          continue
        }
      }
      push('expression', ch)
      i++
      continue
    }
    const space = SPACE.exec(rest)
    if (space) {
      push('space', space[0])
      i += space[0].length
      continue
    }
    // A comment: `#` at the start of a line or after a space (`group#member` is not one).
    if (rest[0] === '#' && (i === 0 || /\s/.test(line[i - 1]))) {
      push('comment', rest)
      break
    }
    const number = NUMBER.exec(rest)
    if (number && !IDENT.test(rest)) {
      push('number', number[0])
      i += number[0].length
      continue
    }
    const ident = IDENT.exec(rest)
    if (ident) {
      const word = ident[0]
      i += word.length
      const before = [...out].reverse().find((t) => t.kind !== 'space')?.text ?? ''
      push(classify(word, state, { inBrackets, afterHash, afterWith, before }), word)
      afterHash = false
      afterWith = word === 'with' && inBrackets
      continue
    }
    if (rest.startsWith(':*')) {
      push('wildcard', ':*')
      i += 2
      continue
    }
    const ch = rest[0]
    i++
    if (ch === '[') inBrackets = true
    else if (ch === ']') inBrackets = false
    else if (ch === '#') afterHash = true
    else if (ch === '(' && state.mode === 'condition-name') state.mode = 'condition-params'
    else if (ch === ')' && state.mode === 'condition-params') state.mode = 'top'
    else if (ch === '{' && (state.mode === 'top' || state.mode === 'condition-params')) {
      state.mode = 'condition-body'
      state.depth = 1
    } else if (ch === ':' && (state.mode as Mode) === 'define-name') state.mode = 'rewrite'
    push(/[[\](){}:,#<>]/.test(ch) ? 'punct' : 'text', ch)
  }
  return out
}

function classify(
  word: string,
  state: { mode: Mode },
  at: { inBrackets: boolean; afterHash: boolean; afterWith: boolean; before: string },
): TokenKind {
  if (state.mode === 'condition-params') {
    // `name: type` pairs: a word right after `(` or `,` is a name, after `:` or `<` a type.
    return at.before === '(' || at.before === ',' || at.before === '' ? 'param' : 'param-type'
  }
  if (at.inBrackets) {
    if (at.afterHash) return 'relation'
    if (word === 'with') return 'operator'
    if (at.afterWith) return 'condition'
    return 'type'
  }
  if (state.mode === 'type') {
    state.mode = 'top'
    return 'type'
  }
  if (state.mode === 'define-name') return 'relation'
  if (state.mode === 'condition-name') return 'condition'
  if (state.mode === 'rewrite') {
    if (word === 'or' || word === 'and' || word === 'but' || word === 'not' || word === 'from') return 'operator'
    return 'relation'
  }
  if (KEYWORDS.has(word)) {
    if (word === 'type') state.mode = 'type'
    else if (word === 'define') state.mode = 'define-name'
    else if (word === 'condition') state.mode = 'condition-name'
    return 'keyword'
  }
  return 'text'
}
