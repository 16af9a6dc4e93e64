/**
 * The README's 30-second walkthrough, run as written: its shell block, with curl, against a real
 * `pemba serve`, and every command's output compared with the `# …` lines the README shows
 * under it (ids may differ; `{…}` stands for any JSON object). See test/helpers/readme-shell.ts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startServer, type PembaProcess } from '../helpers/processes.ts'
import { readmeSection, runSteps, shellBlocks, steps } from '../helpers/readme-shell.ts'

let server: PembaProcess & { url: string }
beforeAll(async () => {
  server = await startServer({ PEMBA_DATABASE_URL: 'sqlite::memory:' })
})
afterAll(() => server?.kill())

it('prints what the README says it prints', () => {
  const block = shellBlocks(readmeSection('## A 30-second walkthrough'))[0]
  if (!block) throw new Error('README.md: no ```sh block in "A 30-second walkthrough"')
  const all = steps(block)
  expect(all.map((s) => s.expected !== '')).toEqual(all.map(() => true))
  expect(all.length).toBeGreaterThanOrEqual(7)
  runSteps(all, server.url)
})
