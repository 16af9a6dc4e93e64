/**
 * Assembling and running the MCP gateway from its configuration (config.ts): the issuers are
 * validated and compiled exactly as Pemba validates a store's token issuers (staticIssuers), the
 * tool mappings compiled (compileMapping), Pemba is asked over HTTP (remoteDecisions), and the
 * Hono app (app.ts) listens. Anything that cannot work stops the gateway before it listens, with
 * a GatewayConfigError naming the file and the setting.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { serve, type ServerType } from '@hono/node-server'
import type { Hono } from 'hono'
import type { Logger } from 'pino'
import { DEFAULTS } from '../../../config/settings.ts'
import { JwksCache } from '../../../service/jwks.ts'
import { IssuerConfigError, staticIssuers, TokenVerifier, type StaticIssuerConfig } from '../../../service/token-verifier.ts'
import type { DecisionClient } from '../../decisions.ts'
import { remoteDecisions } from '../../remote.ts'
import { McpCallerVerifier } from '../caller.ts'
import { compileMapping, type CompiledMapping } from '../coaz.ts'
import { McpPolicy } from '../policy.ts'
import { createGatewayApp } from './app.ts'
import { ToolCatalogue } from './catalogue.ts'
import { GatewayConfigError, parseGatewayConfig, type GatewaySettings } from './config.ts'
import { Upstream } from './upstream.ts'

/** loadGatewayConfig reads and validates the YAML file at `path` (see config.ts). */
export async function loadGatewayConfig(path: string, env: Record<string, string | undefined>): Promise<GatewaySettings> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new GatewayConfigError(`${path}: cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  return parseGatewayConfig(text, path, env)
}

/** What the gateway is made of, once assembled. */
export interface Gateway {
  app: Hono
  settings: GatewaySettings
  decisions: DecisionClient
  policy: McpPolicy
  /** The upstream's tools as the gateway lists them (catalogue.ts): listed once it listens. */
  catalogue: ToolCatalogue
  close(): Promise<void>
}

export interface GatewayDependencies {
  logger: Logger
  /** Who to ask instead of the configured Pemba (tests, an embedded Pemba); remoteDecisions by default. */
  decisions?: DecisionClient
  /** The fetch for upstream requests. */
  fetch?: typeof fetch
  /** The clock tokens are verified against. */
  clock?: () => Date
}

/**
 * buildGateway validates what the settings name (issuers, mappings) and assembles the gateway;
 * throws GatewayConfigError naming the setting when something cannot work.
 */
export async function buildGateway(settings: GatewaySettings, deps: GatewayDependencies): Promise<Gateway> {
  const where = settings.source
  let issuers: Awaited<ReturnType<typeof staticIssuers>>
  try {
    // Raw from the YAML: staticIssuers validates every field as PUT /token-issuers does.
    issuers = await staticIssuers(settings.issuers as unknown as StaticIssuerConfig[], new JwksCache())
  } catch (e) {
    if (e instanceof IssuerConfigError) throw new GatewayConfigError(`${where}: ${e.message}`)
    throw e
  }
  const tools: Record<string, CompiledMapping> = {}
  for (const [name, raw] of Object.entries(settings.tools)) {
    try {
      tools[name] = compileMapping(raw, `tools.${name}`)
    } catch (e) {
      throw new GatewayConfigError(`${where}: ${(e as Error).message}`)
    }
  }
  let decisions: DecisionClient
  try {
    decisions =
      deps.decisions ??
      remoteDecisions({ url: settings.pemba.url, storeId: settings.pemba.store, apiKey: settings.pemba.apiKey, timeoutMs: settings.pemba.timeoutMs })
  } catch (e) {
    throw new GatewayConfigError(`${where}: pemba: ${(e as Error).message}`)
  }
  const verifier = new TokenVerifier({
    issuers,
    clock: deps.clock ?? (() => new Date()),
    // Pemba's own defaults (PEMBA_TOKEN_CLOCK_SKEW_SECONDS, PEMBA_MAX_DELEGATION_CHAIN): the
    // gateway reads tokens exactly as a token-native check with default settings would.
    clockSkewSeconds: DEFAULTS.tokenClockSkewSeconds,
    maxDelegationChain: DEFAULTS.maxDelegationChain,
  })
  const policy = new McpPolicy({
    decisions,
    server: settings.server,
    tools,
    allowMethods: settings.allowMethods,
    explain: settings.explain,
    log: deps.logger,
    // A tool's declared mapping must be known before its calls are decided (catalogue.ts).
    requireCatalogue: true,
  })
  const upstream = new Upstream({ url: settings.upstream.url, headers: settings.upstream.headers, fetch: deps.fetch })
  const catalogue = new ToolCatalogue({
    policy,
    url: settings.upstream.url,
    headers: settings.upstream.headers,
    server: settings.server,
    logger: deps.logger,
    fetch: deps.fetch,
  })
  const app = createGatewayApp({
    path: settings.path,
    resource: settings.resource,
    resourceMetadataUrl: settings.resourceMetadataUrl,
    server: settings.server,
    authorizationServers: settings.authorizationServers,
    scopesSupported: scopesOf(settings),
    challengeScopes: challengeScopesOf(settings),
    callers: new McpCallerVerifier({ verifier }),
    policy,
    upstream,
    catalogue,
    logger: deps.logger,
  })
  const close = async () => {
    upstream.close()
    await decisions.close()
  }
  return { app, settings, decisions, policy, catalogue, close }
}

/**
 * The scopes a 401 names (MCP: servers SHOULD say which scopes to ask for): for each action the
 * default mapping asks (`call`, `get`, `read`), the least privileged scope of each issuer that
 * grants it (the one granting the fewest actions). Asking for these, a client gets what ordinary
 * calls need and nothing more (not `crm:export`); a call needing more is stepped up with a 403.
 */
function challengeScopesOf(settings: GatewaySettings): string[] {
  const scopes = new Set<string>()
  for (const issuer of settings.issuers) {
    const map = issuer.scopes
    if (map === null || typeof map !== 'object') continue
    const granted = Object.entries(map as Record<string, unknown>).filter((e): e is [string, string[]] => Array.isArray(e[1]))
    for (const action of ['call', 'get', 'read']) {
      const least = granted.filter(([, actions]) => actions.includes(action)).sort((a, b) => a[1].length - b[1].length)[0]
      if (least) scopes.add(least[0])
    }
  }
  return [...scopes]
}

/** Every scope the issuers map, in configuration order (RFC 9728 `scopes_supported`). */
function scopesOf(settings: GatewaySettings): string[] {
  const scopes = new Set<string>()
  for (const issuer of settings.issuers) {
    const s = issuer.scopes
    if (s !== null && typeof s === 'object') for (const k of Object.keys(s)) scopes.add(k)
  }
  return [...scopes]
}

/** A gateway listening. */
export interface RunningGateway extends Gateway {
  /** `http://127.0.0.1:8090`. */
  url: string
  server: ServerType
  /** stop stops accepting, closes open streams after `graceMs`, and releases the decision client. */
  stop(graceMs?: number): Promise<void>
}

/** listenGateway serves an assembled gateway on the configured address; rejects when it cannot listen. */
export async function listenGateway(gateway: Gateway, logger: Logger): Promise<RunningGateway> {
  const { host, port } = gateway.settings
  const server = serve({ fetch: gateway.app.fetch, hostname: host, port })
  await new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve()
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  const a = server.address() as AddressInfo
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  logger.info(
    { event: 'mcp_gateway_listening', url, path: gateway.settings.path, upstream: new URL(gateway.settings.upstream.url).origin, store: gateway.settings.pemba.store },
    `MCP gateway listening on ${url}${gateway.settings.path}`,
  )
  // Listed now rather than at the first call; a failure is logged and retried before calls.
  void gateway.catalogue.refresh()
  const closeAll = () => (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
  const closeIdle = () => (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.()
  return {
    ...gateway,
    url,
    server,
    async stop(graceMs = 5_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      closeIdle()
      // Event streams never end by themselves: they are cut once the grace period is over.
      const timer = setTimeout(closeAll, graceMs)
      timer.unref()
      await closed
      clearTimeout(timer)
      await gateway.close()
    },
  }
}
