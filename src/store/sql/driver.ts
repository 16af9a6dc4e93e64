/**
 * The seam between the SQL core (this folder: the statements both dialects share, written once)
 * and a dialect's driver (sqlite/index.ts, postgres/index.ts): how statements run, and the few
 * statements that differ.
 *
 * A transaction body is written once, as a generator that yields each statement and receives
 * its result (`const rows = yield* all<Row>(sql, params)`). The SQLite driver runs it to the end
 * synchronously inside better-sqlite3's `db.transaction()`, so no other request's statement can
 * interleave on its one connection (it would see uncommitted rows); the PostgreSQL driver runs
 * it with an await per statement on one pooled client between BEGIN and COMMIT. Statements are
 * written with `?` placeholders; the PostgreSQL driver numbers them (`$1`, `$2`, …). Both cache
 * a statement by its text (SQLite: prepared statements; PostgreSQL: named prepared statements).
 *
 * @module
 */
import type { TupleRow } from '../common.ts'
import type { PoolStats, TupleReader, WriteRequest } from '../ports.ts'
import type { PlannedChange, StoredByTuple, StoredState } from '../write-plan.ts'
import type { TupleIdentity } from '../../core/tuple.ts'

/** One statement for the driver to run: its rows, its first row, or the number of rows changed. */
export type Statement =
  | { readonly kind: 'all' | 'get' | 'run'; readonly sql: string; readonly params: readonly unknown[] }
    /**
   * The same statement `count` times, with the parameters `row(i)` (SQLite's per-row batches):
   * each list is made when it is bound, so a large batch does not hold them all at once.
   */
  | {
      readonly kind: 'runEach'
      readonly sql: string
      readonly count: number
      readonly row: (i: number) => readonly unknown[]
    }
    /**
   * PostgreSQL's `COPY … FROM STDIN` (the bulk load, postgres/bulk.ts): `chunks()` makes the
   * data in COPY's text format, a piece at a time; the result is the number of rows copied. Only
   * a driver that has COPY yields it.
   */
  | { readonly kind: 'copyFrom'; readonly sql: string; readonly chunks: () => Iterable<string> }

/** A transaction body (or a step of one): yields statements, gets their results, returns T. */
export type Tx<T> = Generator<Statement, T, unknown>

/** all: every row of `sql`. */
export function* all<R>(sql: string, params: readonly unknown[]): Tx<R[]> {
  return (yield { kind: 'all', sql, params }) as R[]
}

/** get: the first row of `sql`, or undefined. */
export function* get<R>(sql: string, params: readonly unknown[]): Tx<R | undefined> {
  return (yield { kind: 'get', sql, params }) as R | undefined
}

/** run: how many rows `sql` changed. */
export function* run(sql: string, params: readonly unknown[]): Tx<number> {
  return (yield { kind: 'run', sql, params }) as number
}

/** runEach: `sql` with the parameters row(0), row(1), …; how many rows each run changed. */
export function* runEach(sql: string, count: number, row: (i: number) => readonly unknown[]): Tx<number[]> {
  if (count === 0) return []
  return (yield { kind: 'runEach', sql, count, row }) as number[]
}

/** What storedForWrite found: the stored state, and the writes and deletes it applied already. */
export interface StoredForWrite {
  /**
   * The stored state of the keys the request names: as rows (the SQL core keys them by
   * tupleKey for the planner), or per request tuple (`byTuple`, see StoredLookup), `rows` then
   * unread.
   */
  rows: TupleRow[]
  byTuple?: StoredByTuple
  /** The deletes and writes (the request's own objects) applied already; see insertedAll. */
  applied: ReadonlySet<TupleIdentity>
  /**
   * Every write was inserted already, each into an empty key (the planner's `writesAbsent`);
   * `applied` then need not list the writes (a bulk import spares a set of 10,000 entries).
   */
  insertedAll: boolean
}

/** One tuple of a bulk load (sql/bulk.ts) as it is stored: its planned write, and its position in the load. */
export interface BulkRow extends PlannedChange {
  readonly index: number
}

/** What a driver's bulkInsert did with a load's rows. */
export interface BulkInserted {
  /** Rows inserted, each recorded in the changelog (an expired row it replaced recorded as a delete first). */
  written: number
  /**
   * The rows not inserted, in load order, each with the live state its key held: stored before
   * the load, or inserted by an earlier row of it.
   */
  met: { row: BulkRow; stored: StoredState }[]
}

/** How a transaction may be retried. */
export interface TransactionOptions {
  /**
   * Running the body again after it committed leaves the same state (a Write whose duplicates
   * and missing deletes are ignored, the decision log's insert-or-ignore): a connection lost
   * during COMMIT is then retried instead of reported.
   */
  idempotent?: boolean
}

/** A decision_log row's values in DECISION_COLUMNS order; a grant_usage upsert's 8 values. */
export type ValueRow = (string | number | null)[]

/**
 * SqlDriver is what a SQL backend provides: the connection, the dialect's spelling of a few
 * clauses, the batch statements that differ, and its hot tuple reader.
 */
export interface SqlDriver {
  /** Its backend's name (SqlBackend.name, sql/backend.ts), which the datastore reports as `dialect`. */
  readonly dialect: string
  /** How many sibling subproblems the engine should evaluate at once over this store. */
  readonly preferredConcurrency: number
  /**
   * Appended to a SELECT whose rows the transaction must hold until it ends (PostgreSQL's
   * ` FOR UPDATE`); '' where a write transaction already holds the whole database (SQLite).
   */
  readonly forUpdate: string
  /** Like forUpdate, but rows another transaction holds are skipped (` FOR UPDATE SKIP LOCKED`). */
  readonly forUpdateSkipLocked: string
  /** The physical row id, for deleting a bounded set of rows (`rowid`, `ctid`). */
  readonly rowId: string
  /** The condition "the row is one of those `select` (of rowId) finds", as the dialect plans it best. */
  rowIdIn(select: string): string
  /**
   * The most decision_log rows one listDecisions call reads, or undefined to let the database
   * filter the whole log (it has indexes for the filters). SQLite's log has no secondary
   * indexes (see schema/sqlite.ts), so a filtered page scans a bounded window of it.
   */
  readonly decisionScanBudget: number | undefined
  /** The DELETE of up to ? decisions (any store) made before ? (parameters: before, limit). */
  readonly deleteDecisionsSql: string

  all<R>(sql: string, params: readonly unknown[]): Promise<R[]>
  get<R>(sql: string, params: readonly unknown[]): Promise<R | undefined>
  run(sql: string, params: readonly unknown[]): Promise<number>
  /**
   * transaction runs `body` in one transaction that takes the write lock up front (SQLite:
   * IMMEDIATE) and retries on deadlock or serialization failure (PostgreSQL), and returns what
   * it returns; a throw rolls everything back. A PostgreSQL connection lost before COMMIT was
   * sent is retried too (nothing of the attempt is visible); one lost during COMMIT leaves the
   * outcome unknown, so it is retried only when `options.idempotent` says that running the body
   * again after it committed changes nothing, else the outage error is thrown and the caller
   * must read back.
   */
  transaction<T>(body: () => Tx<T>, options?: TransactionOptions): Promise<T>

  /**
   * nextRevision takes the store for a change of its tuples and returns the revision the change
   * commits as (head + 1), or undefined when there is no such store. PostgreSQL reads the store
   * row for update (writers to one store take turns on every replica); SQLite, whose IMMEDIATE
   * transaction already holds the database, bumps the revision at once (one statement).
   */
  nextRevision(storeId: string): Tx<number | undefined>
  /** settleRevision ends what nextRevision began: the store's revision is `revision` if `changed`, else unchanged. */
  settleRevision(storeId: string, revision: number, changed: boolean): Tx<void>
  /** The stored rows of `keys` in `storeId` (any order), expired ones included. */
  storedTuples(storeId: string, keys: readonly TupleIdentity[]): Tx<TupleRow[]>
  /**
   * storedForWrite: the stored state of the keys a Write names, for the planner. A driver may
   * insert the request's new tuples here already, under `revision` (SQLite: `INSERT OR IGNORE`
   * answers "absent" for the common case in the one statement the insert costs anyway), and
   * returns the writes (the request's own objects) it so inserted. Such a row is exactly what the
   * plan inserts for its key: the first write of a key absent before the request, whose planned
   * change names that same object; applying the plan skips their inserts. Likewise a driver may
   * remove the live rows the request deletes (SQLite: `DELETE … RETURNING`, which also reads the
   * row's state), returning them and the deletes (the request's objects) it so applied.
   * A driver that applies nothing early returns an empty `applied` and `insertedAll: false`.
   */
  storedForWrite(storeId: string, req: WriteRequest, revision: number, ts: number): Tx<StoredForWrite>
  /** Removes the rows of `keys`, whatever their expiry. */
  deleteRows(storeId: string, keys: readonly TupleIdentity[]): Tx<void>
  /** Inserts the planned writes' rows under `revision`, written at `ts`. */
  insertTuples(storeId: string, writes: readonly PlannedChange[], revision: number, ts: number): Tx<void>
  /**
   * bulkInsert inserts the rows whose key is absent under `revision`, written at `ts`, and
   * records each in the changelog (seq 0, 1, …, in any order); of rows repeating a key, the
   * first in load order is the one inserted. A key whose row expired at or before `ts` counts as
   * absent: the row is removed first and its removal recorded, as the sweeper would have. Every
   * other row is `met`, with its key's live state, for the SQL core to judge (sql/bulk.ts).
   * SQLite: multi-row `INSERT OR IGNORE`; PostgreSQL: COPY into a staging table, then one
   * `INSERT … SELECT … ON CONFLICT DO NOTHING`.
   */
  bulkInsert(storeId: string, rows: readonly BulkRow[], revision: number, ts: number): Tx<BulkInserted>
  /** Records `changes` in the changelog at (revision, 0), (revision, 1), … */
  insertChanges(storeId: string, revision: number, changes: readonly PlannedChange[], ts: number): Tx<void>
  /** Marks the given pending requests expired and appends their `expired` events by `actor`. */
  expireRequests(due: readonly { store_id: string; id: string; pending_until: number }[], actor: string): Tx<void>
  /** Writes a batch of decision rows and grant-usage upserts (keeping the latest use) at once. */
  appendDecisions(decisions: ValueRow[], uses: ValueRow[]): Promise<void>

  /** Told how many tuples a committed Write inserted (PostgreSQL refreshes statistics now and then). */
  noteWritten(tuples: number): void
  /** The hot reader of one store's live tuples at `now` (ms). */
  reader(storeId: string, now: number): TupleReader
  /** A trivial statement, answered or rejected (readiness; see DatastoreHealth). */
  ping(): Promise<void>
  /** The migrations of its backend's journal the database has not applied. */
  pendingMigrations(): Promise<string[]>
  /** Its connection pool's state; undefined for a single connection. */
  poolStats(): PoolStats | undefined
  close(): Promise<void>
}
