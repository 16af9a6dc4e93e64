/**
 * PostgreSQL for tests. `PEMBA_TEST_POSTGRES_URL` names the server
 * (e.g. postgres://pemba:pemba@127.0.0.1:5432/pemba). Without it, or when the server does not
 * answer, the PostgreSQL suites are skipped with the reason on the console, never passed
 * silently; with `PEMBA_REQUIRE_POSTGRES=1` (as CI sets) they fail instead.
 *
 * Each test file works in a schema of its own (`pemba_test_<pid>_<random>`), dropped at the
 * end, so files running in parallel and earlier runs never see each other's tables.
 */
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, it } from 'vitest'
import { postgresBackend } from '../../src/store/postgres/index.ts'

export interface PostgresTarget {
  /** The server's URL, when it answered. */
  url?: string
  /** Why the suites cannot run, when they cannot. */
  reason?: string
  /** PEMBA_REQUIRE_POSTGRES=1: a missing server fails the run. */
  required: boolean
}

let probed: Promise<PostgresTarget> | undefined

/** probePostgres connects once per test file (`SELECT 1`, 5 s budget) and says what it found. */
export function probePostgres(): Promise<PostgresTarget> {
  probed ??= (async () => {
    const url = process.env.PEMBA_TEST_POSTGRES_URL
    const required = process.env.PEMBA_REQUIRE_POSTGRES === '1'
    if (!url) return { required, reason: 'PEMBA_TEST_POSTGRES_URL is not set' }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
    try {
      await client.connect()
      await client.query('SELECT 1')
      return { url, required }
    } catch (e) {
      return { required, reason: `PostgreSQL at ${postgresBackend.redactUrl(url)} is not reachable: ${(e as Error).message}` }
    } finally {
      await client.end().catch(() => {})
    }
  })()
  return probed
}

/**
 * describePostgres registers `fn` as a suite when PostgreSQL answered; otherwise it prints why
 * and skips it, or (PEMBA_REQUIRE_POSTGRES=1) registers one failing test that says why. `fn`
 * runs at collection time even when skipped, so it must touch the database only in hooks and
 * tests.
 */
export function describePostgres(name: string, target: PostgresTarget, fn: () => void): void {
  if (!target.url && target.required) {
    describe(name, () => {
      it('has PostgreSQL (PEMBA_REQUIRE_POSTGRES=1)', () => {
        throw new Error(`PostgreSQL suites cannot run: ${target.reason}`)
      })
    })
    return
  }
  if (!target.url) console.warn(`PostgreSQL suites not run (${name}): ${target.reason}`)
  describe.skipIf(!target.url)(name, fn)
}

export interface TestSchema {
  /** The server URL with `search_path` set to the schema (what a datastore should open). */
  url: string
  name: string
  /** Empties every Pemba table (between cases). */
  truncate(): Promise<void>
  /** Drops the schema and everything in it. */
  drop(): Promise<void>
}

/** createTestSchema makes a fresh, empty schema and a URL whose connections use it. */
export async function createTestSchema(serverUrl: string): Promise<TestSchema> {
  const name = `pemba_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  const ident = admin.escapeIdentifier(name)
  await admin.query(`CREATE SCHEMA ${ident}`)
  return {
    url: withSearchPath(serverUrl, name),
    name,
    async truncate() {
      const tables = ['stores', 'authorization_models', 'tuples', 'changelog', 'assertions']
      tables.push('access_requests', 'access_request_events')
      tables.push('token_issuers')
      tables.push('decision_log', 'decision_log_settings', 'grant_usage')
      tables.push('search_snapshots', 'signing_keys')
      await admin.query(`TRUNCATE ${tables.map((t) => `${ident}.${t}`).join(', ')}`)
    },
    async drop() {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS ${ident} CASCADE`)
      } finally {
        await admin.end()
      }
    },
  }
}

/** withSearchPath adds `-c search_path=<schema>` to the URL's `options` parameter. */
export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url)
  const options = u.searchParams.get('options')
  u.searchParams.set('options', `${options ? options + ' ' : ''}-c search_path=${schema}`)
  return u.toString()
}

/**
 * usePostgresSchema, called inside a describePostgres suite, gives it a schema of its own with
 * Pemba's migrations applied, emptied before each case (the sweeper sweeps every store in the
 * database, so cases must not see each other's tuples) and dropped at the end. Returns a
 * function for the schema's URL, valid once the suite's hooks have run.
 */
export function usePostgresSchema(target: PostgresTarget): () => string {
  let schema: TestSchema | undefined
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
    const { PostgresDatastore } = await import('../../src/store/postgres/index.ts')
    await (await PostgresDatastore.open({ url: schema.url, poolSize: 1 })).close()
  })
  afterAll(async () => {
    await schema?.drop()
  })
  beforeEach(async () => {
    await schema!.truncate()
  })
  return () => schema!.url
}
