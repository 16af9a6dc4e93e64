/**
 * DecisionWriter writes decision-log batches to a SQLite file from a worker thread, with a
 * connection of its own. better-sqlite3 is synchronous: written on the main thread, every batch
 * (a few hundred rows into a table with three indexes, plus grant-usage upserts) would stall
 * the event loop that serves checks for its whole duration. In the worker it runs beside it;
 * the main thread only hands over the rows. WAL lets the main thread keep reading meanwhile;
 * a main-thread write that meets a batch being written waits for it on a timer (busy.ts), as
 * for any other writer of the file. The worker itself may wait for the lock in place
 * (busy_timeout): blocking this thread holds no request.
 *
 * Each batch is one transaction of prepared single-row statements (with better-sqlite3 that is
 * faster than one multi-row statement: binding a 1,600-argument call costs more than it saves).
 *
 * @module
 */
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { DECISION_COLUMNS } from '../audit.ts'

/** The upsert that keeps each tuple's latest use (shared with the in-thread writer). */
export const UPSERT_USAGE_SQL = `INSERT INTO grant_usage (store_id, object_type, object_id, relation, user_relation, user_type, user_id, last_used_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (store_id, object_type, object_id, relation, user_relation, user_type, user_id)
  DO UPDATE SET last_used_at = MAX(last_used_at, excluded.last_used_at)`

/**
 * Decisions are inserted or ignored by id, as on PostgreSQL: a batch handed over again (a cluster
 * worker whose hand-over to the primary timed out after the primary had written it) is no
 * duplicate and no error.
 */
export const INSERT_DECISION_SQL = `INSERT OR IGNORE INTO decision_log (${DECISION_COLUMNS.join(', ')}) VALUES (${DECISION_COLUMNS.map(() => '?').join(', ')})`

/** The worker: plain JavaScript (it runs without the TypeScript loader), CommonJS in eval mode. */
const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.filename)
db.pragma('busy_timeout = 5000')
// NORMAL whatever PEMBA_SQLITE_SYNCHRONOUS says: the decision log is already lossy by design (a
// crash loses the decisions still buffered), so a power loss taking the last batches too adds
// no new kind of loss; the tuples, models and stores are written by the main connection.
db.pragma('synchronous = NORMAL')
// The log's subject and object indexes take rows in random key order: a large page cache and
// fewer checkpoints let a batch touch each index page once instead of reading and writing it
// back again and again (measured: about half the cost per row at 5,000-row batches).
db.pragma('cache_size = -65536')
db.pragma('wal_autocheckpoint = 10000')
const insert = db.prepare(workerData.insertSql)
const upsert = db.prepare(workerData.upsertSql)
const write = db.transaction((batches) => {
  for (const b of batches) {
    for (const row of b.decisions) insert.run(row)
    for (const row of b.uses) upsert.run(row)
  }
})
parentPort.on('message', (first) => {
  // Batches that queued up while the last transaction ran are written together: one commit,
  // and each index page touched once for all of them.
  const batches = [first]
  for (let m; (m = receiveMessageOnPort(parentPort)); ) batches.push(m.message)
  const writes = batches.filter((b) => !b.close)
  if (writes.length > 0) {
    try {
      write.immediate(writes)
      for (const b of writes) parentPort.postMessage({ id: b.id })
    } catch (e) {
      for (const b of writes) parentPort.postMessage({ id: b.id, error: String((e && e.message) || e), code: e && e.code })
    }
  }
  if (writes.length < batches.length) {
    db.close()
    parentPort.postMessage({ closed: true })
  }
})
`

type Row = (string | number | null)[]

export class DecisionWriter {
  readonly #filename: string
  #worker: Worker | undefined
  #next = 0
  readonly #pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>()

  constructor(filename: string) {
    this.#filename = filename
  }

  #start(): Worker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        filename: this.#filename,
        insertSql: INSERT_DECISION_SQL,
        upsertSql: UPSERT_USAGE_SQL,
      },
    })
    worker.on('message', (m: { id?: number; error?: string; code?: string }) => {
      if (m.id === undefined) return
      const p = this.#pending.get(m.id)
      this.#pending.delete(m.id)
      if (this.#pending.size === 0) worker.unref()
      // The SQLite code (SQLITE_BUSY…) goes along: the store tells an outage or a strain from a fault by it.
      if (m.error) p?.reject(Object.assign(new Error(`decision log write failed: ${m.error}`), m.code ? { code: m.code } : {}))
      else p?.resolve()
    })
    const fail = (err: Error) => {
      for (const p of this.#pending.values()) p.reject(err)
      this.#pending.clear()
      if (this.#worker === worker) this.#worker = undefined
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`decision log writer exited (${code})`)))
    // An idle writer never keeps the process alive; one with a batch in hand does (write()).
    worker.unref()
    return worker
  }

  /** write sends one batch; resolves once it is committed. */
  write(decisions: Row[], uses: Row[]): Promise<void> {
    const worker = (this.#worker ??= this.#start())
    const id = this.#next++
    return new Promise<void>((resolve, reject) => {
      if (this.#pending.size === 0) worker.ref()
      this.#pending.set(id, { resolve, reject })
      worker.postMessage({ id, decisions, uses })
    })
  }

  /**
   * close ends the worker once the batches already sent are written: the worker handles its
   * messages in order, so the close message comes after them.
   */
  async close(): Promise<void> {
    const worker = this.#worker
    if (!worker) return
    this.#worker = undefined
    worker.ref()
    await new Promise<void>((resolve) => {
      worker.on('message', (m: { closed?: boolean }) => m.closed && resolve())
      worker.once('exit', () => resolve())
      worker.postMessage({ close: true })
    })
    await worker.terminate()
  }
}
