/**
 * Which driver errors mean "the database cannot be reached or lost the connection" rather than
 * "this statement is wrong": one classification for both dialects, so every port answers an
 * outage as `DatastoreUnavailable` (503 `unavailable` with `Retry-After`) and never as a fault
 * (500 with a stack in the log).
 *
 * - PostgreSQL (node-postgres): a refused, reset or timed-out connection, a host not resolving;
 *   SQLSTATE class 08 (connection exception), 57P01/57P02/57P03 (terminated by an administrator,
 *   a crash shutdown, the server starting), 53300 (out of connections); the pool's connect
 *   timeout and "Connection terminated unexpectedly" (node-postgres gives those no code).
 * - SQLite (better-sqlite3): SQLITE_BUSY after the busy timeout, SQLITE_IOERR*, SQLITE_FULL,
 *   SQLITE_CANTOPEN*, SQLITE_READONLY*, SQLITE_PROTOCOL: the file is locked, or the disk fails.
 *
 * A wrong password, a missing table, a constraint or a syntax error are not outages: waiting
 * will not fix them, and they stay faults.
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

const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL)/

/** The code and message of an error, or of the first error of an AggregateError (a name with several addresses). */
function facts(err: unknown): { code?: string; message?: string } {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; errors?: unknown }
  const first = Array.isArray(e.errors) ? (e.errors[0] as { code?: unknown } | undefined) : undefined
  const code = typeof e.code === 'string' ? e.code : typeof first?.code === 'string' ? first.code : undefined
  return { code, message: typeof e.message === 'string' ? e.message : undefined }
}

/** datastoreUnreachable: the error says the database cannot be reached or lost the connection. */
export function datastoreUnreachable(err: unknown): boolean {
  if (err instanceof DatastoreUnavailable) return true
  const { code, message } = facts(err)
  if (code !== undefined) {
    if (code.startsWith('SQLITE_')) return SQLITE_UNAVAILABLE.test(code)
    if (UNREACHABLE_ERRNOS.has(code) || POSTGRES_UNAVAILABLE.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true
  }
  return message !== undefined && err instanceof Error && !(code ?? '').startsWith('SQLITE_') && POSTGRES_CONNECTION_MESSAGE.test(message)
}

/**
 * connectionLost: an established PostgreSQL connection broke under a statement (a terminated
 * backend, a reset socket), as opposed to one that could not be opened. A statement that met
 * it never completed on that connection, so a read is safely asked again on another one.
 */
export function connectionLost(err: unknown): boolean {
  const { code, message } = facts(err)
  if (code === '57P01' || code === '57P02' || code === 'ECONNRESET' || code === 'EPIPE') return true
  return message !== undefined && /Connection terminated unexpectedly|not queryable/i.test(message)
}

/** asDatastoreError: `err` as DatastoreUnavailable when it is an outage, else `err` itself. */
export function asDatastoreError(err: unknown): unknown {
  if (err instanceof DatastoreUnavailable || !datastoreUnreachable(err)) return err
  return new DatastoreUnavailable(err)
}
