/**
 * buildRequestReader assembles the reader one request evaluates through: the decorators of this
 * folder, in one place and one order. From the engine outwards:
 *
 * 1. ExpiryTrackingReader (expiry-tracking.ts): every tuple the engine sees bounds how long what
 *    it concludes may be cached across requests (`ctx.validUntil`). Outermost, so that it sees
 *    contextual tuples too (one carrying `expires_at` bounds the answer like a stored one). The
 *    tuple index's reader notes expiries itself, one async layer less on every read, so it is
 *    left out when nothing is laid over that reader.
 * 2. ContextualTupleReader (contextual.ts): the request's contextual tuples, laid over the stored
 *    ones, for this request only. Above the caches, which hold stored tuples only and are shared.
 * 3. Stored tuples, one of:
 *    - the tuple index's reader (tuple-index.ts), when the store is indexed at the request's
 *      revision: a map look-up per read, nothing to buffer or cache;
 *    - otherwise the working set's reader (working-set.ts: objects and users' lists shared
 *      across requests, kept fresh from the changelog, so a write does not empty it) when it
 *      is on; it reads what it does not hold (a huge object's relations) from the datastore;
 *    - otherwise the datastore's reader, wrapped by BufferedTupleReader (buffered.ts: a small
 *      object read whole, once per request), so that a request's repeated questions about one
 *      object cost one read.
 *
 * @module
 */
import type { Tuple } from '../../core/tuple.ts'
import type { ReaderOptions, Revision, TupleReader } from '../ports.ts'
import { BufferedTupleReader } from './buffered.ts'
import { ContextualTupleReader } from './contextual.ts'
import { ExpiryTrackingReader, type ExpiryBound } from './expiry-tracking.ts'
import type { IndexedTupleReader } from './tuple-index.ts'
import type { WorkingSetReader } from './working-set.ts'

const REPLICA: ReaderOptions = { replica: true }

/** Objects with at most this many tuples are read whole by a request. */
export const OBJECT_BUFFER_LIMIT = 64

export interface RequestReaderOptions {
  storeId: string
  /** The revision the request is bound to. */
  revision: Revision
  /** The request's instant (ms): tuples expired by then do not count. */
  now: number
  /** The datastore's reader, bound to the store, revision and instant. */
  datastore: { reader(storeId: string, revision: Revision, now: number, options?: ReaderOptions): TupleReader }
  /**
   * The tuple index's reader for this request (`TupleIndex.reader`, awaited by the caller:
   * it may wait for a catch-up), or undefined when the store is not indexed.
   */
  indexed: IndexedTupleReader | undefined
  /**
   * The working set's reader for this request (`WorkingSet.reader`, awaited by the caller: it
   * catches up first), or undefined when the store is indexed or the working set is off.
   */
  workingSet: WorkingSetReader | undefined
  /** The request's contextual tuples, validated. */
  contextual: Tuple[]
  /** Where the earliest expiry read is recorded: the request's ResolutionContext. */
  bound: ExpiryBound
  /** The request accepts a read replica that has its revision (MINIMIZE_LATENCY; see ReaderOptions). */
  replica?: boolean
}

/** buildRequestReader returns the request's reader (see the module comment for the order). */
export function buildRequestReader(o: RequestReaderOptions): TupleReader {
  let stored: TupleReader | undefined = o.indexed
  // Stored tuples only: contextual tuples are laid over them below, per request.
  if (!stored) stored = o.workingSet
  if (!stored) stored = new BufferedTupleReader(o.datastore.reader(o.storeId, o.revision, o.now, o.replica ? REPLICA : undefined), OBJECT_BUFFER_LIMIT)
  if (o.contextual.length) stored = new ContextualTupleReader(stored, o.contextual, o.now)
  if (o.indexed && stored === o.indexed) {
    o.indexed.trackExpiry(o.bound)
    return stored
  }
  return new ExpiryTrackingReader(stored, o.bound)
}
