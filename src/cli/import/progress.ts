/**
 * Progress of a long import: a bar on a terminal (cli-progress: bytes read of the file, tuples,
 * rate, ETA), or, when stderr is not a terminal (CI logs, files), one JSON line every few seconds
 * (`{"event":"import_progress",…}`) that a log collector can parse. Both go to stderr, so stdout
 * holds only the summary.
 *
 * @module
 */
import cliProgress from 'cli-progress'

export interface ProgressSnapshot {
  bytes: number
  totalBytes: number
  read: number
  accepted: number
  refused: number
}

export interface ProgressReporter {
  update(s: ProgressSnapshot): void
  stop(s: ProgressSnapshot): void
}

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none'

/**
 * progressReporter picks the reporter: `auto` is the bar on a TTY and lines otherwise.
 * `writeLine` prints one line on stderr (the command's io in tests).
 */
export function progressReporter(
  mode: ProgressMode,
  options: { isTTY: boolean; writeLine: (s: string) => void; intervalMs: number; now?: () => number; stream?: NodeJS.WritableStream },
): ProgressReporter {
  const chosen = mode === 'auto' ? (options.isTTY ? 'bar' : 'lines') : mode
  if (chosen === 'none') return { update() {}, stop() {} }
  const now = options.now ?? Date.now
  const started = now()
  if (chosen === 'lines') {
    let last = started
    const line = (s: ProgressSnapshot, final: boolean) => {
      const elapsed = (now() - started) / 1000
      const rate = elapsed > 0 ? Math.round(s.accepted / elapsed) : 0
      const fraction = s.totalBytes > 0 ? s.bytes / s.totalBytes : 0
      const eta = fraction > 0 && !final ? Math.round((elapsed / fraction) * (1 - fraction)) : 0
      options.writeLine(
        JSON.stringify({
          event: final ? 'import_done' : 'import_progress',
          bytes: s.bytes,
          total_bytes: s.totalBytes,
          percent: Math.round(fraction * 1000) / 10,
          read: s.read,
          accepted: s.accepted,
          refused: s.refused,
          tuples_per_s: rate,
          eta_s: eta,
          elapsed_s: Math.round(elapsed * 10) / 10,
        }),
      )
    }
    return {
      update(s) {
        if (now() - last < options.intervalMs) return
        last = now()
        line(s, false)
      },
      stop: (s) => line(s, true),
    }
  }
  const bar = new cliProgress.SingleBar(
    {
      format: '{bar} {percentage}% of {size} | {tuples} tuples | {rate} tuples/s | {refused} refused | ETA {eta_formatted}',
      stream: options.stream ?? process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  )
  let begun = false
  const payload = (s: ProgressSnapshot) => {
    const elapsed = (now() - started) / 1000
    return { tuples: s.accepted, refused: s.refused, rate: elapsed > 0 ? Math.round(s.accepted / elapsed) : 0, size: megabytes(s.totalBytes) }
  }
  return {
    update(s) {
      if (!begun) {
        bar.start(Math.max(s.totalBytes, 1), 0, payload(s))
        begun = true
      }
      bar.update(s.bytes, payload(s))
    },
    stop(s) {
      if (begun) {
        bar.update(s.bytes, payload(s))
        bar.stop()
      }
    },
  }
}

/** megabytes: a file's size for the bar, `3.7 MB` (a store file's tuples count as their number). */
function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`
}
