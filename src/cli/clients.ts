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
import { ConfigError, loadConfig } from '../config.ts'
import { PembaError } from '../core/errors.ts'
import { createPemba } from '../server.ts'
import { checkStoreId } from '../api/validation.ts'
import type { Grant } from '../auth/access-control.ts'

const USAGE = `usage: pemba clients grant <client> <role> [--store <id> [--type <object type>]]
       pemba clients revoke <client> <role> [--store <id> [--type <object type>]]
       pemba clients list [--client <client>] [--store <id>]
store roles: admin, model_writer, writer, reader, checker; system roles (no --store): admin, store_creator;
--type limits a writer to tuples whose object has that type`

class UsageError extends Error {}

/** splitArgs takes this command's own options out of argv; the rest are configuration flags. */
function splitArgs(argv: string[]): { positional: string[]; options: Map<string, string>; configArgs: string[] } {
  const positional: string[] = []
  const options = new Map<string, string>()
  const configArgs: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg : arg.slice(0, eq)
    if (name === '--store' || name === '--client' || name === '--type') {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
      if (value === undefined || value === '') throw new UsageError(`${name} needs a value`)
      options.set(name.slice(2), value)
    } else if (arg.startsWith('--')) {
      configArgs.push(arg)
      if (eq === -1 && i + 1 < argv.length) configArgs.push(argv[++i])
    } else {
      positional.push(arg)
    }
  }
  return { positional, options, configArgs }
}

function describe(g: Grant): string {
  const on = g.store === undefined ? '(system)' : `store ${g.store}${g.type === undefined ? '' : ` type ${g.type}`}`
  return `${g.client}\t${g.role}\t${on}`
}

export async function clientsCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  out: { log: (s: string) => void; error: (s: string) => void } = console,
): Promise<number> {
  let parsed: ReturnType<typeof splitArgs>
  let config
  try {
    parsed = splitArgs(argv)
    config = loadConfig({ env, argv: parsed.configArgs })
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      out.error(`pemba: ${e.message}\n${USAGE}`)
      return 2
    }
    throw e
  }
  const [action, client, role, ...extra] = parsed.positional
  const wantsGrant = action === 'grant' || action === 'revoke'
  if (
    !(wantsGrant && client && role && extra.length === 0) &&
    !(action === 'list' && client === undefined)
  ) {
    out.error(USAGE)
    return 2
  }
  const pemba = await createPemba(config, { sweeper: false })
  try {
    const storeOpt = parsed.options.get('store')
    const store = storeOpt === undefined ? undefined : checkStoreId(storeOpt)
    if (action === 'list') {
      const grants = await pemba.access.list({ client: parsed.options.get('client'), store })
      for (const g of grants) out.log(describe(g))
      return 0
    }
    const type = parsed.options.get('type')
    if (parsed.options.has('client')) {
      out.error(USAGE)
      return 2
    }
    if (action === 'grant') {
      const g = await pemba.access.grant({ client, role, store, type })
      out.log(`granted: ${describe(g)}`)
    } else {
      const g = pemba.access.normalizeGrant({ client, role, store, type })
      out.log((await pemba.access.revoke(g)) ? `revoked: ${describe(g)}` : `no such grant: ${describe(g)}`)
    }
    return 0
  } catch (e) {
    if (e instanceof PembaError) {
      out.error(`pemba: ${e.message}`)
      return 1
    }
    throw e
  } finally {
    await pemba.close()
  }
}
