/**
 * The unified diff between two versions' DSL (jsdiff's diffLines), as rows to render: each line
 * with its mark (`+` added, `−` removed, ` ` kept) and its line numbers in the old and new text.
 * Also the time of a model id (a ULID). Pure: no DOM.
 */
import { diffLines } from 'diff'

export interface DiffRow {
  kind: 'added' | 'removed' | 'same'
  /** `+`, `−` (U+2212) or a space. */
  mark: '+' | '\u2212' | ' '
  text: string
  /** The line number in the old text (removed and kept lines). */
  oldLine?: number
  /** The line number in the new text (added and kept lines). */
  newLine?: number
}

export interface DiffSummary {
  rows: DiffRow[]
  added: number
  removed: number
}

/** diffRows: every line of the two texts, in order, marked. */
export function diffRows(oldText: string, newText: string): DiffSummary {
  const rows: DiffRow[] = []
  let oldLine = 1
  let newLine = 1
  let added = 0
  let removed = 0
  for (const change of diffLines(normalise(oldText), normalise(newText))) {
    const lines = change.value.split('\n')
    if (lines[lines.length - 1] === '') lines.pop()
    for (const text of lines) {
      if (change.added) {
        rows.push({ kind: 'added', mark: '+', text, newLine: newLine++ })
        added++
      } else if (change.removed) {
        rows.push({ kind: 'removed', mark: '\u2212', text, oldLine: oldLine++ })
        removed++
      } else {
        rows.push({ kind: 'same', mark: ' ', text, oldLine: oldLine++, newLine: newLine++ })
      }
    }
  }
  return { rows, added, removed }
}

/** A run of unchanged lines left out of the unified view. */
export interface DiffGap {
  kind: 'gap'
  /** How many lines are left out. */
  count: number
}

/**
 * unified: the rows with `context` unchanged lines kept around each change and the longer
 * unchanged runs replaced by a gap (as `diff -u` shows it). Without changes: no rows at all.
 */
export function unified(rows: DiffRow[], context = 3): (DiffRow | DiffGap)[] {
  const keep = rows.map(() => false)
  rows.forEach((r, i) => {
    if (r.kind === 'same') return
    for (let j = Math.max(0, i - context); j <= Math.min(rows.length - 1, i + context); j++) keep[j] = true
  })
  const out: (DiffRow | DiffGap)[] = []
  rows.forEach((r, i) => {
    if (keep[i]) out.push(r)
    else {
      const last = out[out.length - 1]
      if (last && last.kind === 'gap') last.count++
      else out.push({ kind: 'gap', count: 1 })
    }
  })
  return rows.some((r) => r.kind !== 'same') ? out : []
}

function normalise(text: string): string {
  const t = text.replace(/\r\n?/g, '\n')
  return t === '' || t.endsWith('\n') ? t : `${t}\n`
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** ulidTime: the creation time a ULID (a model id) carries in its first 10 characters, or undefined. */
export function ulidTime(id: string): Date | undefined {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/i.test(id)) return undefined
  let ms = 0
  for (const ch of id.slice(0, 10).toUpperCase()) ms = ms * 32 + CROCKFORD.indexOf(ch)
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? undefined : d
}
