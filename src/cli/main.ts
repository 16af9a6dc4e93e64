/**
 * The `pemba` command: `serve` (the default) runs the HTTP server; `migrate` applies the
 * database migrations and exits.
 *
 * @module
 */
import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import { ConfigError, loadConfig } from '../config.ts'
import { createPemba, openDatastore } from '../server.ts'

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv
  const args = command.startsWith('--') ? argv : rest
  const cmd = command.startsWith('--') ? 'serve' : command
  let config
  try {
    config = loadConfig({ env: process.env, argv: args })
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`pemba: ${e.message}`)
      return 2
    }
    throw e
  }
  if (cmd === 'migrate') {
    const ds = openDatastore(config)
    await ds.close()
    console.log(`migrations applied to ${config.databaseUrl}`)
    return 0
  }
  if (cmd !== 'serve') {
    console.error(`pemba: unknown command '${cmd}' (use serve or migrate)`)
    return 2
  }

  const pemba = await createPemba(config)
  const server = serve({ fetch: pemba.app.fetch, hostname: config.host, port: config.port }, (info: AddressInfo) => {
    const host = info.family === 'IPv6' ? `[${info.address}]` : info.address
    console.log(`listening on http://${host}:${info.port}`)
  })
  server.on('error', (err) => {
    console.error(`pemba: cannot listen on ${config.host}:${config.port}: ${err.message}`)
    void pemba.close().then(() => process.exit(1))
  })

  let stopping = false
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
    ;(server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.()
    setTimeout(() => {
      console.error('drain timed out after 10 s; closing')
      void pemba.close().then(() => process.exit(1))
    }, 10_000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  return -1
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err) => {
    console.error('pemba: fatal:', err)
    process.exit(1)
  },
)
