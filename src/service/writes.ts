/**
 * WriteService changes a store's tuples and reads them back: Write (validated against the model,
 * OpenFGA's limits and rules), the bulk import, Read and ReadChanges. Every committed revision
 * advances this replica's head (HeadRevisions), so later checks here read their own writes.
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { PembaError, validationError } from '../core/errors.ts'
import { describeTuple, parseObject, parseSubject, type Tuple, type TupleIdentity, type TupleKey } from '../core/tuple.ts'
import { invalidTupleMessage } from '../model/tuple-validation.ts'
import type {
  BulkLoadConflictReason,
  Changelog,
  Page,
  ReadFilter,
  StoredTuple,
  TupleBulkLoader,
  TupleChange,
  TupleStore,
  TupleWriter,
} from '../store/ports.ts'
import type { HeadRevisions } from './head-revisions.ts'
import type { ModelService } from './models.ts'
import { parseWrite } from './tuple-input.ts'

export interface WriteServiceOptions {
  datastore: Pick<TupleWriter, 'write'> & Pick<TupleStore, 'read'> & Pick<Changelog, 'readChanges'> & TupleBulkLoader
  models: ModelService
  heads: HeadRevisions
  clock: () => Date
  maxTuplesPerWrite: number
  /**
   * What a credential-shaped identifier is (core/credentials.ts; the server's knows the configured
   * preshared keys): a tuple written with such a user or object is refused (deleting one is not). Default: JWT and Authorization shapes.
   */
  credentials?: CredentialRule
}

/** Tuples per bulk-load transaction when importTuples is not told otherwise. */
export const IMPORT_CHUNK = 50_000

export interface ImportOptions {
  /** The model the tuples are validated against; default the store's latest. */
  modelId?: string
  /**
   * Tuples per transaction (each one revision), default IMPORT_CHUNK. Larger chunks load faster
   * (SQLite: 50,000 measured ~25 % faster than 10,000), and hold the store's write lock longer.
   */
  chunkSize?: number
}

/** A tuple importTuples did not write, and why. */
export interface ImportRefusal {
  /** Its position in the `keys` given (0-based). */
  index: number
  /**
   * `invalid_tuple`: malformed, not allowed by the model, or expiring in the past (the message
   * is Write's 400); `different_condition` / `different_expiry`: stored already with another
   * condition or expiry (what Write with `on_duplicate: ignore` answers with a 409).
   */
  reason: 'invalid_tuple' | BulkLoadConflictReason
  message: string
}

/** What importTuples did. */
export interface ImportResult {
  /** The model the tuples were validated against. */
  modelId: string
  /** Tuples written (each recorded in the changelog). */
  written: number
  /** Tuples stored already identically (or given twice identically): left as they are. */
  unchanged: number
  /** The tuples not written, by index in `keys`, ascending. */
  refused: ImportRefusal[]
  /** The store's revision after the import: its last chunk's, or the head it found if it wrote nothing. */
  revision: number
}

export interface WriteInput {
  modelId?: string
  writes?: TupleKey[]
  deletes?: { user: string; relation: string; object: string }[]
  onDuplicate: 'error' | 'ignore'
  onMissing: 'error' | 'ignore'
}

export class WriteService {
  readonly #o: WriteServiceOptions

  constructor(options: WriteServiceOptions) {
    this.#o = options
  }

  async write(storeId: string, input: WriteInput): Promise<{ modelId: string }> {
    const ts = await this.#o.models.resolve(storeId, input.modelId, { fresh: true })
    const writes = input.writes ?? []
    const deletes = input.deletes ?? []
    if (input.writes === undefined && input.deletes === undefined) {
      throw new PembaError(
        'invalid_write_input',
        'Invalid input. Make sure you provide at least one write, or at least one delete',
      )
    }
    if (writes.length + deletes.length > this.#o.maxTuplesPerWrite) {
      throw new PembaError(
        'exceeded_entity_limit',
        `The number of write operations exceeds the allowed limit of ${this.#o.maxTuplesPerWrite}`,
      )
    }
    const seen = new Set<string>()
    for (const k of [...writes, ...deletes]) {
      const id = `${k.object}#${k.relation}@${k.user}`
      if (seen.has(id)) {
        throw new PembaError(
          'cannot_allow_duplicate_tuples_in_one_request',
          `duplicate tuple in write: user: '${k.user}', relation: '${k.relation}', object: '${k.object}'`,
        )
      }
      seen.add(id)
    }
    const now = this.#o.clock()
    const credentials = this.#o.credentials ?? CREDENTIAL_SHAPES
    const parsedWrites: Tuple[] = writes.map((k) => parseWrite(ts, k, now.getTime(), credentials))
    const parsedDeletes: TupleIdentity[] = deletes.map(parseDelete)
    const revision = await this.#o.datastore.write(
      storeId,
      { writes: parsedWrites, deletes: parsedDeletes, onDuplicate: input.onDuplicate, onMissing: input.onMissing },
      now,
    )
    // Read-your-writes on this replica: later checks here are bound to at least this revision.
    this.#o.heads.advance(storeId, revision)
    return { modelId: ts.id }
  }

  /**
   * importTuples is the bulk load path (the import command's database path, the bench): every
   * tuple is validated against the model like a Write, and the valid ones are loaded by the
   * datastore's bulk loader (store/sql/bulk.ts) in transactions of `chunkSize` tuples, each
   * committed as one revision with every tuple it wrote in the changelog (so the change feed,
   * the tuple index and read-your-writes follow). Unlike Write it has no 100-tuple limit, a
   * tuple already stored identically is left as it is (`unchanged`), and a bad tuple costs only
   * itself: an invalid one, or one stored with another condition or expiry, is reported by its
   * index in `keys` and the others are written. A re-run of the same import writes nothing and
   * makes no new revision.
   *
   * Throws only for the whole call: a missing store or model, or a database failure (the chunks
   * committed before it stay committed: `revision` of a new call tells where the store is).
   */
  async importTuples(storeId: string, keys: readonly TupleKey[], options: ImportOptions = {}): Promise<ImportResult> {
    const ts = await this.#o.models.resolve(storeId, options.modelId, { fresh: true })
    const chunk = Math.max(1, options.chunkSize ?? IMPORT_CHUNK)
    const result: ImportResult = { modelId: ts.id, written: 0, unchanged: 0, refused: [], revision: 0 }
    // One chunk at least: an empty import still reports the store's revision (and finds a missing store).
    let start = 0
    do {
      const end = Math.min(keys.length, start + chunk)
      const now = this.#o.clock()
      const tuples: Tuple[] = []
      /** The index in `keys` of each tuple of `tuples`. */
      const at: number[] = []
      for (let i = start; i < end; i++) {
        try {
          tuples.push(parseWrite(ts, keys[i], now.getTime(), this.#o.credentials))
          at.push(i)
        } catch (e) {
          if (!(e instanceof PembaError)) throw e
          result.refused.push({ index: i, reason: 'invalid_tuple', message: e.message })
        }
      }
      const loaded = await this.#o.datastore.loadTuples(storeId, tuples, now)
      this.#o.heads.advance(storeId, loaded.revision)
      result.written += loaded.written
      result.unchanged += loaded.unchanged
      result.revision = loaded.revision
      for (const c of loaded.conflicts) {
        const what = c.reason === 'different_condition' ? 'condition' : 'expiry'
        const message = `tuple to be written already existed with a different ${what}: ${describeTuple(tuples[c.index])}`
        result.refused.push({ index: at[c.index], reason: c.reason, message })
      }
      start = end
    } while (start < keys.length)
    // A chunk's invalid tuples are noted before its conflicts: in index order now.
    result.refused.sort((a, b) => a.index - b.index)
    return result
  }

  /** read pages through the store's tuples matching `key` (all of them without one). */
  read(
    storeId: string,
    key: { user?: string; relation?: string; object?: string } | undefined,
    page: { pageSize: number; after?: string },
  ): Promise<Page<StoredTuple>> {
    return this.#o.datastore.read(storeId, key ? readFilter(key) : {}, page, this.#o.clock().getTime())
  }

  /**
   * readChanges pages through the store's changelog. `startTime` is the request's text: an
   * RFC 3339 date-time not in the future (by the injected clock), else `invalid_start_time`.
   */
  readChanges(
    storeId: string,
    q: { objectType?: string; after?: string; startTime?: string; pageSize: number },
  ): Promise<Page<TupleChange>> {
    let startTime: Date | undefined
    if (q.startTime) {
      const t = new Date(q.startTime)
      if (!/^\d{4}-\d{2}-\d{2}T/.test(q.startTime) || Number.isNaN(t.getTime()) || t.getTime() > this.#o.clock().getTime()) {
        throw new PembaError('invalid_start_time', 'Invalid start time')
      }
      startTime = t
    }
    return this.#o.datastore.readChanges(storeId, { objectType: q.objectType, after: q.after, startTime, pageSize: q.pageSize })
  }
}

/** parseDelete reads a tuple to delete: only its identity counts (conditions and expiries do not). */
function parseDelete(k: { user: string; relation: string; object: string }): TupleIdentity {
  const object = parseObject(k.object)
  const user = parseSubject(k.user)
  if (!object || !user || !k.relation) {
    throw validationError(invalidTupleMessage(k, !user ? "the 'user' field is malformed" : 'invalid object'))
  }
  return {
    objectType: object.type,
    objectId: object.id,
    relation: k.relation,
    userType: user.type,
    userId: user.id,
    userRelation: user.relation,
  }
}

/** readFilter turns Read's tuple key into a filter: the object type is required, and an id or a user. */
function readFilter(key: { user?: string; relation?: string; object?: string }): ReadFilter {
  const filter: ReadFilter = {}
  const object = key.object ?? ''
  const colon = object.indexOf(':')
  const type = colon === -1 ? '' : object.slice(0, colon)
  const id = colon === -1 ? '' : object.slice(colon + 1)
  if (!type || (!id && !key.user)) {
    throw validationError(
      "the 'tuple_key' field was provided but the object type field is required and both the object id and user cannot be empty",
    )
  }
  filter.objectType = type
  if (id) filter.objectId = id
  if (key.relation) filter.relation = key.relation
  if (key.user) {
    const user = parseSubject(key.user)
    if (user) {
      filter.userType = user.type
      filter.userId = user.id
      filter.userRelation = user.relation
    } else {
      // `user:` (a type with no id) is not a user; OpenFGA's pattern rejects it too.
      throw validationError(`invalid 'user' field: '${key.user}'`)
    }
  }
  return filter
}
