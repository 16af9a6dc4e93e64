/**
 * SpiceDB's relationship lines, as `zed` and SpiceDB's validation files write them:
 * `document:1#viewer@user:anne`, a userset subject `document:1#viewer@group:eng#member`, a
 * caveat with its context `...@user:anne[ip_allowed:{"cidr":"10.0.0.0/8"}]` (or without one,
 * `[ip_allowed]`), and an expiry `[expiration:2026-12-31T23:59:59Z]`. A subject relation `...`
 * (SpiceDB's "the subject itself") means no relation. Blank lines and `//` or `#` comment lines
 * are skipped. A caveat maps to an OpenFGA condition of the same name, the expiry to Pemba's
 * `expires_at`.
 *
 * @module
 */
import type { TupleKey } from '../../core/tuple.ts'
import { badRecord, keyFromParts, type TupleRecord } from './key.ts'

/** zedRecord reads one line; undefined for a blank or comment line. */
export function zedRecord(text: string, line: number): TupleRecord | undefined {
  const s = text.trim()
  if (s === '' || s.startsWith('//') || s.startsWith('#')) return undefined
  // An object id holds no '#' and a relation no '@'; a user id may hold '@' (user:anne@example.com).
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
  return typeof key === 'string' ? badRecord(line, key) : { line, key }
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

/** zedLine renders one tuple as a relationship line (with a trailing newline). */
export function zedLine(key: TupleKey): string {
  let s = `${key.object}#${key.relation}@${key.user}`
  if (key.condition) {
    const context = key.condition.context ?? {}
    s += Object.keys(context).length === 0 ? `[${key.condition.name}]` : `[${key.condition.name}:${JSON.stringify(context)}]`
  }
  if (key.expires_at) s += `[expiration:${key.expires_at}]`
  return s + '\n'
}
