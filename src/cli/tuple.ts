/**
 * `pemba tuple import <file>` and `pemba tuple export`: tuples in bulk, in the files
 * `fga tuple write --file` reads (YAML, JSON, JSONL, CSV) and SpiceDB's relationship lines
 * (zed), through a running server's API (Pemba or OpenFGA: `--api-url`, `--api-token`,
 * `--store-id`, or fga's FGA_* variables) or directly in Pemba's database (`--database-url`,
 * the fast path).
 *
 *     pemba tuple import tuples.csv --store-id 01H…                          # HTTP, 100 a request
 *     pemba tuple import tuples.jsonl --store-id 01H… --database-url postgres://…   # the fast path
 *     pemba tuple import big.jsonl --store-id 01H… --resume                   # after an interruption
 *     pemba tuple export --store-id 01H… --format zed --output backup.zed
 *
 * An import reports every bad line on stderr with its number and reason and goes on with the
 * others (`--max-errors N` stops after N), shows its progress (a bar on a terminal, a JSON line
 * every few seconds otherwise), keeps a resume state next to the file, and ends with a summary:
 * exit 0 when every line landed, 1 otherwise. docs/import-export.md has the details.
 *
 * @module
 */
import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs'
import { basename } from 'node:path'
import { Option, type Command } from 'commander'
import { isTupleFileFormat, TupleFileError, tupleFileWriter, tupleFormatFromPath, TUPLE_FILE_FORMATS, type TupleFileFormat } from '../formats/tuple-file.ts'
import type { TupleKey } from '../core/tuple.ts'
import { apiTarget, commandPath, requireStoreId } from './api-client.ts'
import { addConnectionOptions, withConnection, type Connection } from './import/connect.ts'
import { progressReporter, type ProgressMode } from './import/progress.ts'
import { defaultStatePath } from './import/resume.ts'
import { ImportInterrupted, runImport, type ImportOutcome } from './import/run-import.ts'
import { databaseSource, databaseTarget, httpSource, httpTarget, HTTP_CHUNK, type ImportTarget } from './import/targets.ts'
import { USAGE_EXIT, type CommandContext, type Register } from './program.ts'

interface ImportFlags {
  format?: string
  resume?: boolean
  state?: string
  maxErrors?: string
  chunkSize?: string
  concurrency?: string
  progress: ProgressMode
  progressInterval: string
  json?: boolean
}

interface ExportFlags {
  format?: string
  output?: string
  expiresColumn: boolean
  expiring?: ExpiringMode
}

/**
 * What an export does with a tuple that has `expires_at`. OpenFGA has no expiring tuples, and
 * fga reads its files into keys that drop fields it does not know: such a tuple would become a
 * permanent grant there. So a file in fga's formats refuses them unless told: `keep` writes
 * `expires_at` (a file for Pemba), `omit` leaves those tuples out (a file for OpenFGA).
 */
export type ExpiringMode = 'refuse' | 'keep' | 'omit'
export const EXPIRING_MODES: readonly ExpiringMode[] = ['refuse', 'keep', 'omit']

/** expiringOption: the `--expiring` flag, its default said by the command. */
export function expiringOption(defaultSaid: string): Option {
  return new Option(
    '--expiring <mode>',
    `tuples with expires_at (OpenFGA would keep them forever): refuse them, keep expires_at (for Pemba), or omit them (default: ${defaultSaid})`,
  ).choices(EXPIRING_MODES)
}

/**
 * applyExpiring passes keys through the mode: `refuse` throws TupleFileError at the first
 * expiring tuple (naming it and the flag), `omit` skips them and counts them in `omitted`.
 */
export async function* applyExpiring(keys: AsyncIterable<TupleKey>, mode: ExpiringMode, omitted: { count: number }): AsyncIterable<TupleKey> {
  for await (const key of keys) {
    if (key.expires_at && mode !== 'keep') {
      if (mode === 'omit') {
        omitted.count++
        continue
      }
      throw new TupleFileError(
        `${key.object}#${key.relation}@${key.user} expires at ${key.expires_at}: OpenFGA has no expiring tuples and would keep it forever; ` +
          'add --expiring keep (a file for Pemba) or --expiring omit (leave expiring tuples out)',
      )
    }
    yield key
  }
}

/** positiveInt reads a numeric flag or stops with a usage error naming it. */
export function positiveInt(cmd: Command, flag: string, value: string | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > max) {
    cmd.error(`pemba ${commandPath(cmd)}: ${flag} must be an integer from 1 to ${max}, got '${value}'`, { exitCode: USAGE_EXIT })
  }
  return n
}

/** fileFormat: `--format`, else the file's extension; a usage error when neither says. */
export function fileFormat(cmd: Command, format: string | undefined, path: string | undefined): TupleFileFormat {
  if (format !== undefined) {
    if (!isTupleFileFormat(format)) {
      cmd.error(`pemba ${commandPath(cmd)}: --format must be one of ${TUPLE_FILE_FORMATS.join(', ')}, got '${format}'`, { exitCode: USAGE_EXIT })
    }
    return format as TupleFileFormat
  }
  if (path === undefined) return 'jsonl'
  try {
    return tupleFormatFromPath(path)
  } catch (e) {
    cmd.error(`pemba ${commandPath(cmd)}: ${(e as Error).message}`, { exitCode: USAGE_EXIT })
    throw e
  }
}

/** importTarget: the HTTP or database target of a connection, for one store. */
export async function importTarget(
  c: Connection,
  storeId: string,
  options: { chunkSize?: number; concurrency?: number },
): Promise<ImportTarget> {
  if (c.kind === 'http') {
    const t = await httpTarget(c.client, storeId, { modelId: c.modelId, concurrency: options.concurrency })
    return options.chunkSize ? { ...t, chunkSize: Math.min(options.chunkSize, HTTP_CHUNK) } : t
  }
  return databaseTarget(c.pemba, storeId, { modelId: c.modelId, chunkSize: options.chunkSize, description: `${c.where}, store ${storeId}` })
}

/** summaryLine: `read 1000, written 990, unchanged 0, refused 10` (accepted when the target cannot tell). */
export function summaryText(o: ImportOutcome): string {
  const c = o.counts
  const stored =
    c.written !== undefined && c.unchanged !== undefined && c.written + c.unchanged === c.accepted
      ? `written ${c.written}, unchanged ${c.unchanged}`
      : `written or unchanged ${c.accepted}`
  return `read ${c.read}, ${stored}, refused ${c.refused}`
}

function addImport(tuple: Command, ctx: CommandContext): void {
  const cmd = tuple
    .command('import')
    .description('write the tuples of a file (YAML, JSON, JSONL, CSV as fga reads them; zed lines) into a store')
    .argument('<file>', 'the tuple file')
    .addOption(new Option('--format <format>', 'the file format (default: by extension)').choices(TUPLE_FILE_FORMATS))
    .option('--resume', 'go on after an interrupted import of the same file into the same store')
    .option('--state <path>', 'the resume state file (default: <file>.<store id>.pemba-import.json)')
    .option('--max-errors <n>', 'stop after this many bad lines (exit 1)')
    .option('--chunk-size <n>', 'tuples per transaction (database, default 50000) or request (HTTP, at most 100)')
    .option('--concurrency <n>', 'HTTP requests in flight (default 4)')
    .addOption(new Option('--progress <mode>', 'progress: a bar, JSON lines on stderr, or none').choices(['auto', 'bar', 'lines', 'none']).default('auto'))
    .option('--progress-interval <seconds>', 'seconds between progress lines', '5')
    .option('--json', 'print the summary as JSON')
  addConnectionOptions(cmd)
  cmd.action((file: string, flags: ImportFlags) => {
    if (!existsSync(file)) cmd.error(`pemba tuple import: no such file: ${file}`, { exitCode: USAGE_EXIT })
    const format = fileFormat(cmd, flags.format, file)
    const maxErrors = positiveInt(cmd, '--max-errors', flags.maxErrors)
    const chunkSize = positiveInt(cmd, '--chunk-size', flags.chunkSize)
    const concurrency = positiveInt(cmd, '--concurrency', flags.concurrency, 64)
    const interval = Number(flags.progressInterval)
    if (!(interval > 0)) cmd.error(`pemba tuple import: --progress-interval must be a positive number, got '${flags.progressInterval}'`, { exitCode: USAGE_EXIT })
    const storeId = requireStoreId(cmd, apiTarget(cmd, ctx.io.env))
    return withConnection(ctx, cmd, async (c) => {
      const target = await importTarget(c, storeId, { chunkSize, concurrency })
      const out = ctx.io.out
      const where = c.redactor.text(target.description)
      out.error(`pemba tuple import: ${basename(file)} (${format}) → ${c.kind === 'http' ? 'HTTP ' : ''}${where}`)
      const statePath = flags.state ?? defaultStatePath(file, storeId)
      // Ctrl-C or a kill: the chunks in flight land, the resume state is saved, and the way on is
      // said; a second signal exits at once.
      const controller = new AbortController()
      let received: keyof typeof SIGNAL_EXIT | undefined
      const stop = (signal: keyof typeof SIGNAL_EXIT) => {
        if (received) process.exit(SIGNAL_EXIT[signal])
        received = signal
        controller.abort()
      }
      const onInt = () => stop('SIGINT')
      const onTerm = () => stop('SIGTERM')
      process.on('SIGINT', onInt)
      process.on('SIGTERM', onTerm)
      let outcome: ImportOutcome
      try {
        outcome = await runImport({
          file,
          format,
          target,
          statePath,
          resume: flags.resume === true,
          maxErrors,
          progress: progressReporter(flags.progress, {
            isTTY: process.stderr.isTTY === true && ctx.io.out === console,
            writeLine: (s) => out.error(s),
            intervalMs: interval * 1000,
          }),
          note: (s) => out.error(c.redactor.text(`pemba tuple import: ${file}: ${s}`)),
          signal: controller.signal,
        })
      } catch (e) {
        if (!(e instanceof ImportInterrupted) || !received) throw e
        out.error(
          `pemba tuple import: ${file}: interrupted (${received}) after record ${e.committedRecord} (line ${e.committedLine}), ` +
            `${e.counts.accepted} tuples stored; state in ${statePath}: rerun with --resume to continue`,
        )
        return SIGNAL_EXIT[received]
      } finally {
        process.off('SIGINT', onInt)
        process.off('SIGTERM', onTerm)
      }
      const ok = outcome.counts.refused === 0 && !outcome.stopped
      if (flags.json) {
        out.log(
          JSON.stringify({
            file,
            format,
            target: c.kind,
            where,
            ...outcome.counts,
            resumed_after_record: outcome.resumedAfterRecord,
            resumed_after_line: outcome.resumedAfter,
            stopped: outcome.stopped,
            ok,
          }),
        )
      } else {
        const resumed = outcome.resumedAfterRecord > 0 ? ` (resumed after record ${outcome.resumedAfterRecord}, line ${outcome.resumedAfter})` : ''
        const stopped = outcome.stopped ? ` — stopped after ${maxErrors} bad lines (--max-errors)` : ''
        out.log(`imported ${file} into ${where}${resumed}: ${summaryText(outcome)}${stopped}`)
      }
      return ok ? 0 : 1
    })
  })
}

/** The exit code of a command stopped by a signal: 128 + its number, as a shell reports it. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const

/** writeTuples streams keys through a format's writer to a file or the command's stdout. */
export async function writeTuples(
  keys: AsyncIterable<TupleKey>,
  format: TupleFileFormat,
  output: string | undefined,
  log: (s: string) => void,
  options: { expiresColumn?: boolean } = {},
): Promise<number> {
  const w = tupleFileWriter(format, options)
  let count = 0
  if (output !== undefined) {
    // Written beside the output and renamed into place at the end, so that a refused or failed
    // export (an expiring tuple, a lost connection) leaves no partial file behind.
    const partial = `${output}.${process.pid}.partial`
    const file = createWriteStream(partial)
    const write = (s: string) => (s === '' || file.write(s) ? Promise.resolve() : new Promise<void>((r) => file.once('drain', () => r())))
    try {
      try {
        await write(w.begin())
        for await (const key of keys) {
          await write(w.tuple(key))
          count++
        }
        await write(w.end())
      } finally {
        await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())))
      }
      renameSync(partial, output)
    } catch (e) {
      rmSync(partial, { force: true })
      throw e
    }
    return count
  }
  // stdout through the command's io, in whole lines (console.log adds the line break back).
  let pending = w.begin()
  const flush = (final: boolean) => {
    const cut = final ? pending.length : pending.lastIndexOf('\n') + 1
    if (cut === 0) return
    const text = pending.slice(0, cut)
    pending = pending.slice(cut)
    log(text.endsWith('\n') ? text.slice(0, -1) : text)
  }
  for await (const key of keys) {
    pending += w.tuple(key)
    count++
    if (pending.length > 64 * 1024) flush(false)
  }
  pending += w.end()
  flush(true)
  return count
}

function addExport(tuple: Command, ctx: CommandContext): void {
  const cmd = tuple
    .command('export')
    .description("write a store's tuples (with conditions and expires_at) to stdout or a file")
    .addOption(new Option('--format <format>', 'the file format (default: by --output extension, else jsonl)').choices(TUPLE_FILE_FORMATS))
    .option('--output <file>', 'write to this file instead of stdout')
    .option('--no-expires-column', "CSV: leave out Pemba's expires_at column (fga refuses columns it does not know); needs --expiring omit if a tuple expires")
    .addOption(expiringOption('keep for zed, which SpiceDB reads as an expiration; refuse for the fga formats'))
  addConnectionOptions(cmd)
  cmd.action((flags: ExportFlags) => {
    const format = fileFormat(cmd, flags.format, flags.output)
    const expiring = flags.expiring ?? (format === 'zed' ? 'keep' : 'refuse')
    if (expiring === 'keep' && format === 'csv' && !flags.expiresColumn) {
      cmd.error('pemba tuple export: --expiring keep needs the expires_at column (drop --no-expires-column)', { exitCode: USAGE_EXIT })
    }
    const storeId = requireStoreId(cmd, apiTarget(cmd, ctx.io.env))
    return withConnection(ctx, cmd, async (c) => {
      const source = c.kind === 'http' ? httpSource(c.client, storeId) : databaseSource(c.pemba, storeId, `${c.where}, store ${storeId}`)
      if (c.kind === 'database') await c.pemba.stores.get(storeId)
      const omitted = { count: 0 }
      const keys = applyExpiring(source.tuples(), expiring, omitted)
      const count = await writeTuples(keys, format, flags.output, (s) => ctx.io.out.log(s), { expiresColumn: flags.expiresColumn })
      const left = omitted.count > 0 ? `, ${omitted.count} expiring tuples left out (--expiring omit)` : ''
      ctx.io.out.error(c.redactor.text(`pemba tuple export: ${count} tuples from ${source.description}${flags.output ? ` → ${flags.output}` : ''} (${format})${left}`))
      return 0
    })
  })
}

export const tupleCli: Register = (program, ctx) => {
  const tuple = program.command('tuple').description('import and export tuples in bulk (fga and zed file formats)')
  addImport(tuple, ctx)
  addExport(tuple, ctx)
}
