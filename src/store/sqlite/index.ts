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
import {
  canonicalContext,
  conflictError,
  decodeCursor,
  deleteMissingError,
  describeTuple,
  isChangePosition,
  isStringArray,
  rowToAccessRequest,
  writeExistingError,
  type AccessRequestRow,
  type EventRow,
  rowToTuple,
  type TupleRow,
} from '../common.ts'
import { formatSubject, type Subject, type Tuple } from '../../core/tuple.ts'
import type { AuthorizationModel } from '../../model/types.ts'
import {
  EXPIRY_ACTOR,
  effectiveStatus,
  type AccessRequestDecision,
  type AccessRequestEvent,
  type AccessRequestQuery,
  type AccessRequestRecord,
  type AccessRequestStatus,
  type ChangesQuery,
  type Datastore,
  type Page,
  type ReadFilter,
  type Revision,
  type StoreRecord,
  type StoredTuple,
  type TupleChange,
  type TupleIdentity,
  type TokenIssuerInput,
  type TokenIssuerPut,
  type TokenIssuerRecord,
  type TupleReader,
  type WriteRequest,
} from '../store.ts'
import { SqliteTokenIssuers } from './token-issuers.ts'
import type {
  DecisionLogSettings,
  DecisionQuery,
  GrantUse,
  GrantWithUsage,
  GrantsQuery,
  IdentityGrantStats,
  IdentityStatsQuery,
  StoredDecision,
} from '../audit.ts'
import { SqliteAudit } from './audit.ts'

const MIGRATIONS = fileURLToPath(new URL('../../../migrations/sqlite', import.meta.url))

/** The longest `IN (…)` list one statement binds. */
const IN_CHUNK = 50

const TUPLE_COLUMNS =
  'object_type, object_id, relation, user_relation, user_type, user_id, condition_name, condition_context, expires_at'

/**
 * Every reader query ends with this, bound to the reader's `now`: an expired tuple is gone the
 * instant it expires, whether or not the sweeper has deleted the row yet.
 */
const LIVE = '(expires_at IS NULL OR expires_at > ?)'

/** A readObject row: relation, user_relation, user_type, user_id, condition_name, condition_context, expires_at. */
type ObjectRow = [string, string, string, string, string, string | null, number | null]

/** The tuple key columns, for statements that name one tuple. */
const KEY_MATCH =
  'store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation = ? AND user_type = ? AND user_id = ?'


interface StoreRow {
  id: string
  name: string
  created_at: number
  updated_at: number
  deleted_at: number | null
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
    latestModelId: db
      .prepare('SELECT id FROM authorization_models WHERE store_id = ? ORDER BY id DESC LIMIT 1')
      .pluck(),
    listModels: db.prepare(
      'SELECT id, model FROM authorization_models WHERE store_id = ? AND id < ? ORDER BY id DESC LIMIT ?',
    ),
    objectRelation: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND ${LIVE}`,
    ),
    usersets: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND relation = ? AND user_relation > '' AND ${LIVE}`,
    ),
    exactUser: db.prepare(`SELECT ${TUPLE_COLUMNS} FROM tuples WHERE ${KEY_MATCH} AND ${LIVE}`),
    startingWithUser: db.prepare(
      `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND relation = ? AND user_type = ? AND user_relation = ? AND user_id = ? AND ${LIVE}`,
    ),
    existingTuple: db.prepare(
      `SELECT condition_name, condition_context, expires_at FROM tuples WHERE ${KEY_MATCH}`,
    ),
    insertTuple: db.prepare(
      'INSERT OR IGNORE INTO tuples (store_id, object_type, object_id, relation, user_relation, user_type, user_id, condition_name, condition_context, revision, inserted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    /** Deletes a live tuple: an expired one is already gone, and is the sweeper's to record. */
    deleteTuple: db.prepare(`DELETE FROM tuples WHERE ${KEY_MATCH} AND ${LIVE}`),
    /** Deletes whatever row holds the key (an expired one being replaced or swept). */
    deleteRow: db.prepare(`DELETE FROM tuples WHERE ${KEY_MATCH}`),
    insertChange: db.prepare(
      'INSERT INTO changelog (store_id, revision, seq, object_type, object_id, relation, user, condition_name, condition_context, expires_at, operation, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    /** The oldest expired tuples, over tuples_by_expiry. */
    expiredTuples: db.prepare(
      'SELECT store_id, object_type, object_id, relation, user_relation, user_type, user_id FROM tuples WHERE expires_at <= ? ORDER BY expires_at LIMIT ?',
    ),
    insertAccessRequest: db.prepare(
      'INSERT INTO access_requests (store_id, id, object_type, object_id, relation, user, duration_ms, reason, status, created_at, pending_until, grant_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    getAccessRequest: db.prepare('SELECT * FROM access_requests WHERE store_id = ? AND id = ?'),
    setAccessRequestStatus: db.prepare(
      'UPDATE access_requests SET status = ?, grant_expires_at = ? WHERE store_id = ? AND id = ?',
    ),
    insertEvent: db.prepare(
      'INSERT INTO access_request_events (store_id, request_id, seq, type, actor, at, reason) VALUES (?, ?, (SELECT COUNT(*) FROM access_request_events WHERE store_id = ? AND request_id = ?), ?, ?, ?, ?)',
    ),
    duePendingRequests: db.prepare(
      "SELECT store_id, id, pending_until FROM access_requests WHERE status = 'pending' AND pending_until <= ? ORDER BY pending_until LIMIT ?",
    ),
    writeAssertions: db.prepare(
      'INSERT INTO assertions (store_id, model_id, assertions) VALUES (?, ?, ?) ON CONFLICT (store_id, model_id) DO UPDATE SET assertions = excluded.assertions',
    ),
    readAssertions: db
      .prepare('SELECT assertions FROM assertions WHERE store_id = ? AND model_id = ?')
      .pluck(),
  }
}






interface ExistingRow {
  condition_name: string
  condition_context: string | null
  expires_at: number | null
}

type KeyRow = Pick<
  TupleRow,
  'object_type' | 'object_id' | 'relation' | 'user_relation' | 'user_type' | 'user_id'
>

/** keyOf is a tuple's primary key, as the parameters of a KEY_MATCH statement. */
function keyOf(storeId: string, t: TupleIdentity): string[] {
  return [storeId, t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId]
}

function identityOfRow(r: KeyRow): TupleIdentity {
  return {
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    userRelation: r.user_relation,
    userType: r.user_type,
    userId: r.user_id,
  }
}

/** logDelete records the delete of `t` at changelog position (revision, seq). */
function logDelete(
  s: Statements,
  storeId: string,
  revision: number,
  seq: number,
  t: TupleIdentity,
  ts: number,
): void {
  const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
  const { objectType: type, objectId: id, relation } = t
  s.insertChange.run(storeId, revision, seq, type, id, relation, user, '', null, null, 1, ts)
}

/** logWrite records the write of `t` (with its condition context `ctx` and expiry). */
function logWrite(
  s: Statements,
  storeId: string,
  revision: number,
  seq: number,
  t: Tuple,
  ctx: string | null,
  ts: number,
): void {
  const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
  const { objectType, objectId, relation, conditionName } = t
  const expires = t.expiresAt ?? null
  s.insertChange.run(
    storeId,
    revision,
    seq,
    objectType,
    objectId,
    relation,
    user,
    conditionName,
    ctx,
    expires,
    0,
    ts,
  )
}



/** The WHERE clause of an effective-status filter; `pending` and `expired` bind `now`. */
function statusClause(status: AccessRequestStatus | undefined): string | undefined {
  switch (status) {
    case undefined:
      return undefined
    case 'pending':
      return "(status = 'pending' AND pending_until > ?)"
    case 'expired':
      return "(status = 'expired' OR (status = 'pending' AND pending_until <= ?))"
    case 'approved':
      return "status = 'approved'"
    case 'denied':
      return "status = 'denied'"
  }
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
  readonly #objectStatements = new Map<number, Database.Statement>()
  readonly #tokenIssuers: SqliteTokenIssuers
  /** The decision log, its settings and grant usage (audit.ts). */
  readonly #audit: SqliteAudit

  constructor(options: SqliteOptions) {
    if (options.filename !== ':memory:') mkdirSync(dirname(options.filename), { recursive: true })
    this.db = new Database(options.filename)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.pragma('busy_timeout = 5000')
    this.db.pragma('foreign_keys = ON')
    migrate(drizzle(this.db), { migrationsFolder: MIGRATIONS })
    this.#stmt = prepareStatements(this.db)
    this.#tokenIssuers = new SqliteTokenIssuers(this.db)
    this.#audit = new SqliteAudit(this.db, options.filename)
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
        const res = s.deleteTuple.run(...key, ts)
        if (res.changes === 0) {
          if (req.onMissing === 'error') {
            throw deleteMissingError(d)
          }
          continue
        }
        logDelete(s, storeId, nextRevision(), seq++, d, ts)
      }
      for (const w of req.writes) {
        const key = [storeId, w.objectType, w.objectId, w.relation, w.userRelation, w.userType, w.userId]
        const ctx = canonicalContext(w.conditionContext)
        const expires = w.expiresAt ?? null
        // Insert first: the common case (a new tuple) costs one statement, not a look-up too.
        const rev = nextRevision()
        if (s.insertTuple.run(...key, w.conditionName, ctx, rev, ts, expires).changes === 0) {
          const existing = s.existingTuple.get(...key) as ExistingRow
          if (existing.expires_at !== null && existing.expires_at <= ts) {
            // Expired but not swept yet: gone for everyone, so this is a new tuple. Its removal
            // is recorded first, as the sweeper would have, so the feed stays a true history.
            s.deleteRow.run(...key)
            logDelete(s, storeId, rev, seq++, w, ts)
            s.insertTuple.run(...key, w.conditionName, ctx, rev, ts, expires)
            logWrite(s, storeId, rev, seq++, w, ctx, ts)
            continue
          }
          if (req.onDuplicate === 'error') {
            throw writeExistingError(w)
          }
          if (existing.condition_name !== w.conditionName || existing.condition_context !== ctx) {
            throw conflictError(w, 'condition')
          }
          if (existing.expires_at !== expires) {
            throw conflictError(w, 'expiry')
          }
          continue
        }
        logWrite(s, storeId, rev, seq++, w, ctx, ts)
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
    now: number,
  ): Promise<Page<StoredTuple>> {
    const where = ['store_id = ?', LIVE]
    const params: unknown[] = [storeId, now]
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
      expires_at: number | null
      operation: number
      created_at: number
    }[]
    const items: TupleChange[] = rows.map((r) => ({
      revision: r.revision,
      seq: r.seq,
      objectType: r.object_type,
      objectId: r.object_id,
      relation: r.relation,
      user: r.user,
      conditionName: r.condition_name,
      conditionContext: r.condition_context === null ? undefined : JSON.parse(r.condition_context),
      ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
      operation: r.operation === 0 ? 'write' : 'delete',
      timestamp: new Date(r.created_at),
    }))
    const last = rows[rows.length - 1]
    return { items, next: last ? JSON.stringify([last.revision, last.seq]) : (q.after ?? '') }
  }

  async headRevision(storeId: string): Promise<Revision> {
    return (this.#stmt.headRevision.get(storeId) as number | undefined) ?? 0
  }

  reader(storeId: string, _revision: Revision, now: number): TupleReader {
    return new SqliteTupleReader(storeId, now, this.#stmt, this.db, this.#inStatements, this.#objectStatements)
  }

  async sweepExpired(now: Date, limit: number): Promise<number> {
    const s = this.#stmt
    const ts = now.getTime()
    // One immediate transaction holds SQLite's write lock, so no writer (in this process or
    // another on the same file) interleaves: each row is deleted and recorded once.
    const sweep = this.db.transaction((): number => {
      const rows = s.expiredTuples.all(ts, limit) as (KeyRow & { store_id: string })[]
      const byStore = new Map<string, KeyRow[]>()
      for (const r of rows) {
        const list = byStore.get(r.store_id)
        if (list) list.push(r)
        else byStore.set(r.store_id, [r])
      }
      for (const [storeId, keys] of byStore) {
        // A new revision per store touched, as if an operator had deleted them in one Write.
        const revision = s.bumpRevision.get(storeId) as number | undefined
        let seq = 0
        for (const k of keys) {
          const t = identityOfRow(k)
          s.deleteRow.run(...keyOf(storeId, t))
          // Without a store row there is no revision to order a changelog entry by.
          if (revision !== undefined) logDelete(s, storeId, revision, seq++, t, ts)
        }
      }
      return rows.length
    })
    return sweep.immediate()
  }

  // --- access requests -----------------------------------------------------------------------

  async createAccessRequest(r: AccessRequestRecord): Promise<void> {
    const s = this.#stmt
    this.db.transaction(() => {
      s.insertAccessRequest.run(
        r.storeId,
        r.id,
        r.objectType,
        r.objectId,
        r.relation,
        r.user,
        r.durationMs,
        r.reason,
        r.status,
        r.createdAt.getTime(),
        r.pendingUntil.getTime(),
        r.grantExpiresAt?.getTime() ?? null,
      )
      for (const e of r.events) this.#appendEvent(r.storeId, r.id, e)
    }).immediate()
  }

  async getAccessRequest(storeId: string, id: string): Promise<AccessRequestRecord | undefined> {
    const row = this.#stmt.getAccessRequest.get(storeId, id) as AccessRequestRow | undefined
    return row && this.#withEvents(storeId, [row])[0]
  }

  async listAccessRequests(
    storeId: string,
    q: AccessRequestQuery,
  ): Promise<Page<AccessRequestRecord>> {
    const where = ['store_id = ?']
    const params: unknown[] = [storeId]
    const status = statusClause(q.status)
    if (status) {
      where.push(status)
      if (q.status === 'pending' || q.status === 'expired') params.push(q.now)
    }
    const after = decodeCursor(q.after, isStringArray(1))
    if (after) {
      where.push('id > ?')
      params.push(after[0])
    }
    params.push(q.pageSize + 1)
    const rows = this.db
      .prepare(`SELECT * FROM access_requests WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`)
      .all(...params) as AccessRequestRow[]
    const more = rows.length > q.pageSize
    const items = this.#withEvents(storeId, rows.slice(0, q.pageSize))
    return { items, next: more ? JSON.stringify([items[items.length - 1].id]) : '' }
  }

  async approveAccessRequest(
    storeId: string,
    id: string,
    tuple: Tuple,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision> {
    const s = this.#stmt
    const ts = now.getTime()
    const approve = this.db.transaction((): AccessRequestDecision => {
      const found = this.#pendingAt(storeId, id, ts)
      if (found) return found
      const granted = this.#grant(storeId, tuple, ts)
      if (!granted.ok) return granted
      s.setAccessRequestStatus.run('approved', tuple.expiresAt ?? null, storeId, id)
      this.#appendEvent(storeId, id, event)
      return granted
    })
    return approve.immediate()
  }

  async denyAccessRequest(
    storeId: string,
    id: string,
    event: AccessRequestEvent,
    now: Date,
  ): Promise<AccessRequestDecision> {
    const s = this.#stmt
    const deny = this.db.transaction((): AccessRequestDecision => {
      const found = this.#pendingAt(storeId, id, now.getTime())
      if (found) return found
      s.setAccessRequestStatus.run('denied', null, storeId, id)
      this.#appendEvent(storeId, id, event)
      return { ok: true, revision: (s.headRevision.get(storeId) as number | undefined) ?? 0 }
    })
    return deny.immediate()
  }

  async expireAccessRequests(now: Date, limit: number): Promise<number> {
    const s = this.#stmt
    const expire = this.db.transaction((): number => {
      type Due = { store_id: string; id: string; pending_until: number }
      const due = s.duePendingRequests.all(now.getTime(), limit) as Due[]
      for (const r of due) {
        s.setAccessRequestStatus.run('expired', null, r.store_id, r.id)
        const at = new Date(r.pending_until)
        const event = { type: 'expired' as const, actor: EXPIRY_ACTOR, at, reason: '' }
        this.#appendEvent(r.store_id, r.id, event)
      }
      return due.length
    })
    return expire.immediate()
  }

  /** #pendingAt returns undefined when the request is pending at ts, else why it is not. */
  #pendingAt(storeId: string, id: string, ts: number): AccessRequestDecision | undefined {
    const row = this.#stmt.getAccessRequest.get(storeId, id) as AccessRequestRow | undefined
    if (!row) return { ok: false, status: 'missing' }
    const status = effectiveStatus(row.status, row.pending_until, ts)
    return status === 'pending' ? undefined : { ok: false, status }
  }

  /**
   * #grant writes a JIT grant inside the caller's transaction. Absent (or expired, not yet
   * swept): written, under a new revision. Present without a condition: its expiry becomes the
   * later of the two (an unexpiring tuple stays as it is), recorded as a delete and a write so
   * a feed consumer sees the new expiry. Present with a condition: refused, since replacing it
   * would drop the condition and keeping it would not grant what was approved.
   */
  #grant(storeId: string, t: Tuple, ts: number): AccessRequestDecision {
    const s = this.#stmt
    const key = keyOf(storeId, t)
    const expires = t.expiresAt ?? null
    const existing = s.existingTuple.get(...key) as ExistingRow | undefined
    const live = existing && (existing.expires_at === null || existing.expires_at > ts)
    if (existing && live) {
      if (existing.condition_name !== '' || existing.condition_context !== null) {
        const conflict = `${describeTuple(t)} already exists with a condition`
        return { ok: false, status: 'pending', conflict }
      }
      if (existing.expires_at === null || (expires !== null && existing.expires_at >= expires)) {
        return { ok: true, revision: (s.headRevision.get(storeId) as number | undefined) ?? 0 }
      }
    }
    const revision = s.bumpRevision.get(storeId) as number
    let seq = 0
    if (existing) {
      s.deleteRow.run(...key)
      logDelete(s, storeId, revision, seq++, t, ts)
    }
    s.insertTuple.run(...key, '', null, revision, ts, expires)
    logWrite(s, storeId, revision, seq++, t, null, ts)
    return { ok: true, revision }
  }

  #appendEvent(storeId: string, id: string, e: AccessRequestEvent): void {
    this.#stmt.insertEvent.run(storeId, id, storeId, id, e.type, e.actor, e.at.getTime(), e.reason)
  }

  #withEvents(storeId: string, rows: AccessRequestRow[]): AccessRequestRecord[] {
    if (rows.length === 0) return []
    const ids = rows.map(() => '?').join(', ')
    const events = this.db
      .prepare(
        `SELECT * FROM access_request_events WHERE store_id = ? AND request_id IN (${ids}) ORDER BY request_id, seq`,
      )
      .all(storeId, ...rows.map((r) => r.id)) as EventRow[]
    return rows.map((r) => rowToAccessRequest(r, events.filter((e) => e.request_id === r.id)))
  }

  async putTokenIssuer(input: TokenIssuerInput, now: Date): Promise<TokenIssuerPut> {
    return this.#tokenIssuers.put(input, now)
  }

  async getTokenIssuer(storeId: string, name: string): Promise<TokenIssuerRecord | undefined> {
    return this.#tokenIssuers.get(storeId, name)
  }

  async listTokenIssuers(storeId: string): Promise<TokenIssuerRecord[]> {
    return this.#tokenIssuers.list(storeId)
  }

  async deleteTokenIssuer(storeId: string, name: string): Promise<boolean> {
    return this.#tokenIssuers.delete(storeId, name)
  }

  async writeAssertions(storeId: string, modelId: string, assertions: unknown[]): Promise<void> {
    this.#stmt.writeAssertions.run(storeId, modelId, JSON.stringify(assertions))
  }

  async readAssertions(storeId: string, modelId: string): Promise<unknown[] | undefined> {
    const json = this.#stmt.readAssertions.get(storeId, modelId) as string | undefined
    return json === undefined ? undefined : JSON.parse(json)
  }

  appendDecisions(decisions: StoredDecision[], uses: GrantUse[]): Promise<void> {
    return this.#audit.appendDecisions(decisions, uses)
  }

  listDecisions(storeId: string, q: DecisionQuery): Promise<Page<StoredDecision>> {
    return this.#audit.listDecisions(storeId, q)
  }

  deleteDecisionsBefore(before: number, limit: number): Promise<number> {
    return this.#audit.deleteDecisionsBefore(before, limit)
  }

  forgetGrantUsage(before: number, limit: number): Promise<number> {
    return this.#audit.forgetGrantUsage(before, limit)
  }

  getDecisionLogSettings(storeId: string): Promise<DecisionLogSettings | undefined> {
    return this.#audit.getDecisionLogSettings(storeId)
  }

  putDecisionLogSettings(storeId: string, settings: DecisionLogSettings): Promise<void> {
    return this.#audit.putDecisionLogSettings(storeId, settings)
  }

  listGrants(storeId: string, user: Subject, q: GrantsQuery): Promise<Page<GrantWithUsage>> {
    return this.#audit.listGrants(storeId, user, q)
  }

  identityGrantStats(storeId: string, userType: string, q: IdentityStatsQuery): Promise<Page<IdentityGrantStats>> {
    return this.#audit.identityGrantStats(storeId, userType, q)
  }

  async close(): Promise<void> {
    await this.#audit.close()
    if (this.db.open) this.db.close()
  }
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
  /** readObject statements by limit (the limit is part of the SQL; see readObject). */
  readonly #objectStatements: Map<number, Database.Statement>

  /** The reader's instant (ms): tuples with expires_at <= now are invisible. */
  readonly #now: number

  constructor(
    storeId: string,
    now: number,
    stmt: Statements,
    db: Database.Database,
    inStatements: Map<number, Database.Statement>,
    objectStatements: Map<number, Database.Statement>,
  ) {
    this.#store = storeId
    this.#now = now
    this.#stmt = stmt
    this.#db = db
    this.#inStatements = inStatements
    this.#objectStatements = objectStatements
  }

  /**
   * readObject is the hot read of a check: one per object visited. It returns only the columns
   * the query does not already fix, as arrays (`.raw()`), with the limit written into the SQL:
   * a bound `LIMIT ?` made SQLite's plan about twice as slow, and every column turned into a JS
   * string costs.
   */
  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    let stmt = this.#objectStatements.get(limit)
    if (!stmt) {
      stmt = this.#db
        .prepare(
          `SELECT relation, user_relation, user_type, user_id, condition_name, condition_context, expires_at FROM tuples WHERE store_id = ? AND object_type = ? AND object_id = ? AND ${LIVE} LIMIT ${Math.floor(limit) + 1}`,
        )
        .raw()
      this.#objectStatements.set(limit, stmt)
    }
    const rows = stmt.all(this.#store, objectType, objectId, this.#now) as ObjectRow[]
    if (rows.length > limit) return undefined
    const out: Tuple[] = new Array(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]
      const t: Tuple = {
        objectType,
        objectId,
        relation: r[0],
        userRelation: r[1],
        userType: r[2],
        userId: r[3],
        conditionName: r[4],
        conditionContext: r[5] === null ? undefined : JSON.parse(r[5]),
      }
      if (r[6] !== null) t.expiresAt = r[6]
      out[i] = t
    }
    return out
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const values = [this.#store, objectType, objectId, relation, this.#now]
    const rows = this.#stmt.objectRelation.all(...values)
    return (rows as TupleRow[]).map(rowToTuple)
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const out: Tuple[] = []
    for (const u of users) {
      const row = this.#stmt.exactUser.get(
        this.#store,
        objectType,
        objectId,
        relation,
        u.relation,
        u.type,
        u.id,
        this.#now,
      ) as TupleRow | undefined
      if (row) out.push(rowToTuple(row))
    }
    return out
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const rows = this.#stmt.usersets.all(this.#store, objectType, objectId, relation, this.#now)
    return (rows as TupleRow[]).map(rowToTuple)
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    if (users.length === 1) {
      const u = users[0]
      const values = [this.#store, objectType, relation, u.type, u.relation, u.id, this.#now]
      const rows = this.#stmt.startingWithUser.all(...values)
      return (rows as TupleRow[]).map(rowToTuple)
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
        const ids = chunk.map((u) => u.id)
        const { type, relation: userRelation } = chunk[0]
        const values = [this.#store, objectType, relation, type, userRelation, this.#now, ...ids]
        const rows = stmt.all(...values) as TupleRow[]
        for (const r of rows) out.push(rowToTuple(r))
      }
    }
    return out
  }

  #startingWithUsers(n: number): Database.Statement {
    let stmt = this.#inStatements.get(n)
    if (!stmt) {
      stmt = this.#db.prepare(
        `SELECT ${TUPLE_COLUMNS} FROM tuples WHERE store_id = ? AND object_type = ? AND relation = ? AND user_type = ? AND user_relation = ? AND ${LIVE} AND user_id IN (${Array(n).fill('?').join(', ')})`,
      )
      this.#inStatements.set(n, stmt)
    }
    return stmt
  }

}

