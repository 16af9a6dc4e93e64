/**
 * The `pemba` command as a user runs it: `node bin/pemba.js …` (the package's bin, on the
 * compiled dist/), in real processes. Help and version, usage errors with suggestions (exit 2),
 * a mistyped PEMBA_ variable, the SQLite directory rule, the config file's precedence, and
 * `migrate` / `migrate status`. `clients list` and `review --json` run in-process.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { DEFAULTS } from '../../src/config.ts'
import { kebab, SETTING_KEYS, settingMeta } from '../../src/config/settings.ts'
import { clientsCommand } from '../../src/cli/clients.ts'
import { reviewCommand } from '../../src/cli/review.ts'
import { runPemba, type PembaProcess } from '../helpers/processes.ts'
import { createTestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-cli-'))
const procs: PembaProcess[] = []
afterEach(async () => {
  for (const p of procs) p.kill()
  await Promise.all(procs.map((p) => p.exited))
  procs.length = 0
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** run runs `pemba <args>` to its end. */
async function run(args: string[], env: Record<string, string> = {}) {
  const p = runPemba(args, env)
  procs.push(p)
  const code = await p.exited
  return { code, out: p.stdout(), err: p.stderr() }
}

/** Help text with its line wrapping undone, so `env: PEMBA_X` reads whole. */
const flat = (s: string) => s.replace(/\s+/g, ' ')

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

describe('help and version', () => {
  it('--help, -h, --version and -V answer and exit 0', async () => {
    const [help, h, version, v] = await Promise.all([run(['--help']), run(['-h']), run(['--version']), run(['-V'])])
    expect(help).toMatchObject({ code: 0, err: '' })
    for (const command of ['serve', 'migrate', 'clients', 'review']) expect(help.out).toMatch(new RegExp(`^  ${command}\\b`, 'm'))
    expect(h.out).toBe(help.out)
    expect(version).toEqual({ code: 0, out: `${VERSION}\n`, err: '' })
    expect(v.out).toBe(`${VERSION}\n`)
  })

  it('serve --help lists every setting with its flag, environment variable and default', async () => {
    const r = await run(['serve', '--help'])
    expect(r.code).toBe(0)
    const text = flat(r.out)
    for (const key of SETTING_KEYS) {
      expect(text).toContain(`--${kebab(key)} `)
      const d = DEFAULTS[key]
      // '' (off) and undefined (derived from other settings, as PEMBA_CONSOLE's) show no default.
      expect(text).toContain(d === '' || d === undefined ? `env: ${settingMeta(key).env})` : `default: ${JSON.stringify(d)},`)
      expect(text).toContain(`env: ${settingMeta(key).env}`)
    }
    expect(text).toContain('--config <file>')
    expect(text).toContain('env: PEMBA_CONFIG')
  })

  it('every other command has --help with its own flags and the settings', async () => {
    const cases: [string[], string[]][] = [
      [['migrate', '--help'], ['Usage: pemba migrate', 'status']],
      [['migrate', 'status', '--help'], ['Usage: pemba migrate status']],
      [['clients', '--help'], ['grant', 'revoke', 'list']],
      [['clients', 'grant', '--help'], ['<client> <role>', '--store <id>', '--type <object type>', 'store_creator']],
      [['clients', 'list', '--help'], ['--client <client>', '--store <id>']],
      [['review', '--help'], ['--store <id>', '--user <identity>', '--user-type <type>', '--unused-for', '--json']],
      [['help', 'serve'], ['Usage: pemba serve']],
    ]
    const results = await Promise.all(cases.map(([args]) => run(args)))
    cases.forEach(([args, expected], i) => {
      const r = results[i]
      expect(r.code, args.join(' ')).toBe(0)
      for (const e of expected) expect(r.out, args.join(' ')).toContain(e)
      if (args[0] !== 'clients' || args.length > 2) expect(flat(r.out)).toContain('env: PEMBA_DATABASE_URL')
    })
  })
})

describe('the one-shot database tools list only the database settings', () => {
  it('backup, migrate and tuple import show the database flags and say the rest are accepted', async () => {
    const commands = [['backup', 'create', '--help'], ['migrate', '--help'], ['tuple', 'import', '--help']]
    const results = await Promise.all(commands.map((args) => run(args)))
    results.forEach((r, i) => {
      const name = commands[i]!.join(' ')
      expect(r.code, name).toBe(0)
      expect(r.out, name).toContain('--database-url <url>')
      expect(r.out, name).not.toContain('--jit-max-duration')
      expect(r.out, name).not.toContain('--port <port>')
      expect(flat(r.out), name).toContain('Every other setting (`pemba serve --help`, docs/configuration.md) is accepted too')
    })
    // Hidden from the help, still accepted: one config serves every command.
    const status = await run(['migrate', 'status', '--port', '18099', '--database-url', 'sqlite::memory:'])
    expect(status.err).not.toContain('unknown option')
  })
})

describe('usage errors exit 2 with a suggestion', () => {
  it('unknown flags, stray arguments and unknown commands', async () => {
    const [prot, p, stray, serv, topFlag, grant] = await Promise.all([
      run(['serve', '--prot', '18083']),
      run(['serve', '-p', '18083']),
      run(['serve', 'extra']),
      run(['serv']),
      run(['--prot', '1']),
      run(['clients', 'grant', 'ci']),
    ])
    expect(prot.code).toBe(2)
    expect(prot.err).toContain("pemba: unknown option '--prot'\n(Did you mean --port?)")
    expect(p.code).toBe(2)
    expect(p.err).toContain("pemba: unknown option '-p'")
    expect(stray.code).toBe(2)
    expect(stray.err).toContain("too many arguments for 'serve'")
    expect(serv.code).toBe(2)
    expect(serv.err).toContain("pemba: unknown command 'serv'\n(Did you mean serve?)")
    // Flags alone mean `serve`.
    expect(topFlag.code).toBe(2)
    expect(topFlag.err).toContain('(Did you mean --port?)')
    expect(grant.code).toBe(2)
    expect(grant.err).toContain("missing required argument 'role'")
    for (const r of [prot, p, stray, serv, topFlag, grant]) expect(r.out).toBe('')
  })
})

describe('configuration errors', () => {
  it('a mistyped PEMBA_ variable stops serve with one line naming the setting meant', async () => {
    const r = await run(['serve'], { PEMBA_AUTH_MOD: 'preshared', PEMBA_PORT: '0', PEMBA_DATABASE_URL: 'sqlite::memory:' })
    expect(r).toEqual({
      code: 2,
      out: '',
      err: 'pemba: unknown environment variable PEMBA_AUTH_MOD: did you mean PEMBA_AUTH_MODE?\n',
    })
  })

  it('a configuration error never shows a preshared key', async () => {
    const key = 'k3y-that-must-not-leak-0123456789'
    const r = await run(['serve', '--auth-preshared-keys', `ci:x=${key}`], { PEMBA_AUTH_MODE: 'preshared' })
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/^pemba: PEMBA_AUTH_PRESHARED_KEYS entry 1/)
    expect(r.err + r.out).not.toContain(key)
    // A refusal that repeats the value it refused: the key given as a flag is hidden in it.
    const echoed = await run(['serve', '--auth-preshared-keys', `ci=${key}`, '--port', key], { PEMBA_AUTH_MODE: 'preshared' })
    expect(echoed).toEqual({ code: 2, out: '', err: "pemba: PEMBA_PORT must be a non-negative integer, got '[REDACTED]' (given as --port)\n" })
  })

  it('a SQLite file in a missing directory is refused, and created with --create-dirs', async () => {
    const db = join(dir, 'new', 'nested', 'pemba.db')
    const refused = await run(['serve'], { PEMBA_DATABASE_URL: `sqlite:${db}`, PEMBA_PORT: '0' })
    expect(refused.code).toBe(2)
    expect(refused.err).toBe(
      `pemba: PEMBA_DATABASE_URL 'sqlite:${db}' names a file in ${join(dir, 'new', 'nested')}, which does not exist: ` +
        'create it, or start with --create-dirs (PEMBA_CREATE_DIRS=on)\n',
    )
    expect(existsSync(join(dir, 'new'))).toBe(false)

    const p = runPemba(['serve', '--create-dirs'], { PEMBA_DATABASE_URL: `sqlite:${db}`, PEMBA_PORT: '0' })
    procs.push(p)
    const deadline = Date.now() + 30_000
    while (!/listening on http:/.test(p.stdout()) && Date.now() < deadline && p.proc.exitCode === null) {
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(p.stdout(), p.stderr()).toMatch(/"msg":"listening on http:\/\/127\.0\.0\.1:\d+"/)
    expect(existsSync(db)).toBe(true)
  })
})

describe('a database that cannot be reached', () => {
  it('fails a one-shot command with one line naming PEMBA_DATABASE_URL, its password hidden', async () => {
    const r = await run(['migrate', 'status'], { PEMBA_DATABASE_URL: 'postgres://pemba:s3cret-pw@127.0.0.1:1/pemba' })
    expect(r).toEqual({
      code: 1,
      out: '',
      err: 'pemba: connect ECONNREFUSED 127.0.0.1:1 (ECONNREFUSED; PEMBA_DATABASE_URL=postgres://pemba:***@127.0.0.1:1/pemba)\n',
    })
  })

  it('names --database-url when the flag gave it, and keeps the line whole around a ?password= hidden', async () => {
    const url = 'postgres://pemba@127.0.0.1:1/pemba?password=s3cret-pw'
    const [migrate, backup] = await Promise.all([
      run(['migrate', 'status', '--database-url', url]),
      run(['backup', 'create', join(dir, 'never.backup.gz'), '--database-url', url]),
    ])
    const err = 'pemba: connect ECONNREFUSED 127.0.0.1:1 (ECONNREFUSED; --database-url=postgres://pemba@127.0.0.1:1/pemba?password=[REDACTED])\n'
    expect(migrate).toEqual({ code: 1, out: '', err })
    expect(backup).toEqual({ code: 1, out: '', err })
  })
})

describe('the config file through the command', () => {
  it('defaults < file < environment < flags', async () => {
    const urls = ['file', 'env', 'flag'].map((name) => {
      mkdirSync(join(dir, name), { recursive: true })
      return `sqlite:${join(dir, name, 'pemba.db')}`
    })
    const config = join(dir, 'pemba.yaml')
    writeFileSync(config, `# a comment\ndatabase-url: "${urls[0]}"\nlog-level: warn\n`)
    const [fromFile, fromEnv, fromFlag, viaEnv] = await Promise.all([
      run(['migrate', 'status', '--config', config]),
      run(['migrate', 'status', '--config', config], { PEMBA_DATABASE_URL: urls[1] }),
      run(['migrate', 'status', '--config', config, '--database-url', urls[2]], { PEMBA_DATABASE_URL: urls[1] }),
      run(['migrate', 'status'], { PEMBA_CONFIG: config }),
    ])
    // A flag before the subcommand (commander gives it to `migrate`) counts as well.
    const beforeStatus = await run(['migrate', '--database-url', urls[2], 'status', '--config', config])
    expect(beforeStatus.out.split('\n')[0]).toBe(`${urls[2]}: 0 applied, 6 pending`)
    expect(fromFile.out.split('\n')[0]).toBe(`${urls[0]}: 0 applied, 6 pending`)
    expect(fromEnv.out.split('\n')[0]).toBe(`${urls[1]}: 0 applied, 6 pending`)
    expect(fromFlag.out.split('\n')[0]).toBe(`${urls[2]}: 0 applied, 6 pending`)
    expect(viaEnv.out.split('\n')[0]).toBe(`${urls[0]}: 0 applied, 6 pending`)

    writeFileSync(config, 'databse-url: x\n')
    const typo = await run(['migrate', 'status', '--config', config])
    expect(typo).toEqual({ code: 2, out: '', err: `pemba: config file ${config}: unknown setting 'databse-url': did you mean 'database-url'?\n` })
  })
})

describe('migrate', () => {
  it('status lists pending then applied migrations; migrate says what it applied, then "nothing pending"', async () => {
    mkdirSync(join(dir, 'm'))
    const env = { PEMBA_DATABASE_URL: `sqlite:${join(dir, 'm', 'pemba.db')}` }
    const tags = ['0000_init', '0001_expiry_and_access_requests', '0002_audit_and_token_issuers', '0003_decision_log_write_optimized', '0004_authzen', '0005_covering_reads']
    const before = await run(['migrate', 'status'], env)
    expect(before).toEqual({
      code: 0,
      err: '',
      out: [`${env.PEMBA_DATABASE_URL}: 0 applied, 6 pending`, ...tags.map((t) => `  pending  ${t}`), "run 'pemba migrate' to apply the pending ones", ''].join('\n'),
    })
    expect(existsSync(join(dir, 'm', 'pemba.db'))).toBe(false) // status changes nothing
    expect(await run(['migrate'], env)).toEqual({ code: 0, err: '', out: `migrations applied to ${env.PEMBA_DATABASE_URL}: ${tags.join(', ')}\n` })
    expect(await run(['migrate'], env)).toEqual({ code: 0, err: '', out: `nothing pending: ${env.PEMBA_DATABASE_URL} has all 6 migrations applied\n` })
    const after = await run(['migrate', 'status'], env)
    expect(after.out).toBe([`${env.PEMBA_DATABASE_URL}: 6 applied, 0 pending`, ...tags.map((t) => `  applied  ${t}`), ''].join('\n'))
  })
})

describe('one-shot commands in-process', () => {
  it('clients list says when there are no grants (on stderr: stdout stays a clean list)', async () => {
    mkdirSync(join(dir, 'c'))
    const env = { PEMBA_DATABASE_URL: `sqlite:${join(dir, 'c', 'pemba.db')}` }
    const out: string[] = []
    const err: string[] = []
    const io = { log: (s: string) => out.push(s), error: (s: string) => err.push(s) }
    expect(await clientsCommand(['list'], env, io)).toBe(0)
    expect([out, err]).toEqual([[], ['no grants']])
    err.length = 0
    expect(await clientsCommand(['list', '--client', 'ci'], env, io)).toBe(0)
    expect(err).toEqual(['no grants for client ci'])
  })

  it('review --json prints the review as one JSON object', async () => {
    mkdirSync(join(dir, 'r'))
    const databaseUrl = `sqlite:${join(dir, 'r', 'pemba.db')}`
    const client = await createTestClient({ databaseUrl })
    const { storeId } = await setup(client, 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n', [
      'doc:1#viewer@user:anne',
    ])
    await client.close()
    const out: string[] = []
    const err: string[] = []
    const io = { log: (s: string) => out.push(s), error: (s: string) => err.push(s) }
    const env = { PEMBA_DATABASE_URL: databaseUrl }
    expect(await reviewCommand(['--store', storeId, '--user', 'user:anne', '--json', '--unused-for', 'PT1S'], env, io)).toBe(0)
    expect(err).toEqual([])
    expect(out).toHaveLength(1)
    const review = JSON.parse(out[0])
    expect(review).toMatchObject({ store: storeId, user: 'user:anne', unused_for: 'PT1S' })
    expect(review.grants).toHaveLength(1)
    expect(review.grants[0]).toMatchObject({ tuple_key: { user: 'user:anne', relation: 'viewer', object: 'doc:1' }, last_used_at: null })
    expect(typeof review.grants[0].unused).toBe('boolean')

    out.length = 0
    expect(await reviewCommand(['--store', storeId, '--user-type', 'user', '--json'], env, io)).toBe(0)
    expect(JSON.parse(out[0])).toMatchObject({ store: storeId, user_type: 'user', unused_for: 'P30D', identities: [{ user: 'user:anne', grants: 1 }] })
  })
})
