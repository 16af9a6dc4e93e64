/**
 * The settings as command-line options (commander), built from the schema of settings.ts: one
 * `--kebab-name <value>` per setting, with its environment variable and default in `--help`,
 * listed under its group; on/off settings may be given alone (`--create-dirs` = `on`). Plus
 * `--config <file>`. Commander only reads the command line here: loadConfig (load.ts) merges it
 * with the defaults, the config file and the environment, and the schema checks every value.
 *
 * @module
 */
import { Command, CommanderError, Option } from 'commander'
import { CONFIG_FILE_ENV, DEFAULTS, kebab, SETTING_KEYS, settingMeta, type SettingKey } from './settings.ts'
import { ConfigError } from './settings.ts'

/** The values given on the command line, by setting key, and the config file if one was named. */
export type SettingFlags = Partial<Record<SettingKey, string>> & { config?: string }

/** The help group of `--config`. */
const CONFIG_GROUP = 'Configuration file'

/**
 * The settings groups a one-shot database tool (migrate, backup, tuple and store commands with
 * `--database-url`) lists in its `--help`: the others (the port, the caches, the decision log…)
 * are still accepted, as flags too, so one `--config` file or environment serves every command,
 * but listing them buried the few flags that matter under ~240 lines.
 */
export const TOOL_SETTING_GROUPS: readonly string[] = ['Database']

/**
 * addSettingOptions adds `--config` and one option per setting to `cmd`. With `shownGroups`,
 * `--help` lists only the settings of those groups (see TOOL_SETTING_GROUPS) and says that the
 * rest are accepted.
 */
export function addSettingOptions(cmd: Command, options: { shownGroups?: readonly string[] } = {}): Command {
  const { shownGroups } = options
  cmd.addOption(
    new Option('--config <file>', 'a YAML or JSON file of settings (keys as the flags without --); env and flags override it')
      .env(CONFIG_FILE_ENV)
      .helpGroup(`${CONFIG_GROUP}:`),
  )
  for (const key of SETTING_KEYS) {
    const meta = settingMeta(key)
    const option = new Option(`--${kebab(key)} ${meta.value}`, meta.description).env(meta.env).helpGroup(`${meta.group}:`)
    if (meta.value === '[on|off]') option.preset('on')
    const fallback = DEFAULTS[key]
    if (fallback !== '' && fallback !== undefined) option.default(fallback)
    if (shownGroups && !shownGroups.includes(meta.group)) option.hideHelp()
    cmd.addOption(option)
  }
  if (shownGroups) {
    cmd.addHelpText('after', '\nEvery other setting (`pemba serve --help`, docs/configuration.md) is accepted too, as a flag,\na PEMBA_* variable or a --config key.')
  }
  return cmd
}

/**
 * settingFlags: the settings given on `cmd`'s command line (not those commander read from the
 * environment or defaulted: loadConfig weighs those itself), as text. Flags given to a parent
 * command count too (`pemba migrate --database-url … status`: with positional options,
 * commander hands the flag to `migrate`), the subcommand's own winning.
 */
export function settingFlags(cmd: Command): SettingFlags {
  const flags: SettingFlags = cmd.parent ? settingFlags(cmd.parent) : {}
  const opts = cmd.opts<Record<string, unknown>>()
  for (const key of [...SETTING_KEYS, 'config'] as const) {
    if (cmd.getOptionValueSource(key) === 'cli') flags[key] = String(opts[key])
  }
  return flags
}

/**
 * parseSettingArgs reads setting flags from an argument list (`['--port', '0']`,
 * `['--port=0', '--create-dirs']`), as tests and benchmarks pass them to loadConfig; anything
 * else is a ConfigError.
 */
export function parseSettingArgs(argv: readonly string[]): SettingFlags {
  const cmd = addSettingOptions(new Command('pemba'))
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .allowExcessArguments(false)
  try {
    cmd.parse([...argv], { from: 'user' })
  } catch (e) {
    if (e instanceof CommanderError) throw new ConfigError(e.message.replace(/^error: /, '').replace(/\n/g, ' '))
    throw e
  }
  return settingFlags(cmd)
}
