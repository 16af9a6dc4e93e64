/**
 * loadConfig: the configuration from, lowest first, the defaults, a config file, the
 * environment and the command line, checked by the schema of settings.ts. A misconfiguration
 * is a ConfigError naming the setting (and where the value came from), so the server stops at
 * start instead of running with, say, authentication off because of a typo.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { parsePresharedKeys } from '../auth/settings.ts'
import { createRedactor } from '../core/redact.ts'
import { parseSettingArgs, type SettingFlags } from './options.ts'
import {
  CONFIG_FILE_ENV,
  ConfigError,
  configSchema,
  DEFAULTS,
  kebab,
  KNOWN_NON_SETTINGS,
  SETTING_KEYS,
  settingMeta,
  type PembaConfig,
  type SettingKey,
} from './settings.ts'
import { nearest } from './suggest.ts'

/** Where the configuration comes from. */
export interface ConfigSource {
  /** The environment (`process.env`); PEMBA_* variables that are no setting are refused. */
  env: Record<string, string | undefined>
  /** Setting flags as an argument list: `['--port', '0', '--create-dirs']` (tests, benchmarks). */
  argv?: readonly string[]
  /** Setting flags already read by the CLI (src/cli/program.ts); they win over `argv`. */
  flags?: SettingFlags
}

const PREFIX = 'PEMBA_'

/** A raw value and where it came from, for the message when it is refused. */
interface Given {
  value: string
  /** '' for the environment (the message names the variable already), else `--port` or `port in f.yaml`. */
  from: string
}

/** loadConfig reads and checks the configuration; throws ConfigError on anything wrong. */
export function loadConfig(source: ConfigSource): PembaConfig {
  checkEnvironmentNames(source.env)
  const flags: SettingFlags = { ...(source.argv ? parseSettingArgs(source.argv) : {}), ...source.flags }
  const given = new Map<SettingKey, Given>()
  const file = flags.config ?? nonEmpty(source.env[CONFIG_FILE_ENV])
  let fileKeys: string | undefined
  if (file !== undefined) {
    for (const [key, value] of Object.entries(readConfigFile(file)) as [SettingKey, string][]) {
      if (key === 'authPresharedKeys') fileKeys = value
      given.set(key, { value, from: `${kebab(key)} in ${file}` })
    }
  }
  for (const key of SETTING_KEYS) {
    const value = source.env[settingMeta(key).env]
    // An empty variable means "not set", except for the settings where empty means off
    // (PEMBA_CORS_ORIGINS=''): there it overrides a config file's value, as a flag would.
    if (value === undefined || (value === '' && DEFAULTS[key] !== '')) continue
    given.set(key, { value, from: '' })
  }
  for (const key of SETTING_KEYS) {
    const value = flags[key]
    if (value !== undefined) given.set(key, { value, from: `--${kebab(key)}` })
  }
  const raw = Object.fromEntries([...given].map(([key, g]) => [key, g.value]))
  const result = configSchema.safeParse(raw)
  if (result.success) return result.data
  const [first, ...more] = result.error.issues
  const key = first.path[0] as SettingKey | undefined
  const from = key === undefined ? '' : (given.get(key)?.from ?? '')
  // Messages repeat the value refused (`got '…'`): the preshared keys given anywhere (the file,
  // the environment, a flag), checked or not, are hidden in them.
  const keys = presharedKeysIn([fileKeys, source.env[settingMeta('authPresharedKeys').env], flags.authPresharedKeys])
  throw new ConfigError(
    createRedactor(keys).text(
      first.message +
        (from ? ` (given as ${from})` : '') +
        (more.length > 0 ? ` (and ${more.length} more problem${more.length === 1 ? '' : 's'})` : ''),
    ),
  )
}

/**
 * presharedKeysIn: the keys in PEMBA_AUTH_PRESHARED_KEYS-style texts (`name=key,…`), as given
 * (before they are checked), so even a refused configuration's message can hide them.
 */
export function presharedKeysIn(texts: readonly (string | undefined)[]): string[] {
  const raw = texts.filter((r): r is string => r !== undefined && r !== '')
  try {
    return raw.flatMap((r) => parsePresharedKeys(r).map((k) => k.key))
  } catch {
    // Malformed: hide whatever follows each `=`, as a key would.
    return raw.flatMap((r) => r.split(',').map((e) => e.slice(e.indexOf('=') + 1).trim())).filter((k) => k !== '')
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}

/**
 * checkEnvironmentNames refuses a PEMBA_ variable that is neither a setting nor one of the
 * tools' own (KNOWN_NON_SETTINGS), naming the nearest setting.
 */
function checkEnvironmentNames(env: Record<string, string | undefined>): void {
  const settings = SETTING_KEYS.map((k) => settingMeta(k).env)
  const known = new Set([...settings, CONFIG_FILE_ENV, ...Object.keys(KNOWN_NON_SETTINGS)])
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(PREFIX) || env[name] === undefined || known.has(name)) continue
    const near = nearest(
      name.slice(PREFIX.length),
      [...settings, CONFIG_FILE_ENV].map((s) => s.slice(PREFIX.length)),
    )
    throw new ConfigError(
      `unknown environment variable ${name}: ` +
        (near ? `did you mean ${PREFIX}${near}?` : 'it is not a Pemba setting (pemba serve --help lists them)'),
    )
  }
}

/**
 * readConfigFile reads a YAML or JSON file of settings, keyed as the flags without `--`
 * (`database-url: sqlite:./pemba.db`). Numbers become text as if given in the environment,
 * booleans `on`/`off`; an unknown key is refused with the nearest known one.
 */
function readConfigFile(path: string): Partial<Record<SettingKey, string>> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new ConfigError(`config file ${path} (--config, ${CONFIG_FILE_ENV}) cannot be read: ${(e as Error).message}`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`config file ${path} must hold a mapping of settings (such as 'port: 8080')`)
  }
  const byName = new Map(SETTING_KEYS.map((k) => [kebab(k), k]))
  const out: Partial<Record<SettingKey, string>> = {}
  for (const [name, value] of Object.entries(doc as Record<string, unknown>)) {
    const key = byName.get(name)
    if (key === undefined) {
      const near = nearest(name, byName.keys())
      throw new ConfigError(
        `config file ${path}: unknown setting '${name}'` +
          (near ? `: did you mean '${near}'?` : ' (keys are the flags of pemba serve --help, without --)'),
      )
    }
    if (typeof value === 'string' || typeof value === 'number') out[key] = String(value)
    else if (typeof value === 'boolean') out[key] = value ? 'on' : 'off'
    else throw new ConfigError(`config file ${path}: '${name}' must be a single value (text or a number)`)
  }
  return out
}
