/**
 * `pemba mcp-gateway --config gateway.yaml`: the MCP gateway, an MCP-aware reverse proxy in front
 * of any MCP server (streamable HTTP), deciding every JSON-RPC message with a Pemba server
 * (docs/mcp.md). It reads its own YAML file, not the PEMBA_* settings of `pemba serve`:
 *
 *     pemba mcp-gateway --config gateway.yaml            # validate, then listen until SIGTERM/SIGINT
 *     pemba mcp-gateway --config gateway.yaml --check    # validate only: exit 0, or 1 naming the setting
 *
 * Logs are JSON lines on stdout (`--log-format pretty` for a terminal); the line
 * `event: "mcp_gateway_listening"` carries the address once it listens. Secrets of the file
 * (`pemba.api_key`, `upstream.headers` values) are hidden in every line.
 *
 * @module
 */
import type { Command } from 'commander'
import { createRedactor } from '../core/redact.ts'
import { createLogger } from '../telemetry/logger.ts'
import { USAGE_EXIT, type CliIo, type Register } from './program.ts'

/** How long open event streams may stay after SIGTERM before they are cut (ms). */
const DRAIN_MS = 5_000

interface GatewayCliOptions {
  config: string
  check?: boolean
  logLevel: string
  logFormat: string
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export const mcpGatewayCli: Register = (program, ctx) => {
  const cmd: Command = program
    .command('mcp-gateway')
    .description('run the MCP gateway: an MCP-aware reverse proxy that asks Pemba about every tool call (docs/mcp.md)')
    .requiredOption('--config <file>', 'the gateway\'s YAML configuration (listen, resource, server, upstream, pemba, issuers, …)')
    .option('--check', 'validate the configuration and exit: 0 when it is usable, 1 naming the setting at fault')
    .option('--log-level <level>', `log level: ${LEVELS.join(', ')}`, 'info')
    .option('--log-format <format>', 'log format: json or pretty', 'json')
  cmd.action(async (opts: GatewayCliOptions) => {
    if (!LEVELS.includes(opts.logLevel)) cmd.error(`pemba mcp-gateway: --log-level must be one of ${LEVELS.join(', ')}`, { exitCode: USAGE_EXIT })
    if (opts.logFormat !== 'json' && opts.logFormat !== 'pretty') cmd.error('pemba mcp-gateway: --log-format must be json or pretty', { exitCode: USAGE_EXIT })
    return ctx.run(() => runMcpGateway(opts, ctx.io))
  })
}

/** runMcpGateway validates the configuration, then (unless --check) listens; resolves with the exit code, -1 while it runs. */
export async function runMcpGateway(opts: GatewayCliOptions, io: CliIo): Promise<number> {
  // Loaded on use, so `pemba --help` does not load the gateway.
  const { GatewayConfigError } = await import('../enforce/mcp/gateway/config.ts')
  const { buildGateway, listenGateway, loadGatewayConfig } = await import('../enforce/mcp/gateway/server.ts')
  let settings
  try {
    settings = await loadGatewayConfig(opts.config, io.env)
  } catch (e) {
    if (!(e instanceof GatewayConfigError)) throw e
    io.out.error(`pemba mcp-gateway: ${e.message}`)
    return 1
  }
  const secrets = [settings.pemba.apiKey, ...Object.values(settings.upstream.headers)].filter((s): s is string => !!s && s.length >= 4)
  const redactor = createRedactor(secrets)
  const logger = createLogger({ level: opts.logLevel as 'info', format: opts.logFormat as 'json', redact: redactor.text })
  let gateway
  try {
    gateway = await buildGateway(settings, { logger })
  } catch (e) {
    if (!(e instanceof GatewayConfigError)) throw e
    io.out.error(`pemba mcp-gateway: ${redactor.text(e.message)}`)
    return 1
  }
  if (opts.check) {
    await gateway.close()
    io.out.log(`${opts.config}: ok (MCP server '${settings.server}' at ${settings.path}, ${settings.issuers.length} issuer(s), ${Object.keys(settings.tools).length} tool mapping(s))`)
    return 0
  }
  let running
  try {
    running = await listenGateway(gateway, logger)
  } catch (e) {
    logger.fatal({ event: 'listen_failed' }, `cannot listen on ${settings.host}:${settings.port}: ${(e as Error).message}`)
    await gateway.close()
    return 1
  }
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ event: 'draining', signal }, `${signal} received: stopping the MCP gateway`)
    void running.stop(DRAIN_MS).then(() => {
      logger.info({ event: 'stopped' }, 'stopped')
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  return -1
}
