/**
 * createPemba wires one Pemba instance from its configuration: the datastore, the services (one
 * per capability: models, checks, lists, writes, stores, …), and the HTTP app. Everything is passed explicitly; nothing is global, so a
 * test can run many instances side by side.
 *
 * @module
 */
import { createRedactor } from './core/redact.ts'
import { parsePresharedKeys } from './auth/settings.ts'
import type { Hono } from 'hono'
import { createApp, type AppEnv } from './api/app.ts'
import { databaseBackend, type PembaConfig } from './config.ts'
import { createIdGenerator } from './core/ids.ts'
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
import { parseAdminClients } from './auth/settings.ts'
import { parseDuration } from './service/duration.ts'
import { ModelService } from './service/models.ts'
import { TokenCheckService } from './service/token-checks.ts'
import { TokenIssuerService } from './service/token-issuers.ts'
import { Sweeper } from './service/sweeper.ts'
import { DecisionLog, RETENTION_SWEEP_INTERVAL_MS } from './service/decision-log.ts'
import { NO_DECISIONS } from './service/decision-sink.ts'
import { ReviewService } from './service/reviews.ts'
import type { Datastore } from './store/store.ts'
import { TupleIndex } from './store/readers/tuple-index.ts'
import { createLogger, type Logger } from './telemetry/logger.ts'

export interface Pemba {
  config: PembaConfig
  /** The structured log every part of this instance writes to (src/telemetry/logger.ts). */
  logger: Logger
  app: Hono<AppEnv>
  datastore: Datastore
  models: ModelService
  /** What the queries share: the engine, the caches, the tuple index (and their counters). */
  evaluation: EvaluationService
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
  /** Deletes expired tuples and expires overdue access requests; `runOnce()` sweeps on demand. */
  sweeper: Sweeper
  /** Records decisions in batches; `flush()` writes what waits, `sweepOnce()` applies retention. */
  decisions: DecisionLog
  /** Least-privilege reviews (unused grants) and reach. */
  reviews: ReviewService
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
}

/**
 * openDatastore opens the configured database through the backend registry
 * (src/store/sql/backends.ts) and applies its pending migrations, or, with `migrations: 'check'`,
 * throws MigrationsPendingError while any are pending (a SQLite file is then only read, never
 * created). `pemba migrate` migrates through the registry too, whatever the setting.
 */
export async function openDatastore(config: PembaConfig): Promise<Datastore> {
  const { backend, target } = databaseBackend(config.databaseUrl)
  return backend.open(target, {
    poolSize: config.pgPoolSize,
    statementTimeoutMs: config.pgStatementTimeoutMs,
    migrations: config.migrations,
  })
}

export async function createPemba(config: PembaConfig, overrides: PembaOverrides = {}): Promise<Pemba> {
  // Everything Pemba logs or echoes back about a request goes through this (src/core/redact.ts).
  const redactor = createRedactor(configuredSecrets(config))
  const logger =
    overrides.logger ?? createLogger({ level: config.logLevel, format: config.logFormat, redact: redactor.text })
  const clock = overrides.clock ?? (() => new Date())
  const ids = createIdGenerator()
  const datastore = await openDatastore(config)
  const models = new ModelService({
    datastore,
    ids,
    clock,
    maxTypesPerModel: config.maxTypesPerModel,
    maxModelSizeBytes: config.maxModelSizeBytes,
    maxConditionCost: config.maxConditionCost,
    latestModelMaxAgeMs: config.checkCacheStalenessMs,
  })
  const decisions = new DecisionLog({
    datastore,
    clock,
    enabled: config.decisionLog === 'on',
    batchSize: config.decisionLogBatch,
    flushIntervalMs: config.decisionLogFlushMs,
    bufferMax: config.decisionLogBufferMax,
    // loadConfig has checked it is a positive duration.
    retentionMs: parseDuration(config.decisionLogRetention)!,
    sweepIntervalMs: RETENTION_SWEEP_INTERVAL_MS,
    logError: (err) => logger.error({ event: 'decision_log_failed', err }, 'decision log: cannot record decisions'),
  })
  // Off: the check path does not even time its decisions.
  const decisionSink = decisions.enabled ? decisions : NO_DECISIONS
  // One view of the stores' head revisions: writes advance it, queries bind to it.
  const heads = new HeadRevisions(datastore, config.checkCacheStalenessMs, () => clock().getTime())
  const evaluation = new EvaluationService({
    datastore,
    models,
    heads,
    clock,
    resolveNodeLimit: config.resolveNodeLimit,
    maxDispatchesPerRequest: config.maxDispatchesPerRequest,
    checkCacheSize: config.checkCacheSize,
    tupleCacheSize: config.tupleCacheSize,
    tupleIndex:
      config.tupleIndexMaxTuples > 0
        ? new TupleIndex({
            datastore,
            maxTuples: config.tupleIndexMaxTuples,
            onError: (storeId, err) =>
              logger.error(
                { event: 'tuple_index_failed', store: storeId, err },
                'tuple index: cannot load the store (read from the database meanwhile)',
              ),
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
  })
  const lists = new ListService({
    evaluation,
    clock,
    decisions: decisionSink,
    listMaxResults: config.listMaxResults,
    listDeadlineMs: config.listDeadlineMs,
    maxDelegationChain: config.maxDelegationChain,
  })
  const writes = new WriteService({ datastore, models, heads, clock, maxTuplesPerWrite: config.maxTuplesPerWrite })
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
  })
  // API clients' permissions live in the system store: created or brought up to date, and the
  // configured admins made system admins, before anything is served.
  const access = new AccessControl({ datastore, models, checks, lists, writes, clock, enforced: config.authMode !== 'none' })
  const stores = new StoreService({ datastore, grants: access, ids, clock, forgetStore: (id) => evaluation.forgetStore(id) })
  const assertions = new AssertionService({ datastore, models })
  try {
    await access.ensureSystemStore(parseAdminClients(config.authAdminClients))
    if (config.tupleIndexPreload === 'on') await preloadTupleIndex(datastore, evaluation)
  } catch (e) {
    await datastore.close()
    throw e
  }
  const jwks = new JwksCache({ cooldownMs: config.authJwksCooldownMs })
  const authenticator = createAuthenticator(config, jwks)
  const tokenIssuers = new TokenIssuerService({
    datastore,
    models,
    jwks,
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
  })
  const sweeper = new Sweeper({
    datastore,
    clock,
    intervalMs: config.expirySweepIntervalMs,
    logError: (err) => logger.error({ event: 'expiry_sweep_failed', err }, 'expiry sweep failed'),
  })
  if (overrides.sweeper !== false) sweeper.start()
  const reviews = new ReviewService({ datastore, lists, models, clock })
  if (overrides.sweeper !== false) decisions.start()
  const app = createApp({
    models,
    evaluation,
    checks,
    lists,
    writes,
    stores,
    assertions,
    accessRequests,
    bodyLimitBytes: config.bodyLimitBytes,
    logError,
    redact: redactor.text,
    access,
    authenticator,
    tokenIssuers,
    tokenChecks,
    decisions,
    reviews,
  })
  return {
    config,
    logger,
    app,
    datastore,
    models,
    evaluation,
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
    sweeper,
    decisions,
    reviews,
    async close() {
      await sweeper.stop()
      // Decisions still waiting are written before the database closes.
      await decisions.close()
      await datastore.close()
    },
  }
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
