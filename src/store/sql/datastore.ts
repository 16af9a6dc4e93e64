/**
 * SqlDatastore: the whole `Datastore` over one SQL driver, assembled from the ports' SQL
 * implementations in this folder. A dialect adds only its driver (sqlite/index.ts,
 * postgres/index.ts): how to connect and run statements, and the few statements that differ.
 *
 * @module
 */
import type { Datastore } from '../store.ts'
import { sqlAccessRequests } from './access-requests.ts'
import { sqlCatalog } from './catalog.ts'
import { sqlDecisions } from './decisions.ts'
import type { SqlDriver } from './driver.ts'
import { sqlTokenIssuers } from './token-issuers.ts'
import { sqlTuples } from './tuples.ts'

// The class's instances carry every port method as an own property (assigned in the
// constructor), so the class declares them through this merged interface.
export interface SqlDatastore extends Omit<Datastore, 'dialect' | 'preferredConcurrency' | 'close'> {}

export class SqlDatastore implements Datastore {
  readonly dialect: string
  readonly preferredConcurrency: number
  readonly #driver: SqlDriver

  constructor(driver: SqlDriver) {
    this.dialect = driver.dialect
    this.preferredConcurrency = driver.preferredConcurrency
    this.#driver = driver
    Object.assign(
      this,
      sqlCatalog(driver),
      sqlTuples(driver),
      sqlAccessRequests(driver),
      sqlTokenIssuers(driver),
      sqlDecisions(driver),
    )
  }

  close(): Promise<void> {
    return this.#driver.close()
  }
}
