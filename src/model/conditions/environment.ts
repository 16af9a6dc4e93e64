/**
 * The cel-go-like CEL environment every condition compiles in: cel-go's standard functions
 * (cel-js extras such as `split` or `cel.bind` are rejected by compile.ts), OpenFGA's
 * `ipaddress` type with `ipaddress(string)`, `in_cidr(string)` and `==`, and the standard
 * conversions cel-js lacks (`int`/`string` of timestamps and durations, `int(uint)`), and
 * cel-go's comparison of a duration, timestamp or ipaddress with `null` (see NULLABLE_TYPES).
 *
 * @module
 */
import { Environment, EvaluationError } from '@marcbachmann/cel-js'
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator'
import { MAX_INT64 } from './convert.ts'
import { formatDuration, formatTimestamp } from './go-time.ts'
import { IPAddress, ipEqual, parseAddr, parsePrefix, prefixContains } from './netip.ts'
import { cachedRegex, regexSearch } from './regex.ts'

/** cel-go's standard functions (plus OpenFGA's ipaddress ones), by how they may be called. */
export const GLOBAL_FUNCTIONS = new Set([
  'size',
  'matches',
  'bool',
  'bytes',
  'double',
  'duration',
  'dyn',
  'int',
  'string',
  'timestamp',
  'type',
  'uint',
  'has',
  'ipaddress',
])
export const MEMBER_FUNCTIONS = new Set([
  'size',
  'contains',
  'startsWith',
  'endsWith',
  'matches',
  'getDate',
  'getDayOfMonth',
  'getDayOfWeek',
  'getDayOfYear',
  'getFullYear',
  'getHours',
  'getMilliseconds',
  'getMinutes',
  'getMonth',
  'getSeconds',
  'all',
  'exists',
  'exists_one',
  'map',
  'filter',
  'in_cidr',
])

/**
 * The parameter types cel-go's checker lets `==` and `!=` compare with `null`: its
 * `isLegacyNullable` (checker/types.go) admits durations, timestamps and every object or opaque
 * type, which includes OpenFGA's `ipaddress`; cel-js admits none, so OpenFGA models guarding a
 * parameter with `x != null && x < duration("1h")` failed to compile. At run time such a value
 * is never null: OpenFGA's converters refuse a JSON `null` for these types ("expected a duration
 * string, but found: <nil> '<nil>'") and an absent parameter is a missing-parameters error, so
 * the comparison is decided by cel-go's `types.Equal`, which makes a value equal to `null` only
 * when both are null: `x != null` is true and `x == null` false. The handler below is that rule.
 */
const NULLABLE_TYPES = ['google.protobuf.Duration', 'google.protobuf.Timestamp', 'IPAddress']

let baseEnvironment: Environment | undefined

/** environment builds, once, the cel-go-like base every condition's environment clones. */
export function environment(): Environment {
  if (baseEnvironment) return baseEnvironment
  const TS = 'google.protobuf.Timestamp'
  const DUR = 'google.protobuf.Duration'
  const env = new Environment({ homogeneousAggregateLiterals: false })
    .registerType('IPAddress', { ctor: IPAddress, fields: {} })
    .registerOperator('IPAddress == IPAddress', (a: IPAddress, b: IPAddress) => ipEqual(a, b))
    .registerFunction('ipaddress(string): IPAddress', (s: string) => {
      try {
        return parseAddr(s)
      } catch (err) {
        throw new EvaluationError((err as Error).message)
      }
    })
    .registerFunction('IPAddress.in_cidr(string): bool', inCidr)
    // evaluated by cost.ts (charged first, then matched by re2js); registered so it type-checks
    .registerFunction('matches(string, string): bool', (s: string, p: string) => regexMatches(s, p))
    .registerFunction(`int(${TS}): int`, (t: Date) => BigInt(Math.floor(t.getTime() / 1000)))
    .registerFunction(
      `int(${DUR}): int`,
      (d: Duration) => d.seconds * 1_000_000_000n + BigInt(d.nanos),
    )
    .registerFunction('int(uint): int', (u: UnsignedInt) => {
      if (u.valueOf() > MAX_INT64) throw new EvaluationError('integer overflow')
      return u.valueOf()
    })
    .registerFunction(`string(${TS}): string`, formatTimestamp)
    .registerFunction(`string(${DUR}): string`, formatDuration)
    .registerFunction(`timestamp(${TS}): ${TS}`, (t: Date) => t)
    .registerFunction(`duration(${DUR}): ${DUR}`, (d: Duration) => d)
  // cel-js derives `!=` and the swapped operands (`null == x`) from each `==` registration.
  for (const type of NULLABLE_TYPES) {
    env.registerOperator(`${type} == null`, (value: unknown, nil: null) => value === nil)
  }
  baseEnvironment = env
  return env
}

/** regexMatches is `matches` outside the cost instrumentation (see cost.ts, which replaces it). */
function regexMatches(s: string, pattern: string): boolean {
  try {
    return regexSearch(cachedRegex(pattern), s)
  } catch (err) {
    throw new EvaluationError((err as Error).message)
  }
}

/** inCidr is OpenFGA's `ipaddress.in_cidr(string)`, with its error texts. */
function inCidr(ip: unknown, cidr: unknown): boolean {
  if (typeof cidr !== 'string')
    throw new EvaluationError('a CIDR string is required for comparison')
  const prefix = parsePrefix(cidr)
  if (!prefix) throw new EvaluationError(`'${cidr}' is a malformed CIDR string`)
  if (!(ip instanceof IPAddress)) {
    throw new EvaluationError('an IPAddress parameter value is required for comparison')
  }
  return prefixContains(prefix, ip)
}
