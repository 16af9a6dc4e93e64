/**
 * A real nginx for tests (Debian's `nginx` package, with the auth_request module): started as a
 * foreground process (`daemon off`) under a temporary prefix that holds its configuration, pid
 * file, logs and temp directories, on a free loopback port, with the `server` block a test
 * gives. Stopped with SIGQUIT (graceful), or SIGKILL when it does not go.
 *
 * Availability follows the PostgreSQL suites' rule (test/helpers/postgres.ts): without nginx
 * on the PATH the suites are skipped with the reason on the console, never passed silently;
 * with `PEMBA_REQUIRE_NGINX=1` (as .ci/run sets, after installing it) they fail instead.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'vitest'

export interface NginxAvailability {
  /** The nginx binary, when one with the auth_request module was found. */
  bin?: string
  /** Why the nginx suites cannot run, when they cannot. */
  reason?: string
  /** PEMBA_REQUIRE_NGINX=1: a missing nginx fails the run. */
  required: boolean
}

const CANDIDATES = ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']

/** findNginx looks for an nginx binary built with the auth_request module (`nginx -V`). */
export function findNginx(): NginxAvailability {
  const required = process.env.PEMBA_REQUIRE_NGINX === '1'
  for (const bin of CANDIDATES) {
    const r = spawnSync(bin, ['-V'], { encoding: 'utf8' })
    if (r.error || r.status !== 0) continue
    if (!`${r.stdout}${r.stderr}`.includes('--with-http_auth_request_module')) {
      return { required, reason: `${bin} was built without the auth_request module (install Debian's nginx package)` }
    }
    return { bin, required }
  }
  return { required, reason: 'nginx is not installed (apt-get install -y nginx; .ci/run installs it)' }
}

/**
 * describeNginx registers `fn` as a suite when nginx is there; otherwise it prints why and skips
 * it, or (PEMBA_REQUIRE_NGINX=1) registers one failing test that says why.
 */
export function describeNginx(name: string, nginx: NginxAvailability, fn: () => void): void {
  if (!nginx.bin && nginx.required) {
    describe(name, () => {
      it('has nginx (PEMBA_REQUIRE_NGINX=1)', () => {
        throw new Error(`nginx suites cannot run: ${nginx.reason}`)
      })
    })
    return
  }
  if (!nginx.bin) console.warn(`nginx suites not run (${name}): ${nginx.reason}`)
  describe.skipIf(!nginx.bin)(name, fn)
}

export interface NginxOptions {
  /** The binary (findNginx().bin). */
  bin: string
  /**
   * The inside of the `server { … }` block, without `listen` (the helper adds it): locations,
   * `auth_request`, `proxy_pass` to the test's servers.
   */
  server: string
  /** Extra directives at the `http` level (upstreams, maps). */
  http?: string
}

export interface RunningNginx {
  /** `http://127.0.0.1:<port>` */
  url: string
  port: number
  /** The prefix directory (configuration, logs, temp files). */
  prefix: string
  /** The error log so far (an auth subrequest's unexpected status is reported here). */
  errorLog(): string
  /** What nginx printed on stderr. */
  stderr(): string
  /** Stops nginx (graceful, then SIGKILL after 5 s) and removes the prefix. */
  stop(): Promise<void>
}

/** freePort asks the kernel for a free loopback port (and lets it go for nginx to take). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function nginxConf(prefix: string, port: number, o: NginxOptions): string {
  const p = (name: string) => join(prefix, name)
  return `# written by test/helpers/nginx.ts
worker_processes 1;
pid ${p('nginx.pid')};
error_log ${p('logs/error.log')} info;
events { worker_connections 256; }
http {
  access_log ${p('logs/access.log')};
  client_body_temp_path ${p('temp/client_body')};
  proxy_temp_path ${p('temp/proxy')};
  fastcgi_temp_path ${p('temp/fastcgi')};
  uwsgi_temp_path ${p('temp/uwsgi')};
  scgi_temp_path ${p('temp/scgi')};
  ${o.http ?? ''}
  server {
    listen 127.0.0.1:${port};
    ${o.server}
  }
}
`
}

/** waitForPort resolves once something accepts connections on the port, or rejects when `gone()`. */
async function waitForPort(port: number, gone: () => string | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const why = gone()
    if (why !== undefined) throw new Error(why)
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`nginx did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/**
 * startNginx writes the configuration, checks it (`nginx -t`), starts nginx in the foreground
 * and resolves once it accepts connections. A port taken between choosing and binding is
 * retried with another.
 */
export async function startNginx(o: NginxOptions): Promise<RunningNginx> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(o)
    } catch (e) {
      if (attempt < 3 && /Address already in use/.test((e as Error).message)) continue
      throw e
    }
  }
}

async function startOnce(o: NginxOptions): Promise<RunningNginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'pemba-nginx-'))
  // As root, nginx's worker runs as `nobody`: it must be able to use the temp directories.
  chmodSync(prefix, 0o755)
  for (const d of ['logs', 'temp', 'temp/client_body', 'temp/proxy', 'temp/fastcgi', 'temp/uwsgi', 'temp/scgi']) {
    mkdirSync(join(prefix, d), { recursive: true })
    chmodSync(join(prefix, d), 0o777)
  }
  const port = await freePort()
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(conf, nginxConf(prefix, port, o))
  const errorLogPath = join(prefix, 'logs/error.log')
  const args = ['-p', prefix, '-c', conf, '-e', errorLogPath]
  const test = spawnSync(o.bin, [...args, '-t'], { encoding: 'utf8' })
  if (test.status !== 0) {
    rmSync(prefix, { recursive: true, force: true })
    throw new Error(`nginx -t refused the configuration:\n${test.stderr}`)
  }
  // Its own process group (detached), so a SIGKILL reaches the workers too: killed alone, the
  // master leaves them running, holding the port.
  const proc: ChildProcess = spawn(o.bin, [...args, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  const killAll = () => {
    try {
      process.kill(-proc.pid!, 'SIGKILL')
    } catch {
      proc.kill('SIGKILL')
    }
  }
  let stderr = ''
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  let exit: string | undefined
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', (code, signal) => {
      exit = `nginx exited (${signal ?? code}): ${stderr}${readLog(errorLogPath)}`
      resolve()
    }),
  )
  try {
    await waitForPort(port, () => exit, 10_000)
  } catch (e) {
    killAll()
    await exited
    rmSync(prefix, { recursive: true, force: true })
    throw e
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    prefix,
    errorLog: () => readLog(errorLogPath),
    stderr: () => stderr,
    async stop() {
      if (exit === undefined) {
        proc.kill('SIGQUIT')
        const timer = setTimeout(killAll, 5000)
        await exited
        clearTimeout(timer)
      }
      rmSync(prefix, { recursive: true, force: true })
    },
  }
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}
