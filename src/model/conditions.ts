/**
 * Relationship conditions (ABAC): compiles each condition of a model once with cel-js and
 * evaluates it on the check path, reproducing what OpenFGA does with cel-go
 * (`internal/condition`, `internal/condition/types`) closely enough that clients see the same
 * answers and the same error texts.
 *
 * Semantics mirrored from OpenFGA:
 * - Parameter types and the conversion of JSON context values, with OpenFGA's messages: numbers
 *   and numeric strings for int/uint/double (int64 saturates, uint rejects negatives, a double
 *   string must be exactly representable as a float64, so `"1.797e+309"` and `"0.1"` fail), Go
 *   duration strings, RFC 3339 timestamps, `net/netip` addresses, list<T>, map<T>, any.
 * - Context: the tuple's stored context overrides the request context key by key; keys that are
 *   not parameters are ignored at check time and rejected at write time; a non-empty context for
 *   a condition without parameters is an error. Any declared parameter that is absent is an
 *   error even when the expression would not need it (OpenFGA evaluates partially, then fails
 *   whenever `MissingParameters` is non-empty), so Pemba does not evaluate at all then.
 * - The cel-go environment: the `ipaddress` type with `ipaddress(string)`, `in_cidr(string)` and
 *   `==`; only cel-go's standard functions (cel-js extras such as `split` or `cel.bind` are
 *   rejected as undeclared); no cross-type numeric comparisons (`x > 0` with a double `x` does
 *   not type-check, OpenFGA's own tests write `0.0`); a non-bool expression is rejected;
 *   `matches` with a literal pattern is compiled with the model, as cel-go's optimiser does.
 * - A runtime cost budget (`maxCost`, default 100 like OpenFGA's
 *   `maxConditionEvaluationCost`) with cel-go's cost rules: identifiers 1, calls and operators 1,
 *   `in` on a list its size, string equality/ordering/concatenation, `startsWith`, `contains`,
 *   `matches` proportional to sizes, list/map construction 10/30, and the per-iteration overhead
 *   of each macro's fold. Where Pemba cannot know cel-go's exact figure it charges less, so an
 *   expression within OpenFGA's budget is within Pemba's; the one deliberate exception is list
 *   concatenation, which cel-go prices at 1 but which copies in JS, so it is charged by size.
 *   Exceeding the budget aborts evaluation (the error cannot be absorbed by `||`), as cel-go's
 *   `operation cancelled: actual cost limit exceeded` does.
 *
 * How the budget is enforced: cel-js has no cost tracking or interrupt hook, so after
 * type-checking, each AST node that has a cost gets its `evaluate` wrapped by a counter that
 * throws once the budget is spent. Every comprehension step passes through such a wrapper, so
 * nested comprehensions over a large context list stop after about `maxCost` steps. This relies
 * on cel-js 8.0.0 internals (`node.meta`, per-node `evaluate`); the version is pinned and the
 * tests exercise it. `matches` is evaluated by a small linear-time (Thompson NFA) RE2-syntax
 * matcher instead of JS RegExp, whose backtracking would let a pattern like `(a+)+$` pin the CPU.
 *
 * Known gaps (cel-js vs cel-go): timestamps have millisecond precision (JS Date) and lose their
 * UTC offset; evaluation error texts after `failed to evaluate condition expression:` and
 * type-check error texts are close to, not always identical with, cel-go's; when a parameter is
 * missing and the rest of the expression would fail, Pemba reports the missing parameter where
 * cel-go reports the failure; a parameter named `cel` or `google` collides with cel-js globals.
 *
 * @module
 */
import { Environment, EvaluationError, type ParseResult } from '@marcbachmann/cel-js'
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator'
import { PembaError } from '../core/errors.ts'
import type { Condition, ConditionParamTypeRef } from './types.ts'

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

export type ConditionOutcome =
  | { kind: 'true' }
  | { kind: 'false' }
  | { kind: 'error'; message: string; missingParameters?: string[] }

export interface CompiledCondition {
  readonly name: string
  /** The declared parameter names, in declaration order (explanations show their inputs). */
  readonly parameterNames: ReadonlySet<string>
  /**
   * tupleContext overrides requestContext key by key (OpenFGA: the tuple's stored context wins).
   * `tupleKey` (`document:1#viewer@user:anne`), when given, names the tuple in the
   * missing-parameters message the way OpenFGA does.
   */
  evaluate(
    requestContext: Record<string, unknown> | undefined,
    tupleContext: Record<string, unknown> | undefined,
    tupleKey?: string,
  ): ConditionOutcome
}

/** OpenFGA's default `maxConditionEvaluationCost`. */
export const DEFAULT_MAX_CONDITION_COST = 100

/** OpenFGA's default limit on a written tuple's condition context (`proto.Size` of the Struct). */
export const MAX_CONDITION_CONTEXT_BYTES = 32 * 1024

/**
 * Compiles every condition of a model; throws PembaError('invalid_authorization_model', msg
 * naming the condition) if an expression does not parse, does not type-check against the
 * declared parameter types, or does not return bool, or a parameter type is malformed (MAP/LIST
 * need exactly one generic type).
 */
export function compileConditions(
  conditions: Record<string, Condition> | undefined,
  options: { maxCost?: number } = {},
): Map<string, CompiledCondition> {
  const compiled = new Map<string, CompiledCondition>()
  if (!conditions) return compiled
  const maxCost = options.maxCost ?? DEFAULT_MAX_CONDITION_COST
  for (const [key, condition] of Object.entries(conditions)) {
    if (key !== condition.name) {
      throw new PembaError(
        'invalid_authorization_model',
        `condition key '${key}' does not match condition name '${condition.name}'`,
      )
    }
    compiled.set(key, compileCondition(condition, maxCost))
  }
  return compiled
}

/**
 * Validates a tuple's condition context at write time: returns null if ok, else the reason
 * OpenFGA gives (the caller wraps it as `Invalid tuple '…'. Reason: …`). Mirrors
 * `validation.validateCondition` followed by the write command's size check: values must convert
 * to the declared types, keys must be declared parameters, and the context's protobuf size must
 * be at most 32 KiB.
 */
export function validateConditionContext(
  condition: CompiledCondition,
  context: Record<string, unknown> | undefined,
): string | null {
  if (!(condition instanceof CelCondition)) throw new Error('pemba bug: foreign CompiledCondition')
  if (!context || !hasAnyKey(context)) return null
  const params = condition.parameters
  if (params.length === 0) return parameterTypeError(condition.name, NO_PARAMETERS)
  for (const p of params) {
    if (!Object.hasOwn(context, p.name) || context[p.name] === undefined) continue
    try {
      p.type.convert(context[p.name])
    } catch (err) {
      return parameterTypeError(condition.name, conversionCause(p.name, err))
    }
  }
  for (const key of Object.keys(context)) {
    if (context[key] !== undefined && !condition.parameterNames.has(key)) {
      return `found invalid context parameter: ${key}`
    }
  }
  const size = conditionContextSize(context)
  if (size > MAX_CONDITION_CONTEXT_BYTES) {
    const limit = MAX_CONDITION_CONTEXT_BYTES
    return `condition context size limit exceeded: ${size} bytes exceeds ${limit} bytes`
  }
  return null
}

/**
 * conditionContextSize is the size of the context encoded as a `google.protobuf.Struct`, which is
 * what OpenFGA's 32 KiB limit measures (`proto.Size`), not the JSON length.
 */
export function conditionContextSize(context: Record<string, unknown>): number {
  return structSize(context)
}

// ---------------------------------------------------------------------------------------------
// Messages (OpenFGA's wording, `internal/condition/errors.go`)
// ---------------------------------------------------------------------------------------------

const EVALUATION_FAILED = 'failed to evaluate relationship condition'
const NO_PARAMETERS = 'no parameters defined for the condition'
const COST_LIMIT_MESSAGE = 'operation cancelled: actual cost limit exceeded'

function parameterTypeError(condition: string, cause: string): string {
  return `parameter type error on condition '${condition}' - ${cause}`
}

function conversionCause(param: string, err: unknown): string {
  return `failed to convert context parameter '${param}': ${errorText(err)}`
}

function evaluationError(condition: string, cause: string): ConditionOutcome {
  return { kind: 'error', message: `${EVALUATION_FAILED}: '${condition}' - ${cause}` }
}

function compilationError(condition: string, cause: string): PembaError {
  return new PembaError(
    'invalid_authorization_model',
    `failed to compile expression on condition '${condition}' - ${cause}`,
  )
}

function errorText(err: unknown): string {
  if (err instanceof EvaluationError) return celEvaluationMessage(err)
  return err instanceof Error ? err.message : String(err)
}

/** ConversionError carries an OpenFGA conversion message verbatim. */
class ConversionError extends Error {}

// ---------------------------------------------------------------------------------------------
// Go formatting helpers: the messages quote values the way Go's fmt prints decoded JSON
// ---------------------------------------------------------------------------------------------

/** goType is `%T` of a value decoded from a protobuf Struct (`structpb.Value.AsInterface`). */
function goType(v: unknown): string {
  if (v === null || v === undefined) return '<nil>'
  switch (typeof v) {
    case 'number':
      return 'float64'
    case 'string':
      return 'string'
    case 'boolean':
      return 'bool'
  }
  return Array.isArray(v) ? '[]interface {}' : 'map[string]interface {}'
}

/** goTypeS is `%s` of `reflect.TypeOf(v)`, which prints a nil type as `%!s(<nil>)`. */
function goTypeS(v: unknown): string {
  return v === null || v === undefined ? '%!s(<nil>)' : goType(v)
}

/** goValue is `%v` of a decoded JSON value. */
function goValue(v: unknown): string {
  if (v === null || v === undefined) return '<nil>'
  switch (typeof v) {
    case 'number':
      return goFloatV(v)
    case 'string':
      return v
    case 'boolean':
      return String(v)
  }
  if (Array.isArray(v)) return `[${v.map(goValue).join(' ')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).sort()
  return `map[${keys.map((k) => `${k}:${goValue(o[k])}`).join(' ')}]`
}

/** goFloatV formats like Go's `%v` for a float64 (shortest digits, exponent from 1e+06). */
function goFloatV(x: number): string {
  if (Number.isNaN(x)) return 'NaN'
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf'
  if (x === 0) return Object.is(x, -0) ? '-0' : '0'
  const [mant, expStr] = Math.abs(x).toExponential().split('e')
  const digits = mant.replace('.', '')
  const exp = Number(expStr)
  const sign = x < 0 ? '-' : ''
  if (exp < -4 || exp >= 6) {
    return sign + formatE(digits, digits.length - 1, exp)
  }
  return sign + formatF(digits, exp + 1, Math.max(digits.length - exp - 1, 0))
}

/** formatE renders `d.ddde±XX` from a digit string (Go: at least two exponent digits). */
function formatE(digits: string, fracDigits: number, exp: number): string {
  const frac = digits.slice(1).padEnd(fracDigits, '0').slice(0, fracDigits)
  const e = Math.abs(exp).toString().padStart(2, '0')
  return `${digits[0]}${frac ? '.' + frac : ''}e${exp < 0 ? '-' : '+'}${e}`
}

/** formatF renders digits with the decimal point after `dp` of them, and `frac` decimals. */
function formatF(digits: string, dp: number, frac: number): string {
  let int: string
  let rest: string
  if (dp <= 0) {
    int = '0'
    rest = '0'.repeat(-dp) + digits
  } else {
    int = digits.slice(0, dp).padEnd(dp, '0')
    rest = digits.slice(dp)
  }
  rest = rest.padEnd(frac, '0').slice(0, frac)
  return rest ? `${int}.${rest}` : int
}

/**
 * goBigFloatString is `big.Float.String()` (`Text('g', 10)`) of the value sign·0.digits·10^dp,
 * used in OpenFGA's "found numeric value '…'" messages. Rounds half to even like Go.
 */
function goBigFloatString(neg: boolean, digits: string, dp: number): string {
  digits = digits.replace(/^0+/, '')
  if (!digits) return '0'
  if (digits.length > 10) {
    const tail = digits.slice(10)
    let up = tail[0] > '5' || (tail[0] === '5' && /[1-9]/.test(tail.slice(1)))
    if (tail[0] === '5' && !/[1-9]/.test(tail.slice(1))) up = Number(digits[9]) % 2 === 1
    digits = digits.slice(0, 10)
    if (up) {
      const n = (BigInt(digits) + 1n).toString()
      if (n.length > 10) dp++
      digits = n.slice(0, 10)
    }
  }
  digits = digits.replace(/0+$/, '')
  let eprec = 10
  if (eprec > digits.length && digits.length >= dp) eprec = digits.length
  const exp = dp - 1
  const sign = neg ? '-' : ''
  if (exp < -4 || exp >= eprec) return sign + formatE(digits, Math.min(10, digits.length) - 1, exp)
  const prec = 10 > dp ? digits.length : 10
  return sign + formatF(digits, dp, Math.max(prec - dp, 0))
}

/** exactDecimal gives the exact decimal expansion of a finite double as (digits, exponent). */
function exactDecimal(x: number): { digits: string; exp: number } {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, Math.abs(x))
  const bits = view.getBigUint64(0)
  const biased = Number(bits >> 52n)
  let mant = bits & ((1n << 52n) - 1n)
  let e2: number
  if (biased === 0) e2 = -1074
  else {
    mant |= 1n << 52n
    e2 = biased - 1075
  }
  if (e2 >= 0) return { digits: (mant << BigInt(e2)).toString(), exp: 0 }
  return { digits: (mant * 5n ** BigInt(-e2)).toString(), exp: e2 }
}

function doubleString(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf'
  const { digits, exp } = exactDecimal(x)
  const trimmed = digits.replace(/^0+/, '')
  return goBigFloatString(x < 0, trimmed, trimmed.length + exp)
}

/** goQuote is strconv.Quote for the ASCII-ish strings that end up in netip errors. */
function goQuote(s: string): string {
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (ch === '"' || ch === '\\') out += '\\' + ch
    else if (c === 7) out += '\\a'
    else if (c === 8) out += '\\b'
    else if (c === 12) out += '\\f'
    else if (c === 10) out += '\\n'
    else if (c === 13) out += '\\r'
    else if (c === 9) out += '\\t'
    else if (c === 11) out += '\\v'
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0')
    else out += ch
  }
  return out + '"'
}

// ---------------------------------------------------------------------------------------------
// Parameter types (`internal/condition/types`)
// ---------------------------------------------------------------------------------------------

interface ParamType {
  /** The cel-js type declaration. */
  readonly cel: string
  /** Converts a JSON context value to the cel-js runtime value; throws ConversionError. */
  convert(value: unknown): unknown
}

const MAX_INT64 = (1n << 63n) - 1n
const MIN_INT64 = -(1n << 63n)
const TWO_63 = 2 ** 63

const scalarTypes: Record<string, ParamType> = {
  TYPE_NAME_ANY: { cel: 'dyn', convert: (v) => v },
  TYPE_NAME_BOOL: { cel: 'bool', convert: (v) => primitive(v, 'boolean', 'bool') },
  TYPE_NAME_STRING: { cel: 'string', convert: (v) => primitive(v, 'string', 'string') },
  TYPE_NAME_INT: { cel: 'int', convert: (v) => convertInt(v, false) },
  TYPE_NAME_UINT: { cel: 'uint', convert: (v) => new UnsignedInt(convertInt(v, true)) },
  TYPE_NAME_DOUBLE: { cel: 'double', convert: convertDouble },
  TYPE_NAME_DURATION: { cel: 'google.protobuf.Duration', convert: convertDuration },
  TYPE_NAME_TIMESTAMP: { cel: 'google.protobuf.Timestamp', convert: convertTimestamp },
  TYPE_NAME_IPADDRESS: { cel: 'IPAddress', convert: convertIPAddress },
}

/**
 * decodeParamType mirrors `types.DecodeParameterType`, including its message whose two counts
 * are swapped in OpenFGA (it prints the found count as the required one).
 */
function decodeParamType(ref: ConditionParamTypeRef): ParamType {
  const name = ref.type_name
  const generics = ref.generic_types ?? []
  const isGeneric = name === 'TYPE_NAME_LIST' || name === 'TYPE_NAME_MAP'
  if (!isGeneric && !scalarTypes[name]) {
    throw new Error(`unknown condition parameter type \`${name}\``)
  }
  const want = isGeneric ? 1 : 0
  if (generics.length !== want) {
    throw new Error(
      `condition parameter type \`${name}\` requires ${generics.length} generic types; ` +
        `found ${want}`,
    )
  }
  if (!isGeneric) return scalarTypes[name]
  const inner = decodeParamType(generics[0])
  if (name === 'TYPE_NAME_LIST') {
    return {
      cel: `list<${inner.cel}>`,
      convert(v) {
        if (!Array.isArray(v))
          throw new ConversionError(`list requires a list, found: ${goType(v)}`)
        const out = new Array(v.length)
        for (let i = 0; i < v.length; i++) {
          try {
            out[i] = inner.convert(v[i])
          } catch (err) {
            throw new ConversionError(
              `found an invalid list item at index \`${i}\`: ${errorText(err)}`,
            )
          }
        }
        return out
      },
    }
  }
  return {
    cel: `map<string, ${inner.cel}>`,
    convert(v) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        throw new ConversionError(`map requires a map, found: ${goType(v)}`)
      }
      // A null-prototype object is a CEL map to cel-js and cannot expose inherited keys.
      const out = Object.create(null) as Record<string, unknown>
      for (const [key, item] of Object.entries(v)) {
        try {
          out[key] = inner.convert(item)
        } catch (err) {
          throw new ConversionError(`found an invalid value for key '${key}': ${errorText(err)}`)
        }
      }
      return out
    },
  }
}

function primitive(v: unknown, js: string, go: string): unknown {
  if (typeof v !== js)
    throw new ConversionError(`expected type value '${go}', but found '${goTypeS(v)}'`)
  return v
}

/** A numeric string in `big.ParseFloat` syntax (base 10): sign·digits·10^exp, or ±Inf. */
interface ParsedNumber {
  neg: boolean
  inf: boolean
  /** Significant digits without leading zeros ('' for zero). */
  digits: string
  exp: number
}

const NUMERIC_STRING = /^([+-]?)(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d+))?$/
const MAX_NUMERIC_STRING = 4096

function parseNumericString(s: string): ParsedNumber | null {
  if (/^[+-]?[Ii]nf$/.test(s)) return { neg: s[0] === '-', inf: true, digits: '', exp: 0 }
  if (s.length > MAX_NUMERIC_STRING) return null
  const m = NUMERIC_STRING.exec(s)
  if (!m) return null
  const intPart = m[2] ?? ''
  const fracPart = m[3] ?? m[4] ?? ''
  const e = m[5] === undefined ? 0 : Number(m[5])
  if (!Number.isSafeInteger(e) || Math.abs(e) > 100_000_000) return null
  let digits = (intPart + fracPart).replace(/^0+/, '')
  let exp = e - fracPart.length
  const trailing = digits.length - digits.replace(/0+$/, '').length
  digits = digits.slice(0, digits.length - trailing)
  exp += trailing
  return { neg: m[1] === '-', inf: false, digits, exp }
}

function numberDisplay(p: ParsedNumber): string {
  if (p.inf) return p.neg ? '-Inf' : '+Inf'
  return goBigFloatString(p.neg, p.digits, p.digits.length + p.exp)
}

/**
 * convertInt mirrors `numericTypeConverterFunc[int64|uint64]`: integral numbers or numeric
 * strings; out-of-range values saturate to the int64 range (big.Float.Int64), also for uint.
 */
function convertInt(v: unknown, unsigned: boolean): bigint {
  const goKind = unsigned ? 'uint64' : 'int64'
  const label = unsigned ? 'a uint' : 'an int'
  let n: bigint
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) {
      throw new ConversionError(
        `expected ${label} value, but found numeric value '${doubleString(v)}'`,
      )
    }
    n = v >= TWO_63 ? MAX_INT64 : v < -TWO_63 ? MIN_INT64 : BigInt(v)
    if (unsigned && v < 0) {
      throw new ConversionError(`expected a uint value, but found int64 value '${doubleString(v)}'`)
    }
    return n
  }
  if (typeof v !== 'string') {
    throw new ConversionError(`expected type value '${goKind}', but found '${goTypeS(v)}'`)
  }
  const p = parseNumericString(v)
  if (!p)
    throw new ConversionError(`expected a ${goKind} value, but found invalid string value '${v}'`)
  if (p.inf || (p.digits && p.exp < 0)) {
    throw new ConversionError(
      `expected ${label} value, but found numeric value '${numberDisplay(p)}'`,
    )
  }
  if (!p.digits) n = 0n
  else if (p.digits.length + p.exp > 19) n = p.neg ? MIN_INT64 : MAX_INT64
  else {
    n = BigInt(p.digits + '0'.repeat(p.exp)) * (p.neg ? -1n : 1n)
    if (n > MAX_INT64) n = MAX_INT64
    if (n < MIN_INT64) n = MIN_INT64
  }
  if (unsigned && n < 0n) {
    throw new ConversionError(`expected a uint value, but found int64 value '${numberDisplay(p)}'`)
  }
  return n
}

/**
 * convertDouble: JSON numbers pass as they are; a numeric string must be exactly representable
 * as a float64 after `big.ParseFloat` (64-bit mantissa) — out of range, underflowing or inexact
 * strings are rejected, which is how OpenFGA refuses `"1.797…e+309"`.
 */
function convertDouble(v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) {
      throw new ConversionError(`number cannot be represented as a float64: ${goFloatV(v)}`)
    }
    return v
  }
  if (typeof v !== 'string') {
    throw new ConversionError(`expected type value 'float64', but found '${goTypeS(v)}'`)
  }
  const p = parseNumericString(v)
  if (!p)
    throw new ConversionError(`expected a float64 value, but found invalid string value '${v}'`)
  if (p.inf) return p.neg ? -Infinity : Infinity
  if (!p.digits) return p.neg ? -0 : 0
  const x = Number(`${p.neg ? '-' : ''}${p.digits}e${p.exp}`)
  if (!Number.isFinite(x) || x === 0 || !float64Exact(p, x)) {
    throw new ConversionError(`number cannot be represented as a float64: ${numberDisplay(p)}`)
  }
  return x
}

/**
 * float64Exact tells whether digits·10^exp, rounded to a 64-bit mantissa (big.ParseFloat with
 * prec 64), is the double x itself, i.e. |value − x| ≤ half a 64-bit ulp of the value.
 */
function float64Exact(p: ParsedNumber, x: number): boolean {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, Math.abs(x))
  const bits = view.getBigUint64(0)
  const biased = Number(bits >> 52n)
  let m = bits & ((1n << 52n) - 1n)
  let k: number
  if (biased === 0) k = -1074
  else {
    m |= 1n << 52n
    k = biased - 1075
  }
  // binade of min(value, x): x's exponent, one lower if x is a power of two above the value
  let ex = k + m.toString(2).length - 1
  const d = BigInt(p.digits)
  const pow = (b: bigint, e: number): bigint => b ** BigInt(Math.max(e, 0))
  // value = A/B, x = C/F, threshold = G/H
  const A = d * pow(10n, p.exp)
  const B = pow(10n, -p.exp)
  const C = m * pow(2n, k)
  const F = pow(2n, -k)
  if ((m & (m - 1n)) === 0n && A * F < C * B) ex -= 1
  const G = pow(2n, ex - 64)
  const H = pow(2n, 64 - ex)
  let diff = A * F - C * B
  if (diff < 0n) diff = -diff
  return diff * H <= G * B * F
}

/**
 * memoize caches the parse of string context values: tuples store the same timestamps,
 * durations and addresses over and over, and the parsed values are never mutated (cel-js
 * arithmetic returns new Dates and Durations), so they can be shared between evaluations.
 */
function memoize<T>(parse: (s: string) => T): (s: string) => T {
  const cache = new Map<string, T>()
  return (s) => {
    let v = cache.get(s)
    if (v === undefined) {
      v = parse(s)
      if (cache.size >= 1024) cache.clear()
      cache.set(s, v)
    }
    return v
  }
}

const parseDurationValue = memoize((s) => {
  const nanos = parseGoDuration(s)
  if (nanos === null)
    throw new ConversionError(`expected a valid duration string, but found: '${s}'`)
  return durationFromNanos(nanos)
})

const parseTimestampValue = memoize((s) => {
  const t = parseRFC3339(s)
  if (!t)
    throw new ConversionError(`expected RFC 3339 formatted timestamp string, but found '${s}'`)
  return t
})

const parseIPAddressValue = memoize((s) => {
  try {
    return parseAddr(s)
  } catch {
    throw new ConversionError(`expected a well-formed IP address, but found: '${s}'`)
  }
})

function convertDuration(v: unknown): Duration {
  if (typeof v !== 'string') {
    throw new ConversionError(`expected a duration string, but found: ${goType(v)} '${goValue(v)}'`)
  }
  return parseDurationValue(v)
}

function convertTimestamp(v: unknown): Date {
  if (typeof v !== 'string') {
    throw new ConversionError(
      `expected RFC 3339 formatted timestamp string, but found: ${goType(v)} '${goValue(v)}'`,
    )
  }
  return parseTimestampValue(v)
}

function convertIPAddress(v: unknown): IPAddress {
  if (v instanceof IPAddress) return v
  if (typeof v !== 'string') {
    throw new ConversionError(
      `expected an ipaddress string, but found: ${goType(v)} '${goValue(v)}'`,
    )
  }
  return parseIPAddressValue(v)
}

// ---------------------------------------------------------------------------------------------
// Durations and timestamps (Go's time.ParseDuration and time.Parse(time.RFC3339, …))
// ---------------------------------------------------------------------------------------------

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

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9'
}

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

function durationFromNanos(nanos: bigint): Duration {
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
function formatTimestamp(t: Date): string {
  const iso = t.toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ (years 0–9999)
  const [head, frac] = iso.slice(0, -1).split('.')
  const f = frac.replace(/0+$/, '')
  return `${head}${f ? '.' + f : ''}Z`
}

/** formatDuration is cel-go's string(duration): seconds as the shortest float, then `s`. */
function formatDuration(d: Duration): string {
  const secs = Number(d.seconds) + d.nanos / 1e9
  if (secs === 0) return '0s'
  const [mant, expStr] = Math.abs(secs).toExponential().split('e')
  const digits = mant.replace('.', '')
  const exp = Number(expStr)
  return `${secs < 0 ? '-' : ''}${formatF(digits, exp + 1, Math.max(digits.length - exp - 1, 0))}s`
}

// ---------------------------------------------------------------------------------------------
// IP addresses (Go's net/netip, as OpenFGA's `ipaddress` type uses it)
// ---------------------------------------------------------------------------------------------

/** IPAddress is the runtime value of the `ipaddress` parameter type. */
export class IPAddress {
  /** 4 bytes for IPv4, 16 for IPv6 (including IPv4-mapped IPv6). */
  readonly bytes: Uint8Array
  readonly zone: string

  constructor(bytes: Uint8Array, zone = '') {
    this.bytes = bytes
    this.zone = zone
  }
}

function addrError(input: string, msg: string, at?: string): never {
  throw new Error(
    `ParseAddr(${goQuote(input)}): ${msg}${at !== undefined ? ` (at ${goQuote(at)})` : ''}`,
  )
}

/** parseAddr is netip.ParseAddr, with its error messages. */
export function parseAddr(s: string): IPAddress {
  for (let i = 0; i < s.length; i++) {
    switch (s[i]) {
      case '.':
        return new IPAddress(parseIPv4Fields(s, 0, s.length))
      case ':':
        return parseIPv6(s)
      case '%':
        addrError(s, 'missing IPv6 address')
    }
  }
  addrError(s, 'unable to parse IP')
}

function parseIPv4Fields(input: string, off: number, end: number): Uint8Array {
  const fields = new Uint8Array(4)
  const s = input.slice(off, end)
  let val = 0
  let pos = 0
  let digLen = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (isDigit(c)) {
      if (digLen === 1 && val === 0) addrError(input, 'IPv4 field has octet with leading zero')
      val = val * 10 + (c.charCodeAt(0) - 48)
      digLen++
      if (val > 255) addrError(input, 'IPv4 field has value >255')
    } else if (c === '.') {
      if (i === 0 || i === s.length - 1 || s[i - 1] === '.') {
        addrError(input, 'IPv4 field must have at least one digit', s.slice(i))
      }
      if (pos === 3) addrError(input, 'IPv4 address too long')
      fields[pos++] = val
      val = 0
      digLen = 0
    } else {
      addrError(input, 'unexpected character', s.slice(i))
    }
  }
  if (pos < 3) addrError(input, 'IPv4 address too short')
  fields[3] = val
  return fields
}

function hexValue(c: string): number {
  const n = c.charCodeAt(0)
  if (n >= 48 && n <= 57) return n - 48
  if (n >= 97 && n <= 102) return n - 87
  if (n >= 65 && n <= 70) return n - 55
  return -1
}

function parseIPv6(input: string): IPAddress {
  let s = input
  let zone = ''
  const pct = s.indexOf('%')
  if (pct !== -1) {
    zone = s.slice(pct + 1)
    s = s.slice(0, pct)
    if (zone === '') addrError(input, 'zone must be a non-empty string')
  }
  const ip = new Uint8Array(16)
  let ellipsis = -1
  if (s.length >= 2 && s[0] === ':' && s[1] === ':') {
    ellipsis = 0
    s = s.slice(2)
    if (s.length === 0) return new IPAddress(ip, zone)
  }
  let i = 0
  while (i < 16) {
    let off = 0
    let acc = 0
    for (; off < s.length; off++) {
      const h = hexValue(s[off])
      if (h < 0) break
      acc = acc * 16 + h
      if (off > 3) addrError(input, 'each group must have 4 or less digits', s)
      if (acc > 0xffff) addrError(input, 'IPv6 field has value >=2^16', s)
    }
    if (off === 0) addrError(input, 'each colon-separated field must have at least one digit', s)
    if (off < s.length && s[off] === '.') {
      if (ellipsis < 0 && i !== 12) {
        addrError(input, 'embedded IPv4 address must replace the final 2 fields of the address', s)
      }
      if (i + 4 > 16) {
        addrError(input, 'too many hex fields to fit an embedded IPv4 at the end of the address', s)
      }
      const end = input.length - (zone.length > 0 ? zone.length + 1 : 0)
      ip.set(parseIPv4Fields(input, end - s.length, end), i)
      s = ''
      i += 4
      break
    }
    ip[i] = acc >> 8
    ip[i + 1] = acc & 0xff
    i += 2
    s = s.slice(off)
    if (s.length === 0) break
    if (s[0] !== ':') addrError(input, 'unexpected character, want colon', s)
    if (s.length === 1) addrError(input, 'colon must be followed by more characters', s)
    s = s.slice(1)
    if (s[0] === ':') {
      if (ellipsis >= 0) addrError(input, 'multiple :: in address', s)
      ellipsis = i
      s = s.slice(1)
      if (s.length === 0) break
    }
  }
  if (s.length !== 0) addrError(input, 'trailing garbage after address', s)
  if (i < 16) {
    if (ellipsis < 0) addrError(input, 'address string too short')
    const n = 16 - i
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j]
    ip.fill(0, ellipsis, ellipsis + n)
  } else if (ellipsis >= 0) {
    addrError(input, 'the :: must expand to at least one field of zeros')
  }
  return new IPAddress(ip, zone)
}

/** parsePrefix is netip.ParsePrefix reduced to what in_cidr needs: null when malformed. */
const parsePrefix = memoize((s: string): { ip: IPAddress; bits: number } | null => {
  const slash = s.lastIndexOf('/')
  if (slash < 0) return null
  let ip: IPAddress
  try {
    ip = parseAddr(s.slice(0, slash))
  } catch {
    return null
  }
  if (ip.zone) return null
  const bitsStr = s.slice(slash + 1)
  if (!/^(0|[1-9]\d*)$/.test(bitsStr) || bitsStr.length > 4) return null
  const bits = Number(bitsStr)
  if (bits > ip.bytes.length * 8) return null
  return { ip, bits }
})

/** prefixContains is netip.Prefix.Contains: same family, no zone, equal leading bits. */
function prefixContains(prefix: { ip: IPAddress; bits: number }, ip: IPAddress): boolean {
  if (ip.zone || prefix.ip.bytes.length !== ip.bytes.length) return false
  let bits = prefix.bits
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((prefix.ip.bytes[i] & mask) !== (ip.bytes[i] & mask)) return false
  }
  return true
}

function ipEqual(a: IPAddress, b: IPAddress): boolean {
  if (a.bytes.length !== b.bytes.length || a.zone !== b.zone) return false
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false
  return true
}

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

// ---------------------------------------------------------------------------------------------
// `matches`: a linear-time matcher for RE2 syntax (Thompson NFA simulation)
// ---------------------------------------------------------------------------------------------

type CodePointTest = (cp: number) => boolean
type Assertion = 'bot' | 'eot' | 'bol' | 'eol' | 'wb' | 'nwb'
type ReNode =
  | { k: 'char'; t: CodePointTest }
  | { k: 'assert'; a: Assertion }
  | { k: 'cat'; xs: ReNode[] }
  | { k: 'alt'; xs: ReNode[] }
  | { k: 'rep'; min: number; max: number; x: ReNode }

/** RegexError carries a Go regexp/syntax message: "error parsing regexp: unexpected ): `)`". */
class RegexError extends Error {}

function regexError(code: string, expr: string): never {
  throw new RegexError(`error parsing regexp: ${code}: \`${expr}\``)
}

const MAX_REPEAT = 1000
/** Bigger programs are refused, like RE2's "expression too large", to bound matching time. */
const MAX_PROGRAM = 10_000

const isWordCp = (cp: number): boolean =>
  (cp >= 48 && cp <= 57) || (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122) || cp === 95
const isDigitCp = (cp: number): boolean => cp >= 48 && cp <= 57
const isSpaceCp = (cp: number): boolean =>
  cp === 9 || cp === 10 || cp === 12 || cp === 13 || cp === 32

const POSIX_CLASSES: Record<string, CodePointTest> = {
  alnum: (c) => isDigitCp(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  alpha: (c) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  ascii: (c) => c <= 0x7f,
  blank: (c) => c === 9 || c === 32,
  cntrl: (c) => c <= 0x1f || c === 0x7f,
  digit: isDigitCp,
  graph: (c) => c >= 0x21 && c <= 0x7e,
  lower: (c) => c >= 97 && c <= 122,
  print: (c) => c >= 0x20 && c <= 0x7e,
  punct: (c) => (c >= 0x21 && c <= 0x7e && !isWordCp(c)) || c === 95,
  space: (c) => isSpaceCp(c) || c === 11,
  upper: (c) => c >= 65 && c <= 90,
  word: isWordCp,
  xdigit: (c) => isDigitCp(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102),
}

function foldCase(t: CodePointTest): CodePointTest {
  return (cp) => {
    if (t(cp)) return true
    const s = String.fromCodePoint(cp)
    const lower = s.toLowerCase()
    const upper = s.toUpperCase()
    return (
      (lower.length <= 2 && t(lower.codePointAt(0)!)) ||
      (upper.length <= 2 && t(upper.codePointAt(0)!))
    )
  }
}

/** RegexParser reads RE2 syntax (the subset cel-go's `matches` accepts) into a ReNode tree. */
class RegexParser {
  private i = 0
  private readonly cps: number[]
  private flags = { i: false, m: false, s: false }

  constructor(private readonly src: string) {
    this.cps = Array.from(src, (c) => c.codePointAt(0)!)
  }

  parse(): ReNode {
    const node = this.alternation()
    if (this.i < this.cps.length) regexError('unexpected )', this.src)
    return node
  }

  private peek(k = 0): number {
    return this.i + k < this.cps.length ? this.cps[this.i + k] : -1
  }

  private next(): number {
    return this.i < this.cps.length ? this.cps[this.i++] : -1
  }

  private text(from: number, to = this.i): string {
    let out = ''
    for (let k = from; k < to && k < this.cps.length; k++) out += String.fromCodePoint(this.cps[k])
    return out
  }

  private alternation(): ReNode {
    const xs = [this.concatenation()]
    while (this.peek() === 0x7c) {
      this.i++
      xs.push(this.concatenation())
    }
    return xs.length === 1 ? xs[0] : { k: 'alt', xs }
  }

  private concatenation(): ReNode {
    const xs: ReNode[] = []
    for (;;) {
      const c = this.peek()
      if (c === -1 || c === 0x7c || c === 0x29) break
      const atom = this.atom()
      if (atom) xs.push(this.repetition(atom))
    }
    return xs.length === 1 ? xs[0] : { k: 'cat', xs }
  }

  private counted(): [number, number] | null {
    const start = this.i
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.text(this.i, Math.min(this.cps.length, this.i + 24)))
    if (!m) return null
    this.i += m[0].length
    const min = Number(m[1])
    const max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3])
    if (min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && max < min)) {
      regexError('invalid repeat count', this.text(start))
    }
    return [min, max]
  }

  private repetition(atom: ReNode): ReNode {
    let node = atom
    let last = -1
    for (;;) {
      const start = this.i
      const c = this.peek()
      let range: [number, number] | null
      if (c === 0x2a) range = [0, -1]
      else if (c === 0x2b) range = [1, -1]
      else if (c === 0x3f) range = [0, 1]
      else if (c === 0x7b) range = this.counted()
      else range = null
      if (!range) return node
      if (c !== 0x7b) this.i++
      if (this.peek() === 0x3f) this.i++ // non-greedy: irrelevant to whether it matches
      if (last >= 0) regexError('invalid nested repetition operator', this.text(last))
      last = start
      node = { k: 'rep', min: range[0], max: range[1], x: node }
    }
  }

  private char(t: CodePointTest): ReNode {
    return { k: 'char', t: this.flags.i ? foldCase(t) : t }
  }

  private atom(): ReNode | null {
    const start = this.i
    const c = this.next()
    switch (c) {
      case 0x28:
        return this.group(start)
      case 0x5b:
        return this.charClass(start)
      case 0x2e:
        return { k: 'char', t: this.flags.s ? () => true : (cp) => cp !== 10 }
      case 0x5e:
        return { k: 'assert', a: this.flags.m ? 'bol' : 'bot' }
      case 0x24:
        return { k: 'assert', a: this.flags.m ? 'eol' : 'eot' }
      case 0x5c:
        return this.escape()
      case 0x2a:
      case 0x2b:
      case 0x3f:
        return regexError('missing argument to repetition operator', String.fromCodePoint(c))
      case 0x7b: {
        this.i = start
        if (this.counted()) regexError('missing argument to repetition operator', this.text(start))
        this.i = start + 1
        return this.char((cp) => cp === 0x7b)
      }
      default:
        return this.char((cp) => cp === c)
    }
  }

  private group(open: number): ReNode | null {
    const saved = { ...this.flags }
    if (this.peek() === 0x3f) {
      this.i++
      const c = this.peek()
      if (c === 0x50 || c === 0x3c) {
        if (c === 0x50) {
          this.i++
          if (this.peek() !== 0x3c)
            regexError('invalid or unsupported Perl syntax', this.text(open, this.i + 1))
        }
        this.i++
        const nameStart = this.i
        while (this.peek() !== -1 && this.peek() !== 0x3e) this.i++
        if (this.peek() !== 0x3e) regexError('invalid named capture', this.text(open))
        const name = this.text(nameStart)
        this.i++
        if (!/^\w+$/.test(name)) regexError('invalid named capture', this.text(open))
      } else {
        let neg = false
        let sawFlag = false
        for (;;) {
          const f = this.next()
          if (f === -1) regexError('missing closing )', this.src)
          if (f === 0x69 || f === 0x6d || f === 0x73 || f === 0x55) {
            if (f === 0x69) this.flags.i = !neg
            if (f === 0x6d) this.flags.m = !neg
            if (f === 0x73) this.flags.s = !neg
            sawFlag = true
            continue
          }
          if (f === 0x2d && !neg) {
            neg = true
            sawFlag = false
            continue
          }
          if ((f === 0x29 || f === 0x3a) && (sawFlag || (!neg && f === 0x3a))) {
            // `(?i)` keeps its flags up to the end of the enclosing group
            if (f === 0x29) return null
            break
          }
          regexError('invalid or unsupported Perl syntax', this.text(open))
        }
      }
    }
    const inner = this.alternation()
    if (this.next() !== 0x29) regexError('missing closing )', this.src)
    this.flags = saved
    return inner
  }

  private perlClass(c: number): CodePointTest | null {
    switch (c) {
      case 0x64:
        return isDigitCp
      case 0x44:
        return (cp) => !isDigitCp(cp)
      case 0x73:
        return isSpaceCp
      case 0x53:
        return (cp) => !isSpaceCp(cp)
      case 0x77:
        return isWordCp
      case 0x57:
        return (cp) => !isWordCp(cp)
      case 0x70:
      case 0x50:
        return this.unicodeClass(c === 0x50)
    }
    return null
  }

  private unicodeClass(negated: boolean): CodePointTest {
    const start = this.i - 2
    let name: string
    if (this.peek() === 0x7b) {
      const close = this.cps.indexOf(0x7d, this.i)
      if (close < 0) regexError('invalid character class range', this.text(start, this.cps.length))
      name = this.text(this.i + 1, close)
      this.i = close + 1
    } else {
      const c = this.next()
      if (c === -1) regexError('invalid character class range', this.text(start))
      name = String.fromCodePoint(c)
    }
    if (name.startsWith('^')) {
      negated = !negated
      name = name.slice(1)
    }
    let re: RegExp | undefined
    for (const form of name === 'Any' ? ['Any'] : [name, `Script=${name}`]) {
      try {
        re = new RegExp(`^\\p{${form}}$`, 'u')
        break
      } catch {
        // try the next spelling
      }
    }
    if (!re) regexError('invalid character class range', this.text(start))
    const r = re
    return (cp) => r.test(String.fromCodePoint(cp)) !== negated
  }

  /** escapedChar reads the code point of a single-character escape (after the backslash). */
  private escapedChar(c: number, start: number): number {
    switch (c) {
      case 0x61:
        return 7
      case 0x66:
        return 12
      case 0x74:
        return 9
      case 0x6e:
        return 10
      case 0x72:
        return 13
      case 0x76:
        return 11
      case 0x78: {
        if (this.peek() === 0x7b) {
          const close = this.cps.indexOf(0x7d, this.i)
          const hex = close < 0 ? '' : this.text(this.i + 1, close)
          if (!/^[0-9a-fA-F]{1,8}$/.test(hex) || parseInt(hex, 16) > 0x10ffff) {
            regexError(
              'invalid escape sequence',
              this.text(start, close < 0 ? this.cps.length : close + 1),
            )
          }
          this.i = close + 1
          return parseInt(hex, 16)
        }
        const hex = this.text(this.i, this.i + 2)
        if (!/^[0-9a-fA-F]{2}$/.test(hex))
          regexError('invalid escape sequence', this.text(start, this.i + 2))
        this.i += 2
        return parseInt(hex, 16)
      }
    }
    if (c >= 0x30 && c <= 0x37) {
      // octal; a lone \1-\7 would be a backreference, which RE2 does not support
      if (c !== 0x30 && !(this.peek() >= 0x30 && this.peek() <= 0x37)) {
        regexError('invalid escape sequence', this.text(start, this.i))
      }
      let v = c - 0x30
      for (let n = 0; n < 2 && this.peek() >= 0x30 && this.peek() <= 0x37; n++)
        v = v * 8 + this.next() - 0x30
      return v
    }
    if (c < 0x80 && !isWordCp(c)) return c
    regexError('invalid escape sequence', this.text(start, this.i))
  }

  private escape(): ReNode {
    const start = this.i - 1
    const c = this.next()
    if (c === -1) regexError('trailing backslash at end of expression', '')
    switch (c) {
      case 0x62:
        return { k: 'assert', a: 'wb' }
      case 0x42:
        return { k: 'assert', a: 'nwb' }
      case 0x41:
        return { k: 'assert', a: 'bot' }
      case 0x7a:
        return { k: 'assert', a: 'eot' }
      case 0x51: {
        const xs: ReNode[] = []
        while (this.i < this.cps.length) {
          if (this.peek() === 0x5c && this.peek(1) === 0x45) {
            this.i += 2
            break
          }
          const lit = this.next()
          xs.push(this.char((cp) => cp === lit))
        }
        return { k: 'cat', xs }
      }
    }
    const cls = this.perlClass(c)
    if (cls) return this.char(cls)
    const cp = this.escapedChar(c, start)
    return this.char((x) => x === cp)
  }

  private charClass(open: number): ReNode {
    let negated = false
    if (this.peek() === 0x5e) {
      negated = true
      this.i++
    }
    const ranges: number[] = []
    const tests: CodePointTest[] = []
    let first = true
    for (;;) {
      const itemStart = this.i
      const c = this.next()
      if (c === -1) regexError('missing closing ]', this.text(open, this.cps.length))
      if (c === 0x5d && !first) break
      first = false
      if (c === 0x5b && this.peek() === 0x3a) {
        const close = this.text(this.i, this.i + 16).indexOf(':]')
        if (close >= 0) {
          let name = this.text(this.i + 1, this.i + close)
          const neg = name.startsWith('^')
          if (neg) name = name.slice(1)
          const t = POSIX_CLASSES[name]
          if (!t)
            regexError('invalid character class range', this.text(itemStart, this.i + close + 2))
          this.i += close + 2
          tests.push(neg ? (cp) => !t(cp) : t)
          continue
        }
      }
      let lo = c
      if (c === 0x5c) {
        const e = this.next()
        if (e === -1) regexError('trailing backslash at end of expression', '')
        const cls = this.perlClass(e)
        if (cls) {
          tests.push(cls)
          continue
        }
        lo = this.escapedChar(e, itemStart)
      }
      let hi = lo
      if (this.peek() === 0x2d && this.peek(1) !== 0x5d && this.peek(1) !== -1) {
        this.i++
        hi = this.next()
        if (hi === 0x5c) hi = this.escapedChar(this.next(), this.i - 2)
        if (hi < lo) regexError('invalid character class range', this.text(itemStart))
      }
      ranges.push(lo, hi)
    }
    const inClass: CodePointTest = (cp) => {
      for (let r = 0; r < ranges.length; r += 2)
        if (cp >= ranges[r] && cp <= ranges[r + 1]) return true
      for (const t of tests) if (t(cp)) return true
      return false
    }
    const folded = this.flags.i ? foldCase(inClass) : inClass
    return { k: 'char', t: negated ? (cp) => !folded(cp) : folded }
  }
}

const Op = { Char: 0, Split: 1, Jmp: 2, Assert: 3, Match: 4 } as const

interface Inst {
  op: (typeof Op)[keyof typeof Op]
  x: number
  y: number
  t?: CodePointTest
  a?: Assertion
}

/** compileRegex parses an RE2 pattern into an NFA program; throws RegexError. */
function compileRegex(pattern: string): Inst[] {
  const tree = new RegexParser(pattern).parse()
  const prog: Inst[] = []
  const push = (inst: Inst): number => {
    if (prog.length >= MAX_PROGRAM) regexError('expression too large', pattern)
    prog.push(inst)
    return prog.length - 1
  }
  const emit = (n: ReNode): void => {
    switch (n.k) {
      case 'char':
        push({ op: Op.Char, x: prog.length + 1, y: 0, t: n.t })
        return
      case 'assert':
        push({ op: Op.Assert, x: prog.length + 1, y: 0, a: n.a })
        return
      case 'cat':
        for (const x of n.xs) emit(x)
        return
      case 'alt': {
        const jumps: number[] = []
        for (let i = 0; i < n.xs.length - 1; i++) {
          const split = push({ op: Op.Split, x: prog.length + 1, y: 0 })
          emit(n.xs[i])
          jumps.push(push({ op: Op.Jmp, x: 0, y: 0 }))
          prog[split].y = prog.length
        }
        emit(n.xs[n.xs.length - 1])
        for (const j of jumps) prog[j].x = prog.length
        return
      }
      case 'rep': {
        for (let i = 0; i < n.min; i++) emit(n.x)
        if (n.max < 0) {
          const split = push({ op: Op.Split, x: prog.length + 1, y: 0 })
          emit(n.x)
          push({ op: Op.Jmp, x: split, y: 0 })
          prog[split].y = prog.length
          return
        }
        const splits: number[] = []
        for (let i = n.min; i < n.max; i++) {
          splits.push(push({ op: Op.Split, x: prog.length + 1, y: 0 }))
          emit(n.x)
        }
        for (const s of splits) prog[s].y = prog.length
        return
      }
    }
  }
  emit(tree)
  push({ op: Op.Match, x: 0, y: 0 })
  return prog
}

/** runRegex tells whether the program matches anywhere in s, in O(|s|·|program|) time. */
function runRegex(prog: Inst[], s: string): boolean {
  const n = prog.length
  const mark = new Int32Array(n).fill(-1)
  let clist = new Int32Array(n)
  let nlist = new Int32Array(n)
  const stack = new Int32Array(2 * n + 2)
  let clen = 0
  let nlen = 0
  let gen = 0
  let pos = 0
  let prev = -1
  let next = s.length > 0 ? s.codePointAt(0)! : -1
  const holds = (a: Assertion): boolean => {
    switch (a) {
      case 'bot':
        return pos === 0
      case 'eot':
        return pos === s.length
      case 'bol':
        return pos === 0 || prev === 10
      case 'eol':
        return pos === s.length || next === 10
      case 'wb':
        return isWordCp(prev) !== isWordCp(next)
      case 'nwb':
        return isWordCp(prev) === isWordCp(next)
    }
  }
  /** add follows empty transitions from pc into nlist; returns true on reaching Match. */
  const add = (pc0: number): boolean => {
    let sp = 0
    stack[sp++] = pc0
    while (sp > 0) {
      const pc = stack[--sp]
      if (mark[pc] === gen) continue
      mark[pc] = gen
      const inst = prog[pc]
      switch (inst.op) {
        case Op.Match:
          return true
        case Op.Char:
          nlist[nlen++] = pc
          break
        case Op.Jmp:
          stack[sp++] = inst.x
          break
        case Op.Split:
          stack[sp++] = inst.y
          stack[sp++] = inst.x
          break
        case Op.Assert:
          if (holds(inst.a!)) stack[sp++] = inst.x
          break
      }
    }
    return false
  }
  if (add(0)) return true
  ;[clist, nlist] = [nlist, clist]
  clen = nlen
  while (pos < s.length) {
    const cp = next
    pos += cp > 0xffff ? 2 : 1
    prev = cp
    next = pos < s.length ? s.codePointAt(pos)! : -1
    gen++
    nlen = 0
    for (let k = 0; k < clen; k++) {
      const inst = prog[clist[k]]
      if (inst.t!(cp) && add(inst.x)) return true
    }
    if (add(0)) return true
    ;[clist, nlist] = [nlist, clist]
    clen = nlen
  }
  return false
}

const regexCache = new Map<string, Inst[]>()

function cachedRegex(pattern: string): Inst[] {
  let prog = regexCache.get(pattern)
  if (!prog) {
    prog = compileRegex(pattern)
    if (regexCache.size >= 256) regexCache.clear()
    regexCache.set(pattern, prog)
  }
  return prog
}

// ---------------------------------------------------------------------------------------------
// The CEL environment
// ---------------------------------------------------------------------------------------------

/** cel-go's standard functions (plus OpenFGA's ipaddress ones), by how they may be called. */
const GLOBAL_FUNCTIONS = new Set([
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
const MEMBER_FUNCTIONS = new Set([
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

let baseEnvironment: Environment | undefined

/** environment builds, once, the cel-go-like base every condition's environment clones. */
function environment(): Environment {
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
    // evaluated by the linear-time matcher (see instrument); registered so that it type-checks
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
  baseEnvironment = env
  return env
}

function regexMatches(s: string, pattern: string): boolean {
  try {
    return runRegex(cachedRegex(pattern), s)
  } catch (err) {
    throw new EvaluationError((err as Error).message)
  }
}

// ---------------------------------------------------------------------------------------------
// cel-js internals this module relies on (8.0.0; not part of its public API)
// ---------------------------------------------------------------------------------------------

type EvalFn = (ev: CelEvaluator, ast: CelNode, ctx: unknown) => unknown

interface CelEvaluator {
  run(ast: CelNode, ctx: unknown): unknown
}

interface CelNode {
  op: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  args: any
  pos: number
  end: number
  checkedType?: { name: string; kind: string }
  readonly meta: {
    alternate?: CelNode
    macro?: {
      args?: CelNode[]
      evaluate: (ev: CelEvaluator, macro: unknown, ctx: unknown) => unknown
    }
    evaluate: EvalFn
  }
  evaluate: EvalFn
}

/** children lists the nodes a node evaluates (macro expansions instead of the macro call). */
function children(n: CelNode): CelNode[] {
  const a = n.args
  switch (n.op) {
    case 'value':
    case 'id':
    case 'accuValue':
    case 'accuInc':
      return []
    case '.':
    case '.?':
      return [a[0]]
    case 'call':
    case 'rcall':
      if (n.meta.alternate) return [n.meta.alternate]
      if (n.meta.macro) return n.meta.macro.args ?? []
      return n.op === 'call' ? a[1] : [a[1], ...a[2]]
    case 'map':
      return (a as CelNode[][]).flat()
    case 'comprehension':
      return [a.iterable, a.init, a.step]
    case 'accuPush':
    case '!_':
    case '-_':
      return [a]
    default:
      return a
  }
}

function walk(root: CelNode, visit: (n: CelNode) => void): void {
  const seen = new Set<CelNode>()
  const stack = [root]
  while (stack.length > 0) {
    const n = stack.pop()!
    if (!n || typeof n !== 'object' || seen.has(n)) continue
    seen.add(n)
    visit(n)
    stack.push(...children(n))
  }
}

const COMPARISONS: Record<string, string> = { '<': '_<_', '<=': '_<=_', '>': '_>_', '>=': '_>=_' }
const OPERATOR_NAMES: Record<string, string> = {
  ...COMPARISONS,
  '==': '_==_',
  '!=': '_!=_',
  '+': '_+_',
  '-': '_-_',
  '*': '_*_',
  '/': '_/_',
  '%': '_%_',
  in: '@in',
  '!': '!_',
}
const NUMERIC = new Set(['int', 'uint', 'double'])

/** celGoType spells a cel-js type name the way cel-go prints it. */
function celGoType(t: string): string {
  if (t === 'list') return 'list(dyn)'
  if (t === 'map') return 'map(dyn, dyn)'
  return t.replaceAll('<', '(').replaceAll('>', ')')
}

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

interface CompiledParameter {
  readonly name: string
  readonly type: ParamType
}

interface CostState {
  cost: number
  limit: number
  exceeded: boolean
}

/** Thrown (one shared instance, no stack capture) through cel-js when the budget is spent. */
const COST_EXCEEDED = Object.freeze(new Error(COST_LIMIT_MESSAGE))

class CelCondition implements CompiledCondition {
  readonly name: string
  readonly parameters: readonly CompiledParameter[]
  readonly parameterNames: ReadonlySet<string>
  readonly #program: ParseResult
  readonly #state: CostState
  readonly #slots: { v: unknown }[]
  readonly #activation: Record<string, unknown>

  constructor(
    name: string,
    parameters: CompiledParameter[],
    program: ParseResult,
    state: CostState,
    slots: { v: unknown }[],
  ) {
    this.name = name
    this.parameters = parameters
    this.parameterNames = new Set(parameters.map((p) => p.name))
    this.#program = program
    this.#state = state
    this.#slots = slots
    // one activation object per condition, reused: evaluation is synchronous
    this.#activation = Object.create(null) as Record<string, unknown>
    for (const p of parameters) this.#activation[p.name] = undefined
  }

  evaluate(
    requestContext: Record<string, unknown> | undefined,
    tupleContext: Record<string, unknown> | undefined,
    tupleKey?: string,
  ): ConditionOutcome {
    const params = this.parameters
    if (params.length === 0 && (hasAnyKey(requestContext) || hasAnyKey(tupleContext))) {
      return errorOutcome(`${EVALUATION_FAILED}: ${parameterTypeError(this.name, NO_PARAMETERS)}`)
    }
    const activation = this.#activation
    let missing: string[] | undefined
    try {
      for (const p of params) {
        let v: unknown
        if (tupleContext !== undefined && Object.hasOwn(tupleContext, p.name))
          v = tupleContext[p.name]
        if (
          v === undefined &&
          requestContext !== undefined &&
          Object.hasOwn(requestContext, p.name)
        ) {
          v = requestContext[p.name]
        }
        if (v === undefined) {
          ;(missing ??= []).push(p.name)
          continue
        }
        try {
          activation[p.name] = p.type.convert(v)
        } catch (err) {
          const cause = parameterTypeError(this.name, conversionCause(p.name, err))
          return errorOutcome(`${EVALUATION_FAILED}: ${cause}`)
        }
      }
      if (missing) {
        const list = `'[${missing.join(' ')}]'`
        const cause = tupleKey
          ? `tuple '${tupleKey}' is missing context parameters ${list}`
          : `context is missing parameters ${list}`
        return {
          kind: 'error',
          message: `${EVALUATION_FAILED}: '${this.name}' - ${cause}`,
          missingParameters: missing,
        }
      }
      return this.#run(activation)
    } finally {
      for (const p of params) activation[p.name] = undefined
    }
  }

  #run(activation: Record<string, unknown>): ConditionOutcome {
    const state = this.#state
    state.cost = 0
    state.exceeded = false
    let out: unknown
    let failure: unknown
    try {
      out = this.#program(activation)
    } catch (err) {
      failure = err
    } finally {
      for (const slot of this.#slots) slot.v = undefined
    }
    if (state.exceeded)
      return evaluationError(
        this.name,
        `failed to evaluate condition expression: ${COST_LIMIT_MESSAGE}`,
      )
    if (failure !== undefined) {
      return evaluationError(
        this.name,
        `failed to evaluate condition expression: ${errorText(failure)}`,
      )
    }
    if (out === true) return TRUE
    if (out === false) return FALSE
    return evaluationError(this.name, 'failed to convert condition output to bool')
  }
}

const TRUE: ConditionOutcome = Object.freeze({ kind: 'true' })
const FALSE: ConditionOutcome = Object.freeze({ kind: 'false' })

function errorOutcome(message: string): ConditionOutcome {
  return { kind: 'error', message }
}

function hasAnyKey(o: Record<string, unknown> | undefined): boolean {
  if (!o) return false
  for (const k in o) if (Object.hasOwn(o, k) && o[k] !== undefined) return true
  return false
}

function compileCondition(condition: Condition, maxCost: number): CelCondition {
  const name = condition.name
  const expression = condition.expression
  const parameters: CompiledParameter[] = []
  for (const [param, ref] of Object.entries(condition.parameters ?? {})) {
    try {
      parameters.push({ name: param, type: decodeParamType(ref) })
    } catch (err) {
      throw compilationError(
        name,
        `failed to decode parameter type for parameter '${param}': ${(err as Error).message}`,
      )
    }
  }
  const env = environment().clone()
  for (const p of parameters) {
    try {
      env.registerVariable(p.name, p.type.cel)
    } catch (err) {
      throw compilationError(name, (err as Error).message)
    }
  }
  let program: ParseResult
  try {
    program = env.parse(expression)
  } catch (err) {
    const e = err as { summary?: string; message: string; range?: { start: number } }
    throw compilationError(
      name,
      celIssue(name, expression, e.range?.start ?? 0, `Syntax error: ${e.summary ?? e.message}`),
    )
  }
  const checked = program.check()
  if (!checked.valid) {
    const e = checked.error as CelError
    const pos = e.node ? issuePosition(expression, e.node) : (e.range?.start ?? 0)
    throw compilationError(name, celIssue(name, expression, pos, celTypeMessage(e)))
  }
  const root = program.ast as unknown as CelNode
  const literalRegexes = validateAst(name, expression, root)
  if (checked.type !== 'bool') {
    throw compilationError(
      name,
      `expected a bool condition expression output, but got '${celGoType(checked.type ?? 'dyn')}'`,
    )
  }
  const state: CostState = { cost: 0, limit: maxCost, exceeded: false }
  const slots = instrument(root, state, literalRegexes)
  return new CelCondition(name, parameters, program, state, slots)
}

interface CelError {
  code?: string
  summary?: string
  message: string
  range?: { start: number }
  node?: CelNode
}

/**
 * issuePosition is where cel-go places an issue: at the operator of a binary expression and at
 * the opening parenthesis of a call, where cel-js reports the start of the expression.
 */
function issuePosition(expression: string, n: CelNode): number {
  const a = n.args
  const after = (from: number, pattern: RegExp): number => {
    pattern.lastIndex = from
    const m = pattern.exec(expression)
    return m ? m.index : n.pos
  }
  if (OPERATOR_NAMES[n.op] && Array.isArray(a) && a.length === 2 && typeof a[0]?.end === 'number') {
    return after(a[0].end, /\S/g)
  }
  if (n.op === 'call') return after(n.pos, /\(/g)
  if (n.op === 'rcall' && typeof a[1]?.end === 'number') return after(a[1].end, /\(/g)
  return n.pos ?? 0
}

/** celIssue formats a CEL error the way cel-go's `issues.Err()` does. */
function celIssue(name: string, expression: string, pos: number, message: string): string {
  const before = Array.from(expression.slice(0, pos))
  let line = 1
  let col = 0
  for (const ch of before) {
    if (ch === '\n') {
      line++
      col = 0
    } else col++
  }
  const text = expression.split('\n')[line - 1] ?? ''
  return `ERROR: ${name}:${line}:${col + 1}: ${message}\n | ${text}\n | ${'.'.repeat(col)}^`
}

/** celTypeMessage rewords cel-js type-check errors into cel-go's wording where they map. */
function celTypeMessage(e: CelError): string {
  const summary = e.summary ?? e.message
  if (e.code === 'unknown_variable') {
    const variable = summary.replace(/^Unknown variable: /, '')
    return `undeclared reference to '${variable}' (in container '')`
  }
  if (e.code === 'no_matching_overload') {
    const m = /^found no matching overload for '(?:(.+)\.)?([A-Za-z_]\w*)\((.*)\)'$/.exec(summary)
    if (m) {
      const [, receiver, fn, args] = m
      if (!(receiver ? MEMBER_FUNCTIONS : GLOBAL_FUNCTIONS).has(fn)) {
        return `undeclared reference to '${fn}' (in container '')`
      }
      const target = receiver ? `${celGoType(receiver)}.` : ''
      const argList = args ? args.split(', ').map(celGoType).join(', ') : ''
      return `found no matching overload for '${fn}' applied to '${target}(${argList})'`
    }
  }
  if (e.code === 'no_such_overload') {
    const m = /^no such overload: (?:(\S+) (\S+) (\S+)|([!-])(\S+))$/.exec(summary)
    if (m) {
      if (m[4]) return `found no matching overload for '${m[4]}_' applied to '(${celGoType(m[5])})'`
      const op = OPERATOR_NAMES[m[2]] ?? m[2]
      const args = `${celGoType(m[1])}, ${celGoType(m[3])}`
      return `found no matching overload for '${op}' applied to '(${args})'`
    }
  }
  return summary
}

/** celEvaluationMessage rewords common cel-js runtime errors into cel-go's wording. */
function celEvaluationMessage(e: EvaluationError): string {
  const summary = e.summary ?? e.message
  switch (e.code) {
    case 'no_such_key':
      return summary.replace(/^No such key: /, 'no such key: ')
    case 'modulo_by_zero':
      return 'modulus by zero'
    case 'numeric_overflow':
      return summary.startsWith('Unsigned') ? 'unsigned integer overflow' : 'integer overflow'
  }
  return summary
}

/**
 * validateAst enforces what cel-go's checker would reject but cel-js accepts: functions outside
 * cel-go's standard library, and ordering comparisons between different numeric types. It also
 * compiles literal `matches` patterns, as cel-go's optimiser does when building the program.
 */
function validateAst(name: string, expression: string, root: CelNode): Map<CelNode, Inst[]> {
  const regexes = new Map<CelNode, Inst[]>()
  const fail = (n: CelNode, message: string): never => {
    throw compilationError(name, celIssue(name, expression, issuePosition(expression, n), message))
  }
  walk(root, (n) => {
    if (n.op === 'call' || n.op === 'rcall') {
      // macros included: cel-js's cel.bind is one, and cel-go has no bind without extensions
      const fn = n.args[0] as string
      if (!(n.op === 'call' ? GLOBAL_FUNCTIONS : MEMBER_FUNCTIONS).has(fn)) {
        fail(n, `undeclared reference to '${fn}' (in container '')`)
      }
      const pattern = matchesPattern(n)
      if (pattern && pattern.op === 'value' && typeof pattern.args === 'string') {
        try {
          regexes.set(n, compileRegex(pattern.args))
        } catch (err) {
          throw compilationError(
            name,
            `condition expression construction: ${(err as Error).message}`,
          )
        }
      }
    } else if (n.op === 'id' && (n.args === 'cel' || n.args === 'optional')) {
      fail(n, `undeclared reference to '${n.args}' (in container '')`)
    } else if (COMPARISONS[n.op]) {
      const l: string = n.args[0].checkedType?.name ?? 'dyn'
      const r: string = n.args[1].checkedType?.name ?? 'dyn'
      if (NUMERIC.has(l) && NUMERIC.has(r) && l !== r) {
        fail(n, `found no matching overload for '${COMPARISONS[n.op]}' applied to '(${l}, ${r})'`)
      }
    }
  })
  return regexes
}

/** matchesPattern returns the pattern argument of a `matches` call node, if it is one. */
function matchesPattern(n: CelNode): CelNode | undefined {
  if (n.args[0] !== 'matches') return undefined
  if (n.op === 'rcall' && n.args[2].length === 1) return n.args[2][0]
  if (n.op === 'call' && n.args[1].length === 2) return n.args[1][1]
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Cost instrumentation
// ---------------------------------------------------------------------------------------------

/** cel-go's cost of each macro's fold: per iteration (loop condition, accumulator), and result. */
const MACRO_COSTS: Record<string, [step: number, result: number]> = {
  all: [3, 1],
  exists: [4, 1],
  exists_one: [1, 2],
  map: [12, 1],
  map3: [1, 1],
  filter: [1, 1],
}

/** sizeOf is cel-go's `actualSize`: length of strings, bytes, lists and maps, else 1. */
function sizeOf(v: unknown): number {
  if (typeof v === 'string') return v.length
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length
  if (v instanceof Map || v instanceof Set) return v.size
  if (
    v !== null &&
    typeof v === 'object' &&
    (v.constructor === Object || v.constructor === undefined)
  ) {
    let n = 0
    for (const k in v) if (Object.hasOwn(v, k)) n++
    return n
  }
  return 1
}

const traversal = (n: number): number => Math.ceil(n * 0.1)

function isConstant(n: CelNode): boolean {
  if (n.op === 'value') return true
  if (n.op === 'list') return (n.args as CelNode[]).every(isConstant)
  if (n.op === 'map')
    return (n.args as CelNode[][]).every(([k, v]) => isConstant(k) && isConstant(v))
  return false
}

interface Plan {
  cost: number
  dyn?: (result: unknown) => number
  slot?: { v: unknown }
  replace?: EvalFn
}

/**
 * instrument wraps the evaluation of every node that has a cost so that the shared state
 * counts it and aborts past the limit; `slot`s record operand values a parent's cost depends on.
 * Returns the slots, which the caller clears after each evaluation.
 */
function instrument(
  root: CelNode,
  state: CostState,
  regexes: Map<CelNode, Inst[]>,
): { v: unknown }[] {
  const plans = new Map<CelNode, Plan>()
  const slots: { v: unknown }[] = []
  const plan = (n: CelNode): Plan => {
    let p = plans.get(n)
    if (!p) plans.set(n, (p = { cost: 0 }))
    return p
  }
  const slot = (n: CelNode): { v: unknown } => {
    const p = plan(n)
    if (!p.slot) slots.push((p.slot = { v: undefined }))
    return p.slot
  }
  const macros = new Map<CelNode, string>()

  walk(root, (n) => {
    const a = n.args
    switch (n.op) {
      case 'id':
        plan(n).cost += 1
        return
      case 'list':
        if (!isConstant(n)) plan(n).cost += 10
        return
      case 'map':
        if (!isConstant(n)) plan(n).cost += 30
        return
      case '!_':
        plan(n).cost += 1
        return
      case '-_':
        if (a.op !== 'value') plan(n).cost += 1
        return
      case 'comprehension': {
        const [step, result] = MACRO_COSTS[macros.get(n) ?? ''] ?? [1, 0]
        plan(a.step).cost += step
        plan(n).cost += result
        return
      }
      case 'call':
      case 'rcall': {
        if (n.meta.alternate) {
          const fn = a[0] as string
          const argc = n.op === 'rcall' ? a[2].length : a[1].length
          macros.set(n.meta.alternate, fn === 'map' && argc === 3 ? 'map3' : fn)
          return
        }
        if (n.meta.macro) {
          plan(n).cost += 1
          return
        }
        const fn = a[0] as string
        const pattern = matchesPattern(n)
        if (pattern) {
          plan(n).replace = matchesEvaluator(n, state, regexes.get(n))
          return
        }
        if (n.op === 'rcall' && (fn === 'startsWith' || fn === 'endsWith')) {
          const recv = slot(a[1])
          plan(n).dyn = () => traversal(sizeOf(recv.v))
          return
        }
        if (n.op === 'rcall' && fn === 'contains') {
          const recv = slot(a[1])
          const arg = slot(a[2][0])
          plan(n).dyn = () => traversal(sizeOf(recv.v)) * traversal(sizeOf(arg.v))
          return
        }
        plan(n).cost += 1
        return
      }
      case 'in': {
        const right = a[1] as CelNode
        if (isConstant(right)) return
        const r = slot(right)
        plan(n).dyn = () => (Array.isArray(r.v) ? r.v.length : 1)
        return
      }
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const lt = (a[0] as CelNode).checkedType?.name ?? 'dyn'
        const sized =
          /^(string|bytes|dyn|list|map)/.test(lt) &&
          (n.op === '==' || n.op === '!=' || !/^(list|map)/.test(lt))
        if (!sized) {
          plan(n).cost += 1
          return
        }
        const l = slot(a[0])
        const r = slot(a[1])
        plan(n).dyn = () => traversal(Math.min(sizeOf(l.v), sizeOf(r.v)))
        return
      }
      case '+':
        // cel-go prices list concatenation at 1, but it copies here: charge by size
        plan(n).dyn = (r) =>
          typeof r === 'string' || r instanceof Uint8Array
            ? traversal(r.length)
            : Array.isArray(r)
              ? Math.max(1, traversal(r.length))
              : 1
        return
      case '-':
      case '*':
      case '/':
      case '%':
        plan(n).cost += 1
        return
    }
  })

  for (const [n, p] of plans) {
    if (p.cost === 0 && !p.dyn && !p.slot && !p.replace) continue
    const inner = p.replace ?? innerEvaluate(n)
    const { cost, dyn } = p
    const record = p.slot
    n.evaluate = function instrumented(ev, ast, ctx) {
      if (state.exceeded) throw COST_EXCEEDED
      const r = inner(ev, ast, ctx)
      if (record !== undefined) record.v = r
      const add = dyn === undefined ? cost : cost + dyn(r)
      if (add !== 0 && (state.cost += add) > state.limit) {
        state.exceeded = true
        throw COST_EXCEEDED
      }
      return r
    }
  }
  return slots
}

/** innerEvaluate is what cel-js's ASTNode.evaluate would dispatch to for this node. */
function innerEvaluate(n: CelNode): EvalFn {
  const meta = n.meta
  if (meta.alternate) {
    const alt = meta.alternate
    return (ev, _ast, ctx) => alt.evaluate(ev, alt, ctx)
  }
  if (meta.macro) {
    const macro = meta.macro
    return (ev, _ast, ctx) => macro.evaluate(ev, macro, ctx)
  }
  const f = meta.evaluate
  return (ev, ast, ctx) => f.call(n, ev, ast, ctx)
}

/** matchesEvaluator evaluates `s.matches(p)` / `matches(s, p)` with the linear-time matcher. */
function matchesEvaluator(n: CelNode, state: CostState, literal: Inst[] | undefined): EvalFn {
  const [subjectNode, patternNode] =
    n.op === 'rcall' ? [n.args[1] as CelNode, n.args[2][0] as CelNode] : (n.args[1] as CelNode[])
  return (ev, _ast, ctx) => {
    const s = ev.run(subjectNode, ctx)
    const p = ev.run(patternNode, ctx)
    if (typeof s !== 'string' || typeof p !== 'string') {
      throw new EvaluationError('no such overload: matches')
    }
    // cel-go: ceil((1 + |s|)·0.1) · ceil(|p|·0.25)
    const add = Math.ceil((1 + s.length) * 0.1) * Math.ceil(p.length * 0.25)
    if ((state.cost += add) > state.limit) {
      state.exceeded = true
      throw COST_EXCEEDED
    }
    try {
      return runRegex(literal ?? cachedRegex(p), s)
    } catch (err) {
      throw new EvaluationError((err as Error).message)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// protobuf size of a google.protobuf.Struct (what OpenFGA's context size limit measures)
// ---------------------------------------------------------------------------------------------

function varintSize(n: number): number {
  let size = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    size++
  }
  return size
}

/** field is tag (1 byte for field numbers < 16) + length prefix + payload. */
function field(payload: number): number {
  return 1 + varintSize(payload) + payload
}

function valueSize(v: unknown): number {
  if (v === null || v === undefined) return 2 // null_value = 0
  switch (typeof v) {
    case 'number':
      return 9 // fixed64 number_value
    case 'boolean':
      return 2
    case 'string':
      return field(Buffer.byteLength(v, 'utf8'))
    case 'object': {
      if (Array.isArray(v)) {
        let list = 0
        for (const item of v) list += field(valueSize(item))
        return field(list)
      }
      return field(structSize(v as Record<string, unknown>))
    }
  }
  return 2
}

function structSize(o: Record<string, unknown>): number {
  let size = 0
  for (const key of Object.keys(o)) {
    if (o[key] === undefined) continue
    // map entry: key (field 1) and value (field 2) are always written
    size += field(field(Buffer.byteLength(key, 'utf8')) + field(valueSize(o[key])))
  }
  return size
}
