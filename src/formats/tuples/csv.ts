/**
 * CSV tuple files as `fga tuple write --file x.csv` reads them: a header naming the columns in
 * any order, from `user_type,user_id,user_relation,relation,object_type,object_id,
 * condition_name,condition_context` (user_relation and the condition columns optional;
 * condition_context a JSON object), plus Pemba's `expires_at` column. Quoted fields follow
 * RFC 4180 (`"{""ttl"":1}"`) and may span lines; a record's line is the line it starts on.
 *
 * @module
 */
import type { TupleKey } from '../../core/tuple.ts'
import { badRecord, keyFromParts, type TupleRecord } from './key.ts'

export const CSV_COLUMNS = [
  'user_type',
  'user_id',
  'user_relation',
  'relation',
  'object_type',
  'object_id',
  'condition_name',
  'condition_context',
] as const

/** Pemba's extra column; fga refuses unknown headers, so an export for fga can leave it out. */
export const CSV_EXPIRES_COLUMN = 'expires_at'

type Column = (typeof CSV_COLUMNS)[number] | typeof CSV_EXPIRES_COLUMN
const REQUIRED: readonly Column[] = ['user_type', 'user_id', 'relation', 'object_type', 'object_id']

/**
 * CsvReader turns lines into records: `push(line, lineNumber)` returns a record once a row is
 * complete (or undefined: the header, a blank line, an open quoted field); `finish()` reports a
 * quoted field left open at the end.
 */
export class CsvReader {
  private columns: Map<Column, number> | undefined
  private headerError: string | undefined
  private pending = ''
  private pendingLine = 0

  push(line: string, lineNumber: number): TupleRecord | undefined {
    if (this.pending === '' && line.trim() === '') return undefined
    const text = this.pending === '' ? line : `${this.pending}\n${line}`
    const start = this.pending === '' ? lineNumber : this.pendingLine
    const fields = splitCsv(text)
    if (fields === undefined) {
      this.pending = text
      this.pendingLine = start
      return undefined
    }
    this.pending = ''
    if (this.columns === undefined && this.headerError === undefined) {
      this.readHeader(fields)
      return this.headerError === undefined ? undefined : badRecord(start, this.headerError)
    }
    if (this.headerError !== undefined) return badRecord(start, 'not read: the header is invalid')
    if (typeof fields === 'string') return badRecord(start, fields)
    return this.row(fields, start)
  }

  finish(): TupleRecord | undefined {
    if (this.pending === '') return undefined
    const line = this.pendingLine
    this.pending = ''
    return badRecord(line, 'a quoted field is not closed')
  }

  private readHeader(fields: string[] | string): void {
    if (typeof fields === 'string') {
      this.headerError = `invalid CSV header: ${fields}`
      return
    }
    const columns = new Map<Column, number>()
    for (const [i, raw] of fields.entries()) {
      const name = raw.trim() as Column
      if (!(CSV_COLUMNS as readonly string[]).includes(name) && name !== CSV_EXPIRES_COLUMN) {
        this.headerError = `invalid header '${raw}', valid headers are ${[...CSV_COLUMNS, CSV_EXPIRES_COLUMN].join(',')}`
        return
      }
      columns.set(name, i)
    }
    const missing = REQUIRED.find((c) => !columns.has(c))
    if (missing) this.headerError = `the CSV header has no '${missing}' column`
    else if (columns.has('condition_context') && !columns.has('condition_name')) {
      this.headerError = "the CSV header has 'condition_context' without 'condition_name'"
    }
    this.columns = columns
  }

  private row(fields: string[], line: number): TupleRecord {
    const columns = this.columns as Map<Column, number>
    if (fields.length !== columns.size) {
      return badRecord(line, `${fields.length} fields where the header has ${columns.size}`)
    }
    const get = (c: Column): string => {
      const i = columns.get(c)
      return i === undefined ? '' : fields[i]
    }
    const userRelation = get('user_relation')
    const user = `${get('user_type')}:${get('user_id')}${userRelation ? `#${userRelation}` : ''}`
    const object = `${get('object_type')}:${get('object_id')}`
    let condition: unknown
    const conditionName = get('condition_name')
    if (conditionName !== '') {
      const text = get('condition_context').trim()
      let context: unknown = {}
      if (text !== '') {
        try {
          context = JSON.parse(text)
        } catch {
          return badRecord(line, `condition_context is not JSON: ${text}`)
        }
      }
      condition = { name: conditionName, context }
    }
    const key = keyFromParts(user, get('relation'), object, condition, get(CSV_EXPIRES_COLUMN))
    return typeof key === 'string' ? badRecord(line, key) : { line, key }
  }
}

/**
 * splitCsv splits one record into fields; undefined when a quoted field is still open (the
 * record goes on over the next line), a string when the quoting is broken.
 */
function splitCsv(text: string): string[] | string | undefined {
  const fields: string[] = []
  let i = 0
  for (;;) {
    if (text[i] === '"') {
      let value = ''
      let j = i + 1
      for (;;) {
        const q = text.indexOf('"', j)
        if (q === -1) return undefined
        value += text.slice(j, q)
        if (text[q + 1] === '"') {
          value += '"'
          j = q + 2
          continue
        }
        j = q + 1
        break
      }
      fields.push(value)
      if (j === text.length) return fields
      if (text[j] !== ',') return `unexpected character after a quoted field at column ${j + 1}`
      i = j + 1
    } else {
      const comma = text.indexOf(',', i)
      const value = comma === -1 ? text.slice(i) : text.slice(i, comma)
      if (value.includes('"')) return `a quote inside an unquoted field at column ${i + 1}`
      fields.push(value.replace(/\r$/, ''))
      if (comma === -1) return fields
      i = comma + 1
    }
  }
}

/** csvField quotes a field when it must be (a comma, quote or line break in it). */
function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
}

/** csvHeader: the header line the writer emits (with or without Pemba's expires_at column). */
export function csvHeader(expiresColumn: boolean): string {
  return [...CSV_COLUMNS, ...(expiresColumn ? [CSV_EXPIRES_COLUMN] : [])].join(',') + '\n'
}

/** csvRow renders one tuple in the writer's column order. */
export function csvRow(key: TupleKey, expiresColumn: boolean): string {
  const colon = key.user.indexOf(':')
  const hash = key.user.indexOf('#')
  const userType = key.user.slice(0, colon)
  const userId = hash === -1 ? key.user.slice(colon + 1) : key.user.slice(colon + 1, hash)
  const userRelation = hash === -1 ? '' : key.user.slice(hash + 1)
  const objColon = key.object.indexOf(':')
  const cond = key.condition
  const fields = [
    userType,
    userId,
    userRelation,
    key.relation,
    key.object.slice(0, objColon),
    key.object.slice(objColon + 1),
    cond ? cond.name : '',
    cond ? JSON.stringify(cond.context ?? {}) : '',
  ]
  if (expiresColumn) fields.push(key.expires_at ?? '')
  return fields.map(csvField).join(',') + '\n'
}
