/**
 * OpenFGA conformance: one test per (suite file, kind), each running every upstream test of that
 * file for that kind (plus the `_ctxTuples` replays) over HTTP. The counts table is printed at the
 * end and the failure details are written to `test/conformance/last-run.txt`.
 */
import { afterAll, describe, expect, it } from 'vitest'
import {
  FILES,
  KINDS,
  LAST_RUN_FILE,
  formatFailure,
  formatTable,
  runConformance,
  writeLastRun,
  type KindResult,
} from './runner.ts'

const SHOWN = 20
const results: KindResult[] = []

describe('OpenFGA conformance', () => {
  for (const file of FILES) {
    for (const kind of KINDS) {
      it(`${file} ${kind}`, { timeout: 600_000 }, async () => {
        const [result] = await runConformance({ files: [file], kinds: [kind] })
        results.push(result)
        const bad = [...result.failures, ...result.unsupportedDetails]
        const summary =
          `${file} ${kind}: ${result.passed} passed, ${result.failed} failed, ` +
          `${result.unsupported} unsupported (details in ${LAST_RUN_FILE})\n\n` +
          bad.slice(0, SHOWN).map(formatFailure).join('\n\n') +
          (bad.length > SHOWN ? `\n\n… and ${bad.length - SHOWN} more` : '')
        expect(result.failed, summary).toBe(0)
        expect(result.unsupported, summary).toBe(0)
      })
    }
  }

  afterAll(() => {
    if (results.length === 0) return
    console.log(`\n${formatTable(results)}\n`)
    writeLastRun(results)
  })
})
