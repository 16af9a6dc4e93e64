import { decodeTime, ulid } from 'ulid'
import { describe, expect, it } from 'vitest'
import { diffRows, ulidTime, unified, type DiffGap, type DiffRow } from '../../../console/src/model/diff.ts'

describe('the version diff', () => {
  it('marks added, removed and kept lines with both line numbers', () => {
    const before = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n'
    const after = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define owner: [user]\n    define viewer: [user] or owner\n'
    const d = diffRows(before, after)
    expect([d.added, d.removed]).toEqual([2, 1])
    expect(d.rows.map((r) => `${r.mark}${r.oldLine ?? '-'}/${r.newLine ?? '-'} ${r.text}`)).toEqual([
      ' 1/1 model',
      ' 2/2   schema 1.1',
      ' 3/3 type user',
      ' 4/4 type doc',
      ' 5/5   relations',
      '\u22126/-     define viewer: [user]',
      '+-/6     define owner: [user]',
      '+-/7     define viewer: [user] or owner',
    ])
    expect(d.rows.filter((r) => r.kind === 'added').every((r) => r.mark === '+' && r.oldLine === undefined)).toBe(true)
  })

  it('sees no change between equal texts, whatever their line endings and final newline', () => {
    const d = diffRows('type user\r\ntype doc', 'type user\ntype doc\n')
    expect([d.added, d.removed, d.rows.length]).toEqual([0, 0, 2])
    expect(d.rows.every((r) => r.kind === 'same' && r.mark === ' ')).toBe(true)
  })

  it('diffs from and to an empty text', () => {
    expect(diffRows('', 'a\nb\n').rows.map((r) => r.kind)).toEqual(['added', 'added'])
    expect(diffRows('a\n', '').removed).toBe(1)
  })
})

describe('the unified view', () => {
  const show = (items: (DiffRow | DiffGap)[]) => items.map((r) => (r.kind === 'gap' ? `…${r.count}` : `${r.mark}${r.text}`))
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `l${i + 1}`).join('\n')

  it('keeps three unchanged lines around each change and folds the rest into gaps', () => {
    const before = lines(20)
    const after = before.replace('l10', 'L10').replace('l11\n', '')
    expect(show(unified(diffRows(before, after).rows))).toEqual([
      '…6', ' l7', ' l8', ' l9', '\u2212l10', '\u2212l11', '+L10', ' l12', ' l13', ' l14', '…6',
    ])
  })

  it('joins changes whose context meets, and shows every line with an infinite context', () => {
    const before = lines(12)
    const after = before.replace('l2\n', 'l2x\n').replace('l8\n', 'l8x\n')
    const rows = diffRows(before, after).rows
    expect(show(unified(rows))).toEqual([
      ' l1', '\u2212l2', '+l2x', ' l3', ' l4', ' l5', ' l6', ' l7', '\u2212l8', '+l8x', ' l9', ' l10', ' l11', '…1',
    ])
    expect(unified(rows, Infinity)).toEqual(rows)
  })

  it('has nothing to show for equal texts', () => {
    expect(unified(diffRows('a\nb\n', 'a\nb\n').rows)).toEqual([])
  })
})

describe('ulidTime', () => {
  it('reads the time a model id carries', () => {
    const at = Date.UTC(2026, 11, 7, 1, 2, 3, 456)
    const id = ulid(at)
    expect(ulidTime(id)?.toISOString()).toBe('2026-12-07T01:02:03.456Z')
    expect(ulidTime(id.toLowerCase())?.getTime()).toBe(at)
    expect(ulidTime('01ARZ3NDEKTSV4RRFFQ69G5FAV')?.getTime()).toBe(decodeTime('01ARZ3NDEKTSV4RRFFQ69G5FAV'))
  })
  it('answers undefined for what is not a ULID', () => {
    expect(ulidTime('not-a-ulid')).toBeUndefined()
    expect(ulidTime('01ARZ3NDEKTSV4RRFFQ69G5FA')).toBeUndefined()
    expect(ulidTime('01ARZ3NDEKTSV4RRFFQ69G5FAI')).toBeUndefined()
  })
})
