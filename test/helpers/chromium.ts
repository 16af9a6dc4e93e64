/**
 * A real browser for tests: Debian's `chromium` (or PEMBA_CHROMIUM), driven headless by
 * playwright-core, which passes `--no-sandbox`, `--headless` and a temporary profile itself.
 *
 * Availability follows the nginx and PostgreSQL suites' rule: without the executable the suites
 * are skipped with the reason on the console, never passed silently; with
 * `PEMBA_REQUIRE_CHROMIUM=1` (as .ci/run sets, after installing it) they fail instead.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { describe, it } from 'vitest'

export interface ChromiumAvailability {
  /** The executable, when it was found and answers `--version`. */
  executable?: string
  /** Why the browser suites cannot run, when they cannot. */
  reason?: string
  /** PEMBA_REQUIRE_CHROMIUM=1: a missing browser fails the run. */
  required: boolean
}

/** findChromium looks for PEMBA_CHROMIUM, else /usr/bin/chromium, and checks that it runs. */
export function findChromium(): ChromiumAvailability {
  const required = process.env.PEMBA_REQUIRE_CHROMIUM === '1'
  const executable = process.env.PEMBA_CHROMIUM ?? '/usr/bin/chromium'
  if (!existsSync(executable)) {
    return { required, reason: `${executable} does not exist (apt-get install -y chromium, or set PEMBA_CHROMIUM; .ci/run installs it)` }
  }
  const r = spawnSync(executable, ['--version'], { encoding: 'utf8', timeout: 30_000 })
  if (r.error || r.status !== 0) return { required, reason: `${executable} --version failed: ${r.error?.message ?? r.stderr.trim()}` }
  return { executable, required }
}

/**
 * describeChromium registers `fn` as a suite when the browser is there; otherwise it prints why
 * and skips it, or (PEMBA_REQUIRE_CHROMIUM=1) registers one failing test that says why.
 */
export function describeChromium(name: string, availability: ChromiumAvailability, fn: () => void): void {
  if (!availability.executable && availability.required) {
    describe(name, () => {
      it('has chromium (PEMBA_REQUIRE_CHROMIUM=1)', () => {
        throw new Error(`browser suites cannot run: ${availability.reason}`)
      })
    })
    return
  }
  if (!availability.executable) console.warn(`browser suites not run (${name}): ${availability.reason}`)
  describe.skipIf(!availability.executable)(name, fn)
}

/** launchChromium starts a headless browser; close it with `browser.close()`. */
export function launchChromium(availability: ChromiumAvailability): Promise<Browser> {
  if (!availability.executable) throw new Error(`chromium is not available: ${availability.reason}`)
  return chromium.launch({ executablePath: availability.executable, headless: true })
}
