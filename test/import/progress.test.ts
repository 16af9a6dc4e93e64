/**
 * Import progress (src/cli/import/progress.ts): the bar on a terminal (bytes, tuples, rate,
 * ETA), JSON lines at most once per interval otherwise, nothing with `none`.
 */
import { describe, expect, it } from 'vitest'
import { progressReporter } from '../../src/cli/import/progress.ts'

const snapshot = (bytes: number, accepted: number) => ({ bytes, totalBytes: 4_000_000, read: accepted, accepted, refused: 1 })

describe('import progress', () => {
  it('lines: one JSON line per interval with rate and ETA, and a final one', () => {
    let t = 0
    const lines: string[] = []
    const p = progressReporter('auto', { isTTY: false, writeLine: (s) => lines.push(s), intervalMs: 5000, now: () => t })
    t = 1000
    p.update(snapshot(1_000_000, 10_000)) // before the interval: nothing
    t = 5000
    p.update(snapshot(2_000_000, 20_000))
    t = 6000
    p.update(snapshot(2_500_000, 25_000)) // within the next interval: nothing
    t = 10_000
    p.stop(snapshot(4_000_000, 40_000))
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { event: 'import_progress', bytes: 2_000_000, total_bytes: 4_000_000, percent: 50, read: 20_000, accepted: 20_000, refused: 1, tuples_per_s: 4000, eta_s: 5, elapsed_s: 5 },
      { event: 'import_done', bytes: 4_000_000, total_bytes: 4_000_000, percent: 100, read: 40_000, accepted: 40_000, refused: 1, tuples_per_s: 4000, eta_s: 0, elapsed_s: 10 },
    ])
  })

  it('bar: drawn on a terminal with the share of bytes read, tuples, rate and ETA', () => {
    let out = ''
    const tty = Object.assign(
      {
        write: (s: string) => ((out += s), true),
        cursorTo: () => true,
        clearLine: () => true,
        moveCursor: () => true,
        columns: 160,
      },
      { isTTY: true },
    ) as unknown as NodeJS.WritableStream
    let t = 0
    const p = progressReporter('auto', { isTTY: true, writeLine: () => {}, intervalMs: 5000, now: () => t, stream: tty })
    t = 2000
    p.update(snapshot(1_000_000, 10_000))
    t = 4000
    p.stop(snapshot(4_000_000, 40_000))
    expect(out).toMatch(/100% of 4\.0 MB \| 40000 tuples \| 10000 tuples\/s \| 1 refused \| ETA 0s/)
  })

  it('none: silent', () => {
    const lines: string[] = []
    const p = progressReporter('none', { isTTY: false, writeLine: (s) => lines.push(s), intervalMs: 0 })
    p.update(snapshot(1, 1))
    p.stop(snapshot(1, 1))
    expect(lines).toEqual([])
  })
})
