/**
 * The PostgreSQL hot reader: the look-ups of a check, each a named prepared statement (parsed
 * once per pooled connection) over an index range: the primary key for `document:1#viewer@…`,
 * `tuples_by_user` for `document:?#viewer@group:eng#member`.
 *
 * @module
 */
import type pg from 'pg'
import type { Subject, Tuple } from '../../core/tuple.ts'
import { rowToTuple, type TupleRow } from '../common.ts'
import type { TupleReader } from '../ports.ts'
import { objectsFromRows, readObjectsSql, TUPLE_COLUMNS, type ObjectsRow } from '../sql/tuples.ts'
import { connectionLost } from '../sql/unavailable.ts'
import { sql } from './statements.ts'

/**
 * The reader's filter, with `now` as parameter n: an expired tuple is gone the instant it
 * expires, whether or not the sweeper has deleted the row yet.
 */
const live = (n: number, alias = '') => `(${alias}expires_at IS NULL OR ${alias}expires_at > $${n})`

/** The hot reader's statements, named once (`pemba_object`, …). */
const READS = {
  /** All of one object's tuples, capped (LIMIT is the cap + 1, to tell "more than" apart). */
  object: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND ${live(5)} LIMIT $4`,
  objectRelation: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4 AND ${live(5)}`,
  usersets: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4
      AND user_relation > '' AND ${live(5)}`,
  /** Users of one (type, relation) at once: `user_id = ANY` stays in the primary key's range. */
  exactUsers: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4
      AND user_relation = $5 AND user_type = $6 AND user_id = ANY($7::text[]) AND ${live(8)}`,
  /** The reverse direction over `tuples_by_user`, again one (type, relation) group at a time. */
  startingWithUsers: sql`SELECT ${TUPLE_COLUMNS} FROM tuples
    WHERE store_id = $1 AND object_type = $2 AND relation = $3
      AND user_type = $4 AND user_relation = $5 AND user_id = ANY($6::text[]) AND ${live(7)}`,
  /**
   * Several objects of one type at once (the working set's batched loads, sql/tuples.ts): one
   * statement, planned once, whatever the number of ids.
   */
  objects: readObjectsSql({ store: '$1', type: '$2', ids: 'SELECT unnest($3::text[])', cap: '$4', now: '$5' }),
} as const

type ReadName = keyof typeof READS

/** A prepared query config of the reader: `pemba_<name>` is prepared once per connection. */
function read(name: ReadName, values: unknown[]): pg.QueryConfig {
  return { name: `pemba_${name}`, text: READS[name], values }
}
/**
 * groupSubjects groups users by (type, relation), so one `user_id = ANY($n)` query per group
 * answers them: [user:anne, user:*, group:eng#member] → user/'' [anne, *] and group/member [eng].
 */
function groupSubjects(users: readonly Subject[]): { type: string; relation: string; ids: string[] }[] {
  const groups = new Map<string, { type: string; relation: string; ids: string[] }>()
  for (const u of users) {
    const k = `${u.type}#${u.relation}`
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { type: u.type, relation: u.relation, ids: [] }))
    g.ids.push(u.id)
  }
  return [...groups.values()]
}

/**
 * PostgresTupleReader reads the live tuples through the pool. Like the SQLite reader it reads
 * the newest committed state, which is at least as fresh as the revision it was bound to.
 */
export class PostgresTupleReader implements TupleReader {
  readonly #store: string
  /** The reader's instant (ms): tuples with expires_at <= now are invisible. */
  readonly #now: number
  readonly #pool: pg.Pool

  constructor(storeId: string, now: number, pool: pg.Pool) {
    this.#store = storeId
    this.#now = now
    this.#pool = pool
  }

  async #rows(name: ReadName, values: unknown[]): Promise<Tuple[]> {
    return (await this.#query<TupleRow>(name, values)).map(rowToTuple)
  }

  async #query<R extends pg.QueryResultRow>(name: ReadName, values: unknown[]): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(read(name, values))).rows
    } catch (e) {
      // A pooled connection whose backend was terminated (a failover, pg_terminate_backend)
      // fails its next statement; the pool has dropped it, so one more try uses a live one.
      if (!connectionLost(e)) throw e
      return (await this.#pool.query<R>(read(name, values))).rows
    }
  }

  async readObjects(objectType: string, objectIds: readonly string[], limit: number): Promise<Map<string, Tuple[] | undefined>> {
    const rows = await this.#query<ObjectsRow>('objects', [this.#store, objectType, objectIds, limit + 1, this.#now])
    return objectsFromRows(objectType, objectIds, rows, limit)
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const values = [this.#store, objectType, objectId, limit + 1, this.#now]
    const rows = await this.#rows('object', values)
    return rows.length > limit ? undefined : rows
  }

  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#rows('objectRelation', [this.#store, objectType, objectId, relation, this.#now])
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const groups = groupSubjects(users)
    const parts = await Promise.all(
      groups.map((g) =>
        this.#rows('exactUsers', [
          this.#store,
          objectType,
          objectId,
          relation,
          g.relation,
          g.type,
          g.ids,
          this.#now,
        ]),
      ),
    )
    return parts.flat()
  }

  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#rows('usersets', [this.#store, objectType, objectId, relation, this.#now])
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const groups = groupSubjects(users)
    const parts = await Promise.all(
      groups.map((g) =>
        this.#rows('startingWithUsers', [
          this.#store,
          objectType,
          relation,
          g.type,
          g.relation,
          g.ids,
          this.#now,
        ]),
      ),
    )
    return parts.flat()
  }
}
