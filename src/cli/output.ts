/**
 * How the `pemba` commands print an answer: JSON for scripts, or aligned tables and indented
 * trees for people. A command with output options (addOutputOptions) prints JSON when asked
 * (`--json`) and by default whenever stdout is not a terminal (a pipe, a file, CI), so that
 * `pemba read | jq` works without a flag; `--table` asks for the table even then.
 *
 * Tables and trees show strings the server sent (object ids, user names, tokens), which may
 * hold terminal escape sequences: their control characters are printed escaped (`\x1b`), so a
 * stored id cannot rewrite the terminal. JSON needs no such care (JSON.stringify escapes them).
 *
 * @module
 */
import type { Command } from 'commander'
import { Option } from 'commander'

/** What a command prints: a table (or tree) for a person, or the API's JSON for a script. */
export type OutputMode = 'table' | 'json'

/** addOutputOptions adds `--json` and `--table` (one or the other) to `cmd`. */
export function addOutputOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--json', "print the server's answer as JSON (the default when stdout is not a terminal)").conflicts('table'))
    .addOption(new Option('--table', 'print a table (or tree) even when stdout is not a terminal'))
}

/**
 * outputMode: `--json` or `--table` when given, else a table on a terminal and JSON otherwise.
 * `isTTY` is stdout's (process.stdout.isTTY); tests pass their own.
 */
export function outputMode(opts: { json?: boolean; table?: boolean }, isTTY: boolean = process.stdout.isTTY === true): OutputMode {
  if (opts.json) return 'json'
  if (opts.table) return 'table'
  return isTTY ? 'table' : 'json'
}

/**
 * Control characters (C0, DEL, C1) and the Unicode bidirectional overrides, which make a
 * terminal run a command or show text other than what is there.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g

/** printable: `text` with its control characters escaped (`\x1b`, `\u202e`), for a terminal. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0)
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}

/**
 * table aligns `rows` under `header` in columns two spaces apart; the last column is not
 * padded, so no line ends in spaces. Cells are printed on one line each, control characters
 * escaped (printable).
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return new TableStream(header).rows(rows).join('\n')
}

/**
 * TableStream prints a table whose rows come in batches (pages) without holding them: the
 * header comes with the first batch, and each batch is aligned to the widest cell seen so far
 * (columns only widen, so earlier lines stay as printed).
 */
export class TableStream {
  private readonly header: readonly string[]
  private readonly widths: number[]
  private started = false

  constructor(header: readonly string[]) {
    this.header = header.map(printable)
    this.widths = this.header.map((h) => h.length)
  }

  /** rows: the lines of one batch (with the header before the first batch's). */
  rows(batch: readonly (readonly string[])[]): string[] {
    const cells = batch.map((row) => this.header.map((_, col) => printable(row[col] ?? '')))
    for (const row of cells) row.forEach((cell, col) => (this.widths[col] = Math.max(this.widths[col], cell.length)))
    const line = (row: readonly string[]) =>
      row
        .map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(this.widths[col])))
        .join('  ')
        .trimEnd()
    const lines = cells.map(line)
    if (!this.started) lines.unshift(line(this.header))
    this.started = true
    return lines
  }
}

/** A node of a tree to print: its line, and the nodes under it. */
export interface TreeNode {
  label: string
  children?: TreeNode[]
}

/**
 * tree draws `root` with one node a line (control characters escaped), children indented under
 * their parent with guides:
 *
 *     document:1#viewer
 *     ├── union
 *     │   ├── user:anne
 *     │   └── document:1#editor
 *     └── …
 */
export function tree(root: TreeNode): string {
  const lines = [printable(root.label)]
  const walk = (node: TreeNode, prefix: string) => {
    const children = node.children ?? []
    children.forEach((child, i) => {
      const last = i === children.length - 1
      lines.push(`${prefix}${last ? '└── ' : '├── '}${printable(child.label)}`)
      walk(child, prefix + (last ? '    ' : '│   '))
    })
  }
  walk(root, '')
  return lines.join('\n')
}
