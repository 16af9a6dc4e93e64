/**
 * The composed storage contract the server wires: every port (ports.ts and the feature-owned
 * ports next to their services) plus what a backend says about itself. Code that needs storage
 * should ask for the narrow port it uses; `Datastore` is for the wiring and for backends, which
 * implement all of it (sql/datastore.ts, over one driver per dialect).
 *
 * The port types are re-exported here so that `../store/store.ts` keeps naming them all.
 *
 * @module
 */
import type { AccessRequestStore } from '../service/access-request-store.ts'
import type { DecisionStore } from '../service/decision-store.ts'
import type { SearchSnapshotStore } from '../service/search-snapshot-store.ts'
import type { TokenIssuerStore } from '../service/token-issuer-store.ts'
import type { SigningKeyStore } from '../service/signing-key-store.ts'
import type {
  AssertionStore,
  Changelog,
  DatastoreHealth,
  ModelStore,
  StoreCatalog,
  TupleBulkLoader,
  TupleStore,
  TupleWriter,
} from './ports.ts'

export type {
  AssertionStore,
  BulkLoadConflictReason,
  BulkLoadResult,
  ChangesQuery,
  Changelog,
  DatastoreHealth,
  ImmediateReads,
  MembershipClosureReader,
  MembershipReach,
  ModelStore,
  Page,
  PoolStats,
  QueryObserver,
  ReadFilter,
  ReaderOptions,
  ReadReplicaStats,
  Revision,
  StoreCatalog,
  StoreHead,
  StoredTuple,
  StoreRecord,
  StoreStats,
  TupleBulkLoader,
  TupleChange,
  TupleReader,
  TupleStore,
  TupleWriter,
  WriteRequest,
} from './ports.ts'
export type { TupleIdentity } from '../core/tuple.ts'
export {
  EXPIRY_ACTOR,
  effectiveStatus,
  type AccessRequestDecision,
  type AccessRequestEvent,
  type AccessRequestQuery,
  type AccessRequestRecord,
  type AccessRequestStatus,
  type AccessRequestStore,
} from '../service/access-request-store.ts'
export type {
  TokenIssuerInput,
  TokenIssuerPut,
  TokenIssuerRecord,
  TokenIssuerStore,
} from '../service/token-issuer-store.ts'
export type { DecisionStore } from '../service/decision-store.ts'
export type { SigningKeyRecord, SigningKeyStore } from '../service/signing-key-store.ts'
export type { SearchSnapshot, SearchSnapshotStore } from '../service/search-snapshot-store.ts'

export interface Datastore
  extends StoreCatalog,
    ModelStore,
    TupleStore,
    TupleWriter,
    TupleBulkLoader,
    Changelog,
    AssertionStore,
    AccessRequestStore,
    TokenIssuerStore,
    SigningKeyStore,
    DecisionStore,
    SearchSnapshotStore,
    DatastoreHealth {
  /** The name of the backend that serves it (its SqlBackend's `name`, src/store/sql/backends.ts): `sqlite`, `postgres`. */
  readonly dialect: string
  /** How many sibling subproblems the engine should evaluate at once over this store. */
  readonly preferredConcurrency: number
  close(): Promise<void>
}
