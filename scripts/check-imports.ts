/**
 * `npm run lint`: the structural checks the type checker cannot make. It fails on
 *
 * 1. an import cycle among src/ files, type-only imports included (`import type` ties two
 *    modules as tightly as a value import: neither can be read or moved without the other);
 * 2. an import that breaks the layering, e.g. `src/engine/dispatch.ts` importing
 *    `src/service/checks.ts`, or `src/store/audit.ts` importing a service module that is not a
 *    storage port;
 * 3. a src/ source file (tests aside) over {@link MAX_LINES} lines;
 * 4. an import madge cannot resolve (the graph would miss its edge).
 *
 * The import graph comes from madge (the same graph `madge --circular --extensions ts
 * --ts-config tsconfig.json src` reports cycles on); the rules are data ({@link LAYERS}), so a
 * new folder or a changed boundary is one entry here, and the checks are pure functions over
 * a graph, tested in test/lint/check-imports.test.ts.
 *
 * @module
 */
import { readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The import graph: each file (relative to the repository, `src/engine/dispatch.ts`) to the files it imports. */
export type ImportGraph = Record<string, readonly string[]>

/**
 * A layer: the files it holds (globs relative to the repository; `*` stays within one path
 * segment, `**` crosses them) and the other layers its files may import. Imports within a
 * layer are always allowed. A file belongs to the first layer that matches it, so the narrow
 * layers (storage ports inside src/service, implementations inside src/store) come before the
 * folders that contain them.
 */
export interface Layer {
  name: string
  files: readonly string[]
  mayImport: readonly string[]
  /** What the layer is, shown beside a violation. */
  about: string
}

/**
 * The layers, top to bottom: the library entry and the cli → enforcement points → server wiring → api → auth → service → engine → model → core,
 * with the store beside the engine. The engine and the HTTP layer see only the store's ports
 * (TupleReader and the record types in src/store/ports.ts), never its readers or SQL; the store serves the engine and the services and
 * imports neither (a feature's storage port is declared next to its service as
 * `src/service/<feature>-store.ts`, which the store implements). Auth sits above the services,
 * since a client's permissions are decided through them (auth/access-control.ts asks the
 * check service); what both need, such as JWT key resolution, lives in the services.
 */
export const LAYERS: readonly Layer[] = [
  {
    name: 'library',
    // The package's main entry (`import { createPemba } from 'pemba'`): re-exports only.
    files: ['src/index.ts'],
    mayImport: ['enforce', 'wiring', 'service', 'service-port', 'store-port', 'telemetry', 'model', 'core'],
    about: "the package's public entry point, Pemba as a library",
  },
  {
    name: 'cli',
    files: ['src/cli/**'],
    mayImport: ['enforce', 'wiring', 'api', 'auth', 'service', 'service-port', 'engine', 'store-port', 'store', 'store-impl', 'telemetry', 'formats', 'model', 'core'],
    about: 'the command line, on top of everything',
  },
  {
    name: 'enforce',
    // Enforcement points that ask Pemba and act on the answer (the MCP gateway and authorizer, the
    // Node middleware): they reach Pemba over HTTP, or in-process through an instance the wiring built.
    files: ['src/enforce/**'],
    mayImport: ['wiring', 'service', 'service-port', 'store-port', 'telemetry', 'model', 'core'],
    about: 'policy enforcement points (MCP gateway, middleware) that ask a Pemba server or an embedded one',
  },
  {
    name: 'wiring',
    files: ['src/server.ts', 'src/config.ts', 'src/config/**'],
    mayImport: ['api', 'auth', 'service', 'service-port', 'engine', 'store-port', 'store', 'store-impl', 'telemetry', 'formats', 'model', 'core'],
    about: 'configuration and assembly, the only place that picks a datastore',
  },
  {
    name: 'api',
    files: ['src/api/**'],
    mayImport: ['auth', 'service', 'service-port', 'store-port', 'telemetry', 'model', 'core'],
    about: 'the HTTP layer, which translates requests into service calls and never reaches the engine, the readers or SQL',
  },
  {
    name: 'auth',
    files: ['src/auth/**'],
    mayImport: ['service', 'service-port', 'engine', 'store-port', 'store', 'model', 'core'],
    about: "API clients' authentication and permissions, decided through the services",
  },
  {
    name: 'service-port',
    // decision-sink.ts is the seam between deciding and recording: the `Decision` the decision
    // store persists and the sink interface, types over core only, like the storage ports.
    files: ['src/service/*-store.ts', 'src/service/decision-sink.ts'],
    mayImport: ['model', 'core'],
    about: 'a storage port owned by a feature (or the decision seam), implemented by the store',
  },
  {
    name: 'service',
    files: ['src/service/**'],
    mayImport: ['service-port', 'engine', 'store-port', 'store', 'model', 'core'],
    about: 'one capability each, over the engine and the storage ports',
  },
  {
    name: 'engine',
    files: ['src/engine/**'],
    mayImport: ['store-port', 'model', 'core'],
    about: 'the evaluator: reads through a TupleReader bound to a revision, never SQL',
  },
  {
    name: 'store-port',
    // The storage ports and the composed Datastore: the types services return and the HTTP
    // layer serialises (a StoredTuple, a TupleChange), without any implementation.
    files: ['src/store/ports.ts', 'src/store/store.ts'],
    mayImport: ['service-port', 'model', 'core'],
    about: 'the storage ports (interfaces and record types only)',
  },
  {
    name: 'store',
    // The files directly in src/store (the ports, the write planner, the migrations bookkeeping)
    // and the readers' decorators; every other folder under src/store is an implementation.
    files: ['src/store/*.ts', 'src/store/readers/**'],
    mayImport: ['store-port', 'service-port', 'model', 'core'],
    about: "the storage ports and the readers' decorators, beside the engine",
  },
  {
    name: 'store-impl',
    // The SQL core (sql/, with the backend registry sql/backends.ts) and one folder per driver
    // (sqlite/, postgres/): a catch-all, so a new backend's folder needs no entry here.
    files: ['src/store/**'],
    mayImport: ['store-port', 'store', 'service-port', 'model', 'core'],
    about: 'a datastore implementation (the SQL core, its backend registry, a driver), chosen by the wiring',
  },
  {
    name: 'telemetry',
    files: ['src/telemetry/**'],
    mayImport: ['core'],
    about: 'logs, traces and metrics (pino, OpenTelemetry, prom-client), handed to the layers above as plain objects',
  },
  {
    name: 'formats',
    // Files people keep in git or move between systems: tuple files (fga's YAML/JSON/JSONL/CSV,
    // zed relationship lines), OpenFGA store test files. Parsing and writing only, no I/O policy.
    files: ['src/formats/**'],
    mayImport: ['model', 'core'],
    about: 'external file formats (tuple files, store files), read and written without a server',
  },
  {
    name: 'model',
    files: ['src/model/**'],
    mayImport: ['core'],
    about: 'authorisation models: the DSL, validation, the type system, conditions',
  },
  {
    name: 'core',
    files: ['src/core/**'],
    mayImport: [],
    about: 'tuples, identifiers and errors, importing nothing of ours',
  },
]

/**
 * An import the rules forbid but that is allowed for now, while the code is being changed.
 * Each entry names why; an allowance no longer needed fails the check, so none outlives its fix.
 */
export interface Allowance {
  from: string
  to: string
  reason: string
}

export const ALLOWANCES: readonly Allowance[] = []

/** No source file in src/ (tests aside) may be longer than this. */
export const MAX_LINES = 700

/** A broken rule, with a message naming the file and the rule. */
export interface Violation {
  rule: 'cycle' | 'layer' | 'size' | 'allowance' | 'unresolved'
  file: string
  message: string
}

function globToRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*'
      i++
    } else if (c === '*') re += '[^/]*'
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/** A compiled rule set: the layer of each file, and what each layer may import. */
export class LayerRules {
  readonly #layers: { layer: Layer; patterns: RegExp[] }[]

  constructor(layers: readonly Layer[] = LAYERS) {
    this.#layers = layers.map((layer) => ({ layer, patterns: layer.files.map(globToRegExp) }))
    const names = new Set(layers.map((l) => l.name))
    for (const l of layers)
      for (const target of l.mayImport)
        if (!names.has(target)) throw new Error(`layer ${l.name} may import unknown layer ${target}`)
  }

  /** layerOf is the layer holding `file` (`src/engine/dispatch.ts` → engine), or undefined. */
  layerOf(file: string): Layer | undefined {
    return this.#layers.find((l) => l.patterns.some((p) => p.test(file)))?.layer
  }

  /**
   * check lists the imports in `graph` that break the rules, and the allowances that no
   * longer match any import. Only src/ source files are checked as importers (tests may import
   * across layers); an import of a src/ file outside every layer is reported too, so a new
   * folder gets its place in the rules before it is used.
   */
  check(graph: ImportGraph, allowances: readonly Allowance[] = ALLOWANCES): Violation[] {
    const out: Violation[] = []
    const used = new Set<Allowance>()
    const unplaced = new Set<string>()
    const place = (file: string): Layer | undefined => {
      const layer = this.layerOf(file)
      if (!layer && !unplaced.has(file)) {
        unplaced.add(file)
        out.push({ rule: 'layer', file, message: `${file} is in no layer: add it to LAYERS in scripts/check-imports.ts` })
      }
      return layer
    }
    for (const [from, targets] of Object.entries(graph)) {
      if (!isSource(from)) continue
      const fromLayer = place(from)
      for (const to of targets) {
        if (!to.startsWith('src/')) continue
        const toLayer = place(to)
        if (!fromLayer || !toLayer || fromLayer === toLayer || fromLayer.mayImport.includes(toLayer.name)) continue
        const allowance = allowances.find((a) => a.from === from && a.to === to)
        if (allowance) {
          used.add(allowance)
          continue
        }
        const allowed = fromLayer.mayImport.length ? fromLayer.mayImport.join(', ') : 'nothing outside itself'
        out.push({
          rule: 'layer',
          file: from,
          message:
            `${from} (layer ${fromLayer.name}) must not import ${to} (layer ${toLayer.name}): ` +
            `${fromLayer.name} (${fromLayer.about}) may import only ${allowed}`,
        })
      }
    }
    for (const a of allowances)
      if (!used.has(a))
        out.push({
          rule: 'allowance',
          file: a.from,
          message: `allowance ${a.from} → ${a.to} is no longer needed: remove it from ALLOWANCES`,
        })
    return out
  }
}

/** isSource: a src/ TypeScript file that is not a test. */
export function isSource(file: string): boolean {
  return file.startsWith('src/') && file.endsWith('.ts') && !file.endsWith('.test.ts')
}

/** cycleViolations names each cycle madge found, e.g. `src/a.ts > src/b.ts > src/a.ts`. */
export function cycleViolations(cycles: readonly (readonly string[])[]): Violation[] {
  return cycles.map((c) => ({
    rule: 'cycle',
    file: c[0]!,
    message: [...c, c[0]].join(' > '),
  }))
}

/** sizeViolations lists the source files over `max` lines; `lines` maps file to line count. */
export function sizeViolations(lines: Readonly<Record<string, number>>, max = MAX_LINES): Violation[] {
  return Object.entries(lines)
    .filter(([file, n]) => isSource(file) && n > max)
    .sort(([, a], [, b]) => b - a)
    .map(([file, n]) => ({ rule: 'size', file, message: `${file} has ${n} lines (at most ${max}): split it` }))
}

/** lineCount counts lines as `wc -l` does, plus a last line without its newline. */
export function lineCount(text: string): number {
  let n = 0
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++
  return text.length && !text.endsWith('\n') ? n + 1 : n
}

/** The part of madge's API used here (madge ships no types). */
interface MadgeResult {
  obj(): Record<string, string[]>
  circular(): string[][]
  warnings(): { skipped: string[] }
}
type Madge = (path: string, config: Record<string, unknown>) => Promise<MadgeResult>

/** What madge reads from a repository's src/: the import graph, its cycles, and imports it could not resolve. */
export interface ImportScan {
  graph: ImportGraph
  cycles: string[][]
  unresolved: string[]
}

/**
 * scan reads the imports of `root`/src as `madge --extensions ts --ts-config tsconfig.json src`
 * does, with paths relative to `root` (`src/engine/dispatch.ts`).
 */
export async function scan(root: string): Promise<ImportScan> {
  const madge = createRequire(import.meta.url)('madge') as Madge
  const result = await madge(join(root, 'src'), {
    baseDir: root,
    fileExtensions: ['ts'],
    tsConfig: join(root, 'tsconfig.json'),
    // madge's default, stated because the cycle rule depends on it: `import type` counts.
    detectiveOptions: { ts: { skipTypeImports: false } },
  })
  return { graph: result.obj(), cycles: result.circular(), unresolved: result.warnings().skipped }
}

/** run checks the repository at `root` and prints every violation; it returns how many there were. */
export async function run(root: string): Promise<number> {
  const { graph, cycles, unresolved } = await scan(root)
  const lines: Record<string, number> = {}
  for (const entry of readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })) {
    const file = ['src', ...entry.split(sep)].join('/')
    if (isSource(file)) lines[file] = lineCount(readFileSync(join(root, file), 'utf8'))
  }
  const violations = [
    ...cycleViolations(cycles),
    ...new LayerRules().check(graph),
    ...sizeViolations(lines),
    // An import madge cannot resolve leaves an edge out of the graph, which could hide a cycle.
    ...unresolved.map((spec): Violation => ({
      rule: 'unresolved',
      file: spec,
      message: `an import of ${spec} resolves to no file, so the import graph misses it (tsc names the importer)`,
    })),
  ]
  for (const a of ALLOWANCES) console.log(`allowed for now: ${a.from} → ${a.to} (${a.reason})`)
  for (const v of violations) console.log(`${v.rule}: ${v.message}`)
  const files = Object.keys(lines).length
  console.log(
    violations.length
      ? `lint: ${violations.length} violation(s) in ${files} source files`
      : `lint: ${files} source files, no import cycle, no layer violation, none over ${MAX_LINES} lines`,
  )
  return violations.length
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = (await run(fileURLToPath(new URL('..', import.meta.url)))) ? 1 : 0
}
