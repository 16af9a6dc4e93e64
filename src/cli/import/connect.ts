/**
 * How the bulk commands (`tuple import|export`, `store import|export`) reach their data: through
 * a running server's HTTP API (`--api-url`, `--api-token`, fga's FGA_* variables), or directly
 * in Pemba's database when `--database-url` is given on the command line (the fast path: no
 * server needed, one transaction per large chunk). The choice is explicit and said in the output.
 *
 * @module
 */
import type { Command } from 'commander'
import { databaseBackend } from '../../config.ts'
import { addSettingOptions } from '../../config/options.ts'
import { PembaError } from '../../core/errors.ts'
import { TupleFileError } from '../../formats/tuple-file.ts'
import type { Redactor } from '../../core/redact.ts'
import type { Pemba } from '../../server.ts'
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
  addSettingOptions(cmd)
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
    // Loaded on use, so `--help` and a usage error need not load the server.
    const { createPemba } = await import('../../server.ts')
    const pemba = await createPemba({ ...config, decisionLog: 'off' }, { sweeper: false, logger: toolLogger(config, redactor) })
    const where = `database ${redactor.text(databaseBackend(config.databaseUrl).backend.redactUrl(config.databaseUrl))}`
    try {
      return await body({ kind: 'database', pemba, storeId: target.storeId, modelId: target.modelId, redactor, where })
    } catch (e) {
      return fail(redactor, e)
    } finally {
      await pemba.close()
    }
  })
}

/** commandPath: `tuple import` for a subcommand. */
export function commandPath(cmd: Command): string {
  const names: string[] = []
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}
