/**
 * vitest's globalSetup: builds dist/ once, before any test file runs, when it is missing or
 * older than src/ (bin/pemba.js would otherwise build it in whichever spawned process comes
 * first, while other test files wait on the build lock and their start-up timeouts run).
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export default function setup(): void {
  // `pemba --version` builds dist/ if it is stale, then prints the version.
  const r = spawnSync(process.execPath, ['bin/pemba.js', '--version'], { cwd: ROOT, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`building dist/ for the tests failed:\n${r.stderr}${r.stdout}`)
}
