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
import { StringDecoder } from 'node:string_decoder'
import { isNode, isScalar, isSeq, LineCounter, parseDocument, stringify } from 'yaml'
import type { TupleKey } from '../core/tuple.ts'
import { CsvReader, csvHeader, csvRow } from './tuples/csv.ts'
import { badRecord, canonicalKey, recordFromObject, type TupleRecord } from './tuples/key.ts'
import { JsonArrayReader } from './tuples/json.ts'
import { zedLine, zedRecord } from './tuples/zed.ts'

export { TupleFileError, type TupleRecord } from './tuples/key.ts'
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
    case 'json': {
      const records: TupleRecord[] = []
      const emit = (r: TupleRecord) => void records.push(r)
      const reader = new JsonArrayReader()
      reader.push(text, emit)
      reader.finish(emit)
      return records
    }
    default: {
      const reader = lineReader(format)
      const records: TupleRecord[] = []
      const emit = (r: TupleRecord) => void records.push(r)
      // CRLF as well as LF: a file saved on Windows reads the same.
      const lines = text.split(/\r?\n/)
      if (lines.at(-1) === '') lines.pop()
      for (const [i, line] of lines.entries()) reader.push(line, i + 1, emit)
      reader.finish(emit)
      return records
    }
  }
}

/**
 * readTupleRecords streams a file's records: line by line for jsonl, csv and zed, element by
 * element for json (a file of any size in constant memory), the whole text for yaml (its
 * structure spans the file; a file over YAML_MAX_BYTES is refused).
 */
export async function* readTupleRecords(input: NodeJS.ReadableStream, format: TupleFileFormat): AsyncIterable<TupleRecord> {
  if (format === 'json') {
    const reader = new JsonArrayReader()
    const decoder = new StringDecoder('utf8')
    let pending: TupleRecord[] = []
    const emit = (r: TupleRecord) => void pending.push(r)
    for await (const chunk of input) {
      reader.push(typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer), emit)
      yield* pending
      pending = []
    }
    reader.push(decoder.end(), emit)
    reader.finish(emit)
    yield* pending
    return
  }
  if (format === 'yaml') {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of input) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
      size += buf.length
      // Refused as soon as it is known, before the rest is held in memory.
      if (size > YAML_MAX_BYTES) {
        yield yamlTooLarge()
        return
      }
      chunks.push(buf)
    }
    yield* parseTupleText(Buffer.concat(chunks).toString('utf8'), format)
    return
  }
  const reader = lineReader(format)
  let pending: TupleRecord[] = []
  const emit = (r: TupleRecord) => void pending.push(r)
  let n = 0
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++
    reader.push(line, n, emit)
    if (pending.length > 0) {
      yield* pending
      pending = []
    }
  }
  reader.finish(emit)
  yield* pending
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

/** Reads a file line by line, emitting each record as it completes (CSV rows may span lines). */
interface LineReader {
  push(line: string, lineNumber: number, emit: (r: TupleRecord) => void): void
  finish(emit: (r: TupleRecord) => void): void
}

/** oneRecordPerLine: a reader for formats whose every line stands alone. */
function oneRecordPerLine(read: (line: string, n: number) => TupleRecord | undefined): LineReader {
  return {
    push: (line, n, emit) => {
      const r = read(line, n)
      if (r) emit(r)
    },
    finish: () => {},
  }
}

function lineReader(format: 'jsonl' | 'csv' | 'zed'): LineReader {
  if (format === 'csv') return new CsvReader()
  return oneRecordPerLine(format === 'zed' ? zedRecord : jsonlRecord)
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
 * parseYaml reads a YAML list; each item's line is where it starts. A syntax error counts
 * against the item it falls in (or the last one started before it: the parser often notices an
 * unclosed quote or flow map only at the end of the file), once, so one bad line is one
 * refusal; an error before the first item is a record at its own line. The items the parser
 * still made sense of are read.
 */
function parseYaml(text: string): TupleRecord[] {
  if (text.length > YAML_MAX_BYTES) return [yamlTooLarge()]
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false })
  const contents = doc.contents
  const items = isSeq(contents) ? contents.items : []
  const starts = items.map((item) => (isNode(item) && item.range ? item.range[0] : 0))
  const itemErrors = new Map<number, string>()
  const records: TupleRecord[] = []
  const linesSeen = new Set<number>()
  for (const e of doc.errors) {
    const message = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
    let at = -1
    for (let i = 0; i < starts.length && starts[i] <= e.pos[0]; i++) at = i
    if (at >= 0) {
      if (!itemErrors.has(at)) itemErrors.set(at, message)
      continue
    }
    const line = lineCounter.linePos(e.pos[0]).line
    if (!linesSeen.has(line)) records.push(badRecord(line, message))
    linesSeen.add(line)
  }
  if (contents === null || (isScalar(contents) && contents.value === null)) return records
  if (!isSeq(contents)) {
    if (records.length === 0) records.push(badRecord(1, 'a YAML tuple file is a list of {user, relation, object, condition?}'))
    return records
  }
  for (const [i, item] of items.entries()) {
    const line = isNode(item) && item.range ? lineCounter.linePos(item.range[0]).line : 1
    const error = itemErrors.get(i)
    records.push(error !== undefined ? badRecord(line, error) : recordFromObject(line, isNode(item) ? item.toJSON() : item))
  }
  return records.sort((a, b) => a.line - b.line)
}

/**
 * YAML is read whole, and the parser's document takes about 9 KB per tuple (a 120,000-tuple
 * file needed 1 GB): a larger file is refused with a hint rather than exhausting memory.
 */
export const YAML_MAX_BYTES = 8 * 1024 * 1024

function yamlTooLarge(): TupleRecord {
  return badRecord(
    1,
    `the YAML file is larger than ${YAML_MAX_BYTES / 1024 / 1024} MiB: YAML is read whole (about 9 KB of memory per tuple); ` +
      "convert it to JSONL (one tuple a line, read in constant memory), e.g. yq -o=json -I=0 '.[]' tuples.yaml > tuples.jsonl",
  )
}
