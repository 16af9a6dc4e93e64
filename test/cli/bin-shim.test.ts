/**
 * bin/pemba.js and bin/build.js on a small project of their own (a copy of both files, a two-file
 * src/ and the real tsconfig.build.json): the first start builds dist/, a start on a current
 * dist/ does not, a changed source rebuilds, starts racing on a missing dist/ all succeed and
 * leave nothing behind, and a build that fails keeps the old dist/ and says so.
 */
import { spawn } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const project = mkdtempSync(join(tmpdir(), 'pemba-shim-'))
afterAll(() => rmSync(project, { recursive: true, force: true }))

mkdirSync(join(project, 'bin'))
mkdirSync(join(project, 'src', 'cli'), { recursive: true })
for (const f of ['bin/pemba.js', 'bin/build.js', 'tsconfig.build.json']) copyFileSync(join(ROOT, f), join(project, f))
writeFileSync(join(project, 'package.json'), '{ "type": "module" }\n')
writeFileSync(
  join(project, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true,
      allowImportingTsExtensions: true, noEmit: true, types: ['node'],
    },
  }),
)
symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'))
writeFileSync(join(project, 'src', 'cli', 'main.ts'), "import { greeting } from './greeting.ts'\nconsole.log(greeting(process.argv.slice(2)))\n")
const greeting = (body: string) => writeFileSync(join(project, 'src', 'cli', 'greeting.ts'), `export function greeting(args: string[]): string {\n  ${body}\n}\n`)

function start(args: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(project, 'bin', 'pemba.js'), ...args], { cwd: project })
    let out = ''
    let err = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    p.on('close', (code) => resolve({ code, out, err }))
  })
}

const stamp = () => JSON.parse(readFileSync(join(project, 'dist', '.build.json'), 'utf8')).startedAt as number
const leftovers = () => readdirSync(project).filter((f) => f.startsWith('dist.'))

it('builds dist/ on first use, reuses a current one, and rebuilds after a source changes', { timeout: 120_000 }, async () => {
  greeting("return `v1 ${args.join(' ')}`")
  expect(existsSync(join(project, 'dist'))).toBe(false)
  expect(await start(['a', 'b'])).toEqual({ code: 0, out: 'v1 a b\n', err: '' })
  expect(existsSync(join(project, 'dist', 'cli', 'main.js.map'))).toBe(true)
  const first = stamp()

  expect((await start()).out).toBe('v1 \n')
  expect(stamp()).toBe(first)

  greeting("return 'v2'")
  const later = new Date(Date.now() + 2000)
  utimesSync(join(project, 'src', 'cli', 'greeting.ts'), later, later)
  expect((await start()).out).toBe('v2\n')
  expect(stamp()).toBeGreaterThan(first)
  expect(leftovers()).toEqual([])
})

it('starts racing on a missing dist/ all succeed and leave nothing behind', { timeout: 120_000 }, async () => {
  rmSync(join(project, 'dist'), { recursive: true, force: true })
  const runs = await Promise.all([start(), start(), start(), start()])
  for (const r of runs) expect(r).toEqual({ code: 0, out: 'v2\n', err: '' })
  expect(leftovers()).toEqual([])
})

it('a failed build says so, exits non-zero and keeps the previous dist/', { timeout: 120_000 }, async () => {
  const before = stamp()
  greeting('return 42')
  const later = new Date(Date.now() + 4000)
  utimesSync(join(project, 'src', 'cli', 'greeting.ts'), later, later)
  const r = await start()
  expect(r.code).not.toBe(0)
  expect(r.out).toBe('')
  expect(r.err).toContain("Type 'number' is not assignable to type 'string'")
  expect(r.err).toContain('pemba: building dist/ failed')
  expect(stamp()).toBe(before)
  expect(leftovers()).toEqual([])
})
