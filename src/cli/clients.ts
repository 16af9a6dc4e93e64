/**
 * `pemba clients …`: grant, revoke and list API clients' roles, acting directly on the
 * configured database (the same PEMBA_* settings and flags as `pemba serve`):
 *
 *     pemba clients grant <client> <role> [--store <id> [--type <object type>]]   # no --store: a system role
 *     pemba clients revoke <client> <role> [--store <id> [--type <object type>]]
 *     pemba clients list [--client <client>] [--store <id>]
 *
 * A running server sees a change within PEMBA_CHECK_CACHE_STALENESS_MS.
 *
 * @module
 */
import type { Command } from 'commander'
import { addSettingOptions } from '../config/options.ts'
import { PembaError } from '../core/errors.ts'
import type { Pemba } from '../server.ts'
import { checkStoreId } from '../api/validation.ts'
import type { Grant } from '../auth/access-control.ts'
import { runProgram, toolLogger, type CliIo, type CommandContext, type Register } from './program.ts'

const ROLES =
  'Store roles: admin, model_writer, writer, reader, checker; system roles (no --store): admin, store_creator.'

function describe(g: Grant): string {
  const on = g.store === undefined ? '(system)' : `store ${g.store}${g.type === undefined ? '' : ` type ${g.type}`}`
  return `${g.client}\t${g.role}\t${on}`
}

interface ClientsOptions {
  store?: string
  type?: string
  client?: string
}

/** act opens the database for one action and reports a refused action (exit 1). */
function act(ctx: CommandContext, cmd: Command, body: (pemba: Pemba) => Promise<void>) {
  return ctx.exec(cmd, async (config, redactor) => {
    // Loaded on use, so `--help` and a usage error need not load the server.
    const { createPemba } = await import('../server.ts')
    const pemba = await createPemba(config, { sweeper: false, logger: toolLogger(config, redactor) })
    try {
      await body(pemba)
      return 0
    } catch (e) {
      if (e instanceof PembaError) {
        ctx.io.out.error(`pemba: ${e.message}`)
        return 1
      }
      throw e
    } finally {
      await pemba.close()
    }
  })
}

export const clientsCli: Register = (program, ctx) => {
  const out = ctx.io.out
  const clients = program
    .command('clients')
    .description("grant, revoke and list API clients' roles, directly in the database")
    .addHelpText('after', `\n${ROLES}`)

  const changeCommand = (name: 'grant' | 'revoke', description: string) => {
    const cmd = clients
      .command(name)
      .description(description)
      .argument('<client>', 'the client, `ci` or `client:ci`')
      .argument('<role>', 'the role')
      .option('--store <id>', 'the store the role applies in; absent: a system role')
      .option('--type <object type>', 'limits a writer to tuples whose object has this type')
      .addHelpText('after', `\n${ROLES}`)
    addSettingOptions(cmd)
    cmd.action((client: string, role: string, opts: ClientsOptions) =>
      act(ctx, cmd, async (pemba) => {
        const store = opts.store === undefined ? undefined : checkStoreId(opts.store)
        const request = { client, role, store, type: opts.type }
        if (name === 'grant') {
          out.log(`granted: ${describe(await pemba.access.grant(request))}`)
        } else {
          const g = pemba.access.normalizeGrant(request)
          out.log((await pemba.access.revoke(g)) ? `revoked: ${describe(g)}` : `no such grant: ${describe(g)}`)
        }
      }),
    )
  }
  changeCommand('grant', 'give a client a role (in a store, or system-wide)')
  changeCommand('revoke', "take a client's role away")

  const list = clients
    .command('list')
    .description('list the grants, one a line: client, role, where')
    .option('--client <client>', "only this client's grants")
    .option('--store <id>', "only this store's grants")
  addSettingOptions(list)
  list.action((opts: ClientsOptions) =>
    act(ctx, list, async (pemba) => {
      const store = opts.store === undefined ? undefined : checkStoreId(opts.store)
      const grants = await pemba.access.list({ client: opts.client, store })
      for (const g of grants) out.log(describe(g))
      if (grants.length === 0) {
        const of = [opts.client && `client ${opts.client}`, store && `store ${store}`].filter(Boolean).join(' in ')
        out.error(`no grants${of ? ` for ${of}` : ''}`)
      }
    }),
  )
}

/** clientsCommand runs `pemba clients <argv…>` with this environment and output (for tests). */
export function clientsCommand(argv: string[], env: CliIo['env'], out: CliIo['out'] = console): Promise<number> {
  return runProgram(['clients', ...argv], { env, out }, [clientsCli])
}
