/**
 * createPemba wires one Pemba instance from its configuration: the datastore, the services (one
 * per capability: models, checks, lists, writes, stores, …), and the HTTP app. Everything is passed explicitly; nothing is global, so a
 * test can run many instances side by side.
 *
 * @module
 */
import { join } from 'node:path'
import { createCredentialRule } from './core/credentials.ts'
import { createRedactor } from './core/redact.ts'
import { parsePresharedKeys } from './auth/settings.ts'
import type { Hono } from 'hono'
import { createApp, type AppEnv } from './api/app.ts'
import { parsePublicUrl, parseTrustProxy } from './api/authzen/settings.ts'
import { ConfigError, databaseBackend, readDatabaseUrls, type PembaConfig } from './config.ts'
import { consoleAssetsDir, loadConsoleAssets, type ConsoleAssets } from './api/console-assets.ts'
import { isLoopbackHost } from './core/net.ts'
import { createIdGenerator } from './core/ids.ts'
import { DatastoreUnavailable } from './core/errors.ts'
import { AssertionService } from './service/assertions.ts'
import { CheckService } from './service/checks.ts'
import { EvaluationService } from './service/evaluation.ts'
import { HeadRevisions } from './service/head-revisions.ts'
import { ListService } from './service/lists.ts'
import { StoreService } from './service/stores.ts'
import { WriteService } from './service/writes.ts'
import { AccessRequestService } from './service/access-requests.ts'
import { AccessControl } from './auth/access-control.ts'
import { createAuthenticator } from './auth/authenticate.ts'
import { JwksCache } from './service/jwks.ts'
import { JwksFetchGuard, parseJwksAllowedHosts } from './service/jwks-guard.ts'
import { parseAdminClients } from './auth/settings.ts'
import { parseDuration } from './service/duration.ts'
import { ModelService } from './service/models.ts'
import { TokenCheckService } from './service/token-checks.ts'
import { TokenIssuerService } from './service/token-issuers.ts'
import { Sweeper } from './service/sweeper.ts'
import { SearchService } from './service/authzen/search.ts'
import { AuthzenDecider } from './service/authzen/decider.ts'
import { ArapBinding } from './service/authzen/arap-binding.ts'
import { ArapRequestService } from './service/authzen/arap-requests.ts'
import { SigningKeys } from './service/signing-keys.ts'
import { AuthzenEvaluations } from './service/authzen/evaluations.ts'
import { GatewayService } from './service/gateway/gateway.ts'
import { loadGatewayRoutes } from './service/gateway/route-file.ts'
import { DecisionLog, RETENTION_SWEEP_INTERVAL_MS } from './service/decision-log.ts'
import { NO_DECISIONS } from './service/decision-sink.ts'
import type { DecisionStore } from './service/decision-store.ts'
import { withDecisionWriter } from './service/decision-forwarding.ts'
import { ReviewService } from './service/reviews.ts'
import { Admission } from './service/admission.ts'
import { RateLimiter } from './service/rate-limit.ts'
import type { Datastore } from './store/store.ts'
import { MigrationsPendingError } from './store/migrations.ts'
import { ReadReplicaRefused } from './store/sql/backend.ts'
import { TupleIndex } from './store/readers/tuple-index.ts'
import { MembershipClosures } from './store/readers/membership-closure.ts'
import { createLogger, type Logger } from './telemetry/logger.ts'
import { createMetrics, type PembaMetrics } from './telemetry/metrics.ts'
import { ReadinessService, reason } from './service/readiness.ts'
import { OutageTracker } from './service/datastore-outage.ts'
import type { QueryObserver } from './store/ports.ts'
import { tracingFromEnv, type Tracing } from './telemetry/tracing.ts'

export interface Pemba {
  config: PembaConfig
  /** The structured log every part of this instance writes to (src/telemetry/logger.ts). */
  logger: Logger
  /** OpenTelemetry tracing, when the OTEL_* environment turned it on (src/telemetry/tracing.ts). */
  tracing?: Tracing
  app: Hono<AppEnv>
  datastore: Datastore
  models: ModelService
  /** What the queries share: the engine, the caches, the tuple index (and their counters). */
  evaluation: EvaluationService
  /** Admission control of expensive queries (src/service/admission.ts): its slots and queue. */
  admission: Admission
  /** Check, batch check, expand. */
  checks: CheckService
  /** List objects, list users. */
  lists: ListService
  /** Write, import, read, read changes. */
  writes: WriteService
  stores: StoreService
  assertions: AssertionService
  accessRequests: AccessRequestService
  /** API clients' permissions: the system store, decided by the engine (src/auth/access-control.ts). */
  access: AccessControl
  /** JWKS key sets, fetched and cached per URI (client tokens in `oidc` mode, token issuers). */
  jwks: JwksCache
  /** A store's trusted token issuers (`/stores/{store}/token-issuers`). */
  tokenIssuers: TokenIssuerService
  /** Checks whose subject is a `subject_token`. */
  tokenChecks: TokenCheckService
  /** ARAP: requestable denials, binding tokens, approval states and the server's signing keys. */
  authzenBinding: ArapBinding
  /** AuthZEN evaluations in-process (what `POST /stores/{store}/access/v1/evaluation` asks). */
  authzen: AuthzenDecider
  /** Deletes expired tuples and expires overdue access requests; `runOnce()` sweeps on demand. */
  sweeper: Sweeper
  /** Records decisions in batches; `flush()` writes what waits, `sweepOnce()` applies retention. */
  decisions: DecisionLog
  /** Least-privilege reviews (unused grants) and reach. */
  reviews: ReviewService
  /** The Prometheus metrics (`/metrics`, and PEMBA_METRICS_ADDR's listener). */
  metrics: PembaMetrics
  /** What `/readyz` asks: the database, its migrations, the tuple index preload. */
  readiness: ReadinessService
  /** Stops the sweepers, writes the decisions still waiting, then closes the database. */
  close(): Promise<void>
}

export interface PembaOverrides {
  clock?: () => Date
  /** The log to write to; by default one built from PEMBA_LOG_LEVEL / PEMBA_LOG_FORMAT on stdout. */
  logger?: Logger
  logError?: (err: unknown, requestId: string) => void
  /**
   * false: do not start the sweeper's timer (tests advance a fake clock and call
   * `pemba.sweeper.runOnce()` themselves). PEMBA_EXPIRY_SWEEP_INTERVAL_MS=0 does the same.
   */
  sweeper?: boolean
  /**
   * Where the decision log's batches are written instead of this instance's datastore: a
   * cluster worker on SQLite hands them to the primary, the file's one writer
   * (service/decision-forwarding.ts).
   */
  decisionWriter?: Pick<DecisionStore, 'appendDecisions'>
  /**
   * The environment the OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, …) are read
   * from; the CLI passes `process.env`. Absent: tracing is off.
   */
  otelEnv?: Record<string, string | undefined>
  /** Where the built web console is read from; by default dist/console/ (console-assets.ts). */
  consoleDir?: string
}

/** What openDatastore reports to, besides the configuration. */
export interface OpenDatastoreOptions {
  /** Where each failed attempt and idle-connection failure is logged (warn). */
  logger?: Logger
  /** Told each datastore operation's duration (the metrics). */
  observer?: QueryObserver
  /**
   * The outage tracker (service/datastore-outage.ts): told each operation that failed because
   * the database is unavailable; while it says down, idle connections' failures are not logged.
   */
  outage?: Pick<OutageTracker, 'failed' | 'state'>
  /** Hides secrets in what is logged of a read replica's failures (the configured redactor). */
  redact?: (text: string) => string
}

/**
 * DatabaseUnavailableError: the database could not be opened: unreachable for the whole
 * PEMBA_DB_STARTUP_TIMEOUT_MS, or refused (a wrong password, no such database). Its message
 * names PEMBA_DATABASE_URL (password hidden) and the reason; `pemba serve` prints it alone.
 */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DatabaseUnavailableError'
  }
}

/** The first wait between attempts to reach the database at start; it doubles up to STARTUP_RETRY_MAX_MS. */
const STARTUP_RETRY_FIRST_MS = 250
const STARTUP_RETRY_MAX_MS = 5000

/**
 * openDatastore opens the configured database through the backend registry
 * (src/store/sql/backends.ts) and applies its pending migrations, or, with `migrations: 'check'`,
 * throws MigrationsPendingError while any are pending (a SQLite file is then only read, never
 * created). `pemba migrate` migrates through the registry too, whatever the setting.
 *
 * A database that cannot be reached yet (PostgreSQL starting beside Pemba, say) is tried again
 * after 250 ms, 500 ms, 1 s, … up to 5 s apart (±20 %, so replicas spread out), each failure a
 * warn event naming PEMBA_DATABASE_URL with its password hidden, until PEMBA_DB_STARTUP_TIMEOUT_MS
 * has passed (0: no retry); then, or at once for an error retrying cannot fix (a wrong
 * password), it throws DatabaseUnavailableError.
 */
export async function openDatastore(config: PembaConfig, options: OpenDatastoreOptions = {}): Promise<Datastore> {
  const { backend, target } = databaseBackend(config.databaseUrl)
  const where = backend.redactUrl(config.databaseUrl)
  const logger = options.logger
  const started = Date.now()
  for (let attempt = 1; ; attempt++) {
    try {
      return await backend.open(target, {
        poolSize: config.pgPoolSize,
        statementTimeoutMs: config.pgStatementTimeoutMs,
        migrations: config.migrations,
        sqliteSynchronous: config.sqliteSynchronous,
        observer: options.observer,
        onUnavailable: options.outage && ((err) => options.outage!.failed(err)),
        // One connection cut (a failover, pg_terminate_backend) is not an outage: the pool
        // replaces it. During an outage the tracker has said all there is to say.
        onConnectionError: (err) => {
          if (options.outage?.state.down) return
          logger?.info(
            { event: 'database_connection_lost', database: where, reason: reason(err) },
            `an idle connection to ${where} failed (${reason(err)}); the pool opens a new one when needed`,
          )
        },
        onMigrationsApplied: (tags) =>
          logger?.info(
            { event: 'migrations_applied', database: where, migrations: tags },
            `applied ${tags.length} migration(s) to ${where}: ${tags.join(', ')}`,
          ),
        // PostgreSQL standbys for the reads that may lag (docs/scale.md); a standby down is logged, not fatal.
        readUrls: readDatabaseUrls(config.databaseReadUrl),
        readStalenessMs: config.checkCacheStalenessMs,
        replicaLog: logger,
        redact: options.redact,
      })
    } catch (e) {
      if (e instanceof ReadReplicaRefused) throw new DatabaseUnavailableError(e.message, { cause: e })
      // A backend that cannot be unreachable (SQLite, in this process) reports its own errors.
      if (e instanceof MigrationsPendingError || !backend.unreachable) throw e
      const why = reason(e)
      if (!backend.unreachable(e)) {
        throw new DatabaseUnavailableError(`cannot open the database PEMBA_DATABASE_URL=${where}: ${why}`, { cause: e })
      }
      const left = config.dbStartupTimeoutMs - (Date.now() - started)
      if (left <= 0) {
        const tried = config.dbStartupTimeoutMs > 0 ? ` for ${config.dbStartupTimeoutMs} ms (PEMBA_DB_STARTUP_TIMEOUT_MS, ${attempt} attempts)` : ''
        throw new DatabaseUnavailableError(`cannot reach the database PEMBA_DATABASE_URL=${where}${tried}: ${why}`, { cause: e })
      }
      const backoff = Math.min(STARTUP_RETRY_FIRST_MS * 2 ** (attempt - 1), STARTUP_RETRY_MAX_MS)
      const wait = Math.round(Math.min(left, backoff * (0.8 + 0.4 * Math.random())))
      logger?.warn(
        { event: 'database_unreachable', setting: 'PEMBA_DATABASE_URL', database: where, attempt, retry_in_ms: wait, reason: why },
        `cannot reach the database PEMBA_DATABASE_URL=${where} (attempt ${attempt}): ${why}; retrying in ${wait} ms`,
      )
      await new Promise<void>((resolve) => setTimeout(resolve, wait))
    }
  }
}

/**
 * loadConsole reads the built web console when PEMBA_CONSOLE is on (by default when PEMBA_HOST
 * is a loopback address). Asked for but not built stops the start, naming the setting; on by
 * default but not built (a package built without its devDependencies) logs why it is off.
 */
function loadConsole(config: PembaConfig, logger: Logger, dir = consoleAssetsDir()): ConsoleAssets | undefined {
  const explicit = config.console !== undefined
  if ((config.console ?? (isLoopbackHost(config.host) ? 'on' : 'off')) === 'off') return undefined
  const assets = loadConsoleAssets(dir)
  // Asked for explicitly: read (and gzip) it now, so a console that cannot be read stops the
  // start rather than failing its first request; by default it is read at the first request.
  if (assets && explicit) assets.gzippedBytes()
  if (assets) return assets
  const why = `the console is not built (${join(dir, 'index.html')} is missing): run \`npm run build\``
  if (explicit) throw new ConfigError(`PEMBA_CONSOLE=on, but ${why}`)
  logger.warn({ event: 'console_not_built', setting: 'PEMBA_CONSOLE' }, `console off: ${why}`)
  return undefined
}

export async function createPemba(config: PembaConfig, overrides: PembaOverrides = {}): Promise<Pemba> {
  // Everything Pemba logs or echoes back about a request goes through this (src/core/redact.ts).
  const secrets = configuredSecrets(config)
  const redactor = createRedactor(secrets)
  // Identifiers shaped like a credential (a JWT, a configured key in any form) are refused
  // where they enter: checks, lists, writes, access requests, AuthZEN (src/core/credentials.ts).
  const credentials = createCredentialRule(secrets)
  const logger =
    overrides.logger ?? createLogger({ level: config.logLevel, format: config.logFormat, redact: redactor.text })
  // Before anything is opened: a routes file that cannot be used, or a refused OTEL_* value,
  // stops the start with nothing to close (loadConfig has checked the routes file already).
  const gatewayRoutes = config.gatewayRoutes === '' ? undefined : loadGatewayRoutes(config.gatewayRoutes)
  const consoleAssets = loadConsole(config, logger, overrides.consoleDir)
  const tracing = overrides.otelEnv ? startTracing(overrides.otelEnv, logger) : undefined
  const clock = overrides.clock ?? (() => new Date())
  const ids = createIdGenerator()
  const metrics = createMetrics()
  // The outage tracker probes the database it is told about below; until then nothing fails.
  let probeDatastore: () => Promise<void> = async () => {}
  const outage = new OutageTracker({ probe: () => probeDatastore(), log: logger, redact: redactor.text })
  const datastore = await openDatastore(config, { logger, observer: metrics.observeDatastore, outage, redact: redactor.text })
  probeDatastore = () => datastore.ping()
  // Background work meeting an outage: the tracker has logged it once, so nothing per tick.
  const unlessOutage =
    (log: (err: unknown) => void) =>
    (err: unknown): void => {
      if (!(err instanceof DatastoreUnavailable)) log(err)
    }
  const models = new ModelService({
    datastore,
    ids,
    clock,
    maxTypesPerModel: config.maxTypesPerModel,
    maxModelSizeBytes: config.maxModelSizeBytes,
    maxConditionCost: config.maxConditionCost,
    latestModelMaxAgeMs: config.checkCacheStalenessMs,
    cacheSize: config.modelCacheSize,
  })
  const decisions = new DecisionLog({
    datastore: overrides.decisionWriter ? withDecisionWriter(datastore, overrides.decisionWriter) : datastore,
    clock,
    enabled: config.decisionLog === 'on',
    batchSize: config.decisionLogBatch,
    flushIntervalMs: config.decisionLogFlushMs,
    bufferMax: config.decisionLogBufferMax,
    // loadConfig has checked it is a positive duration.
    retentionMs: parseDuration(config.decisionLogRetention)!,
    sweepIntervalMs: RETENTION_SWEEP_INTERVAL_MS,
    logError: unlessOutage((err) => logger.error({ event: 'decision_log_failed', err }, 'decision log: cannot record decisions')),
    // The refusal's own rule, not the message redactor: ids the services accept are stored as sent.
    credentials,
  })
  // Off: the check path does not even time its decisions.
  const decisionSink = decisions.enabled ? decisions : NO_DECISIONS
  // One view of the stores' head revisions: writes advance it, queries bind to it.
  // A deletion it learns of (this replica's DELETE, or another's found by a head read) releases
  // the store's memory here: forgetStore, below, runs only once the server is wired.
  const heads = new HeadRevisions(datastore, config.checkCacheStalenessMs, () => clock().getTime(), (id) => forgetStore(id))
  const evaluation = new EvaluationService({
    datastore,
    models,
    heads,
    clock,
    resolveNodeLimit: config.resolveNodeLimit,
    maxDispatchesPerRequest: config.maxDispatchesPerRequest,
    sliceMs: config.listSliceMs,
    checkCacheSize: config.checkCacheSize,
    tupleCacheSize: config.tupleCacheSize,
    tupleIndex:
      config.tupleIndexMaxTuples > 0
        ? new TupleIndex({
            datastore,
            maxTuples: config.tupleIndexMaxTuples,
            onError: (storeId, err) =>
              unlessOutage((e) =>
                logger.error(
                  { event: 'tuple_index_failed', store: storeId, err: e },
                  'tuple index: cannot load the store (read from the database meanwhile)',
                ),
              )(err),
          })
        : undefined,
    membershipClosures:
      config.membershipClosure === 'on'
        ? new MembershipClosures({
            datastore,
            maxEntries: config.membershipClosureMaxEntries,
            onError: (storeId, err) =>
              unlessOutage((e) =>
                logger.error(
                  { event: 'membership_closure_failed', store: storeId, err: e },
                  'membership closure: cannot build it (nested groups are walked meanwhile)',
                ),
              )(err),
          })
        : undefined,
  })
  const checks = new CheckService({
    evaluation,
    models,
    clock,
    decisions: decisionSink,
    maxChecksPerBatch: config.maxChecksPerBatch,
    checkDeadlineMs: config.checkDeadlineMs,
    maxDelegationChain: config.maxDelegationChain,
    credentials,
  })
  const lists = new ListService({
    evaluation,
    clock,
    decisions: decisionSink,
    listMaxResults: config.listMaxResults,
    listDeadlineMs: config.listDeadlineMs,
    maxDelegationChain: config.maxDelegationChain,
    credentials,
  })
  const writes = new WriteService({ datastore, models, heads, clock, maxTuplesPerWrite: config.maxTuplesPerWrite, credentials })
  const logError =
    overrides.logError ??
    ((err: unknown, requestId: string) => {
      logger.error({ event: 'internal_error', request_id: requestId, err }, 'internal error')
    })
  const accessRequests = new AccessRequestService({
    datastore,
    models,
    checks,
    heads,
    ids,
    clock,
    // loadConfig has checked both are positive durations.
    maxDurationMs: parseDuration(config.jitMaxDuration)!,
    requestTtlMs: parseDuration(config.jitRequestTtl)!,
    credentials,
  })
  // API clients' permissions live in the system store: created or brought up to date, and the
  // configured admins made system admins, before anything is served.
  const access = new AccessControl({ datastore, models, checks, lists, writes, clock, enforced: config.authMode !== 'none' })
  // Deleted means gone: refused on every store route (heads knows), released from every cache.
  const forgetStore = (id: string) => {
    evaluation.forgetStore(id)
    models.forgetStore(id)
    tokenIssuers.forgetStore(id)
    authzenSearch.forgetStore(id)
  }
  const stores = new StoreService({ datastore, grants: access, ids, clock, liveness: heads })
  const assertions = new AssertionService({ datastore, models, credentials })
  // With PEMBA_TUPLE_INDEX_PRELOAD=on, /readyz reports the preload's state.
  let preload = 'loading'
  const readiness = new ReadinessService({
    datastore,
    timeoutMs: config.readyTimeoutMs,
    outage: () => outage.state,
    tupleIndexPreload: config.tupleIndexPreload === 'on' ? () => preload : undefined,
  })
  try {
    await access.ensureSystemStore(parseAdminClients(config.authAdminClients))
    if (config.tupleIndexPreload === 'on') {
      await preloadTupleIndex(datastore, evaluation)
      preload = 'ok'
    }
  } catch (e) {
    await datastore.close()
    throw e
  }
  const jwks = new JwksCache({ cooldownMs: config.authJwksCooldownMs })
  const authenticator = createAuthenticator(config, jwks)
  // Token issuers' key sets are named by store admins, so they are fetched through the SSRF
  // guard (jwks-guard.ts); the operator's own (PEMBA_AUTH_OIDC_JWKS_URI, above) are not.
  const issuerJwksGuard = new JwksFetchGuard({
    allowPrivate: config.jwksAllowPrivate === 'on',
    allowed: parseJwksAllowedHosts(config.jwksAllowedHosts),
    maxBytes: config.jwksMaxBytes,
    timeoutMs: config.jwksTimeoutMs,
  })
  const tokenIssuers = new TokenIssuerService({
    datastore,
    models,
    jwks: new JwksCache({ cooldownMs: config.authJwksCooldownMs, guard: issuerJwksGuard }),
    clock,
    stalenessMs: config.checkCacheStalenessMs,
  })
  const tokenChecks = new TokenCheckService({
    checks,
    models,
    issuers: tokenIssuers,
    clock,
    clockSkewSeconds: config.tokenClockSkewSeconds,
    maxDelegationChain: config.maxDelegationChain,
    maxChecksPerBatch: config.maxChecksPerBatch,
    decisions: decisionSink,
    credentials,
  })
  // The server's signing keys: ARAP's binding tokens and approval states, discovery's signed_metadata.
  const signingKeys = new SigningKeys({ store: datastore, clock })
  // ARAP: requestable denials, approvals.
  const authzenBinding = new ArapBinding({
    keys: signingKeys,
    accessRequests,
    tuples: datastore,
    ids,
    clock,
    // loadConfig has checked it is a positive duration.
    denialTtlMs: parseDuration(config.authzenDenialTtl)!,
    // The denial stays a (plain) deny; the log says why it was not requestable.
    onSigningError: (err) => logger.error({ event: 'signing_failed', err }, 'ARAP: cannot sign a binding token'),
  })
  const authzenDecider = new AuthzenDecider({ checks, tokenChecks, models, advisor: authzenBinding })
  // ARAP: the Access Request Service (submissions, tasks, cancel) over the access requests.
  const authzenRequests = new ArapRequestService({
    accessRequests,
    binding: authzenBinding,
    tokens: tokenChecks,
    clock,
    maxDurationMs: parseDuration(config.jitMaxDuration)!,
  })
  const authzenEvaluations = new AuthzenEvaluations({ decider: authzenDecider, models, maxItems: config.maxChecksPerBatch })
  // The gateway decision for nginx and Envoy (/stores/{store}/gateway/authorize).
  const gateway = new GatewayService({ tokenChecks, models, routes: gatewayRoutes })
  const authzenSearch = new SearchService({
    lists,
    evaluation,
    heads,
    snapshots: datastore,
    clock,
    decisions: decisionSink,
    pageLimit: config.authzenPageLimit,
    pageLimitMax: config.authzenPageLimitMax,
    // loadConfig has checked it is a positive duration.
    tokenTtlMs: parseDuration(config.authzenPageTokenTtl)!,
    maxResults: config.authzenSearchMaxResults,
    snapshotsMax: config.authzenSearchSnapshotsMax,
    cacheBytes: config.authzenSearchCacheBytes,
    deadlineMs: config.listDeadlineMs,
    credentials,
  })
  const sweeper = new Sweeper({
    datastore,
    clock,
    // loadConfig has checked it is a duration.
    deletedStoreRetentionMs: parseDuration(config.deletedStoreRetention)!,
    onStorePurged: (id) => access.onStoreDeleted(id),
    intervalMs: config.expirySweepIntervalMs,
    logError: unlessOutage((err) => logger.error({ event: 'expiry_sweep_failed', err }, 'expiry sweep failed')),
  })
  if (overrides.sweeper !== false) sweeper.start()
  const reviews = new ReviewService({ datastore, lists, models, clock, credentials, reachDeadlineMs: config.listDeadlineMs })
  if (overrides.sweeper !== false) decisions.start()
  // Overload (docs/failure-behaviour.md): a bound on the expensive queries running at once, with
  // a queue; and, when configured, a token bucket per API client on every route.
  const admission = new Admission({
    maxConcurrent: config.expensiveMaxConcurrent,
    maxConcurrentPerClient: config.expensiveMaxConcurrentPerClient,
    queueMax: config.expensiveQueueMax,
    queueWaitMs: config.expensiveQueueWaitMs,
  })
  const rateLimiter =
    config.rateLimitPerClient > 0
      ? new RateLimiter({ perSecond: config.rateLimitPerClient, burst: config.rateLimitBurst, now: () => performance.now() })
      : undefined
  // Failed authentication never reaches the per-client limit (no client is known): it is
  // charged to its peer address, in buckets of its own, with the same limit.
  const authFailureLimiter =
    rateLimiter && config.authMode !== 'none'
      ? new RateLimiter({ perSecond: config.rateLimitPerClient, burst: config.rateLimitBurst, now: () => performance.now() })
      : undefined
  metrics.collectFrom({
    admission: () => {
      const a = admission.stats()
      return {
        inFlight: a.inFlight,
        queued: a.queued,
        refused: a.refused.queue_full + a.refused.queue_timeout,
        rateLimited: rateLimiter?.stats().refused ?? 0,
      }
    },
    checkCache: () => evaluation.cacheStats(),
    tupleCache: () => evaluation.tupleCacheStats(),
    tupleIndex: () => evaluation.tupleIndexStats(),
    membershipClosure: () => evaluation.membershipClosureStats(),
    decisionLog: () => decisions.metrics(),
    pool: () => datastore.poolStats(),
    readReplicas: () => datastore.readReplicaStats?.(),
    // Every cache and buffer that grows with traffic, against its setting (docs/memory.md).
    memory: () => [
      ...evaluation.cacheSizes(),
      ...(config.tupleIndexMaxTuples > 0
        ? [{ cache: 'tuple_index', size: evaluation.tupleIndexStats()?.tuples ?? 0, capacity: config.tupleIndexMaxTuples }]
        : []),
      ...models.cacheSizes(),
      { cache: 'decision_buffer', size: decisions.metrics().buffered, capacity: config.decisionLogBufferMax },
      { cache: 'authzen_search_bytes', size: authzenSearch.cached().bytes, capacity: config.authzenSearchCacheBytes },
    ],
    datastoreOutage: () => outage.state,
  })
  const app = createApp({
    admission,
    rateLimiter,
    authFailureLimiter,
    models,
    evaluation,
    checks,
    lists,
    writes,
    stores,
    assertions,
    accessRequests,
    bodyLimitBytes: config.bodyLimitBytes,
    browser: { corsOrigins: config.corsOrigins, allowedHosts: config.allowedHosts, listenHost: config.host },
    console: consoleAssets,
    logError,
    redact: redactor.text,
    accessLog: config.accessLog === 'on' ? logger : undefined,
    tracing,
    access,
    authenticator,
    tokenIssuers,
    tokenChecks,
    decisions,
    reviews,
    metrics,
    readiness,
    metricsExposition: () => metrics.scrape(),
    authzenSearch,
    authzenDecider,
    authzenBinding,
    authzenRequests,
    authzenEvaluations,
    authzenMetadataSigner: signingKeys,
    gateway,
    authzenSettings: {
      publicUrl: config.publicUrl === '' ? '' : parsePublicUrl(config.publicUrl),
      trustProxy: parseTrustProxy(config.trustProxy),
      defaultStore: config.authzenDefaultStore,
      discovery: config.authzenDiscovery,
    },
  })
  return {
    config,
    logger,
    tracing,
    app,
    datastore,
    models,
    evaluation,
    admission,
    checks,
    lists,
    writes,
    stores,
    assertions,
    accessRequests,
    access,
    jwks,
    tokenIssuers,
    tokenChecks,
    authzenBinding,
    authzen: authzenDecider,
    sweeper,
    decisions,
    reviews,
    metrics,
    readiness,
    async close() {
      await sweeper.stop()
      outage.stop()
      // Decisions still waiting are written before the database closes.
      await decisions.close()
      await datastore.close()
      // The spans of the last requests are exported before the process ends.
      await tracing?.shutdown()
    },
  }
}

/** startTracing builds the tracer when the environment asks for it, and says where spans go. */
function startTracing(env: Record<string, string | undefined>, logger: Logger): Tracing | undefined {
  const tracing = tracingFromEnv(env, {
    onExportError: (err, droppedSpans) =>
      logger.warn({ event: 'trace_export_failed', dropped_spans: droppedSpans, err }, 'tracing: cannot export spans'),
  })
  if (tracing) logger.info({ event: 'tracing', endpoint: tracing.endpoint }, `tracing: exporting spans to ${tracing.endpoint}`)
  return tracing
}

/** configuredSecrets lists the secrets in the configuration, for the redactor to hide verbatim. */
function configuredSecrets(config: PembaConfig): string[] {
  if (!config.authPresharedKeys) return []
  try {
    return parsePresharedKeys(config.authPresharedKeys).map((k) => k.key)
  } catch {
    // loadConfig has refused malformed keys; a hand-built config may still carry one.
    return config.authPresharedKeys.split(/[,=]/).map((s) => s.trim())
  }
}

/** preloadTupleIndex reads every store into the tuple index, oldest first, while the budget lasts. */
async function preloadTupleIndex(datastore: Datastore, evaluation: EvaluationService): Promise<void> {
  let after: string | undefined
  do {
    const page = await datastore.listStores({ pageSize: 100, after })
    for (const store of page.items) await evaluation.tupleIndexReady(store.id)
    after = page.next || undefined
  } while (after)
}
