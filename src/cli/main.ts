/**
 * The `pemba` command (bin/pemba.js runs the compiled dist/cli/main.js): `serve` (the default)
 * runs the HTTP server; `migrate` applies the database migrations and `migrate status` lists
 * them; `clients` grants, revokes and lists API clients' roles (src/cli/clients.ts); `review`
 * prints a least-privilege review (src/cli/review.ts); `check`, `list-objects`, `list-users`,
 * `expand`, `read` and `changes` query a running server (src/cli/queries.ts); `tuple
 * import|export` and `store import|export` move tuples and whole stores in bulk (src/cli/tuple.ts,
 * src/cli/store.ts); `backup create|restore|inspect` backs up and restores the whole database
 * (src/cli/backup.ts); `mcp-gateway` runs the MCP gateway (src/cli/mcp-gateway.ts). `pemba --help` and `pemba <command>
 * --help` list every flag with its environment variable and default (src/cli/program.ts).
 *
 * @module
 */
import cluster from 'node:cluster'
import { addSettingOptions } from '../config/options.ts'
import { presharedKeysIn } from '../config/load.ts'
import { createRedactor } from '../core/redact.ts'
import { createLogger } from '../telemetry/logger.ts'
import { backupCli } from './backup.ts'
import { clientsCli } from './clients.ts'
import { mcpGatewayCli } from './mcp-gateway.ts'
import { migrateCli } from './migrate.ts'
import { modelCli } from './model.ts'
import { runProgram, type Register } from './program.ts'
import { reviewCli } from './review.ts'
import { queryCli } from './queries.ts'
import { storeCli } from './store.ts'
import { tupleCli } from './tuple.ts'

const serveCli: Register = (program, ctx) => {
  const serve = program.command('serve').description('run the HTTP server (the default command)')
  addSettingOptions(serve)
  serve.action(() =>
    ctx.exec(serve, async (config, redactor) => {
      // Loaded on use, so `--help`, `--version` and the one-shot commands start quickly.
      const { runServe } = await import('./serve.ts')
      // A cluster's workers (PEMBA_WORKERS) write to the primary's stdout at once.
      const logger = createLogger({ level: config.logLevel, format: config.logFormat, redact: redactor.text, sharedStdout: cluster.isWorker })
      return runServe(config, { logger, redactor })
    }),
  )
}

/** A fatal error's line hides the preshared keys as given, like every other line. */
const fatalRedactor = createRedactor(presharedKeysIn([process.env.PEMBA_AUTH_PRESHARED_KEYS]))

runProgram(process.argv.slice(2), { env: process.env, out: console }, [serveCli, migrateCli, modelCli, tupleCli, storeCli, backupCli, queryCli, clientsCli, reviewCli, mcpGatewayCli]).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err) => {
    console.error(`pemba: fatal: ${fatalRedactor.error(err)}`)
    process.exit(1)
  },
)
