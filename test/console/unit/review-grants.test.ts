import { describe, expect, it } from 'vitest'
import { grantId, grantStatus, percent, reviewSubject, summarize, type ReviewedGrant } from '../../../console/src/review/grants.ts'

const key = (object: string, relation = 'owner', user = 'agent:a') => ({ user, relation, object })
const grant = (object: string, unused: boolean, reason: string, revocable = unused): ReviewedGrant => ({
  tuple_key: key(object),
  granted_at: '2026-09-01T08:00:00Z',
  last_used_at: unused ? null : '2026-11-28T16:02:11Z',
  unused,
  reason,
  ...(revocable ? { delete_request: { deletes: { tuple_keys: [key(object)] } } } : {}),
})

describe('access review helpers', () => {
  it('grantStatus: UNUSED, used or new (too new to judge), with the API\'s reason', () => {
    expect(grantStatus({ unused: true, reason: 'never used' })).toEqual({ label: 'UNUSED', tone: 'bad', reason: 'never used' })
    expect(grantStatus({ unused: true, reason: 'not used within the window' })).toEqual({
      label: 'UNUSED',
      tone: 'bad',
      reason: 'not used within the window',
    })
    expect(grantStatus({ unused: false, reason: 'used within the window' })).toEqual({ label: 'used', tone: 'ok', reason: 'used within the window' })
    // A grant newer than the window has not had the whole window to be used: not "used".
    expect(grantStatus({ unused: false, reason: 'granted within the window' })).toEqual({
      label: 'new',
      tone: 'neutral',
      reason: 'granted within the window',
    })
  })

  it('summarize counts the unused grants', () => {
    const grants = [
      grant('doc:1', true, 'never used'),
      grant('doc:2', false, 'used within the window'),
      grant('doc:3', true, 'not used within the window'),
      grant('doc:4', true, 'never used', false),
    ]
    expect(summarize(grants)).toEqual({ total: 4, unused: 3 })
    expect(summarize([])).toEqual({ total: 0, unused: 0 })
  })

  it('grantId tells apart grants differing only by condition or expiry', () => {
    const plain = grantId(key('doc:1'))
    const conditional = grantId({ ...key('doc:1'), condition: { name: 'in_hours' } })
    const expiring = grantId({ ...key('doc:1'), expires_at: '2027-01-01T00:00:00Z' })
    expect(new Set([plain, conditional, expiring]).size).toBe(3)
    expect(plain).toBe('doc:1#owner@agent:a')
  })

  it('percent shows shares as whole percents, one decimal below 10%, never rounded to 0% or 100%', () => {
    expect(percent(0)).toBe('0%')
    expect(percent(1)).toBe('100%')
    expect(percent(0.5)).toBe('50%')
    expect(percent(2 / 3)).toBe('67%')
    expect(percent(0.0333)).toBe('3.3%')
    expect(percent(0.05)).toBe('5%')
    expect(percent(Number.NaN)).toBe('0%')
    // 249 of 250 unused is not all of them; 1 of 5000 is not none.
    expect(percent(249 / 250)).toBe('99%')
    expect(percent(0.9999)).toBe('99%')
    expect(percent(1 / 5000)).toBe('<0.1%')
    expect(percent(0.001)).toBe('0.1%')
    expect(percent(0.0996)).toBe('9.9%')
  })

  it('reviewSubject reads the identity and the type from the URL, trimmed, empty as absent', () => {
    expect(reviewSubject(new URLSearchParams('user=%20agent:a%20&type='))).toEqual({ user: 'agent:a', type: undefined })
    expect(reviewSubject(new URLSearchParams('type=agent'))).toEqual({ user: undefined, type: 'agent' })
    expect(reviewSubject(new URLSearchParams(''))).toEqual({ user: undefined, type: undefined })
  })
})
