/**
 * The README's shell examples, run as written: a section's ```sh block is split into commands,
 * each followed by the `# …` lines that show what it prints, and one bash runs them in order
 * against a real server (test/e2e/readme-walkthrough.test.ts, test/e2e/readme-authzen.test.ts).
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The README's text from the heading `heading` to the next `## ` heading. */
export function readmeSection(heading: string): string {
  const readme = readFileSync(`${ROOT}/README.md`, 'utf8')
  const start = readme.indexOf(heading)
  if (start < 0) throw new Error(`README.md: no "${heading}" section`)
  const end = readme.indexOf('\n## ', start + heading.length)
  return end < 0 ? readme.slice(start) : readme.slice(start, end)
}

/** The ```sh blocks of a section, in order. */
export function shellBlocks(section: string): string[] {
  return [...section.matchAll(/```sh\n([\s\S]*?)\n```/g)].map((m) => m[1]!)
}

export interface Step {
  /** The command, with its continuation lines. */
  command: string
  /** The output the README shows under it, its lines joined. */
  expected: string
}

/** steps splits a block into commands, each with the comment lines that follow it. */
export function steps(block: string): Step[] {
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

/**
 * A regular expression for a README output line, white space ignored: ids are any ULID, `{…}`
 * any JSON object, and `"…"` any non-empty JSON string (an opaque token).
 */
export function pattern(expected: string): RegExp {
  const escaped = expected.replace(/\s+/g, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(
    `^${escaped
      .replace(/01[0-9A-HJKMNP-TV-Z]{24}/g, '[0-9A-HJKMNP-TV-Z]{26}')
      .replace(/\\\{…\\\}/g, '\\{.*\\}')
      .replace(/"…"/g, '"[^"]+"')}$`,
  )
}

/**
 * runSteps runs the steps in one bash (so variables carry over), in `cwd`, with
 * `localhost:8080` pointed at `url`, and expects each step to print what the README shows.
 */
export function runSteps(all: Step[], url: string, cwd = ROOT, env: Record<string, string> = {}): void {
  const port = new URL(url).port
  // A marker line separates the outputs.
  const MARK = '--- pemba readme step ---'
  const script = ['set -e', ...all.map((s) => `${s.command.replaceAll('localhost:8080', `localhost:${port}`)}\necho\necho '${MARK}'`)].join('\n')
  const run = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 30_000, cwd, env: { ...process.env, ...env } })
  expect(run.status, run.stderr).toBe(0)
  const outputs = run.stdout.split(`${MARK}\n`).slice(0, all.length)
  expect(outputs).toHaveLength(all.length)
  all.forEach((step, i) => {
    const got = outputs[i]!.replace(/\s+/g, '')
    expect(got, `${step.command}\n→ ${outputs[i]}`).toMatch(pattern(step.expected))
  })
}
