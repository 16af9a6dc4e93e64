/**
 * Tuple files: the formats `fga tuple write --file` reads (YAML and JSON lists of `{user,
 * relation, object, condition?}`, JSONL with one such object per line, CSV with fga's columns)
 * and SpiceDB's relationship lines (`zed`), each with Pemba's `expires_at` where the format can
 * carry it (a field; a CSV column; zed's `[expiration:…]`). Reading never throws for a bad
 * record: it becomes a record with its 1-based line number and the reason, and the good records
 * around it are still read. Used by `pemba tuple import|export`, `pemba store import|export`
 * and the store test files' `tuple_file`.
 *
 * @module
 */
import { createInterface } from 'node:readline'
import { isNode, isScalar, isSeq, LineCounter, parseDocument, stringify } from 'yaml'
import type { TupleKey } from '../core/tuple.ts'
import { CsvReader, csvHeader, csvRow } from './tuples/csv.ts'
import { badRecord, canonicalKey, recordFromObject, type TupleRecord } from './tuples/key.ts'
import { zedLine, zedRecord } from './tuples/zed.ts'

export type { TupleRecord } from './tuples/key.ts'
export { canonicalKey } from './tuples/key.ts'

export type TupleFileFormat = 'yaml' | 'json' | 'jsonl' | 'csv' | 'zed'

export const TUPLE_FILE_FORMATS: readonly TupleFileFormat[] = ['yaml', 'json', 'jsonl', 'csv', 'zed']

const EXTENSIONS: Record<string, TupleFileFormat> = {
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.json': 'json',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.csv': 'csv',
  '.zed': 'zed',
  '.zedtuples': 'zed',
  '.relationships': 'zed',
}

/** tupleFormatFromPath: the format a file's extension names; throws naming the ones known. */
export function tupleFormatFromPath(path: string): TupleFileFormat {
  const m = /(\.[A-Za-z]+)$/.exec(path)
  const format = m ? EXTENSIONS[m[1].toLowerCase()] : undefined
  if (!format) {
    throw new Error(
      `cannot tell the tuple format of '${path}' from its extension (${Object.keys(EXTENSIONS).join(', ')}); name it with --format`,
    )
  }
  return format
}

/** isTupleFileFormat: whether a string (a `--format` value) names a format. */
export function isTupleFileFormat(s: string): s is TupleFileFormat {
  return (TUPLE_FILE_FORMATS as readonly string[]).includes(s)
}

/** parseTupleText reads a whole file's text. */
export function parseTupleText(text: string, format: TupleFileFormat): TupleRecord[] {
  switch (format) {
    case 'yaml':
      return parseYaml(text)
    case 'json':
      return parseJsonArray(text)
    default: {
      const reader = lineReader(format)
      const records: TupleRecord[] = []
      const lines = text.split('\n')
      if (lines.at(-1) === '') lines.pop()
      for (const [i, line] of lines.entries()) {
        const r = reader.push(line, i + 1)
        if (r) records.push(r)
      }
      const last = reader.finish()
      if (last) records.push(last)
      return records
    }
  }
}

/**
 * readTupleRecords streams a file's records: line by line for jsonl, csv and zed (a file of any
 * size in constant memory), the whole text for yaml and json (their structure spans the file).
 */
export async function* readTupleRecords(input: NodeJS.ReadableStream, format: TupleFileFormat): AsyncIterable<TupleRecord> {
  if (format === 'yaml' || format === 'json') {
    const chunks: Buffer[] = []
    for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    yield* parseTupleText(Buffer.concat(chunks).toString('utf8'), format)
    return
  }
  const reader = lineReader(format)
  let n = 0
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++
    const r = reader.push(line, n)
    if (r) yield r
  }
  const last = reader.finish()
  if (last) yield last
}

/** What a tuple file is written with: the text before, of each tuple, and after. */
export interface TupleFileWriter {
  begin(): string
  tuple(key: TupleKey): string
  end(): string
}

/**
 * tupleFileWriter writes a format. `expiresColumn: false` leaves Pemba's `expires_at` column out
 * of a CSV file (fga refuses a header it does not know); other formats carry `expires_at` only on
 * the tuples that have one.
 */
export function tupleFileWriter(format: TupleFileFormat, options: { expiresColumn?: boolean } = {}): TupleFileWriter {
  let count = 0
  const expiresColumn = options.expiresColumn ?? true
  switch (format) {
    case 'yaml':
      return {
        begin: () => '',
        tuple: (key) => (count++, stringify([canonicalKey(key)], { lineWidth: 0 })),
        end: () => (count === 0 ? '[]\n' : ''),
      }
    case 'json':
      return {
        begin: () => '[',
        tuple: (key) => `${count++ === 0 ? '\n' : ',\n'}  ${JSON.stringify(canonicalKey(key))}`,
        end: () => (count === 0 ? ']\n' : '\n]\n'),
      }
    case 'jsonl':
      return { begin: () => '', tuple: (key) => JSON.stringify(canonicalKey(key)) + '\n', end: () => '' }
    case 'csv':
      return { begin: () => csvHeader(expiresColumn), tuple: (key) => csvRow(key, expiresColumn), end: () => '' }
    case 'zed':
      return { begin: () => '', tuple: zedLine, end: () => '' }
  }
}

/** formatTupleText writes a whole file (tests, store files' tuple lists). */
export function formatTupleText(keys: Iterable<TupleKey>, format: TupleFileFormat, options?: { expiresColumn?: boolean }): string {
  const w = tupleFileWriter(format, options)
  let text = w.begin()
  for (const key of keys) text += w.tuple(key)
  return text + w.end()
}

interface LineReader {
  push(line: string, lineNumber: number): TupleRecord | undefined
  finish(): TupleRecord | undefined
}

function lineReader(format: 'jsonl' | 'csv' | 'zed'): LineReader {
  if (format === 'csv') return new CsvReader()
  if (format === 'zed') return { push: (line, n) => zedRecord(line, n), finish: () => undefined }
  return { push: jsonlRecord, finish: () => undefined }
}

function jsonlRecord(line: string, n: number): TupleRecord | undefined {
  const s = line.trim()
  if (s === '') return undefined
  try {
    return recordFromObject(n, JSON.parse(s))
  } catch (e) {
    return badRecord(n, `not JSON: ${(e as Error).message}`)
  }
}

/**
 * parseYaml reads a YAML list; each item's line is where it starts. A syntax error becomes a
 * record at its line; the items the parser still made sense of are read.
 */
function parseYaml(text: string): TupleRecord[] {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false })
  const records: TupleRecord[] = doc.errors.map((e) => badRecord(lineCounter.linePos(e.pos[0]).line, e.message.split('\n')[0]))
  const contents = doc.contents
  if (contents === null || (isScalar(contents) && contents.value === null)) return records
  if (!isSeq(contents)) {
    if (records.length === 0) records.push(badRecord(1, 'a YAML tuple file is a list of {user, relation, object, condition?}'))
    return records
  }
  for (const item of contents.items) {
    const line = isNode(item) && item.range ? lineCounter.linePos(item.range[0]).line : 1
    records.push(recordFromObject(line, isNode(item) ? item.toJSON() : item))
  }
  return records.sort((a, b) => a.line - b.line)
}

/**
 * parseJsonArray reads a JSON array element by element: a scan finds each element's text and
 * line, and each is parsed alone, so one broken element costs only itself.
 */
function parseJsonArray(text: string): TupleRecord[] {
  const records: TupleRecord[] = []
  let line = 1
  let i = 0
  const skipSpace = (): void => {
    while (i < text.length && /\s/.test(text[i])) {
      if (text[i] === '\n') line++
      i++
    }
  }
  if (text.charCodeAt(0) === 0xfeff) i = 1
  skipSpace()
  if (i === text.length) return records
  if (text[i] !== '[') return [badRecord(line, 'a JSON tuple file is an array of {user, relation, object, condition?}')]
  i++
  for (;;) {
    skipSpace()
    if (i >= text.length) {
      records.push(badRecord(line, 'the array is not closed'))
      return records
    }
    if (text[i] === ']') break
    const start = i
    const startLine = line
    let depth = 0
    for (; i < text.length; i++) {
      const c = text[i]
      if (c === '"') {
        for (i++; i < text.length && text[i] !== '"'; i++) {
          if (text[i] === '\\') i++
          else if (text[i] === '\n') line++
        }
      } else if (c === '\n') line++
      else if (c === '{' || c === '[') depth++
      else if (c === '}' || c === ']') {
        if (depth === 0) break
        depth--
      } else if (c === ',' && depth === 0) break
    }
    const element = text.slice(start, i).trim()
    try {
      records.push(recordFromObject(startLine, JSON.parse(element)))
    } catch (e) {
      records.push(badRecord(startLine, `not JSON: ${(e as Error).message}`))
    }
    if (text[i] === ',') i++
  }
  i++
  skipSpace()
  if (i < text.length) records.push(badRecord(line, 'text after the closing ]'))
  return records
}
