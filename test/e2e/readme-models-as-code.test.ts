/**
 * The README's "Models as code" section, run as written: its store file goes to
 * `authz/agents.fga.yaml` in a fresh directory, and `pemba model test` over the glob it shows
 * must print the totals its comment promises.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { modelTest } from '../model-test/run.ts'

const ROOT = new URL('../..', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'pemba-readme-mac-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function section(): string {
  const readme = readFileSync(`${ROOT}/README.md`, 'utf8')
  const start = readme.indexOf('## Models as code')
  if (start < 0) throw new Error('README.md: no "Models as code" section')
  return readme.slice(start, readme.indexOf('\n## ', start + 1))
}

it("runs the README's store file and prints the totals the README shows", async () => {
  const text = section()
  const yaml = /```yaml\n# (authz\/[^\n]+)\n([\s\S]*?)\n```/.exec(text)
  expect(yaml, 'a ```yaml block whose first line names its file').not.toBeNull()
  const [, file, body] = yaml!
  mkdirSync(join(dir, 'authz'), { recursive: true })
  writeFileSync(join(dir, file!), body!)

  const command = /npx pemba model test --tests '([^']+)'\s+# … (\d+ passed, \d+ failed)/.exec(text)
  expect(command, 'the model test command with its expected totals').not.toBeNull()
  const [, glob, totals] = command!
  const run = await modelTest(['--tests', join(dir, glob!)])
  expect(run.err).toBe('')
  expect(run.out.trim().split('\n').at(-1)).toBe(totals)
  expect(run.code).toBe(0)
})
