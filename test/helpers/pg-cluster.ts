/**
 * A throwaway PostgreSQL cluster of a test's own, for the tests that must stop, kill or freeze
 * the database (the shared server at 127.0.0.1:5432 is never touched): `initdb` into a
 * temporary directory, a free loopback port and a socket directory of its own, `pg_ctl` run as
 * the `postgres` user (`runuser -u postgres --`) when this process is root. The role and
 * database `pemba` are created on the first start; `url` is what Pemba connects with.
 *
 * It is general on purpose (any `postgresql.conf` setting, `stop(mode)`, `start()`, superuser
 * SQL, the server's processes): a streaming standby is one more cluster started from a base
 * backup of this one.
 *
 * Gated like the other PostgreSQL suites (describePgCluster): skipped with the reason on the
 * console when no server installation is found or it cannot be run, a failure instead under
 * PEMBA_REQUIRE_POSTGRES=1 (as CI sets).
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describePostgres } from './postgres.ts'

/** Where Debian installs PostgreSQL's server binaries (`<version>/bin`). */
const INSTALL_ROOT = '/usr/lib/postgresql'

export interface PgInstallation {
  /** The newest server installation's bin directory, when one can be run. */
  bin?: string
  /** Why no cluster can be started, otherwise. */
  reason?: string
}

/** findPgInstallation: the newest installed server's bin directory, or why there is none usable. */
export function findPgInstallation(): PgInstallation {
  const versions = existsSync(INSTALL_ROOT)
    ? readdirSync(INSTALL_ROOT).filter((v) => existsSync(join(INSTALL_ROOT, v, 'bin', 'initdb')))
    : []
  if (versions.length === 0) return { reason: `no PostgreSQL server installation under ${INSTALL_ROOT}/*/bin` }
  const root = process.getuid?.() === 0
  if (root) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' })
    } catch {
      return { reason: 'running as root, but there is no postgres user to run the cluster as' }
    }
  }
  versions.sort((a, b) => Number(b) - Number(a))
  return { bin: join(INSTALL_ROOT, versions[0], 'bin') }
}

/**
 * describePgCluster registers `fn` when a private cluster can be started; otherwise it prints
 * why and skips it, or (PEMBA_REQUIRE_POSTGRES=1) registers one failing test that says why.
 */
export function describePgCluster(name: string, fn: (bin: string) => void): void {
  const found = findPgInstallation()
  const required = process.env.PEMBA_REQUIRE_POSTGRES === '1'
  // describePostgres' "url" is only its gate: here, the installation found.
  describePostgres(name, { url: found.bin, reason: found.reason, required }, () => fn(found.bin!))
}

/** freePort: a loopback port nothing listens on (at the moment of asking). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface PgClusterOptions {
  /** The role Pemba logs in as, and the database it owns. Default `pemba`. */
  role?: string
  /** Its password (scram-sha-256 over TCP). Default a random one. */
  password?: string
  /** More `postgresql.conf` settings (`-c name=value`), e.g. `{ max_connections: '50' }`. */
  settings?: Record<string, string>
}

export type StopMode = 'smart' | 'fast' | 'immediate'

/**
 * PgCluster: one throwaway cluster. Create it with `PgCluster.create(bin)` (initdb, first start,
 * role and database), then `stop(mode)`, `start()`, `sql()`, and `destroy()` at the end.
 */
export class PgCluster {
  readonly dir: string
  readonly data: string
  readonly logFile: string
  readonly role: string
  readonly password: string
  #running = false
  #port: number
  readonly #asPostgres: boolean
  readonly #settings: Record<string, string>

  private constructor(
    readonly bin: string,
    port: number,
    options: PgClusterOptions,
  ) {
    this.#port = port
    this.dir = mkdtempSync(join(tmpdir(), 'pemba-pg-cluster-'))
    this.data = join(this.dir, 'data')
    this.logFile = join(this.dir, 'server.log')
    this.role = options.role ?? 'pemba'
    this.password = options.password ?? `pw-${Math.random().toString(36).slice(2, 12)}`
    this.#settings = options.settings ?? {}
    this.#asPostgres = process.getuid?.() === 0
    if (this.#asPostgres) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
      chownSync(this.dir, uid, gid)
    }
    chmodSync(this.dir, 0o700)
  }

  /** create: initdb, start, and the role and database Pemba uses; the cluster is running after. */
  static async create(bin: string, options: PgClusterOptions = {}): Promise<PgCluster> {
    const cluster = new PgCluster(bin, await freePort(), options)
    try {
      cluster.#run('initdb', ['-D', cluster.data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'])
      // The port was free when asked, but initdb takes seconds: another cluster or server may
      // have bound it meanwhile. Then the postmaster exits at once, and a fresh port is tried.
      for (let attempt = 1; ; attempt++) {
        try {
          cluster.start()
          break
        } catch (e) {
          if (attempt >= 3 || !/could not bind|Address already in use/i.test(cluster.log())) throw e
          cluster.#port = await freePort()
        }
      }
      const quoted = cluster.password.replaceAll("'", "''")
      cluster.sql(`CREATE ROLE "${cluster.role}" LOGIN PASSWORD '${quoted}'`)
      cluster.sql(`CREATE DATABASE "${cluster.role}" OWNER "${cluster.role}"`)
    } catch (e) {
      cluster.destroy()
      throw e
    }
    return cluster
  }

  /**
   * standbyOf: a streaming standby of `primary` (test/helpers/pg-standby.ts): `pg_basebackup -R`
   * over the primary's socket as the superuser (its initdb allows local replication) into a
   * data directory of its own, started on a port of its own. A hot standby: it answers reads,
   * follows the primary's WAL, and has its roles and databases (`url` logs in as on the primary).
   */
  static async standbyOf(primary: PgCluster, options: Pick<PgClusterOptions, 'settings'> = {}): Promise<PgCluster> {
    const standby = new PgCluster(primary.bin, await freePort(), { ...options, role: primary.role, password: primary.password })
    try {
      standby.#run('pg_basebackup', [
        '-D', standby.data, '-h', primary.dir, '-p', String(primary.port), '-U', 'postgres',
        '-R', '-X', 'stream', '-c', 'fast', '--no-sync',
      ])
      for (let attempt = 1; ; attempt++) {
        try {
          standby.start()
          break
        } catch (e) {
          if (attempt >= 3 || !/could not bind|Address already in use/i.test(standby.log())) throw e
          standby.#port = await freePort()
        }
      }
    } catch (e) {
      standby.destroy()
      throw e
    }
    return standby
  }

  /** The URL Pemba connects with (TCP on loopback, the role's password). */
  get url(): string {
    return `postgres://${this.role}:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}/${this.role}`
  }

  /** The port it listens on (loopback). */
  get port(): number {
    return this.#port
  }

  get running(): boolean {
    return this.#running
  }

  #run(tool: string, args: string[]): string {
    const path = join(this.bin, tool)
    const [command, argv] = this.#asPostgres ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args]
    return execFileSync(command, argv, { cwd: this.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  }

  /** start starts the server and waits until it accepts connections. */
  start(): void {
    const settings = Object.entries(this.#settings).map(([k, v]) => ` -c ${k}=${v}`).join('')
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off${settings}`
    this.#run('pg_ctl', ['-D', this.data, '-o', options, '-l', this.logFile, '-w', '-t', '60', 'start'])
    this.#running = true
  }

  /**
   * stop: `fast` (sessions ended, a clean shutdown), `immediate` (as if the machine lost power:
   * no checkpoint, recovery at the next start), or `smart` (waits for the sessions to end).
   */
  stop(mode: StopMode = 'fast'): void {
    this.#run('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '60', 'stop'])
    this.#running = false
  }

  /** sql runs one statement as the superuser over the socket and returns psql's unaligned output. */
  sql(statement: string, database = 'postgres'): string {
    return this.#run('psql', [
      '-h', this.dir, '-p', String(this.port), '-U', 'postgres', '-d', database,
      '-v', 'ON_ERROR_STOP=1', '-At', '-c', statement,
    ])
  }

  /** The postmaster's process id and its children's (the backends among them). */
  pids(): number[] {
    const postmaster = Number(readFileSync(join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0])
    let children: number[] = []
    try {
      children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
    } catch {
      // pgrep exits 1 when there are none.
    }
    return [postmaster, ...children]
  }

  /** The server log so far. */
  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : ''
  }

  /**
   * destroy stops the server at once if it runs and removes every file of the cluster. When the
   * stop fails, its processes are killed first: removing the directory of a running postmaster
   * would leave it orphaned, holding its port.
   */
  destroy(): void {
    if (existsSync(join(this.data, 'postmaster.pid'))) {
      let pids: number[] = []
      try {
        pids = this.pids()
      } catch {
        // The pid file went away meanwhile: the server stopped.
      }
      // A frozen cluster (SIGSTOP) would not stop.
      for (const pid of pids) signal(pid, 'SIGCONT')
      try {
        this.stop('immediate')
      } catch {
        // Already stopped, or it would not stop: make sure none of its processes lives on.
        for (const pid of pids) signal(pid, 'SIGKILL')
        const until = Date.now() + 2000
        while (pids.some(alive) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
        if (pids.some(alive)) return // Leave the directory to a running process rather than orphan it.
      }
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // Gone meanwhile.
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
