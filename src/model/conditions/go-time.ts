/**
 * Go's `time.ParseDuration` and `time.Parse(time.RFC3339, …)`, and cel-go's `string()` of
 * timestamps and durations, on cel-js's runtime values (JS Dates and cel-js Durations).
 *
 * @module
 */
import { Duration } from '@marcbachmann/cel-js/evaluator'
import { formatF, isDigit } from './go-format.ts'


const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5
  μs: 1_000n, // U+03BC
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
}
const TWO_63N = 1n << 63n

/** parseGoDuration is time.ParseDuration: nanoseconds, or null when Go would return an error. */
export function parseGoDuration(input: string): bigint | null {
  let s = input
  let neg = false
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-'
    s = s.slice(1)
  }
  if (s === '0') return 0n
  if (s === '') return null
  let total = 0n
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]))) return null
    let i = 0
    let v = 0n
    while (isDigit(s[i])) {
      if (v > TWO_63N / 10n) return null
      v = v * 10n + BigInt(s.charCodeAt(i) - 48)
      if (v > TWO_63N) return null
      i++
    }
    const pre = i > 0
    s = s.slice(i)
    let f = 0n
    let scale = 1
    let post = false
    if (s[0] === '.') {
      s = s.slice(1)
      let j = 0
      let overflow = false
      while (isDigit(s[j])) {
        if (!overflow) {
          if (f > (TWO_63N - 1n) / 10n) overflow = true
          else {
            const y = f * 10n + BigInt(s.charCodeAt(j) - 48)
            if (y > TWO_63N) overflow = true
            else {
              f = y
              scale *= 10
            }
          }
        }
        j++
      }
      post = j > 0
      s = s.slice(j)
    }
    if (!pre && !post) return null
    let u = 0
    while (u < s.length && s[u] !== '.' && !isDigit(s[u])) u++
    if (u === 0) return null
    const unit = DURATION_UNITS[s.slice(0, u)]
    s = s.slice(u)
    if (unit === undefined) return null
    if (v > TWO_63N / unit) return null
    v *= unit
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)))
      if (v > TWO_63N) return null
    }
    total += v
    if (total > TWO_63N) return null
  }
  if (neg) return -total
  if (total > TWO_63N - 1n) return null
  return total
}

export function durationFromNanos(nanos: bigint): Duration {
  // cel-js keeps seconds and nanos with the same sign
  return new Duration(nanos / 1_000_000_000n, Number(nanos % 1_000_000_000n))
}

/** digits reads n decimal digits of s at i as a number, or -1. */
function digitsAt(s: string, i: number, n: number): number {
  let v = 0
  for (let k = i; k < i + n; k++) {
    const c = s.charCodeAt(k) - 48
    if (!(c >= 0 && c <= 9)) return -1
    v = v * 10 + c
  }
  return v
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/**
 * parseRFC3339 is time.Parse(time.RFC3339, s): its strict fast path plus what the generic
 * fallback also accepts (one-digit hour, `,` before the fraction). Sub-millisecond digits are
 * dropped because cel-js timestamps are JS Dates.
 */
export function parseRFC3339(s: string): Date | null {
  const year = digitsAt(s, 0, 4)
  const month = digitsAt(s, 5, 2)
  const day = digitsAt(s, 8, 2)
  if (year < 0 || month < 1 || month > 12 || day < 1) return null
  if (s[4] !== '-' || s[7] !== '-' || s[10] !== 'T') return null
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  if (day > (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1])) return null
  let i = 11
  const shortHour = s[12] === ':'
  const hour = digitsAt(s, i, shortHour ? 1 : 2)
  i += shortHour ? 1 : 2
  if (s[i] !== ':' || s[i + 3] !== ':') return null
  const min = digitsAt(s, i + 1, 2)
  const sec = digitsAt(s, i + 4, 2)
  if (hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59) return null
  i += 6
  let ms = 0
  if ((s[i] === '.' || s[i] === ',') && isDigit(s[i + 1])) {
    let k = i + 1
    let scale = 100
    while (isDigit(s[k])) {
      ms += (s.charCodeAt(k) - 48) * scale
      scale /= 10
      k++
    }
    ms = Math.floor(ms)
    i = k
  }
  let offset = 0
  if (s[i] === 'Z' && i + 1 === s.length) {
    // UTC
  } else if ((s[i] === '+' || s[i] === '-') && i + 6 === s.length && s[i + 3] === ':') {
    const oh = digitsAt(s, i + 1, 2)
    const om = digitsAt(s, i + 4, 2)
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return null
    offset = (oh * 60 + om) * 60_000 * (s[i] === '-' ? -1 : 1)
  } else return null
  let t = Date.UTC(year, month - 1, day, hour, min, sec, ms)
  if (year < 100) {
    // Date.UTC maps years 0–99 to 1900–1999
    const d = new Date(t)
    d.setUTCFullYear(year)
    t = d.getTime()
  }
  return new Date(t - offset)
}

/** formatTimestamp is Go's RFC3339Nano in UTC, which is what cel-go's string(timestamp) gives. */
export function formatTimestamp(t: Date): string {
  const iso = t.toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ (years 0–9999)
  const [head, frac] = iso.slice(0, -1).split('.')
  const f = frac.replace(/0+$/, '')
  return `${head}${f ? '.' + f : ''}Z`
}

/** formatDuration is cel-go's string(duration): seconds as the shortest float, then `s`. */
export function formatDuration(d: Duration): string {
  const secs = Number(d.seconds) + d.nanos / 1e9
  if (secs === 0) return '0s'
  const [mant, expStr] = Math.abs(secs).toExponential().split('e')
  const digits = mant.replace('.', '')
  const exp = Number(expStr)
  return `${secs < 0 ? '-' : ''}${formatF(digits, exp + 1, Math.max(digits.length - exp - 1, 0))}s`
}
