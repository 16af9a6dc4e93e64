/**
 * The change feed as a timeline (pure, unit-tested in test/console/unit/tuples-timeline.test.ts):
 * consecutive changes grouped by the minute they happened in (the browser's local time), in the
 * feed's order (oldest first, as the API pages it), each group counting its writes and deletes.
 */
import type { TupleChange } from '../types.ts'

export interface ChangeGroup {
  /** `YYYY-MM-DD HH:MM`, local time: the group's heading and key. */
  minute: string
  /** ISO time of the group's first change. */
  first: string
  changes: TupleChange[]
  writes: number
  deletes: number
}

const pad = (n: number) => String(n).padStart(2, '0')

/** minuteOf: the local minute of an ISO time (`YYYY-MM-DD HH:MM`), or the text itself when unreadable. */
export function minuteOf(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** groupChanges: runs of changes in the same minute; a minute seen again later starts a new group. */
export function groupChanges(changes: readonly TupleChange[]): ChangeGroup[] {
  const groups: ChangeGroup[] = []
  for (const c of changes) {
    const minute = minuteOf(c.timestamp)
    let g = groups[groups.length - 1]
    if (!g || g.minute !== minute) {
      g = { minute, first: c.timestamp, changes: [], writes: 0, deletes: 0 }
      groups.push(g)
    }
    g.changes.push(c)
    if (c.operation === 'TUPLE_OPERATION_DELETE') g.deletes++
    else g.writes++
  }
  return groups
}

/** operationLabel: how a change reads ("Written", "Deleted"). */
export function operationLabel(op: TupleChange['operation']): 'Written' | 'Deleted' {
  return op === 'TUPLE_OPERATION_DELETE' ? 'Deleted' : 'Written'
}
