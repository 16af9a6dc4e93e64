import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  LayerRules,
  cycleViolations,
  lineCount,
  scan,
  sizeViolations,
  type ImportGraph,
  type Layer,
} from '../../scripts/check-imports.ts'

const rules = new LayerRules()

describe('layer rules (scripts/check-imports.ts)', () => {
  it('fails an upward import even when it closes no cycle', () => {
    // The engine reaching up into a service: no file imports the engine back, so madge's
    // cycle check alone would pass this graph.
    const graph: ImportGraph = {
      'src/engine/local-checker.ts': ['src/service/checks.ts', 'src/engine/dispatch.ts'],
      'src/engine/dispatch.ts': ['src/core/tuple.ts'],
      'src/service/checks.ts': [],
      'src/core/tuple.ts': [],
    }
    const v = rules.check(graph, [])
    expect(v).toHaveLength(1)
    expect(v[0]).toMatchObject({ rule: 'layer', file: 'src/engine/local-checker.ts' })
    expect(v[0]!.message).toContain('src/engine/local-checker.ts (layer engine) must not import src/service/checks.ts (layer service)')
  })

  it('lets the HTTP layer and the engine see the storage ports only', () => {
    const graph: ImportGraph = {
      'src/api/app.ts': ['src/store/ports.ts', 'src/store/readers/tuple-index.ts'],
      'src/engine/dispatch.ts': ['src/store/ports.ts', 'src/store/readers/buffered.ts'],
      'src/store/ports.ts': [],
      'src/store/readers/tuple-index.ts': [],
      'src/store/readers/buffered.ts': [],
    }
    const v = rules.check(graph, [])
    expect(v.map((x) => x.message)).toEqual([
      expect.stringContaining('src/api/app.ts (layer api) must not import src/store/readers/tuple-index.ts (layer store)'),
      expect.stringContaining('src/engine/dispatch.ts (layer engine) must not import src/store/readers/buffered.ts (layer store)'),
    ])
  })

  it('passes imports down the layers and within one layer', () => {
    const graph: ImportGraph = {
      'src/cli/main.ts': ['src/server.ts', 'src/store/migrations.ts'],
      'src/server.ts': ['src/api/app.ts', 'src/store/sqlite/index.ts', 'src/config.ts'],
      'src/api/app.ts': ['src/api/routes/tuples.ts', 'src/auth/authenticate.ts', 'src/service/checks.ts'],
      'src/auth/access-control.ts': ['src/service/checks.ts'],
      'src/service/checks.ts': ['src/engine/build.ts', 'src/store/store.ts', 'src/model/typesystem.ts'],
      'src/engine/build.ts': ['src/engine/dispatch.ts', 'src/store/store.ts'],
      'src/store/sqlite/index.ts': ['src/store/store.ts', 'src/service/decision-store.ts', 'src/model/types.ts'],
      'src/store/store.ts': ['src/service/access-request-store.ts', 'src/core/tuple.ts'],
      'src/model/typesystem.ts': ['src/core/tuple.ts'],
      'src/core/tuple.ts': ['src/core/errors.ts'],
    }
    expect(rules.check(graph, [])).toEqual([])
  })

  it.each([
    ['src/engine/dispatch.ts', 'src/store/sqlite/index.ts'],
    ['src/engine/dispatch.ts', 'src/store/sql/core.ts'],
    ['src/engine/dispatch.ts', 'src/api/app.ts'],
    ['src/model/typesystem.ts', 'src/engine/dispatch.ts'],
    ['src/model/typesystem.ts', 'src/store/store.ts'],
    ['src/core/tuple.ts', 'src/model/types.ts'],
    ['src/store/audit.ts', 'src/service/decision-log.ts'],
    ['src/store/store.ts', 'src/engine/dispatch.ts'],
    ['src/service/decision-store.ts', 'src/service/decision-log.ts'],
    ['src/service/token-issuers.ts', 'src/auth/jwks.ts'],
    ['src/service/checks.ts', 'src/store/postgres/index.ts'],
    ['src/api/routes/queries.ts', 'src/engine/explain.ts'],
    ['src/api/app.ts', 'src/server.ts'],
    ['src/server.ts', 'src/cli/main.ts'],
  ])('fails %s importing %s', (from, to) => {
    const v = rules.check({ [from]: [to] }, [])
    expect(v.map((x) => [x.rule, x.file])).toEqual([['layer', from]])
  })

  it('checks source files only: tests may import across layers', () => {
    const graph: ImportGraph = {
      'src/engine/engine.test.ts': ['src/service/checks.ts', '../test/helpers/memory-reader.ts'],
      'test/helpers/memory-reader.ts': ['src/store/store.ts'],
    }
    expect(rules.check(graph, [])).toEqual([])
  })

  it('reports a file in no layer, once', () => {
    const v = rules.check({ 'src/plugins/a.ts': ['src/core/tuple.ts'], 'src/api/app.ts': ['src/plugins/a.ts'] }, [])
    expect(v).toHaveLength(1)
    expect(v[0]!.message).toBe('src/plugins/a.ts is in no layer: add it to LAYERS in scripts/check-imports.ts')
  })

  it('honours an allowance while it is needed, and fails once it is not', () => {
    const allowance = { from: 'src/store/audit.ts', to: 'src/service/decision-log.ts', reason: 'being moved' }
    expect(rules.check({ 'src/store/audit.ts': ['src/service/decision-log.ts'] }, [allowance])).toEqual([])
    const stale = rules.check({ 'src/store/audit.ts': ['src/core/tuple.ts'] }, [allowance])
    expect(stale.map((v) => v.rule)).toEqual(['allowance'])
  })

  it('rejects a rule naming an unknown layer', () => {
    const layers: Layer[] = [{ name: 'a', files: ['src/a/**'], mayImport: ['b'], about: '' }]
    expect(() => new LayerRules(layers)).toThrow('layer a may import unknown layer b')
  })

  it('places files by the first matching layer, `*` within one segment', () => {
    expect(rules.layerOf('src/service/decision-store.ts')?.name).toBe('service-port')
    expect(rules.layerOf('src/service/checks.ts')?.name).toBe('service')
    expect(rules.layerOf('src/service/queries/check-store-x.ts')?.name).toBe('service')
    expect(rules.layerOf('src/store/postgres/index.ts')?.name).toBe('store-impl')
    expect(rules.layerOf('src/store/readers/buffered.ts')?.name).toBe('store')
    expect(rules.layerOf('src/config.ts')?.name).toBe('wiring')
    expect(rules.layerOf('src/configs.ts')).toBeUndefined()
  })
})

describe('cycles and sizes', () => {
  it('names every file of a cycle', () => {
    expect(cycleViolations([['src/a.ts', 'src/b.ts']])).toEqual([
      { rule: 'cycle', file: 'src/a.ts', message: 'src/a.ts > src/b.ts > src/a.ts' },
    ])
  })

  it('fails source files over the limit, largest first, tests aside', () => {
    const v = sizeViolations({ 'src/a.ts': 701, 'src/b.ts': 700, 'src/c.ts': 900, 'src/c.test.ts': 5000 }, 700)
    expect(v.map((x) => x.message)).toEqual([
      'src/c.ts has 900 lines (at most 700): split it',
      'src/a.ts has 701 lines (at most 700): split it',
    ])
  })

  it('counts lines as wc -l does, plus an unterminated last line', () => {
    expect(lineCount('')).toBe(0)
    expect(lineCount('a\nb\n')).toBe(2)
    expect(lineCount('a\nb')).toBe(2)
  })
})

describe('scan (madge)', () => {
  it('counts type-only imports, so a cycle of `import type` is a cycle', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pemba-lint-'))
    try {
      mkdirSync(join(root, 'src/engine'), { recursive: true })
      writeFileSync(
        join(root, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }),
      )
      // The shape of the engine's old cycle: the contract importing a decorator's type.
      writeFileSync(join(root, 'src/engine/dispatch.ts'), "import type { CheckCache } from './caching.ts'\nexport interface Ctx { cache: CheckCache }\n")
      writeFileSync(join(root, 'src/engine/caching.ts'), "import type { Ctx } from './dispatch.ts'\nexport class CheckCache { ctx?: Ctx }\n")
      writeFileSync(join(root, 'src/engine/build.ts'), "export { CheckCache } from './caching.ts'\n")
      const { graph, cycles } = await scan(root)
      expect(graph['src/engine/dispatch.ts']).toEqual(['src/engine/caching.ts'])
      expect(graph['src/engine/build.ts']).toEqual(['src/engine/caching.ts'])
      expect(cycles).toEqual([['src/engine/caching.ts', 'src/engine/dispatch.ts']])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})
