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

/** An open quoted field past this many lines or bytes is taken for a stray quote. */
export const CSV_OPEN_RECORD_LINES = 1000
export const CSV_OPEN_RECORD_BYTES = 64 * 1024

/** A record being read: its fields so far, and whether it stopped inside a quoted field. */
interface OpenRecord {
  start: number
  fields: string[]
  field: string
  inQuotes: boolean
  /** The raw lines after the first, kept to read them again if the quote turns out stray. */
  lines: { text: string; line: number }[]
  bytes: number
}

/**
 * CsvReader turns lines into records: `push(line, lineNumber, emit)` emits each record once its
 * row is complete (the header, blank lines and an open quoted field emit nothing); `finish(emit)`
 * ends the file. Each line is scanned once, the quote state carried over to the next, so a long
 * quoted field costs linear time. A quoted field still open after CSV_OPEN_RECORD_LINES lines or
 * CSV_OPEN_RECORD_BYTES (or at the end of the file) is taken for a stray quote: its start line
 * is reported and the lines after it are read again as rows of their own, so one stray quote
 * costs one row, not the rest of the file.
 */
export class CsvReader {
  private columns: Map<Column, number> | undefined
  private headerError: string | undefined
  private open: OpenRecord | undefined

  push(line: string, lineNumber: number, emit: (r: TupleRecord) => void): void {
    const queue = [{ text: line, line: lineNumber }]
    while (queue.length > 0) {
      const next = queue.shift()!
      const stray = this.scanLine(next.text, next.line, emit)
      if (stray) queue.unshift(...stray)
    }
  }

  finish(emit: (r: TupleRecord) => void): void {
    while (this.open) {
      const stray = this.abandon(emit, 'a quoted field is not closed by the end of the file')
      for (const l of stray) this.push(l.text, l.line, emit)
    }
  }

  /** scanLine reads one line into the open record (or a new one); returns lines to read again. */
  private scanLine(text: string, lineNumber: number, emit: (r: TupleRecord) => void): { text: string; line: number }[] | undefined {
    let rec = this.open
    if (rec) {
      rec.lines.push({ text, line: lineNumber })
      rec.bytes += text.length + 1
      if (rec.lines.length > CSV_OPEN_RECORD_LINES || rec.bytes > CSV_OPEN_RECORD_BYTES) {
        return this.abandon(emit, `a quoted field is not closed within ${CSV_OPEN_RECORD_LINES} lines or ${CSV_OPEN_RECORD_BYTES / 1024} KiB`)
      }
      rec.field += '\n'
    } else {
      if (text.trim() === '') return undefined
      rec = { start: lineNumber, fields: [], field: '', inQuotes: false, lines: [], bytes: text.length }
    }
    const result = scanFields(rec, text)
    if (result === undefined) {
      this.open = rec
      return undefined
    }
    this.open = undefined
    const record = this.complete(result === true ? rec.fields : result, rec.start)
    if (record) emit(record)
    return undefined
  }

  /** abandon reports the open record's start as bad; returns its later lines, to be read again. */
  private abandon(emit: (r: TupleRecord) => void, reason: string): { text: string; line: number }[] {
    const rec = this.open!
    this.open = undefined
    emit(badRecord(rec.start, reason))
    return rec.lines
  }

  private complete(fields: string[] | string, start: number): TupleRecord | undefined {
    if (this.columns === undefined && this.headerError === undefined) {
      this.readHeader(fields)
      return this.headerError === undefined ? undefined : badRecord(start, this.headerError)
    }
    if (this.headerError !== undefined) return badRecord(start, 'not read: the header is invalid')
    if (typeof fields === 'string') return badRecord(start, fields)
    return this.row(fields, start)
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
 * scanFields reads one line into `rec` (RFC 4180: a quoted field may hold `""`, commas and line
 * breaks). True when the record is complete, undefined when a quoted field goes on over the next
 * line, a string when the quoting is broken.
 */
function scanFields(rec: OpenRecord, line: string): true | string | undefined {
  let i = 0
  for (;;) {
    if (rec.inQuotes) {
      const q = line.indexOf('"', i)
      if (q === -1) {
        rec.field += line.slice(i)
        return undefined
      }
      rec.field += line.slice(i, q)
      if (line[q + 1] === '"') {
        rec.field += '"'
        i = q + 2
        continue
      }
      rec.inQuotes = false
      rec.fields.push(rec.field)
      rec.field = ''
      i = q + 1
      if (i === line.length || (line[i] === '\r' && i + 1 === line.length)) return true
      if (line[i] !== ',') return `unexpected character after a quoted field at column ${i + 1}`
      i++
    }
    if (line[i] === '"') {
      rec.inQuotes = true
      i++
      continue
    }
    const comma = line.indexOf(',', i)
    const value = comma === -1 ? line.slice(i) : line.slice(i, comma)
    if (value.includes('"')) return `a quote inside an unquoted field at column ${i + 1}`
    rec.fields.push(value.replace(/\r$/, ''))
    if (comma === -1) return true
    i = comma + 1
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
