/** Migration folders as older Pemba releases shipped them, for upgrade tests. */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { MIGRATION_FOLDERS } from '../../src/store/sql/backends.ts'

/**
 * oldMigrations writes into `into` a migrations folder holding only the first `n` journal
 * entries of `dialect` (n = 1: just 0000_init), and returns its path.
 */
export function oldMigrations(dialect: 'sqlite' | 'postgres', n: number, into: string): string {
  const from = MIGRATION_FOLDERS[dialect]
  const journal = JSON.parse(readFileSync(join(from, 'meta', '_journal.json'), 'utf8'))
  journal.entries = journal.entries.slice(0, n)
  mkdirSync(join(into, 'meta'), { recursive: true })
  writeFileSync(join(into, 'meta', '_journal.json'), JSON.stringify(journal))
  for (const e of journal.entries)
    copyFileSync(join(from, `${e.tag}.sql`), join(into, `${e.tag}.sql`))
  return into
}
