/**
 * PostgreSQL going away and coming back, with a real `pemba serve` process and a throwaway
 * PostgreSQL cluster of this test's own (initdb in a temporary directory, its own port and
 * socket directory; never the shared server other test files use):
 *
 * 1. Pemba starts while the cluster is down: it retries, each attempt a warn line naming
 *    PEMBA_DATABASE_URL with the password hidden; the cluster starts; Pemba listens and serves.
 * 2. The cluster stops: `/readyz` and `/healthz` answer 503 naming the database, a write 503,
 *    the process lives on (the pool's broken idle connections are logged, not fatal); the
 *    cluster starts again: `/readyz` 200, writes and checks work, without restarting Pemba.
 * 3. The cluster freezes (SIGSTOP: connections open, nothing answers): `/readyz` still answers
 *    503 within PEMBA_READY_TIMEOUT_MS; thawed, 200 again.
 *
 * Needs a PostgreSQL server installation (Debian's /usr/lib/postgresql/<version>/bin) and root
 * (to run it as the postgres user). Gated like the other PostgreSQL suites: skipped with the
 * reason when missing, a failure under PEMBA_REQUIRE_POSTGRES=1.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { describePostgres } from '../helpers/postgres.ts'
import { api, runPemba, type PembaProcess } from '../helpers/processes.ts'
import { waitFor, logEvents as events } from '../helpers/wait.ts'

const PASSWORD = 'pg-secret-7f3a9c'

/** The newest installed server's bin directory, or why there is none usable. */
function findInstallation(): { bin?: string; reason?: string } {
  const root = '/usr/lib/postgresql'
  if (process.getuid?.() !== 0) return { reason: 'not root: cannot run a PostgreSQL cluster as the postgres user' }
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : []
  if (versions.length === 0) return { reason: `no PostgreSQL server installation under ${root}` }
  versions.sort((a, b) => Number(b) - Number(a))
  return { bin: join(root, versions[0], 'bin') }
}

const installation = findInstallation()
const required = process.env.PEMBA_REQUIRE_POSTGRES === '1'

/** A throwaway cluster: its directory, port, and pg_ctl as the postgres user. */
class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'pemba-readiness-pg-'))
  readonly data = join(this.dir, 'data')
  readonly log = join(this.dir, 'server.log')
  running = false

  constructor(
    readonly bin: string,
    readonly port: number,
  ) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(this.dir, uid, gid)
    chmodSync(this.dir, 0o700)
  }

  #run(tool: string, args: string[]): string {
    return execFileSync('runuser', ['-u', 'postgres', '--', join(this.bin, tool), ...args], {
      cwd: this.dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  }

  init(): void {
    this.#run('initdb', ['-D', this.data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'])
  }

  start(): void {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`
    this.#run('pg_ctl', ['-D', this.data, '-o', options, '-l', this.log, '-w', 'start'])
    this.running = true
  }

  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    this.#run('pg_ctl', ['-D', this.data, '-m', mode, '-w', 'stop'])
    this.running = false
  }

  /** psql as the superuser over the socket. */
  sql(statement: string): void {
    this.#run('psql', ['-h', this.dir, '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', statement])
  }

  /** The postmaster and its children (the backends, the pool's connections among them). */
  pids(): number[] {
    const postmaster = Number(readFileSync(join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0])
    const children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).split('\n').filter(Boolean)
    return [postmaster, ...children.map(Number)]
  }

  /** Sends `signal` to each of the cluster's processes, by id. */
  signal(signal: 'SIGSTOP' | 'SIGCONT', pids: number[]): void {
    for (const pid of pids) {
      try {
        process.kill(pid, signal)
      } catch {
        // Gone meanwhile.
      }
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describePostgres(
  'readiness: PostgreSQL down at start, gone and back while serving',
  // This suite's "server" is the installation it starts a cluster of.
  { url: installation.bin, reason: installation.reason, required },
  () => {
    let cluster: Cluster
    let pemba: PembaProcess | undefined
    let url: string
    let store: string

    beforeAll(async () => {
      cluster = new Cluster(installation.bin!, await freePort())
      cluster.init()
      cluster.start()
      cluster.sql(`CREATE ROLE pemba LOGIN PASSWORD '${PASSWORD}'`)
      cluster.sql('CREATE DATABASE pemba OWNER pemba')
      cluster.stop()
    })

    afterAll(() => {
      pemba?.kill()
      if (cluster) {
        try {
          if (existsSync(join(cluster.data, 'postmaster.pid'))) {
            cluster.signal('SIGCONT', cluster.pids())
            cluster.stop('immediate')
          }
        } finally {
          cluster.remove()
        }
      }
    })

    it('retries a database that is down at start, logging each attempt without the password, then serves', async () => {
      pemba = runPemba(['serve'], {
        PEMBA_HOST: '127.0.0.1',
        PEMBA_PORT: '0',
        PEMBA_DATABASE_URL: `postgres://pemba:${PASSWORD}@127.0.0.1:${cluster.port}/pemba`,
        PEMBA_DB_STARTUP_TIMEOUT_MS: '60000',
        PEMBA_READY_TIMEOUT_MS: '1000',
        PEMBA_METRICS_ADDR: '127.0.0.1:0',
        PEMBA_ACCESS_LOG: 'off',
      })
      const p = pemba
      const attempts = await waitFor('two attempts logged', () => {
        const a = events(p.stdout(), 'database_unreachable')
        return a.length >= 2 ? a : undefined
      })
      for (const a of attempts) {
        expect(a.level).toBe('warn')
        expect(a.setting).toBe('PEMBA_DATABASE_URL')
        expect(a.database).toBe(`postgres://pemba:***@127.0.0.1:${cluster.port}/pemba`)
        expect(a.msg).toContain('PEMBA_DATABASE_URL=postgres://pemba:***@')
        expect(a.reason).toMatch(/ECONNREFUSED/)
      }
      expect(attempts.map((a) => a.attempt)).toEqual(attempts.map((_, i) => i + 1))
      expect(Number(attempts[1].retry_in_ms)).toBeGreaterThan(Number(attempts[0].retry_in_ms))
      expect(p.proc.exitCode).toBeNull()

      cluster.start()
      url = await waitFor('listening', () => /listening on (http:\/\/[^\s"]+)/.exec(p.stdout())?.[1])
      expect(p.stdout() + p.stderr()).not.toContain(PASSWORD)

      store = (await api(url, 'POST', '/stores', { name: 'readiness' })).body.id
      expect((await api(url, 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
      const write = { writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'document:1' }] } }
      expect((await api(url, 'POST', `/stores/${store}/write`, write)).status).toBe(200)
      const check = { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' } }
      expect((await api(url, 'POST', `/stores/${store}/check`, check)).body.allowed).toBe(true)
      const ready = await api(url, 'GET', '/readyz')
      expect(ready).toEqual({ status: 200, body: { status: 'SERVING', checks: { database: 'ok', migrations: 'ok' } } })
    })

    it('answers 503 naming the database while PostgreSQL is stopped, and serves again once it is back', async () => {
      const p = pemba!
      cluster.stop()
      const started = Date.now()
      const down = await api(url, 'GET', '/readyz')
      expect(Date.now() - started).toBeLessThan(3000)
      expect(down.status).toBe(503)
      expect(down.body.status).toBe('NOT_SERVING')
      // `unreachable` when this probe is the first to meet the stopped server; `unavailable` when a
      // background query (the decision-log flush, a head-revision poll) told the outage tracker first.
      expect(down.body.checks.database).toMatch(/^(unreachable|unavailable): /)
      // The failed ping told the outage tracker: /healthz says NOT_SERVING (test/faults/ has more).
      expect(await api(url, 'GET', '/healthz')).toEqual({ status: 503, body: { status: 'NOT_SERVING' } })
      // A write fails (and is counted), the process lives on; the pool's dead connections are logged.
      const write = { writes: { tuple_keys: [{ user: 'user:bob', relation: 'viewer', object: 'document:1' }] } }
      expect((await api(url, 'POST', `/stores/${store}/write`, write)).status).toBe(503)
      await waitFor('the lost connections logged', () => events(p.stdout(), 'database_connection_lost').length > 0)
      expect(p.proc.exitCode).toBeNull()

      cluster.start()
      await waitFor('ready again', async () => (await api(url, 'GET', '/readyz')).status === 200)
      expect((await api(url, 'POST', `/stores/${store}/write`, write)).status).toBe(200)
      const check = {
        tuple_key: { user: 'user:bob', relation: 'viewer', object: 'document:1' },
        consistency: 'HIGHER_CONSISTENCY',
      }
      expect((await api(url, 'POST', `/stores/${store}/check`, check)).body.allowed).toBe(true)
      expect(p.proc.exitCode).toBeNull()

      const metricsUrl = events(p.stdout(), 'metrics_listening')[0].url as string
      const metrics = await (await fetch(metricsUrl)).text()
      // The failed write's first operation (its model's look-up, its decision's record, …).
      expect(metrics).toMatch(/^pemba_datastore_query_errors_total\{operation="\w+"\} [1-9]/m)
      expect(metrics).toMatch(/^pemba_datastore_pool_connections [1-9]/m)
      expect(metrics).toMatch(/^pemba_datastore_pool_idle_connections \d+/m)
      expect(metrics).toMatch(/^pemba_datastore_pool_waiting_requests 0/m)
    })

    it('stops at once, naming the setting, when retrying cannot help (a wrong password)', async () => {
      const wrong = runPemba(['serve'], {
        PEMBA_HOST: '127.0.0.1',
        PEMBA_PORT: '0',
        PEMBA_DATABASE_URL: `postgres://pemba:not-${PASSWORD}@127.0.0.1:${cluster.port}/pemba`,
        PEMBA_DB_STARTUP_TIMEOUT_MS: '60000',
      })
      try {
        expect(await wrong.exited).toBe(1)
        expect(events(wrong.stdout(), 'database_unreachable')).toEqual([])
        const [fatal] = events(wrong.stdout(), 'database_unavailable')
        expect(fatal.level).toBe('fatal')
        expect(fatal.msg).toMatch(/^refusing to start: cannot open the database PEMBA_DATABASE_URL=postgres:\/\/pemba:\*\*\*@.*password authentication failed/)
        expect(wrong.stdout() + wrong.stderr()).not.toContain(PASSWORD)
        expect(wrong.stderr()).not.toMatch(/\n\s+at /)
      } finally {
        wrong.kill()
      }
    })

    it('answers 503 within the timeout while PostgreSQL hangs, and 200 once it answers again', async () => {
      const pids = cluster.pids()
      cluster.signal('SIGSTOP', pids)
      try {
        const started = Date.now()
        const hung = await api(url, 'GET', '/readyz')
        const took = Date.now() - started
        expect(hung.status).toBe(503)
        expect(hung.body.checks.database).toBe('unreachable: no answer within 1000 ms')
        expect(took).toBeGreaterThanOrEqual(900)
        expect(took).toBeLessThan(2500)
      } finally {
        cluster.signal('SIGCONT', pids)
      }
      await waitFor('ready after the thaw', async () => (await api(url, 'GET', '/readyz')).status === 200)
      expect(pemba!.proc.exitCode).toBeNull()
    })
  },
)

/** `pemba serve` against a PostgreSQL URL whose port nothing listens on. */
function serveAgainstNothing(port: number, startupTimeoutMs: number): PembaProcess {
  return runPemba(['serve'], {
    PEMBA_HOST: '127.0.0.1',
    PEMBA_PORT: '0',
    PEMBA_DATABASE_URL: `postgres://pemba:${PASSWORD}@127.0.0.1:${port}/pemba`,
    PEMBA_DB_STARTUP_TIMEOUT_MS: String(startupTimeoutMs),
  })
}

describe('PostgreSQL unreachable for all of PEMBA_DB_STARTUP_TIMEOUT_MS', () => {
  it('gives up with a fatal line naming the setting, no stack, exit 1', async () => {
    const port = await freePort() // nothing listens there
    const p = serveAgainstNothing(port, 1500)
    try {
      expect(await p.exited).toBe(1)
      const attempts = events(p.stdout(), 'database_unreachable')
      expect(attempts.length).toBeGreaterThanOrEqual(2)
      const [fatal] = events(p.stdout(), 'database_unavailable')
      expect(fatal.level).toBe('fatal')
      expect(fatal.msg).toBe(
        `refusing to start: cannot reach the database PEMBA_DATABASE_URL=postgres://pemba:***@127.0.0.1:${port}/pemba ` +
          `for 1500 ms (PEMBA_DB_STARTUP_TIMEOUT_MS, ${attempts.length + 1} attempts): connect ECONNREFUSED 127.0.0.1:${port}`,
      )
      expect(p.stdout() + p.stderr()).not.toContain(PASSWORD)
      expect(p.stderr()).not.toMatch(/\n\s+at /)
    } finally {
      p.kill()
    }
  })

  it('PEMBA_DB_STARTUP_TIMEOUT_MS=0 does not retry', async () => {
    const p = serveAgainstNothing(await freePort(), 0)
    try {
      expect(await p.exited).toBe(1)
      expect(events(p.stdout(), 'database_unreachable')).toEqual([])
      expect(events(p.stdout(), 'database_unavailable')[0].msg).toMatch(
        /^refusing to start: cannot reach the database PEMBA_DATABASE_URL=postgres:\/\/pemba:\*\*\*@127\.0\.0\.1:\d+\/pemba: connect ECONNREFUSED/,
      )
    } finally {
      p.kill()
    }
  })
})
