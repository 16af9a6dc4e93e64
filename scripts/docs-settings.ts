/**
 * `npm run docs:settings`: writes the settings table of docs/configuration.md (between
 * `<!-- settings:start -->` and `<!-- settings:end -->`) from the settings schema
 * (src/config/settings.ts), so the documentation lists exactly what `pemba serve --help` does.
 * test/cli/docs-settings.test.ts fails when the file's table differs from the schema's.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  CONFIG_FILE_ENV,
  DEFAULTS,
  kebab,
  KNOWN_NON_SETTINGS,
  SETTING_KEYS,
  settingMeta,
} from '../src/config/settings.ts'

export const CONFIGURATION_DOC = fileURLToPath(new URL('../docs/configuration.md', import.meta.url))
const START = '<!-- settings:start -->'
const END = '<!-- settings:end -->'

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
const code = (s: string) => (s === '' ? '' : `\`${s}\``)

/** settingsTable: the Markdown between the markers, from the schema. */
export function settingsTable(): string {
  const rows = [
    '| variable | flag | default | meaning |',
    '|---|---|---|---|',
    `| \`${CONFIG_FILE_ENV}\` | \`--config\` | | a YAML or JSON file of the settings below, keyed as the flags without \`--\` ` +
      '(`database-url: sqlite:./pemba.db`); the environment and flags override it |',
  ]
  for (const key of SETTING_KEYS) {
    const meta = settingMeta(key)
    rows.push(`| \`${meta.env}\` | \`--${kebab(key)}\` | ${code(String(DEFAULTS[key] ?? ''))} | ${cell(meta.description)} |`)
  }
  rows.push(
    '',
    'Variables that start with `PEMBA_` but are not settings: the server accepts them (they are read by the',
    'tests, benchmarks and examples) and refuses any other.',
    '',
    '| variable | read by |',
    '|---|---|',
    ...Object.entries(KNOWN_NON_SETTINGS).map(([name, about]) => `| \`${name}\` | ${cell(about)} |`),
  )
  return rows.join('\n')
}

/** withTable: `doc` with its table replaced by `table`; throws when the markers are missing. */
export function withTable(doc: string, table: string): string {
  const start = doc.indexOf(START)
  const end = doc.indexOf(END)
  if (start === -1 || end < start) throw new Error(`docs/configuration.md needs the markers ${START} and ${END}`)
  return `${doc.slice(0, start + START.length)}\n${table}\n${doc.slice(end)}`
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const doc = readFileSync(CONFIGURATION_DOC, 'utf8')
  const next = withTable(doc, settingsTable())
  if (next === doc) console.log('docs/configuration.md: the settings table is up to date')
  else {
    writeFileSync(CONFIGURATION_DOC, next)
    console.log('docs/configuration.md: settings table written')
  }
}
