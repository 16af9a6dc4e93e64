/**
 * The README's 30-second walkthrough, run as written: its shell block, with curl, against a real
 * `pemba serve`, and every command's output compared with the `# …` lines the README shows
 * under it (ids may differ; `{…}` stands for any JSON object).
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startServer, type PembaProcess } from '../helpers/processes.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The shell block of the README's walkthrough section. */
function walkthrough(): string {
  const readme = readFileSync(`${ROOT}/README.md`, 'utf8')
  const section = readme.slice(readme.indexOf('## A 30-second walkthrough'))
  const block = /```sh\n([\s\S]*?)\n```/.exec(section)
  if (!block) throw new Error('README.md: no ```sh block in "A 30-second walkthrough"')
  return block[1]!
}

interface Step {
  /** The command, with its continuation lines. */
  command: string
  /** The output the README shows under it, its lines joined. */
  expected: string
}

/** steps splits the block into commands, each with the comment lines that follow it. */
function steps(block: string): Step[] {
  const out: Step[] = []
  let command: string[] = []
  let expected: string[] = []
  const flush = () => {
    if (command.length) out.push({ command: command.join('\n'), expected: expected.join('') })
    command = []
    expected = []
  }
  let inQuote = false
  for (const line of block.split('\n')) {
    const quotes = (line.match(/'/g) ?? []).length
    if (!inQuote && line.startsWith('#')) {
      // `# 1. A store` heads a step; other comment lines show the output of the command above.
      if (/^# \d+\./.test(line)) flush()
      else if (command.length) expected.push(line.replace(/^#\s?/, '').trim())
      continue
    }
    if (!inQuote && expected.length) flush()
    if (line.trim() !== '' || inQuote) command.push(line)
    if (quotes % 2 === 1) inQuote = !inQuote
  }
  flush()
  return out
}

/** A regular expression for a README output line: ids are any ULID, `{…}` any JSON object. */
function pattern(expected: string): RegExp {
  const escaped = expected.replace(/\s+/g, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`^${escaped.replace(/01[0-9A-HJKMNP-TV-Z]{24}/g, '[0-9A-HJKMNP-TV-Z]{26}').replace(/\\\{…\\\}/g, '\\{.*\\}')}$`)
}

let server: PembaProcess & { url: string }
beforeAll(async () => {
  server = await startServer({ PEMBA_DATABASE_URL: 'sqlite::memory:' })
})
afterAll(() => server?.kill())

it('prints what the README says it prints', () => {
  const port = new URL(server.url).port
  const all = steps(walkthrough())
  expect(all.map((s) => s.expected !== '')).toEqual(all.map(() => true))
  expect(all.length).toBeGreaterThanOrEqual(7)
  // One shell runs the block, so STORE carries over; a marker line separates the outputs.
  const MARK = '--- pemba walkthrough step ---'
  const script = ['set -e', ...all.map((s) => `${s.command.replaceAll('localhost:8080', `localhost:${port}`)}\necho\necho '${MARK}'`)].join('\n')
  const run = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 30_000 })
  expect(run.status, run.stderr).toBe(0)
  const outputs = run.stdout.split(`${MARK}\n`).slice(0, all.length)
  expect(outputs).toHaveLength(all.length)
  all.forEach((step, i) => {
    const got = outputs[i]!.replace(/\s+/g, '')
    expect(got, `${step.command}\n→ ${outputs[i]}`).toMatch(pattern(step.expected))
  })
})
