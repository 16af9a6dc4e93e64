/**
 * Every setting of Pemba, once: one zod schema whose fields carry the setting's environment
 * variable, help group and description (in the `settingsMeta` registry) and its default (the
 * field's `.default()`). The command-line flag (`--database-url`) and the config-file key
 * (`database-url`) are the key spelled in kebab case. loadConfig (load.ts) parses with this
 * schema, `--help` (options.ts) and the settings table of docs/configuration.md
 * (scripts/docs-settings.ts) are printed from it.
 *
 * Adding a setting is one field here: `name: integer('PEMBA_NAME').default(…)` with its
 * `meta(…)`; `PembaConfig` follows.
 *
 * Every value arrives as text (an environment variable, a flag, or a config-file value turned
 * into text) and each field parses and checks it, with a message that names the environment
 * variable and repeats the value.
 *
 * @module
 */
import { dirname, resolve } from 'node:path'
import { existsSync } from 'node:fs'
import { z } from 'zod'
import { AuthSettingsError, checkAuthSettings } from '../auth/settings.ts'
import { parseDuration } from '../service/duration.ts'
import { chooseBackend, UnsupportedDatabaseUrl, type DatabaseChoice } from '../store/sql/backends.ts'
import { InvalidDatabaseUrl } from '../store/sql/backend.ts'
import { ReadDatabaseUrlError, readDatabaseUrls } from './read-urls.ts'
import { BrowserSettingError, parseCorsOrigins } from '../api/cors.ts'
import { parseAllowedHosts } from '../api/host-check.ts'
import { splitHostPort } from '../telemetry/metrics-listener.ts'
import { duration, integer, oneOf, onOff, parsedBy, workerCount } from './setting-types.ts'
import { AuthzenSettingError, parsePublicUrl, parseTrustProxy } from '../api/authzen/settings.ts'
import { GatewayRoutesError, loadGatewayRoutes } from '../service/gateway/route-file.ts'
import { JwksSettingError, parseJwksAllowedHosts } from '../service/jwks-guard.ts'

/** What `--help` and the documentation say about a setting. */
export interface SettingMeta {
  /** The environment variable, `PEMBA_PORT`. */
  env: string
  /** The help section it is listed under. */
  group: string
  /** One sentence or two, for `--help` and docs/configuration.md. */
  description: string
  /** The value's form as `--help` shows it after the flag: `<n>`, `<on|off>`. */
  value: string
}

/** The registry that ties each field of the schema to its SettingMeta. */
const settingsMeta = z.registry<SettingMeta>()

const GROUP = {
  server: 'Server',
  database: 'Database',
  limits: 'Limits',
  caches: 'Caches and tuple index',
  access: 'Access requests, tokens and expiry',
  decisions: 'Decision log',
  auth: 'Authentication',
  telemetry: 'Logs and metrics',
  browsers: 'Browsers and hosts',
  authzen: 'AuthZEN',
  gateway: 'Gateway',
  overload: 'Overload',
} as const

/** ConfigError: a setting that cannot work; its message names the setting (never a secret). */
export class ConfigError extends Error {}

/**
 * databaseBackend: the backend that serves `url` and its target, or a ConfigError naming
 * PEMBA_DATABASE_URL.
 */
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

/** meta attaches a setting's description to its field. */
function meta<S extends z.ZodType>(schema: S, m: SettingMeta): S {
  settingsMeta.add(schema, m)
  return schema
}

const n = '<n>'
const ms = '<ms>'

/** The fields of the configuration, in the order `--help` and the docs list them. */
export const settingsShape = {
  host: meta(z.string().default('127.0.0.1'), {
    env: 'PEMBA_HOST', group: GROUP.server, value: '<address>',
    description: 'The address the API listens on. Beyond loopback, turn authentication on.',
  }),
  port: meta(integer('PEMBA_PORT', { max: 65535 }).default(8080), {
    env: 'PEMBA_PORT', group: GROUP.server, value: '<port>',
    description: 'The API port; 0 picks a free one (the listening line says which).',
  }),
  workers: meta(workerCount('PEMBA_WORKERS').default(1), {
    env: 'PEMBA_WORKERS', group: GROUP.server, value: '<n|auto>',
    description:
      'Worker processes serving the API port together, each with its own engine, caches and tuple index (memory × n); `auto` = one per available core. Above 1 a primary process starts, watches and restarts them, and serves PEMBA_METRICS_ADDR summed over them. Not with `sqlite::memory:`.',
  }),
  databaseUrl: meta(parsedBy(databaseBackend, ConfigError, false).default('sqlite:./data/pemba.db'), {
    env: 'PEMBA_DATABASE_URL', group: GROUP.database, value: '<url>',
    description:
      '`sqlite:<path>`, or `sqlite::memory:` for a store that lives as long as the process, or ' +
      '`postgres://user:password@host:5432/db` (also `postgresql://`). A SQLite file\'s directory must exist unless ' +
      '--create-dirs (./data is always created).',
  }),
  createDirs: meta(onOff('PEMBA_CREATE_DIRS').default('off'), {
    env: 'PEMBA_CREATE_DIRS', group: GROUP.database, value: '[on|off]',
    description: '`on` creates a SQLite file\'s missing directory; `off` refuses to start (./data is always created).',
  }),
  migrations: meta(oneOf('PEMBA_MIGRATIONS', ['auto', 'check']).default('auto'), {
    env: 'PEMBA_MIGRATIONS', group: GROUP.database, value: '<auto|check>',
    description:
      '`auto` applies pending migrations at start; `check` refuses to start (exit 1, naming them) while any are ' +
      'pending (run `pemba migrate`).',
  }),
  databaseReadUrl: meta(parsedBy(readDatabaseUrls, ReadDatabaseUrlError).default(''), {
    env: 'PEMBA_DATABASE_READ_URL', group: GROUP.database, value: '<url,…>',
    description:
      'PostgreSQL streaming standbys of PEMBA_DATABASE_URL (comma-separated `postgres://` URLs) for the reads that may ' +
      'lag: MINIMIZE_LATENCY checks and lists, and the changelog reads that bring the tuple index to their revision. A ' +
      'standby is used only once it has replayed the revision a request reads and while it lags by at most ' +
      'PEMBA_CHECK_CACHE_STALENESS_MS; one that lags more or is down is skipped (its reads go to the primary). Writes and ' +
      'HIGHER_CONSISTENCY read only what the primary has committed by the request. A standby must follow this very database ' +
      'and schema (checked at start). Empty: every read goes to the primary (docs/scale.md).',
  }),
  pgPoolSize: meta(integer('PEMBA_PG_POOL_SIZE', { min: 1 }).default(10), {
    env: 'PEMBA_PG_POOL_SIZE', group: GROUP.database, value: n,
    description: 'PostgreSQL connections per process.',
  }),
  pgStatementTimeoutMs: meta(integer('PEMBA_PG_STATEMENT_TIMEOUT_MS').default(5000), {
    env: 'PEMBA_PG_STATEMENT_TIMEOUT_MS', group: GROUP.database, value: ms,
    description: "`statement_timeout` of each PostgreSQL connection; 0 = the server's.",
  }),
  dbStartupTimeoutMs: meta(integer('PEMBA_DB_STARTUP_TIMEOUT_MS').default(30_000), {
    env: 'PEMBA_DB_STARTUP_TIMEOUT_MS', group: GROUP.database, value: ms,
    description: 'How long to keep retrying an unreachable database at start; 0 = fail at once.',
  }),
  readyTimeoutMs: meta(integer('PEMBA_READY_TIMEOUT_MS').default(1000), {
    env: 'PEMBA_READY_TIMEOUT_MS', group: GROUP.database, value: ms,
    description: 'How long /readyz waits for the database before answering 503.',
  }),
  sqliteSynchronous: meta(oneOf('PEMBA_SQLITE_SYNCHRONOUS', ['full', 'normal']).default('full'), {
    env: 'PEMBA_SQLITE_SYNCHRONOUS', group: GROUP.database, value: '<full|normal>',
    description:
      "SQLite's `synchronous` pragma: `full` syncs every commit to disk (an acknowledged write survives power " +
      'loss); `normal` survives a crash of the process but may lose the last commits on power loss (docs/failure-behaviour.md).',
  }),
  deletedStoreRetention: meta(duration('PEMBA_DELETED_STORE_RETENTION', 'P7D').default('P7D'), {
    env: 'PEMBA_DELETED_STORE_RETENTION', group: GROUP.database, value: '<ISO 8601>',
    description:
      'How long a deleted store\'s data (tuples, models, changes, decisions, …) is kept before the expiry sweep ' +
      '(PEMBA_EXPIRY_SWEEP_INTERVAL_MS) purges it; every route of the store answers 404 from the moment it is deleted (docs/api.md#deleted-stores).',
  }),
  maxTuplesPerWrite: meta(integer('PEMBA_MAX_TUPLES_PER_WRITE').default(100), {
    env: 'PEMBA_MAX_TUPLES_PER_WRITE', group: GROUP.limits, value: n,
    description: 'Writes plus deletes in one Write request.',
  }),
  maxTypesPerModel: meta(integer('PEMBA_MAX_TYPES_PER_MODEL').default(100), {
    env: 'PEMBA_MAX_TYPES_PER_MODEL', group: GROUP.limits, value: n,
    description: 'Type definitions in one authorization model.',
  }),
  maxModelSizeBytes: meta(integer('PEMBA_MAX_MODEL_SIZE_BYTES').default(256 * 1024), {
    env: 'PEMBA_MAX_MODEL_SIZE_BYTES', group: GROUP.limits, value: n,
    description: "An authorization model's serialized size.",
  }),
  maxChecksPerBatch: meta(integer('PEMBA_MAX_CHECKS_PER_BATCH').default(50), {
    env: 'PEMBA_MAX_CHECKS_PER_BATCH', group: GROUP.limits, value: n,
    description: 'Checks in one BatchCheck request.',
  }),
  resolveNodeLimit: meta(integer('PEMBA_RESOLVE_NODE_LIMIT').default(25), {
    env: 'PEMBA_RESOLVE_NODE_LIMIT', group: GROUP.limits, value: n,
    description: 'Rewrite hops before `authorization_model_resolution_too_complex`.',
  }),
  maxDispatchesPerRequest: meta(integer('PEMBA_MAX_DISPATCHES_PER_REQUEST').default(200_000), {
    env: 'PEMBA_MAX_DISPATCHES_PER_REQUEST', group: GROUP.limits, value: n,
    description: 'Subproblems one request may evaluate.',
  }),
  checkDeadlineMs: meta(integer('PEMBA_CHECK_DEADLINE_MS').default(10_000), {
    env: 'PEMBA_CHECK_DEADLINE_MS', group: GROUP.limits, value: ms,
    description: 'The time budget of one check or expand.',
  }),
  listMaxResults: meta(integer('PEMBA_LIST_MAX_RESULTS').default(100_000), {
    env: 'PEMBA_LIST_MAX_RESULTS', group: GROUP.limits, value: n,
    description: 'ListObjects and ListUsers stop (and say so) after this many results; 0 = no limit.',
  }),
  listDeadlineMs: meta(integer('PEMBA_LIST_DEADLINE_MS').default(30_000), {
    env: 'PEMBA_LIST_DEADLINE_MS', group: GROUP.limits, value: ms,
    description: 'ListObjects, ListUsers, the AuthZEN searches and reach stop (and say so) after this long.',
  }),
  maxConditionCost: meta(integer('PEMBA_MAX_CONDITION_COST').default(100), {
    env: 'PEMBA_MAX_CONDITION_COST', group: GROUP.limits, value: n,
    description: "The CEL evaluation budget of one condition (OpenFGA's cost units).",
  }),
  maxDelegationChain: meta(integer('PEMBA_MAX_DELEGATION_CHAIN').default(4), {
    env: 'PEMBA_MAX_DELEGATION_CHAIN', group: GROUP.limits, value: n,
    description: 'Principals an `on_behalf_of` chain may name.',
  }),
  bodyLimitBytes: meta(integer('PEMBA_BODY_LIMIT_BYTES').default(1024 * 1024), {
    env: 'PEMBA_BODY_LIMIT_BYTES', group: GROUP.limits, value: n,
    description: 'The largest request body, with or without a Content-Length (larger: 413).',
  }),
  maxHeaderBytes: meta(integer('PEMBA_MAX_HEADER_BYTES', { min: 1024 }).default(16 * 1024), {
    env: 'PEMBA_MAX_HEADER_BYTES', group: GROUP.limits, value: n,
    description: 'The request line and headers together (larger: 431).',
  }),
  headersTimeoutMs: meta(integer('PEMBA_HEADERS_TIMEOUT_MS', { min: 1 }).default(10_000), {
    env: 'PEMBA_HEADERS_TIMEOUT_MS', group: GROUP.limits, value: ms,
    description: 'How long a client may take to send the request headers (then 408 and the connection is closed).',
  }),
  requestTimeoutMs: meta(integer('PEMBA_REQUEST_TIMEOUT_MS').default(30_000), {
    env: 'PEMBA_REQUEST_TIMEOUT_MS', group: GROUP.limits, value: ms,
    description: 'How long a client may take to send the whole request (then 408); 0 = no limit.',
  }),
  keepAliveTimeoutMs: meta(integer('PEMBA_KEEP_ALIVE_TIMEOUT_MS').default(5_000), {
    env: 'PEMBA_KEEP_ALIVE_TIMEOUT_MS', group: GROUP.limits, value: ms,
    description: 'How long an idle keep-alive connection stays open.',
  }),
  checkCacheSize: meta(integer('PEMBA_CHECK_CACHE_SIZE').default(100_000), {
    env: 'PEMBA_CHECK_CACHE_SIZE', group: GROUP.caches, value: n,
    description: 'Answers held by the cross-request check cache (about 450 bytes each; docs/memory.md); 0 turns it off.',
  }),
  checkCacheStalenessMs: meta(integer('PEMBA_CHECK_CACHE_STALENESS_MS').default(1000), {
    env: 'PEMBA_CHECK_CACHE_STALENESS_MS', group: GROUP.caches, value: ms,
    description: 'How stale a `MINIMIZE_LATENCY` answer may be on a replica (or process) that did not make the write.',
  }),
  tupleCacheSize: meta(integer('PEMBA_TUPLE_CACHE_SIZE').default(500_000), {
    env: 'PEMBA_TUPLE_CACHE_SIZE', group: GROUP.caches, value: n,
    description:
      'Tuples held by the working set, the cross-request tuple cache of stores not in the tuple index (too large for ' +
      'it, or while it is built): recently read objects and users with their whole tuple lists, kept fresh from the ' +
      'changelog, so a write does not empty it (about 220 bytes each, one more per 256 bytes of condition context); 0 ' +
      'turns it off.',
  }),
  tupleIndexMaxTuples: meta(integer('PEMBA_TUPLE_INDEX_MAX_TUPLES').default(2_000_000), {
    env: 'PEMBA_TUPLE_INDEX_MAX_TUPLES', group: GROUP.caches, value: n,
    description:
      'Tuples the in-memory tuple index holds across stores (about 40–50 bytes each, ids included); a store that does not fit is read from the database. 0 turns it off. ' +
      'Not counted, per store: up to ~40 MiB of recently read lists, changes not yet merged (up to an eighth of its tuples, ~100 bytes each) and, during a merge, a second copy of its arrays.',
  }),
  tupleIndexPreload: meta(onOff('PEMBA_TUPLE_INDEX_PRELOAD').default('off'), {
    env: 'PEMBA_TUPLE_INDEX_PRELOAD', group: GROUP.caches, value: '[on|off]',
    description:
      '`on` reads every store into the tuple index (as far as the budget allows) before listening; `off` reads a ' +
      'store on its first request.',
  }),
  membershipClosure: meta(onOff('PEMBA_MEMBERSHIP_CLOSURE').default('on'), {
    env: 'PEMBA_MEMBERSHIP_CLOSURE', group: GROUP.caches, value: '[on|off]',
    description:
      '`on` keeps, per store, every subject\'s groups for relations that are pure recursive membership (e.g. ' +
      '`member: [user, group#member]`), maintained from the changelog, so checks and lists do not walk nested ' +
      'groups; `off` walks them on every request.',
  }),
  membershipClosureMaxEntries: meta(integer('PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES', { min: 1 }).default(250_000), {
    env: 'PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES', group: GROUP.caches, value: n,
    description:
      'Membership closure entries (one per subject and group it is in, directly or through other groups; about ' +
      '340 bytes each, so the default is about 85 MiB) held across stores, builds in progress included; a store ' +
      'whose groups do not fit is walked, and tried again after a back-off (1 minute, doubling up to an hour) ' +
      'only once a tenth as many changes as its group tuples have been written since.',
  }),
  modelCacheSize: meta(integer('PEMBA_MODEL_CACHE_SIZE', { min: 1 }).default(1000), {
    env: 'PEMBA_MODEL_CACHE_SIZE', group: GROUP.caches, value: n,
    description:
      'Compiled authorization models kept in memory, and stores whose latest model id is remembered (a few KiB to ' +
      'a few MiB per model, with its size); past it the least recently used is read and compiled again.',
  }),
  expirySweepIntervalMs: meta(integer('PEMBA_EXPIRY_SWEEP_INTERVAL_MS').default(60_000), {
    env: 'PEMBA_EXPIRY_SWEEP_INTERVAL_MS', group: GROUP.access, value: ms,
    description:
      'How often expired tuples are deleted, overdue access requests marked expired and deleted stores purged; 0 turns it off ' +
      '(expired tuples stop granting at once either way).',
  }),
  jitMaxDuration: meta(duration('PEMBA_JIT_MAX_DURATION', 'PT8H').default('PT8H'), {
    env: 'PEMBA_JIT_MAX_DURATION', group: GROUP.access, value: '<ISO 8601>',
    description: 'The longest grant an access request may ask for.',
  }),
  jitRequestTtl: meta(duration('PEMBA_JIT_REQUEST_TTL', 'PT8H').default('PT24H'), {
    env: 'PEMBA_JIT_REQUEST_TTL', group: GROUP.access, value: '<ISO 8601>',
    description: 'How long an access request waits for a decision.',
  }),
  tokenClockSkewSeconds: meta(integer('PEMBA_TOKEN_CLOCK_SKEW_SECONDS', { max: 300 }).default(30), {
    env: 'PEMBA_TOKEN_CLOCK_SKEW_SECONDS', group: GROUP.access, value: '<s>',
    description: "Leeway on `exp` and `nbf` of a check's `subject_token` (at most 300).",
  }),
  decisionLog: meta(onOff('PEMBA_DECISION_LOG').default('on'), {
    env: 'PEMBA_DECISION_LOG', group: GROUP.decisions, value: '[on|off]',
    description: '`on` records every decision; `off` none (docs/decision-log.md).',
  }),
  decisionLogBatch: meta(integer('PEMBA_DECISION_LOG_BATCH', { min: 1 }).default(500), {
    env: 'PEMBA_DECISION_LOG_BATCH', group: GROUP.decisions, value: n,
    description: 'A flush starts once this many decisions wait.',
  }),
  decisionLogFlushMs: meta(integer('PEMBA_DECISION_LOG_FLUSH_MS', { min: 1 }).default(200), {
    env: 'PEMBA_DECISION_LOG_FLUSH_MS', group: GROUP.decisions, value: ms,
    description: 'Waiting decisions are flushed at least this often.',
  }),
  decisionLogBufferMax: meta(integer('PEMBA_DECISION_LOG_BUFFER_MAX').default(20_000), {
    env: 'PEMBA_DECISION_LOG_BUFFER_MAX', group: GROUP.decisions, value: n,
    description: 'Decisions that may wait; beyond it they are dropped and counted (`pemba_decisions_dropped_total`).',
  }),
  decisionLogRetention: meta(duration('PEMBA_DECISION_LOG_RETENTION', 'P30D').default('P30D'), {
    env: 'PEMBA_DECISION_LOG_RETENTION', group: GROUP.decisions, value: '<ISO 8601>',
    description: 'How long decisions are kept.',
  }),
  authMode: meta(oneOf('PEMBA_AUTH_MODE', ['none', 'preshared', 'oidc']).default('none'), {
    env: 'PEMBA_AUTH_MODE', group: GROUP.auth, value: '<none|preshared|oidc>',
    description: 'How API clients authenticate (docs/authentication.md).',
  }),
  authPresharedKeys: meta(z.string().default(''), {
    env: 'PEMBA_AUTH_PRESHARED_KEYS', group: GROUP.auth, value: '<name=key,…>',
    description:
      '`preshared`: `<client name>=<key>,…` (keys of 16+ characters); each name is the client `client:<name>`. ' +
      'Prefer the variable to the flag, which `ps` shows.',
  }),
  authOidcIssuer: meta(z.string().default(''), {
    env: 'PEMBA_AUTH_OIDC_ISSUER', group: GROUP.auth, value: '<iss>',
    description: '`oidc`: the `iss` client tokens must carry.',
  }),
  authOidcAudience: meta(z.string().default(''), {
    env: 'PEMBA_AUTH_OIDC_AUDIENCE', group: GROUP.auth, value: '<aud>',
    description: '`oidc`: the `aud` client tokens must carry.',
  }),
  authOidcJwksUri: meta(z.string().default(''), {
    env: 'PEMBA_AUTH_OIDC_JWKS_URI', group: GROUP.auth, value: '<https url>',
    description: "`oidc`: the issuer's key set (https; http only on loopback).",
  }),
  authOidcJwksFile: meta(z.string().default(''), {
    env: 'PEMBA_AUTH_OIDC_JWKS_FILE', group: GROUP.auth, value: '<path>',
    description: '`oidc`: a local JWKS file instead of the URI (public keys only).',
  }),
  authOidcClockSkewSeconds: meta(integer('PEMBA_AUTH_OIDC_CLOCK_SKEW_SECONDS').default(30), {
    env: 'PEMBA_AUTH_OIDC_CLOCK_SKEW_SECONDS', group: GROUP.auth, value: '<s>',
    description: '`oidc`: tolerance on `exp` and `nbf` of client tokens (at most 300).',
  }),
  authJwksCooldownMs: meta(integer('PEMBA_AUTH_JWKS_COOLDOWN_MS').default(30_000), {
    env: 'PEMBA_AUTH_JWKS_COOLDOWN_MS', group: GROUP.auth, value: ms,
    description: 'The shortest time between two fetches of one JWKS URI (a token with an unknown `kid` refetches at most this often).',
  }),
  jwksAllowPrivate: meta(onOff('PEMBA_JWKS_ALLOW_PRIVATE').default('off'), {
    env: 'PEMBA_JWKS_ALLOW_PRIVATE', group: GROUP.auth, value: '[on|off]',
    description:
      "`on` lets a store's token issuer fetch its `jwks_uri` from any address (loopback, link-local, private and every other " +
      'special-purpose block); `off` refuses them (checked after DNS resolution and on every redirect), so a store admin cannot make Pemba call internal services.',
  }),
  jwksAllowedHosts: meta(parsedBy(parseJwksAllowedHosts, JwksSettingError).default(''), {
    env: 'PEMBA_JWKS_ALLOWED_HOSTS', group: GROUP.auth, value: '<hosts>',
    description:
      "Host names (matched exactly), IP addresses or CIDR blocks a token issuer's `jwks_uri` may reach even though they are private " +
      '(`keys.internal,10.1.0.5,fd00::/8`); a name lets through whatever it resolves to.',
  }),
  jwksMaxBytes: meta(integer('PEMBA_JWKS_MAX_BYTES', { min: 1024 }).default(262_144), {
    env: 'PEMBA_JWKS_MAX_BYTES', group: GROUP.auth, value: n,
    description: "The largest JWKS document fetched from a token issuer's `jwks_uri`; a larger one is refused (the issuer's keys are then unavailable).",
  }),
  jwksTimeoutMs: meta(integer('PEMBA_JWKS_TIMEOUT_MS', { min: 1 }).default(5000), {
    env: 'PEMBA_JWKS_TIMEOUT_MS', group: GROUP.auth, value: ms,
    description: "How long one fetch of a token issuer's `jwks_uri` (lookups, connections, redirects and body) may take.",
  }),
  authAdminClients: meta(z.string().default(''), {
    env: 'PEMBA_AUTH_ADMIN_CLIENTS', group: GROUP.auth, value: '<names>',
    description: 'Clients made system admins at every start (`provisioner,ops`).',
  }),
  logLevel: meta(oneOf('PEMBA_LOG_LEVEL', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'), {
    env: 'PEMBA_LOG_LEVEL', group: GROUP.telemetry, value: '<level>',
    description: 'The least severe log line written: `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`.',
  }),
  logFormat: meta(oneOf('PEMBA_LOG_FORMAT', ['json', 'pretty']).default('json'), {
    env: 'PEMBA_LOG_FORMAT', group: GROUP.telemetry, value: '<json|pretty>',
    description: '`json` (one object a line, on stdout) or `pretty` (for people at a terminal).',
  }),
  accessLog: meta(onOff('PEMBA_ACCESS_LOG').default('on'), {
    env: 'PEMBA_ACCESS_LOG', group: GROUP.telemetry, value: '[on|off]',
    description: '`on` logs one line per request; `off` none.',
  }),
  metricsAddr: meta(parsedBy(splitHostPort, Error).default(''), {
    env: 'PEMBA_METRICS_ADDR', group: GROUP.telemetry, value: '<host:port>',
    description: '`host:port` of a separate listener serving /metrics without API auth; empty = none (/metrics stays on the API port).',
  }),
  corsOrigins: meta(parsedBy(parseCorsOrigins, BrowserSettingError).default(''), {
    env: 'PEMBA_CORS_ORIGINS', group: GROUP.browsers, value: '<origins>',
    description:
      'Origins whose web pages may call the API, as browsers send them (`https://console.example.com,http://localhost:3000`; `*`: any origin, without credentials); empty = CORS off. Writes from other origins are refused.',
  }),
  allowedHosts: meta(parsedBy(parseAllowedHosts, BrowserSettingError).default(''), {
    env: 'PEMBA_ALLOWED_HOSTS', group: GROUP.browsers, value: '<names>',
    description:
      'With authentication off, the host names a request may be addressed to besides IP addresses, localhost and PEMBA_HOST (a defence against DNS rebinding).',
  }),
  console: meta(oneOf('PEMBA_CONSOLE', ['on', 'off']).optional(), {
    env: 'PEMBA_CONSOLE', group: GROUP.browsers, value: '<on|off>',
    description:
      'The web console at /console (docs/console.md): static pages that call this API with a token typed in the browser. Default: on when PEMBA_HOST is a loopback address, off otherwise. `on` stops the server if the console was not built (`npm run build`).',
  }),
  publicUrl: meta(parsedBy(parsePublicUrl, AuthzenSettingError).default(''), {
    env: 'PEMBA_PUBLIC_URL', group: GROUP.authzen, value: '<url>',
    description:
      'The absolute http(s) URL clients reach Pemba at (`https://authz.example.com`, a path prefix allowed; no query or fragment): AuthZEN discovery and access requests build their absolute URLs from it, and discovery\'s `signed_metadata` is sent only when it is set. With a path prefix P, the discovery documents are also served at `/.well-known/authzen-configuration<P>/…` (RFC 8615). Empty = the listening scheme and the request\'s Host (behind TLS, set it: Pemba itself serves http).',
  }),
  trustProxy: meta(parsedBy(parseTrustProxy, AuthzenSettingError).default('off'), {
    env: 'PEMBA_TRUST_PROXY', group: GROUP.authzen, value: '<off|on|addresses>',
    description:
      'Whether X-Forwarded-Proto and X-Forwarded-Host are honoured when PEMBA_PUBLIC_URL is empty: `off` (never), `on` (from every peer: only behind a proxy that sets them), or the proxies\' IP addresses or CIDR blocks (`10.0.0.5,::1,172.16.0.0/12`). Of a list value the last one (the nearest proxy\'s) is taken; a chain of proxies must overwrite the headers.',
  }),
  authzenDefaultStore: meta(z.string().regex(/^$|^[0-9A-HJKMNP-TV-Z]{26}$/, { error: (iss) => `PEMBA_AUTHZEN_DEFAULT_STORE must be a store id (a ULID such as 01JABCDEFGHJKMNPQRSTVWXYZ0), got '${String(iss.input)}'` }).default(''), {
    env: 'PEMBA_AUTHZEN_DEFAULT_STORE', group: GROUP.authzen, value: '<store id>',
    description:
      'A store whose AuthZEN API is also served at the root (`/access/v1/…`, `/.well-known/authzen-configuration`), for gateways configured with a bare PDP URL. Empty = none.',
  }),
  authzenDiscovery: meta(oneOf('PEMBA_AUTHZEN_DISCOVERY', ['authenticated', 'public']).default('authenticated'), {
    env: 'PEMBA_AUTHZEN_DISCOVERY', group: GROUP.authzen, value: '<authenticated|public>',
    description:
      'Who may read the AuthZEN discovery documents: `authenticated` (a client that may check on the store) or `public` (anyone; the document names the store id and endpoints only, and its 200 or 404 tells anyone whether a store id exists).',
  }),
  authzenPageLimit: meta(integer('PEMBA_AUTHZEN_PAGE_LIMIT', { min: 1 }).default(100), {
    env: 'PEMBA_AUTHZEN_PAGE_LIMIT', group: GROUP.authzen, value: n,
    description: 'Results per AuthZEN search page when the request gives no `page.limit` (`limit: 0` asks only for `page.total`).',
  }),
  authzenPageLimitMax: meta(integer('PEMBA_AUTHZEN_PAGE_LIMIT_MAX', { min: 1 }).default(1000), {
    env: 'PEMBA_AUTHZEN_PAGE_LIMIT_MAX', group: GROUP.authzen, value: n,
    description: 'The largest `page.limit` a search may ask for (more is a 400).',
  }),
  authzenPageTokenTtl: meta(duration('PEMBA_AUTHZEN_PAGE_TOKEN_TTL', 'PT10M').default('PT10M'), {
    env: 'PEMBA_AUTHZEN_PAGE_TOKEN_TTL', group: GROUP.authzen, value: '<ISO 8601>',
    description:
      "How long a paged search's snapshot (and so its `next_token`) stays valid; later pages answer at the first page's revision.",
  }),
  authzenSearchMaxResults: meta(integer('PEMBA_AUTHZEN_SEARCH_MAX_RESULTS', { min: 1 }).default(10_000), {
    env: 'PEMBA_AUTHZEN_SEARCH_MAX_RESULTS', group: GROUP.authzen, value: n,
    description:
      'The most results one AuthZEN search may have: a search with more answers 400 `exceeded_entity_limit` rather than a partial list.',
  }),
  authzenSearchSnapshotsMax: meta(integer('PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX', { min: 1 }).default(1000), {
    env: 'PEMBA_AUTHZEN_SEARCH_SNAPSHOTS_MAX', group: GROUP.authzen, value: n,
    description:
      "The most paged AuthZEN searches a store may have open (stored answers not yet expired): one more answers 429 `resource_exhausted` until one expires (PEMBA_AUTHZEN_PAGE_TOKEN_TTL). A repeated first page of the same search at the same revision reuses its answer and does not count again.",
  }),
  authzenSearchCacheBytes: meta(integer('PEMBA_AUTHZEN_SEARCH_CACHE_BYTES').default(33_554_432), {
    env: 'PEMBA_AUTHZEN_SEARCH_CACHE_BYTES', group: GROUP.authzen, value: n,
    description:
      "Memory (about bytes) for recent paged searches' answers on each replica, so later pages read no database row; each is dropped when its page tokens expire. 0 = none (every later page reads its row).",
  }),
  authzenDenialTtl: meta(
    duration('PEMBA_AUTHZEN_DENIAL_TTL', 'PT10M')
      // A binding token's `exp` is to be short (ARAP §5.3).
      .refine((v) => (parseDuration(v) ?? 0) <= 86_400_000, { error: 'PEMBA_AUTHZEN_DENIAL_TTL must be at most P1D (a binding token is short-lived)' })
      .default('PT10M'),
    {
      env: 'PEMBA_AUTHZEN_DENIAL_TTL', group: GROUP.authzen, value: '<ISO 8601>',
      description:
        "How long a requestable denial may be turned into an access request: its `access_request.expires_at` and its binding token's `exp` (at most P1D).",
    },
  ),
  gatewayRoutes: meta(parsedBy(loadGatewayRoutes, GatewayRoutesError).default(''), {
    env: 'PEMBA_GATEWAY_ROUTES', group: GROUP.gateway, value: '<path>',
    description:
      'The YAML file of route templates the gateway decision endpoint (`/stores/{store}/gateway/authorize`, for nginx `auth_request` and Envoy `ext_authz`) matches requests against (docs/gateway.md); read and checked at startup. Empty = the endpoint answers 404 `gateway_not_configured`.',
  }),
  expensiveMaxConcurrent: meta(integer('PEMBA_EXPENSIVE_MAX_CONCURRENT', { min: 1 }).default(8), {
    env: 'PEMBA_EXPENSIVE_MAX_CONCURRENT', group: GROUP.overload, value: n,
    description:
      'Expensive queries (ListObjects, ListUsers, Expand, streamed lists, AuthZEN searches, access reviews, reach) running at once in this process; more wait in the queue.',
  }),
  expensiveMaxConcurrentPerClient: meta(integer('PEMBA_EXPENSIVE_MAX_CONCURRENT_PER_CLIENT', { min: 1 }).default(4), {
    env: 'PEMBA_EXPENSIVE_MAX_CONCURRENT_PER_CLIENT', group: GROUP.overload, value: n,
    description: 'Expensive queries one API client (its id; its peer address when authentication is off) may have running at once; more wait in the queue.',
  }),
  expensiveQueueMax: meta(integer('PEMBA_EXPENSIVE_QUEUE_MAX').default(64), {
    env: 'PEMBA_EXPENSIVE_QUEUE_MAX', group: GROUP.overload, value: n,
    description: 'Expensive queries that may wait for a slot; one more is refused at once with 429 `rate_limited` and `Retry-After`.',
  }),
  expensiveQueueWaitMs: meta(integer('PEMBA_EXPENSIVE_QUEUE_WAIT_MS').default(2000), {
    env: 'PEMBA_EXPENSIVE_QUEUE_WAIT_MS', group: GROUP.overload, value: ms,
    description: 'How long an expensive query may wait for a slot before it is refused with 429 `rate_limited`.',
  }),
  listSliceMs: meta(integer('PEMBA_LIST_SLICE_MS').default(5), {
    env: 'PEMBA_LIST_SLICE_MS', group: GROUP.overload, value: ms,
    description:
      'How long a list, search or expand runs before it lets other requests (health probes, checks) run, then carries on; 0 = never (one list then holds the server until it is done).',
  }),
  rateLimitPerClient: meta(integer('PEMBA_RATE_LIMIT_PER_CLIENT').default(0), {
    env: 'PEMBA_RATE_LIMIT_PER_CLIENT', group: GROUP.overload, value: '<n/s>',
    description:
      'Requests per second each API client (its id; its peer address when authentication is off) may make on every route but /healthz, /readyz and /metrics (a token bucket; the 10,000 most recently seen clients are tracked); beyond it 429 `rate_limited` with `Retry-After`. 0 = no limit.',
  }),
  rateLimitBurst: meta(integer('PEMBA_RATE_LIMIT_BURST').default(0), {
    env: 'PEMBA_RATE_LIMIT_BURST', group: GROUP.overload, value: n,
    description: "Requests a client may make at once above its rate (the bucket's size); 0 = one second's worth.",
  }),
}

/** The configuration: every setting, parsed. */
export type PembaConfig = z.output<z.ZodObject<typeof settingsShape>>

/** A setting's key, `databaseUrl`. */
export type SettingKey = keyof PembaConfig

/** The fields alone: each value parsed and checked on its own. */
const fieldsSchema = z.object(settingsShape)

/** Every default, as the schema gives it. */
export const DEFAULTS: PembaConfig = fieldsSchema.parse({})

/**
 * The whole schema: the fields, then the checks that span several settings, each reported on
 * the setting to change.
 */
export const configSchema = fieldsSchema.superRefine((config, ctx) => {
  const fail = (key: SettingKey, message: string) => ctx.addIssue({ code: 'custom', path: [key], message })
  const env = (key: SettingKey) => settingMeta(key).env
  if (config.requestTimeoutMs > 0 && config.headersTimeoutMs > config.requestTimeoutMs) {
    fail('headersTimeoutMs', `${env('headersTimeoutMs')} must not exceed ${env('requestTimeoutMs')}`)
  }
  if (config.decisionLogBufferMax < config.decisionLogBatch) {
    fail(
      'decisionLogBufferMax',
      `${env('decisionLogBufferMax')} must be at least ${env('decisionLogBatch')} (${config.decisionLogBatch})`,
    )
  }
  if (config.authzenPageLimit > config.authzenPageLimitMax) {
    fail(
      'authzenPageLimit',
      `${env('authzenPageLimit')} must not exceed ${env('authzenPageLimitMax')} (${config.authzenPageLimitMax})`,
    )
  }
  try {
    checkAuthSettings(config)
  } catch (e) {
    if (!(e instanceof AuthSettingsError)) throw e
    fail('authMode', e.message)
  }
  // Each worker would open a database of its own, and see none of the others' writes.
  if (config.workers !== 1 && isSqliteMemory(config)) {
    fail(
      'workers',
      `${env('workers')}=${config.workers} cannot be used with ${env('databaseUrl')}=${config.databaseUrl}: each worker process ` +
        `would have a database of its own; use a SQLite file or PostgreSQL, or ${env('workers')}=1`,
    )
  }
  if (config.databaseReadUrl.trim() !== '' && databaseBackend(config.databaseUrl).backend.name !== 'postgres') {
    fail(
      'databaseReadUrl',
      `${env('databaseReadUrl')} needs a PostgreSQL ${env('databaseUrl')} (its standbys replicate it); ` +
        `${env('databaseUrl')} is ${databaseBackend(config.databaseUrl).backend.name}`,
    )
  }
  const missing = missingSqliteDirectory(config)
  if (missing !== undefined) {
    fail(
      'databaseUrl',
      `${env('databaseUrl')} '${config.databaseUrl}' names a file in ${missing}, which does not exist: ` +
        `create it, or start with --create-dirs (PEMBA_CREATE_DIRS=on)`,
    )
  }
})

/** The directory the default database lives in, created whatever PEMBA_CREATE_DIRS says. */
const DEFAULT_DATA_DIR = 'data'

/**
 * missingSqliteDirectory: the directory of a SQLite file that does not exist and may not be
 * created (PEMBA_CREATE_DIRS=off, and not ./data), else undefined.
 */
function missingSqliteDirectory(config: PembaConfig): string | undefined {
  if (config.createDirs === 'on') return undefined
  const { backend, target } = databaseBackend(config.databaseUrl)
  const filename = (target as { filename?: unknown }).filename
  if (backend.name !== 'sqlite' || typeof filename !== 'string' || filename === ':memory:') return undefined
  const dir = dirname(filename)
  if (resolve(dir) === resolve(DEFAULT_DATA_DIR) || existsSync(dir)) return undefined
  return dir
}

/** isSqliteMemory: the database is `sqlite::memory:`, which lives inside one process. */
function isSqliteMemory(config: PembaConfig): boolean {
  const { backend, target } = databaseBackend(config.databaseUrl)
  return backend.name === 'sqlite' && (target as { filename?: unknown }).filename === ':memory:'
}

/** settingMeta: a setting's environment variable, group and description. */
export function settingMeta(key: SettingKey): SettingMeta {
  const m = settingsMeta.get(settingsShape[key])
  if (!m) throw new Error(`setting ${key} has no description`)
  return m
}

/** The keys of every setting, in the schema's order. */
export const SETTING_KEYS = Object.keys(settingsShape) as SettingKey[]

/** kebab: `databaseUrl` → `database-url` (the flag without `--`, and the config-file key). */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
}

/**
 * The configuration file (YAML or JSON, same keys as the flags without `--`) is chosen by this
 * variable or `--config`; it is not a setting of its own.
 */
export const CONFIG_FILE_ENV = 'PEMBA_CONFIG'

export { KNOWN_NON_SETTINGS } from './non-settings.ts'
