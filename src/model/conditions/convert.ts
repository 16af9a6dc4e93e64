/**
 * Condition parameter types (OpenFGA's `internal/condition/types`): decoding a parameter's
 * declared type, and converting a JSON context value to the cel-js runtime value with
 * OpenFGA's messages — numbers and numeric strings for int/uint/double (int64 saturates, uint
 * rejects negatives, a double string must be exactly representable as a float64, so
 * `"1.797e+309"` and `"0.1"` fail), Go duration strings, RFC 3339 timestamps, `net/netip`
 * addresses, list<T>, map<T>, any.
 *
 * @module
 */
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator'
import type { ConditionParamTypeRef } from '../types.ts'
import {
  doubleString,
  float64Parts,
  goBigFloatString,
  goFloatV,
  goType,
  goTypeS,
  goValue,
} from './go-format.ts'
import { durationFromNanos, parseGoDuration, parseRFC3339 } from './go-time.ts'
import { memoize } from './memoize.ts'
import { ConversionError, errorText } from './messages.ts'
import { IPAddress, parseAddr } from './netip.ts'

export interface ParamType {
  /** The cel-js type declaration. */
  readonly cel: string
  /** Converts a JSON context value to the cel-js runtime value; throws ConversionError. */
  convert(value: unknown): unknown
}

export const MAX_INT64 = (1n << 63n) - 1n
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
export function decodeParamType(ref: ConditionParamTypeRef): ParamType {
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
  const { mant: m, exp: k } = float64Parts(x)
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
