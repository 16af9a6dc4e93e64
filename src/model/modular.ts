/**
 * Model sources as kept in git, the way OpenFGA's CLI (`fga`) reads them: a DSL file (`.fga`),
 * a model in the API's JSON (`.json`), or a modular model (schema 1.2): an `fga.mod` manifest
 *
 *     schema: '1.2'
 *     contents:
 *       - core.fga
 *       - tracker/projects.fga
 *
 * whose module files each start with `module <name>` and declare types, `extend type`s of
 * other modules' types, and conditions. The manifest and the modules are combined by
 * `@openfga/syntax-transformer`'s modular transform, which records `metadata.module` and
 * `metadata.source_info.file` (the name as the manifest lists it) on every type, on every
 * relation an `extend type` adds and on every condition, exactly as `fga model write` sends it.
 *
 * Everything here is pure: file contents come in, a model or an `InvalidModelError` whose
 * diagnostics carry 1-based `file:line:column` positions comes out. Reading files is the
 * caller's (`readModelSource` takes the reader; src/formats/model-file.ts passes fs).
 *
 * @module
 */
import { dirname, join } from 'node:path/posix'
import { transformer, validator } from '@openfga/syntax-transformer'
import { isSeq, LineCounter, parseDocument } from 'yaml'
import { compileConditions } from './conditions/compile.ts'
import {
  diagnosticsError,
  InvalidModelError,
  type ModelDiagnostic,
  type ModelSubject,
} from './model-error.ts'
import {
  jsonSyntaxErrorOffset,
  lineColumn,
  type LocatableSource,
  locateSubject,
  typeDeclarations,
} from './model-positions.ts'
import type { AuthorizationModelInput, TypeDefinition, Userset } from './types.ts'
import { validateAuthorizationModel } from './validate.ts'

/** How a model file is written: `fga transform`'s `--input-format` values. */
export type ModelFormat = 'fga' | 'json' | 'modular'

export const MODEL_FORMATS: readonly ModelFormat[] = ['fga', 'json', 'modular']

/** One module file of a modular model: its name as the manifest lists it, and its text. */
export interface ModuleFile {
  name: string
  contents: string
}

/** A model read from its source, with what is needed to point into that source. */
export interface ModelSource extends LocatableSource {
  format: ModelFormat
  modules?: ModuleFile[]
}

/** One `contents` entry of an `fga.mod`, with its position (1-based) in the manifest. */
export interface ManifestEntry {
  name: string
  line: number
  column: number
}

export interface ModManifest {
  schema: string
  contents: ManifestEntry[]
}

/**
 * modelFormatFromPath infers the format as `fga` does: a name ending in `fga.mod` is a modular
 * manifest, one ending in `.json` a JSON model, anything else DSL.
 */
export function modelFormatFromPath(path: string): ModelFormat {
  if (path.endsWith('fga.mod')) return 'modular'
  if (path.toLowerCase().endsWith('.json')) return 'json'
  return 'fga'
}

/**
 * modelFromDSLSource parses DSL text; a syntax error names the file, line and column. A module
 * file (`module <name>`, no `model` header) is refused: alone it is no model (the transformer
 * makes one without a schema version), only its fga.mod combines it with the others.
 */
export function modelFromDSLSource(text: string, file: string): ModelSource {
  const source = parseDSLSource(text, file)
  const moduleLine = text.search(/^[ \t]*module[ \t]+\S/m)
  if (!source.model.schema_version && moduleLine >= 0) {
    const message = 'this is a module file, not a model: give the fga.mod that lists it (--input-format modular)'
    throw diagnosticsError([{ file, ...lineColumn(text, moduleLine + text.slice(moduleLine).search(/\S/)), message }])
  }
  return source
}

/**
 * parseDSLSource parses DSL text as the API's DSL write does (the transformer alone, a module
 * file included), a syntax error with its file, line and column.
 */
export function parseDSLSource(text: string, file: string): ModelSource {
  let model: AuthorizationModelInput
  try {
    model = transformer.transformDSLToJSONObject(text) as unknown as AuthorizationModelInput
  } catch (e) {
    throw diagnosticsError(transformerDiagnostics(e, () => file))
  }
  return { model, file, format: 'fga', dsl: text }
}

/**
 * modelFromJSONSource reads a model in the API's JSON: a WriteAuthorizationModel body, or a
 * ReadAuthorizationModel answer (`{"authorization_model": {…}}`, its `id` dropped). Rewrites
 * may be spelled `computed_userset`/`tuple_to_userset` as well; a missing schema version is
 * 1.1, as the API takes it.
 */
export function modelFromJSONSource(text: string, file: string): ModelSource {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (e) {
    const message = `invalid JSON: ${clip(firstLine((e as Error).message))}`
    const offset = jsonSyntaxErrorOffset(text)
    throw diagnosticsError([{ file, ...(offset !== undefined ? lineColumn(text, offset) : {}), message }])
  }
  if (isRecord(parsed) && isRecord(parsed.authorization_model)) parsed = parsed.authorization_model
  if (!isRecord(parsed)) {
    throw diagnosticsError([{ file, message: 'a JSON model must be an object with type_definitions' }])
  }
  const { id: _id, ...rest } = parsed
  const model = { ...rest, schema_version: rest.schema_version || '1.1' } as AuthorizationModelInput
  if (Array.isArray(model.type_definitions)) {
    model.type_definitions = model.type_definitions.map(canonicalTypeDefinition)
  }
  return { model, file, format: 'json', json: text }
}

/**
 * parseModManifest reads an `fga.mod` with the transformer's rules (schema `1.2`; `contents` a
 * list of relative `.fga` paths without `..`). YAML errors are reported at the manifest's
 * own positions.
 */
export function parseModManifest(text: string, file: string): ModManifest {
  // The transformer reports YAML syntax errors 1-based but its own checks 0-based, and a
  // missing field at line 0: YAML syntax is checked here first, so every position is known.
  const doc = parseDocument(text, { lineCounter: new LineCounter() })
  if (doc.errors.length > 0) {
    throw diagnosticsError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0]
        return { file, line: pos?.line, column: pos?.col, message: firstLine(e.message) }
      }),
    )
  }
  let parsed: ReturnType<typeof transformer.transformModFileToJSON>
  try {
    parsed = transformer.transformModFileToJSON(text)
  } catch (e) {
    throw diagnosticsError(
      transformerDiagnostics(e, () => file).map((d) =>
        /^missing (schema|contents) field$/.test(d.message) ? { file, message: d.message } : d,
      ),
    )
  }
  const contents = doc.get('contents', true)
  if (isSeq(contents) && contents.items.length === 0) {
    throw diagnosticsError([{ file, message: 'contents lists no module files' }])
  }
  return {
    schema: parsed.schema.value,
    contents: parsed.contents.value.map((entry) => ({
      name: entry.value,
      line: entry.line.start + 1,
      column: entry.column.start + 1,
    })),
  }
}

/**
 * modelFromModules combines the module files of a manifest, whose directory is `dir`, into
 * one model (`fga model write --file fga.mod` sends the same). Errors name the module file
 * (`dir/name`), line and column.
 */
export function modelFromModules(manifest: ModManifest, modules: ModuleFile[], dir: string, file: string): ModelSource {
  let model: AuthorizationModelInput | undefined
  let found: ModelDiagnostic[] = []
  try {
    model = transformer.transformModuleFilesToModel(modules, manifest.schema) as unknown as AuthorizationModelInput
  } catch (e) {
    found = transformerDiagnostics(e, (name) => (name ? join(dir, name) : file))
    // The transformer names every file without a `module` line "nomodule.fga": name them here.
    const notModules = modules
      .filter((m) => !MODULE_HEADER.test(m.contents))
      .map((m) => ({ file: join(dir, m.name), line: 1, column: 1, message: 'file is not a module: it must declare `module <name>`' }))
    found = [...found.filter((d) => d.message !== 'file is not a module'), ...notModules]
  }
  const duplicates = duplicateTypes(modules, dir).filter((d) => !found.some((f) => f.file === d.file && f.line === d.line))
  if (found.length > 0 || duplicates.length > 0 || model === undefined) throw diagnosticsError([...found, ...duplicates])
  return { model, file, format: 'modular', modules, moduleDir: dir }
}

/**
 * duplicateTypes: every `type` declaration of a type an earlier one (in this module or one listed
 * before it) already declares. The transformer misses some: a module that declares `type doc`
 * and also `extend type doc` has its declaration taken for an extension and merged silently,
 * and its final validation, which would name the duplicate, is skipped once another error
 * was found.
 */
function duplicateTypes(modules: ModuleFile[], dir: string): ModelDiagnostic[] {
  const declared = new Set<string>()
  const found: ModelDiagnostic[] = []
  for (const m of modules) {
    for (const d of typeDeclarations(m.contents)) {
      if (d.extend) continue
      if (declared.has(d.type)) {
        found.push({ file: join(dir, m.name), line: d.line, column: d.column, message: `the type \`${d.type}\` is a duplicate.` })
      }
      declared.add(d.type)
    }
  }
  return found
}

const MODULE_HEADER = /^\s*module\s+\S/m

/**
 * readModelSource reads the model at `path` in `format` (inferred from the name when not
 * given), with `read` for every file: the manifest's module files are read relative to its
 * directory. A module file that cannot be read is reported at its line in the manifest.
 */
export async function readModelSource(
  path: string,
  read: (path: string) => Promise<string>,
  format: ModelFormat = modelFormatFromPath(path),
): Promise<ModelSource> {
  const text = await read(path)
  if (format === 'fga') return modelFromDSLSource(text, path)
  if (format === 'json') return modelFromJSONSource(text, path)
  const manifest = parseModManifest(text, path)
  const dir = dirname(path)
  const problems: ModelDiagnostic[] = []
  const modules: ModuleFile[] = []
  for (const entry of manifest.contents) {
    try {
      modules.push({ name: entry.name, contents: await read(join(dir, entry.name)) })
    } catch (e) {
      const reason = (e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message
      problems.push({ file: path, line: entry.line, column: entry.column, message: `cannot read module file ${entry.name}: ${reason}` })
    }
  }
  if (problems.length > 0) throw diagnosticsError(problems)
  return modelFromModules(manifest, modules, dir, path)
}

/** The server's limits on a model (PEMBA_MAX_TYPES_PER_MODEL, PEMBA_MAX_MODEL_SIZE_BYTES). */
export interface ModelLimits {
  maxTypes?: number
  maxSizeBytes?: number
}

/**
 * checkModelSource applies the rules the server applies when the model is written (its limits
 * when given, Pemba's model validation, then the compilation of its conditions' CEL), and on a
 * refusal points at the type, relation or condition at fault in the source. For a DSL file the
 * transformer's own semantic check (`validateDSL`) is asked too: when it faults the same type
 * and relation, its more precise column (the offending symbol) is used.
 */
export function checkModelSource(source: ModelSource, limits: ModelLimits = {}): void {
  const model = source.model
  const types = Array.isArray(model.type_definitions) ? model.type_definitions.length : 0
  if (limits.maxTypes !== undefined && types > limits.maxTypes) {
    const message = `the model has ${types} type definitions, over the server's limit of ${limits.maxTypes} (PEMBA_MAX_TYPES_PER_MODEL)`
    throw diagnosticsError([{ file: source.file, message }])
  }
  const size = Buffer.byteLength(JSON.stringify(model))
  if (limits.maxSizeBytes !== undefined && size > limits.maxSizeBytes) {
    const message = `the model is ${size} bytes as JSON, over the server's limit of ${limits.maxSizeBytes} (PEMBA_MAX_MODEL_SIZE_BYTES)`
    throw diagnosticsError([{ file: source.file, message }])
  }
  try {
    validateAuthorizationModel(model)
    compileConditions(model.conditions)
  } catch (e) {
    if (!(e instanceof InvalidModelError)) throw e
    throw locateModelError(source, e)
  }
}

/**
 * locateModelError: a refusal of the model read from `source` (by Pemba's validation or the
 * compilation of its conditions), as a diagnostic at the type, relation or condition at fault
 * in the source when it names one.
 */
export function locateModelError(source: ModelSource, e: InvalidModelError): InvalidModelError {
  const subject = e.subject
  const position = subject ? (transformerPosition(source, subject) ?? locateSubject(source, subject)) : {}
  return diagnosticsError([{ file: source.file, ...position, message: e.message }], subject)
}

/**
 * modelToDSL writes a model as DSL; with module metadata, each type, extended relation and
 * condition is followed by a `# module: core, file: core.fga` comment, as `fga model get` shows.
 */
export function modelToDSL(model: AuthorizationModelInput): string {
  try {
    return transformer.transformJSONToDSL(model as never, { includeSourceInformation: hasModules(model) })
  } catch (e) {
    throw new InvalidModelError(`the model cannot be written as DSL: ${(e as Error).message}`)
  }
}

function hasModules(model: AuthorizationModelInput): boolean {
  return (
    model.type_definitions.some((td) => !!td.metadata?.module) ||
    Object.values(model.conditions ?? {}).some((c) => !!c.metadata?.module)
  )
}

/** The parts of the transformer's error classes (errors.BaseError / BaseMultiError) used here. */
interface TransformerError {
  msg?: unknown
  message?: unknown
  file?: unknown
  line?: { start?: unknown } | null
  column?: { start?: unknown } | null
  metadata?: { type?: unknown; relation?: unknown } | null
}

/** transformerDiagnostics turns the transformer's errors (0-based positions) into diagnostics. */
function transformerDiagnostics(e: unknown, fileOf: (name: string | undefined) => string): ModelDiagnostic[] {
  const list = (e as { errors?: unknown } | null)?.errors
  const errors = Array.isArray(list) && list.length > 0 ? list : [e]
  return errors.map((x) => {
    const err = (x ?? {}) as TransformerError
    const text = typeof err.msg === 'string' && err.msg !== '' ? err.msg : typeof err.message === 'string' ? err.message : String(x)
    const line = err.line?.start
    const column = err.column?.start
    const d: Omit<ModelDiagnostic, 'message'> = { file: fileOf(typeof err.file === 'string' ? err.file : undefined) }
    if (typeof line === 'number') {
      d.line = line + 1
      if (typeof column === 'number') d.column = column + 1
    }
    return { ...d, message: firstLine(text) }
  })
}

/** transformerPosition: the position of the transformer's semantic error about `subject`. */
function transformerPosition(source: ModelSource, subject: ModelSubject): { line: number; column: number } | undefined {
  if (source.dsl === undefined || subject.type === undefined) return undefined
  try {
    validator.validateDSL(source.dsl)
  } catch (e) {
    const list = (e as { errors?: unknown }).errors
    for (const x of Array.isArray(list) ? (list as TransformerError[]) : []) {
      const line = x.line?.start
      const column = x.column?.start
      if (x.metadata?.type !== subject.type || typeof line !== 'number' || typeof column !== 'number') continue
      if (subject.relation !== undefined && x.metadata?.relation !== subject.relation) continue
      return { line: line + 1, column: column + 1 }
    }
  }
  return undefined
}

function canonicalTypeDefinition(td: unknown): TypeDefinition {
  if (!isRecord(td) || !isRecord(td.relations)) return td as TypeDefinition
  const relations = Object.fromEntries(Object.entries(td.relations).map(([name, u]) => [name, canonicalUserset(u)]))
  return { ...td, relations } as TypeDefinition
}

/** canonicalUserset spells rewrites as the API's contract does (`computedUserset`, `tupleToUserset`). */
function canonicalUserset(u: unknown): Userset {
  if (!isRecord(u)) return u as Userset
  const out: Record<string, unknown> = { ...u }
  for (const [snake, camel] of [
    ['computed_userset', 'computedUserset'],
    ['tuple_to_userset', 'tupleToUserset'],
  ] as const) {
    if (snake in out) {
      if (!(camel in out)) out[camel] = out[snake]
      delete out[snake]
    }
  }
  if (isRecord(out.tupleToUserset)) out.tupleToUserset = canonicalUserset(out.tupleToUserset)
  for (const op of ['union', 'intersection'] as const) {
    const v = out[op]
    if (isRecord(v) && Array.isArray(v.child)) out[op] = { ...v, child: v.child.map(canonicalUserset) }
  }
  if (isRecord(out.difference)) {
    const d = out.difference
    out.difference = { ...d, base: canonicalUserset(d.base), subtract: canonicalUserset(d.subtract) }
  }
  return out as Userset
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** clip keeps a message short: V8 quotes the JSON text it could not parse. */
function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

function firstLine(text: string): string {
  return text.split('\n')[0].trim()
}
