/**
 * `pemba mcp-gateway` as an operator runs it: the built command (bin/pemba.js on dist/), in real
 * processes. `--check` validates a file and exits 0, or 1 naming the setting at fault; without
 * it the gateway listens, logs `mcp_gateway_listening`, proxies an SDK client's calls through
 * to the MCP server as Pemba decides, and stops on SIGTERM.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runPemba, type PembaProcess } from '../helpers/processes.ts'
import { gatewayYaml, startBench, type Bench } from './mcp-gateway-fixture.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-mcp-gateway-'))
const procs: PembaProcess[] = []
let b: Bench
beforeAll(async () => {
  b = await startBench()
})
afterAll(async () => {
  for (const p of procs) p.kill()
  await b?.close()
  rmSync(dir, { recursive: true, force: true })
})

function configFile(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const yaml = (extra = '') => gatewayYaml({ upstream: b.upstream.url, pemba: b.pemba.url, store: b.store, jwksUri: b.idp.jwksUri, extra })

async function run(args: string[], env: Record<string, string> = {}) {
  const p = runPemba(args, env)
  procs.push(p)
  const code = await p.exited
  return { code, out: p.stdout(), err: p.stderr() }
}

describe('pemba mcp-gateway', () => {
  it('--check: a good file exits 0; a bad one exits 1 naming the key', async () => {
    const good = configFile('good.yaml', yaml())
    const misspelt = configFile('misspelt.yaml', yaml('allowed_methods: [tasks/get]\n'))
    const absent = join(dir, 'nope.yaml')
    const [ok, bad, unset, missing, usage] = await Promise.all([
      run(['mcp-gateway', '--config', good, '--check'], { UPSTREAM_KEY: 'k' }),
      run(['mcp-gateway', '--config', misspelt, '--check'], { UPSTREAM_KEY: 'k' }),
      run(['mcp-gateway', '--config', good, '--check']),
      run(['mcp-gateway', '--config', absent, '--check']),
      run(['mcp-gateway']),
    ])
    expect(ok.code, ok.err).toBe(0)
    expect(ok.out).toContain(`${good}: ok`)
    expect(bad.code).toBe(1)
    expect(bad.err).toBe(`pemba mcp-gateway: ${misspelt}: allowed_methods: unknown setting\n`)
    expect(unset.code).toBe(1)
    expect(unset.err).toContain('upstream.headers.X-Upstream-Key: the environment variable UPSTREAM_KEY is not set')
    expect([missing.code, missing.err]).toEqual([1, `pemba mcp-gateway: ${absent}: cannot be read: ENOENT\n`])
    expect(usage.code).toBe(2)
    expect(usage.err).toContain("required option '--config <file>' not specified")
  })

  it('listens, proxies as Pemba decides, and stops on SIGTERM', async () => {
    const p = runPemba(['mcp-gateway', '--config', configFile('run.yaml', yaml())], { UPSTREAM_KEY: 'upstream-secret' })
    procs.push(p)
    const deadline = Date.now() + 30_000
    let url: string | undefined
    while (!url) {
      const line = p.stdout().split('\n').find((l) => l.includes('"mcp_gateway_listening"'))
      if (line) url = (JSON.parse(line) as { url: string }).url
      else if (Date.now() > deadline || p.proc.exitCode !== null) throw new Error(`the gateway did not start: ${p.stdout()} ${p.stderr()}`)
      else await new Promise((r) => setTimeout(r, 25))
    }
    const client = new Client({ name: 'cli-test', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${await b.token()}` } } })
    await client.connect(transport)
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['count_slowly', 'read_customer'])
    expect((await client.callTool({ name: 'read_customer', arguments: { id: '5' } })).content).toEqual([
      { type: 'text', text: 'customer 5: ACME Corp, 42 employees, héllo ✓' },
    ])
    await client.close()
    p.proc.kill('SIGTERM')
    expect(await p.exited).toBe(0)
    const lines = p.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines.filter((l) => l.event === 'mcp_request').length).toBeGreaterThan(2)
    expect(lines.at(-1)).toMatchObject({ event: 'stopped' })
    expect(p.stdout()).not.toContain('upstream-secret')
  })
})
