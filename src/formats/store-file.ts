/**
 * OpenFGA's store file (`*.fga.yaml`), as `fga model test`, `fga store import` and
 * `fga store export` read and write it: a model (inline DSL in `model`, or `model_file`: a `.fga`
 * DSL file, a `.json` model or an `fga.mod` manifest), tuples (inline `tuples`, `tuple_file`,
 * `tuple_files`), and `tests[]` of `check`, `list_objects` and `list_users` assertions.
 *
 * The field names, and what fga accepts, follow the fga CLI's `internal/storetest` (StoreData,
 * ModelTest, ModelTestCheck, …), decoded there with yaml.v3's KnownFields: an unknown field is
 * an error, so it is here too, reported with the file, line, column and the field's path
 * (`store.fga.yaml:14:9: tests[0].check[1]: unknown field 'asserts'`). A file fga reads is read
 * unchanged; `expires_at` on a tuple is Pemba's one addition (its tuples may expire).
 *
 * File references resolve against the store file's directory, and (as fga does since it
 * contained them with os.Root) may not leave it, whether by `..`, an absolute path or a symlink,
 * unless the caller allows external files (`--allow-external-files`, fga's flag).
 *
 * @module
 */
import { readFile, realpath, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { Document, isAlias, isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Node } from 'yaml'
import { z } from 'zod'
import { parseObject, parseSubject, parseExpiresAt, type TupleKey } from '../core/tuple.ts'
import type { AuthorizationModelInput } from '../model/types.ts'
import { InvalidModelError, type ModelDiagnostic } from '../model/model-error.ts'
import { checkModelSource, modelFromDSLSource, readModelSource, type ModelSource } from '../model/modular.ts'
import { parseTupleText, tupleFormatFromPath } from './tuple-file.ts'

/** A check: `user` or `users`, `object` or `objects`, every combination asserted per relation. */
export interface StoreFileCheck {
  user?: string
  users?: string[]
  object?: string
  objects?: string[]
  context?: Record<string, unknown>
  /** relation → whether the user has it. */
  assertions: Record<string, boolean>
}

export interface StoreFileListObjects {
  user: string
  type: string
  context?: Record<string, unknown>
  /** relation → the objects (`type:id`) the user has it on, in any order. */
  assertions: Record<string, string[]>
}

export interface StoreFileListUsers {
  object: string
  /** One filter (`{type}` or `{type, relation}`): OpenFGA's ListUsers takes exactly one. */
  user_filter: { type: string; relation?: string }[]
  context?: Record<string, unknown>
  /** relation → the users (`user:anne`, `user:*`, `group:eng#member`), in any order. */
  assertions: Record<string, { users: string[] }>
}

export interface StoreFileTest {
  name: string
  description?: string
  /** Added to the file's tuples for this test only. */
  tuples?: TupleKey[]
  tuple_file?: string
  check?: StoreFileCheck[]
  list_objects?: StoreFileListObjects[]
  list_users?: StoreFileListUsers[]
}

export interface StoreFile {
  name?: string
  model?: string
  model_file?: string
  tuples?: TupleKey[]
  tuple_file?: string
  tuple_files?: string[]
  tests: StoreFileTest[]
}

/** A store file with its references read: the model, and every test's full set of tuples. */
export interface LoadedStoreFile {
  /** The store file as given (a path relative to the working directory stays relative). */
  path: string
  file: StoreFile
  /** `name`, else the file's name. */
  name: string
  model: AuthorizationModelInput
  /** The model's DSL when it was read as DSL (inline, `.fga`, `fga.mod`). */
  dsl?: string
  /** The file's tuples: `tuples`, then `tuple_file`, then each of `tuple_files`, as fga orders them. */
  tuples: TupleKey[]
  /** Each test with its own tuples: inline `tuples`, then its `tuple_file`'s. */
  tests: (StoreFileTest & { tuples: TupleKey[] })[]
}

export interface LoadStoreFileOptions {
  /** Allow references outside the store file's directory (fga's `--allow-external-files`). */
  allowExternalFiles?: boolean
}

/**
 * StoreFileError: a store file, or a file it names, that cannot be read. `message` holds every
 * problem found, one per line, each led by `file:line:column` where the place is known.
 */
export class StoreFileError extends Error {
  readonly file: string
  readonly problems: string[]
  /** The file's `name`, when it could be read (reports name a file by it). */
  readonly storeName?: string
  constructor(file: string, problems: string[], storeName?: string) {
    super(problems.join('\n'))
    this.name = 'StoreFileError'
    this.file = file
    this.problems = problems
    if (storeName) this.storeName = storeName
  }
}

// ---- the schema -----------------------------------------------------------------------------

/** yaml.v3 decodes an empty value (`tuples:`) to the zero value: optional fields accept null. */
const optional = <T extends z.ZodType>(t: T) => t.nullish().transform((v) => v ?? undefined)

/**
 * record: a YAML mapping of any keys. zod's z.record assigns each key to a plain object, so a
 * key `__proto__` would set the prototype and vanish (an assertion silently dropped); going
 * through a Map and Object.fromEntries keeps it as an own key like any other.
 */
const record = <T extends z.ZodType>(value: T) =>
  z
    .preprocess(
      (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map) ? new Map(Object.entries(v)) : v),
      z.map(z.string(), value, { error: (issue) => (issue.input === undefined ? undefined : 'expected a mapping') }),
    )
    .transform((m) => Object.fromEntries(m) as Record<string, z.output<T>>)

const context = record(z.unknown())

const objectRef = z.string().refine((s) => parseObject(s) !== undefined, { message: 'expected an object type:id' })
const userRef = z
  .string()
  .refine((s) => parseSubject(s) !== undefined, { message: 'expected a user type:id, type:* or type:id#relation' })

const tupleKey = z.strictObject({
  user: userRef,
  relation: z.string().min(1),
  object: objectRef,
  condition: optional(z.strictObject({ name: z.string().min(1), context: optional(context) })),
  // Pemba's extension (fga has none): the tuple stops granting at this RFC 3339 time.
  expires_at: optional(z.string().refine((s) => parseExpiresAt(s) !== undefined, { message: 'expected an RFC 3339 date-time' })),
})

/**
 * An assertion's answer. yaml.v3, decoding into a Go bool as fga does, also takes YAML 1.1's
 * spellings (`yes`, `on`, `n`, …); so does this.
 */
const YAML11_BOOLS: Record<string, boolean> = Object.fromEntries([
  ...['y', 'Y', 'yes', 'Yes', 'YES', 'on', 'On', 'ON'].map((s) => [s, true]),
  ...['n', 'N', 'no', 'No', 'NO', 'off', 'Off', 'OFF'].map((s) => [s, false]),
])
const expectedAnswer = z.preprocess(
  // An empty answer (`viewer:`) is Go's zero value for a bool, false, in fga.
  (v) => (v === null ? false : typeof v === 'string' && Object.hasOwn(YAML11_BOOLS, v) ? YAML11_BOOLS[v] : v),
  z.boolean(),
)

const check = z
  .strictObject({
    user: optional(userRef),
    users: optional(z.array(userRef)),
    object: optional(objectRef),
    objects: optional(z.array(objectRef)),
    context: optional(context),
    assertions: record(expectedAnswer),
  })
  .superRefine((c, ctx) => {
    // fga's StoreData.Validate, with its words.
    if (c.user !== undefined && c.users?.length) ctx.addIssue({ code: 'custom', message: "cannot contain both 'user' and 'users'" })
    else if (c.user === undefined && !c.users?.length) ctx.addIssue({ code: 'custom', message: "must specify 'user' or 'users'" })
    if (c.object !== undefined && c.objects?.length) ctx.addIssue({ code: 'custom', message: "cannot contain both 'object' and 'objects'" })
    else if (c.object === undefined && !c.objects?.length) ctx.addIssue({ code: 'custom', message: "must specify 'object' or 'objects'" })
  })

const listObjects = z.strictObject({
  user: userRef,
  type: z.string().min(1),
  context: optional(context),
  assertions: record(z.array(objectRef).nullable().transform((v) => v ?? [])),
})

const listUsers = z.strictObject({
  object: objectRef,
  // fga sends only the first filter and ignores the rest silently; a second one is refused here
  // rather than left untested.
  user_filter: z
    .array(z.strictObject({ type: z.string().min(1), relation: optional(z.string().min(1)) }))
    .length(1, { message: 'expected exactly one filter ({type} or {type, relation}): ListUsers takes one' }),
  context: optional(context),
  assertions: record(
    z
      .strictObject({ users: optional(z.array(z.string())).transform((v) => v ?? []) })
      // `viewer:` with nothing is the zero value in fga: no users.
      .nullable()
      .transform((v) => v ?? { users: [] }),
  ),
})

const test = z.strictObject({
  // Named in every example, but fga requires no name: an unnamed test is reported by its index.
  name: z
    .string()
    .nullish()
    .transform((v) => v ?? ''),
  description: optional(z.string()),
  tuples: optional(z.array(tupleKey)),
  tuple_file: optional(z.string().min(1)),
  check: optional(z.array(check)),
  list_objects: optional(z.array(listObjects)),
  list_users: optional(z.array(listUsers)),
})

const storeFile = z.strictObject({
  name: optional(z.string()),
  model: optional(z.string()),
  model_file: optional(z.string().min(1)),
  tuples: optional(z.array(tupleKey)),
  tuple_file: optional(z.string().min(1)),
  tuple_files: optional(z.array(z.string().min(1))),
  tests: optional(z.array(test)).transform((v) => v ?? []),
})

// ---- parsing --------------------------------------------------------------------------------

/**
 * parseStoreFile reads a store file's text (YAML, so JSON too). Every problem is reported, each
 * with `path:line:column`, the field's path in the file, and what was wrong; throws
 * StoreFileError.
 */
export function parseStoreFile(text: string, path: string): StoreFile {
  return parseWithPositions(text, path).file
}

/** Where an inline block model's text starts in the store file: its first line, its indent. */
interface InlineModelPlace {
  line: number
  indent: number
}

function parseWithPositions(text: string, path: string): { file: StoreFile; inlineModel?: InlineModelPlace } {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true })
  if (doc.errors.length > 0) {
    throw new StoreFileError(
      path,
      doc.errors.slice(0, 5).map((e) => `${path}:${e.linePos?.[0].line ?? 1}:${e.linePos?.[0].col ?? 1}: invalid YAML: ${firstLine(e.message)}`),
    )
  }
  // Aliases are bounded by the size they expand to (not by their number: a file may reuse an
  // anchor thousands of times), and one that contains itself is refused, as yaml.v3 does.
  const tooBig = expansionProblem(doc)
  if (tooBig) {
    const at = lines.linePos(tooBig.node.range?.[0] ?? 0)
    throw new StoreFileError(path, [`${path}:${at.line}:${at.col}: ${tooBig.problem}`])
  }
  normaliseScalars(doc)
  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: -1 })
  } catch (e) {
    throw new StoreFileError(path, [`${path}: invalid YAML: ${message(e)}`])
  }
  if (data === null || data === undefined) throw new StoreFileError(path, [`${path}: the file is empty`])
  const parsed = storeFile.safeParse(data, { reportInput: true })
  if (parsed.success) return { file: parsed.data as StoreFile, inlineModel: inlineModelPlace(doc, lines, text) }
  const name = (data as { name?: unknown }).name
  const problems = parsed.error.issues.slice(0, 20).map((issue) => {
    const unknown = issue.code === 'unrecognized_keys' ? issue.keys : undefined
    const at = position(doc, lines, issue.path, unknown?.[0])
    const field = fieldPath(issue.path)
    const where = `${path}:${at.line}:${at.col}: ${field ? `${field}: ` : ''}`
    if (unknown) return { at, text: `${where}unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}` }
    if (issue.code === 'invalid_type' && issue.input === undefined) return { at, text: `${where}required` }
    return { at, text: `${where}${issue.message.replace(/^Invalid input: /, '')}` }
  })
  // In the order of the file.
  problems.sort((a, b) => a.at.line - b.at.line || a.at.col - b.at.col)
  throw new StoreFileError(
    path,
    problems.map((p) => p.text),
    typeof name === 'string' ? name : undefined,
  )
}

/** The most values a store file may expand to through its aliases. */
const MAX_EXPANDED_VALUES = 1_000_000

/**
 * expansionProblem measures what the document expands to, each alias counted as the size of
 * the node it repeats: beyond MAX_EXPANDED_VALUES (a "billion laughs" file), or an alias within
 * the node it names (which never ends), it returns the alias at fault.
 */
function expansionProblem(doc: Document): { node: Node; problem: string } | undefined {
  const sizes = new Map<unknown, number>()
  const open = new Set<unknown>()
  let expanded = 0
  class Fault extends Error {
    constructor(
      readonly node: Node,
      readonly problem: string,
    ) {
      super(problem)
    }
  }
  const size = (node: unknown): number => {
    if (isAlias(node)) {
      const target = node.resolve(doc)
      if (target === undefined) return 1
      if (open.has(target)) throw new Fault(node, `the alias *${node.source} is inside the node it names (yaml.v3 refuses it too)`)
      const n = size(target)
      expanded += n
      if (expanded > MAX_EXPANDED_VALUES) {
        throw new Fault(node, `the aliases expand the file beyond ${MAX_EXPANDED_VALUES} values (stopped at *${node.source})`)
      }
      return n
    }
    if (isPair(node)) return size(node.key) + size(node.value)
    if (!isMap(node) && !isSeq(node)) return 1
    const known = sizes.get(node)
    if (known !== undefined) return known
    open.add(node)
    let n = 1
    for (const item of node.items) n += size(item)
    open.delete(node)
    sizes.set(node, n)
    return n
  }
  try {
    size(doc.contents)
    return undefined
  } catch (e) {
    if (e instanceof Fault) return { node: e.node, problem: e.problem }
    throw e
  }
}

/**
 * normaliseScalars reads plain scalars as yaml.v3 reads them into fga's Go structs. A field of
 * type string takes any scalar's text (`name: 2024`, `description: true`, `name: 010` stay as
 * written). In a `context` (an `interface{}` map), yaml.v3 resolves numbers with YAML 1.1's
 * leftovers: `010` is octal 8, `1_000` is 1000, `0b101` is 5 (the yaml package reads YAML
 * 1.2: 10, a string, a string). Assertion answers are left to their schema.
 */
function normaliseScalars(doc: Document): void {
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || node.type !== 'PLAIN' || node.source === undefined) return
      const under = path.some((p) => isPair(p) && isScalar(p.key) && (p.key.value === 'context' || p.key.value === 'assertions'))
      if (!under) {
        if (typeof node.value === 'number' || typeof node.value === 'boolean') node.value = node.source
        return
      }
      const inContext = path.some((p) => isPair(p) && isScalar(p.key) && p.key.value === 'context')
      if (inContext && (typeof node.value === 'number' || typeof node.value === 'string')) {
        const n = goYamlNumber(node.source)
        if (n !== undefined) node.value = n
      }
    },
  })
}

/**
 * goYamlNumber resolves a plain scalar as yaml.v3 does for an `interface{}`: underscores
 * dropped, then Go's ParseInt with base prefixes (`0x`, `0o`, `0b`, and a leading `0` for
 * octal), then a YAML-style float. Anything else is not a number (undefined).
 */
function goYamlNumber(source: string): number | undefined {
  if (!/^[-+.0-9]/.test(source)) return undefined
  const plain = source.replace(/_/g, '')
  const int = /^([-+]?)(?:0x([0-9a-fA-F]+)|0o([0-7]+)|0b([01]+)|0([0-7]+)|([1-9][0-9]*|0))$/.exec(plain)
  if (int) {
    const [, sign, hex, oct, bin, legacyOct, dec] = int
    const value = hex ? parseInt(hex, 16) : oct ? parseInt(oct, 8) : bin ? parseInt(bin, 2) : legacyOct ? parseInt(legacyOct, 8) : Number(dec)
    return sign === '-' ? -value : value
  }
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(plain)) return Number(plain)
  return undefined
}

/**
 * inlineModelPlace: where a literal block `model: |` starts its text (the line after the
 * indicator), so a model error's position can be given in the store file's own lines. Only a
 * literal block with its indentation detected (`|`, `|-`, `|+`) keeps the model's lines and
 * columns one for one; a quoted or folded model, or one with an indentation indicator (`|2`),
 * does not, and its errors are given as lines of the inline model.
 */
function inlineModelPlace(doc: Document, lines: LineCounter, text: string): InlineModelPlace | undefined {
  const node = doc.get('model', true)
  if (!isScalar(node) || node.type !== 'BLOCK_LITERAL' || !node.range) return undefined
  if (!/^\|[-+]?[ \t]*(#.*)?\r?$/m.test(text.slice(node.range[0], text.indexOf('\n', node.range[0]) + 1 || undefined))) return undefined
  const start = lines.linePos(node.range[0]).line + 1
  // The block's indentation is that of its first line that is not empty, as YAML detects it.
  const firstLine = text.split('\n').slice(start - 1).find((l) => l.trim() !== '') ?? ''
  return { line: start, indent: firstLine.length - firstLine.trimStart().length }
}

/** fieldPath renders a zod path as the file spells it: `tests[0].check[1].assertions.viewer`. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p)
  return out
}

/** position finds where a path (or, given `key`, that key within it) sits in the YAML text. */
function position(doc: Document, lines: LineCounter, path: readonly PropertyKey[], key?: string): { line: number; col: number } {
  // The nearest node that exists: a missing field is reported where its object is.
  let depth = path.length
  let node: unknown
  while (depth >= 0) {
    node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth) as unknown[], true)
    if (isNode(node)) break
    depth--
  }
  let offset = isNode(node) ? (node.range?.[0] ?? 0) : 0
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key)
    if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0]
  } else if (depth === path.length && depth > 0) {
    // A value: point at its key, where a reader looks.
    const parent = depth === 1 ? doc.contents : doc.getIn(path.slice(0, depth - 1) as unknown[], true)
    const last = path[depth - 1]
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(last))
      if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0]
    }
  }
  return lines.linePos(offset)
}

function firstLine(s: string): string {
  return s.split('\n')[0]
}

// ---- loading --------------------------------------------------------------------------------

/**
 * loadStoreFile reads a store file and everything it names, relative to its directory: the
 * model (inline `model` wins over `model_file`, as in fga) and the tuple files (`.yaml`, `.yml`,
 * `.json`, `.jsonl`, `.csv`). Every unreadable part is reported together; throws StoreFileError.
 */
export async function loadStoreFile(path: string, options: LoadStoreFileOptions = {}): Promise<LoadedStoreFile> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new StoreFileError(path, [`${path}: cannot read the file: ${e.code === 'ENOENT' ? 'no such file' : e.message}`])
  })
  const { file, inlineModel } = parseWithPositions(text, path)
  const base = dirname(path)
  const problems: string[] = []
  const allowExternal = options.allowExternalFiles ?? false
  /** Reads a referenced file, checked to be a regular file within the store file's directory. */
  const read = async (name: string) => readFile(await checkReference(base, name, allowExternal), 'utf8')

  let model: AuthorizationModelInput | undefined
  let dsl: string | undefined
  try {
    let source: ModelSource | undefined
    if (file.model) {
      // Positions in an inline model count from its first line.
      source = modelFromDSLSource(file.model, path)
    } else if (file.model_file) {
      // Module files of an fga.mod go through the same reader, so they are contained too.
      const at = isAbsolute(file.model_file) ? file.model_file : join(base, file.model_file)
      source = await readModelSource(at, (p) => read(relative(base, p)))
    } else {
      problems.push(`${path}: the file has no model: give 'model' (DSL) or 'model_file'`)
    }
    if (source) {
      // The server's rules, with the place in the model's source named.
      checkModelSource(source)
      ;({ model, dsl } = source)
    }
  } catch (e) {
    const what = file.model ? 'model' : `model_file '${file.model_file}'`
    if (e instanceof InvalidModelError && e.diagnostics.length > 0) {
      for (const d of e.diagnostics.slice(0, 5)) problems.push(modelProblem(path, what, d, file.model ? inlineModel : undefined, Boolean(file.model)))
    } else {
      problems.push(`${path}: ${what}: ${message(e)}`)
    }
  }

  const readTuples = async (field: string, name: string): Promise<TupleKey[]> => {
    try {
      const records = parseTupleText(await read(name), tupleFormatFromPath(name))
      const bad = records.filter((r) => r.error !== undefined)
      if (bad.length > 0) {
        problems.push(...bad.slice(0, 10).map((r) => `${path}: ${field} '${name}': ${r.error}`))
        if (bad.length > 10) problems.push(`${path}: ${field} '${name}': and ${bad.length - 10} more bad lines`)
      }
      return records.flatMap((r) => (r.key ? [r.key] : []))
    } catch (e) {
      problems.push(`${path}: ${field} '${name}': ${message(e)}`)
      return []
    }
  }

  // Appended one by one, not with push(...list): spreading a file of a few hundred thousand
  // tuples as arguments overflows the call stack.
  const append = (into: TupleKey[], keys: TupleKey[]): void => {
    for (const key of keys) into.push(key)
  }
  const tuples = [...(file.tuples ?? [])]
  if (file.tuple_file) append(tuples, await readTuples('tuple_file', file.tuple_file))
  for (const [i, name] of (file.tuple_files ?? []).entries()) append(tuples, await readTuples(`tuple_files[${i}]`, name))
  const tests: LoadedStoreFile['tests'] = []
  for (const [i, t] of file.tests.entries()) {
    const own = [...(t.tuples ?? [])]
    if (t.tuple_file) append(own, await readTuples(`tests[${i}].tuple_file`, t.tuple_file))
    tests.push({ ...t, name: t.name || `tests[${i}]`, tuples: own })
  }
  if (problems.length > 0 || !model) throw new StoreFileError(path, problems, file.name)
  return { path, file, name: file.name || path, model, dsl, tuples, tests }
}

/**
 * modelProblem renders one problem of the model: an inline block model's at the store file's
 * line and column, a model file's at its own.
 */
function modelProblem(path: string, what: string, d: ModelDiagnostic, inline: InlineModelPlace | undefined, inlineText: boolean): string {
  if (inline && d.line !== undefined) {
    return `${path}:${inline.line + d.line - 1}:${(d.column ?? 1) + inline.indent}: ${what}: ${d.message}`
  }
  if (inlineText) {
    // Not a plain literal block: the model's own lines, said to be so.
    const at = d.line === undefined ? '' : `line ${d.line}${d.column === undefined ? '' : `, column ${d.column}`} of the inline model: `
    return `${path}: ${what}: ${at}${d.message}`
  }
  const at = [d.file ?? path, d.line, d.column].filter((x) => x !== undefined).join(':')
  return `${at}: ${what}: ${d.message}`
}

/**
 * checkReference resolves a file named in a store file against its directory. Unless external
 * files are allowed, the target (symlinks followed) must lie within that directory, as fga
 * enforces; it must be a regular file either way (a FIFO would block the read forever).
 */
async function checkReference(base: string, name: string, allowExternal: boolean): Promise<string> {
  const resolved = isAbsolute(name) ? name : resolve(base, name)
  const real = await realpath(resolved).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === 'ENOENT' ? `no such file (${resolved})` : e.message)
  })
  if (!allowExternal) {
    const rel = relative(await realpath(base), real)
    if (rel.split(sep)[0] === '..' || isAbsolute(rel)) {
      throw new Error(
        `${name} is outside the store file's directory (${resolve(base)}); ` +
          'fga refuses such references too (--allow-external-files allows them)',
      )
    }
  }
  if (!(await stat(real)).isFile()) throw new Error(`not a regular file (${resolved})`)
  return resolved
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

// ---- writing --------------------------------------------------------------------------------

/**
 * formatStoreFile writes a store file as YAML (what `pemba store export` prints): the fields in
 * fga's order, an inline model as a block, absent fields left out. parseStoreFile reads it back
 * to the same StoreFile.
 */
export function formatStoreFile(f: StoreFile): string {
  const ordered: Record<string, unknown> = {}
  const put = (key: keyof StoreFile) => {
    const v = f[key]
    if (v !== undefined && !(Array.isArray(v) && v.length === 0 && key !== 'tests')) ordered[key] = v
  }
  for (const key of ['name', 'model_file', 'model', 'tuple_file', 'tuple_files', 'tuples', 'tests'] as const) put(key)
  const doc = new Document(stripUndefined(ordered))
  return doc.toString({ blockQuote: 'literal', lineWidth: 0 })
}

/** stripUndefined drops absent optional fields, which YAML would otherwise write as null. */
function stripUndefined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripUndefined)
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => [k, stripUndefined(x)]),
    )
  }
  return v
}
