/**
 * SQLite's side of the bulk load (driver.ts `bulkInsert`, sql/bulk.ts): multi-row
 * `INSERT OR IGNORE` statements of BULK_ROWS rows, each followed by one multi-row insert of
 * their changelog entries. Per row of a single-row statement, better-sqlite3's binding and
 * SQLite's statement start cost as much as the B-tree inserts; 250 rows a statement measured
 * ~1.4× the single-row rate on the bench data set.
 *
 * A statement that inserted fewer rows than it carried met a stored key (or repeated one): each
 * of its rows then looks its key up, and the rowid found tells whether this statement inserted
 * it (new rows take the rowids after the table's largest, in order). A fresh import so never
 * looks anything up; a re-run looks up every row (and writes nothing). (A savepoint per
 * statement, to roll back and redo such a statement row by row, halved the rate: SQLite then
 * copies every page a statement touches to its sub-journal.)
 *
 * @module
 */
import type Database from 'better-sqlite3'
import { formatSubject } from '../../core/tuple.ts'
import type { BulkInserted, BulkRow, Tx } from '../sql/driver.ts'
import { KEY_COLUMNS } from '../sql/tuples.ts'
import { KEY_MATCH, SQL, type StateRow } from './statements.ts'

/** Rows per multi-row statement: 12 parameters each, 3,000 a statement. */
const BULK_ROWS = 250

/**
 * SQLite's page cache while a bulk load runs, in KiB (the default is 2,000 KiB), given back when
 * it ends. The inserts into `tuples_by_user` land all over that index; with a small cache its
 * pages are written out and read back again and again (measured on the bench data set: 64 MiB
 * instead of the default, 10–25 % faster at 100k tuples). 256 MiB holds the indexes a load
 * writes to for a store of a few million tuples; only pages actually touched take memory.
 */
const BULK_CACHE_KIB = 262_144

const TUPLE_VALUES = `(${Array(12).fill('?').join(', ')})`

/** The multi-row inserts of `n` tuples and of their `n` changelog entries. */
function multiRow(n: number): { tuples: string; changes: string } {
  const values = Array(n).fill(TUPLE_VALUES).join(', ')
  return {
    tuples: `INSERT OR IGNORE INTO tuples (store_id, ${KEY_COLUMNS}, condition_name, condition_context, revision,
      inserted_at, expires_at) VALUES ${values}`,
    changes: `INSERT INTO changelog (store_id, revision, seq, object_type, object_id, relation, user,
      condition_name, condition_context, expires_at, operation, created_at) VALUES ${values}`,
  }
}

const MULTI_ROW = multiRow(BULK_ROWS)

/** A key's row: its rowid, then its state (a RowidStateRow). */
const STORED_ROWID = `SELECT rowid, condition_name, condition_context, expires_at FROM tuples WHERE ${KEY_MATCH}`

/**
 * sqliteBulkInsert is the SQLite driver's bulkInsert, over its connection and its statement
 * cache (`prepare`). Like the driver's other batch methods it runs its statements directly,
 * not by yielding them: it only ever runs inside the driver's synchronous transaction.
 */
export function* sqliteBulkInsert(
  db: Database.Database,
  prepare: (sql: string) => Database.Statement,
  storeId: string,
  rows: readonly BulkRow[],
  revision: number,
  ts: number,
): Tx<BulkInserted> {
  const cacheKiB = cacheSizeKiB(db)
  if (cacheKiB < BULK_CACHE_KIB) db.pragma(`cache_size = -${BULK_CACHE_KIB}`)
  try {
    const out: BulkInserted = { written: 0, met: [] }
    const tuples = prepare(MULTI_ROW.tuples)
    const changes = prepare(MULTI_ROW.changes)
    const one = new OneByOne(prepare, storeId, revision, ts, out)
    const tupleArgs: unknown[] = new Array(BULK_ROWS * 12)
    const changeArgs: unknown[] = new Array(BULK_ROWS * 12)
    let start = 0
    for (; start + BULK_ROWS <= rows.length; start += BULK_ROWS) {
      for (let i = 0; i < BULK_ROWS; i++) {
        const { tuple: t, conditionName, context, expiresAt } = rows[start + i]
        const a = i * 12
        tupleArgs[a] = storeId
        tupleArgs[a + 1] = t.objectType
        tupleArgs[a + 2] = t.objectId
        tupleArgs[a + 3] = t.relation
        tupleArgs[a + 4] = t.userRelation
        tupleArgs[a + 5] = t.userType
        tupleArgs[a + 6] = t.userId
        tupleArgs[a + 7] = conditionName
        tupleArgs[a + 8] = context
        tupleArgs[a + 9] = revision
        tupleArgs[a + 10] = ts
        tupleArgs[a + 11] = expiresAt
      }
      const { changes: inserted, lastInsertRowid } = tuples.run(...tupleArgs)
      if (inserted !== BULK_ROWS) {
        const last = Number(lastInsertRowid)
        one.sortOut(rows, start, BULK_ROWS, inserted === 0 ? Infinity : last - inserted + 1, last)
        continue
      }
      for (let i = 0; i < BULK_ROWS; i++) {
        const { tuple: t, conditionName, context, expiresAt } = rows[start + i]
        const a = i * 12
        changeArgs[a] = storeId
        changeArgs[a + 1] = revision
        changeArgs[a + 2] = one.seq++
        changeArgs[a + 3] = t.objectType
        changeArgs[a + 4] = t.objectId
        changeArgs[a + 5] = t.relation
        changeArgs[a + 6] = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
        changeArgs[a + 7] = conditionName
        changeArgs[a + 8] = context
        changeArgs[a + 9] = expiresAt
        changeArgs[a + 10] = 0
        changeArgs[a + 11] = ts
      }
      changes.run(...changeArgs)
      out.written += BULK_ROWS
    }
    // The last rows, fewer than a statement's worth: one by one (no statement per length).
    for (; start < rows.length; start++) one.insert(rows[start])
    return out
  } finally {
    if (cacheKiB < BULK_CACHE_KIB) db.pragma(`cache_size = -${cacheKiB}`)
  }
}

/** The connection's page cache size in KiB (`cache_size` is pages when positive, KiB when negative). */
function cacheSizeKiB(db: Database.Database): number {
  const size = db.pragma('cache_size', { simple: true }) as number
  return size < 0 ? -size : (size * (db.pragma('page_size', { simple: true }) as number)) / 1024
}

/** A stored row's rowid, then its StateRow. */
type RowidStateRow = [number, string, string | null, number | null]

/** OneByOne inserts rows with single-row statements, recording each change at the next seq. */
class OneByOne {
  /** The next changelog seq of the load. */
  seq = 0
  readonly #insertIgnore: Database.Statement
  readonly #insertTuple: Database.Statement
  readonly #insertChange: Database.Statement
  readonly #deleteRow: Database.Statement
  readonly #stored: Database.Statement
  readonly #storedRowid: Database.Statement
  readonly #storeId: string
  readonly #revision: number
  readonly #ts: number
  readonly #out: BulkInserted

  constructor(prepare: (sql: string) => Database.Statement, storeId: string, revision: number, ts: number, out: BulkInserted) {
    this.#insertIgnore = prepare(SQL.insertIgnore)
    this.#insertTuple = prepare(SQL.insertTuple)
    this.#insertChange = prepare(SQL.insertChange)
    this.#deleteRow = prepare(SQL.deleteRow)
    this.#stored = prepare(SQL.storedState).raw()
    this.#storedRowid = prepare(STORED_ROWID).raw()
    this.#storeId = storeId
    this.#revision = revision
    this.#ts = ts
    this.#out = out
  }

  /** insert writes `row` if its key is absent; otherwise it meets the row there (#meet). */
  insert(row: BulkRow): void {
    const key = this.#key(row)
    const { conditionName, context, expiresAt } = row
    if (this.#insertIgnore.run(...key, conditionName, context, this.#revision, this.#ts, expiresAt).changes === 1) {
      this.#record(row, 0)
      return
    }
    this.#meet(row, key, this.#stored.get(...key) as StateRow)
  }

  /**
   * sortOut settles rows[start, start + n) after one multi-row `INSERT OR IGNORE` inserted only
   * some of them, with the rowids first..last (new rows take the rowid after the table's
   * largest, in VALUES order). A row whose key holds one of those rowids, not claimed by an
   * earlier row of the statement, is the one that inserted it (of repeated keys the first);
   * the others met their key's row (#meet).
   */
  sortOut(rows: readonly BulkRow[], start: number, n: number, first: number, last: number): void {
    const claimed = new Set<number>()
    for (let i = start; i < start + n; i++) {
      const row = rows[i]
      const key = this.#key(row)
      const r = this.#storedRowid.get(...key) as RowidStateRow
      const rowid = r[0]
      if (rowid >= first && rowid <= last && !claimed.has(rowid)) {
        claimed.add(rowid)
        this.#record(row, 0)
      } else {
        this.#meet(row, key, [r[1], r[2], r[3]])
      }
    }
  }

  /** The key's values, in KEY_MATCH order. */
  #key(row: BulkRow): readonly [string, string, string, string, string, string, string] {
    const t = row.tuple
    return [this.#storeId, t.objectType, t.objectId, t.relation, t.userRelation, t.userType, t.userId]
  }

  /**
   * #meet: `row`'s key holds the row `r`. Expired, it is gone already: it is replaced, its
   * removal recorded first, as the sweeper would have. Live, `row` is `met`.
   */
  #meet(row: BulkRow, key: readonly unknown[], r: StateRow): void {
    if (r[2] !== null && r[2] <= this.#ts) {
      this.#deleteRow.run(...key)
      this.#record(row, 1)
      this.#insertTuple.run(...key, row.conditionName, row.context, this.#revision, this.#ts, row.expiresAt)
      this.#record(row, 0)
      return
    }
    this.#out.met.push({ row, stored: { conditionName: r[0], context: r[1], expiresAt: r[2] } })
  }

  /** #record appends the write (0) or delete (1) of `row`'s tuple to the changelog. */
  #record(row: BulkRow, operation: 0 | 1): void {
    const t = row.tuple
    const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
    const [condition, context, expiresAt] = operation === 0 ? [row.conditionName, row.context, row.expiresAt] : ['', null, null]
    this.#insertChange.run(
      this.#storeId, this.#revision, this.seq++, t.objectType, t.objectId, t.relation, user, condition, context, expiresAt, operation, this.#ts,
    )
    if (operation === 0) this.#out.written++
  }
}
