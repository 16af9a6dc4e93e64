/**
 * The configuration (src/config/): one schema for every setting, the PEMBA_ variables that are
 * refused, the config file and the precedence defaults < file < environment < flags, and the
 * SQLite directory rule. In-process; test/cli/command.test.ts runs the same through the command.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, DEFAULTS, loadConfig } from '../../src/config.ts'
import { kebab, KNOWN_NON_SETTINGS, SETTING_KEYS, settingMeta } from '../../src/config/settings.ts'
import { editDistance, nearest } from '../../src/config/suggest.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The ConfigError's message, or a failure when none is thrown. */
function refusal(load: () => unknown): string {
  try {
    load()
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return (e as Error).message
  }
  throw new Error('expected a ConfigError')
}

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

describe('the settings schema', () => {
  it('names every variable PEMBA_ and the key in upper snake case, and has a description and group for each', () => {
    for (const key of SETTING_KEYS) {
      const meta = settingMeta(key)
      expect(meta.env).toBe(`PEMBA_${kebab(key).replace(/-/g, '_').toUpperCase()}`)
      expect(meta.description.length).toBeGreaterThan(10)
      expect(meta.group).not.toBe('')
    }
    expect(new Set(SETTING_KEYS.map((k) => settingMeta(k).env)).size).toBe(SETTING_KEYS.length)
  })

  it('names, in every refusal of a malformed value, the variable the value was given in', () => {
    let refused = 0
    for (const key of SETTING_KEYS) {
      const { env } = settingMeta(key)
      try {
        loadConfig({ env: { [env]: 'not valid, not at all' } })
      } catch (e) {
        expect((e as Error).message, key).toMatch(new RegExp(`^${env}\\b`))
        refused++
      }
    }
    expect(refused).toBeGreaterThan(40)
  })

  it('gives the defaults the quick start relies on', () => {
    expect(loadConfig({ env: {} })).toEqual(DEFAULTS)
    expect(DEFAULTS).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      databaseUrl: 'sqlite:./data/pemba.db',
      authMode: 'none',
      logFormat: 'json',
      createDirs: 'off',
      metricsAddr: '',
    })
  })

  it('refuses each malformed value with a message naming the variable and the value', () => {
    const cases: [Record<string, string>, string][] = [
      [{ PEMBA_PORT: 'abc' }, "PEMBA_PORT must be a non-negative integer, got 'abc'"],
      [{ PEMBA_PORT: '-1' }, "PEMBA_PORT must be a non-negative integer, got '-1'"],
      [{ PEMBA_PORT: '70000' }, 'PEMBA_PORT must be at most 65535'],
      [{ PEMBA_PG_POOL_SIZE: '0' }, 'PEMBA_PG_POOL_SIZE must be at least 1'],
      [{ PEMBA_MIGRATIONS: 'later' }, "PEMBA_MIGRATIONS must be 'auto' or 'check', got 'later'"],
      [{ PEMBA_LOG_LEVEL: 'loud' }, "PEMBA_LOG_LEVEL must be 'trace', 'debug', 'info', 'warn', 'error', 'fatal' or 'silent', got 'loud'"],
      [{ PEMBA_ACCESS_LOG: 'yes' }, "PEMBA_ACCESS_LOG must be 'on' or 'off', got 'yes'"],
      [{ PEMBA_JIT_MAX_DURATION: 'P1M' }, "PEMBA_JIT_MAX_DURATION must be a positive ISO 8601 duration such as PT8H, got 'P1M'"],
      [{ PEMBA_METRICS_ADDR: '9464' }, "PEMBA_METRICS_ADDR must be host:port (such as 127.0.0.1:9464), got '9464'"],
      [{ PEMBA_CORS_ORIGINS: 'https://a.example/app' }, "PEMBA_CORS_ORIGINS: 'https://a.example/app' is not an origin as browsers send it"],
      [{ PEMBA_ALLOWED_HOSTS: 'http://pemba.internal' }, "PEMBA_ALLOWED_HOSTS: 'http://pemba.internal' is not a host name"],
      [{ PEMBA_METRICS_ADDR: '127.0.0.1:99999' }, 'PEMBA_METRICS_ADDR must be host:port'],
      [{ PEMBA_HEADERS_TIMEOUT_MS: '40000' }, 'PEMBA_HEADERS_TIMEOUT_MS must not exceed PEMBA_REQUEST_TIMEOUT_MS'],
      [{ PEMBA_DECISION_LOG_BUFFER_MAX: '10' }, 'PEMBA_DECISION_LOG_BUFFER_MAX must be at least PEMBA_DECISION_LOG_BATCH (500)'],
      [{ PEMBA_DATABASE_URL: 'mysql://db/x' }, "PEMBA_DATABASE_URL 'mysql://db/x' is not supported"],
      [{ PEMBA_AUTH_MODE: 'preshared' }, 'PEMBA_AUTH_MODE=preshared needs PEMBA_AUTH_PRESHARED_KEYS'],
    ]
    for (const [env, message] of cases) expect(refusal(() => loadConfig({ env })), JSON.stringify(env)).toContain(message)
    expect(loadConfig({ env: { PEMBA_METRICS_ADDR: '[::1]:9464' } }).metricsAddr).toBe('[::1]:9464')
    // Two problems at once: the first is told, and that there are more.
    expect(refusal(() => loadConfig({ env: { PEMBA_PORT: 'x', PEMBA_LOG_LEVEL: 'y' } }))).toMatch(/PEMBA_PORT .* \(and 1 more problem\)$/)
  })
})

describe('PEMBA_ variables', () => {
  it('refuses one that is not a setting, naming the nearest', () => {
    expect(refusal(() => loadConfig({ env: { PEMBA_AUTH_MOD: 'preshared' } }))).toBe(
      'unknown environment variable PEMBA_AUTH_MOD: did you mean PEMBA_AUTH_MODE?',
    )
    expect(refusal(() => loadConfig({ env: { PEMBA_DATABSE_URL: 'sqlite::memory:' } }))).toContain('did you mean PEMBA_DATABASE_URL?')
    expect(refusal(() => loadConfig({ env: { PEMBA_PROT: '1' } }))).toContain('did you mean PEMBA_PORT?')
    // Empty still counts: `PEMBA_AUTH_MOD=` is the same typo.
    expect(refusal(() => loadConfig({ env: { PEMBA_AUTH_MOD: '' } }))).toContain('PEMBA_AUTH_MODE')
    expect(refusal(() => loadConfig({ env: { PEMBA_ZZZZZZZZ: '1' } }))).toBe(
      'unknown environment variable PEMBA_ZZZZZZZZ: it is not a Pemba setting (pemba serve --help lists them)',
    )
  })

  it('accepts the variables of the tests, benchmarks and examples, and other prefixes', () => {
    const env = Object.fromEntries(Object.keys(KNOWN_NON_SETTINGS).map((k) => [k, 'x']))
    expect(Object.keys(env)).toEqual(expect.arrayContaining(['PEMBA_TEST_POSTGRES_URL', 'PEMBA_REQUIRE_POSTGRES', 'PEMBA_API_TOKEN']))
    expect(loadConfig({ env: { ...env, PEMBAX: '1', OTHER_PEMBA_PORT: 'x' } })).toEqual(DEFAULTS)
  })

  it('suggests only what is close', () => {
    expect(editDistance('PORT', 'PROT')).toBe(1)
    expect(nearest('AUTH_MOD', ['AUTH_MODE', 'PORT'])).toBe('AUTH_MODE')
    expect(nearest('FOO', ['HOST', 'PORT'])).toBeUndefined()
  })
})

describe('flags', () => {
  it('win over the environment, in both spellings, and say where a refused value came from', () => {
    const c = loadConfig({ env: { PEMBA_PORT: '1' }, argv: ['--port', '2', '--log-level=debug'] })
    expect([c.port, c.logLevel]).toEqual([2, 'debug'])
    expect(refusal(() => loadConfig({ env: {}, argv: ['--port', 'x'] }))).toBe(
      "PEMBA_PORT must be a non-negative integer, got 'x' (given as --port)",
    )
    // The CLI's flags (already read by commander) win over argv's.
    expect(loadConfig({ env: {}, argv: ['--port', '2'], flags: { port: '3' } }).port).toBe(3)
  })

  it('take on/off settings alone as on', () => {
    expect(loadConfig({ env: {}, argv: ['--create-dirs'] }).createDirs).toBe('on')
    expect(loadConfig({ env: {}, argv: ['--access-log', 'off'] }).accessLog).toBe('off')
  })

  it('refuses unknown flags with a suggestion, and stray arguments', () => {
    expect(refusal(() => loadConfig({ env: {}, argv: ['--prot', '1'] }))).toBe("unknown option '--prot' (Did you mean --port?)")
    expect(refusal(() => loadConfig({ env: {}, argv: ['-p', '1'] }))).toContain("unknown option '-p'")
    expect(refusal(() => loadConfig({ env: {}, argv: ['--port', '1', 'extra'] }))).toContain('too many arguments')
  })
})

describe('the config file', () => {
  it('sits between the defaults and the environment, and the flags win over both (YAML)', () => {
    const path = file('pemba.yaml', 'port: 1111\nlog-level: debug\naccess-log: off\ncheck-cache-size: 7\n')
    const fromFile = loadConfig({ env: { PEMBA_CONFIG: path } })
    expect([fromFile.port, fromFile.logLevel, fromFile.accessLog, fromFile.checkCacheSize]).toEqual([1111, 'debug', 'off', 7])
    const envWins = loadConfig({ env: { PEMBA_CONFIG: path, PEMBA_PORT: '2222' } })
    expect([envWins.port, envWins.logLevel]).toEqual([2222, 'debug'])
    const flagWins = loadConfig({ env: { PEMBA_CONFIG: path, PEMBA_PORT: '2222' }, argv: ['--port', '3333'] })
    expect(flagWins.port).toBe(3333)
    // --config names the file too, and wins over PEMBA_CONFIG.
    const other = file('other.json', JSON.stringify({ port: 4444, 'decision-log': false }))
    const viaFlag = loadConfig({ env: { PEMBA_CONFIG: path }, argv: ['--config', other] })
    expect([viaFlag.port, viaFlag.decisionLog, viaFlag.logLevel]).toEqual([4444, 'off', 'info'])
  })

  it('an empty variable turns off what the file turned on (CORS origins, metrics address), and is no value elsewhere', () => {
    const path = file('on.yaml', 'cors-origins: https://a.example\nmetrics-addr: 127.0.0.1:9464\nport: 1111\n')
    expect(loadConfig({ env: { PEMBA_CONFIG: path } }).corsOrigins).toBe('https://a.example')
    const off = loadConfig({ env: { PEMBA_CONFIG: path, PEMBA_CORS_ORIGINS: '', PEMBA_METRICS_ADDR: '', PEMBA_PORT: '' } })
    expect([off.corsOrigins, off.metricsAddr, off.port]).toEqual(['', '', 1111])
  })

  it('hides a preshared key given in the file, the environment or a flag in any refusal that repeats it', () => {
    const key = 'k3y-from-anywhere-0123456789'
    const inFile = file('keys.yaml', `auth-preshared-keys: "ci=${key}"\nport: "${key}"\n`)
    for (const message of [
      refusal(() => loadConfig({ env: {}, argv: ['--config', inFile] })),
      refusal(() => loadConfig({ env: { PEMBA_AUTH_PRESHARED_KEYS: `ci=${key}` }, argv: ['--port', key] })),
      refusal(() => loadConfig({ env: { PEMBA_PORT: key }, argv: ['--auth-preshared-keys', `ci=${key}`] })),
    ]) {
      expect(message).toMatch(/^PEMBA_PORT must be a non-negative integer, got '\[REDACTED\]'/)
      expect(message).not.toContain(key)
    }
  })

  it('refuses unknown keys with the nearest one, and says which key of which file a bad value came from', () => {
    const typo = file('typo.yaml', 'database-ur: "sqlite::memory:"\n')
    expect(refusal(() => loadConfig({ env: {}, argv: ['--config', typo] }))).toBe(
      `config file ${typo}: unknown setting 'database-ur': did you mean 'database-url'?`,
    )
    const envName = file('env-name.yaml', 'PEMBA_PORT: 1\n')
    expect(refusal(() => loadConfig({ env: {}, argv: ['--config', envName] }))).toContain("unknown setting 'PEMBA_PORT'")
    const bad = file('bad-value.yaml', 'port: lots\n')
    expect(refusal(() => loadConfig({ env: {}, argv: ['--config', bad] }))).toBe(
      `PEMBA_PORT must be a non-negative integer, got 'lots' (given as port in ${bad})`,
    )
    const nested = file('nested.yaml', 'port:\n  value: 1\n')
    expect(refusal(() => loadConfig({ env: {}, argv: ['--config', nested] }))).toContain("'port' must be a single value")
    const list = file('list.yaml', '- port\n')
    expect(refusal(() => loadConfig({ env: {}, argv: ['--config', list] }))).toContain('must hold a mapping')
    const broken = file('broken.yaml', 'port: [1\n')
    expect(refusal(() => loadConfig({ env: {}, argv: ['--config', broken] }))).toContain('is not valid YAML or JSON')
    expect(refusal(() => loadConfig({ env: { PEMBA_CONFIG: join(dir, 'missing.yaml') } }))).toMatch(/missing\.yaml .*cannot be read/)
    expect(loadConfig({ env: {}, argv: ['--config', file('empty.yaml', '')] })).toEqual(DEFAULTS)
  })
})

describe('a SQLite file in a missing directory', () => {
  it('is refused naming PEMBA_DATABASE_URL, unless PEMBA_CREATE_DIRS=on; an existing directory is fine', () => {
    const url = `sqlite:${join(dir, 'no', 'such', 'pemba.db')}`
    expect(refusal(() => loadConfig({ env: { PEMBA_DATABASE_URL: url } }))).toBe(
      `PEMBA_DATABASE_URL '${url}' names a file in ${join(dir, 'no', 'such')}, which does not exist: ` +
        'create it, or start with --create-dirs (PEMBA_CREATE_DIRS=on)',
    )
    expect(loadConfig({ env: { PEMBA_DATABASE_URL: url, PEMBA_CREATE_DIRS: 'on' } }).databaseUrl).toBe(url)
    expect(loadConfig({ env: { PEMBA_DATABASE_URL: url }, argv: ['--create-dirs'] }).createDirs).toBe('on')
    mkdirSync(join(dir, 'exists'))
    expect(loadConfig({ env: { PEMBA_DATABASE_URL: `sqlite:${join(dir, 'exists', 'p.db')}` } }).databaseUrl).toContain('exists')
    // The default ./data, and any file in it, are created whatever the setting.
    expect(loadConfig({ env: { PEMBA_DATABASE_URL: 'sqlite:./data/other.db' } }).createDirs).toBe('off')
    expect(loadConfig({ env: { PEMBA_DATABASE_URL: 'sqlite::memory:' } }).databaseUrl).toBe('sqlite::memory:')
  })
})
