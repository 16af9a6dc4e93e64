/**
 * The package as a consumer sees it: `pemba`, `pemba/middleware/{hono,express,fastify}` and
 * `pemba/mcp` resolve through package.json `exports` to the built dist/ (vitest's globalSetup
 * builds it), their `.d.ts` files exist and type-check a consumer, npm would pack every file the
 * exports name, nothing else is reachable, and the library example of docs/middleware.md runs as
 * written against the built package.
 *
 * The consumer lives in a temporary directory whose node_modules/pemba is a link to this
 * repository, as `npm link` or a workspace would make it (Node follows it to the real path, so
 * Pemba's own dependencies resolve from here).
 */
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>
  bin: Record<string, string>
}

const SUBPATHS = ['.', './middleware/hono', './middleware/express', './middleware/fastify', './mcp']

/** The ```ts block of docs/middleware.md's library section, and the output it prints. */
function libraryExample(): { code: string; output: string } {
  const doc = readFileSync(join(ROOT, 'docs/middleware.md'), 'utf8')
  const section = doc.slice(doc.indexOf('## Pemba as a library'))
  const code = /```ts\n([\s\S]*?)```/.exec(section)![1]
  const output = /```text\n([\s\S]*?)```/.exec(section)![1]
  return { code, output }
}

function run(cmd: string, args: string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 170_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

/** runAsync: run, without blocking the others started beside it. */
function runAsync(cmd: string, args: string[], cwd: string): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, encoding: 'utf8', timeout: 250_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: `${stdout}${stderr}${err && typeof err.code !== 'number' ? String(err) : ''}` })
    })
  })
}

describe('the package', () => {
  let consumer: string

  beforeAll(() => {
    consumer = mkdtempSync(join(tmpdir(), 'pemba-consumer-'))
    mkdirSync(join(consumer, 'node_modules'))
    symlinkSync(ROOT, join(consumer, 'node_modules', 'pemba'), 'dir')
    // What the consumer itself uses: its framework (a peer dependency), Node's types, tsx to run TypeScript.
    for (const dep of ['express', 'fastify', 'hono', '@types', 'tsx']) symlinkSync(join(ROOT, 'node_modules', dep), join(consumer, 'node_modules', dep), 'dir')
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  })
  afterAll(() => {
    if (consumer) rmSync(consumer, { recursive: true, force: true })
  })

  it('exports every entry point with types and code that exist in dist/, and keeps the bin', () => {
    expect(Object.keys(pkg.exports).sort()).toEqual([...SUBPATHS, './package.json'].sort())
    for (const subpath of SUBPATHS) {
      const target = pkg.exports[subpath] as { types: string; default: string }
      expect(Object.keys(target), subpath).toEqual(['types', 'default'])
      expect(existsSync(join(ROOT, target.types)), target.types).toBe(true)
      expect(existsSync(join(ROOT, target.default)), target.default).toBe(true)
    }
    expect(pkg.bin.pemba).toBe('bin/pemba.js')
    expect(existsSync(join(ROOT, 'bin/pemba.js'))).toBe(true)
  })

  it('npm would pack every file the exports name', () => {
    const r = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT)
    expect(r.status, r.out).toBe(0)
    const [packed] = JSON.parse(r.out.slice(r.out.indexOf('['))) as [{ files: { path: string }[] }]
    const files = new Set(packed.files.map((f) => f.path))
    for (const subpath of SUBPATHS) {
      const target = pkg.exports[subpath] as { types: string; default: string }
      for (const f of [target.types, target.default]) expect(files.has(f.replace(/^\.\//, '')), f).toBe(true)
    }
  })

  it('a consumer imports each entry point by its package name, and nothing else', () => {
    writeFileSync(
      join(consumer, 'imports.mjs'),
      `const out = {}
for (const name of ['pemba', 'pemba/middleware/hono', 'pemba/middleware/express', 'pemba/middleware/fastify', 'pemba/mcp']) {
  const m = await import(name)
  out[name] = Object.keys(m).sort()
}
try { await import('pemba/dist/server.js'); out.deep = 'imported' } catch (e) { out.deep = e.code }
console.log(JSON.stringify(out))
`,
    )
    const r = run(process.execPath, ['imports.mjs'], consumer)
    expect(r.status, r.out).toBe(0)
    const out = JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, string[] | string>
    expect(out['pemba']).toEqual(
      expect.arrayContaining(['createPemba', 'loadConfig', 'modelFromDSL', 'remoteDecisions', 'embeddedDecisions', 'cachedDecisions', 'createMcpAuthorizer', 'DecisionUnavailable', 'DecisionRejected']),
    )
    for (const m of ['pemba/middleware/hono', 'pemba/middleware/express', 'pemba/middleware/fastify']) expect(out[m]).toEqual(['pemba'])
    expect(out['pemba/mcp']).toContain('createMcpAuthorizer')
    expect(out.deep).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED')
  })

  it("docs/middleware.md's library example, an Express and a Fastify usage type-check against the .d.ts files (nodenext with skipLibCheck off, node16, bundler), and the example runs as written", async () => {
    const { code, output } = libraryExample()
    writeFileSync(join(consumer, 'example.ts'), code)
    // Misuses the declarations must catch: if types resolved to `any`, these would compile.
    writeFileSync(
      join(consumer, 'misuse.ts'),
      `import { pemba } from 'pemba/middleware/hono'
const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' })
// @ts-expect-error the relation is a string
authz.requirePermission({ relation: 7, object: () => 'doc:1', user: () => 'user:a' })
`,
    )
    writeFileSync(
      join(consumer, 'express-usage.ts'),
      `import express from 'express'
import { pemba } from 'pemba/middleware/express'
const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', whenUnavailable: 'deny' })
const app = express()
app.get('/docs/:id',
  authz.requirePermission({ relation: 'reader', object: (req) => \`doc:\${String(req.params.id)}\`, user: (_req, res) => res.locals.user as string | undefined }),
  (req, res) => { res.json({ id: req.params.id, decision: authz.decisionOf(req)?.requestId }) })
// @ts-expect-error user gives a 'type:id' string
authz.requirePermission({ relation: 'reader', object: () => 'doc:1', user: () => 42 })
// @ts-expect-error whenUnavailable is 'deny' or 'allow'
pemba({ url: 'http://127.0.0.1:8080', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', whenUnavailable: 'sometimes' })
`,
    )
    writeFileSync(
      join(consumer, 'fastify-usage.ts'),
      `import Fastify from 'fastify'
import { pemba } from 'pemba/middleware/fastify'
type Doc = { Params: { id: string } }
const app = Fastify()
const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', logger: app.log })
app.get<Doc>('/docs/:id',
  { preHandler: authz.requirePermission<Doc>({ relation: 'reader', object: (req) => \`doc:\${req.params.id}\`, user: (req) => req.headers['x-user'] as string | undefined }) },
  async (req) => ({ id: req.params.id }))
// @ts-expect-error the route's params have no 'nope'
authz.requirePermission<Doc>({ relation: 'reader', object: (req) => \`doc:\${req.params.nope}\`, user: () => 'user:a' })
`,
    )
    const files = ['example.ts', 'misuse.ts', 'express-usage.ts', 'fastify-usage.ts']
    // NodeNext checks every declaration file too (skipLibCheck off, ~1 min here); the other two
    // check resolution and usage (an unresolved declaration would make the misuses compile).
    const configs: Array<[string, string, boolean]> = [['NodeNext', 'NodeNext', false], ['Node16', 'Node16', true], ['ESNext', 'Bundler', true]]
    const checks = await Promise.all(
      configs.map(([module, moduleResolution, skipLibCheck]) => {
        const tsconfig = `tsconfig.${moduleResolution.toLowerCase()}.json`
        writeFileSync(
          join(consumer, tsconfig),
          JSON.stringify({ compilerOptions: { target: 'ES2022', module, moduleResolution, strict: true, noEmit: true, skipLibCheck, types: ['node'] }, files }),
        )
        return runAsync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], consumer).then((r) => ({ moduleResolution, ...r }))
      }),
    )
    for (const c of checks) expect(c.status, `${c.moduleResolution}: ${c.out}`).toBe(0)
    const r = run(process.execPath, ['--import', 'tsx', 'example.ts'], consumer)
    expect(r.status, r.out).toBe(0)
    expect(r.out).toBe(output)
  }, 300_000)
})
