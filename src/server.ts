/**
 * createPemba wires one Pemba instance from its configuration: the datastore, the model and
 * query services, and the HTTP app. Everything is passed explicitly; nothing is global, so a
 * test can run many instances side by side.
 *
 * @module
 */
import type { Hono } from 'hono'
import { createApp, type AppEnv } from './api/app.ts'
import { parseDatabaseUrl, type PembaConfig } from './config.ts'
import { createIdGenerator } from './core/ids.ts'
import { AuthzService } from './service/authz.ts'
import { ModelService } from './service/models.ts'
import { checkSqliteMigrations } from './store/migrations.ts'
import { PostgresDatastore } from './store/postgres/index.ts'
import { SqliteDatastore } from './store/sqlite/index.ts'
import type { Datastore } from './store/store.ts'

export interface Pemba {
  config: PembaConfig
  app: Hono<AppEnv>
  datastore: Datastore
  authz: AuthzService
  models: ModelService
  close(): Promise<void>
}

export interface PembaOverrides {
  clock?: () => Date
  logError?: (err: unknown, requestId: string) => void
}

/**
 * openDatastore opens the configured database and applies its pending migrations, or, with
 * `migrations: 'check'`, throws MigrationsPendingError while any are pending (the SQLite file is
 * then only read, never created). `pemba migrate` passes `migrations: 'auto'` whatever the setting.
 */
export async function openDatastore(config: PembaConfig): Promise<Datastore> {
  const target = parseDatabaseUrl(config.databaseUrl)
  if (target.dialect === 'postgres') {
    return PostgresDatastore.open({
      url: target.url,
      poolSize: config.pgPoolSize,
      statementTimeoutMs: config.pgStatementTimeoutMs,
      migrations: config.migrations,
    })
  }
  if (config.migrations === 'check') checkSqliteMigrations(target.filename)
  return new SqliteDatastore({ filename: target.filename })
}

export async function createPemba(config: PembaConfig, overrides: PembaOverrides = {}): Promise<Pemba> {
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
  const authz = new AuthzService({
    datastore,
    models,
    clock,
    maxTuplesPerWrite: config.maxTuplesPerWrite,
    maxChecksPerBatch: config.maxChecksPerBatch,
    resolveNodeLimit: config.resolveNodeLimit,
    maxDispatchesPerRequest: config.maxDispatchesPerRequest,
    checkDeadlineMs: config.checkDeadlineMs,
    listMaxResults: config.listMaxResults,
    listDeadlineMs: config.listDeadlineMs,
    maxDelegationChain: config.maxDelegationChain,
    checkCacheSize: config.checkCacheSize,
    checkCacheStalenessMs: config.checkCacheStalenessMs,
  })
  const logError =
    overrides.logError ??
    ((err: unknown, requestId: string) => {
      console.error(`[pemba] internal error (request ${requestId}):`, err)
    })
  const app = createApp({ datastore, models, authz, ids, clock, bodyLimitBytes: config.bodyLimitBytes, logError })
  return {
    config,
    app,
    datastore,
    authz,
    models,
    close: () => datastore.close(),
  }
}
