/**
 * ISO 8601 durations, as just-in-time access requests and their settings spell them: `PT1H`,
 * `PT90M`, `P1DT12H`, `PT0.5S`, `P2W`. Years and months are refused: their length depends on
 * the calendar, and a grant should last a fixed time.
 *
 * @module
 */

const DURATION =
  /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,3}))?S)?)?$/

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/**
 * parseDuration reads an ISO 8601 duration in weeks, days, hours, minutes and seconds (up to
 * milliseconds) and returns it in ms, or undefined when it is not one: `PT1H` → 3600000,
 * `P1D` → 86400000; `P1M`, `PT`, `1h` → undefined. Zero (`PT0S`) parses; callers decide
 * whether it is allowed.
 */
export function parseDuration(s: string): number | undefined {
  const m = DURATION.exec(s)
  if (!m || s === 'P' || s.endsWith('T')) return undefined
  const [weeks, days, hours, minutes, seconds] = m
    .slice(1, 6)
    .map((v) => (v === undefined ? 0 : Number(v)))
  const millis = m[6] === undefined ? 0 : Number(m[6].padEnd(3, '0'))
  const ms =
    weeks * 7 * DAY + days * DAY + hours * HOUR + minutes * MINUTE + seconds * SECOND + millis
  return Number.isSafeInteger(ms) ? ms : undefined
}

/**
 * formatDuration prints ms as the shortest ISO 8601 duration in days and smaller units:
 * 3600000 → `PT1H`, 5400000 → `PT1H30M`, 129600000 → `P1DT12H`, 0 → `PT0S`.
 */
export function formatDuration(ms: number): string {
  const days = Math.floor(ms / DAY)
  let rest = ms - days * DAY
  const hours = Math.floor(rest / HOUR)
  rest -= hours * HOUR
  const minutes = Math.floor(rest / MINUTE)
  rest -= minutes * MINUTE
  const seconds = rest / SECOND
  let time = ''
  if (hours) time += `${hours}H`
  if (minutes) time += `${minutes}M`
  if (seconds) time += `${seconds}S`
  if (!days && !time) return 'PT0S'
  return `P${days ? `${days}D` : ''}${time ? `T${time}` : ''}`
}
