/**
 * withDecisionWriter: a datastore as the decision log sees it, whose decision batches go to
 * `writer` rather than to the datastore, everything else (the stores' log settings, listing,
 * retention, grants) to the datastore itself.
 *
 * For a worker of a cluster on a SQLite file (PEMBA_WORKERS, src/cli/cluster.ts). Every worker
 * writing its own batches into the one file would be correct (WAL, the busy handling, random
 * ids), but n writers hold the file's one write lock n times as often, so the tuple writes wait
 * behind them more; and each writer keeps a 64 MiB page cache warm on the log's indexes between
 * batches (decision-writer.ts), which SQLite empties whenever another connection has written
 * the file, so with several writers every batch would read its index pages again. The workers
 * therefore hand their batches to the primary, the file's one decision writer, as one process
 * has one; each batch is still built (ids, redaction, grant uses) by its worker.
 *
 * @module
 */
import type { StoreCatalog } from '../store/ports.ts'
import type { DecisionStore } from './decision-store.ts'

export type DecisionLogStore = DecisionStore & Pick<StoreCatalog, 'getStore'>

export function withDecisionWriter(datastore: DecisionLogStore, writer: Pick<DecisionStore, 'appendDecisions'>): DecisionLogStore {
  return {
    appendDecisions: (decisions, uses) => writer.appendDecisions(decisions, uses),
    listDecisions: (storeId, q) => datastore.listDecisions(storeId, q),
    deleteDecisionsBefore: (before, limit) => datastore.deleteDecisionsBefore(before, limit),
    forgetGrantUsage: (before, limit) => datastore.forgetGrantUsage(before, limit),
    getDecisionLogSettings: (storeId) => datastore.getDecisionLogSettings(storeId),
    putDecisionLogSettings: (storeId, settings) => datastore.putDecisionLogSettings(storeId, settings),
    listGrants: (...args) => datastore.listGrants(...args),
    identityGrantStats: (storeId, userType, q) => datastore.identityGrantStats(storeId, userType, q),
    getStore: (id) => datastore.getStore(id),
  }
}
