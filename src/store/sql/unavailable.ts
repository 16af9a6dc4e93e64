/**
 * Which driver errors mean "the database cannot serve this now" rather than "this statement is
 * wrong": one classification for both dialects, so every port answers them as
 * `DatastoreUnavailable` (503 `unavailable` with `Retry-After`) and never as a fault (500 with a
 * stack in the log). They come in two kinds:
 *
 * - An outage (`datastoreUnreachable`), reported to the outage tracker, which flips `/healthz`:
 *   - PostgreSQL (node-postgres): a refused, reset or timed-out connection, a host not
 *     resolving; SQLSTATE class 08 (connection exception), 57P01/57P02/57P03 (terminated by an
 *     administrator, a crash shutdown, the server starting), 53300 (out of connections); the
 *     pool's connect timeout and "Connection terminated unexpectedly" (node-postgres gives those
 *     no code; the message is read only when there is no code, so a statement error whose text
 *     happens to say "not queryable" is not an outage).
 *   - SQLite (better-sqlite3): SQLITE_IOERR*, SQLITE_FULL, SQLITE_CANTOPEN*, SQLITE_READONLY*,
 *     SQLITE_PROTOCOL: the disk fails.
 * - A strain (`datastoreStrained`): the database is up but cannot serve this statement now;
 *   waiting helps, but one slow query must not make an orchestrator pull the replica, and the
 *   tracker's probe (a trivial read) would succeed and end the "outage" while the strain goes on,
 *   so `/healthz` is left alone:
 *   - PostgreSQL: 57014 (statement timeout, PEMBA_PG_STATEMENT_TIMEOUT_MS), 55P03 (lock timeout),
 *     25006 (a read-only transaction: writes reaching a standby after a failover), 53100 (disk
 *     full), 53200 (out of memory).
 *   - SQLite: SQLITE_BUSY* once the lock-wait budget is spent (another process holds the write
 *     lock; sqlite/busy.ts waits for it on a timer).
 *
 * A wrong password, a missing table, a constraint or a syntax error are neither: waiting will
 * not fix them, and they stay faults.
 *
 * @module
 */
import { DatastoreUnavailable } from '../../core/errors.ts'

const UNREACHABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/** SQLSTATEs of a connection the server ended or would not open (57P04, a dropped database, is not one). */
const POSTGRES_UNAVAILABLE = new Set(['57P01', '57P02', '57P03', '53300'])

/** The errors node-postgres and pg-pool raise without a code when a connection fails or cannot be had. */
const POSTGRES_CONNECTION_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Client was closed|connection timeout/i

const SQLITE_UNAVAILABLE = /^SQLITE_(IOERR|FULL|CANTOPEN|READONLY|PROTOCOL)/

/** SQLSTATEs of a database that is up but cannot serve the statement now (see the module comment). */
const POSTGRES_STRAINED = new Set(['57014', '55P03', '25006', '53100', '53200'])

const SQLITE_STRAINED = /^SQLITE_BUSY/

/** The code and message of an error, or of the first error of an AggregateError (a name with several addresses). */
function facts(err: unknown): { code?: string; message?: string } {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; errors?: unknown }
  const first = Array.isArray(e.errors) ? (e.errors[0] as { code?: unknown } | undefined) : undefined
  const code = typeof e.code === 'string' ? e.code : typeof first?.code === 'string' ? first.code : undefined
  return { code, message: typeof e.message === 'string' ? e.message : undefined }
}

/**
 * datastoreUnreachable: the error says the database cannot be reached or lost the connection (an
 * outage, reported to the tracker). A DatastoreUnavailable is one unless it wraps a strain.
 */
export function datastoreUnreachable(err: unknown): boolean {
  if (err instanceof DatastoreUnavailable) return err.cause === undefined || !datastoreStrained(err.cause)
  const { code, message } = facts(err)
  if (code !== undefined) {
    if (code.startsWith('SQLITE_')) return SQLITE_UNAVAILABLE.test(code)
    return UNREACHABLE_ERRNOS.has(code) || POSTGRES_UNAVAILABLE.has(code) || /^08[0-9A-Z]{3}$/.test(code)
  }
  // Only node-postgres' own connection errors come without a code; a server error always has one.
  return message !== undefined && err instanceof Error && POSTGRES_CONNECTION_MESSAGE.test(message)
}

/**
 * datastoreStrained: the database is up but cannot serve this statement now (a statement or
 * lock timeout, a read-only standby, no disk or memory, SQLite's write lock held elsewhere):
 * 503 with `Retry-After`, not an outage.
 */
export function datastoreStrained(err: unknown): boolean {
  const { code } = facts(err)
  if (code === undefined) return false
  return code.startsWith('SQLITE_') ? SQLITE_STRAINED.test(code) : POSTGRES_STRAINED.has(code)
}

/**
 * connectionLost: an established PostgreSQL connection broke under a statement (a terminated
 * backend, a reset socket), as opposed to one that could not be opened. A statement that met
 * it never completed on that connection, so a read is safely asked again on another one.
 */
export function connectionLost(err: unknown): boolean {
  const { code, message } = facts(err)
  if (code === '57P01' || code === '57P02' || code === 'ECONNRESET' || code === 'EPIPE') return true
  return code === undefined && message !== undefined && /Connection terminated unexpectedly|not queryable/i.test(message)
}

/** asDatastoreError: `err` as DatastoreUnavailable when it is an outage or a strain, else `err` itself. */
export function asDatastoreError(err: unknown): unknown {
  if (err instanceof DatastoreUnavailable || !(datastoreUnreachable(err) || datastoreStrained(err))) return err
  return new DatastoreUnavailable(err)
}
