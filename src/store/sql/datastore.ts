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
 * @module
 */
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

// The class's instances carry every port method as an own property (assigned in the
// constructor), so the class declares them through this merged interface.
export interface SqlDatastore
  extends Omit<Datastore, 'dialect' | 'preferredConcurrency' | 'close' | 'ping' | 'pendingMigrations' | 'poolStats'> {}

export class SqlDatastore implements Datastore {
  readonly dialect: string
  readonly preferredConcurrency: number
  readonly #driver: SqlDriver

  constructor(driver: SqlDriver, observer?: QueryObserver) {
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
    Object.assign(this, observer ? observed(ports, observer) : ports)
  }

  ping(): Promise<void> {
    return this.#driver.ping()
  }

  pendingMigrations(): Promise<string[]> {
    return this.#driver.pendingMigrations()
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

/** ObservedTupleReader: a driver's reader whose every read reports its duration (the hot reads: no rest arguments). */
class ObservedTupleReader implements TupleReader {
  readonly #inner: TupleReader
  readonly #observe: QueryObserver

  constructor(inner: TupleReader, observe: QueryObserver) {
    this.#inner = inner
    this.#observe = observe
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
