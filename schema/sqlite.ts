/**
 * Pemba's tables for SQLite (better-sqlite3). drizzle-kit generates `migrations/sqlite/` from
 * this file; the server applies them at start. Times are integer milliseconds since the epoch.
 *
 * @module
 */
import { sqliteTable, text, integer, primaryKey, index } from 'drizzle-orm/sqlite-core'

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
 * tuples: the live relationship tuples. The primary key serves the object → users direction
 * (`document:1#viewer@?`, with usersets ranging over `user_relation > ''`); `tuples_by_user`
 * serves the users → objects direction that list-objects walks
 * (`document:?#viewer@group:eng#member`).
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
  },
  (t) => [
    primaryKey({
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
