/**
 * The tuple ports over SQL, for both dialects: Write (the planner's rules applied in one
 * transaction), the Read API, the changelog, the head revision and the sweep of expired tuples.
 *
 * Every transaction that changes a store's tuples first takes the store (the driver's
 * `nextRevision`): on PostgreSQL it reads the `stores` row for update, so writers to one store
 * take turns on every replica and revision r+1 commits after revision r, and a change-feed
 * position (revision, seq) once read is never preceded by a later commit; SQLite's IMMEDIATE
 * transaction already holds the database.
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'
import type { Tuple, TupleIdentity } from '../../core/tuple.ts'
import { decodeCursor, isChangePosition, isStringArray, rowToTuple, type TupleRow } from '../common.ts'
import type {
  ChangesQuery,
  Changelog,
  Page,
  ReadFilter,
  Revision,
  StoreHead,
  StoredTuple,
  TupleChange,
  TupleStore,
  TupleWriter,
  WriteRequest,
} from '../ports.ts'
import { deleteChange, planWrite, tupleKey, type PlannedChange, type StoredState } from '../write-plan.ts'
import { all, type SqlDriver, type StoredForWrite, type Tx } from './driver.ts'

/** The key columns of a tuple, in primary-key order after store_id. */
export const KEY_COLUMNS = 'object_type, object_id, relation, user_relation, user_type, user_id'

export const TUPLE_COLUMNS = `${KEY_COLUMNS}, condition_name, condition_context, expires_at`

/**
 * The placeholders of readObjectsSql, in each dialect's spelling: `ids` is a row source of the
 * object ids (SQLite `VALUES (@i0), (@i1)`, PostgreSQL `SELECT unnest($3::text[])`), `cap` the
 * per-object limit plus one.
 */
export interface ReadObjectsParams {
  store: string
  type: string
  ids: string
  cap: string
  now: string
}

/**
 * readObjectsSql: the tuples of several objects of one type in one statement, each object's
 * rows only when it has at most cap − 1 stored rows (expired ones not swept yet count: the count
 * then reads the primary key's index alone; a group with a million members is counted up to
 * cap, never read). One row per tuple, and one row with NULL tuple
 * columns for an object that is empty or too large, told apart by `n` (its count, up to cap).
 * The count is per id, not per row: `sized` is evaluated once per object asked for.
 */
export function readObjectsSql(p: ReadObjectsParams): string {
  const live = (alias: string) => `(${alias}.expires_at IS NULL OR ${alias}.expires_at > ${p.now})`
  // Only the rows read are filtered by the instant; the cap counts stored rows.
  // An id asked twice is read once (DISTINCT): each object's rows come back once.
  return `WITH given(id) AS (${p.ids}), ids(id) AS (SELECT DISTINCT id FROM given),
  sized AS MATERIALIZED (SELECT ids.id AS id, (SELECT count(*) FROM (SELECT 1 FROM tuples c WHERE c.store_id = ${p.store}
    AND c.object_type = ${p.type} AND c.object_id = ids.id LIMIT ${p.cap}) x) AS n FROM ids)
  SELECT sized.id AS object_id, sized.n AS n, t.relation, t.user_relation, t.user_type, t.user_id,
    t.condition_name, t.condition_context, t.expires_at
  FROM sized LEFT JOIN tuples t ON sized.n < ${p.cap} AND t.store_id = ${p.store} AND t.object_type = ${p.type}
    AND t.object_id = sized.id AND ${live('t')}`.replace(/\s+/g, ' ')
}

/** A row of readObjectsSql (`relation` is null on an object's count-only row). */
export interface ObjectsRow {
  object_id: string
  n: number | string
  relation: string | null
  user_relation: string
  user_type: string
  user_id: string
  condition_name: string
  condition_context: string | null
  expires_at: number | string | null
}

/**
 * objectsFromRows groups readObjectsSql's rows by object: each id asked for maps to its tuples,
 * or to undefined when it has more than `limit`.
 */
export function objectsFromRows(objectType: string, ids: readonly string[], rows: readonly ObjectsRow[], limit: number): Map<string, Tuple[] | undefined> {
  const out = new Map<string, Tuple[] | undefined>()
  for (const id of ids) out.set(id, [])
  for (const r of rows) {
    if (Number(r.n) > limit) {
      out.set(r.object_id, undefined)
      continue
    }
    if (r.relation === null) continue
    const t: Tuple = {
      objectType,
      objectId: r.object_id,
      relation: r.relation,
      userRelation: r.user_relation,
      userType: r.user_type,
      userId: r.user_id,
      conditionName: r.condition_name,
      conditionContext: r.condition_context === null ? undefined : JSON.parse(r.condition_context),
    }
    if (r.expires_at !== null) t.expiresAt = Number(r.expires_at)
    out.get(r.object_id)?.push(t)
  }
  return out
}

const HEAD = 'SELECT revision, deleted_at FROM stores WHERE id = ?'
/** The stores with the oldest expired tuples, over tuples_by_expiry (no locks taken). */
const EXPIRED_STORES = `SELECT DISTINCT store_id FROM (SELECT store_id FROM tuples
  WHERE expires_at <= ? ORDER BY expires_at LIMIT ?) e`

interface ChangeRow {
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
}

/** Nothing applied before planning (a grant; PostgreSQL's writes). */
const NOTHING_EARLY: Omit<StoredForWrite, 'rows'> = { applied: new Set(), insertedAll: false }

/** storedState maps the stored rows of some keys by tupleKey. */
function storedState(rows: readonly TupleRow[]): Map<string, StoredState> {
  const out = new Map<string, StoredState>()
  for (const r of rows) {
    const key = tupleKey(identityOfRow(r))
    out.set(key, { conditionName: r.condition_name, context: r.condition_context, expiresAt: r.expires_at })
  }
  return out
}

/** storedOne is the stored state of one tuple, or undefined. */
export function* storedOne(d: SqlDriver, storeId: string, t: TupleIdentity): Tx<StoredState | undefined> {
  const [r] = yield* d.storedTuples(storeId, [t])
  return r && { conditionName: r.condition_name, context: r.condition_context, expiresAt: r.expires_at }
}

/**
 * applyChanges makes planned changes under `revision` (from nextRevision): the rows deleted
 * (live deletes, expired rows replaced) before the rows inserted, except those the driver
 * applied already (`early`: see StoredForWrite), every change recorded, and the store's
 * revision settled.
 */
export function* applyChanges(
  d: SqlDriver,
  storeId: string,
  revision: number,
  changes: readonly PlannedChange[],
  ts: number,
  early: Omit<StoredForWrite, 'rows'> = NOTHING_EARLY,
): Tx<void> {
  const { applied, insertedAll } = early
  const deletes: TupleIdentity[] = []
  const writes: PlannedChange[] = []
  for (const c of changes) {
    if (c.operation === 'delete') {
      if (!applied.has(c.tuple)) deletes.push(c.tuple)
    } else if (insertedAll) {
      // The plan's writes come last (writesAbsent: no expired row's delete among them).
      break
    } else if (!applied.has(c.tuple)) {
      writes.push(c)
    }
  }
  if (deletes.length > 0) yield* d.deleteRows(storeId, deletes)
  if (writes.length > 0) yield* d.insertTuples(storeId, writes, revision, ts)
  yield* d.insertChanges(storeId, revision, changes, ts)
  yield* d.settleRevision(storeId, revision, true)
}

function identityOfRow(r: Pick<TupleRow, 'object_type' | 'object_id' | 'relation' | 'user_relation' | 'user_type' | 'user_id'>): TupleIdentity {
  return {
    objectType: r.object_type,
    objectId: r.object_id,
    relation: r.relation,
    userRelation: r.user_relation,
    userType: r.user_type,
    userId: r.user_id,
  }
}

/**
 * applyWrite is one attempt of a Write inside its transaction: take the store, read the stored
 * state of every key the request names, plan (write-plan.ts), apply. Nothing changed (every
 * delete missing, every write present, all ignored): no new revision.
 */
function* applyWrite(d: SqlDriver, storeId: string, req: WriteRequest, ts: number): Tx<Revision> {
  const revision = yield* d.nextRevision(storeId)
  if (revision === undefined) throw new PembaError('store_id_not_found', 'Store ID not found')
  const found = yield* d.storedForWrite(storeId, req, revision, ts)
  const changes = planWrite(req, found.byTuple ?? storedState(found.rows), ts, found.insertedAll)
  if (changes.length === 0) {
    yield* d.settleRevision(storeId, revision, false)
    return revision - 1
  }
  yield* applyChanges(d, storeId, revision, changes, ts, found)
  return revision
}

/**
 * sweepStore is one sweep transaction of one store: lock the store row, delete up to `limit` of
 * its oldest expired tuples, record each delete under the store's next revision. Holding the
 * lock every writer takes, a sweeper on another replica either already deleted a row (this
 * statement, in a newer snapshot, no longer sees it) or waits its turn.
 */
function* sweepStore(d: SqlDriver, storeId: string, ts: number, limit: number): Tx<number> {
  const revision = yield* d.nextRevision(storeId)
  const oldest = `SELECT ${d.rowId} FROM tuples WHERE store_id = ? AND expires_at <= ? ORDER BY expires_at LIMIT ?`
  const sql = `DELETE FROM tuples WHERE ${d.rowIdIn(oldest)} RETURNING ${KEY_COLUMNS}`
  const deleted = yield* all<TupleRow>(sql, [storeId, ts, limit])
  // Without a store row there is no revision to order a changelog entry by; the rows still go.
  if (revision === undefined) return deleted.length
  if (deleted.length === 0) {
    yield* d.settleRevision(storeId, revision, false)
    return 0
  }
  yield* d.insertChanges(storeId, revision, deleted.map((r) => deleteChange(identityOfRow(r))), ts)
  yield* d.settleRevision(storeId, revision, true)
  return deleted.length
}

/** The key columns as the Read filter names them, in KEY_COLUMNS' order. */
const KEY_FILTER_FIELDS = ['objectType', 'objectId', 'relation', 'userRelation', 'userType', 'userId'] as const

/**
 * fixedKeyPrefix: how many leading key columns the filter fixes by equality. The page cursor
 * compares only the columns after them: `object_type = 'group' AND (object_type, object_id, …) >
 * ('group', 'g9', …)` made SQLite rescan the type from its start for every page (the planner
 * took the equality and filtered the row value), so reading 600k `group` tuples in pages cost
 * time quadratic in their number; `(object_id, …) > ('g9', …)` seeks to the cursor.
 */
function fixedKeyPrefix(f: ReadFilter): number {
  let k = 0
  while (k < KEY_FILTER_FIELDS.length && f[KEY_FILTER_FIELDS[k]] !== undefined) k++
  return k
}

/** The Read API's statement for one filter shape (which fields are set, whether paging on). */
function readSql(f: ReadFilter, cursor: boolean): string {
  const where = ['store_id = ?', '(expires_at IS NULL OR expires_at > ?)']
  if (f.objectType !== undefined) where.push('object_type = ?')
  if (f.objectId !== undefined) where.push('object_id = ?')
  if (f.relation !== undefined) where.push('relation = ?')
  if (f.userType !== undefined) where.push('user_type = ?')
  if (f.userId !== undefined) where.push('user_id = ?')
  if (f.userRelation !== undefined) where.push('user_relation = ?')
  if (cursor) {
    const rest = KEY_COLUMNS.split(', ').slice(fixedKeyPrefix(f))
    // Every key column fixed: the filter names one tuple, and the page after it is empty.
    where.push(rest.length === 0 ? '1 = 0' : `(${rest.join(', ')}) > (${rest.map(() => '?').join(', ')})`)
  }
  return `SELECT ${TUPLE_COLUMNS}, inserted_at FROM tuples WHERE ${where.join(' AND ')} ORDER BY ${KEY_COLUMNS} LIMIT ?`
}

/** The tuple ports (TupleStore, TupleWriter, Changelog) over `d`. */
export function sqlTuples(d: SqlDriver): TupleStore & TupleWriter & Changelog {
  return {
    async write(storeId: string, req: WriteRequest, now: Date): Promise<Revision> {
      const ts = now.getTime()
      // Ignoring duplicates and missing deletes, the same Write applied twice leaves the same
      // tuples: a connection lost during its COMMIT may be retried (driver.ts).
      const idempotent =
        (req.writes.length === 0 || req.onDuplicate === 'ignore') && (req.deletes.length === 0 || req.onMissing === 'ignore')
      const revision = await d.transaction(() => applyWrite(d, storeId, req, ts), { idempotent })
      d.noteWritten(req.writes.length)
      return revision
    },

    async read(storeId, f, q, now): Promise<Page<StoredTuple>> {
      const after = decodeCursor(q.after, isStringArray(6))
      const params: unknown[] = [storeId, now]
      for (const v of [f.objectType, f.objectId, f.relation, f.userType, f.userId, f.userRelation]) {
        if (v !== undefined) params.push(v)
      }
      if (after) params.push(...after.slice(fixedKeyPrefix(f)))
      params.push(q.pageSize + 1)
      const rows = await d.all<TupleRow>(readSql(f, after !== undefined), params)
      const page = rows.slice(0, q.pageSize)
      const items = page.map((r) => ({ ...rowToTuple(r), insertedAt: new Date(r.inserted_at!) }))
      const last = page[page.length - 1]
      const next =
        rows.length > q.pageSize
          ? JSON.stringify([last.object_type, last.object_id, last.relation, last.user_relation, last.user_type, last.user_id])
          : ''
      return { items, next }
    },

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
      const sql = `SELECT * FROM changelog WHERE ${where.join(' AND ')} ORDER BY revision, seq LIMIT ?`
      const rows = await d.all<ChangeRow>(sql, params)
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
    },

    async headRevision(storeId: string): Promise<Revision> {
      return (await d.get<{ revision: number }>(HEAD, [storeId]))?.revision ?? 0
    },

    async storeHead(storeId: string): Promise<StoreHead> {
      const row = await d.get<{ revision: number; deleted_at: number | null }>(HEAD, [storeId])
      return { revision: row?.revision ?? 0, deleted: row !== undefined && row.deleted_at !== null }
    },

    reader(storeId: string, _revision: Revision, now: number) {
      return d.reader(storeId, now)
    },

    /**
     * sweepExpired finds the stores with the oldest expired tuples, then sweeps each in its own
     * transaction under the store row's lock (the lock every write takes first), so replicas
     * sweeping at once take turns per store and a tuple's delete is recorded once; lock order is
     * store row, then tuples, as in write(), so sweeping cannot deadlock with writers.
     */
    async sweepExpired(now: Date, limit: number): Promise<number> {
      const ts = now.getTime()
      const stores = await d.all<{ store_id: string }>(EXPIRED_STORES, [ts, limit])
      let swept = 0
      for (const { store_id: storeId } of stores) {
        if (swept >= limit) break
        const left = limit - swept
        swept += await d.transaction(() => sweepStore(d, storeId, ts, left))
      }
      return swept
    },
  }
}
