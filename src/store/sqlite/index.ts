/**
 * The SQLite driver: the embedded store over one SQLite file (or `:memory:`) with
 * better-sqlite3. WAL mode, migrations applied at open, every statement prepared once (cached by
 * its text). better-sqlite3 is synchronous: a transaction body (sql/driver.ts) runs to its end
 * inside one `db.transaction()`, so nothing interleaves on the connection; the datastore's
 * methods stay async so the engine is the same over PostgreSQL.
 *
 * What differs from PostgreSQL: batches are prepared single-row statements run one by one (with
 * better-sqlite3 that beats one multi-row statement: binding a long argument list costs more
 * than it saves), except the bulk load's multi-row inserts (bulk.ts), an IMMEDIATE transaction
 * holds the database instead of row locks, a wait for the write lock another process holds is
 * made on a timer rather than inside SQLite (busy.ts), the decision log is written from a worker
 * thread (decision-writer.ts), and the hot reader below.
 *
 * @module
 */
import Database from 'better-sqlite3'
import type { DatastoreUnavailable } from '../../core/errors.ts'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { formatSubject, type Subject, type Tuple, type TupleIdentity } from '../../core/tuple.ts'
import { canonicalContext, rowToTuple, type TupleRow } from '../common.ts'
import { MigrationsPendingError, migrationsFolder, migrationStatus, pendingMigrations, type MigrationStatus } from '../migrations.ts'
import type { PoolStats, QueryObserver, TupleReader, WriteRequest } from '../ports.ts'
import { InvalidDatabaseUrl, type SqlBackend } from '../sql/backend.ts'
import { SqlDatastore } from '../sql/datastore.ts'
import {
  get,
  run,
  runEach,
  type BulkInserted,
  type BulkRow,
  type SqlDriver,
  type Statement,
  type StoredForWrite,
  type Tx,
  type ValueRow,
} from '../sql/driver.ts'
import { KEY_COLUMNS, objectsFromRows, readObjectsSql, TUPLE_COLUMNS, type ObjectsRow } from '../sql/tuples.ts'
import { tupleKey, type PlannedChange, type StoredState } from '../write-plan.ts'
import { sqliteBulkInsert } from './bulk.ts'
import { LOCK_WAIT_BUDGET_MS, retryWhileBusy, SERVING_BUSY_TIMEOUT_MS } from './busy.ts'
import { DecisionWriter, INSERT_DECISION_SQL, UPSERT_USAGE_SQL } from './decision-writer.ts'
import { KEY_MATCH, LIVE, SQL, type StateRow } from './statements.ts'

/** The longest `IN (…)` list one statement binds. */
const IN_CHUNK = 50

/** A readObject row: relation, user_relation, user_type, user_id, condition_name, condition_context, expires_at. */
type ObjectRow = [string, string, string, string, string, string | null, number | null]

/** The reader's statements, prepared once per connection. */
type ReaderStatements = ReturnType<typeof prepareReads>

function prepareReads(db: Database.Database) {
  return {
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
  }
}

export interface SqliteOptions {
  /** A file path, or ':memory:'. */
  filename: string
  /**
   * The most decisions one listDecisions call reads (default 100,000): the SQLite decision log
   * has no secondary indexes, so a filtered page scans a bounded window (a setting for tests).
   */
  decisionScanBudget?: number
  /** Told each operation's duration and outcome (the metrics). */
  observer?: QueryObserver
  /**
   * The `synchronous` pragma (PEMBA_SQLITE_SYNCHRONOUS). `full` (the default): in WAL mode every
   * commit is synced to disk before it returns, so an acknowledged write survives a power loss or
   * an OS crash. `normal`: the WAL is synced only at checkpoints; a commit survives the process
   * being killed (the OS holds it) but the last ones may be lost, never corrupting the file, if
   * the machine loses power. bench/README.md measures what `full` costs.
   */
  synchronous?: 'full' | 'normal'
  /** Told each time an operation fails because the file is locked or the disk fails (the outage tracker). */
  onUnavailable?: (err: DatastoreUnavailable) => void
  /**
   * How long an operation waits in all, on a timer, for a file whose write lock another process
   * holds before it fails with SQLITE_BUSY (503). Default 5,000 ms; a setting for tests.
   */
  lockWaitMs?: number
}

/** SqliteDriver runs the SQL core's statements on one better-sqlite3 connection. */
class SqliteDriver implements SqlDriver {
  readonly db: Database.Database
  readonly dialect = sqliteBackend.name
  /** better-sqlite3 answers synchronously, so evaluating siblings one by one short-circuits best. */
  readonly preferredConcurrency = 1
  /** The most decisions one listDecisions call reads (see SqliteOptions). */
  readonly decisionScanBudget: number
  /** An IMMEDIATE transaction already holds the database's write lock: no row locks to take. */
  readonly forUpdate = ''
  readonly forUpdateSkipLocked = ''
  readonly rowId = 'rowid'
  rowIdIn(select: string): string {
    return `rowid IN (${select})`
  }
  /**
   * Among the oldest `limit` rows (rowids grow in insertion order, which is decision order),
   * those decided before `before`: no index on `at` needed.
   */
  readonly deleteDecisionsSql =
    'DELETE FROM decision_log WHERE at < ? AND rowid IN (SELECT rowid FROM decision_log ORDER BY rowid LIMIT ?)'
  /** Prepared statements by SQL text. */
  readonly #statements = new Map<string, Database.Statement>()
  readonly #transaction: Database.Transaction<(body: () => Tx<unknown>) => unknown>
  readonly #reads: ReaderStatements
  /** `user_id IN (?, …)` statements by list length, prepared on first use. */
  readonly #inStatements = new Map<number, Database.Statement>()
  readonly #objectStatements = new Map<number, Database.Statement>()
  /** The worker-thread writer of a file database; undefined for `:memory:`. */
  readonly #writer: DecisionWriter | undefined
  /** How long an operation waits in all for the file's write lock (see SqliteOptions.lockWaitMs). */
  readonly #lockWaitMs: number

  constructor(options: SqliteOptions) {
    if (options.filename !== ':memory:') mkdirSync(dirname(options.filename), { recursive: true })
    this.db = new Database(options.filename)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`)
    // Migrations run at start, before anything is served: they may wait for the lock in place.
    this.db.pragma(`busy_timeout = ${LOCK_WAIT_BUDGET_MS}`)
    this.db.pragma('foreign_keys = ON')
    migrate(drizzle(this.db), { migrationsFolder: sqliteBackend.migrationsFolder })
    // Serving, a wait for the lock must not hold the event loop: SQLite waits a few ms in place,
    // then the driver waits on a timer (busy.ts) up to the lock-wait budget.
    this.db.pragma(`busy_timeout = ${SERVING_BUSY_TIMEOUT_MS}`)
    this.#lockWaitMs = options.lockWaitMs ?? LOCK_WAIT_BUDGET_MS
    this.decisionScanBudget = options.decisionScanBudget ?? 100_000
    this.#transaction = this.db.transaction((body: () => Tx<unknown>) => this.#drive(body()))
    this.#reads = prepareReads(this.db)
    this.#writer = options.filename === ':memory:' ? undefined : new DecisionWriter(options.filename)
  }

  #prepare(sql: string): Database.Statement {
    let s = this.#statements.get(sql)
    if (!s) {
      s = this.db.prepare(sql)
      this.#statements.set(sql, s)
    }
    return s
  }

  #execute(op: Statement): unknown {
    const s = this.#prepare(op.sql)
    switch (op.kind) {
      // Spread: better-sqlite3 binds arguments faster than the elements of one array argument.
      case 'all':
        return s.all(...op.params)
      case 'get':
        return s.get(...op.params)
      case 'run':
        return s.run(...op.params).changes
      case 'runEach': {
        const out: number[] = new Array(op.count)
        for (let i = 0; i < op.count; i++) out[i] = s.run(...op.row(i)).changes
        return out
      }
      case 'copyFrom':
        throw new Error('SQLite has no COPY: its bulk load is sqlite/bulk.ts')
    }
  }

  /** #drive runs a transaction body to its end, synchronously. */
  #drive<T>(body: Tx<T>): T {
    let step = body.next()
    while (!step.done) step = body.next(this.#execute(step.value))
    return step.value
  }

  // A statement outside a transaction (some of them write: the sweeper's deletes) waits for a
  // locked file on a timer like a transaction does; a WAL reader is normally never refused, so
  // for reads this is only the rare case (a checkpoint resetting the WAL, recovery after a crash).
  async all<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return retryWhileBusy(() => this.#prepare(sql).all(...params) as R[], this.#lockWaitMs)
  }

  async get<R>(sql: string, params: readonly unknown[]): Promise<R | undefined> {
    return retryWhileBusy(() => this.#prepare(sql).get(...params) as R | undefined, this.#lockWaitMs)
  }

  async run(sql: string, params: readonly unknown[]): Promise<number> {
    return retryWhileBusy(() => this.#prepare(sql).run(...params).changes, this.#lockWaitMs)
  }

  /**
   * IMMEDIATE takes the write lock before the first read, so two processes on one file take
   * turns. While another holds it, the attempt is made again on a timer (busy.ts explains why
   * that is safe), never by blocking the event loop.
   */
  async transaction<T>(body: () => Tx<T>): Promise<T> {
    return retryWhileBusy(() => this.#transaction.immediate(body) as T, this.#lockWaitMs)
  }

  /** The revision bump itself: IMMEDIATE already holds the database, so no lock to take first. */
  *nextRevision(storeId: string): Tx<number | undefined> {
    return (yield* get<{ revision: number }>(SQL.bumpRevision, [storeId]))?.revision
  }

  *settleRevision(storeId: string, _revision: number, changed: boolean): Tx<void> {
    if (!changed) yield* run(SQL.unbumpRevision, [storeId])
  }

  // The batch statements below run their rows directly on the prepared statements instead of
  // yielding them: these generators only ever run inside #drive, synchronously, within the
  // transaction, and binding each row's values as arguments spares an array per row (a bulk
  // import writes 10,000 rows a transaction).

  /**
   * storedForWrite applies the request's deletes of live tuples and inserts its writes first
   * (`DELETE … RETURNING`, `INSERT OR IGNORE`): a new tuple, the common case, so costs one
   * statement, not a look-up too. Only the writes it did not insert are looked up; when it
   * inserted them all (`insertedAll`), neither it nor the planner builds a key per write. The
   * state found is given per request tuple (StoredByTuple), so a re-import of stored tuples
   * builds no key either: one state object per row found, nothing else.
   */
  *storedForWrite(storeId: string, req: WriteRequest, revision: number, ts: number): Tx<StoredForWrite> {
    const { deletes, writes } = req
    const applied = new Set<TupleIdentity>()
    // The state per request tuple (StoredByTuple): no key is built per stored row.
    const deleted: (StoredState | undefined)[] = []
    const deleteLive = this.#prepare(SQL.deleteLive).raw()
    for (let i = 0; i < deletes.length; i++) {
      const { objectType, objectId, relation, userRelation, userType, userId } = deletes[i]
      const r = deleteLive.get(storeId, objectType, objectId, relation, userRelation, userType, userId, ts) as StateRow | undefined
      if (r === undefined) continue
      deleted[i] = { conditionName: r[0], context: r[1], expiresAt: r[2] }
      applied.add(deletes[i])
    }
    const insertIgnore = this.#prepare(SQL.insertIgnore)
    let lookups: number[] | undefined
    const fresh: Tuple[] = []
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]
      const { objectType, objectId, relation, userRelation, userType, userId, conditionName } = w
      const context = canonicalContext(w.conditionContext)
      const expires = w.expiresAt ?? null
      const { changes } = insertIgnore.run(
        storeId, objectType, objectId, relation, userRelation, userType, userId, conditionName, context, revision, ts, expires,
      )
      if (changes === 1) fresh.push(w)
      else (lookups ??= []).push(i)
    }
    if (lookups === undefined) return { rows: [], byTuple: { deletes: deleted, writes: [] }, applied, insertedAll: true }
    for (const w of fresh) applied.add(w)
    if (fresh.length > 0) {
      // A key this request just inserted was absent before it: a later write of it must meet
      // "absent" (the planner knows of the first), not the row inserted here.
      const keys = new Set(fresh.map(tupleKey))
      lookups = lookups.filter((i) => !keys.has(tupleKey(writes[i])))
    }
    const written: (StoredState | undefined)[] = new Array(writes.length)
    const stored = this.#prepare(SQL.storedState).raw()
    for (const i of lookups) {
      const { objectType, objectId, relation, userRelation, userType, userId } = writes[i]
      const r = stored.get(storeId, objectType, objectId, relation, userRelation, userType, userId) as StateRow | undefined
      if (r !== undefined) written[i] = { conditionName: r[0], context: r[1], expiresAt: r[2] }
    }
    return { rows: [], byTuple: { deletes: deleted, writes: written }, applied, insertedAll: false }
  }

  /**
   * storedTuples (a grant's look-up) reads only the state columns, as an array, and takes the
   * key columns from the key asked for: it makes no strings it already has.
   */
  *storedTuples(storeId: string, keys: readonly TupleIdentity[]): Tx<TupleRow[]> {
    const stored = this.#prepare(SQL.storedState).raw()
    const rows: TupleRow[] = []
    for (const k of keys) {
      const { objectType, objectId, relation, userRelation, userType, userId } = k
      const r = stored.get(storeId, objectType, objectId, relation, userRelation, userType, userId) as StateRow | undefined
      if (r === undefined) continue
      rows.push({
        object_type: objectType,
        object_id: objectId,
        relation,
        user_relation: userRelation,
        user_type: userType,
        user_id: userId,
        condition_name: r[0],
        condition_context: r[1],
        expires_at: r[2],
      })
    }
    return rows
  }

  *deleteRows(storeId: string, keys: readonly TupleIdentity[]): Tx<void> {
    const deleteRow = this.#prepare(SQL.deleteRow)
    for (const k of keys) deleteRow.run(storeId, k.objectType, k.objectId, k.relation, k.userRelation, k.userType, k.userId)
  }

  *insertTuples(storeId: string, writes: readonly PlannedChange[], revision: number, ts: number): Tx<void> {
    const insert = this.#prepare(SQL.insertTuple)
    for (const { tuple: t, conditionName, context, expiresAt } of writes) {
      const { objectType, objectId, relation, userRelation, userType, userId } = t
      insert.run(storeId, objectType, objectId, relation, userRelation, userType, userId, conditionName, context, revision, ts, expiresAt)
    }
  }

  *insertChanges(storeId: string, revision: number, changes: readonly PlannedChange[], ts: number): Tx<void> {
    const insert = this.#prepare(SQL.insertChange)
    for (let seq = 0; seq < changes.length; seq++) {
      const { tuple: t, conditionName, context, expiresAt, operation } = changes[seq]
      const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
      const op = operation === 'write' ? 0 : 1
      insert.run(storeId, revision, seq, t.objectType, t.objectId, t.relation, user, conditionName, context, expiresAt, op, ts)
    }
  }

  /** Multi-row inserts in the transaction, one by one where a statement met a stored key (bulk.ts). */
  bulkInsert(storeId: string, rows: readonly BulkRow[], revision: number, ts: number): Tx<BulkInserted> {
    return sqliteBulkInsert(this.db, (sql) => this.#prepare(sql), storeId, rows, revision, ts)
  }

  *expireRequests(due: readonly { store_id: string; id: string; pending_until: number }[], actor: string): Tx<void> {
    yield* runEach(SQL.expireRequest, due.length, (i) => [due[i].store_id, due[i].id])
    yield* runEach(SQL.insertEvent, due.length, (i) => {
      const r = due[i]
      return [r.store_id, r.id, r.store_id, r.id, 'expired', actor, r.pending_until, '']
    })
  }

  /**
   * appendDecisions writes one batch in one transaction: from a worker thread when the database
   * is a file (see decision-writer.ts), in this thread for an in-memory database, which no other
   * connection can open.
   */
  async appendDecisions(decisions: ValueRow[], uses: ValueRow[]): Promise<void> {
    if (this.#writer) return this.#writer.write(decisions, uses)
    await this.transaction(function* () {
      yield* runEach(INSERT_DECISION_SQL, decisions.length, (i) => decisions[i])
      yield* runEach(UPSERT_USAGE_SQL, uses.length, (i) => uses[i])
    })
  }

  noteWritten(): void {}

  reader(storeId: string, now: number): TupleReader {
    return new SqliteTupleReader(storeId, now, this.#reads, this.db, this.#inStatements, this.#objectStatements)
  }

  /** One statement on the connection: it is in this process, so it answers at once or throws (closed). */
  async ping(): Promise<void> {
    this.#prepare('SELECT 1').get()
  }

  /** Read on the open connection: the newest applied migration, compared with the journal. */
  async pendingMigrations(): Promise<string[]> {
    const newest = this.#prepare('SELECT MAX(CAST(created_at AS INTEGER)) AS newest FROM __drizzle_migrations').get() as
      | { newest: number | null }
      | undefined
    return pendingMigrations(sqliteBackend.migrationsFolder, newest?.newest ?? undefined)
  }

  /** One connection, no pool. */
  poolStats(): PoolStats | undefined {
    return undefined
  }

  /** close ends the writer thread (after the batches already handed to it), then the connection. */
  async close(): Promise<void> {
    await this.#writer?.close()
    if (this.db.open) this.db.close()
  }
}

/** SqliteDatastore: the SQL core over a SqliteDriver. */
export class SqliteDatastore extends SqlDatastore {
  /** The connection (for tests and tools that inspect the file). */
  readonly db: Database.Database

  constructor(options: SqliteOptions) {
    const driver = new SqliteDriver(options)
    super(driver, { observer: options.observer, onUnavailable: options.onUnavailable })
    this.db = driver.db
  }
}

/** What sqliteBackend makes of `sqlite:./data/pemba.db`: `{ filename: './data/pemba.db' }`. */
export interface SqliteTarget {
  /** A file path, or ':memory:'. */
  filename: string
}

/**
 * sqliteBackend: `sqlite:<path>`, `sqlite://<path>` or `sqlite::memory:`. Opening applies the
 * migrations (the file and its folder are created if missing); under `check` the file is first
 * only read (checkSqliteMigrations), so a refused start leaves nothing behind.
 */
export const sqliteBackend: SqlBackend<SqliteTarget> = {
  name: 'sqlite',
  schemes: ['sqlite:'],
  urlForms: ['sqlite:<path>', 'sqlite::memory:'],
  migrationsFolder: migrationsFolder('sqlite'),
  parseUrl(url) {
    let rest = url.slice('sqlite:'.length)
    if (rest.startsWith('//')) rest = rest.slice(2)
    if (rest === '') throw new InvalidDatabaseUrl('names no file')
    return { filename: rest }
  },
  redactUrl: (url) => url,
  async open(target, options) {
    if (options.migrations === 'check') checkSqliteMigrations(target.filename)
    // One process opens a SQLite file, so what was pending before is what this open applies.
    const pending = options.onMigrationsApplied ? sqliteMigrationStatus(target.filename).pending : []
    const datastore = new SqliteDatastore({
      filename: target.filename,
      observer: options.observer,
      onUnavailable: options.onUnavailable,
      synchronous: options.sqliteSynchronous,
    })
    if (pending.length > 0) options.onMigrationsApplied!(pending)
    return datastore
  },
  async migrate(target) {
    const { pending } = sqliteMigrationStatus(target.filename)
    await new SqliteDatastore({ filename: target.filename }).close()
    return pending
  },
  migrationStatus: async (target) => sqliteMigrationStatus(target.filename),
}

/**
 * checkSqliteMigrations throws MigrationsPendingError unless the SQLite file exists and has
 * every migration applied. It opens the file read-only, so a check never creates or changes a
 * database; an in-memory database is always empty and so always pending.
 */
export function checkSqliteMigrations(filename: string): void {
  const { pending } = sqliteMigrationStatus(filename)
  if (pending.length > 0) throw new MigrationsPendingError(`sqlite:${filename}`, pending)
}

/**
 * sqliteMigrationStatus reads which migrations a SQLite file has applied, opening it read-only
 * (a missing file or an in-memory database has none).
 */
function sqliteMigrationStatus(filename: string): MigrationStatus {
  let newest: number | undefined
  if (filename !== ':memory:' && existsSync(filename)) {
    const db = new Database(filename, { readonly: true, fileMustExist: true })
    try {
      const table = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'")
        .get()
      if (table) {
        const v = db.prepare('SELECT MAX(CAST(created_at AS INTEGER)) FROM __drizzle_migrations').pluck().get()
        newest = v === null || v === undefined ? undefined : Number(v)
      }
    } finally {
      db.close()
    }
  }
  return migrationStatus(sqliteBackend.migrationsFolder, newest)
}

/**
 * SqliteTupleReader reads the live tuples. It reads the newest committed state, which is at
 * least as fresh as the revision it was bound to: a check never sees older data than the
 * revision its cache entries are keyed by.
 */
class SqliteTupleReader implements TupleReader {
  readonly #store: string
  readonly #stmt: ReaderStatements
  readonly #db: Database.Database
  readonly #inStatements: Map<number, Database.Statement>
  /** readObject statements by limit (the limit is part of the SQL; see readObject). */
  readonly #objectStatements: Map<number, Database.Statement>

  /** The reader's instant (ms): tuples with expires_at <= now are invisible. */
  readonly #now: number

  constructor(
    storeId: string,
    now: number,
    stmt: ReaderStatements,
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

  /**
   * readObjects reads several objects of one type in one statement per IN_CHUNK ids (the
   * statement for each count prepared once, sql/tuples.ts's text shared with PostgreSQL).
   */
  async readObjects(objectType: string, objectIds: readonly string[], limit: number): Promise<Map<string, Tuple[] | undefined>> {
    const out = new Map<string, Tuple[] | undefined>()
    for (let i = 0; i < objectIds.length; i += IN_CHUNK) {
      const chunk = objectIds.slice(i, i + IN_CHUNK)
      const params: Record<string, unknown> = { store: this.#store, type: objectType, cap: Math.floor(limit) + 1, now: this.#now }
      chunk.forEach((id, k) => (params[`i${k}`] = id))
      const rows = this.#objectsStatement(chunk.length).all(params) as ObjectsRow[]
      for (const [id, tuples] of objectsFromRows(objectType, chunk, rows, limit)) out.set(id, tuples)
    }
    return out
  }

  #objectsStatement(n: number): Database.Statement {
    const key = -n
    let stmt = this.#inStatements.get(key)
    if (!stmt) {
      const ids = Array.from({ length: n }, (_, k) => `(@i${k})`).join(', ')
      stmt = this.#db.prepare(readObjectsSql({ store: '@store', type: '@type', ids: `VALUES ${ids}`, cap: '@cap', now: '@now' }))
      this.#inStatements.set(key, stmt)
    }
    return stmt
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

