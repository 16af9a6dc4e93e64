/**
 * SqliteDatastore: the embedded store over one SQLite file (or `:memory:`) with better-sqlite3.
 * WAL mode, migrations applied at open, every statement prepared once. better-sqlite3 is
 * synchronous; the methods stay async so the engine is the same over PostgreSQL.
 *
 * @module
 */
import Database from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConflictError, PembaError } from '../../core/errors.ts'
import { formatSubject, type Subject, type Tuple } from '../../core/tuple.ts'
import type { AuthorizationModel } from '../../model/types.ts'
import type {
  ChangesQuery,
  Datastore,
  Page,
  ReadFilter,
  Revision,
  StoreRecord,
  StoredTuple,
  TupleChange,
  TupleReader,
  WriteRequest,
} from '../store.ts'

const MIGRATIONS = fileURLToPath(new URL('../../../migrations/sqlite', import.meta.url))

/** The longest `IN (…)` list one statement binds. */
const IN_CHUNK = 50

const TUPLE_COLUMNS =
  'object_type, object_id, relation, user_relation, user_type, user_id, condition_name, condition_context'

interface TupleRow {
  object_type: string
  object_id: string
  relation: string
  user_relation: string
  user_type: string
  user_id: string
  condition_name: string
  condition_context: string | null
  inserted_at?: number
}

interface StoreRow {
  id: string
  name: string
  created_at: number
  updated_at: number
  deleted_at: number | null
}

function rowToTuple(r: TupleRow): Tuple {
  return {
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    userType: r.user_type,
    userId: r.user_id,
    userRelation: r.user_relation,
    conditionName: r.condition_name,
    conditionContext: r.condition_context === null ? undefined : JSON.parse(r.condition_context),
  }
}

function rowToStore(r: StoreRow): StoreRecord {
  return {
    id: r.id,
    name: r.name,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    deletedAt: r.deleted_at === null ? null : new Date(r.deleted_at),
  }
}


type Statements = ReturnType<typeof prepareStatements>

function prepareStatements(db: Database.Database) {
  return {
    insertStore: db.prepare(
      'INSERT INTO stores (id, name, created_at, updated_at, deleted_at, revision) VALUES (?, ?, ?, ?, NULL, 0)',
    ),
    getStore: db.prepare('SELECT * FROM stores WHERE id = ? AND deleted_at IS NULL'),
    listStores: db.prepare(
      'SELECT * FROM stores WHERE deleted_at IS NULL AND id > ? ORDER BY id LIMIT ?',
    ),
    listStoresByName: db.prepare(
      'SELECT * FROM stores WHERE deleted_at IS NULL AND name = ? AND id > ? ORDER BY id LIMIT ?',
    ),
    deleteStore: db.prepare(
      'UPDATE stores SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL',
    ),
    headRevision: db.prepare('SELECT revision FROM stores WHERE id = ?').pluck(),
    unbumpRevision: db.prepare('UPDATE stores SET revision = revision - 1 WHERE id = ?'),
    bumpRevision: db
      .prepare('UPDATE stores SET revision = revision + 1 WHERE id = ? RETURNING revision')
      .pluck(),
    insertModel: db.prepare(
      'INSERT INTO authorization_models (store_id, id, schema_version, model, created_at) VALUES (?, ?, ?, ?, ?)',
    ),
    readModel: db.prepare('SELECT model FROM authorization_models WHERE store_id = ? AND id = ?').pluck(),
    latestModel: db.prepare(
      'SELECT id, model FROM authorization_models WHERE store_id = ? ORDER BY id DESC LIMIT 1',
    ),
    latestModelId: db
      .prepare('SELECT id FROM authorization_models WHERE store_id = ? ORDER BY id DESC LIMIT 1')
      .pluck(),
    listModels: db.prepare(
      'SELECT id, model FROM authorization_models WHERE store_id = ? AND id < ? ORDER BY id DESC LIMIT ?',
    ),
    object: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? LIMIT ?`,
    ),
    objectRelation: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ?`,
    ),
    usersets: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation > ''`,
    ),
    exactUser: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation = ? AND user_type = ? AND user_id = ?`,
    ),
    startingWithUser: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND relation = ? AND user_type = ? AND user_relation = ? AND user_id = ?`,
    ),
    existingTuple: db.prepare(
      'SELECT condition_name, condition_context FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation = ? AND user_type = ? AND user_id = ?',
    ),
    insertTuple: db.prepare(
      'INSERT OR IGNORE INTO tuples (store_id, object_type, object_id, relation, user_relation, user_type, user_id, condition_name, condition_context, revision, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    deleteTuple: db.prepare(
      'DELETE FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation = ? AND user_type = ? AND user_id = ?',
    ),
    insertChange: db.prepare(
      'INSERT INTO changelog (store_id, revision, seq, object_type, object_id, relation, user, condition_name, condition_context, operation, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    writeAssertions: db.prepare(
      'INSERT INTO assertions (store_id, model_id, assertions) VALUES (?, ?, ?) ON CONFLICT (store_id, model_id) DO UPDATE SET assertions = excluded.assertions',
    ),
    readAssertions: db
      .prepare('SELECT assertions FROM assertions WHERE store_id = ? AND model_id = ?')
      .pluck(),
  }
}

function invalidCursor(): PembaError {
  return new PembaError('invalid_continuation_token', 'Invalid continuation token')
}

function decodeCursor<T>(after: string | undefined, check: (v: unknown) => v is T): T | undefined {
  if (after === undefined || after === '') return undefined
  let v: unknown
  try {
    v = JSON.parse(after)
  } catch {
    throw invalidCursor()
  }
  if (!check(v)) throw invalidCursor()
  return v
}

const isStringArray =
  (n: number) =>
  (v: unknown): v is string[] =>
    Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'string')

const isChangePosition = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => Number.isSafeInteger(x) && x >= 0)

function canonicalContext(ctx: Record<string, unknown> | undefined): string | null {
  if (ctx === undefined || Object.keys(ctx).length === 0) return null
  return JSON.stringify(ctx)
}

export interface SqliteOptions {
  /** A file path, or ':memory:'. */
  filename: string
}

export class SqliteDatastore implements Datastore {
  readonly dialect = 'sqlite' as const
  /** better-sqlite3 answers synchronously, so evaluating siblings one by one short-circuits best. */
  readonly preferredConcurrency = 1
  readonly db: Database.Database
  readonly #stmt: Statements
  /** `user_id IN (?, …)` statements by list length, prepared on first use. */
  readonly #inStatements = new Map<number, Database.Statement>()

  constructor(options: SqliteOptions) {
    if (options.filename !== ':memory:') mkdirSync(dirname(options.filename), { recursive: true })
    this.db = new Database(options.filename)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.pragma('busy_timeout = 5000')
    this.db.pragma('foreign_keys = ON')
    migrate(drizzle(this.db), { migrationsFolder: MIGRATIONS })
    this.#stmt = prepareStatements(this.db)
  }

  async createStore(id: string, name: string, now: Date): Promise<StoreRecord> {
    this.#stmt.insertStore.run(id, name, now.getTime(), now.getTime())
    return { id, name, createdAt: now, updatedAt: now, deletedAt: null }
  }

  async getStore(id: string): Promise<StoreRecord | undefined> {
    const row = this.#stmt.getStore.get(id) as StoreRow | undefined
    return row && rowToStore(row)
  }

  async listStores(q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>> {
    const after = decodeCursor(q.after, isStringArray(1))?.[0] ?? ''
    const rows = (
      q.name !== undefined
        ? this.#stmt.listStoresByName.all(q.name, after, q.pageSize + 1)
        : this.#stmt.listStores.all(after, q.pageSize + 1)
    ) as StoreRow[]
    const more = rows.length > q.pageSize
    const items = rows.slice(0, q.pageSize).map(rowToStore)
    return { items, next: more ? JSON.stringify([items[items.length - 1].id]) : '' }
  }

  async deleteStore(id: string, now: Date): Promise<void> {
    this.#stmt.deleteStore.run(now.getTime(), now.getTime(), id)
  }

  async writeModel(storeId: string, model: AuthorizationModel, now: Date): Promise<void> {
    const { id, ...body } = model
    this.#stmt.insertModel.run(storeId, id, model.schema_version, JSON.stringify(body), now.getTime())
  }

  async readModel(storeId: string, id: string): Promise<AuthorizationModel | undefined> {
    const json = this.#stmt.readModel.get(storeId, id) as string | undefined
    return json === undefined ? undefined : { id, ...JSON.parse(json) }
  }

  async readLatestModel(storeId: string): Promise<AuthorizationModel | undefined> {
    const row = this.#stmt.latestModel.get(storeId) as { id: string; model: string } | undefined
    return row && { id: row.id, ...JSON.parse(row.model) }
  }

  async latestModelId(storeId: string): Promise<string | undefined> {
    return this.#stmt.latestModelId.get(storeId) as string | undefined
  }

  async listModels(storeId: string, q: { pageSize: number; after?: string }): Promise<Page<AuthorizationModel>> {
    const after = decodeCursor(q.after, isStringArray(1))?.[0] ?? '\uffff'
    const rows = this.#stmt.listModels.all(storeId, after, q.pageSize + 1) as { id: string; model: string }[]
    const more = rows.length > q.pageSize
    const items = rows.slice(0, q.pageSize).map((r) => ({ id: r.id, ...JSON.parse(r.model) }))
    return { items, next: more ? JSON.stringify([items[items.length - 1].id]) : '' }
  }

  async write(storeId: string, req: WriteRequest, now: Date): Promise<Revision> {
    const s = this.#stmt
    const ts = now.getTime()
    const apply = this.db.transaction((): Revision => {
      let revision = 0
      let seq = 0
      const nextRevision = () => {
        if (revision === 0) revision = s.bumpRevision.get(storeId) as number
        return revision
      }
      for (const d of req.deletes) {
        const key = [storeId, d.objectType, d.objectId, d.relation, d.userRelation, d.userType, d.userId]
        const res = s.deleteTuple.run(...key)
        if (res.changes === 0) {
          if (req.onMissing === 'error') {
            throw new PembaError(
              'write_failed_due_to_invalid_input',
              `cannot delete a tuple which does not exist: ${describe(d)}: tuple to be written already existed or the tuple to be deleted did not exist`,
            )
          }
          continue
        }
        const user = formatSubject({ type: d.userType, id: d.userId, relation: d.userRelation })
        s.insertChange.run(storeId, nextRevision(), seq++, d.objectType, d.objectId, d.relation, user, '', null, 1, ts)
      }
      for (const w of req.writes) {
        const key = [storeId, w.objectType, w.objectId, w.relation, w.userRelation, w.userType, w.userId]
        const ctx = canonicalContext(w.conditionContext)
        // Insert first: the common case (a new tuple) costs one statement, not a look-up too.
        const rev = nextRevision()
        if (s.insertTuple.run(...key, w.conditionName, ctx, rev, ts).changes === 0) {
          const existing = s.existingTuple.get(...key) as { condition_name: string; condition_context: string | null }
          if (req.onDuplicate === 'error') {
            throw new PembaError(
              'write_failed_due_to_invalid_input',
              `cannot write a tuple which already exists: ${describe(w)}: tuple to be written already existed or the tuple to be deleted did not exist`,
            )
          }
          if (existing.condition_name !== w.conditionName || existing.condition_context !== ctx) {
            throw new ConflictError(
              `tuple to be written already existed with a different condition: ${describe(w)}`,
            )
          }
          continue
        }
        const user = formatSubject({ type: w.userType, id: w.userId, relation: w.userRelation })
        s.insertChange.run(storeId, rev, seq++, w.objectType, w.objectId, w.relation, user, w.conditionName, ctx, 0, ts)
      }
      if (seq === 0 && revision !== 0) {
        // Nothing changed after all (every write already existed): undo the revision bump.
        s.unbumpRevision.run(storeId)
        revision = 0
      }
      return revision === 0 ? (s.headRevision.get(storeId) as number) ?? 0 : revision
    })
    return apply.immediate()
  }

  async read(
    storeId: string,
    f: ReadFilter,
    q: { pageSize: number; after?: string },
  ): Promise<Page<StoredTuple>> {
    const where = ['store_id = ?']
    const params: unknown[] = [storeId]
    const add = (col: string, v: string | undefined) => {
      if (v !== undefined) {
        where.push(`${col} = ?`)
        params.push(v)
      }
    }
    add('object_type', f.objectType)
    add('object_id', f.objectId)
    add('relation', f.relation)
    add('user_type', f.userType)
    add('user_id', f.userId)
    add('user_relation', f.userRelation)
    const after = decodeCursor(q.after, isStringArray(6))
    if (after) {
      where.push('(object_type, object_id, relation, user_relation, user_type, user_id) > (?, ?, ?, ?, ?, ?)')
      params.push(...after)
    }
    const sql = `SELECT ${TUPLE_COLUMNS}, inserted_at FROM tuples WHERE ${where.join(' AND ')} ORDER BY object_type, object_id, relation, user_relation, user_type, user_id LIMIT ?`
    params.push(q.pageSize + 1)
    const rows = this.db.prepare(sql).all(...params) as TupleRow[]
    const more = rows.length > q.pageSize
    const page = rows.slice(0, q.pageSize)
    const items = page.map((r) => ({ ...rowToTuple(r), insertedAt: new Date(r.inserted_at!) }))
    const last = page[page.length - 1]
    const next = more
      ? JSON.stringify([last.object_type, last.object_id, last.relation, last.user_relation, last.user_type, last.user_id])
      : ''
    return { items, next }
  }

  async readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>> {
    const where = ['store_id = ?']
    const params: unknown[] = [storeId]
    if (q.objectType !== undefined) {
      where.push('object_type = ?')
      params.push(q.objectType)
    }
    const after = decodeCursor(q.after, isChangePosition)
    if (after) {
      where.push('(revision, seq) > (?, ?)')
      params.push(after[0], after[1])
    } else if (q.startTime) {
      where.push('created_at >= ?')
      params.push(q.startTime.getTime())
    }
    params.push(q.pageSize)
    const rows = this.db
      .prepare(`SELECT * FROM changelog WHERE ${where.join(' AND ')} ORDER BY revision, seq LIMIT ?`)
      .all(...params) as {
      revision: number
      seq: number
      object_type: string
      object_id: string
      relation: string
      user: string
      condition_name: string
      condition_context: string | null
      operation: number
      created_at: number
    }[]
    const items: TupleChange[] = rows.map((r) => ({
      objectType: r.object_type,
      objectId: r.object_id,
      relation: r.relation,
      user: r.user,
      conditionName: r.condition_name,
      conditionContext: r.condition_context === null ? undefined : JSON.parse(r.condition_context),
      operation: r.operation === 0 ? 'write' : 'delete',
      timestamp: new Date(r.created_at),
    }))
    const last = rows[rows.length - 1]
    return { items, next: last ? JSON.stringify([last.revision, last.seq]) : (q.after ?? '') }
  }

  async headRevision(storeId: string): Promise<Revision> {
    return (this.#stmt.headRevision.get(storeId) as number | undefined) ?? 0
  }

  reader(storeId: string, _revision: Revision): TupleReader {
    return new SqliteTupleReader(storeId, this.#stmt, this.db, this.#inStatements)
  }

  async writeAssertions(storeId: string, modelId: string, assertions: unknown[]): Promise<void> {
    this.#stmt.writeAssertions.run(storeId, modelId, JSON.stringify(assertions))
  }

  async readAssertions(storeId: string, modelId: string): Promise<unknown[] | undefined> {
    const json = this.#stmt.readAssertions.get(storeId, modelId) as string | undefined
    return json === undefined ? undefined : JSON.parse(json)
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close()
  }
}

function describe(t: { objectType: string; objectId: string; relation: string; userType: string; userId: string; userRelation: string }): string {
  const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
  return `user: '${user}', relation: '${t.relation}', object: '${t.objectType}:${t.objectId}'`
}

/**
 * SqliteTupleReader reads the live tuples. It reads the newest committed state, which is at
 * least as fresh as the revision it was bound to: a check never sees older data than the
 * revision its cache entries are keyed by.
 */
class SqliteTupleReader implements TupleReader {
  readonly #store: string
  readonly #stmt: Statements
  readonly #db: Database.Database
  readonly #inStatements: Map<number, Database.Statement>

  constructor(storeId: string, stmt: Statements, db: Database.Database, inStatements: Map<number, Database.Statement>) {
    this.#store = storeId
    this.#stmt = stmt
    this.#db = db
    this.#inStatements = inStatements
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const rows = this.#stmt.object.all(this.#store, objectType, objectId, limit + 1) as TupleRow[]
    return rows.length > limit ? undefined : rows.map(rowToTuple)
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return (this.#stmt.objectRelation.all(this.#store, objectType, objectId, relation) as TupleRow[]).map(rowToTuple)
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const out: Tuple[] = []
    for (const u of users) {
      const row = this.#stmt.exactUser.get(this.#store, objectType, objectId, relation, u.relation, u.type, u.id) as
        | TupleRow
        | undefined
      if (row) out.push(rowToTuple(row))
    }
    return out
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return (this.#stmt.usersets.all(this.#store, objectType, objectId, relation) as TupleRow[]).map(rowToTuple)
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    if (users.length === 1) {
      const u = users[0]
      return (this.#stmt.startingWithUser.all(this.#store, objectType, relation, u.type, u.relation, u.id) as TupleRow[]).map(rowToTuple)
    }
    // Several users of one kind (`group:a#member`, `group:b#member`) in one IN query per chunk.
    const out: Tuple[] = []
    const byKind = new Map<string, Subject[]>()
    for (const u of users) {
      const k = `${u.type}#${u.relation}`
      const list = byKind.get(k)
      if (list) list.push(u)
      else byKind.set(k, [u])
    }
    for (const group of byKind.values()) {
      for (let i = 0; i < group.length; i += IN_CHUNK) {
        const chunk = group.slice(i, i + IN_CHUNK)
        const stmt = this.#startingWithUsers(chunk.length)
        const rows = stmt.all(this.#store, objectType, relation, chunk[0].type, chunk[0].relation, ...chunk.map((u) => u.id)) as TupleRow[]
        for (const r of rows) out.push(rowToTuple(r))
      }
    }
    return out
  }

  #startingWithUsers(n: number): Database.Statement {
    let stmt = this.#inStatements.get(n)
    if (!stmt) {
      stmt = this.#db.prepare(
        `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND relation = ? AND user_type = ? AND user_relation = ? AND user_id IN (${Array(n).fill('?').join(', ')})`,
      )
      this.#inStatements.set(n, stmt)
    }
    return stmt
  }

}

