/**
 * SpiceDB's relationship lines, as `zed` and SpiceDB's validation files write them:
 * `document:1#viewer@user:anne`, a userset subject `document:1#viewer@group:eng#member`, a
 * caveat with its context `...@user:anne[ip_allowed:{"cidr":"10.0.0.0/8"}]` (or without one,
 * `[ip_allowed]`), and an expiry `[expiration:2026-12-31T23:59:59Z]`. A subject relation `...`
 * (SpiceDB's "the subject itself") means no relation. Blank lines and `//` or `#` comment lines
 * are skipped. A caveat maps to an OpenFGA condition of the same name, the expiry to Pemba's
 * `expires_at`.
 *
 * Object and subject ids hold only SpiceDB's id characters (`[a-zA-Z0-9/_|\-=+]+`, or `*` for a
 * subject), and types and relations no `[`, `]`, `#`, `@` or `:`: the writer refuses anything
 * else and the reader requires it, so a line reads back as the tuple it was written from (an id
 * `a[cond]` would otherwise read as `a` with the condition `cond`: access for the wrong subject).
 *
 * @module
 */
import { parseObject, parseSubject, WILDCARD, type TupleKey } from '../../core/tuple.ts'
import { badRecord, keyFromParts, TupleFileError, type TupleRecord } from './key.ts'

/** SpiceDB's object id characters (its resourceIDExpr and subjectIDExpr). */
const ZED_ID = /^[a-zA-Z0-9/_|\-=+]+$/
/** Types and relations: nothing that a zed line uses as a separator. */
const ZED_NAME = /^[^\s:#@[\]]+$/

/** zedProblem: why a tuple cannot be a zed line (or read back as the same tuple), or undefined. */
function zedProblem(key: TupleKey): string | undefined {
  const object = parseObject(key.object)
  const subject = parseSubject(key.user)
  if (!object || !subject) return 'it is not a tuple'
  if (!ZED_ID.test(object.id)) return `object id '${object.id}' holds characters SpiceDB ids cannot (letters, digits and / _ | - = + only)`
  if (subject.id !== WILDCARD && !ZED_ID.test(subject.id)) {
    return `user id '${subject.id}' holds characters SpiceDB ids cannot (letters, digits and / _ | - = + only, or *)`
  }
  for (const name of [object.type, key.relation, subject.type, ...(subject.relation ? [subject.relation] : [])]) {
    if (!ZED_NAME.test(name)) return `'${name}' holds a character a zed line uses as a separator`
  }
  if (key.condition && !ZED_NAME.test(key.condition.name)) return `condition '${key.condition.name}' holds a character a zed line uses as a separator`
  return undefined
}

/** zedRecord reads one line; undefined for a blank or comment line. */
export function zedRecord(text: string, line: number): TupleRecord | undefined {
  const s = text.trim()
  if (s === '' || s.startsWith('//') || s.startsWith('#')) return undefined
  // An object id holds no '#' and a relation no '@'.
  const hash = s.indexOf('#')
  const at = hash === -1 ? -1 : s.indexOf('@', hash)
  if (at === -1) return badRecord(line, `'${s}' is not resource:id#relation@subject:id`)
  const rest = s.slice(at + 1)
  const bracket = rest.indexOf('[')
  let user = bracket === -1 ? rest : rest.slice(0, bracket)
  if (user.endsWith('#...')) user = user.slice(0, -4)
  let condition: unknown
  let expiresAt: string | undefined
  let i = bracket === -1 ? rest.length : bracket
  while (i < rest.length) {
    const section = readSection(rest, i)
    if (typeof section === 'string') return badRecord(line, section)
    i = section.end
    if (section.name === 'expiration') {
      if (expiresAt !== undefined) return badRecord(line, 'two [expiration:…] sections')
      expiresAt = section.body
      continue
    }
    if (condition !== undefined || expiresAt !== undefined) {
      return badRecord(line, 'a caveat section must come once, before [expiration:…]')
    }
    let context: unknown = {}
    if (section.body !== undefined) {
      try {
        context = JSON.parse(section.body)
      } catch {
        return badRecord(line, `caveat '${section.name}' has a context that is not JSON: ${section.body}`)
      }
    }
    condition = { name: section.name, context }
  }
  const key = keyFromParts(user, s.slice(hash + 1, at), s.slice(0, hash), condition, expiresAt)
  if (typeof key === 'string') return badRecord(line, key)
  const problem = zedProblem(key)
  return problem ? badRecord(line, problem) : { line, key }
}

/**
 * readSection reads `[name]` or `[name:body]` at `start`; a body that opens with `{` runs to its
 * matching brace (strings skipped), so a `]` inside the JSON context does not end the section.
 */
function readSection(s: string, start: number): { name: string; body?: string; end: number } | string {
  if (s[start] !== '[') return `unexpected '${s.slice(start)}' after the subject`
  const nameEnd = s.slice(start + 1).search(/[:\]]/)
  if (nameEnd === -1) return `a '[' section is not closed`
  const name = s.slice(start + 1, start + 1 + nameEnd)
  if (name === '') return 'a section without a name'
  let i = start + 1 + nameEnd
  if (s[i] === ']') return { name, end: i + 1 }
  i++
  let body: string
  if (s[i] === '{') {
    const close = matchingBrace(s, i)
    if (close === -1) return `the context of '${name}' is not closed`
    body = s.slice(i, close + 1)
    i = close + 1
  } else {
    const close = s.indexOf(']', i)
    if (close === -1) return `the section '${name}' is not closed`
    body = s.slice(i, close)
    i = close
  }
  if (s[i] !== ']') return `the section '${name}' is not closed`
  return { name, body, end: i + 1 }
}

function matchingBrace(s: string, open: number): number {
  let depth = 0
  for (let i = open; i < s.length; i++) {
    const c = s[i]
    if (c === '"') {
      for (i++; i < s.length && s[i] !== '"'; i++) if (s[i] === '\\') i++
    } else if (c === '{') depth++
    else if (c === '}' && --depth === 0) return i
  }
  return -1
}

/**
 * zedLine renders one tuple as a relationship line (with a trailing newline); throws
 * TupleFileError for a tuple that no line can carry faithfully.
 */
export function zedLine(key: TupleKey): string {
  const problem = zedProblem(key)
  if (problem) throw new TupleFileError(`${key.object}#${key.relation}@${key.user} cannot be written as a zed line: ${problem}`)
  let s = `${key.object}#${key.relation}@${key.user}`
  if (key.condition) {
    const context = key.condition.context ?? {}
    s += Object.keys(context).length === 0 ? `[${key.condition.name}]` : `[${key.condition.name}:${JSON.stringify(context)}]`
  }
  if (key.expires_at) s += `[expiration:${key.expires_at}]`
  return s + '\n'
}
