/**
 * heap-summary: where a V8 heap snapshot's bytes are, summed by what holds them (an object's
 * constructor name, or the node type: strings, arrays, code, closures by function name), and,
 * given two snapshots, what grew between them.
 *
 *   node --import tsx bench/heap-summary.ts <early.heapsnapshot> [<late.heapsnapshot>] [--top 30]
 *
 * `npm run bench -- --soak --soak-heap-snapshot` writes such a pair (bench-data/soak-*-early and
 * -late). The files of a server with a few hundred MiB of heap run to a GiB, more than one
 * JavaScript string may hold, so the file is scanned in chunks rather than JSON.parse'd: only
 * the `nodes` array (the node fields given in its meta) and the `strings` table are read. Self
 * sizes only (no dominator tree): enough to say which kind of object the heap is made of.
 *
 * @module
 */
import { closeSync, openSync, readSync } from 'node:fs'

interface Summary {
  totalBytes: number
  nodes: number
  /** key → [bytes, count] */
  groups: Map<string, [number, number]>
}

/** A reader of a file's bytes one at a time, in large chunks. */
class ByteReader {
  readonly #fd: number
  readonly #buf = Buffer.alloc(1 << 24)
  #len = 0
  #pos = 0
  constructor(path: string) {
    this.#fd = openSync(path, 'r')
  }
  next(): number {
    if (this.#pos >= this.#len) {
      this.#len = readSync(this.#fd, this.#buf, 0, this.#buf.length, null)
      this.#pos = 0
      if (this.#len === 0) return -1
    }
    return this.#buf[this.#pos++]
  }
  /** Reads up to and including `marker` (ASCII); false at the end of the file. */
  skipPast(marker: string): boolean {
    let matched = 0
    for (;;) {
      const c = this.next()
      if (c === -1) return false
      if (c === marker.charCodeAt(matched)) {
        if (++matched === marker.length) return true
      } else matched = c === marker.charCodeAt(0) ? 1 : 0
    }
  }
  close(): void {
    closeSync(this.#fd)
  }
}

/** The snapshot's meta (it comes first, and is small): its fields and the node type names. */
function readMeta(path: string): { fields: string[]; types: string[] } {
  const r = new ByteReader(path)
  const bytes: number[] = []
  r.skipPast('"meta":')
  let depth = 0
  for (;;) {
    const c = r.next()
    bytes.push(c)
    if (c === 0x7b) depth++
    if (c === 0x7d && --depth === 0) break
  }
  r.close()
  const meta = JSON.parse(Buffer.from(bytes).toString('utf8')) as { node_fields: string[]; node_types: [string[], ...unknown[]] }
  return { fields: meta.node_fields, types: meta.node_types[0] }
}

function summarise(path: string): Summary {
  const { fields, types } = readMeta(path)
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  // 1. the nodes: integers, `width` per node
  const r = new ByteReader(path)
  if (!r.skipPast('"nodes":[')) throw new Error(`${path}: no nodes array`)
  let nodes = new Float64Array(1 << 22)
  let count = 0
  let n = 0
  let inNumber = false
  for (;;) {
    const c = r.next()
    if (c >= 0x30 && c <= 0x39) {
      n = n * 10 + (c - 0x30)
      inNumber = true
      continue
    }
    if (inNumber) {
      if (count === nodes.length) {
        const bigger = new Float64Array(nodes.length * 2)
        bigger.set(nodes)
        nodes = bigger
      }
      nodes[count++] = n
      n = 0
      inNumber = false
    }
    if (c === 0x5d || c === -1) break
  }
  // 2. the strings: JSON string tokens, one after another
  if (!r.skipPast('"strings":[')) throw new Error(`${path}: no strings table`)
  const strings: string[] = []
  let token: number[] = []
  let inString = false
  let escaped = false
  for (;;) {
    const c = r.next()
    if (c === -1) break
    if (!inString) {
      if (c === 0x22) {
        inString = true
        token = [c]
      } else if (c === 0x5d) break
      continue
    }
    token.push(c)
    if (escaped) escaped = false
    else if (c === 0x5c) escaped = true
    else if (c === 0x22) {
      inString = false
      // Only names are needed, and long strings are text held by the program: keep a prefix.
      strings.push(token.length > 200 ? '(long)' : (JSON.parse(Buffer.from(token).toString('utf8')) as string))
    }
  }
  r.close()
  const groups = new Map<string, [number, number]>()
  let total = 0
  for (let i = 0; i < count; i += width) {
    const type = types[nodes[i + typeAt]] ?? '?'
    const size = nodes[i + sizeAt]
    total += size
    const name = strings[nodes[i + nameAt]] ?? '?'
    const key =
      type === 'object' || type === 'closure' || type === 'native'
        ? `${type} ${name.length > 60 ? name.slice(0, 60) + '…' : name}`
        : `(${type})`
    const g = groups.get(key)
    if (g) {
      g[0] += size
      g[1]++
    } else groups.set(key, [size, 1])
  }
  return { totalBytes: total, nodes: count / width, groups }
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`

function main(): void {
  const args = process.argv.slice(2)
  const topAt = args.indexOf('--top')
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 30
  const [earlyPath, latePath] = args
  if (!earlyPath) throw new Error('usage: heap-summary <snapshot> [<later snapshot>] [--top N]')
  const early = summarise(earlyPath)
  console.log(`${earlyPath}: ${mib(early.totalBytes)} in ${early.nodes.toLocaleString('en')} nodes`)
  const rows = (s: Summary) => [...s.groups].sort((a, b) => b[1][0] - a[1][0]).slice(0, top)
  for (const [k, [bytes, c]] of rows(early)) console.log(`  ${mib(bytes).padStart(12)}  ${String(c).padStart(9)}  ${k}`)
  if (!latePath) return
  const late = summarise(latePath)
  console.log(`\n${latePath}: ${mib(late.totalBytes)} in ${late.nodes.toLocaleString('en')} nodes`)
  for (const [k, [bytes, c]] of rows(late)) console.log(`  ${mib(bytes).padStart(12)}  ${String(c).padStart(9)}  ${k}`)
  console.log(`\ngrowth, early → late (by bytes):`)
  const growth = [...late.groups].map(([k, [bytes, c]]) => {
    const e = early.groups.get(k) ?? [0, 0]
    return [k, bytes - e[0], c - e[1]] as const
  })
  for (const [k, bytes, c] of growth.sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`  ${mib(bytes).padStart(12)}  ${String(c).padStart(9)}  ${k}`)
}

main()
