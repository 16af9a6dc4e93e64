/**
 * PEMBA_WORKERS as a setting: `1` by default (one process, no primary), `auto` or a whole
 * number of at least 1; anything else, and more than one worker on `sqlite::memory:` (each
 * worker would have a database of its own), stop the start with a message naming the setting.
 */
import { availableParallelism } from 'node:os'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { ConfigError } from '../../src/config/settings.ts'
import { workerCount } from '../../src/cli/serve-startup.ts'

function refusal(load: () => unknown): string {
  try {
    load()
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return (e as Error).message
  }
  throw new Error('expected a ConfigError')
}

const FILE = { PEMBA_DATABASE_URL: 'sqlite:./data/pemba.db' }

describe('PEMBA_WORKERS', () => {
  it('is 1 by default: one process', () => {
    const config = loadConfig({ env: FILE })
    expect(config.workers).toBe(1)
    expect(workerCount(config)).toBe(1)
  })

  it('takes a whole number, or auto for one worker per available core', () => {
    expect(workerCount(loadConfig({ env: { ...FILE, PEMBA_WORKERS: '3' } }))).toBe(3)
    expect(workerCount(loadConfig({ env: FILE, argv: ['--workers', '2'] }))).toBe(2)
    const auto = loadConfig({ env: { ...FILE, PEMBA_WORKERS: 'auto' } })
    expect(auto.workers).toBe('auto')
    expect(workerCount(auto)).toBe(availableParallelism())
  })

  it('refuses anything else, naming the setting', () => {
    for (const bad of ['0', '-1', '1.5', 'two', 'AUTO', ' 2', '02', '100000']) {
      expect(refusal(() => loadConfig({ env: { ...FILE, PEMBA_WORKERS: bad } })), bad).toContain(
        `PEMBA_WORKERS must be 'auto' or a whole number from 1 to 9999, got '${bad}'`,
      )
    }
  })

  it('refuses more than one worker on sqlite::memory:, which lives inside one process', () => {
    for (const workers of ['2', 'auto']) {
      const message = refusal(() => loadConfig({ env: { PEMBA_DATABASE_URL: 'sqlite::memory:', PEMBA_WORKERS: workers } }))
      expect(message).toContain(`PEMBA_WORKERS=${workers} cannot be used with PEMBA_DATABASE_URL=sqlite::memory:`)
    }
    expect(loadConfig({ env: { PEMBA_DATABASE_URL: 'sqlite::memory:', PEMBA_WORKERS: '1' } }).workers).toBe(1)
  })
})
