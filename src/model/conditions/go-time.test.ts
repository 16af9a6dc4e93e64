import { describe, expect, it } from 'vitest'
import { parseGoDuration, parseRFC3339 } from './go-time.ts'

describe('Go time parsing', () => {
  it('parseGoDuration is time.ParseDuration', () => {
    expect(parseGoDuration('1h')).toBe(3_600_000_000_000n)
    expect(parseGoDuration('1.5s')).toBe(1_500_000_000n)
    expect(parseGoDuration('-1.5h')).toBe(-5_400_000_000_000n)
    expect(parseGoDuration('1µs2ns')).toBe(1_002n)
    expect(parseGoDuration('.5s')).toBe(500_000_000n)
    expect(parseGoDuration('0')).toBe(0n)
    for (const bad of ['', '1', 's', '.s', '1d', '1h ', '+', '9223372036854775808ns', '3000000h']) {
      expect(parseGoDuration(bad), bad).toBeNull()
    }
  })

  it('parseRFC3339 is time.Parse(time.RFC3339, …)', () => {
    expect(parseRFC3339('1972-01-01T10:00:20.021Z')?.toISOString()).toBe('1972-01-01T10:00:20.021Z')
    for (const bad of [
      '2023-02-29T00:00:00Z',
      '2023-01-01 00:00:00Z',
      '2023-01-01T00:00:00',
      '2023-01-01T00:00:60Z',
      '2023-01-01T00:00:00+0100',
    ]) {
      expect(parseRFC3339(bad), bad).toBeNull()
    }
  })
})
