/**
 * `pemba store export` and `pemba store import`, in `fga store export` / `fga store import` form:
 * a store moves, as one OpenFGA store file (`*.fga.yaml`: name, model DSL, tuples, tests), from
 * OpenFGA to Pemba and back, through a server's API or directly in Pemba's database
 * (`--database-url`).
 *
 *     pemba store export --store-id 01H… --output-file store.fga.yaml [--tuple-file tuples.jsonl]
 *     pemba store import --file store.fga.yaml [--store-id 01H…]
 *
 * Export writes the store's name, its model (the latest, or `--model-id`) as DSL, its tuples
 * (inline, or in `--tuple-file` for a large store), and the model's assertions as check tests
 * (grouped by user and object, as fga does; assertions with contextual tuples each get a test
 * holding them as the test's tuples). Import creates a store named as the file says (or uses
 * `--store-id`), writes the model, the tuples (every one with `on_duplicate: ignore`; a refused
 * tuple is reported and the others land) and the check tests as the model's assertions, as fga
 * does; list_objects and list_users tests have no assertion form and are only counted.
 *
 * @module
 */
import { existsSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import type { Command } from 'commander'
import { STORE_NAME } from '../api/contracts.ts'
import { PembaError } from '../core/errors.ts'
import type { TupleKey } from '../core/tuple.ts'
import { formatStoreFile, loadStoreFile, StoreFileError, type LoadedStoreFile, type StoreFile, type StoreFileCheck, type StoreFileTest } from '../formats/store-file.ts'
import { canonicalKey, tupleFormatFromPath } from '../formats/tuple-file.ts'
import { modelToDSL } from '../model/modular.ts'
import type { AuthorizationModel, AuthorizationModelInput } from '../model/types.ts'
import { apiTarget, commandPath, requireStoreId } from './api-client.ts'
import { addConnectionOptions, withConnection, type Connection } from './import/connect.ts'
import { progressReporter } from './import/progress.ts'
import { runImport } from './import/run-import.ts'
import { databaseSource, httpSource } from './import/targets.ts'
import { USAGE_EXIT, type CommandContext, type Register } from './program.ts'
import { applyExpiring, expiringOption, importTarget, positiveInt, summaryText, writeTuples, type ExpiringMode } from './tuple.ts'

/** An assertion as OpenFGA's ReadAssertions returns it. */
interface StoredAssertion {
  tuple_key: { user: string; relation: string; object: string }
  expectation: boolean
  contextual_tuples?: TupleKey[] | null
  context?: Record<string, unknown> | null
}

/** What export reads from a store, through either connection. */
interface StoreContents {
  name: string
  model: AuthorizationModel
  assertions: StoredAssertion[]
}

async function readStore(c: Connection, storeId: string): Promise<StoreContents> {
  if (c.kind === 'database') {
    const store = await c.pemba.stores.get(storeId)
    const modelId = c.modelId ?? (await c.pemba.models.resolve(storeId, undefined, { fresh: true })).id
    const model = await c.pemba.models.read(storeId, modelId)
    const assertions = (await c.pemba.assertions.read(storeId, modelId)) as StoredAssertion[]
    return { name: store.name, model, assertions }
  }
  const path = (s: string) => `/stores/${encodeURIComponent(storeId)}${s}`
  const store = await c.client.request<{ name: string }>('GET', path(''))
  let model: AuthorizationModel | undefined
  if (c.modelId) {
    model = (await c.client.request<{ authorization_model: AuthorizationModel }>('GET', path(`/authorization-models/${encodeURIComponent(c.modelId)}`))).authorization_model
  } else {
    const page = await c.client.request<{ authorization_models: AuthorizationModel[] }>('GET', path('/authorization-models?page_size=1'))
    model = page.authorization_models[0]
  }
  if (!model) throw new PembaError('latest_authorization_model_not_found', `store ${storeId} has no authorization model to export`)
  const answer = await c.client.request<{ assertions?: StoredAssertion[] }>('GET', path(`/assertions/${encodeURIComponent(model.id)}`))
  return { name: store.name, model, assertions: answer.assertions ?? [] }
}

/**
 * assertionTests: the assertions as store-file tests. As fga groups them: one check per user
 * and object (and context), its relations' expectations together, in a test named `Tests`;
 * an assertion with contextual tuples goes into a test of its own whose tuples they are.
 */
export function assertionTests(assertions: StoredAssertion[]): StoreFileTest[] {
  const plain = new Map<string, StoreFileCheck>()
  const contextual: StoreFileTest[] = []
  for (const a of assertions) {
    const context = a.context && Object.keys(a.context).length > 0 ? a.context : undefined
    const check: StoreFileCheck = { user: a.tuple_key.user, object: a.tuple_key.object, assertions: { [a.tuple_key.relation]: a.expectation } }
    if (context) check.context = context
    const tuples = a.contextual_tuples ?? []
    if (tuples.length > 0) {
      contextual.push({ name: `Tests with contextual tuples ${contextual.length + 1}`, tuples: tuples.map(canonicalKey), check: [check] })
      continue
    }
    const key = JSON.stringify([a.tuple_key.user, a.tuple_key.object, context ?? null])
    const existing = plain.get(key)
    if (existing) existing.assertions[a.tuple_key.relation] = a.expectation
    else plain.set(key, check)
  }
  // No assertions, no tests: an empty test is one `pemba model test` flags as asserting nothing.
  return [...(plain.size > 0 ? [{ name: 'Tests', check: [...plain.values()] }] : []), ...contextual]
}

/** checkAssertions: a loaded store file's check tests as assertions (users × objects × relations). */
export function checkAssertions(tests: LoadedStoreFile['tests']): StoredAssertion[] {
  const out: StoredAssertion[] = []
  for (const test of tests) {
    for (const check of test.check ?? []) {
      const users = check.users ?? (check.user ? [check.user] : [])
      const objects = check.objects ?? (check.object ? [check.object] : [])
      for (const user of users) {
        for (const object of objects) {
          for (const [relation, expectation] of Object.entries(check.assertions)) {
            out.push({ tuple_key: { user, relation, object }, expectation, contextual_tuples: test.tuples, context: check.context ?? {} })
          }
        }
      }
    }
  }
  return out
}

interface ExportFlags {
  outputFile?: string
  tupleFile?: string
  force?: boolean
  maxTuples?: string
  expiring?: ExpiringMode
}

function addExport(store: Command, ctx: CommandContext): void {
  const cmd = store
    .command('export')
    .description('write a store (name, model DSL, tuples, assertions as tests) as an OpenFGA store file')
    .option('--output-file <file>', 'write the store file here instead of stdout')
    .option('--tuple-file <file>', "write the tuples to this file (.yaml, .json, .jsonl, .csv), a path relative to the store file's directory, named by its tuple_file")
    .option('--force', 'replace an existing tuple file (without it, an existing --tuple-file is refused)')
    .option('--max-tuples <n>', 'export at most this many tuples (default: all of them; fga defaults to 100)')
    .addOption(expiringOption('refuse: a store file is for fga'))
  addConnectionOptions(cmd)
  cmd.action((flags: ExportFlags) => {
    const maxTuples = positiveInt(cmd, '--max-tuples', flags.maxTuples)
    if (flags.tupleFile !== undefined && flags.outputFile === undefined) {
      cmd.error('pemba store export: --tuple-file needs --output-file (the store file names it relative to itself)', { exitCode: USAGE_EXIT })
    }
    const tupleFormat = flags.tupleFile === undefined ? undefined : tupleFormatOf(cmd, flags.tupleFile)
    const tuplePath = flags.tupleFile === undefined ? undefined : tupleFileBeside(cmd, flags.outputFile!, flags.tupleFile, flags.force === true)
    const storeId = requireStoreId(cmd, apiTarget(cmd, ctx.io.env))
    return withConnection(ctx, cmd, async (c) => {
      const contents = await readStore(c, storeId)
      const source = c.kind === 'http' ? httpSource(c.client, storeId) : databaseSource(c.pemba, storeId, c.where)
      const omitted = { count: 0 }
      const tuples = limit(applyExpiring(source.tuples(), flags.expiring ?? 'refuse', omitted), maxTuples)
      const { id: _id, ...model } = contents.model
      const file: StoreFile = { name: contents.name, model: modelToDSL(model as AuthorizationModelInput), tests: assertionTests(contents.assertions) }
      let count: number
      if (tuplePath !== undefined) {
        count = await writeTuples(tuples, tupleFormat!, tuplePath, () => {})
        file.tuple_file = relative(dirname(flags.outputFile!), tuplePath).split(sep).join('/')
      } else {
        const keys: TupleKey[] = []
        for await (const k of tuples) keys.push(k)
        file.tuples = keys
        count = keys.length
      }
      const text = formatStoreFile(file)
      if (flags.outputFile !== undefined) writeFileSync(flags.outputFile, text)
      else ctx.io.out.log(text.replace(/\n$/, ''))
      const where = flags.outputFile ? ` → ${flags.outputFile}` : ''
      const left = omitted.count > 0 ? `, ${omitted.count} expiring tuples left out` : ''
      ctx.io.out.error(`pemba store export: store ${storeId} (model ${contents.model.id}, ${count} tuples${left}, ${contents.assertions.length} assertions)${where}`)
      return 0
    })
  })
}

/**
 * tupleFileBeside: where `--tuple-file` goes. The name is taken relative to the store file's
 * directory (as the store file's tuple_file is read back), must stay inside it (store import and
 * model test refuse a tuple file outside), and an existing file is kept unless `--force`.
 */
function tupleFileBeside(cmd: Command, outputFile: string, tupleFile: string, force: boolean): string {
  const dir = resolve(dirname(outputFile))
  const path = resolve(dir, tupleFile)
  const rel = relative(dir, path)
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    cmd.error(`pemba store export: --tuple-file '${tupleFile}' is outside the store file's directory ${dir} (it is taken relative to --output-file)`, { exitCode: USAGE_EXIT })
  }
  if (!force && existsSync(path)) {
    cmd.error(`pemba store export: the tuple file ${path} exists; give --force to replace it`, { exitCode: USAGE_EXIT })
  }
  return path
}

function tupleFormatOf(cmd: Command, path: string) {
  try {
    return tupleFormatFromPath(path)
  } catch (e) {
    cmd.error(`pemba ${commandPath(cmd)}: ${(e as Error).message}`, { exitCode: USAGE_EXIT })
    throw e
  }
}

async function* limit<T>(items: AsyncIterable<T>, max: number | undefined): AsyncIterable<T> {
  if (max === undefined) return yield* items
  let n = 0
  for await (const item of items) {
    if (n++ >= max) return
    yield item
  }
}

interface ImportFlags {
  file: string
  maxTuplesPerWrite?: string
  maxParallelRequests?: string
  allowExternalFiles?: boolean
}

/** existingStoreName: the name of a store given by --store-id (or FGA_STORE_ID); throws when there is none. */
async function existingStoreName(c: Connection, storeId: string): Promise<string> {
  if (c.kind === 'database') return (await c.pemba.stores.get(storeId)).name
  return (await c.client.request<{ name: string }>('GET', `/stores/${encodeURIComponent(storeId)}`)).name
}

/** createStore: a new store named as the store file says. */
async function createStore(c: Connection, name: string): Promise<string> {
  if (c.kind === 'database') return (await c.pemba.stores.create(name, '')).id
  return (await c.client.request<{ id: string }>('POST', '/stores', { name })).id
}

/** writeModel: the store file's model as the store's new latest model; its id. */
async function writeModel(c: Connection, storeId: string, loaded: LoadedStoreFile): Promise<string> {
  if (c.kind === 'database') return c.pemba.models.write(storeId, loaded.model)
  const path = `/stores/${encodeURIComponent(storeId)}/authorization-models`
  return (await c.client.request<{ authorization_model_id: string }>('POST', path, loaded.model)).authorization_model_id
}

/**
 * assertionProblems: the check tests' relations that the model does not define, each named by
 * its test, found before anything is written (the server would refuse the assertions only after
 * the store, model and tuples are in).
 */
export function assertionProblems(loaded: LoadedStoreFile): string[] {
  const relations = new Map(loaded.model.type_definitions.map((t) => [t.type, new Set(Object.keys(t.relations ?? {}))]))
  const problems: string[] = []
  for (const [i, test] of loaded.tests.entries()) {
    for (const [j, check] of (test.check ?? []).entries()) {
      const objects = check.objects ?? (check.object ? [check.object] : [])
      for (const object of objects) {
        const type = object.slice(0, object.indexOf(':'))
        for (const relation of Object.keys(check.assertions)) {
          if (relations.get(type)?.has(relation)) continue
          const what = relations.has(type) ? `relation '${type}#${relation}' not found` : `type '${type}' not found`
          problems.push(`${loaded.path}: test '${test.name}' (tests[${i}]), check[${j}] on ${object}: ${what} in the model`)
        }
      }
    }
  }
  return [...new Set(problems)]
}

async function writeAssertions(c: Connection, storeId: string, modelId: string, assertions: StoredAssertion[]): Promise<void> {
  if (assertions.length === 0) return
  if (c.kind === 'database') {
    await c.pemba.assertions.write(
      storeId,
      modelId,
      assertions.map((a) => ({ tupleKey: a.tuple_key, expectation: a.expectation, contextualTuples: a.contextual_tuples ?? [], context: a.context ?? undefined })),
    )
    return
  }
  await c.client.request('PUT', `/stores/${encodeURIComponent(storeId)}/assertions/${encodeURIComponent(modelId)}`, { assertions })
}

function addImport(store: Command, ctx: CommandContext): void {
  const cmd = store
    .command('import')
    .description('create a store from an OpenFGA store file (or fill --store-id): model, tuples, check tests as assertions')
    .requiredOption('--file <file>', 'the store file (*.fga.yaml)')
    .option('--max-parallel-requests <n>', 'write requests in flight (HTTP, default 4)')
    .option('--allow-external-files', 'let the store file name files outside its directory')
  addConnectionOptions(cmd)
  // The settings add --max-tuples-per-write as the server's limit; here it is fga's flag of the
  // same name (tuples per write request), and shown so, among this command's own options.
  const perWrite = cmd.options.find((o) => o.long === '--max-tuples-per-write')
  if (perWrite) {
    perWrite.description = "tuples per write request, as fga's flag (default: the server's limit, 100)"
    perWrite.envVar = undefined
    perWrite.hideHelp(false)
    perWrite.helpGroup('Options:')
  }
  cmd.action((flags: ImportFlags) => {
    // fga's --max-tuples-per-write is also a server setting's flag (added with the settings): read here when given.
    const chunkSize = cmd.getOptionValueSource('maxTuplesPerWrite') === 'cli' ? positiveInt(cmd, '--max-tuples-per-write', flags.maxTuplesPerWrite) : undefined
    const concurrency = positiveInt(cmd, '--max-parallel-requests', flags.maxParallelRequests, 64)
    const given = apiTarget(cmd, ctx.io.env).storeId
    return withConnection(ctx, cmd, async (c) => {
      let loaded: LoadedStoreFile
      try {
        loaded = await loadStoreFile(flags.file, { allowExternalFiles: flags.allowExternalFiles === true })
      } catch (e) {
        if (!(e instanceof StoreFileError)) throw e
        ctx.io.out.error(`pemba store import: ${e.message}`)
        return 1
      }
      // Checked here for both paths: the database path would take a name the API refuses.
      if (given === undefined && !STORE_NAME.test(loaded.name)) {
        ctx.io.out.error(
          `pemba store import: ${flags.file}: the store name '${loaded.name}' is not 3 to 64 letters, digits, spaces or . - / ^ _ & @ ` +
            '(as OpenFGA requires): rename it in the file, or give --store-id to fill an existing store',
        )
        return 1
      }
      const problems = assertionProblems(loaded)
      if (problems.length > 0) {
        for (const p of problems.slice(0, 20)) ctx.io.out.error(`pemba store import: ${p}`)
        ctx.io.out.error('pemba store import: nothing was imported: the assertions of these tests would be refused')
        return 1
      }
      // fga store import fills the store --store-id (or FGA_STORE_ID) names; said aloud, since the
      // variable may be set for other commands.
      const storeName = given === undefined ? loaded.name : await existingStoreName(c, given)
      if (given !== undefined) {
        const from = cmd.getOptionValueSource('storeId') === 'cli' ? '--store-id' : 'FGA_STORE_ID'
        ctx.io.out.error(
          `pemba store import: filling the existing store ${given} '${storeName}' (${from}): the file's model becomes its latest model; ` +
            `the file's name '${loaded.name}' is not applied (unset ${from} to create a new store)`,
        )
      }
      const storeId = given ?? (await createStore(c, loaded.name))
      try {
        return await fill(c, storeId, storeName, loaded)
      } catch (e) {
        const made = given === undefined ? `the store ${storeId} '${storeName}' was created and is left as it is` : `the store ${storeId} '${storeName}' may be partly filled`
        ctx.io.out.error(c.redactor.text(`pemba store import: ${flags.file}: ${e instanceof Error ? e.message : String(e)}; ${made}`))
        return 1
      }
    })

    async function fill(c: Connection, storeId: string, storeName: string, loaded: LoadedStoreFile): Promise<number> {
      const modelId = await writeModel(c, storeId, loaded)
      const target = await importTarget({ ...c, modelId }, storeId, { chunkSize, concurrency })
      const outcome = await runImport({
        file: flags.file,
        format: 'yaml',
        records: loaded.tuples.map((key, i) => ({ line: i + 1, key })),
        target,
        resume: false,
        progress: progressReporter('auto', { isTTY: process.stderr.isTTY === true && ctx.io.out === console, writeLine: () => {}, intervalMs: 5000 }),
        note: (s) => ctx.io.out.error(`pemba store import: ${flags.file}: tuple ${s.replace(/^line /, '')}`),
      })
      const assertions = checkAssertions(loaded.tests)
      await writeAssertions(c, storeId, modelId, assertions)
      const other = loaded.tests.reduce((n, t) => n + (t.list_objects?.length ?? 0) + (t.list_users?.length ?? 0), 0)
      if (other > 0) ctx.io.out.error(`pemba store import: ${other} list_objects/list_users tests are not stored: assertions hold checks only`)
      ctx.io.out.error(c.redactor.text(`pemba store import: ${flags.file} → ${target.description}: tuples ${summaryText(outcome)}; ${assertions.length} assertions`))
      ctx.io.out.log(
        JSON.stringify(
          {
            store: { id: storeId, name: storeName },
            model: { authorization_model_id: modelId },
            tuples: outcome.counts,
            assertions: assertions.length,
          },
          null,
          2,
        ),
      )
      return outcome.counts.refused === 0 ? 0 : 1
    }
  })
}

export const storeCli: Register = (program, ctx) => {
  const store = program.command('store').description('export and import whole stores as OpenFGA store files (fga store export|import)')
  addExport(store, ctx)
  addImport(store, ctx)
}
