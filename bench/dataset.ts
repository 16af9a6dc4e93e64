/**
 * The benchmark data set: a deterministic Zanzibar-style relationship set plus a fixed mix of
 * check and list-objects requests, for `npm run bench`.
 *
 *   tsx bench/dataset.ts [--scale 1] [--seed 42] [--checks 2000] [--out DIR]
 *
 * This is the project's own implementation of the shared benchmark generator's specification:
 * the same PRNG (mulberry32), the same draws in the same order and the same output formats, so
 * the same (scale, seed, checks) gives byte-identical `tuples.jsonl`, `checks.jsonl` and
 * `lookups.jsonl`. That is what lets the expected answers in `bench/expected/` (computed by
 * another implementation on the shared generator's files) judge Pemba's answers: `run.ts`
 * compares the sha256 of the files with the expected manifest before it compares any answer.
 *
 * Shape at scale 1 (~97k tuples at seed 42): 10k users; 1k groups nested 5 levels deep; 2k
 * folders nested 6 levels deep; 20k documents. Counts scale linearly; the request sets have
 * fixed sizes.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Group levels 0..4: a member of a level-4 group is a member of 5 groups. */
export const GROUP_DEPTH = 5
/** Folder levels 0..5: a document in a level-5 folder has 6 folders above it. */
export const FOLDER_DEPTH = 6

export const DATA_FILES = ['tuples.jsonl', 'checks.jsonl', 'lookups.jsonl'] as const
export type DataFile = (typeof DATA_FILES)[number]

export interface DatasetParams {
  scale: number
  seed: number
  checks: number
}

export interface CheckRequest {
  id: number
  kind: string
  resource: string
  permission: string
  subject: string
}

export interface LookupRequest {
  id: number
  kind: string
  resourceType: string
  permission: string
  subject: string
}

export interface DatasetStats {
  users: number
  groups: number
  folders: number
  documents: number
  groupLevels: number[]
  folderLevels: number[]
  relationships: number
  checks: number
  lookups: number
  checkKinds: Record<string, number>
}

export interface Dataset {
  params: DatasetParams
  /** `object#relation@user`, e.g. `document:d1#viewer@group:g5#member`. */
  tuples: string[]
  checks: CheckRequest[]
  lookups: LookupRequest[]
  stats: DatasetStats
}

export interface Manifest {
  generator: string
  params: DatasetParams
  stats: DatasetStats
  sha256: Partial<Record<string, string>>
}

interface Rng {
  next(): number
  /** 0..n-1 */
  int(n: number): number
  /** lo..hi */
  range(lo: number, hi: number): number
  pick<T>(arr: readonly T[]): T
  chance(p: number): boolean
}

/** mulberry32: a small, fast, deterministic 32-bit PRNG. */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n) => Math.floor(next() * n),
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    // An empty array still consumes a draw (and gives undefined), as the specification does.
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
  }
}

/** splitLevels divides n items into levels by weight; every level gets at least one item. */
function splitLevels(n: number, weights: number[]): { counts: number[]; levelOf: number[] } {
  const total = weights.reduce((a, b) => a + b, 0)
  const counts = weights.map((w) => Math.max(1, Math.floor((n * w) / total)))
  let diff = n - counts.reduce((a, b) => a + b, 0)
  for (let i = counts.length - 1; diff !== 0; i = (i - 1 + counts.length) % counts.length) {
    if (diff > 0) {
      counts[i]++
      diff--
    } else if (counts[i] > 1) {
      counts[i]--
      diff++
    }
  }
  const levelOf: number[] = []
  counts.forEach((c, lvl) => {
    for (let i = 0; i < c; i++) levelOf.push(lvl)
  })
  return { counts, levelOf }
}

/** A subject of a folder or document grant: a user, or the members of a group. */
interface Subj {
  t: 'u' | 'g'
  id: number
}

const CHECK_KINDS: [string, number][] = [
  ['direct-viewer', 0.1],
  ['owner', 0.05],
  ['random', 0.2],
  ['deep-group', 0.15],
  ['deep-group-denied', 0.1],
  ['deep-folder', 0.15],
  ['deep-folder-group', 0.05],
  ['deep-folder-denied', 0.05],
  ['blocked', 0.05],
  ['edit', 0.1],
]

export function generate(params: Partial<DatasetParams> = {}): Dataset {
  const { scale = 1, seed = 42, checks: nChecks = 2000 } = params
  const r = mulberry32(seed)
  const U = Math.max(20, Math.round(10000 * scale))
  const G = Math.max(GROUP_DEPTH * 2, Math.round(1000 * scale))
  const F = Math.max(FOLDER_DEPTH * 2, Math.round(2000 * scale))
  const D = Math.max(20, Math.round(20000 * scale))
  const tuples: string[] = []
  const tupleSet = new Set<string>()
  const add = (t: string) => {
    if (tupleSet.has(t)) return
    tupleSet.add(t)
    tuples.push(t)
  }
  const user = (i: number) => `user:u${i}`
  const grp = (i: number) => `group:g${i}`
  const fld = (i: number) => `folder:f${i}`
  const doc = (i: number) => `document:d${i}`
  const lists = <T>(n: number): T[][] => Array.from({ length: n }, () => [])

  // ---- groups: a forest 5 levels deep (child#member is a member of its parent), plus a few
  // extra parents one level up (a DAG, still acyclic).
  const gl = splitLevels(G, [1, 1.5, 2, 2.5, 3])
  const gLevel = gl.levelOf
  const gByLevel = lists<number>(GROUP_DEPTH)
  gLevel.forEach((lvl, i) => gByLevel[lvl].push(i))
  const gParents = lists<number>(G)
  const gChildren = lists<number>(G)
  const gUsers = lists<number>(G)
  const userGroups = lists<number>(U)
  for (let g = 0; g < G; g++) {
    const lvl = gLevel[g]
    if (lvl > 0) {
      const p = r.pick(gByLevel[lvl - 1])
      gParents[g].push(p)
      gChildren[p].push(g)
      add(`${grp(p)}#member@${grp(g)}#member`)
      if (r.chance(0.05)) {
        const p2 = r.pick(gByLevel[lvl - 1])
        if (p2 !== p) {
          gParents[g].push(p2)
          gChildren[p2].push(g)
          add(`${grp(p2)}#member@${grp(g)}#member`)
        }
      }
    }
    const k = r.range(5, 35)
    const seen = new Set<number>()
    for (let j = 0; j < k; j++) {
      const u = r.int(U)
      if (seen.has(u)) continue
      seen.add(u)
      gUsers[g].push(u)
      userGroups[u].push(g)
      add(`${grp(g)}#member@${user(u)}`)
    }
  }
  /** g and every group below it (whose members are therefore members of g). */
  const gDescendants = (g: number): Set<number> => {
    const out = new Set([g])
    const stack = [g]
    while (stack.length) {
      for (const c of gChildren[stack.pop()!]) {
        if (out.has(c)) continue
        out.add(c)
        stack.push(c)
      }
    }
    return out
  }
  const subj = (pUser: number): Subj =>
    r.chance(pUser) ? { t: 'u', id: r.int(U) } : { t: 'g', id: r.int(G) }
  const subjStr = (s: Subj) => (s.t === 'u' ? user(s.id) : `${grp(s.id)}#member`)

  // ---- folders: a forest 6 levels deep.
  const fl = splitLevels(F, [0.5, 1, 1.5, 2, 2.5, 2.5])
  const fLevel = fl.levelOf
  const fByLevel = lists<number>(FOLDER_DEPTH)
  fLevel.forEach((lvl, i) => fByLevel[lvl].push(i))
  const fParent = new Array<number>(F).fill(-1)
  const fOwner = new Array<Subj>(F)
  const fViewers = lists<Subj>(F)
  for (let f = 0; f < F; f++) {
    const lvl = fLevel[f]
    if (lvl > 0) {
      fParent[f] = r.pick(fByLevel[lvl - 1])
      add(`${fld(f)}#parent@${fld(fParent[f])}`)
    }
    fOwner[f] = subj(0.7)
    add(`${fld(f)}#owner@${subjStr(fOwner[f])}`)
    const nv = r.range(0, 2)
    for (let j = 0; j < nv; j++) {
      const s = subj(0.6)
      fViewers[f].push(s)
      add(`${fld(f)}#viewer@${subjStr(s)}`)
    }
  }
  /** f, its parent, ..., its level-0 root. */
  const fChain = (f: number): number[] => {
    const out: number[] = []
    for (let x = f; x >= 0; x = fParent[x]) out.push(x)
    return out
  }
  const fRoot = (f: number): number => fChain(f).at(-1)!
  /** Users granted view on folder f directly (as a user viewer or owner) anywhere up its chain. */
  const fDirectUsers = (f: number): number[] => {
    const out: number[] = []
    for (const x of fChain(f)) {
      if (fOwner[x].t === 'u') out.push(fOwner[x].id)
      for (const s of fViewers[x]) if (s.t === 'u') out.push(s.id)
    }
    return out
  }
  const grantsOf = (f: number): Subj[] => [fOwner[f], ...fViewers[f]]

  // ---- documents
  const dParent = new Array<number>(D)
  const dOwner = new Array<number>(D)
  const dViewers = lists<Subj>(D)
  const dBlocked = new Array<number>(D).fill(-1)
  const docsByViewerGroup = new Map<number, number[]>()
  const docsByFolderLevel = lists<number>(FOLDER_DEPTH)
  for (let d = 0; d < D; d++) {
    const f = r.int(F)
    dParent[d] = f
    docsByFolderLevel[fLevel[f]].push(d)
    add(`${doc(d)}#parent@${fld(f)}`)
    // 30% of owners also see the parent folder (so that `edit` is sometimes allowed)
    let owner = r.int(U)
    if (r.chance(0.3)) {
      const cand = fDirectUsers(f)
      if (cand.length) owner = r.pick(cand)
    }
    dOwner[d] = owner
    add(`${doc(d)}#owner@${user(owner)}`)
    const nv = r.range(0, 3)
    for (let j = 0; j < nv; j++) {
      const s = subj(0.7)
      dViewers[d].push(s)
      if (s.t === 'g') {
        let ds = docsByViewerGroup.get(s.id)
        if (!ds) docsByViewerGroup.set(s.id, (ds = []))
        ds.push(d)
      }
      add(`${doc(d)}#viewer@${subjStr(s)}`)
    }
    if (r.chance(0.05)) {
      // half the time, block someone who would otherwise see it
      const direct = dViewers[d].filter((s) => s.t === 'u')
      const b = direct.length && r.chance(0.5) ? r.pick(direct).id : r.int(U)
      dBlocked[d] = b
      add(`${doc(d)}#blocked@${user(b)}`)
    }
  }

  // ---- checks: a fixed mix of request kinds (the truth is in bench/expected/)
  const checks: CheckRequest[] = []
  const mkCheck = (kind: string, d: number, permission: string, u: number) => {
    checks.push({ id: -1, kind, resource: doc(d), permission, subject: user(u) })
  }
  const deepGroups = gByLevel[GROUP_DEPTH - 1].filter((g) => gUsers[g].length > 0)
  const rootOf = (g: number): number => {
    let x = g
    while (gParents[x].length) x = gParents[x][0]
    return x
  }
  const docsViaGroupRoot = (g: number): number[] => docsByViewerGroup.get(rootOf(g)) ?? []
  const deepFolderDocs = docsByFolderLevel[FOLDER_DEPTH - 1]
  const quota = CHECK_KINDS.map(([k, w]): [string, number] => [k, Math.round(w * nChecks)])
  let guard = 0
  for (const [kind, want] of quota) {
    let made = 0
    while (made < want && guard++ < 10_000_000) {
      const before = checks.length
      switch (kind) {
        case 'direct-viewer': {
          // document#viewer@user
          const d = r.int(D)
          const us = dViewers[d].filter((s) => s.t === 'u')
          if (us.length) mkCheck(kind, d, 'view', r.pick(us).id)
          break
        }
        case 'owner': {
          const d = r.int(D)
          mkCheck(kind, d, 'view', dOwner[d])
          break
        }
        case 'random': {
          const d = r.int(D)
          const permission = r.chance(0.8) ? 'view' : 'edit'
          mkCheck(kind, d, permission, r.int(U))
          break
        }
        case 'deep-group': {
          // a user in a level-4 group; a document shared with that group's root (5 levels up)
          const g = r.pick(deepGroups)
          const ds = docsViaGroupRoot(g)
          if (ds.length) {
            const d = r.pick(ds)
            mkCheck(kind, d, 'view', r.pick(gUsers[g]))
          }
          break
        }
        case 'deep-group-denied': {
          // the same shape, with a user from a level-4 group of another tree
          const g = r.pick(deepGroups)
          const ds = docsViaGroupRoot(g)
          const other = r.pick(deepGroups)
          if (ds.length && rootOf(other) !== rootOf(g)) {
            const d = r.pick(ds)
            mkCheck(kind, d, 'view', r.pick(gUsers[other]))
          }
          break
        }
        case 'deep-folder': {
          // a document in a level-5 folder; the user sees only the level-0 root folder
          const d = r.pick(deepFolderDocs)
          const us = grantsOf(fRoot(dParent[d])).filter((s) => s.t === 'u')
          if (us.length) mkCheck(kind, d, 'view', r.pick(us).id)
          break
        }
        case 'deep-folder-group': {
          // the root folder is shared with a group; the user is in a deep descendant group
          const d = r.pick(deepFolderDocs)
          const gs = grantsOf(fRoot(dParent[d])).filter((s) => s.t === 'g')
          if (!gs.length) break
          const desc = [...gDescendants(r.pick(gs).id)].sort(
            (a, b) => gLevel[b] - gLevel[a] || a - b,
          )
          const deepest = desc.filter((x) => gLevel[x] === gLevel[desc[0]] && gUsers[x].length)
          if (deepest.length) mkCheck(kind, d, 'view', r.pick(gUsers[r.pick(deepest)]))
          break
        }
        case 'deep-folder-denied': {
          const d = r.pick(deepFolderDocs)
          mkCheck(kind, d, 'view', r.int(U))
          break
        }
        case 'blocked': {
          const d = r.int(D)
          if (dBlocked[d] >= 0) mkCheck(kind, d, 'view', dBlocked[d])
          break
        }
        case 'edit': {
          const d = r.int(D)
          mkCheck(kind, d, 'edit', r.chance(0.7) ? dOwner[d] : r.int(U))
          break
        }
      }
      if (checks.length > before) made++
    }
  }
  // Shuffle (deterministically) so that any prefix is a representative mix; then number them.
  for (let i = checks.length - 1; i > 0; i--) {
    const j = r.int(i + 1)
    ;[checks[i], checks[j]] = [checks[j], checks[i]]
  }
  checks.forEach((c, i) => {
    c.id = i
  })

  // ---- list-objects subjects: a few users of different "weight"
  const lookups: LookupRequest[] = []
  const addLookup = (kind: string, u: number) => {
    lookups.push({
      id: lookups.length,
      kind,
      resourceType: 'document',
      permission: 'view',
      subject: user(u),
    })
  }
  // heaviest: a direct user viewer/owner of the level-0 folder with the most documents beneath it
  const docsUnderRoot = new Map<number, number>()
  for (let d = 0; d < D; d++) {
    const root = fRoot(dParent[d])
    docsUnderRoot.set(root, (docsUnderRoot.get(root) ?? 0) + 1)
  }
  const roots = [...docsUnderRoot.entries()]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .map((e) => e[0])
  const heavyRoot = roots.find((f) => grantsOf(f).some((s) => s.t === 'u'))
  if (heavyRoot !== undefined) {
    addLookup('root-folder-viewer', grantsOf(heavyRoot).find((s) => s.t === 'u')!.id)
  }
  // the user in the most groups (many nested memberships); the first one on a tie
  let best = 0
  for (let u = 1; u < U; u++) if (userGroups[u].length > userGroups[best].length) best = u
  addLookup('most-groups', best)
  const g = r.pick(deepGroups)
  addLookup('deep-group-member', r.pick(gUsers[g]))
  addLookup('random', r.int(U))
  addLookup('random', r.int(U))

  const stats: DatasetStats = {
    users: U,
    groups: G,
    folders: F,
    documents: D,
    groupLevels: gl.counts,
    folderLevels: fl.counts,
    relationships: tuples.length,
    checks: checks.length,
    lookups: lookups.length,
    checkKinds: Object.fromEntries(
      quota.map(([k]) => [k, checks.filter((c) => c.kind === k).length]),
    ),
  }
  return { params: { scale, seed, checks: nChecks }, tuples, checks, lookups, stats }
}

/** The file texts: one JSON value per line, each line ending with a newline. */
export function serialize(ds: Dataset): Record<DataFile, string> {
  const jsonl = (rows: unknown[]) => rows.map((x) => JSON.stringify(x)).join('\n') + '\n'
  return {
    'tuples.jsonl': jsonl(ds.tuples),
    'checks.jsonl': jsonl(ds.checks),
    'lookups.jsonl': jsonl(ds.lookups),
  }
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The directory a data set is cached in, e.g. `bench-data/scale-1-seed-42`. */
export function datasetDir(root: string, p: DatasetParams): string {
  const suffix = p.checks === 2000 ? '' : `-checks-${p.checks}`
  return join(root, `scale-${p.scale}-seed-${p.seed}${suffix}`)
}

/** writeDataset writes the data files and a manifest (parameters, counts, sha256 of each file). */
export function writeDataset(ds: Dataset, dir: string): Manifest {
  mkdirSync(dir, { recursive: true })
  const hashes: Record<string, string> = {}
  for (const [name, text] of Object.entries(serialize(ds))) {
    writeFileSync(join(dir, name), text)
    hashes[name] = sha256(text)
  }
  const manifest: Manifest = {
    generator: 'bench/dataset.ts',
    params: ds.params,
    stats: ds.stats,
    sha256: hashes,
  }
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
  return manifest
}

export interface LoadedDataset {
  dir: string
  /** True when the files were generated by this call; false when read back from the cache. */
  generated: boolean
  manifest: Manifest
  /** sha256 of each data file as read from disk. */
  sha256: Record<DataFile, string>
  tuples: string[]
  checks: CheckRequest[]
  lookups: LookupRequest[]
}

/**
 * loadOrGenerate returns the data set for p, read from `root` when a cached copy is there and
 * its files still hash to what its manifest says, generated (and cached) otherwise.
 */
export function loadOrGenerate(root: string, p: DatasetParams): LoadedDataset {
  const dir = datasetDir(root, p)
  const read = (): LoadedDataset | undefined => {
    const manifestPath = join(dir, 'manifest.json')
    if (!existsSync(manifestPath)) return undefined
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest
    const same =
      manifest.params?.scale === p.scale &&
      manifest.params?.seed === p.seed &&
      manifest.params?.checks === p.checks
    if (!same) return undefined
    const texts = {} as Record<DataFile, string>
    const hashes = {} as Record<DataFile, string>
    for (const name of DATA_FILES) {
      if (!existsSync(join(dir, name))) return undefined
      texts[name] = readFileSync(join(dir, name), 'utf8')
      hashes[name] = sha256(texts[name])
      if (hashes[name] !== manifest.sha256[name]) return undefined
    }
    return {
      dir,
      generated: false,
      manifest,
      sha256: hashes,
      tuples: parseLines<string>(texts['tuples.jsonl']),
      checks: parseLines<CheckRequest>(texts['checks.jsonl']),
      lookups: parseLines<LookupRequest>(texts['lookups.jsonl']),
    }
  }
  const cached = read()
  if (cached) return cached
  const ds = generate(p)
  const manifest = writeDataset(ds, dir)
  return {
    dir,
    generated: true,
    manifest,
    sha256: manifest.sha256 as Record<DataFile, string>,
    tuples: ds.tuples,
    checks: ds.checks,
    lookups: ds.lookups,
  }
}

export function parseLines<T>(text: string): T[] {
  const out: T[] = []
  for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as T)
  return out
}

/** tupleKey turns `object#relation@user` into an OpenFGA tuple key. */
export function tupleKey(t: string): { object: string; relation: string; user: string } {
  const hash = t.indexOf('#')
  const at = t.indexOf('@', hash)
  return { object: t.slice(0, hash), relation: t.slice(hash + 1, at), user: t.slice(at + 1) }
}

/** parseFlags reads `--name value` / `--name=value` flags; booleans take no value. */
export function parseFlags<T extends Record<string, string | number | boolean>>(
  argv: string[],
  defaults: T,
): T {
  const out: Record<string, string | number | boolean> = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(argv[i])
    if (!m) throw new Error(`unexpected argument ${argv[i]}`)
    const key = m[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
    if (!(key in defaults)) throw new Error(`unknown flag --${m[1]}`)
    const kind = typeof defaults[key]
    if (kind === 'boolean') {
      out[key] = m[2] === undefined ? true : m[2] !== 'false'
      continue
    }
    const val = m[2] ?? argv[++i]
    if (val === undefined) throw new Error(`flag --${m[1]} needs a value`)
    if (kind === 'number') {
      const n = Number(val)
      if (!Number.isFinite(n)) throw new Error(`flag --${m[1]} needs a number, got '${val}'`)
      out[key] = n
    } else {
      out[key] = val
    }
  }
  return out as T
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const a = parseFlags(process.argv.slice(2), { scale: 1, seed: 42, checks: 2000, out: '' })
  const t0 = performance.now()
  const ds = generate(a)
  const dir = a.out || datasetDir('bench-data', a)
  const manifest = writeDataset(ds, dir)
  const ms = Math.round(performance.now() - t0)
  console.log(JSON.stringify({ dir, ms, stats: manifest.stats, sha256: manifest.sha256 }, null, 2))
}
