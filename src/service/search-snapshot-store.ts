/**
 * The port the AuthZEN search service (authzen/search.ts) owns: where the complete answer of a
 * search that did not fit in one page is kept, so that its later pages are served from it on
 * any replica, at the revision of the first page. The datastores implement it
 * (store/sql/search-snapshots.ts); this file imports nothing, so the store depends on the
 * service's port and never the reverse.
 *
 * @module
 */

/**
 * SearchSnapshot is one search's complete, sorted answer, e.g. the 5,000 documents `user:anne`
 * may `can_view`, as `["doc:0001", "doc:0002", …]` (`type:id` for subjects and resources, the
 * name for actions), computed once at `revision` with model `modelId`.
 */
export interface SearchSnapshot {
  storeId: string
  /** Random and unguessable (the page tokens name it). */
  id: string
  /** What the search asked (sha256 of its canonical form): a token is only good for the same question. */
  queryHash: string
  modelId: string
  /**
   * The store's head revision read before the answer was computed: every write up to it is in
   * the answer (the datastore's readers read the newest data), which is what reuse needs.
   */
  revision: number
  /** The HMAC key of the snapshot's page tokens (base64url). */
  secret: string
  results: string[]
  total: number
  createdAt: Date
  expiresAt: Date
}

export interface SearchSnapshotStore {
  /** insertSearchSnapshot keeps a snapshot until its `expiresAt`. */
  insertSearchSnapshot(s: SearchSnapshot): Promise<void>
  /**
   * findSearchSnapshot returns the newest live snapshot (expiring after `now`) of the same
   * question (`queryHash`) at the same `revision` and model, created at or after `createdSince`:
   * a repeated first page reuses it instead of storing the same answer again.
   */
  findSearchSnapshot(
    storeId: string,
    q: { queryHash: string; revision: number; modelId: string; createdSince: Date },
    now: Date,
  ): Promise<SearchSnapshot | undefined>
  /** countLiveSearchSnapshots: how many of the store's snapshots expire after `now` (the per-store cap). */
  countLiveSearchSnapshots(storeId: string, now: Date): Promise<number>
  /** getSearchSnapshot returns a store's snapshot, expired or not (the caller compares the time). */
  getSearchSnapshot(storeId: string, id: string): Promise<SearchSnapshot | undefined>
  /** deleteExpiredSearchSnapshots removes up to `limit` snapshots expired at `now`; how many. */
  deleteExpiredSearchSnapshots(now: Date, limit: number): Promise<number>
}
