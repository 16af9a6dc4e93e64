/**
 * How the bulk commands (`tuple import|export`, `store import|export`) reach their data: through
 * a running server's HTTP API (`--api-url`, `--api-token`, fga's FGA_* variables), or directly
 * in Pemba's database when `--database-url` is given on the command line (the fast path: no
 * server needed, one transaction per large chunk). The choice is explicit and said in the output.
 *
 * @module
 */
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { databaseBackend } from '../../config.ts'
import { addSettingOptions, TOOL_SETTING_GROUPS } from '../../config/options.ts'
import { PembaError } from '../../core/errors.ts'
import { TupleFileError } from '../../formats/tuple-file.ts'
import type { Redactor } from '../../core/redact.ts'
import type { Pemba } from '../../server.ts'
import { reason } from '../../service/readiness.ts'
import { addApiOptions, apiTarget, execApi, type ApiClient } from '../api-client.ts'
import { toolLogger, type CommandContext } from '../program.ts'
import { ResumeRefused } from './run-import.ts'
import { describeUrl } from './targets.ts'

/** An open connection to the data, through HTTP or the database. */
export type Connection =
  | { kind: 'http'; client: ApiClient; storeId?: string; modelId?: string; redactor: Redactor; where: string }
  | { kind: 'database'; pemba: Pemba; storeId?: string; modelId?: string; redactor: Redactor; where: string }

/** addConnectionOptions: the server's flags and every database setting (`--database-url` …). */
export function addConnectionOptions(cmd: Command): Command {
  addApiOptions(cmd)
  addSettingOptions(cmd, { shownGroups: TOOL_SETTING_GROUPS })
  return cmd
}

/** usesDatabase: whether `--database-url` was given on the command line. */
export function usesDatabase(cmd: Command): boolean {
  return cmd.getOptionValueSource('databaseUrl') === 'cli'
}

/**
 * withConnection runs `body` over HTTP or against the database, as the flags choose, and turns
 * an expected refusal (the server's, a model's, a resume that cannot go on) into a message and
 * exit 1.
 */
export function withConnection(ctx: CommandContext, cmd: Command, body: (c: Connection) => Promise<number>): Promise<void> {
  const fail = (redactor: Redactor, e: unknown): number => {
    if (e instanceof PembaError || e instanceof ResumeRefused || e instanceof TupleFileError) {
      ctx.io.out.error(redactor.text(`pemba ${commandPath(cmd)}: ${e.message}`))
      return 1
    }
    throw e
  }
  const target = apiTarget(cmd, ctx.io.env)
  if (!usesDatabase(cmd)) {
    return execApi(ctx, cmd, async ({ client, redactor }) => {
      try {
        return await body({ kind: 'http', client, storeId: target.storeId, modelId: target.modelId, redactor, where: describeUrl(target.url) })
      } catch (e) {
        return fail(redactor, e)
      }
    })
  }
  return ctx.exec(cmd, async (config, redactor) => {
    const { backend, target: database } = databaseBackend(config.databaseUrl)
    const shown = redactor.text(backend.redactUrl(config.databaseUrl))
    const missing = missingSqliteFile(backend.name, database)
    if (missing !== undefined) {
      // Opening would create and migrate an empty database, and the command would then report
      // "no such store" about a file that never held any: refuse, as `backup create` does.
      ctx.io.out.error(`pemba ${commandPath(cmd)}: ${shown}: no such database file (--database-url); ` +
        `to start a new one, run \`pemba migrate --database-url ${shown}\` first`)
      return 1
    }
    // Loaded on use, so `--help` and a usage error need not load the server.
    const { createPemba, DatabaseUnavailableError } = await import('../../server.ts')
    let pemba: Pemba
    try {
      // One attempt: a server waits PEMBA_DB_STARTUP_TIMEOUT_MS for its database to come up,
      // a command run by hand says at once that it cannot reach it.
      pemba = await createPemba({ ...config, decisionLog: 'off', dbStartupTimeoutMs: 0 }, { sweeper: false, logger: toolLogger(config, redactor) })
    } catch (e) {
      if (!(e instanceof DatabaseUnavailableError)) throw e
      const verb = e.message.startsWith('cannot reach') ? 'reach' : 'open'
      ctx.io.out.error(redactor.text(`pemba ${commandPath(cmd)}: cannot ${verb} the database --database-url=${shown}: ${reason(e.cause ?? e)}`))
      return 1
    }
    const where = `database ${shown}`
    try {
      return await body({ kind: 'database', pemba, storeId: target.storeId, modelId: target.modelId, redactor, where })
    } catch (e) {
      return fail(redactor, e)
    } finally {
      await pemba.close()
    }
  })
}

/**
 * missingSqliteFile: the file of a SQLite database that does not exist, else undefined (another
 * backend, or an in-memory database).
 */
function missingSqliteFile(backendName: string, target: object): string | undefined {
  const filename = (target as { filename?: unknown }).filename
  if (backendName !== 'sqlite' || typeof filename !== 'string' || filename === ':memory:') return undefined
  return existsSync(filename) ? undefined : filename
}

/** commandPath: `tuple import` for a subcommand. */
export function commandPath(cmd: Command): string {
  const names: string[] = []
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}
