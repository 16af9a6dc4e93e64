/**
 * The MCP example (examples/mcp/) runs as documented: `npm run example:mcp` starts Pemba, the
 * token issuer, the CRM MCP server, `pemba mcp-gateway` in front of it and a second CRM enforcing
 * in process (createMcpAuthorizer), walks the agent through its steps and exits 0, leaving
 * nothing running; `--serve` keeps it all up with a working token until
 * Ctrl-C. The script is run as a child process, exactly as the npm script runs it.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { connect } from '../../examples/mcp/run.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx')
const SCRIPT = join(ROOT, 'examples', 'mcp', 'run.ts')
/** The labels of the servers the script prints at start-up. */
const SERVED = ['Pemba', 'token issuer', 'CRM MCP server', 'MCP gateway', 'CRM, in process']

/** The example as a child process, its output gathered. */
function runExample(args: string[] = []) {
  const proc = spawn(TSX, [SCRIPT, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL')
  }
  return { proc, output: () => out, exited, kill }
}

/** The URL printed after `label` in the start-up lines (`Pemba            http://…`). */
function urlAfter(output: string, label: string): string {
  const m = new RegExp(`${label}\\s+(http://127\\.0\\.0\\.1:\\d+\\S*)`).exec(output)
  if (!m) throw new Error(`no ${label} URL in:\n${output}`)
  return m[1]
}

/** True when nothing listens at `url` any more. */
async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2_000) })
    return false
  } catch (e) {
    return /ECONNREFUSED/.test(String((e as { cause?: unknown }).cause ?? e))
  }
}

describe('examples/mcp', () => {
  it('walks the agent acting for alice through the gateway and exits 0', async () => {
    const run = runExample()
    try {
      const code = await run.exited
      const out = run.output()
      expect(code, out).toBe(0)
      expect(out).toMatch(
        /^1\. no token: HTTP 401, WWW-Authenticate: Bearer .*resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/m,
      )
      expect(out).toMatch(/^2\. tools\/list as agent:assistant for user:alice: read_customer, update_customer \(the CRM has 3 tools\)$/m)
      expect(out).toMatch(/^3\. tools\/call read_customer \{"id":"c-1001"\}: allowed, \{"id":"c-1001","name":"Acme Ltd",/m)
      expect(out).toMatch(/^4\. tools\/call export_customers: denied, JSON-RPC error -32001 ".+", decision_id [0-9A-HJKMNP-TV-Z]{26}$/m)
      expect(out).toMatch(
        /^5\. decision log: agent:assistant on behalf of user:alice call tool:crm\/export_customers: allowed=false, denied_by principal$/m,
      )
      expect(out).toMatch(/^6\. token without the crm scope: tools\/call refused with HTTP 403, WWW-Authenticate: Bearer error="insufficient_scope".*scope="crm"/m)
      expect(out).toMatch(
        /^7\. in process \(createMcpAuthorizer, no gateway\): tools\/list read_customer, update_customer; read_customer allowed; export_customers denied, JSON-RPC error -32001$/m,
      )
      expect(out).toContain('Every step answered as the model says.')
      // Nothing is left running: Pemba, the CRM and the gateway are gone with the script.
      for (const label of SERVED) expect(await refused(urlAfter(out, label)), label).toBe(true)
    } finally {
      run.kill()
    }
  }, 180_000)

  it('--serve keeps serving with the printed token until SIGINT; deleting the delegation stops the next call', async () => {
    const run = runExample(['--serve'])
    try {
      const deadline = Date.now() + 150_000
      while (!/valid 1 hour\):\n(\S+)\n/.test(run.output())) {
        if (run.proc.exitCode !== null || Date.now() > deadline) throw new Error(`--serve did not come up:\n${run.output()}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      const out = run.output()
      const token = /valid 1 hour\):\n(\S+)\n/.exec(out)![1]
      const endpoint = /The MCP endpoint: (http:\/\/\S+)/.exec(out)![1]
      // Another client, with the printed token: the same answers as the walkthrough.
      const client = await connect(endpoint, token)
      try {
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['read_customer', 'update_customer'])
        const updated = await client.callTool({ name: 'update_customer', arguments: { id: 'c-1002', field: 'phone', value: '+44 20 7946 9999' } })
        expect(updated.isError).toBeFalsy()
        expect(updated.structuredContent).toMatchObject({ id: 'c-1002', phone: '+44 20 7946 9999' })
        // As the folder's README says: once alice's delegation is deleted, the next call is denied.
        const store = /store\s+([0-9A-HJKMNP-TV-Z]{26})/.exec(out)![1]
        const revoked = await fetch(`${urlAfter(out, 'Pemba')}/stores/${store}/write`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ deletes: { tuple_keys: [{ user: 'agent:assistant', relation: 'acts_for', object: 'user:alice' }] } }),
        })
        expect(revoked.status).toBe(200)
        await expect(client.callTool({ name: 'read_customer', arguments: { id: 'c-1001' } })).rejects.toMatchObject({ code: -32001 })
      } finally {
        await client.close()
      }
      run.proc.kill('SIGINT')
      expect(await run.exited).toBe(0)
      for (const label of SERVED) expect(await refused(urlAfter(out, label)), label).toBe(true)
    } finally {
      run.kill()
    }
  }, 180_000)
})
