/**
 * Pemba's tables for PostgreSQL (node-postgres). The same tables, columns and indexes as
 * `schema/sqlite.ts`; drizzle-kit generates `migrations/postgres/` from this file and the server
 * applies them at start (or `pemba migrate` does, with `PEMBA_MIGRATIONS=check` on the servers).
 *
 * Two choices keep PostgreSQL answering exactly like SQLite:
 *
 * - Text columns are `COLLATE "C"`: byte order, like SQLite's BINARY. Keyset cursors compare
 *   strings (`(object_type, object_id, …) > ($1, $2, …)`), so the order must not depend on the
 *   server's locale: with `en_US`, `doc:B` sorts between `doc:a` and `doc:c`, and a glibc
 *   upgrade can reorder an index under a live cursor. "C" is also the cheapest comparison.
 * - Times are `bigint` milliseconds since the epoch, as in SQLite, and `condition_context` is
 *   the JSON text as written (not jsonb): an ignored duplicate write is compared with the stored
 *   context byte for byte, so `{"a":1,"b":2}` and `{"b":2,"a":1}` conflict on both dialects.
 *
 * @module
 */
import { sql } from 'drizzle-orm'
import { bigint, customType, doublePrecision, index, integer, pgTable, primaryKey, uniqueIndex } from 'drizzle-orm/pg-core'

/** text COLLATE "C": a string compared and indexed byte by byte. */
const ctext = customType<{ data: string }>({ dataType: () => 'text COLLATE "C"' })

/** A millisecond count; int8 comes back from node-postgres as a string, so the store converts. */
const millis = (name: string) => bigint(name, { mode: 'number' })

/** stores: one row per store; `revision` counts committed writes and orders the changelog. */
export const stores = pgTable('stores', {
  id: ctext('id').primaryKey(),
  name: ctext('name').notNull(),
  createdAt: millis('created_at').notNull(),
  updatedAt: millis('updated_at').notNull(),
  deletedAt: millis('deleted_at'),
  /** The row every write locks (`SELECT … FOR UPDATE`): writers to one store take turns. */
  revision: bigint('revision', { mode: 'number' }).notNull().default(0),
})

/** authorization_models: immutable models; the latest is the highest (ULID) id. */
export const authorizationModels = pgTable(
  'authorization_models',
  {
    storeId: ctext('store_id').notNull(),
    id: ctext('id').notNull(),
    schemaVersion: ctext('schema_version').notNull(),
    /** The model as canonical JSON (without its id). */
    model: ctext('model').notNull(),
    createdAt: millis('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.id] })],
)

/**
 * tuples: the live relationship tuples. The primary key serves the object → users direction
 * (`document:1#viewer@?`, with usersets ranging over `user_relation > ''`); `tuples_by_user`
 * serves the users → objects direction that list-objects walks
 * (`document:?#viewer@group:eng#member`).
 */
export const tuples = pgTable(
  'tuples',
  {
    storeId: ctext('store_id').notNull(),
    objectType: ctext('object_type').notNull(),
    objectId: ctext('object_id').notNull(),
    relation: ctext('relation').notNull(),
    userRelation: ctext('user_relation').notNull().default(''),
    userType: ctext('user_type').notNull(),
    userId: ctext('user_id').notNull(),
    conditionName: ctext('condition_name').notNull().default(''),
    /** JSON object, or null when the tuple has no condition context. */
    conditionContext: ctext('condition_context'),
    revision: bigint('revision', { mode: 'number' }).notNull(),
    insertedAt: millis('inserted_at').notNull(),
    /**
     * When the tuple stops granting (ms since the epoch), or null for never. Readers filter
     * `expires_at IS NULL OR expires_at > now`; the sweeper deletes expired rows later.
     */
    expiresAt: millis('expires_at'),
  },
  (t) => [
    // Named: drizzle's generated name is longer than PostgreSQL's 63-byte identifier limit.
    primaryKey({
      name: 'tuples_pkey',
      columns: [t.storeId, t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId],
    }),
    index('tuples_by_user').on(
      t.storeId,
      t.objectType,
      t.relation,
      t.userType,
      t.userRelation,
      t.userId,
      t.objectId,
    ),
    // Only expiring tuples, in expiry order: what the sweeper scans for `expires_at <= now`.
    index('tuples_by_expiry')
      .on(t.expiresAt, t.storeId)
      .where(sql`${t.expiresAt} IS NOT NULL`),
  ],
)

/**
 * changelog: every committed tuple write and delete, in commit order. (`revision`, `seq`) is
 * the position; revisions are per store and assigned while the writer holds the store row's
 * lock, so a position once read is never preceded by a later commit, on any replica.
 */
export const changelog = pgTable(
  'changelog',
  {
    storeId: ctext('store_id').notNull(),
    revision: bigint('revision', { mode: 'number' }).notNull(),
    seq: integer('seq').notNull(),
    objectType: ctext('object_type').notNull(),
    objectId: ctext('object_id').notNull(),
    relation: ctext('relation').notNull(),
    user: ctext('user').notNull(),
    conditionName: ctext('condition_name').notNull().default(''),
    conditionContext: ctext('condition_context'),
    /** On a write: the written tuple's expiry (ms since the epoch), null for never. */
    expiresAt: millis('expires_at'),
    /** 0 = TUPLE_OPERATION_WRITE, 1 = TUPLE_OPERATION_DELETE. */
    operation: integer('operation').notNull(),
    createdAt: millis('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.storeId, t.revision, t.seq] }),
    index('changelog_by_type').on(t.storeId, t.objectType, t.revision, t.seq),
    index('changelog_by_time').on(t.storeId, t.createdAt),
  ],
)

/** assertions: the assertion set of one model, replaced as a whole on each write. */
export const assertions = pgTable(
  'assertions',
  {
    storeId: ctext('store_id').notNull(),
    modelId: ctext('model_id').notNull(),
    assertions: ctext('assertions').notNull(),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.modelId] })],
)

/**
 * access_requests: just-in-time access requests. A request asks for one tuple
 * (`namespace:production#deployer@service_account:ci`) for `duration_ms`; an approver writes it
 * with an expiry. `status` is pending, approved, denied or expired; a pending row whose
 * `pending_until` has passed counts as expired before the sweeper marks it so.
 */
export const accessRequests = pgTable(
  'access_requests',
  {
    storeId: ctext('store_id').notNull(),
    /** A ULID: requests list in creation order. */
    id: ctext('id').notNull(),
    objectType: ctext('object_type').notNull(),
    objectId: ctext('object_id').notNull(),
    relation: ctext('relation').notNull(),
    user: ctext('user').notNull(),
    durationMs: millis('duration_ms').notNull(),
    reason: ctext('reason').notNull().default(''),
    status: ctext('status').notNull(),
    createdAt: millis('created_at').notNull(),
    pendingUntil: millis('pending_until').notNull(),
    /** Set on approval: when the granted tuple expires. */
    grantExpiresAt: millis('grant_expires_at'),
    idempotencyKey: ctext('idempotency_key'),
    requestHash: ctext('request_hash'),
    bindingJti: ctext('binding_jti'),
    submission: ctext('submission'),
  },
  (t) => [
    primaryKey({ columns: [t.storeId, t.id] }),
    index('access_requests_by_status').on(t.storeId, t.status, t.id),
    uniqueIndex('access_requests_by_idempotency_key')
      .on(t.storeId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} IS NOT NULL`),
    uniqueIndex('access_requests_by_binding_jti')
      .on(t.storeId, t.bindingJti)
      .where(sql`${t.bindingJti} IS NOT NULL`),
    // Pending requests in deadline order: what the sweeper scans to mark them expired.
    index('access_requests_pending')
      .on(t.pendingUntil)
      .where(sql`${t.status} = 'pending'`),
  ],
)

/**
 * access_request_events: every state change of a request (created, approved, denied,
 * expired), with who and when, appended in the same transaction as the change. `seq` orders
 * one request's events from 0.
 */
export const accessRequestEvents = pgTable(
  'access_request_events',
  {
    storeId: ctext('store_id').notNull(),
    requestId: ctext('request_id').notNull(),
    seq: integer('seq').notNull(),
    type: ctext('type').notNull(),
    actor: ctext('actor').notNull(),
    at: millis('at').notNull(),
    reason: ctext('reason').notNull().default(''),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.requestId, t.seq] })],
)

/** token_issuers: see schema/sqlite.ts. */
export const tokenIssuers = pgTable(
  'token_issuers',
  {
    storeId: ctext('store_id').notNull(),
    name: ctext('name').notNull(),
    issuer: ctext('issuer').notNull(),
    config: ctext('config').notNull(),
    createdAt: millis('created_at').notNull(),
    updatedAt: millis('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.name] })],
)

/** decision_log: see schema/sqlite.ts. */
export const decisionLog = pgTable(
  'decision_log',
  {
    storeId: ctext('store_id').notNull(),
    id: ctext('id').notNull(),
    at: millis('at').notNull(),
    kind: ctext('kind').notNull(),
    modelId: ctext('model_id').notNull(),
    client: ctext('client').notNull().default(''),
    subject: ctext('subject').notNull(),
    onBehalfOf: ctext('on_behalf_of'),
    relation: ctext('relation').notNull(),
    object: ctext('object').notNull(),
    allowed: integer('allowed').notNull(),
    witness: ctext('witness'),
    latencyUs: millis('latency_us').notNull(),
    consistency: ctext('consistency').notNull().default(''),
    requestId: ctext('request_id').notNull().default(''),
    detail: ctext('detail'),
  },
  (t) => [
    primaryKey({ columns: [t.storeId, t.id] }),
    index('decision_log_by_subject').on(t.storeId, t.subject, t.id),
    index('decision_log_by_object').on(t.storeId, t.object, t.id),
    index('decision_log_by_time').on(t.at),
  ],
)

/** decision_log_settings: see schema/sqlite.ts. */
export const decisionLogSettings = pgTable('decision_log_settings', {
  storeId: ctext('store_id').primaryKey(),
  enabled: integer('enabled').notNull(),
  sampleRate: doublePrecision('sample_rate').notNull(),
  updatedAt: millis('updated_at').notNull(),
})

/** grant_usage: see schema/sqlite.ts. */
export const grantUsage = pgTable(
  'grant_usage',
  {
    storeId: ctext('store_id').notNull(),
    objectType: ctext('object_type').notNull(),
    objectId: ctext('object_id').notNull(),
    relation: ctext('relation').notNull(),
    userRelation: ctext('user_relation').notNull().default(''),
    userType: ctext('user_type').notNull(),
    userId: ctext('user_id').notNull(),
    lastUsedAt: millis('last_used_at').notNull(),
  },
  (t) => [
    primaryKey({
      columns: [t.storeId, t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId],
    }),
  ],
)

/** search_snapshots: see schema/sqlite.ts. */
export const searchSnapshots = pgTable(
  'search_snapshots',
  {
    storeId: ctext('store_id').notNull(),
    id: ctext('id').notNull(),
    queryHash: ctext('query_hash').notNull(),
    modelId: ctext('model_id').notNull(),
    revision: bigint('revision', { mode: 'number' }).notNull(),
    secret: ctext('secret').notNull(),
    results: ctext('results').notNull(),
    total: integer('total').notNull(),
    createdAt: millis('created_at').notNull(),
    expiresAt: millis('expires_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.storeId, t.id] }),
    index('search_snapshots_by_expiry').on(t.expiresAt),
    // A first page looks for a live snapshot of the same question to reuse.
    index('search_snapshots_by_query').on(t.storeId, t.queryHash),
  ],
)

/** signing_keys: see schema/sqlite.ts. */
export const signingKeys = pgTable('signing_keys', {
  kid: ctext('kid').primaryKey(),
  alg: ctext('alg').notNull(),
  privateJwk: ctext('private_jwk').notNull(),
  publicJwk: ctext('public_jwk').notNull(),
  createdAt: millis('created_at').notNull(),
})
