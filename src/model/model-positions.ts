/**
 * Where a type, relation or condition is written in a model's DSL source, so that a refusal by
 * Pemba's model validation (which knows names, not lines) can point at a line and column. In a
 * modular model the metadata the transformer records says which module file holds each
 * declaration: a type's `source_info.file`, a relation's own when an `extend type` added it, a
 * condition's own.
 *
 * The search reads the DSL's layout, which the grammar fixes: `type <name>` and
 * `extend type <name>` start a type, `define <relation>:` a relation inside it, and
 * `condition <name>(` a condition. A JSON source is searched by its structure instead: the
 * `type_definitions` entry whose `type` is the subject's, the key of the relation in its
 * `relations`, the key of the condition in `conditions` (the yaml package reads JSON, a subset
 * of YAML 1.2, and keeps every node's offset).
 *
 * @module
 */
import { join } from 'node:path/posix'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import type { ModelSubject } from './model-error.ts'
import type { AuthorizationModelInput } from './types.ts'

/** What locating needs of a model source (modular.ts's ModelSource is one). */
export interface LocatableSource {
  model: AuthorizationModelInput
  /** The file the model was read from (a DSL or JSON file, or the `fga.mod`). */
  file: string
  /** The DSL text of a `.fga` source. */
  dsl?: string
  /** The text of a `.json` source. */
  json?: string
  /** The module files of a modular source, named as the manifest lists them. */
  modules?: { name: string; contents: string }[]
  /** The directory module names are relative to (the manifest's). */
  moduleDir?: string
}

/** A 1-based position in a file; the parts that could not be found are left out. */
export interface SourcePosition {
  file?: string
  line?: number
  column?: number
}

/** locateSubject finds the declaration `subject` names in the source the model came from. */
export function locateSubject(source: LocatableSource, subject: ModelSubject): SourcePosition {
  if (source.dsl !== undefined) return findIn(source.dsl, subject)
  if (source.json !== undefined) return findInJSON(source.json, subject)
  if (!source.modules) return {}
  const name = moduleFileOf(source, subject)
  const module = source.modules.find((m) => m.name === name)
  if (!module) return {}
  const position = findIn(module.contents, subject)
  return { file: join(source.moduleDir ?? '.', module.name), ...position }
}

/** moduleFileOf: the module file that declares the subject, from the combined model's metadata. */
function moduleFileOf(source: LocatableSource, subject: ModelSubject): string | undefined {
  const model = source.model
  if (subject.condition !== undefined) {
    return model.conditions?.[subject.condition]?.metadata?.source_info?.file
  }
  const td = model.type_definitions.find((t) => t.type === subject.type)
  if (!td) return undefined
  const relationFile =
    subject.relation !== undefined
      ? td.metadata?.relations?.[subject.relation]?.source_info?.file
      : undefined
  return relationFile ?? td.metadata?.source_info?.file ?? undefined
}

/** A type a DSL text declares (`type <name>`) or extends (`extend type <name>`), 1-based. */
export interface TypeDeclaration {
  type: string
  extend: boolean
  line: number
  column: number
}

/** typeDeclarations lists the `type` and `extend type` lines of a DSL text, in order. */
export function typeDeclarations(text: string): TypeDeclaration[] {
  const found: TypeDeclaration[] = []
  text.split('\n').forEach((line, i) => {
    const m = TYPE_LINE.exec(line)
    const type = m ? stripComment(m[3]) : ''
    if (m && type !== '') found.push({ type, extend: !!m[2], line: i + 1, column: m[0].length - m[3].length + 1 })
  })
  return found
}

const TYPE_LINE = /^(\s*)(extend\s+)?type\s+(\S+)/
const BLOCK_START = /^\s*(extend\s+type|type|condition)\s/
const CONDITION_LINE = /^\s*condition\s+([^\s(]+)\s*\(/

/** findIn searches one DSL text; a relation is looked for in each block of its type. */
function findIn(text: string, subject: ModelSubject): Omit<SourcePosition, 'file'> {
  const lines = text.split('\n')
  if (subject.condition !== undefined) {
    for (let i = 0; i < lines.length; i++) {
      const m = CONDITION_LINE.exec(lines[i])
      if (m && m[1] === subject.condition) return { line: i + 1, column: lines[i].indexOf(m[1]) + 1 }
    }
    return {}
  }
  if (subject.type === undefined) return {}
  let typeAt: { line: number; column: number } | undefined
  let typeAtExtends = false
  for (let i = 0; i < lines.length; i++) {
    const m = TYPE_LINE.exec(lines[i])
    if (!m || stripComment(m[3]) !== subject.type) continue
    // A type's own declaration wins over an `extend type` of it.
    if (!typeAt || (typeAtExtends && !m[2])) {
      typeAt = { line: i + 1, column: m[0].length - m[3].length + 1 }
      typeAtExtends = !!m[2]
    }
    if (subject.relation === undefined) continue
    const relation = findRelation(lines, i + 1, subject.relation)
    if (relation) return relation
  }
  return typeAt ?? {}
}

/** findRelation looks for `define <relation>:` from line index `from` to the block's end. */
function findRelation(lines: string[], from: number, relation: string): { line: number; column: number } | undefined {
  const define = new RegExp(`^(\\s*define\\s+)${escapeRegExp(relation)}\\s*:`)
  for (let i = from; i < lines.length && !BLOCK_START.test(lines[i]); i++) {
    const m = define.exec(lines[i])
    if (m) return { line: i + 1, column: m[1].length + 1 }
  }
  return undefined
}

function stripComment(name: string): string {
  const i = name.indexOf('#')
  return i < 0 ? name : name.slice(0, i)
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * findInJSON finds the subject in a JSON model (or a `{"authorization_model": …}` answer): a
 * relation's key in its type's `relations` (else in `metadata.relations`), else the type's
 * `type` value; a condition's key in `conditions`.
 */
function findInJSON(text: string, subject: ModelSubject): Omit<SourcePosition, 'file'> {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false })
  let root: unknown = doc.contents
  const wrapped = isMap(root) ? root.get('authorization_model', true) : undefined
  if (isMap(wrapped)) root = wrapped
  if (!isMap(root)) return {}
  const at = (node: Node | null | undefined): Omit<SourcePosition, 'file'> => {
    if (!node?.range) return {}
    const { line, col } = lineCounter.linePos(node.range[0])
    return { line, column: col }
  }
  if (subject.condition !== undefined) {
    const conditions = root.get('conditions', true)
    return isMap(conditions) ? at(keyNode(conditions, subject.condition)) : {}
  }
  const types = root.get('type_definitions', true)
  if (subject.type === undefined || !isSeq(types)) return {}
  for (const td of types.items) {
    if (!isMap(td)) continue
    const typeValue = td.get('type', true)
    if (!isScalar(typeValue) || typeValue.value !== subject.type) continue
    if (subject.relation !== undefined) {
      const relations = td.get('relations', true)
      const metadata = td.get('metadata', true)
      const metaRelations = isMap(metadata) ? metadata.get('relations', true) : undefined
      const key =
        (isMap(relations) ? keyNode(relations, subject.relation) : undefined) ??
        (isMap(metaRelations) ? keyNode(metaRelations, subject.relation) : undefined)
      if (key) return at(key)
    }
    return at(typeValue)
  }
  return {}
}

/** keyNode: the key node of `map`'s entry named `name`. */
function keyNode(map: { items: { key: unknown }[] }, name: string): Node | undefined {
  for (const pair of map.items) if (isScalar(pair.key) && pair.key.value === name) return pair.key
  return undefined
}

/**
 * jsonSyntaxErrorOffset: the offset of the first character at which `text` stops being JSON
 * (RFC 8259), or undefined when it is JSON. Node 20's JSON.parse names a position for some
 * mistakes only; this scan finds it for every one.
 */
export function jsonSyntaxErrorOffset(text: string): number | undefined {
  let i = 0
  const fail = (): never => {
    throw new JSONSyntaxAt(i)
  }
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++
  }
  const literal = (word: string) => {
    for (const c of word) {
      if (text[i] !== c) fail()
      i++
    }
  }
  const digits = () => {
    if (!/[0-9]/.test(text[i] ?? '')) fail()
    while (/[0-9]/.test(text[i] ?? '')) i++
  }
  const string = () => {
    i++ // the opening quote
    for (;;) {
      const c = text[i]
      if (c === undefined || c < ' ') fail()
      if (c === '"') return void i++
      if (c === '\\') {
        i++
        if (text[i] === 'u') {
          for (let k = 0; k < 4; k++) {
            i++
            if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail()
          }
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail()
      }
      i++
    }
  }
  const number = () => {
    if (text[i] === '-') i++
    if (text[i] === '0') i++
    else digits()
    if (text[i] === '.') {
      i++
      digits()
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++
      if (text[i] === '+' || text[i] === '-') i++
      digits()
    }
  }
  const value = (): void => {
    ws()
    const c = text[i]
    if (c === '{') return members('}', true)
    if (c === '[') return members(']', false)
    if (c === '"') return string()
    if (c === 't') return literal('true')
    if (c === 'f') return literal('false')
    if (c === 'n') return literal('null')
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number()
    fail()
  }
  const members = (close: string, keyed: boolean): void => {
    i++ // the opening bracket
    ws()
    if (text[i] === close) return void i++
    for (;;) {
      if (keyed) {
        ws()
        if (text[i] !== '"') fail()
        string()
        ws()
        if (text[i] !== ':') fail()
        i++
      }
      value()
      ws()
      if (text[i] === close) return void i++
      if (text[i] !== ',') fail()
      i++
    }
  }
  try {
    value()
    ws()
    if (i < text.length) fail()
    return undefined
  } catch (e) {
    if (e instanceof JSONSyntaxAt) return e.offset
    // Nesting deeper than the stack: JSON.parse's own message stands alone.
    if (e instanceof RangeError) return undefined
    throw e
  }
}

class JSONSyntaxAt {
  constructor(readonly offset: number) {}
}

/** lineColumn: the 1-based line and column of `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset)
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') }
}
