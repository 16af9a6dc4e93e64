/**
 * Where a type, relation or condition is written in a model's DSL source, so that a refusal by
 * Pemba's model validation (which knows names, not lines) can point at a line and column. In a
 * modular model the metadata the transformer records says which module file holds each
 * declaration: a type's `source_info.file`, a relation's own when an `extend type` added it, a
 * condition's own.
 *
 * The search reads the DSL's layout, which the grammar fixes: `type <name>` and
 * `extend type <name>` start a type, `define <relation>:` a relation inside it, and
 * `condition <name>(` a condition. A JSON source has no such layout: only its file is named.
 *
 * @module
 */
import { join } from 'node:path/posix'
import type { ModelSubject } from './model-error.ts'
import type { AuthorizationModelInput } from './types.ts'

/** What locating needs of a model source (modular.ts's ModelSource is one). */
export interface LocatableSource {
  model: AuthorizationModelInput
  /** The file the model was read from (a DSL or JSON file, or the `fga.mod`). */
  file: string
  /** The DSL text of a `.fga` source. */
  dsl?: string
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
