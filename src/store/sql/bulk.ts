/**
 * The bulk load over SQL (TupleBulkLoader): many tuples in one transaction under one revision,
 * at the speed of the database's own bulk paths, with Write's changelog. The driver inserts
 * (driver.ts `bulkInsert`: SQLite's multi-row `INSERT OR IGNORE`, PostgreSQL's COPY into a
 * staging table and one set-based insert) and records each row it inserted; this core takes
 * the store's revision, judges the rows the driver found stored, and settles the revision.
 *
 * The rules are Write's under `onDuplicate: 'ignore'` (store/write-plan.ts), applied per tuple
 * in load order: a tuple whose key is absent, or held by a row expired and not yet swept, is
 * written; one whose key is live with the same condition and expiry is left as it is; one
 * whose key is live with another condition or expiry is a conflict, left unwritten and
 * reported, while the rest of the load is written (Write would refuse the whole request). A
 * key repeated in the load meets its first occurrence, as a second write in one Write request
 * does. Nothing written: no new revision, so a re-run of an import changes nothing at all.
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'
import type { Tuple } from '../../core/tuple.ts'
import { canonicalContext } from '../common.ts'
import type { BulkLoadConflictReason, BulkLoadResult, TupleBulkLoader } from '../ports.ts'
import type { PlannedChange, StoredState } from '../write-plan.ts'
import type { BulkRow, SqlDriver, Tx } from './driver.ts'

/** The bulk loader over `d`. */
export function sqlBulkLoader(d: SqlDriver): TupleBulkLoader {
  return {
    async loadTuples(storeId: string, tuples: readonly Tuple[], now: Date): Promise<BulkLoadResult> {
      const ts = now.getTime()
      const rows = bulkRows(tuples)
      const result = await d.transaction(() => loadRows(d, storeId, rows, ts))
      d.noteWritten(result.written)
      return result
    },
  }
}

/** bulkRows: each tuple as the write it plans, with its position (the context in its stored form). */
function bulkRows(tuples: readonly Tuple[]): BulkRow[] {
  const rows: BulkRow[] = new Array(tuples.length)
  for (let i = 0; i < tuples.length; i++) {
    const t = tuples[i]
    rows[i] = {
      operation: 'write',
      tuple: t,
      conditionName: t.conditionName,
      context: canonicalContext(t.conditionContext),
      expiresAt: t.expiresAt ?? null,
      index: i,
    }
  }
  return rows
}

/** loadRows is the load's transaction: take the store, insert through the driver, judge the rest. */
function* loadRows(d: SqlDriver, storeId: string, rows: readonly BulkRow[], ts: number): Tx<BulkLoadResult> {
  const revision = yield* d.nextRevision(storeId)
  if (revision === undefined) throw new PembaError('store_id_not_found', 'Store ID not found')
  const { written, met } = rows.length === 0 ? { written: 0, met: [] } : yield* d.bulkInsert(storeId, rows, revision, ts)
  let unchanged = 0
  const conflicts: BulkLoadResult['conflicts'] = []
  for (const { row, stored } of met) {
    const reason = difference(row, stored)
    if (reason === undefined) unchanged++
    else conflicts.push({ index: row.index, reason })
  }
  yield* d.settleRevision(storeId, revision, written > 0)
  return { revision: written > 0 ? revision : revision - 1, written, unchanged, conflicts }
}

/**
 * difference: why writing `w` over the live state of its key is a conflict, as planWrite
 * judges it under `onDuplicate: 'ignore'`, or undefined when they are the same tuple.
 */
export function difference(w: PlannedChange, stored: StoredState): BulkLoadConflictReason | undefined {
  if (stored.conditionName !== w.conditionName || stored.context !== w.context) return 'different_condition'
  if (stored.expiresAt !== w.expiresAt) return 'different_expiry'
  return undefined
}
