/**
 * StoreService creates, lists, reads and deletes stores. Creating one also writes its grants in
 * the system store (the creator becomes its admin), before the store row, so a store never
 * exists unowned; listing shows a client only the stores it may read.
 *
 * @module
 */
import { PembaError } from '../core/errors.ts'
import type { IdGenerator } from '../core/ids.ts'
import type { Page, StoreCatalog, StoreRecord, StoreStats } from '../store/ports.ts'
import type { HeadRevisions } from './head-revisions.ts'

/** The most live tuples a store summary counts; past it the summary says `tuple_count_capped`. */
export const SUMMARY_TUPLE_COUNT_CAP = 1_000_000

/**
 * What the store service needs of API clients' permissions (src/auth/access-control.ts
 * implements it): declared here, so the service layer does not depend on auth.
 */
export interface StoreGrants {
  /** Links a new store to the system and makes `creator` (when authenticated) its admin. */
  onStoreCreated(storeId: string, creator: string): Promise<void>
  /** Removes every grant on a deleted store (idempotent). */
  onStoreDeleted(storeId: string): Promise<void>
  /** ListStores as `client` sees it. */
  listStores(client: string, q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>>
}

export interface StoreServiceOptions {
  datastore: StoreCatalog
  grants: StoreGrants
  ids: IdGenerator
  clock: () => Date
  /**
   * Which stores are deleted: told of a deletion here, asked on every store route. Told of a
   * deletion, it releases what the services hold in memory for the store (tuple index, caches,
   * models), as it does on every replica that learns of it.
   */
  liveness: Pick<HeadRevisions, 'requireLive' | 'markDeleted'>
}

export class StoreService {
  readonly #o: StoreServiceOptions

  constructor(options: StoreServiceOptions) {
    this.#o = options
  }

  /** create makes a store named `name`, administered by `creator` ('' when authentication is off). */
  async create(name: string, creator: string): Promise<StoreRecord> {
    const now = this.#o.clock()
    const id = this.#o.ids(now.getTime())
    // The creator becomes the store's admin; written first, so a store never exists unowned.
    await this.#o.grants.onStoreCreated(id, creator)
    return this.#o.datastore.createStore(id, name, now)
  }

  /** list pages through the stores `client` may read (all but the system store when auth is off). */
  list(client: string, q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>> {
    return this.#o.grants.listStores(client, q)
  }

  async get(id: string): Promise<StoreRecord> {
    const store = await this.#o.datastore.getStore(id)
    if (!store) throw new PembaError('store_id_not_found', 'Store ID not found')
    return store
  }

  /**
   * summary: the store with what it holds (models, live tuples, last change), for the console's
   * stores page. The tuples are counted up to SUMMARY_TUPLE_COUNT_CAP (an index range of at most
   * that many keys is read), so a large store costs no more than one of that size.
   */
  async summary(id: string): Promise<{ store: StoreRecord; stats: StoreStats }> {
    const store = await this.get(id)
    const stats = await this.#o.datastore.storeStats(id, this.#o.clock().getTime(), SUMMARY_TUPLE_COUNT_CAP)
    return { store, stats }
  }

  /**
   * requireLive throws store_id_not_found when the store is deleted (this replica's deletions at
   * once, another's within the head revisions' staleness bound); undefined when nothing needs
   * reading, so the hot path pays no await.
   */
  requireLive(id: string): Promise<unknown> | undefined {
    return this.#o.liveness.requireLive(id)
  }

  /**
   * delete: deleted means gone. From the moment this returns, every store route answers 404
   * store_id_not_found (on other replicas within the staleness bound), every write is refused
   * by the datastore, what this process holds of the store is released, and the store's grants
   * are removed. Its data stays until the purge (PEMBA_DELETED_STORE_RETENTION).
   */
  async delete(id: string): Promise<void> {
    await this.#o.datastore.deleteStore(id, this.#o.clock())
    this.#o.liveness.markDeleted(id)
    await this.#o.grants.onStoreDeleted(id)
  }
}
