/**
 * The HTTP client of every `pemba` command that talks to a running server (the query commands,
 * `model write`, `tuple import`/`export` and `store import`/`export` through HTTP): where the
 * server is and how to authenticate, read from flags and the OpenFGA CLI's environment
 * variables, and one `request` that sends JSON, retries what a busy server refuses (429, 503)
 * a few times with a short backoff, and turns a refusal into an ApiError carrying the HTTP
 * status and OpenFGA's `{code, message}`.
 *
 * The flags and variables are the OpenFGA CLI's (`fga`) and SDKs', so a shell set up for `fga`
 * works unchanged:
 *
 * | flag                  | environment                        | default                  |
 * | --------------------- | ---------------------------------- | ------------------------ |
 * | `--api-url`           | FGA_API_URL                        | http://127.0.0.1:8080    |
 * | `--api-token`         | FGA_API_TOKEN, then PEMBA_API_TOKEN |                         |
 * | `--store-id`          | FGA_STORE_ID                       |                          |
 * | `--model-id`          | FGA_MODEL_ID                       | (the store's latest)     |
 * | `--client-id`         | FGA_CLIENT_ID                      | client credentials flow  |
 * | `--client-secret`     | FGA_CLIENT_SECRET                  |                          |
 * | `--api-token-issuer`  | FGA_API_TOKEN_ISSUER               |                          |
 * | `--api-audience`      | FGA_API_AUDIENCE                   |                          |
 * | `--api-scopes`        | FGA_API_SCOPES (space or comma separated) |                   |
 *
 * A flag wins over its variable. The variables are read from the environment the command was
 * given (CliIo.env), not from process.env, so tests can run commands in-process. The token, the
 * client secret and a token obtained with the client credentials never appear in any output:
 * execApi redacts them from every line it prints.
 *
 * @module
 */
import { Option, type Command } from 'commander'
import { createRedactor, REDACTED, type Redactor } from '../core/redact.ts'
import { USAGE_EXIT, type CommandContext } from './program.ts'

/** Where the server is and who the command is to it. */
export interface ApiTarget {
  /** The server's base URL, without a trailing slash. */
  url: string
  /** A bearer token (a preshared key, or an OIDC access token). */
  token?: string
  storeId?: string
  modelId?: string
  /** OAuth2 client credentials, exchanged for a bearer token before the first request. */
  clientCredentials?: ClientCredentials
}

/** The OAuth2 client credentials flow as the OpenFGA SDKs run it. */
export interface ClientCredentials {
  clientId: string
  clientSecret: string
  /** `auth.example.com` (https assumed) or a URL; a URL without a path gets `/oauth/token`. */
  tokenIssuer: string
  audience?: string
  scopes?: string[]
}

/** The default server, as `pemba serve` listens by default. */
export const DEFAULT_API_URL = 'http://127.0.0.1:8080'

/** The API options, by commander's attribute name: flag, variable(s), help. */
const API_OPTIONS = [
  { key: 'apiUrl', flag: '--api-url <url>', env: ['FGA_API_URL'], help: "the Pemba (or OpenFGA) server's URL" },
  {
    key: 'apiToken',
    flag: '--api-token <token>',
    env: ['FGA_API_TOKEN', 'PEMBA_API_TOKEN'],
    help: 'a bearer token: a preshared key or an access token (env: FGA_API_TOKEN, then PEMBA_API_TOKEN)',
  },
  { key: 'storeId', flag: '--store-id <id>', env: ['FGA_STORE_ID'], help: 'the store' },
  { key: 'modelId', flag: '--model-id <id>', env: ['FGA_MODEL_ID'], help: "the authorization model (default: the store's latest)" },
  { key: 'clientId', flag: '--client-id <id>', env: ['FGA_CLIENT_ID'], help: 'client credentials flow: the client ID' },
  { key: 'clientSecret', flag: '--client-secret <secret>', env: ['FGA_CLIENT_SECRET'], help: 'client credentials flow: the client secret' },
  {
    key: 'apiTokenIssuer',
    flag: '--api-token-issuer <issuer>',
    env: ['FGA_API_TOKEN_ISSUER'],
    help: 'client credentials flow: the token issuer (host, or URL of the token endpoint)',
  },
  { key: 'apiAudience', flag: '--api-audience <audience>', env: ['FGA_API_AUDIENCE'], help: 'client credentials flow: the audience' },
  {
    key: 'apiScopes',
    flag: '--api-scopes <scopes>',
    env: ['FGA_API_SCOPES'],
    help: 'client credentials flow: scopes, space or comma separated',
  },
] as const

type ApiOptionKey = (typeof API_OPTIONS)[number]['key']

const SERVER_GROUP = 'Server (the OpenFGA CLI’s flags and variables):'

/**
 * addApiOptions adds the server and credential options to `cmd`. Their variables are shown in
 * `--help` but read by apiTarget from the command's environment.
 */
export function addApiOptions(cmd: Command): Command {
  for (const o of API_OPTIONS) {
    const option = new Option(o.flag, o.help).helpGroup(SERVER_GROUP)
    // `.env()` only labels the help: apiTarget reads the variables itself (see the module note).
    if (o.env.length === 1) option.env(o.env[0])
    if (o.key === 'apiUrl') option.default(DEFAULT_API_URL)
    cmd.addOption(option)
  }
  return cmd
}

/**
 * apiTarget reads the options addApiOptions added: a flag given on the command line, else the
 * first variable set (non-empty) in `env`, else the default. A malformed URL, one with a user
 * name, password, query or fragment, or an incomplete set of client credentials is a usage
 * error (cmd.error: exit 2), whose message never shows the URL's credentials.
 */
export function apiTarget(cmd: Command, env: Record<string, string | undefined>): ApiTarget {
  const opts = cmd.opts<Record<string, unknown>>()
  const value = (key: ApiOptionKey): string | undefined => {
    if (cmd.getOptionValueSource(key) === 'cli') return String(opts[key])
    for (const name of API_OPTIONS.find((o) => o.key === key)!.env) if (nonEmpty(env[name])) return env[name]
    return undefined
  }
  const raw = value('apiUrl') ?? DEFAULT_API_URL
  let url: URL | undefined
  try {
    url = new URL(raw)
  } catch {
    url = undefined
  }
  const usage = (problem: string) => cmd.error(`pemba ${commandPath(cmd)}: --api-url (FGA_API_URL) ${problem}`, { exitCode: USAGE_EXIT })
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    usage(`must be an http or https URL, got '${hideUserInfo(raw)}'`)
  }
  // fetch refuses a URL with credentials, and paths are appended to the URL: a query or a
  // fragment would swallow them.
  if (url!.username !== '' || url!.password !== '' || /^[^/]*\/\/[^/?#]*@/.test(raw)) {
    usage(`must not hold a user name or password (give a token with --api-token or FGA_API_TOKEN), got '${hideUserInfo(raw)}'`)
  }
  if (url!.search !== '' || url!.hash !== '' || /[?#]/.test(raw)) {
    usage(`must be the server's base URL, without a query (?…) or fragment (#…): give '${url!.origin}${url!.pathname.replace(/\/+$/, '')}'`)
  }
  const target: ApiTarget = { url: `${url!.origin}${url!.pathname}`.replace(/\/+$/, '') }
  const storeId = value('storeId')
  if (storeId !== undefined) target.storeId = storeId
  const modelId = value('modelId')
  if (modelId !== undefined) target.modelId = modelId
  const clientId = value('clientId')
  const clientSecret = value('clientSecret')
  const tokenIssuer = value('apiTokenIssuer')
  const given = [clientId, clientSecret, tokenIssuer].filter((v) => v !== undefined).length
  if (given > 0 && given < 3) {
    cmd.error(`pemba ${commandPath(cmd)}: the client credentials flow needs --client-id, --client-secret and --api-token-issuer together`, {
      exitCode: USAGE_EXIT,
    })
  }
  if (given < 3) {
    const token = value('apiToken')
    if (token !== undefined) target.token = token
  } else {
    // PEMBA_API_TOKEN (the examples' variable) yields to client credentials; a token given as
    // such (--api-token, FGA_API_TOKEN) beside them is a contradiction.
    if (cmd.getOptionValueSource('apiToken') === 'cli' || nonEmpty(env.FGA_API_TOKEN)) {
      cmd.error(`pemba ${commandPath(cmd)}: give either --api-token (FGA_API_TOKEN) or client credentials (--client-id …), not both`, { exitCode: USAGE_EXIT })
    }
    const scopes = value('apiScopes')?.split(/[\s,]+/).filter(Boolean)
    target.clientCredentials = {
      clientId: clientId!,
      clientSecret: clientSecret!,
      tokenIssuer: tokenIssuer!,
      ...(value('apiAudience') !== undefined ? { audience: value('apiAudience') } : {}),
      ...(scopes && scopes.length > 0 ? { scopes } : {}),
    }
  }
  return target
}

const nonEmpty = (v: string | undefined): boolean => v !== undefined && v !== ''

/**
 * hideUserInfo: a URL as given, its `user:password@` part (which may be a token) replaced, and
 * anything else the redactor recognises as a secret hidden.
 */
function hideUserInfo(raw: string): string {
  return createRedactor().text(raw.replace(/^([^/]*\/\/)[^/?#]*@/, `$1${REDACTED}@`))
}

/**
 * requireStoreId: the target's store, or a usage error (exit 2) naming the flag and variable
 * when none was given.
 */
export function requireStoreId(cmd: Command, target: ApiTarget): string {
  if (target.storeId === undefined) {
    cmd.error(`pemba ${commandPath(cmd)}: no store: give --store-id <id> or set FGA_STORE_ID`, { exitCode: USAGE_EXIT })
  }
  return target.storeId!
}

/**
 * A request the server refused (status ≥ 400, with OpenFGA's `{code, message}` when the body
 * has them), or one that never got an answer (status 0, code `unreachable`). `message` is the
 * server's message; describe() adds the status and code for a line a person reads.
 */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  /** Whether the API server answered (else: no answer, or the token issuer refused). */
  readonly fromServer: boolean

  constructor(status: number, code: string, message: string, fromServer = status !== 0) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.fromServer = fromServer
  }

  /**
   * describe: `the server refused the request: HTTP 400 validation_error: invalid 'user' …` for
   * the API server's refusal; the message alone otherwise (it names what failed).
   */
  describe(): string {
    if (!this.fromServer) return this.message
    return `the server refused the request: HTTP ${this.status} ${this.code}: ${this.message}`
  }
}

/** How ApiClient retries and waits; the defaults suit people and scripts alike. */
export interface ApiClientOptions {
  /** Retries of a 429 or 503 answer (default 3: four attempts in all). */
  retries?: number
  /** The first wait before a retry, doubled each time (default 200 ms); Retry-After wins, up to 5 s. */
  backoffMs?: number
  /** The time one attempt may take, answer included (default 60 s). */
  timeoutMs?: number
  /** How to wait (tests pass a fast one). */
  sleep?: (ms: number) => Promise<void>
}

type Fetch = typeof fetch

/** The longest Retry-After honoured: a script should fail rather than hang. */
const MAX_RETRY_AFTER_MS = 5_000

/**
 * One server, one set of credentials. `request` sends a JSON body (a string is sent as
 * text/plain, as the model DSL is) and resolves with the parsed JSON answer (undefined for an
 * empty one); it throws ApiError for a refusal or an unreachable server.
 */
export class ApiClient {
  readonly target: ApiTarget
  private readonly fetchImpl: Fetch
  private readonly retries: number
  private readonly backoffMs: number
  private readonly timeoutMs: number
  private readonly sleep: (ms: number) => Promise<void>
  /** A token from the client credentials flow, and when to fetch a fresh one. */
  private issued?: { token: string; refreshAt: number }

  constructor(target: ApiTarget, fetchImpl: Fetch = fetch, options: ApiClientOptions = {}) {
    this.target = target
    this.fetchImpl = fetchImpl
    this.retries = options.retries ?? 3
    this.backoffMs = options.backoffMs ?? 200
    this.timeoutMs = options.timeoutMs ?? 60_000
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)))
  }

  /** The secrets this client holds, for a redactor (the token, the client secret, an issued token). */
  secrets(): string[] {
    const s: string[] = []
    if (this.target.token) s.push(this.target.token)
    if (this.target.clientCredentials) s.push(this.target.clientCredentials.clientSecret)
    if (this.issued) s.push(this.issued.token)
    return s
  }

  /** storePath: `/stores/<storeId><suffix>` for the target's store (which must be set). */
  storePath(suffix: string): string {
    if (this.target.storeId === undefined) throw new Error('ApiClient.storePath: the target has no store')
    return `/stores/${encodeURIComponent(this.target.storeId)}${suffix}`
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = this.target.url + path
    const headers: Record<string, string> = { accept: 'application/json' }
    let payload: string | undefined
    if (body !== undefined) {
      const text = typeof body === 'string'
      payload = text ? body : JSON.stringify(body)
      headers['content-type'] = text ? 'text/plain' : 'application/json'
    }
    for (let attempt = 0; ; attempt++) {
      const token = await this.bearer()
      if (token !== undefined) headers.authorization = `Bearer ${token}`
      const res = await this.send(url, { method, headers, body: payload })
      if ((res.status === 429 || res.status === 503) && attempt < this.retries) {
        await res.body?.cancel()
        await this.sleep(this.retryDelay(res, attempt))
        continue
      }
      const raw = await res.text()
      if (!res.ok) throw refusal(res.status, raw)
      if (raw === '') return undefined as T
      try {
        return JSON.parse(raw) as T
      } catch {
        throw new ApiError(res.status, 'invalid_response', `the server at ${this.target.url} answered ${method} ${path} with something other than JSON: ${excerpt(raw)}`)
      }
    }
  }

  /** send makes one attempt; a connection that fails is an ApiError naming the URL. */
  private async send(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetchImpl(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) })
    } catch (e) {
      throw unreachable(this.target.url, e, this.timeoutMs)
    }
  }

  /** retryDelay: the server's Retry-After (seconds) when it sent one, else exponential backoff. */
  private retryDelay(res: Response, attempt: number): number {
    const after = Number(res.headers.get('retry-after'))
    if (Number.isFinite(after) && after > 0) return Math.min(after * 1000, MAX_RETRY_AFTER_MS)
    return this.backoffMs * 2 ** attempt
  }

  /** bearer: the configured token, or one from the client credentials flow (fetched, then cached). */
  private async bearer(): Promise<string | undefined> {
    const cc = this.target.clientCredentials
    if (cc === undefined) return this.target.token
    if (this.issued && Date.now() < this.issued.refreshAt) return this.issued.token
    const tokenUrl = tokenEndpoint(cc.tokenIssuer)
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: cc.clientId, client_secret: cc.clientSecret })
    if (cc.audience !== undefined) form.set('audience', cc.audience)
    if (cc.scopes) form.set('scope', cc.scopes.join(' '))
    let res: Response
    try {
      res = await this.fetchImpl(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (e) {
      throw unreachable(tokenUrl, e, this.timeoutMs, 'the token issuer')
    }
    const raw = await res.text()
    let answer: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } = {}
    try {
      answer = JSON.parse(raw) as typeof answer
    } catch {
      // Reported below with the status.
    }
    if (!res.ok || typeof answer.access_token !== 'string') {
      const why = typeof answer.error === 'string' ? `${answer.error}${typeof answer.error_description === 'string' ? `: ${answer.error_description}` : ''}` : excerpt(raw)
      throw new ApiError(res.status, 'token_request_failed', `the token issuer ${tokenUrl} refused the client credentials (HTTP ${res.status}): ${why}`, false)
    }
    const expiresIn = typeof answer.expires_in === 'number' ? answer.expires_in : 300
    // Refreshed a minute early (or halfway through a short lifetime) so a request never carries an expired token.
    this.issued = { token: answer.access_token, refreshAt: Date.now() + Math.max(expiresIn * 1000 - 60_000, (expiresIn * 1000) / 2) }
    return this.issued.token
  }
}

/** tokenEndpoint: the token URL as the OpenFGA SDKs build it from the issuer. */
export function tokenEndpoint(issuer: string): string {
  const url = new URL(/^https?:\/\//.test(issuer) ? issuer : `https://${issuer}`)
  if (/^\/*$/.test(url.pathname)) url.pathname = '/oauth/token'
  return url.toString()
}

/** refusal: the ApiError for an error answer, from OpenFGA's `{code, message}` when present. */
function refusal(status: number, raw: string): ApiError {
  try {
    const body = JSON.parse(raw) as { code?: unknown; message?: unknown }
    if (typeof body.message === 'string') {
      return new ApiError(status, typeof body.code === 'string' ? body.code : `http_${status}`, body.message)
    }
  } catch {
    // Not JSON (a proxy's page): its text stands for the message.
  }
  return new ApiError(status, `http_${status}`, raw === '' ? '(no message)' : excerpt(raw))
}

/** unreachable: the ApiError for a request that got no answer, naming where it went. */
function unreachable(url: string, e: unknown, timeoutMs: number, what = 'the server'): ApiError {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } }
  if (err?.name === 'TimeoutError') return new ApiError(0, 'timeout', `${what} at ${url} did not answer within ${timeoutMs / 1000} s`)
  const cause = err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e)
  return new ApiError(0, 'unreachable', `cannot reach ${what} at ${url} (${cause})`)
}

/** excerpt: the first 200 characters of a text, on one line. */
function excerpt(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim()
  return line.length > 200 ? `${line.slice(0, 200)}…` : line
}

/** What an API command's body gets: the client, and a redactor that hides its secrets. */
export interface ApiSession {
  client: ApiClient
  redactor: Redactor
}

/**
 * execApi runs an API command's body with a client for the target the flags and environment
 * name: ctx.exec (so stray PEMBA_ variables are still refused), then `run`, whose resolved value
 * is the exit code. An ApiError is printed on stderr as `pemba <command>: …` with the HTTP
 * status and OpenFGA's code, and exits 1; every line printed through `session.redactor` (and
 * that one) hides the token and the client secret. With `needsStore`, a missing store is a
 * usage error (exit 2) before anything is sent. Check the arguments (cmd.error) before calling
 * execApi: inside `run`, a thrown CommanderError is reported as a failure (exit 1), not a usage
 * error.
 */
export function execApi(
  ctx: CommandContext,
  cmd: Command,
  run: (session: ApiSession) => Promise<number>,
  options: { needsStore?: boolean } = {},
): Promise<void> {
  const target = apiTarget(cmd, ctx.io.env)
  // Usage errors (cmd.error) must be raised here, before ctx.exec, which counts any throw as a failure.
  if (options.needsStore) requireStoreId(cmd, target)
  return ctx.exec(cmd, async (_config, configured) => {
    const client = new ApiClient(target)
    const redactor = apiRedactor(client, configured)
    try {
      return await run({ client, redactor })
    } catch (e) {
      if (!(e instanceof ApiError)) throw e
      ctx.io.out.error(redactor.text(`pemba ${commandPath(cmd)}: ${e.describe()}`))
      return 1
    }
  })
}

/** apiRedactor: `configured` plus the client's secrets (read on each use: a token may be issued later). */
function apiRedactor(client: ApiClient, configured: Redactor): Redactor {
  const hide = (s: string): string => {
    let out = s
    for (const secret of client.secrets()) if (secret !== '' && out.includes(secret)) out = out.split(secret).join(REDACTED)
    return out
  }
  return {
    text: (s) => configured.text(hide(s)),
    error: (e) => configured.text(hide(createRedactor().error(e))),
  }
}

/** commandPath: `tuple import` for a subcommand, `check` for a top-level one. */
export function commandPath(cmd: Command): string {
  const names: string[] = []
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}
