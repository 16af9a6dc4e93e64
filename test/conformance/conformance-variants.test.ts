/**
 * OpenFGA conformance with issue 20's read paths switched, on SQLite: the same runner and
 * assertions as conformance.test.ts, once per variant, so that every path a stored tuple can be
 * read through answers the upstream suite:
 *
 * - `index off`: the tuple index off, so stored tuples come through the working set (the LRU of
 *   whole objects and users' lists kept fresh from the changelog), with the membership closure on;
 * - `database only`: the tuple index, the working set and the membership closure all off, so
 *   every tuple set is a query and nested groups are walked.
 *
 * The default configuration (index and closure on) is conformance.test.ts. The failure details go
 * to the assertion message only; `last-run.txt` stays the default run's report.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { FILES, KINDS, LAST_RUN_FILE, formatFailure, formatTable, runConformance, type KindResult } from './runner.ts'

const SHOWN = 20
const CONCURRENCY = 4

const VARIANTS = [
  { name: 'index off', config: { tupleIndexMaxTuples: 0 } },
  { name: 'database only', config: { tupleIndexMaxTuples: 0, tupleCacheSize: 0, membershipClosure: 'off' as const } },
]

describe.each(VARIANTS)('OpenFGA conformance, $name', ({ name, config }) => {
  const results: KindResult[] = []
  let client: TestClient
  beforeAll(async () => {
    client = await createTestClient(config)
  })
  afterAll(async () => {
    await client?.close()
    if (results.length > 0) console.log(`\nOpenFGA conformance, ${name}\n${formatTable(results)}\n`)
  })

  for (const file of FILES) {
    for (const kind of KINDS) {
      it(`${file} ${kind}`, { timeout: 600_000 }, async () => {
        const [result] = await runConformance({ files: [file], kinds: [kind], client, concurrency: CONCURRENCY })
        results.push(result)
        const bad = [...result.failures, ...result.unsupportedDetails]
        const summary =
          `${file} ${kind} (${name}): ${result.passed} passed, ${result.failed} failed, ` +
          `${result.unsupported} unsupported (the default run writes ${LAST_RUN_FILE})\n\n` +
          bad.slice(0, SHOWN).map(formatFailure).join('\n\n') +
          (bad.length > SHOWN ? `\n\n… and ${bad.length - SHOWN} more` : '')
        expect(result.failed, summary).toBe(0)
        expect(result.unsupported, summary).toBe(0)
      })
    }
  }

  it('reads without the tuple index', () => {
    expect(client.pemba.evaluation.tupleIndexStats()).toBeUndefined()
  })
})
