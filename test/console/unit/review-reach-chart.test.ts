import { describe, expect, it } from 'vitest'
import { barFraction, countLabel, parseScale, shapeReach, truncationText, type ReachRelation } from '../../../console/src/review/reach-chart.ts'

const rel = (type: string, relation: string, count: number, extra: Partial<ReachRelation> = {}): ReachRelation => ({
  type,
  relation,
  count,
  objects: Array.from({ length: Math.min(count, 10) }, (_, i) => `${type}:o${i}`),
  truncated: false,
  ...extra,
})

describe('barFraction', () => {
  it('is linear by default: the count over the largest', () => {
    expect(barFraction(50, 200, 'linear')).toBe(0.25)
    expect(barFraction(200, 200, 'linear')).toBe(1)
  })
  it('is log10(1+count)/log10(1+max) on the log scale', () => {
    expect(barFraction(9, 99, 'log')).toBeCloseTo(0.5, 10)
    expect(barFraction(99, 99, 'log')).toBe(1)
    // A small count stays visible next to a large one.
    expect(barFraction(3, 3000, 'log')).toBeGreaterThan(0.15)
    expect(barFraction(3, 3000, 'linear')).toBeLessThan(0.002)
  })
  it('is 0 for nothing reached, an empty chart, or nonsense', () => {
    expect(barFraction(0, 10, 'linear')).toBe(0)
    expect(barFraction(0, 10, 'log')).toBe(0)
    expect(barFraction(5, 0, 'linear')).toBe(0)
    expect(barFraction(Number.NaN, 10, 'linear')).toBe(0)
    expect(barFraction(-3, 10, 'log')).toBe(0)
  })
  it('never exceeds 1', () => {
    expect(barFraction(20, 10, 'linear')).toBe(1)
    expect(barFraction(20, 10, 'log')).toBe(1)
  })
})

describe('shapeReach', () => {
  const answer = [
    rel('group', 'member', 4),
    rel('folder', 'parent', 0),
    rel('folder', 'viewer', 20),
    rel('document', 'owner', 5),
    rel('document', 'view', 80),
  ]

  it('groups by type in the API order and keeps each type\'s relations in order', () => {
    const chart = shapeReach(answer)
    expect(chart.groups.map((g) => g.type)).toEqual(['group', 'folder', 'document'])
    expect(chart.groups[1].bars.map((b) => b.relation)).toEqual(['parent', 'viewer'])
    expect(chart.groups.map((g) => g.max)).toEqual([4, 20, 80])
  })

  it('scales every bar against the largest count of the whole chart', () => {
    const chart = shapeReach(answer)
    expect(chart.max).toBe(80)
    const fractions = Object.fromEntries(chart.groups.flatMap((g) => g.bars.map((b) => [`${g.type}#${b.relation}`, b.fraction])))
    expect(fractions).toEqual({
      'group#member': 0.05,
      'folder#parent': 0,
      'folder#viewer': 0.25,
      'document#owner': 0.0625,
      'document#view': 1,
    })
    const log = shapeReach(answer, 'log')
    expect(log.groups[0].bars[0].fraction).toBeCloseTo(Math.log10(5) / Math.log10(81), 10)
  })

  it('counts what reaches something, what was cut and what failed', () => {
    const chart = shapeReach([
      ...answer,
      rel('document', 'edit', 100000, { truncated: true, truncated_by: 'max_results' }),
      rel('document', 'blocked', 7, { error: 'condition x needs context' }),
    ])
    expect(chart.reaching).toBe(5)
    expect(chart.truncated).toBe(1)
    expect(chart.errors).toBe(1)
    const doc = chart.groups[2].bars
    expect(doc[2]).toMatchObject({ relation: 'edit', label: '100,000+', truncated: true, truncatedBy: 'max_results', fraction: 1 })
    // A failed relation is no count: no bar, and it does not set the scale.
    expect(doc[3]).toMatchObject({ relation: 'blocked', count: 0, fraction: 0, label: 'error', error: 'condition x needs context' })
  })

  it('an identity reaching nothing is a chart of empty bars, not a division by zero', () => {
    const chart = shapeReach([rel('group', 'member', 0), rel('document', 'view', 0)])
    expect(chart.max).toBe(0)
    expect(chart.reaching).toBe(0)
    expect(chart.groups.flatMap((g) => g.bars.map((b) => b.fraction))).toEqual([0, 0])
  })

  it('an empty answer is an empty chart', () => {
    expect(shapeReach([])).toEqual({ groups: [], max: 0, truncated: 0, errors: 0, reaching: 0 })
  })
})

describe('labels', () => {
  it('formats counts with separators and marks lower bounds', () => {
    expect(countLabel(0, false)).toBe('0')
    expect(countLabel(1234567, false)).toBe('1,234,567')
    expect(countLabel(100000, true)).toBe('100,000+')
  })
  it('names why a count was cut', () => {
    expect(truncationText('max_results')).toMatch(/PEMBA_LIST_MAX_RESULTS/)
    expect(truncationText('deadline')).toMatch(/PEMBA_LIST_DEADLINE_MS/)
    expect(truncationText(undefined)).toBe('cut')
  })
  it('reads the scale from the URL, linear unless log', () => {
    expect(parseScale('log')).toBe('log')
    expect(parseScale('linear')).toBe('linear')
    expect(parseScale(null)).toBe('linear')
    expect(parseScale('LOG')).toBe('linear')
  })
})
