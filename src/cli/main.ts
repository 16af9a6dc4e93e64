/**
 * The `pemba` command: `serve` (the default) runs the HTTP server; `migrate` applies the
 * database migrations and exits; `clients` grants, revokes and lists API clients' roles
 * (src/cli/clients.ts); `review` prints a least-privilege review (src/cli/review.ts).
 *
 * @module
 */
import { createRedactor } from '../core/redact.ts'
import { ConfigError, databaseBackend, loadConfig } from '../config.ts'
import { createLogger } from '../telemetry/logger.ts'
import { runServe } from './serve.ts'
import { clientsCommand } from './clients.ts'
import { reviewCommand } from './review.ts'

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv
  const args = command.startsWith('--') ? argv : rest
  const cmd = command.startsWith('--') ? 'serve' : command
  // `clients` has options of its own (--store, --client) besides the configuration flags.
  if (cmd === 'clients') return clientsCommand(rest, process.env)
  // `review` too (--store, --user, --user-type, --unused-for): src/cli/review.ts.
  if (cmd === 'review') return reviewCommand(rest, process.env)
  let config
  try {
    config = loadConfig({ env: process.env, argv: args })
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`pemba: ${startupRedactor.text(e.message)}`)
      return 2
    }
    throw e
  }
  if (cmd === 'migrate') {
    // migrate applies whatever PEMBA_MIGRATIONS says: it is how `check` servers get migrated.
    const { backend, target } = databaseBackend(config.databaseUrl)
    await backend.migrate(target)
    console.log(`migrations applied to ${backend.redactUrl(config.databaseUrl)}`)
    return 0
  }
  if (cmd !== 'serve') {
    console.error(`pemba: unknown command '${cmd}' (use serve, migrate, clients or review)`)
    return 2
  }

  const logger = createLogger({ level: config.logLevel, format: config.logFormat, redact: startupRedactor.text })
  return runServe(config, { logger, redactor: startupRedactor })
}

/**
 * The CLI's own output (configuration errors, fatal errors) is redacted like the server's logs,
 * hiding the preshared keys as given in the environment or flags, before they are validated.
 */
const startupRedactor = createRedactor(presharedKeysGiven(process.env, process.argv))

function presharedKeysGiven(env: Record<string, string | undefined>, argv: string[]): string[] {
  const raw = [env.PEMBA_AUTH_PRESHARED_KEYS ?? '']
  argv.forEach((a, i) => {
    if (a === '--auth-preshared-keys') raw.push(argv[i + 1] ?? '')
    else if (a.startsWith('--auth-preshared-keys=')) raw.push(a.slice('--auth-preshared-keys='.length))
  })
  // `name=key,name2=key2`: the keys are what follows each `=`.
  return raw.flatMap((r) => r.split(',').map((e) => e.slice(e.indexOf('=') + 1).trim()))
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err) => {
    console.error(`pemba: fatal: ${startupRedactor.error(err)}`)
    process.exit(1)
  },
)
