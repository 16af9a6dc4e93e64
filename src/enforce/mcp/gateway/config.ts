/**
 * The MCP gateway's configuration: one YAML file (`pemba mcp-gateway --config gateway.yaml`),
 * read, expanded and validated here before anything listens. A file the gateway cannot trust
 * stops it with a message naming the setting: an unknown key (`issuers[0].audiance: unknown
 * setting`), a missing one, an unset `${ENV}` variable, an issuer or a tool mapping that does not
 * compile. Nothing is dropped or guessed: a misspelt `scopes` would otherwise lift a ceiling.
 *
 * ```yaml
 * listen: 127.0.0.1:8090              # host:port the gateway serves on
 * path: /mcp                          # its MCP endpoint (default /mcp)
 * resource: http://127.0.0.1:8090/mcp # canonical URI: RFC 9728 `resource`, the default token audience
 * server: crm                         # the <server> in tool:<server>/<name>
 * upstream:
 *   url: http://127.0.0.1:9000/mcp
 *   headers: {X-Upstream-Key: "${UPSTREAM_KEY}"}
 * pemba: {url: http://127.0.0.1:8080, store: 01J..., api_key: "${PEMBA_API_KEY}", timeout_ms: 2000}
 * authorization_servers: [https://idp.example.com]
 * issuers:
 *   - {name: idp, issuer: https://idp.example.com, jwks_uri: https://idp.example.com/jwks,
 *      subject_type: user, actor_type: agent, scopes: {"crm:read": [call, get, read]}}
 * tools: {export_customers: {evaluation: {action: {name: export}, resource: {type: customer_list, id: all}}}}
 * allow_methods: []
 * explain: off
 * ```
 *
 * `${NAME}` in any string value outside `tools` is replaced by the environment variable `NAME`
 * (an unset one is an error naming it and where it is used). Tool mappings are left alone: their
 * `$` marks CEL expressions, evaluated per call over `params` and `token`.
 *
 * @module
 */
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { DECIDED_METHODS } from '../mapping.ts'
import { GATEWAY_SET_HEADERS } from './upstream.ts'

/** GatewayConfigError: the file cannot be used; the message names the file and the setting. */
export class GatewayConfigError extends Error {
  override readonly name = 'GatewayConfigError'
}

/** Ids in Pemba hold no `:`, `#` or white space; the server's name also becomes a path segment. */
const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** A JSON-RPC method name as MCP spells them: `tools/call`, `notifications/initialized`. */
const METHOD_NAME = /^[A-Za-z0-9_./-]{1,128}$/
/** Headers the gateway sets itself on every upstream request; configuring them would be overridden or confusing. */
const GATEWAY_HEADERS: ReadonlySet<string> = new Set(GATEWAY_SET_HEADERS)

const httpUrl = (what: string) =>
  z.string().refine((v) => {
    try {
      const u = new URL(v)
      return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password
    } catch {
      return false
    }
  }, `must be an absolute http(s) URL without credentials (${what})`)

const listenAddress = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/]+):(\d{1,5})$/, 'must be host:port, such as 127.0.0.1:8090')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'the port must be at most 65535')

/** An issuer as `PUT /stores/{s}/token-issuers/{name}` takes it, plus its name: validated field by field by staticIssuers. */
const issuerEntry = z.record(z.string(), z.unknown())

const gatewayFile = z.strictObject({
  listen: listenAddress,
  path: z
    .string()
    // No `:` or `*`: the router would read them as a parameter or a wildcard.
    .regex(/^\/[A-Za-z0-9._~!$&'()+,;=@%/-]*$/, 'must be an absolute URL path such as /mcp (no ":" or "*")')
    .default('/mcp'),
  resource: httpUrl('the URL clients reach the gateway at'),
  server: z.string().regex(SERVER_NAME, 'must be 1 to 63 letters, digits, ".", "_" or "-" (it becomes part of ids: tool:<server>/<name>)'),
  upstream: z.strictObject({
    url: httpUrl('the MCP server behind the gateway'),
    headers: z
      .record(
        z.string().regex(HEADER_NAME, 'must be an HTTP header name'),
        z.string().refine((v) => !/[\r\n\0]/.test(v), 'must not contain line breaks'),
      )
      .default({}),
  }),
  pemba: z.strictObject({
    url: httpUrl('the Pemba server that decides'),
    store: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'must be a store id (a ULID, 26 characters)'),
    api_key: z.string().min(1).optional(),
    timeout_ms: z.number().int().min(1).max(60_000).default(2000),
  }),
  authorization_servers: z.array(httpUrl('an OAuth authorization server')).min(1, 'must name at least one authorization server'),
  issuers: z.array(issuerEntry).min(1, 'must trust at least one token issuer'),
  tools: z.record(z.string().min(1).max(128), z.unknown()).default({}),
  allow_methods: z
    .array(
      z
        .string()
        .regex(METHOD_NAME, 'must be a JSON-RPC method name such as tasks/get')
        // Allowing a decided method unasked would switch its authorisation off.
        .superRefine((m, ctx) => {
          if (DECIDED_METHODS.has(m)) ctx.addIssue({ code: 'custom', message: `'${m}' is decided by Pemba and cannot be allowed unconditionally` })
        }),
    )
    .default([]),
  explain: z.enum(['off', 'log']).default('off'),
})

/** The file, validated, with its defaults: the wire names of the YAML. */
export type GatewayFile = z.infer<typeof gatewayFile>

/** An issuer entry as handed to staticIssuers: the YAML's fields, `audience` defaulted to `resource`. */
export type IssuerEntry = Record<string, unknown>

/** The gateway's settings, ready to assemble (the tool mappings and issuers still raw: compiled by the caller). */
export interface GatewaySettings {
  /** Where the configuration came from, for messages (`gateway.yaml`). */
  source: string
  host: string
  port: number
  /** The MCP endpoint's path, `/mcp`. */
  path: string
  /** The canonical URI of the gateway (RFC 9728 `resource`), `http://127.0.0.1:8090/mcp`. */
  resource: string
  /** Where its protected-resource metadata is served: `<origin>/.well-known/oauth-protected-resource<path>`. */
  resourceMetadataUrl: string
  server: string
  upstream: { url: string; headers: Record<string, string> }
  pemba: { url: string; store: string; apiKey?: string; timeoutMs: number }
  authorizationServers: string[]
  issuers: IssuerEntry[]
  tools: Record<string, unknown>
  allowMethods: string[]
  explain: 'off' | 'log'
}

/**
 * parseGatewayConfig reads the YAML text of `source` with `env` for `${NAME}` references; throws
 * GatewayConfigError naming the setting at fault.
 */
export function parseGatewayConfig(text: string, source: string, env: Record<string, string | undefined>): GatewaySettings {
  let raw: unknown
  try {
    raw = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true })
  } catch (e) {
    throw new GatewayConfigError(`${source}: invalid YAML: ${(e as Error).message.split('\n')[0]}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new GatewayConfigError(`${source}: must be a YAML mapping of settings (listen, resource, server, upstream, pemba, issuers, …)`)
  }
  const expanded = expandEnv(raw, [], env, source)
  const parsed = gatewayFile.safeParse(expanded, { reportInput: true })
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${settingPath([...issue.path, k])}: unknown setting`).join('; ')
      }
      const at = settingPath(issue.path)
      if (issue.code === 'invalid_type' && issue.input === undefined) return `${at}: required`
      return `${at}: ${issue.message.replace(/^Invalid input: /, '')}`
    })
    throw new GatewayConfigError(`${source}: ${problems.join('; ')}`)
  }
  return settingsOf(parsed.data, source)
}

/** settingsOf checks what spans settings (the resource's path, unique issuers) and renames for code. */
function settingsOf(f: GatewayFile, source: string): GatewaySettings {
  const resource = new URL(f.resource)
  // The metadata URL is derived from the resource (RFC 9728 §3.1: the well-known suffix goes
  // between the origin and the path), and clients reach the gateway at the resource: a path that
  // differs from `path` would send them to an endpoint the gateway does not serve.
  if (resource.pathname !== f.path || resource.search || resource.hash) {
    throw new GatewayConfigError(
      `${source}: resource: its path must be the gateway's path '${f.path}' with no query or fragment ` +
        `(clients call the resource URL, and its metadata is served at /.well-known/oauth-protected-resource${f.path}); got '${f.resource}'`,
    )
  }
  for (const [k] of Object.entries(f.upstream.headers)) {
    if (GATEWAY_HEADERS.has(k.toLowerCase())) {
      throw new GatewayConfigError(`${source}: upstream.headers.${k}: the gateway sets this header itself`)
    }
  }
  const { host, port } = splitListen(f.listen)
  return {
    source,
    host,
    port,
    path: f.path,
    resource: f.resource,
    resourceMetadataUrl: `${resource.origin}/.well-known/oauth-protected-resource${f.path === '/' ? '' : f.path}`,
    server: f.server,
    upstream: { url: f.upstream.url, headers: f.upstream.headers },
    pemba: { url: f.pemba.url, store: f.pemba.store, apiKey: f.pemba.api_key, timeoutMs: f.pemba.timeout_ms },
    authorizationServers: f.authorization_servers,
    issuers: f.issuers.map((i) => ({ ...i, audience: i.audience ?? f.resource })),
    tools: f.tools,
    allowMethods: f.allow_methods,
    explain: f.explain,
  }
}

/** splitListen: `127.0.0.1:8090` → 127.0.0.1 and 8090; `[::1]:8090` → ::1 and 8090. */
function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':')
  return { host: listen.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(listen.slice(colon + 1)) }
}

/** `issuers[0].scopes` from zod's path. */
export function settingPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`
  return out || '(top level)'
}

const ENV_REF = /\$\{([^}]*)\}/g

/**
 * expandEnv replaces `${NAME}` in every string value (keys are left alone), except under the
 * top-level `tools` (CEL mappings, see the module's comment).
 */
function expandEnv(value: unknown, path: PropertyKey[], env: Record<string, string | undefined>, source: string): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_, name: string) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new GatewayConfigError(`${source}: ${settingPath(path)}: '\${${name}}' is not an environment variable reference`)
      }
      const v = env[name]
      if (v === undefined) throw new GatewayConfigError(`${source}: ${settingPath(path)}: the environment variable ${name} is not set`)
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, [...path, i], env, source))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) {
      out[k] = path.length === 0 && k === 'tools' ? v : expandEnv(v, [...path, k], env, source)
    }
    return out
  }
  return value
}
