/**
 * `pemba migrate` applies the database's pending migrations and says which (or "nothing
 * pending"); `pemba migrate status` lists the applied and pending ones and changes nothing.
 * Both act on PEMBA_DATABASE_URL whatever PEMBA_MIGRATIONS says: migrate is how servers started
 * with `check` get migrated. Their output is plain lines, for the person who ran them.
 *
 * @module
 */
import { databaseBackend } from '../config.ts'
import { addSettingOptions, TOOL_SETTING_GROUPS } from '../config/options.ts'
import type { Register } from './program.ts'

export const migrateCli: Register = (program, ctx) => {
  const out = ctx.io.out
  const migrate = program
    .command('migrate')
    .description('apply the pending database migrations and exit, printing which (or "nothing pending")')
  addSettingOptions(migrate, { shownGroups: TOOL_SETTING_GROUPS })
  migrate.action(() =>
    ctx.exec(migrate, async (config) => {
      const { backend, target } = databaseBackend(config.databaseUrl)
      const where = backend.redactUrl(config.databaseUrl)
      const applied = await backend.migrate(target)
      if (applied.length === 0) {
        const { applied: all } = await backend.migrationStatus(target)
        out.log(`nothing pending: ${where} has all ${all.length} migrations applied`)
      } else {
        out.log(`migrations applied to ${where}: ${applied.join(', ')}`)
      }
      return 0
    }),
  )

  const status = migrate
    .command('status')
    .description('list the applied and pending migrations of the database, changing nothing')
  addSettingOptions(status, { shownGroups: TOOL_SETTING_GROUPS })
  status.action(() =>
    ctx.exec(status, async (config) => {
      const { backend, target } = databaseBackend(config.databaseUrl)
      const { applied, pending } = await backend.migrationStatus(target)
      out.log(`${backend.redactUrl(config.databaseUrl)}: ${applied.length} applied, ${pending.length} pending`)
      for (const tag of applied) out.log(`  applied  ${tag}`)
      for (const tag of pending) out.log(`  pending  ${tag}`)
      if (pending.length > 0) out.log(`run 'pemba migrate' to apply the pending ones`)
      return 0
    }),
  )
}
