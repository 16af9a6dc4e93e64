/**
 * PEMBA_DATABASE_READ_URL's value: the PostgreSQL standbys of the primary (comma-separated
 * URLs), read as the server uses them, and refused naming the setting with passwords hidden.
 *
 * @module
 */
import { InvalidDatabaseUrl } from '../store/sql/backend.ts'
import { chooseBackend, UnsupportedDatabaseUrl, type DatabaseChoice } from '../store/sql/backends.ts'

/** ReadDatabaseUrlError: PEMBA_DATABASE_READ_URL names something that is not a PostgreSQL URL. */
export class ReadDatabaseUrlError extends Error {}

/**
 * readDatabaseUrls: the standby URLs of PEMBA_DATABASE_READ_URL (comma-separated), each a
 * PostgreSQL URL; a ReadDatabaseUrlError naming the setting (passwords hidden) otherwise. '' is none.
 */
export function readDatabaseUrls(value: string): string[] {
  if (value.trim() === '') return []
  return value.split(',').map((part) => {
    const url = part.trim()
    let choice: DatabaseChoice | undefined
    try {
      choice = chooseBackend(url)
    } catch (e) {
      if (!(e instanceof UnsupportedDatabaseUrl || e instanceof InvalidDatabaseUrl)) throw e
    }
    if (choice?.backend.name !== 'postgres') {
      const shown = url === '' ? 'an empty entry' : `'${hidePassword(url)}'`
      throw new ReadDatabaseUrlError(`PEMBA_DATABASE_READ_URL: ${shown} is not a PostgreSQL URL (postgres://user:password@host:5432/db)`)
    }
    return url
  })
}

/** hidePassword: a URL with its password as `***` (what messages show of a database URL). */
function hidePassword(url: string): string {
  try {
    const u = new URL(url)
    if (!u.password) return url
    u.password = '***'
    return u.toString()
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@')
  }
}
