/**
 * `pemba model …`: models kept as code (docs/models.md), named as the OpenFGA CLI's `fga model`:
 *
 *     pemba model validate <file> [--format text|json]              # offline: exit 1 if invalid
 *     pemba model transform [--file <path>] [--input-format fga|json|modular] [--output-format fga|json]
 *     pemba model write --file <path> [--store-id id] [--api-url url] [--api-token token]
 *     pemba model get [--model-id id] [--format fga|json] [--store-id id] …
 *     pemba model test --tests <glob>                               # src/cli/model-test.ts
 *
 * A model file is DSL (`.fga`), the API's JSON (`.json`) or a modular model's `fga.mod`, the
 * format inferred from the name as `fga` infers it. `validate` applies the rules the server
 * applies on write (src/model/validate.ts and the conditions' CEL), and prints each problem as
 * `file:line:column: message`; `write` checks the model the same way before sending it.
 * `write` and `get` talk to a running server (api-client.ts); `validate` and `transform` need
 * none.
 *
 * @module
 */
import { Option, type Command } from 'commander'
import { PembaError } from '../core/errors.ts'
import { readModelFile } from '../formats/model-file.ts'
import { formatDiagnostic, InvalidModelError, type ModelDiagnostic } from '../model/model-error.ts'
import {
  checkModelSource,
  MODEL_FORMATS,
  modelFormatFromPath,
  modelFromDSLSource,
  modelFromJSONSource,
  modelToDSL,
  type ModelFormat,
  type ModelLimits,
  type ModelSource,
} from '../model/modular.ts'
import type { AuthorizationModelInput } from '../model/types.ts'
import { addApiOptions, ApiError, apiTarget, commandPath, execApi, requireStoreId, type ApiClient } from './api-client.ts'
import { registerModelTest } from './model-test.ts'
import { runProgram, USAGE_EXIT, type CliIo, type CommandContext, type Register } from './program.ts'

/** What `transform` and `get` print: DSL or JSON. */
type OutputFormat = 'fga' | 'json'

/** The name stdin goes by in messages. */
const STDIN = '<stdin>'

export const modelCli: Register = (program, ctx) => {
  const group = program
    .command('model')
    .description('models as code: validate, transform, write and read models; run store test files')
  addValidate(group, ctx)
  addTransform(group, ctx)
  addWrite(group, ctx)
  addGet(group, ctx)
  registerModelTest(group, ctx)
}

function inputFormatOption(): Option {
  return new Option('--input-format <format>', 'the model file\'s format (default: from its name: fga.mod, .json, else fga)').choices(
    MODEL_FORMATS,
  )
}

function addValidate(group: Command, ctx: CommandContext): void {
  const out = ctx.io.out
  const cmd = group
    .command('validate')
    .description('check a model file (DSL, JSON or fga.mod) by the rules the server applies on write; exit 1 if invalid')
    .argument('<file>', 'the model file: model.fga, model.json or fga.mod')
    .addOption(inputFormatOption())
    .addOption(new Option('--format <format>', 'the report on stdout').choices(['text', 'json']).default('text'))
  cmd.action((file: string, opts: { inputFormat?: ModelFormat; format: 'text' | 'json' }) =>
    ctx.exec(cmd, async (config) => {
      const limits = { maxTypes: config.maxTypesPerModel, maxSizeBytes: config.maxModelSizeBytes }
      const result = await validateFile(file, opts.inputFormat, limits)
      if (opts.format === 'json') {
        out.log(JSON.stringify(result, null, 2))
      } else if (result.valid) {
        out.log(`${file}: valid (schema ${result.schema_version}, ${plural(result.types!, 'type')}, ${plural(result.conditions!, 'condition')})`)
      } else {
        for (const d of result.errors!) out.error(formatDiagnostic(d))
      }
      return result.valid ? 0 : 1
    }),
  )
}

/** The outcome of `model validate`, as `--format json` prints it. */
interface ValidationResult {
  file: string
  valid: boolean
  schema_version?: string
  types?: number
  conditions?: number
  errors?: ModelDiagnostic[]
}

async function validateFile(file: string, format: ModelFormat | undefined, limits: ModelLimits): Promise<ValidationResult> {
  try {
    const source = await readModelFile(file, format)
    checkModelSource(source, limits)
    return {
      file,
      valid: true,
      schema_version: source.model.schema_version,
      types: source.model.type_definitions.length,
      conditions: Object.keys(source.model.conditions ?? {}).length,
    }
  } catch (e) {
    const errors = modelErrors(e, file)
    if (!errors) throw e
    return { file, valid: false, errors }
  }
}

/**
 * modelErrors: the diagnostics of a refused model, or of a file that cannot be read (ENOENT,
 * EISDIR…); undefined for anything else, which is a fault of Pemba's.
 */
function modelErrors(e: unknown, file: string): ModelDiagnostic[] | undefined {
  if (e instanceof InvalidModelError && e.diagnostics.length > 0) return [...e.diagnostics]
  if (e instanceof PembaError) return [{ file, message: e.message }]
  const code = (e as { code?: unknown } | null)?.code
  if (e instanceof Error && typeof code === 'string') return [{ file, message: `cannot read the file: ${readError(e, code)}` }]
  return undefined
}

/** readOrReport reads a model, or prints why it cannot (one diagnostic a line) and gives undefined. */
async function readOrReport(
  print: (line: string) => void,
  file: string,
  read: () => Promise<ModelSource>,
): Promise<ModelSource | undefined> {
  try {
    return await read()
  } catch (e) {
    const errors = modelErrors(e, file)
    if (!errors) throw e
    for (const d of errors) print(formatDiagnostic(d))
    return undefined
  }
}

function readError(e: Error, code: string): string {
  if (code === 'ENOENT') return 'no such file'
  if (code === 'EISDIR') return 'is a directory'
  return e.message
}

function addTransform(group: Command, ctx: CommandContext): void {
  const out = ctx.io.out
  const cmd = group
    .command('transform')
    .description('convert a model between DSL and JSON (a modular fga.mod becomes the combined model)')
    .option('--file <path>', 'the model file (default: standard input)')
    .addOption(inputFormatOption())
    .addOption(
      new Option('--output-format <format>', 'what to print (default: json for DSL input, fga otherwise)').choices(['fga', 'json']),
    )
  cmd.action((opts: { file?: string; inputFormat?: ModelFormat; outputFormat?: OutputFormat }) => {
    const inputFormat = opts.inputFormat ?? (opts.file !== undefined ? modelFormatFromPath(opts.file) : 'fga')
    if (opts.file === undefined && inputFormat === 'modular') {
      cmd.error('pemba model transform: a modular model is read from its fga.mod: give --file <path>/fga.mod', { exitCode: USAGE_EXIT })
    }
    return ctx.exec(cmd, async () => {
      const source = await readOrReport(out.error, opts.file ?? STDIN, async () =>
        opts.file !== undefined
          ? readModelFile(opts.file, inputFormat)
          : sourceFromText(await readStdin(), inputFormat as 'fga' | 'json'),
      )
      if (!source) return 1
      warnIfRefused(source, (line) => out.error(line))
      const outputFormat = opts.outputFormat ?? (inputFormat === 'fga' ? 'json' : 'fga')
      out.log(render(source.model, outputFormat))
      return 0
    })
  })
}

/**
 * warnIfRefused: transform converts what parses, as `fga model transform` does, but says on
 * stderr when the server would refuse the model (what `validate` reports), so a conversion is
 * not taken for a check. The exit code stays 0.
 */
function warnIfRefused(source: ModelSource, print: (line: string) => void): void {
  try {
    checkModelSource(source)
  } catch (e) {
    const errors = modelErrors(e, source.file)
    if (!errors) throw e
    print('pemba model transform: warning: converted, but the server would refuse this model (see `pemba model validate`):')
    for (const d of errors) print(formatDiagnostic(d))
  }
}

function sourceFromText(text: string, format: 'fga' | 'json'): ModelSource {
  return format === 'json' ? modelFromJSONSource(text, STDIN) : modelFromDSLSource(text, STDIN)
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** render prints a model as DSL (with module comments when it has modules) or pretty JSON. */
function render(model: AuthorizationModelInput, format: OutputFormat): string {
  return format === 'fga' ? modelToDSL(model).replace(/\n+$/, '') : JSON.stringify(model, null, 2)
}

function addWrite(group: Command, ctx: CommandContext): void {
  const out = ctx.io.out
  const cmd = addApiOptions(
    group
      .command('write')
      .description('write a model (DSL, JSON, or the combined modular model of an fga.mod) to a running server; prints its id')
      .requiredOption('--file <path>', 'the model file: model.fga, model.json or fga.mod')
      .addOption(inputFormatOption())
      .option('--json', 'print the answer as JSON ({"authorization_model_id": …}) instead of the bare id'),
  )
  cmd.action((opts: { file: string; inputFormat?: ModelFormat; json?: boolean }) => {
    // Checked before execApi, whose errors all exit 1: a missing store is a usage error (2).
    requireStoreId(cmd, apiTarget(cmd, ctx.io.env))
    return execApi(ctx, cmd, async ({ client, redactor }) => {
      const print = (line: string) => out.error(redactor.text(line))
      // Checked here as `validate` checks it, so a refusal names file, line and column; the
      // server's limits are its own to apply.
      const source = await readOrReport(print, opts.file, async () => {
        const read = await readModelFile(opts.file, opts.inputFormat)
        checkModelSource(read)
        return read
      })
      if (!source) return 1
      if (!(await storeExists(cmd, client, print))) return 1
      const answer = await client.request<{ authorization_model_id: string }>(
        'POST',
        client.storePath('/authorization-models'),
        source.model,
      )
      out.log(opts.json ? JSON.stringify(answer, null, 2) : answer.authorization_model_id)
      return 0
    })
  })
}

function addGet(group: Command, ctx: CommandContext): void {
  const out = ctx.io.out
  const cmd = addApiOptions(
    group
      .command('get')
      .description("print a store's model (the latest, or --model-id) as DSL, with its modules' files as comments, or as JSON")
      .addOption(new Option('--format <format>', 'DSL or the JSON the API returns').choices(['fga', 'json']).default('fga')),
  )
  cmd.action((opts: { format: OutputFormat }) => {
    requireStoreId(cmd, apiTarget(cmd, ctx.io.env))
    return execApi(ctx, cmd, async ({ client, redactor }) => {
      if (!(await storeExists(cmd, client, (line) => out.error(redactor.text(line))))) return 1
      const model = await readModel(client, client.target.modelId)
      if (!model) {
        out.error('pemba model get: the store has no authorization model')
        return 1
      }
      if (opts.format === 'json') {
        out.log(JSON.stringify(model, null, 2))
      } else {
        out.log(`# Model ID: ${model.id}\n${render(model, 'fga')}`)
      }
      return 0
    })
  })
}

/**
 * storeExists asks the server for the target's store (GET /stores/{id}), and says on `print`
 * when it has none: the server takes a model for a store id it never made, which leaves the
 * model where no one reads it. Reading a store takes the store's admin role: a token with only
 * model rights (403) skips the check, and the request itself answers.
 */
async function storeExists(cmd: Command, client: ApiClient, print: (line: string) => void): Promise<boolean> {
  const storeId = client.target.storeId!
  try {
    await client.request('GET', `/stores/${encodeURIComponent(storeId)}`)
    return true
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return true
    if (!(e instanceof ApiError && e.status === 404)) throw e
    print(`pemba ${commandPath(cmd)}: no store ${storeId} on ${client.target.url} (create one with \`pemba store import\`, see docs/models.md)`)
    return false
  }
}

/** readModel reads one model, or the store's latest (the first of the newest-first list). */
async function readModel(client: ApiClient, modelId: string | undefined): Promise<StoredModel | undefined> {
  type Model = StoredModel
  if (modelId !== undefined) {
    const answer = await client.request<{ authorization_model: Model }>(
      'GET',
      client.storePath(`/authorization-models/${encodeURIComponent(modelId)}`),
    )
    return answer.authorization_model
  }
  const page = await client.request<{ authorization_models: Model[] }>('GET', client.storePath('/authorization-models?page_size=1'))
  return page.authorization_models[0]
}

type StoredModel = AuthorizationModelInput & { id: string }

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** modelCommand runs `pemba model <argv…>` in-process (tests). */
export function modelCommand(argv: string[], env: CliIo['env'], out: CliIo['out'] = console): Promise<number> {
  return runProgram(['model', ...argv], { env, out }, [modelCli])
}
