/**
 * OpenFGA conformance on PostgreSQL: the same runner and assertions as conformance.test.ts, over
 * one in-process Pemba on a fresh PostgreSQL schema, at a modest concurrency (4 tests at a time,
 * each with its own store). Skipped with the reason printed when PEMBA_TEST_POSTGRES_URL is
 * unset or unreachable; failed instead when PEMBA_REQUIRE_POSTGRES=1. The failure details go to
 * the assertion message only; `last-run.txt` stays the SQLite run's report.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { FILES, KINDS, LAST_RUN_FILE, formatFailure, formatTable, runConformance, type KindResult } from './runner.ts'

const SHOWN = 20
const CONCURRENCY = 4
const target = await probePostgres()
const results: KindResult[] = []

describePostgres('OpenFGA conformance on PostgreSQL', target, () => {
  let schema: TestSchema
  let client: TestClient
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
    client = await createTestClient({ databaseUrl: schema.url })
  })
  afterAll(async () => {
    await client?.close()
    await schema?.drop()
    if (results.length > 0) console.log(`\nOpenFGA conformance on PostgreSQL\n${formatTable(results)}\n`)
  })

  for (const file of FILES) {
    for (const kind of KINDS) {
      it(`${file} ${kind}`, { timeout: 600_000 }, async () => {
        const [result] = await runConformance({ files: [file], kinds: [kind], client, concurrency: CONCURRENCY })
        results.push(result)
        const bad = [...result.failures, ...result.unsupportedDetails]
        const summary =
          `${file} ${kind} on PostgreSQL: ${result.passed} passed, ${result.failed} failed, ` +
          `${result.unsupported} unsupported (the SQLite run writes ${LAST_RUN_FILE})\n\n` +
          bad.slice(0, SHOWN).map(formatFailure).join('\n\n') +
          (bad.length > SHOWN ? `\n\n… and ${bad.length - SHOWN} more` : '')
        expect(result.failed, summary).toBe(0)
        expect(result.unsupported, summary).toBe(0)
      })
    }
  }
})
