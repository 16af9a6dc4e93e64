/**
 * Pemba as a library: `import { createPemba, loadConfig } from 'pemba'`.
 *
 * - **An embedded Pemba**: `createPemba(config)` wires a whole instance in the process (the
 *   datastore, the services, the HTTP app as `pemba.app`, which `@hono/node-server` or
 *   `pemba.app.request()` can serve); `loadConfig` reads the same settings as `pemba serve`.
 * - **Asking a Pemba** from an enforcement point: `remoteDecisions` (a server over HTTP),
 *   `embeddedDecisions` (an instance in the process), `cachedDecisions` (a short decision cache
 *   in front of either), all `DecisionClient`s.
 * - **MCP**: `createMcpAuthorizer` protects a server built with `@modelcontextprotocol/sdk`
 *   (also `pemba/mcp`).
 * - The Node middleware has its own entry points: `pemba/middleware/hono`, `…/express`,
 *   `…/fastify`.
 *
 * ```ts
 * import { createPemba, embeddedDecisions, loadConfig, modelFromDSL } from 'pemba'
 *
 * const pemba = await createPemba({ ...loadConfig({ env: process.env }), databaseUrl: 'sqlite::memory:' })
 * const store = await pemba.stores.create('docs', '')
 * await pemba.models.write(store.id, modelFromDSL('model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define reader: [user]'))
 * await pemba.writes.write(store.id, { writes: [{ user: 'user:alice', relation: 'reader', object: 'doc:42' }], onDuplicate: 'error', onMissing: 'error' })
 * const decisions = embeddedDecisions(pemba, store.id)
 * const { decision } = await decisions.evaluate({ subject: { type: 'user', id: 'alice' }, action: { name: 'reader' }, resource: { type: 'doc', id: '42' } })
 * await pemba.close()
 * ```
 *
 * docs/middleware.md describes the library API in full.
 *
 * @module
 */
export { createPemba, DatabaseUnavailableError, type Pemba, type PembaOverrides } from './server.ts'
export { loadConfig, ConfigError, DEFAULTS, type ConfigSource, type PembaConfig } from './config.ts'
export { modelFromDSL } from './model/dsl.ts'
export { PembaError } from './core/errors.ts'
export type { AuthzenDecision, AuthzenEntity, AuthzenEvaluation } from './service/authzen/types.ts'
export {
  DecisionRejected,
  DecisionUnavailable,
  FAIL_OPEN_KINDS,
  type UnavailableKind,
  type DecisionClient,
  type DecisionOptions,
  type EnforcementDecision,
} from './enforce/decisions.ts'
export { remoteDecisions, type RemoteDecisionsOptions } from './enforce/remote.ts'
export { embeddedDecisions, type EmbeddedDecisionsOptions } from './enforce/embedded.ts'
export { cachedDecisions, type CachedDecisionsOptions } from './enforce/cache.ts'
export { createMcpAuthorizer, type McpAuthorizer, type McpAuthorizerOptions } from './enforce/mcp/authorizer.ts'
