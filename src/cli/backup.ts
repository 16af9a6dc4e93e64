/**
 * `pemba backup …`: online backup and restore of the whole database (src/store/backup/):
 *
 *     pemba backup create <file> [--with-decisions] [--overwrite]   # while servers keep serving
 *     pemba backup restore <file> [--force]                          # into an empty database
 *     pemba backup inspect <file> [--verify] [--json]                # the manifest; --verify reads it all
 *
 * create and restore take the database settings as flags (`--database-url`, …) like `pemba
 * serve`. A restore refuses a non-empty database unless `--force` (which wipes it first, in the
 * same transaction), and a corrupt or truncated file before it writes anything: exit 1 either
 * way, with the reason. See docs/backup.md.
 *
 * @module
 */
import { addSettingOptions, TOOL_SETTING_GROUPS } from '../config/options.ts'
import type { Manifest } from '../store/backup/index.ts'
import { runProgram, type CliIo, type Register, type Run } from './program.ts'

/** `12,345`. */
const count = (n: number) => n.toLocaleString('en-US')

function size(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`

/** `3 stores, 100,000 tuples, 100,012 changelog entries`: what a backup holds, in one line. */
function contents(m: Manifest): string {
  const rows = (name: string) => m.tables.find((t) => t.name === name)?.rows ?? 0
  const parts = [`${count(m.stores.length)} stores`, `${count(rows('tuples'))} tuples`, `${count(rows('changelog'))} changelog entries`]
  parts.push(m.decision_log ? `${count(rows('decision_log'))} decisions` : 'no decision log')
  return parts.join(', ')
}

/**
 * printable: `s` with control characters escaped (`\t`, `\n`, `\u001b`): a store's name is
 * whatever its creator chose, and a terminal would act on an escape sequence in it.
 */
export function printable(s: string): string {
  return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

const ESCAPES: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' }

/** The manifest as text for a person: what, from where, when, and every table. */
export function formatManifest(m: Manifest): string {
  const p = printable
  const lines = [
    `Pemba backup (format ${m.format_version}) made by Pemba ${p(m.pemba_version)} on ${p(m.created_at)}`,
    `source: ${p(m.database)} (${p(m.backend)}; migrations ${m.migrations.length > 0 ? p(m.migrations[m.migrations.length - 1]) : 'none'})`,
    `decision log: ${m.decision_log ? 'included' : 'not included'}`,
    '',
    'STORE                       REVISION  NAME',
    ...m.stores.map((s) => `${p(s.id).padEnd(26)}  ${String(s.revision).padStart(8)}  ${p(s.name)}${s.deleted ? ' (deleted)' : ''}`),
    '',
    'TABLE                     ROWS  SHA256',
    ...m.tables.map((t) => `${p(t.name).padEnd(21)} ${count(t.rows).padStart(9)}  ${p(t.sha256)}`),
  ]
  return lines.join('\n')
}

/** The exit code of a command stopped by a signal: 128 + its number, as a shell reports it. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const

/**
 * refusing: a refused backup or restore, or an unreadable file, is the operator's to fix, not a
 * fault of Pemba's: its message alone, exit 1 (anything else reaches exec's handler). It also
 * owns the command's SIGINT/SIGTERM: the first aborts `signal` (the backup removes its scratch
 * files, a restore rolls back), exit 130/143; a second exits at once.
 */
function refusing(out: CliIo['out'], command: string, run: (config: Parameters<Run>[0], redactor: Parameters<Run>[1], signal: AbortSignal) => Promise<number>): Run {
  return async (config, redactor) => {
    const { BackupFileError, BackupInterrupted, BackupRefused } = await import('../store/backup/index.ts')
    const controller = new AbortController()
    let received: keyof typeof SIGNAL_EXIT | undefined
    const stop = (signal: keyof typeof SIGNAL_EXIT) => {
      if (received) process.exit(SIGNAL_EXIT[signal])
      received = signal
      controller.abort(new BackupInterrupted(`interrupted (${signal})`))
    }
    const onInt = () => stop('SIGINT')
    const onTerm = () => stop('SIGTERM')
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
    try {
      return await run(config, redactor, controller.signal)
    } catch (e) {
      if (!(e instanceof BackupRefused || e instanceof BackupFileError)) throw e
      out.error(redactor.text(`pemba backup ${command}: ${e.message}`))
      return e instanceof BackupInterrupted && received ? SIGNAL_EXIT[received] : 1
    } finally {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    }
  }
}

interface CreateFlags {
  withDecisions?: boolean
  overwrite?: boolean
}

export const backupCli: Register = (program, ctx) => {
  const out = ctx.io.out
  const backup = program
    .command('backup')
    .description('back up the whole database while servers keep serving, restore a backup, inspect one')

  const create = backup
    .command('create')
    .description('write a consistent, compressed snapshot of the database to <file> (servers keep serving and writing)')
    .argument('<file>', 'the backup file to write, e.g. pemba-2026-12-06.backup.gz')
    .option('--with-decisions', 'include the decision log (left out by default: it can be larger than everything else)')
    .option('--overwrite', 'replace <file> if it exists')
  addSettingOptions(create, { shownGroups: TOOL_SETTING_GROUPS })
  create.action((file: string, flags: CreateFlags) =>
    ctx.exec(create, refusing(out, 'create', async (config, redactor, signal) => {
      const { createBackup } = await import('../store/backup/index.ts')
      const t0 = performance.now()
      const { manifest, bytes } = await createBackup(config.databaseUrl, file, {
        withDecisions: flags.withDecisions === true,
        overwrite: flags.overwrite === true,
        pembaVersion: program.version() ?? 'unknown',
        clock: () => new Date(),
        signal,
      })
      out.log(redactor.text(`backup of ${manifest.database} written to ${file} (${size(bytes)}) in ${seconds(t0)}: ${contents(manifest)}`))
      return 0
    })),
  )

  const restore = backup
    .command('restore')
    .description('restore <file> into the configured database, which must be empty (migrations are applied first)')
    .argument('<file>', 'a backup written by `pemba backup create`')
    .option('--force', 'wipe a non-empty database first (every Pemba table, the decision log too), in the same transaction')
  addSettingOptions(restore, { shownGroups: TOOL_SETTING_GROUPS })
  restore.action((file: string, flags: { force?: boolean }) =>
    ctx.exec(restore, refusing(out, 'restore', async (config, redactor, signal) => {
      const { restoreBackup } = await import('../store/backup/index.ts')
      const { databaseBackend } = await import('../config.ts')
      const t0 = performance.now()
      const { manifest, wiped, warnings } = await restoreBackup(config.databaseUrl, file, { force: flags.force === true, signal })
      const where = databaseBackend(config.databaseUrl).backend.redactUrl(config.databaseUrl)
      for (const w of warnings) out.error(redactor.text(`pemba backup restore: warning: ${w}`))
      out.log(
        redactor.text(
          `restored ${file} (made ${printable(manifest.created_at)} from ${printable(manifest.backend)}) into ${where}` +
            `${wiped ? ', wiped first (--force)' : ''}, in ${seconds(t0)}: ${contents(manifest)}`,
        ),
      )
      return 0
    })),
  )

  const inspect = backup
    .command('inspect')
    .description("print a backup's manifest: where and when it was made, each store's revision, each table's rows and checksum")
    .argument('<file>', 'a backup written by `pemba backup create`')
    .option('--verify', 'read the whole file and check every table against its checksum (exit 1 if any differs)')
    .option('--json', 'print the manifest as JSON (with --verify: and `verified`, `verify_error`)')
  inspect.action((file: string, flags: { verify?: boolean; json?: boolean }) =>
    ctx.exec(inspect, refusing(out, 'inspect', async (_config, redactor) => {
      const { BackupFileError, BackupRefused, inspectBackup } = await import('../store/backup/index.ts')
      if (flags.json && flags.verify) {
        // The manifest, with the verification's outcome beside it: `verified`, and on a mismatch
        // `verify_error` (also on stderr, exit 1), so a script reads one document either way.
        const manifest = await inspectBackup(file, false)
        let problem: string | undefined
        try {
          await inspectBackup(file, true)
        } catch (e) {
          if (!(e instanceof BackupRefused || e instanceof BackupFileError)) throw e
          problem = e.message
        }
        const report = { ...manifest, verified: problem === undefined, ...(problem !== undefined ? { verify_error: problem } : {}) }
        out.log(redactor.text(JSON.stringify(report, null, 2)))
        if (problem === undefined) return 0
        out.error(redactor.text(`pemba backup inspect: ${problem}`))
        return 1
      }
      const manifest = await inspectBackup(file, flags.verify === true)
      // A backup made before the manifest stopped recording query strings may still hold a password.
      out.log(redactor.text(flags.json ? JSON.stringify(manifest, null, 2) : formatManifest(manifest)))
      if (flags.verify && !flags.json) out.log(`\nverified: every table matches its row count and sha256`)
      return 0
    })),
  )
}

/** backupCommand runs `pemba backup <argv…>` with this environment and output (for tests). */
export function backupCommand(argv: string[], env: CliIo['env'], out: CliIo['out'] = console): Promise<number> {
  return runProgram(['backup', ...argv], { env, out }, [backupCli])
}
