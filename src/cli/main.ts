/**
 * The `pemba` command: `serve` (the default) runs the HTTP server; `migrate` applies the
 * database migrations and exits; `clients` grants, revokes and lists API clients' roles
 * (src/cli/clients.ts); `review` prints a least-privilege review (src/cli/review.ts).
 *
 * @module
 */
import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import { createRedactor } from '../core/redact.ts'
import { ConfigError, databaseBackend, loadConfig } from '../config.ts'
import { createPemba, type Pemba } from '../server.ts'
import { MigrationsPendingError } from '../store/migrations.ts'
import { isLoopbackHost } from '../auth/settings.ts'
import { clientsCommand } from './clients.ts'
import { reviewCommand } from './review.ts'
import { answerClientError, httpServerOptions } from './http-limits.ts'

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

  if (config.authMode === 'none' && !isLoopbackHost(config.host)) {
    console.error(
      `pemba: WARNING: authentication is off (PEMBA_AUTH_MODE=none) and the server listens on ${config.host}, ` +
        'a non-loopback address: anyone who can reach the port can read and write every store. ' +
        'Set PEMBA_AUTH_MODE=preshared or oidc (see README, "Authentication and permissions").',
    )
  }
  let pemba: Pemba
  try {
    pemba = await createPemba(config)
  } catch (e) {
    if (e instanceof MigrationsPendingError) {
      console.error(`pemba: refusing to start: ${startupRedactor.text(e.message)}`)
      return 1
    }
    throw e
  }
  let stopping = false
  const app = pemba.app
  // While draining, every answer says `Connection: close`, so keep-alive clients let go of
  // their sockets as soon as their in-flight request is answered.
  const fetch = async (req: Request, env: unknown): Promise<Response> => {
    const res = await app.fetch(req, env)
    if (!stopping) return res
    const headers = new Headers(res.headers)
    headers.set('connection', 'close')
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers })
  }
  const server = serve(
    { fetch, hostname: config.host, port: config.port, serverOptions: httpServerOptions(config) },
    (info: AddressInfo) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address
      console.log(`listening on http://${host}:${info.port}`)
    },
  )
  server.on('clientError', answerClientError(config))
  server.on('error', (err) => {
    console.error(`pemba: cannot listen on ${config.host}:${config.port}: ${startupRedactor.text(err.message)}`)
    void pemba.close().then(() => process.exit(1))
  })

  const closeIdle = () => (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.()
  server.on('request', (_req, res) => res.on('finish', () => stopping && setImmediate(closeIdle)))
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    console.log(`${signal} received: draining in-flight requests`)
    // close() stops accepting and waits for in-flight requests; idle keep-alive sockets are closed.
    server.close(() => {
      void pemba.close().then(() => {
        console.log('stopped')
        process.exit(0)
      })
    })
    closeIdle()
    setTimeout(() => {
      console.error('drain timed out after 10 s; closing')
      void pemba.close().then(() => process.exit(1))
    }, 10_000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  return -1
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
