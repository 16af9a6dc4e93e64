/**
 * WriteService changes a store's tuples and reads them back: Write (validated against the model,
 * OpenFGA's limits and rules), the bulk import, Read and ReadChanges. Every committed revision
 * advances this replica's head (HeadRevisions), so later checks here read their own writes.
 *
 * @module
 */
import { PembaError, validationError } from '../core/errors.ts'
import { parseObject, parseSubject, type Tuple, type TupleIdentity, type TupleKey } from '../core/tuple.ts'
import { invalidTupleMessage } from '../model/tuple-validation.ts'
import type { Changelog, Page, ReadFilter, StoredTuple, TupleChange, TupleStore, TupleWriter } from '../store/ports.ts'
import type { HeadRevisions } from './head-revisions.ts'
import type { ModelService } from './models.ts'
import { parseWrite } from './tuple-input.ts'

export interface WriteServiceOptions {
  datastore: Pick<TupleWriter, 'write'> & Pick<TupleStore, 'read'> & Pick<Changelog, 'readChanges'>
  models: ModelService
  heads: HeadRevisions
  clock: () => Date
  maxTuplesPerWrite: number
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
    const parsedWrites: Tuple[] = writes.map((k) => parseWrite(ts, k, now.getTime()))
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
   * importTuples is the bulk load path: every tuple is validated against the model like a
   * Write, then committed in large transactions (`chunkSize` tuples each, each its own
   * revision, every new tuple recorded in the changelog). Unlike Write it has no 100-tuple
   * limit, and a tuple that already exists identically is left as it is. Returns how many
   * tuples were validated and are now stored.
   */
  async importTuples(storeId: string, keys: TupleKey[], options: { modelId?: string; chunkSize?: number } = {}): Promise<number> {
    const ts = await this.#o.models.resolve(storeId, options.modelId, { fresh: true })
    const now = this.#o.clock().getTime()
    const tuples = keys.map((k) => parseWrite(ts, k, now))
    const chunk = options.chunkSize ?? 10_000
    for (let i = 0; i < tuples.length; i += chunk) {
      const revision = await this.#o.datastore.write(
        storeId,
        { writes: tuples.slice(i, i + chunk), deletes: [], onDuplicate: 'ignore', onMissing: 'ignore' },
        this.#o.clock(),
      )
      this.#o.heads.advance(storeId, revision)
    }
    return tuples.length
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
