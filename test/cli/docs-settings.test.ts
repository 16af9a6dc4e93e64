/**
 * docs/configuration.md's settings table is the schema's: a setting added, renamed or
 * re-described in src/config/settings.ts without `npm run docs:settings` fails here.
 */
import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { CONFIGURATION_DOC, settingsTable, withTable } from '../../scripts/docs-settings.ts'
import { SETTING_KEYS, settingMeta } from '../../src/config/settings.ts'

it('docs/configuration.md lists every setting as the schema describes it', () => {
  const doc = readFileSync(CONFIGURATION_DOC, 'utf8')
  const expected = withTable(doc, settingsTable())
  if (doc !== expected) {
    throw new Error('docs/configuration.md: the settings table differs from src/config/settings.ts; run `npm run docs:settings`')
  }
  for (const key of SETTING_KEYS) expect(doc).toContain(`| \`${settingMeta(key).env}\` |`)
})

it('replaces only what lies between the markers', () => {
  const doc = 'intro\n<!-- settings:start -->\nold\n<!-- settings:end -->\noutro\n'
  expect(withTable(doc, 'new')).toBe('intro\n<!-- settings:start -->\nnew\n<!-- settings:end -->\noutro\n')
  expect(() => withTable('no markers', 'x')).toThrow(/needs the markers/)
})
