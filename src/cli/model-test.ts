/**
 * `pemba model test --tests <glob>`: runs the tests of OpenFGA store files (`*.fga.yaml`, read
 * unchanged: src/formats/store-file.ts) in this process, against an in-memory database, with no
 * server and no network:
 *
 *     pemba model test --tests 'authz/**\/*.fga.yaml' [--format json] [--junit report.xml]
 *
 * One line per test in fga's style, each failing assertion with Pemba's explanation of the
 * answer, then `N passed, M failed`. Exit 0 when everything passed; 1 when an assertion failed
 * or a store file could not be read or set up (malformed, an invalid model, a tuple the model
 * refuses: reported with the file, line and field, and the other files still run); 2 on a usage
 * error, including a `--tests` pattern that matches no file.
 *
 * @module
 */
import { writeFile } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import { Option, type Command } from 'commander'
import { glob } from 'tinyglobby'
import { loadStoreFile, StoreFileError } from '../formats/store-file.ts'
import type { Pemba } from '../server.ts'
import { toolLogger, USAGE_EXIT, type CommandContext } from './program.ts'
import { jsonReport, junitReport, textReport, totals } from './model-test/report.ts'
import { reason, runStoreFile, type FileResult } from './model-test/runner.ts'

interface ModelTestOptions {
  tests?: string[]
  format: 'text' | 'json'
  junit?: string
  allowExternalFiles?: boolean
}

/** registerModelTest adds `test` to the `model` command group (src/cli/model.ts). */
export function registerModelTest(modelGroup: Command, ctx: CommandContext): void {
  const out = ctx.io.out
  const cmd = modelGroup
    .command('test')
    .description('run the tests of OpenFGA store files (*.fga.yaml) in-process, offline, against an in-memory store')
    .argument('[files...]', 'more store files (what a shell makes of an unquoted --tests glob)')
    .option('--tests <glob>', "store files to run, a glob such as 'authz/**/*.fga.yaml' (repeatable)", collect)
    .addOption(new Option('--format <format>', 'the report on stdout').choices(['text', 'json']).default('text'))
    .option('--junit <file>', 'also write a JUnit XML report to this file (one testsuite per store file)')
    .option('--allow-external-files', "let a store file name model and tuple files outside its own directory (fga's flag)")
  cmd.action(async (files: string[], opts: ModelTestOptions) => {
    const patterns = [...(opts.tests ?? []), ...files]
    if (patterns.length === 0) cmd.error("pemba model test: give the store files with --tests <glob>, e.g. --tests 'authz/**/*.fga.yaml'", { exitCode: USAGE_EXIT })
    const paths = await storeFiles(patterns)
    const unmatched = patterns.filter((_, i) => paths[i].length === 0)
    if (unmatched.length > 0) {
      cmd.error(`pemba model test: no store file matches ${unmatched.map((p) => `'${p}'`).join(', ')}`, { exitCode: USAGE_EXIT })
    }
    const all = [...new Set(paths.flat())]
    return ctx.exec(cmd, async (config, redactor) => {
      // Loaded on use, so `--help` and a usage error need not load the server.
      const { createPemba } = await import('../server.ts')
      // Nothing of the configured database is touched: the tests get a database of their own,
      // in memory, and nothing else of a server (no sweeps, no decision log, no authentication).
      const pemba = await createPemba(
        { ...config, databaseUrl: 'sqlite::memory:', decisionLog: 'off', authMode: 'none', tupleIndexPreload: 'off', logLevel: 'warn' },
        { sweeper: false, logger: toolLogger(config, redactor) },
      )
      const results: FileResult[] = []
      try {
        for (const path of all) results.push(await runFile(pemba, path, opts))
      } finally {
        await pemba.close()
      }
      if (opts.format === 'json') out.log(JSON.stringify(jsonReport(results), null, 2))
      else out.log(textReport(results).join('\n'))
      const failed = totals(results).failed > 0 ? 1 : 0
      if (opts.junit) {
        try {
          await writeFile(opts.junit, junitReport(results))
        } catch (e) {
          out.error(`pemba model test: cannot write the JUnit report ${opts.junit}: ${reason(e)}`)
          return 1
        }
      }
      return failed
    })
  })
}

/**
 * runFile loads one store file and runs it. A file that cannot be loaded is a failed result;
 * so is anything unexpected while loading or running it: one file never stops the others, nor
 * the reports.
 */
async function runFile(pemba: Pemba, path: string, opts: ModelTestOptions): Promise<FileResult> {
  const started = performance.now()
  try {
    const loaded = await loadStoreFile(path, { allowExternalFiles: opts.allowExternalFiles })
    return await runStoreFile(pemba, loaded)
  } catch (e) {
    const error = e instanceof StoreFileError ? reason(e) : `${path}: unexpected error: ${reason(e)}`
    const name = e instanceof StoreFileError && e.storeName ? e.storeName : path
    return { path, name, error, tests: [], durationMs: performance.now() - started }
  }
}

/** storeFiles expands each pattern (relative to the working directory), sorted: one list per pattern. */
async function storeFiles(patterns: string[]): Promise<string[][]> {
  return Promise.all(
    patterns.map(async (p) =>
      (await glob([p], { absolute: isAbsolute(p), onlyFiles: true, expandDirectories: false, dot: true })).sort(),
    ),
  )
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}
