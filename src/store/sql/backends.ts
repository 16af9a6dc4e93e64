/**
 * The backend registry: every SQL backend Pemba can run on, in one list. The configuration
 * validates `PEMBA_DATABASE_URL` against it, the server opens the datastore through it and
 * `pemba migrate` migrates through it; none of them names a dialect. Adding a backend is its
 * driver file (exporting a `SqlBackend`, backend.ts), one entry here, its schema and its
 * migrations.
 *
 * @module
 */
import { postgresBackend } from '../postgres/index.ts'
import { sqliteBackend } from '../sqlite/index.ts'
import type { SqlBackend } from './backend.ts'

/** The backends, in the order the "not supported" message lists their URL forms. */
export const BACKENDS: readonly SqlBackend[] = [sqliteBackend, postgresBackend]

/** A backend and what it made of a URL, ready to open. */
export interface DatabaseChoice {
  backend: SqlBackend
  target: object
}

/**
 * UnsupportedDatabaseUrl: no backend accepts the URL's scheme. Its message is the reason alone,
 * listing every backend's forms: `is not supported (use sqlite:<path>, sqlite::memory: or postgres://…)`.
 */
export class UnsupportedDatabaseUrl extends Error {
  constructor() {
    const forms = BACKENDS.flatMap((b) => b.urlForms)
    super(`is not supported (use ${forms.slice(0, -1).join(', ')} or ${forms[forms.length - 1]})`)
    this.name = 'UnsupportedDatabaseUrl'
  }
}

/**
 * chooseBackend finds the backend whose scheme `url` starts with and parses the URL with it:
 * `sqlite:./data/pemba.db` → sqliteBackend with `{ filename: './data/pemba.db' }`. Throws
 * UnsupportedDatabaseUrl, or the backend's InvalidDatabaseUrl.
 */
export function chooseBackend(url: string): DatabaseChoice {
  const backend = BACKENDS.find((b) => b.schemes.some((scheme) => url.startsWith(scheme)))
  if (!backend) throw new UnsupportedDatabaseUrl()
  return { backend, target: backend.parseUrl(url) }
}

/** The migrations folder of each backend by name (`sqlite` → `…/migrations/sqlite`). */
export const MIGRATION_FOLDERS: Readonly<Record<string, string>> = Object.fromEntries(
  BACKENDS.map((b) => [b.name, b.migrationsFolder]),
)
