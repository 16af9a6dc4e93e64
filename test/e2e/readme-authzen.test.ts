/**
 * The README's AuthZEN section, run as written against a real `pemba serve` (the installed
 * command), with curl: its shell block after the walkthrough's (whose store it uses), then
 * docs/authzen.md's gateway example ("A gateway in front of an API") on a server started again on the same database with
 * PEMBA_AUTHZEN_DEFAULT_STORE naming the gateway's store, so that the root paths the gateway is
 * pointed at answer. Every command's output is compared with the `# …` lines under it
 * (test/helpers/readme-shell.ts: ids may differ, `"…"` is any token).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, expect, it } from 'vitest'
import { api, startServer, type PembaProcess } from '../helpers/processes.ts'
import { readmeSection, runSteps, shellBlocks, steps } from '../helpers/readme-shell.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'pemba-readme-authzen-'))
const env = { PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}` }
let server: (PembaProcess & { url: string }) | undefined
afterAll(() => {
  server?.kill()
  rmSync(dir, { recursive: true, force: true })
})

it("runs the README's AuthZEN examples and prints what the README shows", async () => {
  const walkthrough = shellBlocks(readmeSection('## A 30-second walkthrough'))[0]!
  const [examples] = shellBlocks(readmeSection('## AuthZEN'))
  expect(examples, 'the curl examples').toBeDefined()
  expect(readmeSection('## AuthZEN'), 'the gateway configuration').toContain('PEMBA_AUTHZEN_DEFAULT_STORE')
  // The gateway's worked example lives in docs/authzen.md (the README links to it).
  const docs = readFileSync(join(ROOT, 'docs/authzen.md'), 'utf8')
  const at = docs.indexOf('## A gateway in front of an API')
  expect(at, 'docs/authzen.md: the gateway section').toBeGreaterThan(-1)
  const [gateway] = shellBlocks(docs.slice(at, docs.indexOf('\n## ', at + 1)))
  expect(gateway, 'the gateway example').toBeDefined()
  const authzen = steps(examples!)
  // Evaluation, a batch, and a search over two pages.
  const commands = authzen.map((s) => s.command).join('\n')
  for (const path of ['/access/v1/evaluation ', '/access/v1/evaluations ', '/access/v1/search/resource ']) expect(commands).toContain(path)
  expect(commands).toContain('"token":')
  expect(authzen.every((s) => s.expected !== '')).toBe(true)

  server = await startServer(env)
  runSteps([...steps(walkthrough), ...authzen], server.url, dir)

  // The gateway's store, then the same database served with that store at the root.
  const gw = (await api(server.url, 'POST', '/stores', { name: 'gateway' })).body.id as string
  server.kill()
  await server.exited
  server = await startServer({ ...env, PEMBA_AUTHZEN_DEFAULT_STORE: gw })
  const origin = server.url.replace('127.0.0.1', 'localhost')
  const meta = await fetch(`${origin}/.well-known/authzen-configuration`)
  expect(meta.status).toBe(200)
  const doc = (await meta.json()) as Record<string, string>
  expect(doc.policy_decision_point).toBe(origin)
  expect(doc.access_evaluation_endpoint).toBe(`${origin}/access/v1/evaluation`)

  const gatewaySteps = steps(gateway!)
  expect(gatewaySteps.at(-1)!.command).toContain('localhost:8080/access/v1/evaluation')
  runSteps(gatewaySteps, server.url, dir, { GW: gw })
  // …and another record's route is refused, as the README says.
  const other = gatewaySteps.at(-1)!
  runSteps([{ command: other.command.replace('"id":"42"', '"id":"43"'), expected: '{"decision":false}' }], server.url, dir)
}, 60_000)
