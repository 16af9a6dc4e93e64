/**
 * The `pemba` command line (commander): `serve` (the default), `migrate` and `migrate status`,
 * `clients grant|revoke|list`, `review`. Every command that opens the database takes every
 * setting as a flag (src/config/options.ts), listed with its environment variable and default
 * by `--help`. Unknown flags, stray arguments and unknown commands are usage errors, with a
 * suggestion where commander finds one, and exit 2; so is a configuration the schema refuses
 * (`pemba: PEMBA_PORT must be …`).
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { ConfigError, databaseBackend, loadConfig, type PembaConfig } from '../config.ts'
import { settingFlags } from '../config/options.ts'
import { presharedKeysIn } from '../config/load.ts'
import { createRedactor, type Redactor } from '../core/redact.ts'
import { createLogger, type Logger } from '../telemetry/logger.ts'

/** Where a command writes (console in the process; collectors in tests) and what it reads. */
export interface CliIo {
  env: Record<string, string | undefined>
  out: { log: (s: string) => void; error: (s: string) => void }
}

/** A command's work once its arguments are read: resolves with the exit code (-1: keeps running). */
export type Run = (config: PembaConfig, redactor: Redactor) => Promise<number>

/**
 * What a command's registration gets: `exec` runs its work with the loaded configuration;
 * `run` runs work that reads no PEMBA_* settings (`mcp-gateway`, with a file of its own).
 */
export interface CommandContext {
  io: CliIo
  exec(cmd: Command, run: Run): Promise<void>
  run(work: () => Promise<number>): Promise<void>
}

/**
 * Register adds one command to the program with `program.command(…)` (not `addCommand`: only
 * `.command()` copies the program's settings, such as exitOverride, to the subcommand).
 */
export type Register = (program: Command, ctx: CommandContext) => void

/** The usage-error exit code (commander's own is 1). */
export const USAGE_EXIT = 2

/** package.json's version (the same path from src/cli/ and dist/cli/). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/**
 * buildProgram: the `pemba` program; `register` adds the commands (main.ts passes them all, so
 * this file imports none of the server).
 */
function buildProgram(io: CliIo, result: { code: number }, register: readonly Register[]): Command {
  const program = new Command('pemba')
    .description(
      'Pemba: a relationship-based (Zanzibar-style) authorisation server, wire-compatible with OpenFGA.\n' +
        'Settings come from, lowest first: defaults, --config file, PEMBA_* environment variables, flags.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    // Settings copied to every subcommand when it is created: set them before .command().
    .exitOverride()
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .showSuggestionAfterError(true)
    .allowExcessArguments(false)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false })
    .configureOutput({
      writeOut: (s) => io.out.log(s.replace(/\n$/, '')),
      writeErr: (s) => io.out.error(s.replace(/\n$/, '')),
      outputError: (s, write) => write(s.replace(/^error: /, 'pemba: ')),
    })
  const ctx: CommandContext = {
    io,
    async exec(cmd, run) {
      const flags = settingFlags(cmd)
      let config: PembaConfig
      try {
        config = loadConfig({ env: io.env, flags })
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e
        // loadConfig has hidden the preshared keys given anywhere in its message.
        io.out.error(`pemba: ${e.message}`)
        result.code = USAGE_EXIT
        return
      }
      // The keys as configured, wherever they came from (a config file too), hide in every line.
      const configured = createRedactor(presharedKeysIn([io.env.PEMBA_AUTH_PRESHARED_KEYS, flags.authPresharedKeys, config.authPresharedKeys]))
      try {
        result.code = await run(config, configured)
      } catch (e) {
        // The database setting as the user gave it: the flag, else the variable (or its default).
        const setting = flags.databaseUrl !== undefined ? '--database-url' : 'PEMBA_DATABASE_URL'
        io.out.error(`pemba: ${failure(e, config, configured, setting)}`)
        result.code = 1
      }
    },
    async run(work) {
      result.code = await work()
    },
  }
  for (const add of register) add(program, ctx)
  return program
}

/**
 * runProgram parses `argv` (without node and the script) and runs the command; resolves with
 * the exit code, or -1 when the command keeps running (serve). No command, or only flags,
 * means `serve`.
 */
export async function runProgram(
  argv: readonly string[],
  io: CliIo,
  register: readonly Register[],
): Promise<number> {
  const result = { code: 0 }
  const program = buildProgram(io, result, register)
  const args = [...argv]
  if (args.length === 0 || (args[0].startsWith('-') && !PROGRAM_FLAGS.has(args[0]))) args.unshift('serve')
  try {
    await program.parseAsync(args, { from: 'user' })
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : USAGE_EXIT
    throw e
  }
  return result.code
}

/**
 * toolLogger: the log of a one-shot command (migrate, clients, review): warnings and errors on
 * stderr, so stdout holds only the command's answer.
 */
export function toolLogger(config: PembaConfig, redactor: Redactor): Logger {
  return createLogger({
    level: 'warn',
    format: config.logFormat,
    redact: redactor.text,
    destination: { write: (line: string) => void process.stderr.write(line) },
  })
}

/**
 * failure: what to say when a command fails. An error with a code (`ECONNREFUSED`, PostgreSQL's
 * `28P01`) comes from the system or the database: its message, and the database it concerns,
 * suffice. Anything else is a fault of Pemba's: its stack helps whoever reports it.
 */
function failure(e: unknown, config: PembaConfig, redactor: Redactor, setting: string): string {
  const code = (e as { code?: unknown } | null)?.code
  if (!(e instanceof Error) || typeof code !== 'string') return `fatal: ${redactor.error(e)}`
  const { backend } = databaseBackend(config.databaseUrl)
  // Each part redacted alone: a secret field (`?password=…`) runs to the next space or comma,
  // and would take the closing parenthesis with it.
  return `${redactor.text(e.message)} (${code}; ${setting}=${redactor.text(backend.redactUrl(config.databaseUrl))})`
}

/** The program's own flags; any other leading flag belongs to `serve`. */
const PROGRAM_FLAGS = new Set(['-h', '--help', '-V', '--version'])

