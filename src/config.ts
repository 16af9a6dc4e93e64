/**
 * Configuration from environment variables and command-line flags (flags win). Every setting
 * has a default that serves the embedded quick start: `npm start` listens on 127.0.0.1:8080
 * with `./data/pemba.db`.
 *
 * @module
 */
import { AuthSettingsError, checkAuthSettings } from './auth/settings.ts'
import { parseDuration } from './service/duration.ts'
import { chooseBackend, UnsupportedDatabaseUrl, type DatabaseChoice } from './store/sql/backends.ts'
import { InvalidDatabaseUrl } from './store/sql/backend.ts'

export interface PembaConfig {
  /** PEMBA_HOST / --host */
  host: string
  /** PEMBA_PORT / --port; 0 picks a free port. */
  port: number
  /** PEMBA_DATABASE_URL / --database-url: `sqlite:<path>`, `sqlite::memory:` or `postgres://…`. */
  databaseUrl: string
  /**
   * PEMBA_MIGRATIONS / --migrations: `auto` applies pending migrations at start; `check` refuses
   * to start while any are pending (for operators who run `pemba migrate` separately).
   */
  migrations: 'auto' | 'check'
  /** PEMBA_PG_POOL_SIZE: PostgreSQL connections per process. */
  pgPoolSize: number
  /** PEMBA_PG_STATEMENT_TIMEOUT_MS: `statement_timeout` of each PostgreSQL connection; 0 = the server's. */
  pgStatementTimeoutMs: number
  /** PEMBA_MAX_TUPLES_PER_WRITE: writes + deletes in one Write. */
  maxTuplesPerWrite: number
  /** PEMBA_MAX_TYPES_PER_MODEL */
  maxTypesPerModel: number
  /** PEMBA_MAX_MODEL_SIZE_BYTES: a model's serialized size. */
  maxModelSizeBytes: number
  /** PEMBA_MAX_CHECKS_PER_BATCH */
  maxChecksPerBatch: number
  /** PEMBA_RESOLVE_NODE_LIMIT: rewrite hops before `authorization_model_resolution_too_complex`. */
  resolveNodeLimit: number
  /** PEMBA_MAX_DISPATCHES_PER_REQUEST: subproblems one request may evaluate. */
  maxDispatchesPerRequest: number
  /** PEMBA_CHECK_DEADLINE_MS: time budget of one check. */
  checkDeadlineMs: number
  /** PEMBA_LIST_MAX_RESULTS: list-objects / list-users stop (and say so) after this many; 0 = no limit. */
  listMaxResults: number
  /** PEMBA_LIST_DEADLINE_MS: list-objects / list-users stop (and say so) after this long. */
  listDeadlineMs: number
  /** PEMBA_MAX_CONDITION_COST: the CEL evaluation budget of one condition. */
  maxConditionCost: number
  /** PEMBA_BODY_LIMIT_BYTES: the largest request body accepted. */
  bodyLimitBytes: number
  /** PEMBA_MAX_HEADER_BYTES: the request line and headers together (larger: 431). */
  maxHeaderBytes: number
  /** PEMBA_HEADERS_TIMEOUT_MS: how long a client may take to send the request headers (then 408). */
  headersTimeoutMs: number
  /** PEMBA_REQUEST_TIMEOUT_MS: how long a client may take to send the whole request (then 408); 0 = no limit. */
  requestTimeoutMs: number
  /** PEMBA_KEEP_ALIVE_TIMEOUT_MS: how long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs: number
  /** PEMBA_MAX_DELEGATION_CHAIN: principals an `on_behalf_of` chain may name. */
  maxDelegationChain: number
  /** PEMBA_CHECK_CACHE_SIZE: entries in the cross-request check cache; 0 turns it off. */
  checkCacheSize: number
  /** PEMBA_CHECK_CACHE_STALENESS_MS: how stale a MINIMIZE_LATENCY answer may be. */
  checkCacheStalenessMs: number
  /** PEMBA_TUPLE_CACHE_SIZE: tuples held by the cross-request tuple cache; 0 turns it off. */
  tupleCacheSize: number
  /**
   * PEMBA_TUPLE_INDEX_MAX_TUPLES: tuples the in-memory tuple index holds across stores (roughly
   * 330 bytes each); a store that does not fit is read from the database. 0 turns it off.
   */
  tupleIndexMaxTuples: number
  /**
   * PEMBA_TUPLE_INDEX_PRELOAD: 'on' reads every store into the tuple index (as far as the budget
   * allows) before the server listens; 'off' (the default) reads a store on its first request,
   * large ones in the background while the database answers.
   */
  tupleIndexPreload: 'on' | 'off'
  /**
   * PEMBA_EXPIRY_SWEEP_INTERVAL_MS: how often the sweeper deletes expired tuples (recording each
   * delete in the change feed) and marks overdue access requests expired; 0 turns it off.
   * Expired tuples stop granting at once either way; this bounds how long they stay stored.
   */
  expirySweepIntervalMs: number
  /** PEMBA_JIT_MAX_DURATION: the longest grant an access request may ask for (ISO 8601). */
  jitMaxDuration: string
  /** PEMBA_JIT_REQUEST_TTL: how long an access request waits for a decision (ISO 8601). */
  jitRequestTtl: string
  /** PEMBA_TOKEN_CLOCK_SKEW_SECONDS: leeway on `exp` and `nbf` of a check's `subject_token`. */
  tokenClockSkewSeconds: number
  /** PEMBA_DECISION_LOG: `on` records every decision (see src/service/decision-log.ts); `off` none. */
  decisionLog: 'on' | 'off'
  /** PEMBA_DECISION_LOG_BATCH: a flush starts once this many decisions wait. */
  decisionLogBatch: number
  /** PEMBA_DECISION_LOG_FLUSH_MS: waiting decisions are flushed at least this often. */
  decisionLogFlushMs: number
  /** PEMBA_DECISION_LOG_BUFFER_MAX: decisions that may wait; beyond it they are dropped and counted. */
  decisionLogBufferMax: number
  /** PEMBA_DECISION_LOG_RETENTION: how long decisions are kept (ISO 8601). */
  decisionLogRetention: string
  /** PEMBA_AUTH_MODE: how API clients authenticate: `none`, `preshared` or `oidc` (src/auth/). */
  authMode: 'none' | 'preshared' | 'oidc'
  /** PEMBA_AUTH_PRESHARED_KEYS: `<client name>=<key>,…`; each name is the client `client:<name>`. */
  authPresharedKeys: string
  /** PEMBA_AUTH_OIDC_ISSUER: the `iss` client tokens must carry. */
  authOidcIssuer: string
  /** PEMBA_AUTH_OIDC_AUDIENCE: the `aud` client tokens must carry. */
  authOidcAudience: string
  /** PEMBA_AUTH_OIDC_JWKS_URI: where the issuer's signing keys are fetched (https). */
  authOidcJwksUri: string
  /** PEMBA_AUTH_OIDC_JWKS_FILE: a local JWKS file instead of a URI. */
  authOidcJwksFile: string
  /** PEMBA_AUTH_OIDC_CLOCK_SKEW_SECONDS: tolerance on `exp` and `nbf`. */
  authOidcClockSkewSeconds: number
  /** PEMBA_AUTH_JWKS_COOLDOWN_MS: the shortest time between two fetches of one JWKS URI. */
  authJwksCooldownMs: number
  /** PEMBA_AUTH_ADMIN_CLIENTS: clients made system admins at start (`provisioner,ops`). */
  authAdminClients: string
  /** PEMBA_LOG_LEVEL: `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`. */
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'
  /** PEMBA_LOG_FORMAT: `json` (one object a line) or `pretty` (for people at a terminal). */
  logFormat: 'json' | 'pretty'
  /** PEMBA_ACCESS_LOG: `on` logs one line per request; `off` none. */
  accessLog: 'on' | 'off'
  /** PEMBA_METRICS_ADDR: `host:port` of a separate listener serving /metrics without API auth; '' = none. */
  metricsAddr: string
  /** PEMBA_CORS_ORIGINS: origins allowed to call the API from a browser (`https://a.example,https://b.example`); '' = CORS off. */
  corsOrigins: string
  /** PEMBA_ALLOWED_HOSTS: host names accepted in the Host header besides IP literals and localhost (DNS-rebinding defence). */
  allowedHosts: string
  /** PEMBA_DB_STARTUP_TIMEOUT_MS: how long to keep retrying an unreachable database at start; 0 = fail at once. */
  dbStartupTimeoutMs: number
  /** PEMBA_READY_TIMEOUT_MS: how long /readyz waits for the database before answering 503. */
  readyTimeoutMs: number
  /** PEMBA_CREATE_DIRS: `on` creates a SQLite file's missing directory; `off` refuses (./data is always created). */
  createDirs: 'on' | 'off'
}

export const DEFAULTS: PembaConfig = {
  host: '127.0.0.1',
  port: 8080,
  databaseUrl: 'sqlite:./data/pemba.db',
  migrations: 'auto',
  pgPoolSize: 10,
  pgStatementTimeoutMs: 5000,
  maxTuplesPerWrite: 100,
  maxTypesPerModel: 100,
  maxModelSizeBytes: 256 * 1024,
  maxChecksPerBatch: 50,
  resolveNodeLimit: 25,
  maxDispatchesPerRequest: 200_000,
  checkDeadlineMs: 10_000,
  listMaxResults: 100_000,
  listDeadlineMs: 30_000,
  maxConditionCost: 100,
  bodyLimitBytes: 1024 * 1024,
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxDelegationChain: 4,
  checkCacheSize: 100_000,
  checkCacheStalenessMs: 1000,
  tupleCacheSize: 500_000,
  tupleIndexMaxTuples: 2_000_000,
  tupleIndexPreload: 'off',
  expirySweepIntervalMs: 60_000,
  jitMaxDuration: 'PT8H',
  jitRequestTtl: 'PT24H',
  tokenClockSkewSeconds: 30,
  decisionLog: 'on',
  decisionLogBatch: 500,
  decisionLogFlushMs: 200,
  decisionLogBufferMax: 20_000,
  decisionLogRetention: 'P30D',
  authMode: 'none',
  authPresharedKeys: '',
  authOidcIssuer: '',
  authOidcAudience: '',
  authOidcJwksUri: '',
  authOidcJwksFile: '',
  authOidcClockSkewSeconds: 30,
  authJwksCooldownMs: 30_000,
  authAdminClients: '',
  logLevel: 'info',
  logFormat: 'json',
  accessLog: 'on',
  metricsAddr: '',
  corsOrigins: '',
  allowedHosts: '',
  dbStartupTimeoutMs: 30_000,
  readyTimeoutMs: 1000,
  createDirs: 'off',
}

const ENV: Record<keyof PembaConfig, string> = {
  host: 'PEMBA_HOST',
  port: 'PEMBA_PORT',
  databaseUrl: 'PEMBA_DATABASE_URL',
  migrations: 'PEMBA_MIGRATIONS',
  pgPoolSize: 'PEMBA_PG_POOL_SIZE',
  pgStatementTimeoutMs: 'PEMBA_PG_STATEMENT_TIMEOUT_MS',
  maxTuplesPerWrite: 'PEMBA_MAX_TUPLES_PER_WRITE',
  maxTypesPerModel: 'PEMBA_MAX_TYPES_PER_MODEL',
  maxModelSizeBytes: 'PEMBA_MAX_MODEL_SIZE_BYTES',
  maxChecksPerBatch: 'PEMBA_MAX_CHECKS_PER_BATCH',
  resolveNodeLimit: 'PEMBA_RESOLVE_NODE_LIMIT',
  maxDispatchesPerRequest: 'PEMBA_MAX_DISPATCHES_PER_REQUEST',
  checkDeadlineMs: 'PEMBA_CHECK_DEADLINE_MS',
  listMaxResults: 'PEMBA_LIST_MAX_RESULTS',
  listDeadlineMs: 'PEMBA_LIST_DEADLINE_MS',
  maxConditionCost: 'PEMBA_MAX_CONDITION_COST',
  bodyLimitBytes: 'PEMBA_BODY_LIMIT_BYTES',
  maxHeaderBytes: 'PEMBA_MAX_HEADER_BYTES',
  headersTimeoutMs: 'PEMBA_HEADERS_TIMEOUT_MS',
  requestTimeoutMs: 'PEMBA_REQUEST_TIMEOUT_MS',
  keepAliveTimeoutMs: 'PEMBA_KEEP_ALIVE_TIMEOUT_MS',
  maxDelegationChain: 'PEMBA_MAX_DELEGATION_CHAIN',
  checkCacheSize: 'PEMBA_CHECK_CACHE_SIZE',
  checkCacheStalenessMs: 'PEMBA_CHECK_CACHE_STALENESS_MS',
  tupleCacheSize: 'PEMBA_TUPLE_CACHE_SIZE',
  tupleIndexMaxTuples: 'PEMBA_TUPLE_INDEX_MAX_TUPLES',
  tupleIndexPreload: 'PEMBA_TUPLE_INDEX_PRELOAD',
  expirySweepIntervalMs: 'PEMBA_EXPIRY_SWEEP_INTERVAL_MS',
  jitMaxDuration: 'PEMBA_JIT_MAX_DURATION',
  jitRequestTtl: 'PEMBA_JIT_REQUEST_TTL',
  tokenClockSkewSeconds: 'PEMBA_TOKEN_CLOCK_SKEW_SECONDS',
  decisionLog: 'PEMBA_DECISION_LOG',
  decisionLogBatch: 'PEMBA_DECISION_LOG_BATCH',
  decisionLogFlushMs: 'PEMBA_DECISION_LOG_FLUSH_MS',
  decisionLogBufferMax: 'PEMBA_DECISION_LOG_BUFFER_MAX',
  decisionLogRetention: 'PEMBA_DECISION_LOG_RETENTION',
  authMode: 'PEMBA_AUTH_MODE',
  authPresharedKeys: 'PEMBA_AUTH_PRESHARED_KEYS',
  authOidcIssuer: 'PEMBA_AUTH_OIDC_ISSUER',
  authOidcAudience: 'PEMBA_AUTH_OIDC_AUDIENCE',
  authOidcJwksUri: 'PEMBA_AUTH_OIDC_JWKS_URI',
  authOidcJwksFile: 'PEMBA_AUTH_OIDC_JWKS_FILE',
  authOidcClockSkewSeconds: 'PEMBA_AUTH_OIDC_CLOCK_SKEW_SECONDS',
  authJwksCooldownMs: 'PEMBA_AUTH_JWKS_COOLDOWN_MS',
  authAdminClients: 'PEMBA_AUTH_ADMIN_CLIENTS',
  logLevel: 'PEMBA_LOG_LEVEL',
  logFormat: 'PEMBA_LOG_FORMAT',
  accessLog: 'PEMBA_ACCESS_LOG',
  metricsAddr: 'PEMBA_METRICS_ADDR',
  corsOrigins: 'PEMBA_CORS_ORIGINS',
  allowedHosts: 'PEMBA_ALLOWED_HOSTS',
  dbStartupTimeoutMs: 'PEMBA_DB_STARTUP_TIMEOUT_MS',
  readyTimeoutMs: 'PEMBA_READY_TIMEOUT_MS',
  createDirs: 'PEMBA_CREATE_DIRS',
}

/** flagName turns `databaseUrl` into `--database-url`. */
function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
}

export class ConfigError extends Error {}

/** loadConfig reads the environment, then flags (`--port 0` or `--port=0`). */
export function loadConfig(source: { env: Record<string, string | undefined>; argv: string[] }): PembaConfig {
  const config: PembaConfig = { ...DEFAULTS }
  const raw = new Map<keyof PembaConfig, string>()
  for (const key of Object.keys(ENV) as (keyof PembaConfig)[]) {
    const v = source.env[ENV[key]]
    if (v !== undefined && v !== '') raw.set(key, v)
  }
  const flags = new Map<string, keyof PembaConfig>()
  for (const key of Object.keys(ENV) as (keyof PembaConfig)[]) flags.set(flagName(key), key)
  for (let i = 0; i < source.argv.length; i++) {
    const arg = source.argv[i]
    if (!arg.startsWith('--')) continue
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const key = flags.get(name)
    if (!key) throw new ConfigError(`unknown flag ${name}`)
    const value = eq === -1 ? source.argv[++i] : arg.slice(eq + 1)
    if (value === undefined) throw new ConfigError(`flag ${name} needs a value`)
    raw.set(key, value)
  }
  for (const [key, value] of raw) {
    if (typeof DEFAULTS[key] === 'number') {
      const n = Number(value)
      if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${ENV[key]} must be a non-negative integer, got '${value}'`)
      if (key === 'port' && n > 65535) throw new ConfigError(`${ENV[key]} must be at most 65535`)
      ;(config as unknown as Record<string, number>)[key] = n
    } else {
      ;(config as unknown as Record<string, string>)[key] = value
    }
  }
  if (config.migrations !== 'auto' && config.migrations !== 'check') {
    throw new ConfigError(`${ENV.migrations} must be 'auto' or 'check', got '${config.migrations}'`)
  }
  if (config.pgPoolSize < 1) throw new ConfigError(`${ENV.pgPoolSize} must be at least 1`)
  checkHttpLimits(config)
  checkDecisionLogSettings(config)
  const oneOf: [keyof PembaConfig, readonly string[]][] = [
    ['logLevel', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']],
    ['logFormat', ['json', 'pretty']],
    ['accessLog', ['on', 'off']],
    ['createDirs', ['on', 'off']],
  ]
  for (const [key, allowed] of oneOf) {
    if (!allowed.includes(config[key] as string)) {
      throw new ConfigError(`${ENV[key]} must be one of ${allowed.join(', ')}, got '${config[key]}'`)
    }
  }
  if (config.tupleIndexPreload !== 'on' && config.tupleIndexPreload !== 'off') {
    throw new ConfigError(`${ENV.tupleIndexPreload} must be 'on' or 'off', got '${config.tupleIndexPreload}'`)
  }
  for (const key of ['jitMaxDuration', 'jitRequestTtl'] as const) {
    const ms = parseDuration(config[key])
    if (ms === undefined || ms <= 0) {
      throw new ConfigError(
        `${ENV[key]} must be a positive ISO 8601 duration such as PT8H, got '${config[key]}'`,
      )
    }
  }
  if (config.tokenClockSkewSeconds > 300) {
    throw new ConfigError(`${ENV.tokenClockSkewSeconds} must be at most 300`)
  }
  try {
    checkAuthSettings(config)
  } catch (e) {
    if (e instanceof AuthSettingsError) throw new ConfigError(e.message)
    throw e
  }
  parseDatabaseUrl(config.databaseUrl)
  return config
}

/**
 * checkHttpLimits refuses HTTP server limits node:http would reject or that would leave a slow
 * client holding a socket for ever: the headers deadline must be set and fit in the request's.
 */
function checkHttpLimits(config: PembaConfig): void {
  if (config.maxHeaderBytes < 1024) throw new ConfigError(`${ENV.maxHeaderBytes} must be at least 1024`)
  if (config.headersTimeoutMs < 1) throw new ConfigError(`${ENV.headersTimeoutMs} must be at least 1`)
  if (config.requestTimeoutMs > 0 && config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(`${ENV.headersTimeoutMs} must not exceed ${ENV.requestTimeoutMs}`)
  }
}

/** checkDecisionLogSettings refuses a decision-log setting that cannot work. */
function checkDecisionLogSettings(config: PembaConfig): void {
  if (config.decisionLog !== 'on' && config.decisionLog !== 'off') {
    throw new ConfigError(`${ENV.decisionLog} must be 'on' or 'off', got '${config.decisionLog}'`)
  }
  for (const key of ['decisionLogBatch', 'decisionLogFlushMs'] as const) {
    if (config[key] < 1) throw new ConfigError(`${ENV[key]} must be at least 1`)
  }
  if (config.decisionLogBufferMax < config.decisionLogBatch) {
    throw new ConfigError(`${ENV.decisionLogBufferMax} must be at least ${ENV.decisionLogBatch} (${config.decisionLogBatch})`)
  }
  const retention = parseDuration(config.decisionLogRetention)
  if (retention === undefined || retention <= 0) {
    throw new ConfigError(
      `${ENV.decisionLogRetention} must be a positive ISO 8601 duration such as P30D, got '${config.decisionLogRetention}'`,
    )
  }
}

/**
 * What a database URL names: the backend's name as `dialect`, and what the backend made of the
 * URL, e.g. `{ dialect: 'sqlite', filename: './data/pemba.db' }` or
 * `{ dialect: 'postgres', url: 'postgres://…' }`.
 */
export type DatabaseTarget = { readonly dialect: string } & Record<string, unknown>

/**
 * parseDatabaseUrl reads a URL with the backend registry (src/store/sql/backends.ts): today
 * `sqlite:<path>`, `sqlite://<path>`, `sqlite::memory:`, and `postgres://…` / `postgresql://…`
 * (node-postgres connection strings, passed on as they are).
 */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  const { backend, target } = databaseBackend(url)
  return { dialect: backend.name, ...target }
}

/** databaseBackend: the backend that serves `url` and its target, or a ConfigError naming the setting. */
export function databaseBackend(url: string): DatabaseChoice {
  try {
    return chooseBackend(url)
  } catch (e) {
    if (e instanceof UnsupportedDatabaseUrl || e instanceof InvalidDatabaseUrl) {
      throw new ConfigError(`PEMBA_DATABASE_URL '${url}' ${e.message}`)
    }
    throw e
  }
}
