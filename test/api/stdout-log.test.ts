/**
 * The JSON log on stdout (src/telemetry/logger.ts) as a real process writes it: routine lines
 * of one event-loop turn are written together at the end of the turn, warnings and worse at
 * once; nothing is lost when the process exits in the same turn, the order is kept, and fields
 * secret by name are censored.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** runs `script` in a fresh node process (with tsx) and returns its stdout and stderr. */
function run(script: string): { stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`)
  return { stdout: r.stdout, stderr: r.stderr }
}

const LOGGER = `import { createLogger } from './src/telemetry/logger.ts'
const log = createLogger({ level: 'debug', format: 'json', redact: (s) => s.replaceAll('sekret-value', '[REDACTED]') })`

describe('the JSON log on stdout', () => {
  it('keeps every line, in order, when the process exits in the same turn', () => {
    const { stdout } = run(`${LOGGER}
for (let i = 0; i < 5; i++) log.info({ event: 'request', n: i }, 'line ' + i)
log.warn({ event: 'warned' }, 'a warning')
log.debug({ event: 'after' }, 'debug after the warning')
log.info({ token: 'sekret-value', headers: { authorization: 'Bearer abcdefghijkl' }, text: 'has sekret-value inside' }, 'censored')
process.exit(0)`)
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines.map((l) => l.msg)).toEqual(['line 0', 'line 1', 'line 2', 'line 3', 'line 4', 'a warning', 'debug after the warning', 'censored'])
    expect(lines.map((l) => l.level)).toEqual(['info', 'info', 'info', 'info', 'info', 'warn', 'debug', 'info'])
    expect(lines[7]).toMatchObject({ token: '[REDACTED]', headers: { authorization: '[REDACTED]' }, text: 'has [REDACTED] inside' })
    expect(stdout).not.toContain('sekret-value')
    expect(stdout).not.toContain('abcdefghijkl')
  })

  it('a warning is written at once; routine lines at the end of their turn', () => {
    // stdout is a file here, so the script can see how much of it is written (fstat of fd 1).
    const dir = mkdtempSync(join(tmpdir(), 'pemba-stdout-'))
    const file = join(dir, 'out.log')
    const fd = openSync(file, 'w')
    const script = `${LOGGER}
import { fstatSync } from 'node:fs'
const size = () => fstatSync(1).size
const seen = []
log.info('first')
seen.push(size())
log.error('an error')
seen.push(size())
log.info('second')
seen.push(size())
setImmediate(() => { seen.push(size()); console.error(JSON.stringify(seen)); process.exit(0) })`
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, stdio: ['ignore', fd, 'pipe'] })
    closeSync(fd)
    const text = readFileSync(file, 'utf8')
    rmSync(dir, { recursive: true, force: true })
    expect(r.status, r.stderr).toBe(0)
    const [afterInfo, afterError, afterSecond, nextTurn] = JSON.parse(r.stderr.trim().split('\n').pop()!) as number[]
    expect(afterInfo).toBe(0)
    expect(afterError).toBeGreaterThan(0)
    expect(afterSecond).toBe(afterError)
    expect(nextTurn).toBe(Buffer.byteLength(text))
    expect(text.trim().split('\n').map((l) => JSON.parse(l).msg)).toEqual(['first', 'an error', 'second'])
  })

  it("the caller's object is not changed by the censoring", () => {
    const { stdout } = run(`${LOGGER}
const fields = { password: 'p4ss', nested: { key: 'k3y' } }
log.info(fields, 'censored')
log.info({ same: fields.password + '/' + fields.nested.key }, 'after')
process.exit(0)`)
    const [first, second] = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(first).toMatchObject({ password: '[REDACTED]', nested: { key: '[REDACTED]' } })
    expect(second.same).toBe('p4ss/k3y')
  })
})
