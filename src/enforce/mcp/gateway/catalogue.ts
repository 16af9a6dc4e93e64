/**
 * The gateway's own view of the upstream's tools (COAZ: a tool's `x-authzen-mapping` in its
 * `inputSchema` decides its calls). Callers' listings cannot be trusted to have happened, so
 * the gateway lists the tools itself: it opens its own upstream session with the official SDK
 * client (the configured `upstream.headers`, `X-Pemba-Subject: gateway:<server>`), pages
 * `tools/list` through `nextCursor`, hands the whole catalogue to the policy (loadCatalogue, which
 * replaces what was known at once), and ends the session (DELETE).
 *
 * When: once after the gateway starts listening, then before a `tools/call` when the catalogue is
 * missing, older than `ttlMs` (60 s), marked stale by `notifications/tools/list_changed` on a
 * relayed stream, or lacks the tool called. Refreshes are single-flight, and after a failed or
 * recent one the next waits `minIntervalMs` (5 s). While no catalogue could be loaded, a call
 * of a tool without a configured mapping is refused by the policy with -32603
 * (`catalogue_unavailable`): never decided by the default mapping.
 *
 * @module
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Logger } from 'pino'
import type { McpPolicy } from '../policy.ts'
import { identityHeaders } from './upstream.ts'

/** The most tools/list pages read (a server paging forever is cut). */
const MAX_PAGES = 100

export interface ToolCatalogueOptions {
  policy: McpPolicy
  /** The upstream MCP endpoint and the headers every request to it carries. */
  url: string
  headers: Record<string, string>
  /** `<server>`: the gateway calls as `gateway:<server>`. */
  server: string
  logger: Logger
  fetch?: typeof fetch
  ttlMs?: number
  minIntervalMs?: number
  /** How long one listing may take (ms; 10 s). */
  timeoutMs?: number
  now?: () => number
}

export class ToolCatalogue {
  readonly #o: ToolCatalogueOptions
  readonly #now: () => number
  #loadedAt: number | undefined
  #lastAttempt = Number.NEGATIVE_INFINITY
  #stale = false
  #inflight: Promise<void> | undefined

  constructor(options: ToolCatalogueOptions) {
    this.#o = options
    this.#now = options.now ?? (() => Date.now())
  }

  /** markStale: the upstream said its tools changed; the next call lists them again first. */
  markStale(): void {
    this.#stale = true
  }

  /** refresh lists the upstream's tools now (joining a refresh under way); never throws (failures are logged). */
  refresh(): Promise<void> {
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined
    })
    return this.#inflight
  }

  /**
   * beforeCall brings the catalogue up to date, as far as it may, before a `tools/call` of `tool`
   * is decided (see the module comment for when it lists).
   */
  async beforeCall(tool: string): Promise<void> {
    const age = this.#loadedAt === undefined ? Number.POSITIVE_INFINITY : this.#now() - this.#loadedAt
    const wanted = this.#stale || age > (this.#o.ttlMs ?? 60_000) || this.#o.policy.needsCatalogue(tool)
    if (!wanted) return
    if (this.#inflight) return this.#inflight
    if (this.#now() - this.#lastAttempt < (this.#o.minIntervalMs ?? 5_000)) return
    await this.refresh()
  }

  async #load(): Promise<void> {
    this.#lastAttempt = this.#now()
    const o = this.#o
    const transport = new StreamableHTTPClientTransport(new URL(o.url), {
      requestInit: { headers: { ...identityHeaders({ subject: `gateway:${o.server}`, actors: [], issuer: 'gateway' }), ...o.headers } },
      fetch: o.fetch,
    })
    const client = new Client({ name: 'pemba-mcp-gateway', version: '1.0.0' })
    const timeout = o.timeoutMs ?? 10_000
    try {
      await client.connect(transport, { timeout })
      const tools: unknown[] = []
      let cursor: string | undefined
      for (let page = 0; ; page++) {
        if (page >= MAX_PAGES) throw new Error(`tools/list has more than ${MAX_PAGES} pages`)
        const res = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout })
        tools.push(...res.tools)
        cursor = res.nextCursor
        if (cursor === undefined) break
      }
      this.#stale = false
      o.policy.loadCatalogue(tools)
      this.#loadedAt = this.#now()
      o.logger.info({ event: 'mcp_catalogue_loaded', tools: tools.length }, `MCP gateway: the upstream's tool catalogue is loaded (${tools.length} tools)`)
    } catch (e) {
      o.logger.warn(
        { event: 'mcp_catalogue_unavailable', err: e, loaded: this.#loadedAt !== undefined },
        `MCP gateway: the upstream's tools cannot be listed (${(e as Error).message})${this.#o.policy.hasCatalogue ? '; the last catalogue is kept' : '; calls of tools without a configured mapping are refused'}`,
      )
    } finally {
      await transport.terminateSession().catch(() => undefined)
      await client.close().catch(() => undefined)
    }
  }
}
