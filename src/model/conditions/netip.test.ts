import { describe, expect, it } from 'vitest'
import {
  compile,
  compileError,
  conversionError,
  errorMessage,
  FALSE,
  PREFIX,
  t,
  TRUE,
} from './test-support.ts'

describe('ipaddress', () => {
  const c = compile('user_ip.in_cidr(cidr)', { user_ip: t('ipaddress'), cidr: t('string') })
  const inCidr = (ip: string, cidr: string) => c.evaluate({ user_ip: ip, cidr }, undefined)

  it('tests IPv4 and IPv6 membership like netip.Prefix.Contains', () => {
    expect(inCidr('10.1.2.3', '10.0.0.0/8')).toEqual(TRUE)
    expect(inCidr('11.1.2.3', '10.0.0.0/8')).toEqual(FALSE)
    expect(inCidr('192.168.0.255', '192.168.0.0/24')).toEqual(TRUE)
    expect(inCidr('192.168.1.0', '192.168.0.0/24')).toEqual(FALSE)
    expect(inCidr('1.2.3.4', '0.0.0.0/0')).toEqual(TRUE)
    expect(inCidr('2001:db8::1', '2001:db8::/32')).toEqual(TRUE)
    expect(inCidr('2001:db9::1', '2001:db8::/32')).toEqual(FALSE)
    expect(inCidr('::ffff:10.0.0.1', '::ffff:10.0.0.0/104')).toEqual(TRUE)
    // different families and zoned addresses never match
    expect(inCidr('::ffff:10.0.0.1', '10.0.0.0/8')).toEqual(FALSE)
    expect(inCidr('10.0.0.1', '::/0')).toEqual(FALSE)
    expect(inCidr('fe80::1%eth0', 'fe80::/10')).toEqual(FALSE)
  })

  it('reports malformed CIDRs and addresses', () => {
    expect(errorMessage(inCidr('10.1.2.3', '10.0.0/8'))).toBe(
      `${PREFIX}failed to evaluate condition expression: '10.0.0/8' is a malformed CIDR string`,
    )
    expect(errorMessage(inCidr('10.1.2.3', '10.0.0.0/33'))).toContain('malformed CIDR')
    expect(errorMessage(inCidr('10.1.2.3', '10.0.0.0/08'))).toContain('malformed CIDR')
    for (const bad of ['10.0.0', '010.0.0.1', '256.0.0.1', 'example.com', '1::2::3', '::1%']) {
      expect(conversionError(c, 'user_ip', bad)).toBe(
        `expected a well-formed IP address, but found: '${bad}'`,
      )
    }
    expect(conversionError(c, 'user_ip', 1)).toBe(
      "expected an ipaddress string, but found: float64 '1'",
    )
  })

  it('supports ipaddress() literals and equality', () => {
    expect(compile('ipaddress("192.168.0.1").in_cidr("192.168.0.0/24")').evaluate({}, {})).toEqual(
      TRUE,
    )
    expect(
      errorMessage(compile('ipaddress("192.168.0").in_cidr("192.168.0.0/24")').evaluate({}, {})),
    ).toBe(
      `${PREFIX}failed to evaluate condition expression: ` +
        'ParseAddr("192.168.0"): IPv4 address too short',
    )
    const eq = compile('a == ipaddress("::1")', { a: t('ipaddress') })
    expect(eq.evaluate({ a: '0:0::1' }, undefined)).toEqual(TRUE)
    expect(eq.evaluate({ a: '::2' }, undefined)).toEqual(FALSE)
    expect(compileError('ipaddress(true).in_cidr("192.168.0.0/24")')).toBe(
      "failed to compile expression on condition 'c' - " +
        "ERROR: c:1:10: found no matching overload for 'ipaddress' applied to '(bool)'\n" +
        ' | ipaddress(true).in_cidr("192.168.0.0/24")\n' +
        ' | .........^',
    )
  })
})
