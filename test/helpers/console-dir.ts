/**
 * A small built console in a temporary directory, standing in for dist/console (passed to
 * createPemba as `consoleDir`), so a test of /console does not depend on a build being there.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const CONSOLE_INDEX =
  '<!doctype html><html><head><script type="module" src="/console/assets/index-abc123.js"></script></head><body><div id="app"></div></body></html>\n'

/** makeConsoleDir writes index.html and one hashed script; `remove` deletes the directory. */
export function makeConsoleDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-console-'))
  mkdirSync(join(dir, 'assets'))
  writeFileSync(join(dir, 'index.html'), CONSOLE_INDEX)
  writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log("pemba console")\n')
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}
