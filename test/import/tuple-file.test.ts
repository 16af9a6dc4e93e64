/**
 * The tuple file formats read and written without a server (src/formats/tuple-file.ts): fga's
 * YAML, JSON, JSONL and CSV and SpiceDB's zed lines, each round trip exact (conditions, usersets,
 * wildcards, expires_at), bad records reported with their line and reason among good ones, and
 * the streaming reader agreeing with the whole-text one.
 */
import { createReadStream, readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { TupleKey } from '../../src/core/tuple.ts'
import {
  formatTupleText,
  parseTupleText,
  readTupleRecords,
  TUPLE_FILE_FORMATS,
  tupleFileWriter,
  tupleFormatFromPath,
  TupleFileError,
  YAML_MAX_BYTES,
  type TupleFileFormat,
  type TupleRecord,
} from '../../src/formats/tuple-file.ts'

const fixture = (name: string) => new URL(`../fixtures/tuples/${name}`, import.meta.url)

/** The tuples every sample fixture holds, in file order. */
const SAMPLE: TupleKey[] = [
  { user: 'user:anne', relation: 'viewer', object: 'doc:readme' },
  { user: 'group:eng#member', relation: 'viewer', object: 'doc:design' },
  { user: 'user:*', relation: 'viewer', object: 'doc:public' },
  { user: 'user:bob', relation: 'viewer', object: 'doc:budget', condition: { name: 'before_limit', context: { limit: 5 } } },
  { user: 'user:carol', relation: 'viewer', object: 'doc:budget', expires_at: '2099-01-01T00:00:00Z' },
]

/** Awkward values: quotes, commas, brackets and line breaks inside a condition's context. */
const AWKWARD: TupleKey[] = [
  ...SAMPLE,
  { user: 'user:dave@example.com', relation: 'owner', object: 'folder:a/b|c' },
  {
    user: 'team:x#member',
    relation: 'viewer',
    object: 'doc:q',
    condition: { name: 'c', context: { s: 'a,"b"]\n[x:{y}]', list: [1, ']'], nested: { k: null } } },
    expires_at: '2099-06-30T12:00:00.5Z',
  },
  { user: 'user:e', relation: 'viewer', object: 'doc:r', condition: { name: 'empty', context: {} } },
]

const keys = (records: TupleRecord[]) => records.map((r) => r.key)
const errors = (records: TupleRecord[]) => records.filter((r) => r.error).map((r) => r.error)

async function collect(it: AsyncIterable<TupleRecord>): Promise<TupleRecord[]> {
  const out: TupleRecord[] = []
  for await (const r of it) out.push(r)
  return out
}

describe('tuple files', () => {
  it.each(TUPLE_FILE_FORMATS)('%s: written then read back, every field survives', async (format) => {
    // SpiceDB ids hold no '@' (the zed test below has it refused).
    const data = format === 'zed' ? AWKWARD.filter((k) => !k.user.includes('@')) : AWKWARD
    const text = formatTupleText(data, format)
    const records = parseTupleText(text, format)
    expect(errors(records)).toEqual([])
    expect(keys(records)).toEqual(data)
    // The streaming reader, fed in small pieces, reads the same records with the same lines.
    const chunks = text.match(/[\s\S]{1,7}/g) ?? []
    expect(await collect(readTupleRecords(Readable.from(chunks), format))).toEqual(records)
  })

  it.each(['sample.yaml', 'sample.csv', 'sample.zed'])('reads the hand-written %s', async (name) => {
    const format = tupleFormatFromPath(name)
    expect(keys(parseTupleText(readFileSync(fixture(name), 'utf8'), format))).toEqual(SAMPLE)
    expect(keys(await collect(readTupleRecords(createReadStream(fixture(name)), format)))).toEqual(SAMPLE)
  })

  it('numbers records by the line they start on, blank and comment lines included', () => {
    const yaml = parseTupleText(readFileSync(fixture('sample.yaml'), 'utf8'), 'yaml')
    expect(yaml.map((r) => r.line)).toEqual([2, 5, 8, 11, 18])
    const zed = parseTupleText(readFileSync(fixture('sample.zed'), 'utf8'), 'zed')
    expect(zed.map((r) => r.line)).toEqual([2, 3, 5, 6, 7])
    const json = parseTupleText(formatTupleText(SAMPLE, 'json'), 'json')
    expect(json.map((r) => r.line)).toEqual([2, 3, 4, 5, 6])
  })

  it('jsonl: a bad line costs only itself, reported with its number and reason', () => {
    const records = parseTupleText(readFileSync(fixture('bad-lines.jsonl'), 'utf8'), 'jsonl')
    expect(records.map((r) => r.line)).toEqual([1, 2, 3, 4, 6, 7, 8, 9, 10])
    expect(errors(records)).toEqual([
      "line 3: object 'doc' is not type:id",
      expect.stringMatching(/^line 6: not JSON: /),
      "line 8: expires_at 'tomorrow' is not an RFC 3339 date-time",
    ])
    // Lines 7 and 9 are well formed; only the model refuses them, when they are written.
    expect(records.filter((r) => r.key).map((r) => r.line)).toEqual([1, 2, 4, 7, 9, 10])
  })

  it('csv: columns in any order, quoted fields over several lines, bad rows reported', () => {
    const records = parseTupleText(readFileSync(fixture('bad-lines.csv'), 'utf8'), 'csv')
    expect(errors(records)).toEqual([
      "line 4: object 'doc:' is not type:id",
      'line 8: condition_context is not JSON: {not json}',
      'line 9: 4 fields where the header has 8',
    ])
    expect(records.filter((r) => r.key).map((r) => [r.line, r.key!.user])).toEqual([
      [2, 'user:u1'],
      [3, 'user:u2'],
      [5, 'user:u4'],
      [7, 'user:u5'],
      [10, 'user:u8'],
    ])
    expect(records.find((r) => r.line === 5)!.key!.condition).toEqual({ name: 'before_limit', context: { limit: 3 } })
  })

  it('csv: a header fga would refuse is reported once, and no row is taken', () => {
    const records = parseTupleText(readFileSync(fixture('bad-header.csv'), 'utf8'), 'csv')
    expect(errors(records)[0]).toMatch(/^line 1: invalid header 'colour', valid headers are user_type,user_id,user_relation,relation,object_type,object_id,condition_name,condition_context,expires_at$/)
    expect(records.every((r) => r.key === undefined)).toBe(true)
    expect(errors(parseTupleText('user_type,user_id,relation,object_type\n', 'csv'))).toEqual(["line 1: the CSV header has no 'object_id' column"])
    expect(errors(parseTupleText('user_type,user_id,relation,object_type,object_id\nuser,"a,doc\n', 'csv'))).toEqual(['line 2: a quoted field is not closed by the end of the file'])
  })

  it('csv: a stray quote costs its own row, in linear time, wherever it is', async () => {
    const header = 'user_type,user_id,user_relation,relation,object_type,object_id\n'
    const good = Array.from({ length: 20_000 }, (_, i) => `user,g${i},,viewer,doc,${i}\n`).join('')
    const text = `${header}user,q1,,viewer,doc,"2,,\n${good}`
    const started = performance.now()
    const records = parseTupleText(text, 'csv')
    expect(performance.now() - started).toBeLessThan(3000)
    expect(errors(records)).toEqual(['line 2: a quoted field is not closed within 1000 lines or 64 KiB'])
    expect(records.filter((r) => r.key)).toHaveLength(20_000)
    expect(records.find((r) => r.key?.user === 'user:g0')!.line).toBe(3)
    const streamed = await collect(readTupleRecords(Readable.from([text]), 'csv'))
    expect(streamed).toEqual(records)
    // Near the end: the rows after it are still read.
    const tail = parseTupleText(`${header}user,a,,viewer,doc,1\nuser,"b,,viewer,doc,2\nuser,c,,viewer,doc,3\n`, 'csv')
    expect(errors(tail)).toEqual(['line 3: a quoted field is not closed by the end of the file'])
    expect(keys(tail).filter(Boolean).map((k) => k!.user)).toEqual(['user:a', 'user:c'])
  })

  it('csv: CRLF line ends read as LF ones, inside quoted fields too', () => {
    const text = 'user_type,user_id,relation,object_type,object_id,condition_name,condition_context\r\nuser,a,viewer,doc,1,,\r\nuser,b,viewer,doc,2,before_limit,"{\r\n""limit"":3}"\r\n'
    const records = parseTupleText(text, 'csv')
    expect(errors(records)).toEqual([])
    expect(keys(records)).toEqual([
      { user: 'user:a', relation: 'viewer', object: 'doc:1' },
      { user: 'user:b', relation: 'viewer', object: 'doc:2', condition: { name: 'before_limit', context: { limit: 3 } } },
    ])
  })

  it('refuses a NUL character in any field, in every format', () => {
    const line = JSON.stringify({ user: 'user:a\u0000', relation: 'viewer', object: 'doc:1' })
    expect(errors(parseTupleText(`${line}\n`, 'jsonl'))).toEqual(["line 1: 'user' holds a NUL character (U+0000), which a tuple cannot hold"])
    expect(errors(parseTupleText('doc:1\u0000#viewer@user:a\n', 'zed'))[0]).toMatch(/'object' holds a NUL character/)
    expect(errors(parseTupleText('user_type,user_id,relation,object_type,object_id\nuser,a,view\u0000er,doc,1\n', 'csv'))[0]).toMatch(/'relation' holds a NUL/)
  })

  it('zed: ids outside SpiceDB\'s characters are refused both ways, so a line reads back as written', () => {
    const w = tupleFileWriter('zed')
    expect(() => w.tuple({ user: 'user:a[cond]', relation: 'viewer', object: 'doc:1' })).toThrow(TupleFileError)
    expect(() => w.tuple({ user: 'user:a', relation: 'viewer', object: 'doc:x]' })).toThrow(/object id 'x]' holds characters SpiceDB ids cannot/)
    expect(() => w.tuple({ user: 'user:anne@example.com', relation: 'viewer', object: 'doc:1' })).toThrow(/user id 'anne@example.com'/)
    expect(w.tuple({ user: 'user:*', relation: 'viewer', object: 'folder:a/b|c-d=e+f_g' })).toBe('folder:a/b|c-d=e+f_g#viewer@user:*\n')
    expect(errors(parseTupleText('doc:1#viewer@user:anne@example.com\ndoc:1.2#viewer@user:a\n', 'zed'))).toEqual([
      "line 1: user id 'anne@example.com' holds characters SpiceDB ids cannot (letters, digits and / _ | - = + only, or *)",
      "line 2: object id '1.2' holds characters SpiceDB ids cannot (letters, digits and / _ | - = + only)",
    ])
  })

  it('yaml: an unclosed flow map is one refusal, at its line', () => {
    const text = ['- user: user:y1', '  relation: viewer', '  object: doc:y', '- {user: user:y4, relation: viewer, object: "doc:y', '- user: user:y5', '  relation: viewer', '  object: doc:y', ''].join('\n')
    const records = parseTupleText(text, 'yaml')
    expect(errors(records)).toEqual(['line 4: Missing closing "quote'])
    expect(keys(records)[0]).toEqual({ user: 'user:y1', relation: 'viewer', object: 'doc:y' })
  })

  it('yaml: a file too large to read whole is refused with a hint', async () => {
    const text = `# ${'x'.repeat(YAML_MAX_BYTES)}\n- {user: "user:a", relation: viewer, object: "doc:1"}\n`
    expect(errors(parseTupleText(text, 'yaml'))).toEqual([expect.stringMatching(/^line 1: the YAML file is larger than 8 MiB: .*convert it to JSONL/)])
    const streamed = await collect(readTupleRecords(Readable.from([text.slice(0, 1 << 20), text.slice(1 << 20)]), 'yaml'))
    expect(streamed).toHaveLength(1)
    expect(streamed[0].error).toMatch(/larger than 8 MiB/)
  })

  it('csv: the expires_at column can be left out for fga', () => {
    const text = formatTupleText(SAMPLE, 'csv', { expiresColumn: false })
    expect(text.split('\n')[0]).toBe('user_type,user_id,user_relation,relation,object_type,object_id,condition_name,condition_context')
    expect(keys(parseTupleText(text, 'csv'))[4]).toEqual({ user: 'user:carol', relation: 'viewer', object: 'doc:budget' })
  })

  it('zed: subject relation `...`, caveats without context, and bad lines', () => {
    const text = [
      'doc:1#viewer@user:anne#...',
      'doc:1#viewer@user:anne[only_name]',
      'doc:1 viewer user:anne',
      'doc:1#viewer@user:anne[c:{"a":1}',
      'doc:1#viewer@user:anne[expiration:2099-01-01T00:00:00Z][c:{}]',
      'doc:1#viewer@user:anne[c:{oops}]',
      '# a comment',
    ].join('\n')
    const records = parseTupleText(text, 'zed')
    expect(keys(records).slice(0, 2)).toEqual([
      { user: 'user:anne', relation: 'viewer', object: 'doc:1' },
      { user: 'user:anne', relation: 'viewer', object: 'doc:1', condition: { name: 'only_name', context: {} } },
    ])
    expect(errors(records)).toEqual([
      "line 3: 'doc:1 viewer user:anne' is not resource:id#relation@subject:id",
      "line 4: the section 'c' is not closed",
      'line 5: a caveat section must come once, before [expiration:…]',
      "line 6: caveat 'c' has a context that is not JSON: {oops}",
    ])
  })

  it('yaml and json: a file that is not a list is one error, a broken element only itself', () => {
    expect(errors(parseTupleText('user: user:anne\n', 'yaml'))).toEqual([
      'line 1: a YAML tuple file is a list of {user, relation, object, condition?}',
    ])
    expect(errors(parseTupleText('{"user":"user:anne"}', 'json'))).toEqual([
      'line 1: a JSON tuple file is an array of {user, relation, object, condition?}',
    ])
    const json = parseTupleText('[\n {"user":"user:a","relation":"r","object":"d:1"},\n {"user":"user:a",,},\n {"user":"user:b","relation":"r","object":"d:2"}\n]\n', 'json')
    expect(json.map((r) => (r.key ? r.key.user : r.error!.slice(0, 7)))).toEqual(['user:a', 'line 3:', 'user:b'])
    expect(parseTupleText('', 'json')).toEqual([])
    expect(parseTupleText('', 'yaml')).toEqual([])
    expect(parseTupleText(formatTupleText([], 'yaml'), 'yaml')).toEqual([])
    expect(parseTupleText(formatTupleText([], 'json'), 'json')).toEqual([])
  })

  it('json: read element by element as the text arrives, a stray brace costing only its element', async () => {
    let produced = 0
    let producedAtFirst = -1
    async function* pieces() {
      yield '[\n'
      for (let i = 0; i < 2000; i++) {
        produced++
        yield `${i === 0 ? '' : ',\n'}{"user":"user:s${i}","relation":"viewer","object":"doc:${i}"}`
      }
      yield '\n]\n'
    }
    let count = 0
    for await (const r of readTupleRecords(Readable.from(pieces()), 'json')) {
      if (producedAtFirst === -1) producedAtFirst = produced
      expect(r.line).toBe(count + 2)
      count++
    }
    expect(count).toBe(2000)
    expect(producedAtFirst).toBeLessThan(100)
    const stray = parseTupleText('[{"user":"user:a","relation":"r","object":"d:1"}},\n{"user":"user:b","relation":"r","object":"d:2"}]', 'json')
    expect(stray.map((r) => (r.key ? r.key.user : r.error!.slice(0, 15)))).toEqual(['line 1: not JSO', 'user:b'])
    expect(errors(parseTupleText('[{"user":"user:a"', 'json'))).toEqual([expect.stringMatching(/^line 1: not JSON/), 'line 1: the array is not closed'])
    expect(errors(parseTupleText('[] x', 'json'))).toEqual(['line 1: text after the closing ]'])
  })

  it('knows a format by extension, and says which ones it knows', () => {
    const byExt: Record<string, TupleFileFormat> = { 'a.yml': 'yaml', 'a.YAML': 'yaml', 'a.json': 'json', 'a.jsonl': 'jsonl', 'a.csv': 'csv', 'a.zed': 'zed' }
    for (const [path, format] of Object.entries(byExt)) expect(tupleFormatFromPath(path)).toBe(format)
    expect(() => tupleFormatFromPath('tuples.txt')).toThrow(/cannot tell the tuple format of 'tuples.txt'.*--format/)
  })

  it('the writer streams: begin, one piece per tuple, end', () => {
    const w = tupleFileWriter('json')
    expect(w.begin() + w.tuple(SAMPLE[0]) + w.tuple(SAMPLE[1]) + w.end()).toBe(formatTupleText(SAMPLE.slice(0, 2), 'json'))
  })
})
