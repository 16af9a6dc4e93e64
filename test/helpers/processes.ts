/**
 * Real `pemba` processes for end-to-end tests: `node bin/pemba.js <command>`, the installed
 * command (what `npm start` and `npm run migrate` run) on the compiled dist/ that vitest's
 * globalSetup built (test/helpers/build-dist.ts), each in its own process group so a test can
 * always kill it and whatever it spawned.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** The command's entry point. */
const PEMBA_BIN = join(ROOT, 'bin', 'pemba.js')
const LISTENING = /listening on (http:\/\/[^\s"]+)/

export interface PembaProcess {
  proc: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>
  /** Sends SIGKILL to the process group unless it has exited. */
  kill(): void
}

/** runPemba starts `pemba <args>` with the given environment added to this one. */
export function runPemba(args: string[], env: Record<string, string>): PembaProcess {
  const proc = spawn(process.execPath, [PEMBA_BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let out = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill() {
      if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return
      try {
        process.kill(-proc.pid, 'SIGKILL')
      } catch {
        proc.kill('SIGKILL')
      }
    },
  }
}

/** startServer runs `pemba serve` on a free port and resolves with its URL once it listens. */
export async function startServer(env: Record<string, string>, timeoutMs = 30_000): Promise<PembaProcess & { url: string }> {
  const p = runPemba(['serve'], { PEMBA_HOST: '127.0.0.1', PEMBA_PORT: '0', ...env })
  let exitCode: number | null | undefined
  void p.exited.then((c) => (exitCode = c))
  const deadline = Date.now() + timeoutMs
  while (!LISTENING.test(p.stdout())) {
    if (exitCode !== undefined || Date.now() > deadline) {
      p.kill()
      throw new Error(
        `pemba serve did not start (exit ${exitCode}); stdout: ${p.stdout()}; stderr: ${p.stderr()}`,
      )
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  return { ...p, url: LISTENING.exec(p.stdout())![1] }
}

/** api sends one JSON (or DSL text) request and returns the status and parsed body. */
export async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const init: RequestInit = { method, signal: AbortSignal.timeout(10_000) }
  if (body !== undefined) {
    const text = typeof body === 'string'
    init.body = text ? body : JSON.stringify(body)
    init.headers = { 'content-type': text ? 'text/plain' : 'application/json' }
  }
  const res = await fetch(new URL(path, base), init)
  const raw = await res.text()
  return { status: res.status, body: raw ? JSON.parse(raw) : undefined }
}
