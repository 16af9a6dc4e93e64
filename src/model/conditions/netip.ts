/**
 * IP addresses as Go's `net/netip` parses and compares them, for OpenFGA's `ipaddress`
 * parameter type: `netip.ParseAddr` with its error messages, and the prefix parsing and
 * containment `in_cidr` needs.
 *
 * @module
 */
import { goQuote, isDigit } from './go-format.ts'
import { memoize } from './memoize.ts'


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
export const parsePrefix = memoize((s: string): { ip: IPAddress; bits: number } | null => {
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
export function prefixContains(prefix: { ip: IPAddress; bits: number }, ip: IPAddress): boolean {
  if (ip.zone || prefix.ip.bytes.length !== ip.bytes.length) return false
  let bits = prefix.bits
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff
    if ((prefix.ip.bytes[i] & mask) !== (ip.bytes[i] & mask)) return false
  }
  return true
}

export function ipEqual(a: IPAddress, b: IPAddress): boolean {
  if (a.bytes.length !== b.bytes.length || a.zone !== b.zone) return false
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false
  return true
}
