/**
 * Pemba's tables for SQLite (better-sqlite3). drizzle-kit generates `migrations/sqlite/` from
 * this file; the server applies them at start. Times are integer milliseconds since the epoch.
 *
 * @module
 */
import { sql } from 'drizzle-orm'
import { sqliteTable, text, integer, real, primaryKey, index, uniqueIndex } from 'drizzle-orm/sqlite-core'

/** stores: one row per store; `revision` counts committed writes and orders the changelog. */
export const stores = sqliteTable('stores', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  deletedAt: integer('deleted_at'),
  revision: integer('revision').notNull().default(0),
})

/** authorization_models: immutable models; the latest is the highest (ULID) id. */
export const authorizationModels = sqliteTable(
  'authorization_models',
  {
    storeId: text('store_id').notNull(),
    id: text('id').notNull(),
    schemaVersion: text('schema_version').notNull(),
    /** The model as canonical JSON (without its id). */
    model: text('model').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.id] })],
)

/**
 * tuples: the live relationship tuples. The primary key keeps them unique; the reads are
 * answered from two covering indexes, without a look-up of the row (SQLite's tables are keyed
 * by rowid, so an index that lacks a column the read selects costs one more B-tree descent per
 * tuple): `tuples_by_object` serves the object → users direction (`document:1#viewer@?`, with
 * usersets ranging over `user_relation > ''`), `tuples_by_user` the users → objects direction
 * that list-objects walks (`document:?#viewer@group:eng#member`). Both end with what a read
 * returns besides the key: condition, expiry (the live filter) and condition context.
 */
export const tuples = sqliteTable(
  'tuples',
  {
    storeId: text('store_id').notNull(),
    objectType: text('object_type').notNull(),
    objectId: text('object_id').notNull(),
    relation: text('relation').notNull(),
    userRelation: text('user_relation').notNull().default(''),
    userType: text('user_type').notNull(),
    userId: text('user_id').notNull(),
    conditionName: text('condition_name').notNull().default(''),
    /** JSON object, or null when the tuple has no condition context. */
    conditionContext: text('condition_context'),
    revision: integer('revision').notNull(),
    insertedAt: integer('inserted_at').notNull(),
    /**
     * When the tuple stops granting (ms since the epoch), or null for never. Readers filter
     * `expires_at IS NULL OR expires_at > now`; the sweeper deletes expired rows later.
     */
    expiresAt: integer('expires_at'),
  },
  (t) => [
    primaryKey({
      columns: [t.storeId, t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId],
    }),
    index('tuples_by_object').on(
      t.storeId,
      t.objectType,
      t.objectId,
      t.relation,
      t.userRelation,
      t.userType,
      t.userId,
      t.conditionName,
      t.expiresAt,
      t.conditionContext,
    ),
    index('tuples_by_user').on(
      t.storeId,
      t.objectType,
      t.relation,
      t.userType,
      t.userRelation,
      t.userId,
      t.objectId,
      t.conditionName,
      t.expiresAt,
      t.conditionContext,
    ),
    // Only expiring tuples, in expiry order: what the sweeper scans for `expires_at <= now`.
    index('tuples_by_expiry')
      .on(t.expiresAt, t.storeId)
      .where(sql`${t.expiresAt} IS NOT NULL`),
  ],
)

/**
 * changelog: every committed tuple write and delete, in commit order. (`revision`, `seq`) is
 * the position; revisions are per store and assigned under the store's write lock, so the
 * order never changes once a position has been read.
 */
export const changelog = sqliteTable(
  'changelog',
  {
    storeId: text('store_id').notNull(),
    revision: integer('revision').notNull(),
    seq: integer('seq').notNull(),
    objectType: text('object_type').notNull(),
    objectId: text('object_id').notNull(),
    relation: text('relation').notNull(),
    user: text('user').notNull(),
    conditionName: text('condition_name').notNull().default(''),
    conditionContext: text('condition_context'),
    /** On a write: the written tuple's expiry (ms since the epoch), null for never. */
    expiresAt: integer('expires_at'),
    /** 0 = TUPLE_OPERATION_WRITE, 1 = TUPLE_OPERATION_DELETE. */
    operation: integer('operation').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.storeId, t.revision, t.seq] }),
    index('changelog_by_type').on(t.storeId, t.objectType, t.revision, t.seq),
    index('changelog_by_time').on(t.storeId, t.createdAt),
  ],
)

/** assertions: the assertion set of one model, replaced as a whole on each write. */
export const assertions = sqliteTable(
  'assertions',
  {
    storeId: text('store_id').notNull(),
    modelId: text('model_id').notNull(),
    assertions: text('assertions').notNull(),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.modelId] })],
)

/**
 * access_requests: just-in-time access requests. A request asks for one tuple
 * (`namespace:production#deployer@service_account:ci`) for `duration_ms`; an approver writes it
 * with an expiry. `status` is pending, approved, denied or expired; a pending row whose
 * `pending_until` has passed counts as expired before the sweeper marks it so.
 */
export const accessRequests = sqliteTable(
  'access_requests',
  {
    storeId: text('store_id').notNull(),
    /** A ULID: requests list in creation order. */
    id: text('id').notNull(),
    objectType: text('object_type').notNull(),
    objectId: text('object_id').notNull(),
    relation: text('relation').notNull(),
    user: text('user').notNull(),
    durationMs: integer('duration_ms').notNull(),
    reason: text('reason').notNull().default(''),
    status: text('status').notNull(),
    createdAt: integer('created_at').notNull(),
    pendingUntil: integer('pending_until').notNull(),
    /** Set on approval: when the granted tuple expires. */
    grantExpiresAt: integer('grant_expires_at'),
    /** AuthZEN ARAP: the submission's `Idempotency-Key`, and the SHA-256 of its body. */
    idempotencyKey: text('idempotency_key'),
    requestHash: text('request_hash'),
    /** AuthZEN ARAP: the `jti` of the binding token it was submitted with (replay protection). */
    bindingJti: text('binding_jti'),
    /** AuthZEN ARAP: the submission as received (context, client, requested_access), JSON. */
    submission: text('submission'),
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
export const accessRequestEvents = sqliteTable(
  'access_request_events',
  {
    storeId: text('store_id').notNull(),
    requestId: text('request_id').notNull(),
    seq: integer('seq').notNull(),
    type: text('type').notNull(),
    actor: text('actor').notNull(),
    at: integer('at').notNull(),
    reason: text('reason').notNull().default(''),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.requestId, t.seq] })],
)

/**
 * token_issuers: per store, the token issuers a token-native check trusts
 * (`PUT /stores/{store}/token-issuers/{name}`). `config` is the issuer's JSON document as
 * validated (audience, jwks or jwks_uri, subject/actor types, subject claim, scope map).
 */
export const tokenIssuers = sqliteTable(
  'token_issuers',
  {
    storeId: text('store_id').notNull(),
    name: text('name').notNull(),
    issuer: text('issuer').notNull(),
    config: text('config').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.storeId, t.name] })],
)

/**
 * decision_log: one row per decision (a check, a batch-check item, a token check, or a whole
 * list-objects call), appended in batches off the request path. `id` is a ULID, so rows list
 * in decision order; `at` (ms) drives retention.
 */
export const decisionLog = sqliteTable(
  'decision_log',
  {
    storeId: text('store_id').notNull(),
    id: text('id').notNull(),
    at: integer('at').notNull(),
    /** check, batch_check, token_check or list_objects. */
    kind: text('kind').notNull(),
    modelId: text('model_id').notNull(),
    /** The authenticated API client, '' when authentication is off. */
    client: text('client').notNull().default(''),
    /** The subject asked about (`agent:summarizer`), or the token's principal. */
    subject: text('subject').notNull(),
    /** JSON array of the `on_behalf_of` principals, or null. */
    onBehalfOf: text('on_behalf_of'),
    relation: text('relation').notNull(),
    /** `type:id`, or for list-objects the object type. */
    object: text('object').notNull(),
    /** 1 or 0; for list-objects 1 when anything was found. */
    allowed: integer('allowed').notNull(),
    /** JSON array of the tuples that granted an allowed answer, or null. */
    witness: text('witness'),
    latencyUs: integer('latency_us').notNull(),
    consistency: text('consistency').notNull().default(''),
    requestId: text('request_id').notNull().default(''),
    /** JSON object with what the kind adds (denied_by, token reason, result count, error). */
    detail: text('detail'),
  },
  // Only the primary key, on purpose. Subject and object indexes take every row in random key
  // order, and on SQLite that cost about 50 µs per row and index here (each batch rewrites index
  // pages all over the file): enough to take a third off HTTP check throughput with logging on.
  // Filtered reads scan newest-first instead, a bounded number of rows per page (see
  // store/sqlite/audit.ts); ids are ULIDs, so a time range is an id range. PostgreSQL, a server
  // of its own, keeps the indexes.
  (t) => [primaryKey({ columns: [t.storeId, t.id] })],
)

/**
 * decision_log_settings: per store, whether decisions are recorded and which share of them
 * (1 = all). A store without a row records everything.
 */
export const decisionLogSettings = sqliteTable('decision_log_settings', {
  storeId: text('store_id').primaryKey(),
  enabled: integer('enabled').notNull(),
  sampleRate: real('sample_rate').notNull(),
  updatedAt: integer('updated_at').notNull(),
})

/**
 * grant_usage: when each tuple last granted an allowed decision (it was in the witness),
 * maintained in batches from the decision recorder. Keyed like `tuples`; a row outliving its
 * tuple is harmless (reviews join from `tuples`) and is removed by the retention sweep.
 */
export const grantUsage = sqliteTable(
  'grant_usage',
  {
    storeId: text('store_id').notNull(),
    objectType: text('object_type').notNull(),
    objectId: text('object_id').notNull(),
    relation: text('relation').notNull(),
    userRelation: text('user_relation').notNull().default(''),
    userType: text('user_type').notNull(),
    userId: text('user_id').notNull(),
    lastUsedAt: integer('last_used_at').notNull(),
  },
  (t) => [
    primaryKey({
      columns: [t.storeId, t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId],
    }),
  ],
)

/**
 * search_snapshots: the complete, sorted results of one AuthZEN search that did not fit in one
 * page, so that its later pages answer at the revision of the first (a write in between changes
 * nothing the pages show) and every result comes exactly once, on any replica. `query_hash`
 * binds the page tokens to the query; `secret` signs them (HMAC), so a token cannot be altered.
 * Kept until `expires_at`, then removed by the sweeper.
 */
export const searchSnapshots = sqliteTable(
  'search_snapshots',
  {
    storeId: text('store_id').notNull(),
    /** Random, unguessable. */
    id: text('id').notNull(),
    queryHash: text('query_hash').notNull(),
    modelId: text('model_id').notNull(),
    revision: integer('revision').notNull(),
    secret: text('secret').notNull(),
    /** The results as a JSON array, in page order. */
    results: text('results').notNull(),
    total: integer('total').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.storeId, t.id] }),
    index('search_snapshots_by_expiry').on(t.expiresAt),
    // A first page looks for a live snapshot of the same question to reuse.
    index('search_snapshots_by_query').on(t.storeId, t.queryHash),
  ],
)

/**
 * signing_keys: the server's own signing keys (AuthZEN binding tokens and approval states),
 * shared by every replica of one database and published at the stores' `jwks` endpoints. The
 * newest key signs; older ones still verify until removed.
 */
export const signingKeys = sqliteTable('signing_keys', {
  kid: text('kid').primaryKey(),
  alg: text('alg').notNull(),
  /** The private key as a JWK (JSON). */
  privateJwk: text('private_jwk').notNull(),
  /** The public key as a JWK (JSON), as published. */
  publicJwk: text('public_jwk').notNull(),
  createdAt: integer('created_at').notNull(),
})
