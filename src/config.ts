/**
 * Configuration: every setting is one field of the zod schema in src/config/settings.ts (its
 * environment variable, flag, default and description); src/config/load.ts reads the defaults,
 * an optional config file, the environment and the flags (flags win) and checks them. `npm start`
 * with no settings listens on 127.0.0.1:8080 with `./data/pemba.db`.
 *
 * To add a setting, add its field to `settingsShape` in src/config/settings.ts; `PembaConfig`,
 * `DEFAULTS`, `--help` and docs/configuration.md (`npm run docs:settings`) follow.
 *
 * @module
 */
import { databaseBackend } from './config/settings.ts'

export { ConfigError, DEFAULTS, databaseBackend, type PembaConfig, type SettingKey } from './config/settings.ts'
export { readDatabaseUrls } from './config/read-urls.ts'
export { loadConfig, type ConfigSource } from './config/load.ts'

/**
 * What a database URL names: the backend's name as `dialect`, and what the backend made of the
 * URL, e.g. `{ dialect: 'sqlite', filename: './data/pemba.db' }` or
 * `{ dialect: 'postgres', url: 'postgres://…' }`.
 */
export type DatabaseTarget = { readonly dialect: string } & Record<string, unknown>

/**
 * parseDatabaseUrl reads a URL with the backend registry (src/store/sql/backends.ts): today
 * `sqlite:<path>`, `sqlite://<path>`, `sqlite::memory:`, and `postgres://…` / `postgresql://…`
 * (node-postgres connection strings, passed on as they are).
 */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  const { backend, target } = databaseBackend(url)
  return { dialect: backend.name, ...target }
}
