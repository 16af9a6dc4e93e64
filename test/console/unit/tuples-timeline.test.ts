import { describe, expect, it } from 'vitest'
import { groupChanges, minuteOf, operationLabel } from '../../../console/src/tuples/timeline.ts'
import type { TupleChange } from '../../../console/src/types.ts'

const at = (y: number, mo: number, d: number, h: number, mi: number, s: number) => new Date(y, mo - 1, d, h, mi, s).toISOString()
const change = (timestamp: string, op: 'w' | 'd', object = 'document:d1'): TupleChange => ({
  tuple_key: { object, relation: 'viewer', user: 'user:u1' },
  operation: op === 'w' ? 'TUPLE_OPERATION_WRITE' : 'TUPLE_OPERATION_DELETE',
  timestamp,
})

describe('the change timeline', () => {
  it('groups consecutive changes by local minute, counting writes and deletes', () => {
    const changes = [
      change(at(2026, 12, 7, 1, 2, 3), 'w'),
      change(at(2026, 12, 7, 1, 2, 59), 'd'),
      change(at(2026, 12, 7, 1, 3, 0), 'w'),
      change(at(2026, 12, 7, 1, 3, 30), 'w'),
      change(at(2026, 12, 8, 1, 3, 30), 'd'),
    ]
    const groups = groupChanges(changes)
    expect(groups.map((g) => [g.minute, g.writes, g.deletes, g.changes.length])).toEqual([
      ['2026-12-07 01:02', 1, 1, 2],
      ['2026-12-07 01:03', 2, 0, 2],
      ['2026-12-08 01:03', 0, 1, 1],
    ])
    expect(groups[0].first).toBe(changes[0].timestamp)
    expect(groups.flatMap((g) => g.changes)).toEqual(changes)
  })

  it('keeps the feed order: a minute seen again later is a new group', () => {
    const groups = groupChanges([change(at(2026, 1, 1, 0, 0, 1), 'w'), change(at(2026, 1, 1, 0, 1, 1), 'w'), change(at(2026, 1, 1, 0, 0, 2), 'd')])
    expect(groups.map((g) => g.minute)).toEqual(['2026-01-01 00:00', '2026-01-01 00:01', '2026-01-01 00:00'])
  })

  it('answers nothing for no changes, and labels operations', () => {
    expect(groupChanges([])).toEqual([])
    expect(minuteOf('garbage')).toBe('garbage')
    expect(operationLabel('TUPLE_OPERATION_WRITE')).toBe('Written')
    expect(operationLabel('TUPLE_OPERATION_DELETE')).toBe('Deleted')
  })
})
