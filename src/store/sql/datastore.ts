/**
 * SqlDatastore: the whole `Datastore` over one SQL driver, assembled from the ports' SQL
 * implementations in this folder. A dialect adds only its driver (sqlite/index.ts,
 * postgres/index.ts): how to connect and run statements, and the few statements that differ.
 *
 * Given a QueryObserver (the metrics), every port method and every read of its tuple readers
 * reports its duration and outcome under its own name (`readObject`, `write`, `getStore`, …): one
 * `performance.now()` pair and one call per operation, measured as a bounded share of even
 * SQLite's microsecond reads. Without one, the methods are the ports' own, untouched.
 *
 * Every method and every read also turns a driver's outage or strain error (unavailable.ts:
 * PostgreSQL down or a connection cut, SQLite's disk failing; a statement timeout, SQLite's file
 * locked) into DatastoreUnavailable, and tells `onUnavailable` (the outage tracker) of outages
 * only, so that no caller needs to know either driver's errors.
 *
 * @module
 */
import { DatastoreUnavailable } from '../../core/errors.ts'
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { PoolStats, QueryObserver, TupleReader } from '../ports.ts'
import type { Datastore } from '../store.ts'
import { sqlAccessRequests } from './access-requests.ts'
import { sqlBulkLoader } from './bulk.ts'
import { sqlCatalog } from './catalog.ts'
import { sqlSearchSnapshots } from './search-snapshots.ts'
import { sqlDecisions } from './decisions.ts'
import type { SqlDriver } from './driver.ts'
import { sqlSigningKeys } from './signing-keys.ts'
import { sqlTokenIssuers } from './token-issuers.ts'
import { sqlTuples } from './tuples.ts'
import { asDatastoreError, datastoreUnreachable } from './unavailable.ts'

/** What a SqlDatastore reports besides its answers. */
export interface SqlDatastoreOptions {
  /** Told each operation's duration and outcome (the metrics); none: nothing is timed. */
  observer?: QueryObserver
  /** Told each time an operation fails because the database is unavailable (the outage tracker). */
  onUnavailable?: (err: DatastoreUnavailable) => void
}

// The class's instances carry every port method as an own property (assigned in the
// constructor), so the class declares them through this merged interface.
export interface SqlDatastore
  extends Omit<Datastore, 'dialect' | 'preferredConcurrency' | 'close' | 'ping' | 'pendingMigrations' | 'poolStats' | 'readReplicaStats'> {}

export class SqlDatastore implements Datastore {
  readonly dialect: string
  readonly preferredConcurrency: number
  readonly #driver: SqlDriver
  readonly #classify: <T>(p: Promise<T>) => Promise<T>

  constructor(driver: SqlDriver, options: SqlDatastoreOptions = {}) {
    const { observer, onUnavailable } = options
    this.dialect = driver.dialect
    this.preferredConcurrency = driver.preferredConcurrency
    this.#driver = driver
    const ports = {
      ...sqlCatalog(driver),
      ...sqlTuples(driver),
      ...sqlBulkLoader(driver),
      ...sqlAccessRequests(driver),
      ...sqlTokenIssuers(driver),
      ...sqlSigningKeys(driver),
      ...sqlDecisions(driver),
      ...sqlSearchSnapshots(driver),
    }
    const outage = (err: unknown): never => {
      const e = asDatastoreError(err)
      // A strain (a statement timeout, SQLite's lock held elsewhere) answers 503 too, but is no outage.
      if (e instanceof DatastoreUnavailable && datastoreUnreachable(e)) onUnavailable?.(e)
      throw e
    }
    this.#classify = (p) => p.catch(outage)
    Object.assign(this, classified(observer ? observed(ports, observer) : ports, outage))
  }

  ping(): Promise<void> {
    return this.#classify(this.#driver.ping())
  }

  pendingMigrations(): Promise<string[]> {
    return this.#classify(this.#driver.pendingMigrations())
  }

  poolStats(): PoolStats | undefined {
    return this.#driver.poolStats()
  }

  close(): Promise<void> {
    return this.#driver.close()
  }
}

/** The elapsed seconds since `start` (a performance.now() reading). */
const since = (start: number) => (performance.now() - start) / 1000

/** settle reports `p`'s duration and outcome to `observe` once it settles, and passes it on. */
function settle<T>(observe: QueryObserver, operation: string, start: number, p: Promise<T>): Promise<T> {
  return p.then(
    (value) => {
      observe(operation, since(start), false)
      return value
    },
    (err: unknown) => {
      observe(operation, since(start), true)
      throw err
    },
  )
}

/**
 * observed: the port methods, each reporting to `observe` under its name; `reader` hands out
 * readers that do the same for each read.
 */
function observed<P extends object>(ports: P, observe: QueryObserver): P {
  const out: Record<string, unknown> = {}
  for (const [name, method] of Object.entries(ports)) {
    if (typeof method !== 'function') {
      out[name] = method
    } else if (name === 'reader') {
      out[name] = (...args: unknown[]) => new ObservedTupleReader(method(...args) as TupleReader, observe)
    } else {
      out[name] = (...args: unknown[]) => {
        const start = performance.now()
        let result: unknown
        try {
          result = method(...args)
        } catch (err) {
          observe(name, since(start), true)
          throw err
        }
        if (result instanceof Promise) return settle(observe, name, start, result)
        observe(name, since(start), false)
        return result
      }
    }
  }
  return out as P
}

/**
 * classified: the port methods, each passing a thrown or rejected error through `outage` (which
 * rethrows it, as DatastoreUnavailable when it is one); `reader` hands out readers that do the
 * same for each read.
 */
function classified<P extends object>(ports: P, outage: (err: unknown) => never): P {
  const out: Record<string, unknown> = {}
  for (const [name, method] of Object.entries(ports)) {
    if (typeof method !== 'function') {
      out[name] = method
    } else if (name === 'reader') {
      out[name] = (...args: unknown[]) => new ClassifiedTupleReader(method(...args) as TupleReader, outage)
    } else {
      out[name] = (...args: unknown[]) => {
        let result: unknown
        try {
          result = method(...args)
        } catch (err) {
          outage(err)
        }
        return result instanceof Promise ? result.catch(outage) : result
      }
    }
  }
  return out as P
}

/** ClassifiedTupleReader: a reader whose failed reads pass through `outage` (see classified). */
class ClassifiedTupleReader implements TupleReader {
  readonly #inner: TupleReader
  readonly #outage: (err: unknown) => never
  /** Only when the inner reader has it: a caller checks for it and reads object by object otherwise. */
  readonly readObjects?: TupleReader['readObjects']

  constructor(inner: TupleReader, outage: (err: unknown) => never) {
    this.#inner = inner
    this.#outage = outage
    const readObjects = inner.readObjects?.bind(inner)
    if (readObjects) this.readObjects = (objectType, objectIds, limit) => readObjects(objectType, objectIds, limit).catch(outage)
  }

  readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    return this.#inner.readObject(objectType, objectId, limit).catch(this.#outage)
  }

  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#inner.readObjectRelation(objectType, objectId, relation).catch(this.#outage)
  }

  readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#inner.readUsers(objectType, objectId, relation, users).catch(this.#outage)
  }

  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#inner.readUsersets(objectType, objectId, relation).catch(this.#outage)
  }

  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#inner.readStartingWithUser(objectType, relation, users).catch(this.#outage)
  }

}

/** ObservedTupleReader: a driver's reader whose every read reports its duration (the hot reads: no rest arguments). */
class ObservedTupleReader implements TupleReader {
  readonly #inner: TupleReader
  readonly #observe: QueryObserver
  /** Only when the inner reader has it (see ClassifiedTupleReader). */
  readonly readObjects?: TupleReader['readObjects']

  constructor(inner: TupleReader, observe: QueryObserver) {
    this.#inner = inner
    this.#observe = observe
    const readObjects = inner.readObjects?.bind(inner)
    if (readObjects) {
      this.readObjects = (objectType, objectIds, limit) => settle(observe, 'readObjects', performance.now(), readObjects(objectType, objectIds, limit))
    }
  }

  readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    const start = performance.now()
    return settle(this.#observe, 'readObject', start, this.#inner.readObject(objectType, objectId, limit))
  }

  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const start = performance.now()
    return settle(this.#observe, 'readObjectRelation', start, this.#inner.readObjectRelation(objectType, objectId, relation))
  }

  readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const start = performance.now()
    return settle(this.#observe, 'readUsers', start, this.#inner.readUsers(objectType, objectId, relation, users))
  }

  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    const start = performance.now()
    return settle(this.#observe, 'readUsersets', start, this.#inner.readUsersets(objectType, objectId, relation))
  }

  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    const start = performance.now()
    return settle(this.#observe, 'readStartingWithUser', start, this.#inner.readStartingWithUser(objectType, relation, users))
  }

}
