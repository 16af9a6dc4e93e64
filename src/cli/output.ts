/**
 * How the `pemba` commands print an answer: JSON for scripts, or aligned tables and indented
 * trees for people. A command with output options (addOutputOptions) prints JSON when asked
 * (`--json`) and by default whenever stdout is not a terminal (a pipe, a file, CI), so that
 * `pemba read | jq` works without a flag; `--table` asks for the table even then.
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
 * table aligns `rows` under `header` in columns two spaces apart; the last column is not
 * padded, so no line ends in spaces. Cells are printed as given (one line each).
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, col) => rows.reduce((w, row) => Math.max(w, (row[col] ?? '').length), h.length))
  const line = (cells: readonly string[]) =>
    header
      .map((_, col) => {
        const cell = cells[col] ?? ''
        return col === header.length - 1 ? cell : cell.padEnd(widths[col])
      })
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

/** A node of a tree to print: its line, and the nodes under it. */
export interface TreeNode {
  label: string
  children?: TreeNode[]
}

/**
 * tree draws `root` with one node a line, children indented under their parent with guides:
 *
 *     document:1#viewer
 *     ├── union
 *     │   ├── user:anne
 *     │   └── document:1#editor
 *     └── …
 */
export function tree(root: TreeNode): string {
  const lines = [root.label]
  const walk = (node: TreeNode, prefix: string) => {
    const children = node.children ?? []
    children.forEach((child, i) => {
      const last = i === children.length - 1
      lines.push(`${prefix}${last ? '└── ' : '├── '}${child.label}`)
      walk(child, prefix + (last ? '    ' : '│   '))
    })
  }
  walk(root, '')
  return lines.join('\n')
}
