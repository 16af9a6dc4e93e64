/**
 * The PEMBA_ variables that are not settings of the server (tests, benchmarks, examples):
 * loadConfig accepts them, and stops on any other unknown PEMBA_ variable.
 *
 * @module
 */
/**
 * Environment variables starting with PEMBA_ that are not settings of the server, read by the
 * tests, benchmarks and examples. Any other unknown PEMBA_ variable stops the server (a typo
 * would otherwise fall back to a default, e.g. authentication off).
 */
export const KNOWN_NON_SETTINGS: Readonly<Record<string, string>> = {
  PEMBA_API_TOKEN: 'The bearer token the commands that talk to a server send (`pemba check`, `tuple import`, …; after `--api-token` and `FGA_API_TOKEN`), and `npm run example:load`.',
  PEMBA_API_KEY: 'The API key the examples in docs/middleware.md and docs/mcp.md pass to the middleware or the MCP gateway (read by your app, not by the server).',
  PEMBA_STORE_ID: 'The store the examples in docs/middleware.md pass to the middleware (read by your app, not by the server).',
  PEMBA_URL: 'The server `npm run example:load` loads the example into (default http://127.0.0.1:8080).',
  PEMBA_TEST_POSTGRES_URL: 'The PostgreSQL database the PostgreSQL test suites use.',
  PEMBA_TEST_POSTGRES_READ_URL: 'A streaming standby of PEMBA_TEST_POSTGRES_URL for the read-replica suites (.ci/standby starts one).',
  PEMBA_REQUIRE_POSTGRES: 'With 1, the PostgreSQL test suites fail instead of skipping when the database is missing.',
  PEMBA_TEST_DATABASE_URL: 'The database the conformance suite runs against instead of an in-memory SQLite.',
  PEMBA_BENCH_POSTGRES_URL: 'The PostgreSQL database `npm run bench` measures.',
  PEMBA_BENCH_POSTGRES_READ_URL: 'A streaming standby of it, for `npm run bench -- --replicas-only`.',
  PEMBA_FUZZ_RUNS: 'A multiplier of the HTTP fuzz test runs (default 2).',
  PEMBA_FUZZ_SEED: 'The seed of the property-based tests (`random` explores new cases).',
  PEMBA_DIFF_RUNS: 'Runs of the differential test (default 250).',
  PEMBA_REQUIRE_NGINX: 'With 1, the nginx test suites fail instead of skipping when nginx is missing (.ci/run sets it).',
  PEMBA_CHROMIUM: 'The Chromium executable the browser tests drive (default /usr/bin/chromium).',
  PEMBA_REQUIRE_CHROMIUM: 'With 1, the browser tests fail instead of skipping when Chromium is missing (.ci/run sets it).',
  PEMBA_CONSOLE_LOAD_SCALE: 'The bench data set scale at which test/console/load-time.test.ts measures the console pages\' load time (unset: not run).',
}
