// Builds dist/ from src/ with tsc (tsconfig.build.json), for bin/pemba.js and `npm run build`.
// Plain JavaScript, so it runs before anything is compiled.
//
// dist/ is stale when it is missing, or when a file under src/ (or a tsconfig) changed after the
// build that made it started: dist/.build.json records that instant. Builds are serialised by a
// lock directory (mkdir is atomic), and each writes to a temporary directory renamed into place
// once tsc succeeded, so a process never runs a half-written dist/ and two first starts at once
// build once.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const DIST = join(ROOT, 'dist')
const SRC = join(ROOT, 'src')
/** The web console's sources (Vite builds them into dist/console/). */
const CONSOLE = join(ROOT, 'console')
const CONSOLE_SOURCE = /\.(ts|tsx|css|html|svg)$/
const STAMP = join(DIST, '.build.json')
const LOCK = join(ROOT, 'dist.lock')
/** A lock older than this is left over from a build that died; it is taken over. */
const STALE_LOCK_MS = 5 * 60_000
const INPUTS = ['tsconfig.json', 'tsconfig.build.json'].map((f) => join(ROOT, f))

/** newestSource: the latest modification time (ms) among the compiler's inputs, 0 if there are none. */
function newestSource() {
  let newest = 0
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs)
    }
  }
  if (existsSync(SRC)) walk(SRC)
  const walkConsole = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walkConsole(path)
      else if (CONSOLE_SOURCE.test(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs)
    }
  }
  if (existsSync(CONSOLE)) walkConsole(CONSOLE)
  for (const f of INPUTS) if (existsSync(f)) newest = Math.max(newest, statSync(f).mtimeMs)
  return newest
}

/** isStale: dist/ is missing, or older than its sources (an installed package without src/ never is). */
function isStale() {
  if (!existsSync(join(DIST, 'cli', 'main.js'))) return true
  if (!existsSync(SRC)) return false
  try {
    const { startedAt } = JSON.parse(readFileSync(STAMP, 'utf8'))
    return !(typeof startedAt === 'number' && newestSource() <= startedAt)
  } catch {
    return true
  }
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** withLock runs `fn` holding the build lock, waiting for another build to finish first. */
function withLock(fn) {
  for (;;) {
    try {
      mkdirSync(LOCK)
      break
    } catch (e) {
      if (e.code !== 'EEXIST') throw e
      let age = 0
      try {
        age = Date.now() - statSync(LOCK).mtimeMs
      } catch {
        continue // released meanwhile
      }
      if (age > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true })
      else sleep(100)
    }
  }
  try {
    return fn()
  } finally {
    rmSync(LOCK, { recursive: true, force: true })
  }
}

/**
 * build compiles src/ into dist/ unless it is current (or always, with `force`); returns tsc's
 * exit code (0 when nothing was needed). tsc's messages go to stderr.
 */
export function build({ force = false, optional = false } = {}) {
  if (!force && !isStale()) return 0
  return withLock(() => {
    // Another process may have built it while this one waited for the lock.
    if (!force && !isStale()) return 0
    let tsc
    try {
      tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
    } catch {
      if (optional) {
        process.stderr.write('pemba: TypeScript is not installed (npm ci --omit=dev?): dist/ not built\n')
        return 0
      }
      process.stderr.write('pemba: dist/ is missing or out of date and TypeScript is not installed: run `npm ci`, then `npm run build`\n')
      return 1
    }
    const startedAt = Date.now()
    const tmp = join(ROOT, `dist.tmp-${process.pid}`)
    rmSync(tmp, { recursive: true, force: true })
    const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', tmp], {
      cwd: ROOT,
      stdio: ['ignore', 2, 2],
    })
    if (r.status !== 0) {
      rmSync(tmp, { recursive: true, force: true })
      process.stderr.write(`pemba: building dist/ failed (tsc exit ${r.status ?? r.signal})\n`)
      return r.status || 1
    }
    const consoleStatus = buildConsole(join(tmp, 'console'), optional)
    if (consoleStatus !== 0) {
      rmSync(tmp, { recursive: true, force: true })
      return consoleStatus
    }
    writeFileSync(join(tmp, '.build.json'), JSON.stringify({ startedAt }) + '\n')
    const old = join(ROOT, `dist.old-${process.pid}`)
    if (existsSync(DIST)) renameSync(DIST, old)
    renameSync(tmp, DIST)
    rmSync(old, { recursive: true, force: true })
    return 0
  })
}

/**
 * buildConsole runs Vite on console/ into `outDir` (dist/console/ once renamed into place).
 * Without Vite (`npm ci --omit=dev`) the server is built without its console, which it then
 * reports as off (PEMBA_CONSOLE); `optional` says that is only a warning.
 */
function buildConsole(outDir, optional) {
  if (!existsSync(CONSOLE)) return 0
  let vite
  try {
    // vite/bin/vite.js is not among the package's exports: found beside its package.json.
    vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin', 'vite.js')
  } catch {
    process.stderr.write('pemba: Vite is not installed (npm ci --omit=dev?): the console is not built\n')
    return optional ? 0 : 1
  }
  const r = spawnSync(
    process.execPath,
    [vite, 'build', '--config', join(CONSOLE, 'vite.config.ts'), '--outDir', outDir, '--emptyOutDir', '--logLevel', 'warn'],
    { cwd: ROOT, stdio: ['ignore', 2, 2] },
  )
  if (r.status !== 0) {
    process.stderr.write(`pemba: building the console failed (vite exit ${r.status ?? r.signal})\n`)
    return r.status || 1
  }
  return 0
}

// `node bin/build.js` (npm run build): always compile. `--prepare` (npm's prepare script, run by
// `npm ci`): compile, unless TypeScript is not installed (`npm ci --omit=dev`), which only warns.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = build({ force: true, optional: process.argv.includes('--prepare') })
}
