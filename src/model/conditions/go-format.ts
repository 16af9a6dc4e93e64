/**
 * Go-compatible formatting of the values quoted in OpenFGA's condition messages: `%T`, `%v`,
 * float64 `%v`, `big.Float.String()` and `strconv.Quote`, as Go's fmt prints decoded JSON, so
 * that Pemba's messages are byte-for-byte OpenFGA's.
 *
 * @module
 */


/** isDigit tells whether c is an ASCII decimal digit (Go's parsers accept no other digits). */
export function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9'
}

/** goType is `%T` of a value decoded from a protobuf Struct (`structpb.Value.AsInterface`). */
export function goType(v: unknown): string {
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
export function goTypeS(v: unknown): string {
  return v === null || v === undefined ? '%!s(<nil>)' : goType(v)
}

/** goValue is `%v` of a decoded JSON value. */
export function goValue(v: unknown): string {
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
export function goFloatV(x: number): string {
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
export function formatF(digits: string, dp: number, frac: number): string {
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
export function goBigFloatString(neg: boolean, digits: string, dp: number): string {
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

/** float64Parts splits a finite double's magnitude into mant·2^exp, mant an integer. */
export function float64Parts(x: number): { mant: bigint; exp: number } {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, Math.abs(x))
  const bits = view.getBigUint64(0)
  const biased = Number(bits >> 52n)
  const fraction = bits & ((1n << 52n) - 1n)
  if (biased === 0) return { mant: fraction, exp: -1074 }
  return { mant: fraction | (1n << 52n), exp: biased - 1075 }
}

/** exactDecimal gives the exact decimal expansion of a finite double as (digits, exponent). */
function exactDecimal(x: number): { digits: string; exp: number } {
  const { mant, exp: e2 } = float64Parts(x)
  if (e2 >= 0) return { digits: (mant << BigInt(e2)).toString(), exp: 0 }
  return { digits: (mant * 5n ** BigInt(-e2)).toString(), exp: e2 }
}

export function doubleString(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf'
  const { digits, exp } = exactDecimal(x)
  const trimmed = digits.replace(/^0+/, '')
  return goBigFloatString(x < 0, trimmed, trimmed.length + exp)
}

/** goQuote is strconv.Quote for the ASCII-ish strings that end up in netip errors. */
export function goQuote(s: string): string {
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
