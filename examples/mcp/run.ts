/**
 * `npm run example:mcp`: an AI agent acting for alice, calling a CRM's tools through
 * `pemba mcp-gateway`, every message decided by Pemba. It starts, on loopback ports:
 *
 * 1. Pemba (`pemba serve` on a database in a temporary directory), with this folder's
 *    model.fga and tuples.json loaded into a new store;
 * 2. the token issuer (issuer.ts: a key pair and its JWKS);
 * 3. the CRM, an MCP server built with the official SDK (server.ts), knowing nothing of Pemba;
 * 4. the gateway in front of it (`pemba mcp-gateway --config examples/mcp/gateway.yaml`);
 * 5. a second CRM that enforces the same decisions in process, with `createMcpAuthorizer()`
 *    (the library form of the gateway, for servers built with the official SDK);
 *
 * then runs an MCP client (the official SDK) with the token of `agent:assistant` acting for
 * `user:alice`, prints each step and what came back, and exits 0 when every step answered as
 * the model says (1 otherwise). With `--serve` it keeps everything running and prints the URLs
 * and a token, for trying other clients (Ctrl-C stops it all).
 *
 *   npm run example:mcp
 *   npm run example:mcp -- --serve
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { fetchHttp, type Http } from '../nhi/load.ts'
import { startIssuer, type LocalIssuer } from './issuer.ts'
import { pembaEnforcement, startCrm, type RunningCrm } from './server.ts'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const ROOT = join(HERE, '..', '..')
/** The gateway's configuration; run.ts fills its `${…}` references through the environment. */
export const GATEWAY_CONFIG = join(HERE, 'gateway.yaml')
const LISTENING = /listening on (http:\/\/[^\s"]+)/

/** A `pemba` child process (the CLI from src/, run by tsx), in its own process group. */
export interface PembaChild {
  url: string
  proc: ChildProcess
  output(): string
  stop(): Promise<void>
}

/**
 * startPemba runs `pemba <args>` and resolves once it logs `listening on <url>` (it is killed,
 * with its output in the error, if it exits or takes longer than `timeoutMs`).
 */
export async function startPemba(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<PembaChild> {
  const proc = spawn(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let out = ''
  // The output is kept for error messages: the last 64 KiB of it (a --serve run logs for hours).
  const keep = (d: string) => void (out = (out + d).slice(-65_536))
  proc.stdout!.setEncoding('utf8').on('data', keep)
  proc.stderr!.setEncoding('utf8').on('data', keep)
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
      try {
        process.kill(-proc.pid, 'SIGTERM')
      } catch {
        proc.kill('SIGTERM')
      }
      const killed = setTimeout(() => proc.pid !== undefined && process.kill(-proc.pid, 'SIGKILL'), 5_000)
      await exited
      clearTimeout(killed)
    }
  }
  const deadline = Date.now() + timeoutMs
  while (!LISTENING.test(out)) {
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`pemba ${args[0]} did not start (exit ${proc.exitCode ?? proc.signalCode}):\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { url: LISTENING.exec(out)![1], proc, output: () => out, stop }
}

/** A free loopback port (the gateway's resource URI names its port before it listens). */
export async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

/** loadCrmModel creates a store with model.fga and tuples.json; resolves with its id. */
export async function loadCrmModel(http: Http): Promise<string> {
  const must = (what: string, res: { status: number; body: any }, status: number) => {
    if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`)
    return res.body
  }
  const store = must('create store', await http('POST', '/stores', { name: 'mcp-example' }), 201)
  must('write model', await http('POST', `/stores/${store.id}/authorization-models`, readFileSync(join(HERE, 'model.fga'), 'utf8')), 201)
  must('write tuples', await http('POST', `/stores/${store.id}/write`, JSON.parse(readFileSync(join(HERE, 'tuples.json'), 'utf8'))), 200)
  return store.id as string
}

/** Everything the example runs, and how to stop it. */
export interface CrmStack {
  pemba: PembaChild
  storeId: string
  issuer: LocalIssuer
  crm: RunningCrm
  gateway: PembaChild
  /** The MCP endpoint behind the gateway, and the audience of the tokens. */
  resource: string
  /** The CRM enforcing in process (createMcpAuthorizer); its URL is its tokens' audience. */
  protectedCrm: RunningCrm
  stop(): Promise<void>
}

/** startStack starts Pemba (and loads the model), the issuer, the CRM, the gateway and the CRM enforcing in process. */
export async function startStack(log: (line: string) => void = () => {}): Promise<CrmStack> {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-mcp-example-'))
  const stops: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })]
  const stop = async () => {
    for (const s of [...stops].reverse()) await s().catch(() => {})
  }
  try {
    const pemba = await startPemba(['serve'], {
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`,
      PEMBA_ACCESS_LOG: 'off',
      // The decision log is written every 200 ms by default; the walkthrough reads it at once.
      PEMBA_DECISION_LOG_FLUSH_MS: '20',
    })
    stops.push(pemba.stop)
    log(`Pemba            ${pemba.url}`)
    const storeId = await loadCrmModel(fetchHttp(pemba.url))
    log(`  store          ${storeId} (examples/mcp/model.fga and tuples.json)`)
    const issuer = await startIssuer()
    stops.push(issuer.close)
    log(`token issuer     ${issuer.url} (JWKS at ${issuer.jwksUri})`)
    const crm = await startCrm()
    stops.push(crm.close)
    log(`CRM MCP server   ${crm.url} (upstream, no authorisation of its own)`)
    const port = await freePort()
    const gateway = await startPemba(['mcp-gateway', '--config', GATEWAY_CONFIG], {
      GATEWAY_PORT: String(port),
      CRM_URL: crm.url,
      PEMBA_URL: pemba.url,
      PEMBA_STORE: storeId,
      ISSUER_URL: issuer.url,
    })
    stops.push(gateway.stop)
    const resource = `http://127.0.0.1:${port}/mcp`
    log(`MCP gateway      ${resource} (pemba mcp-gateway --config examples/mcp/gateway.yaml)`)
    const protectedCrm = await startCrm({ inProcess: pembaEnforcement({ pembaUrl: pemba.url, storeId, issuerUrl: issuer.url }) })
    stops.push(protectedCrm.close)
    log(`CRM, in process  ${protectedCrm.url} (the same server, enforcing with createMcpAuthorizer())`)
    return { pemba, storeId, issuer, crm, gateway, resource, protectedCrm, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** connect opens an MCP session (the official SDK's client) at an MCP endpoint with a bearer token. */
export async function connect(resource: string, token: string, fetchFn?: FetchLike): Promise<Client> {
  const client = new Client({ name: 'example-agent', version: '1.0.0' })
  await client.connect(
    new StreamableHTTPClientTransport(new URL(resource), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      ...(fetchFn ? { fetch: fetchFn } : {}),
    }),
  )
  return client
}

/** A failed expectation: the walkthrough stops and the script exits 1. */
class Unexpected extends Error {}

function expect(ok: boolean, what: string): void {
  if (!ok) throw new Unexpected(what)
}

/** The first text item of a tool result. */
function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? []
  return content.find((c) => c.type === 'text')?.text ?? ''
}

/**
 * walkthrough is what the agent does, step by step, printing each: a request without a token,
 * the filtered tool list, an allowed call, a denied one, the denial in Pemba's decision log, a
 * call with a token lacking the scope, and the same decisions taken in process by the second CRM.
 * Throws Unexpected at the first step that answers otherwise.
 */
export async function walkthrough(stack: CrmStack, print: (line: string) => void): Promise<void> {
  const { resource, issuer } = stack
  const agentToken = await issuer.mint({ subject: 'alice', actor: 'assistant', scope: 'crm', audience: resource })

  // 1. No token: 401 and where to learn how to get one (RFC 9728).
  const initialize = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '0' } },
  })
  const post = () =>
    fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: initialize,
    })
  const anonymous = await post()
  const challenge = anonymous.headers.get('www-authenticate') ?? ''
  print(`1. no token: HTTP ${anonymous.status}, WWW-Authenticate: ${challenge}`)
  expect(anonymous.status === 401 && challenge.includes('resource_metadata='), 'without a token the gateway answers 401 with resource_metadata')

  // 2. The agent's session: tools/list is filtered to what the agent may call for alice.
  const client = await connect(resource, agentToken)
  try {
    const { tools } = await client.listTools()
    const names = tools.map((t) => t.name).sort()
    print(`2. tools/list as agent:assistant for user:alice: ${names.join(', ')} (the CRM has 3 tools)`)
    expect(names.join(',') === 'read_customer,update_customer', 'the agent sees read_customer and update_customer only')

    // 3. An allowed call passes through unchanged.
    const read = await client.callTool({ name: 'read_customer', arguments: { id: 'c-1001' } })
    print(`3. tools/call read_customer {"id":"c-1001"}: allowed, ${textOf(read)}`)
    expect(!read.isError && textOf(read).includes('Acme Ltd'), 'read_customer answers the customer')

    // 4. A forbidden call never reaches the CRM: a JSON-RPC error, with the decision's id.
    let decisionId = ''
    try {
      await client.callTool({ name: 'export_customers', arguments: {} })
      expect(false, 'export_customers is denied')
    } catch (err) {
      if (!(err instanceof McpError)) throw err
      decisionId = String((err.data as { decision_id?: unknown } | undefined)?.decision_id ?? '')
      // The SDK prefixes the server's message with "MCP error <code>: ".
      const message = err.message.replace(/^MCP error -?\d+: /, '')
      print(`4. tools/call export_customers: denied, JSON-RPC error ${err.code} "${message}", decision_id ${decisionId}`)
      expect(err.code === -32001 && decisionId !== '', 'export_customers is denied with -32001 and a decision_id')
    }

    // 5. The denial in Pemba's decision log, found by its id.
    const entry = await loggedDecision(stack, decisionId)
    print(
      `5. decision log: ${entry.user} on behalf of ${(entry.on_behalf_of ?? []).join(', ')} ` +
        `${entry.relation} ${entry.object}: allowed=${entry.allowed}` +
        (entry.detail?.denied_by ? `, denied_by ${entry.detail.denied_by}` : ''),
    )
    expect(entry.object === 'tool:crm/export_customers' && entry.allowed === false, 'the denial is in the decision log')
  } finally {
    await client.close()
  }

  // 6. A token without the `crm` scope: the call is refused with HTTP 403 insufficient_scope,
  // naming the scope to ask the issuer for (the client may step up and retry).
  const seen: { status: number; challenge: string }[] = []
  const recording: FetchLike = async (url, init) => {
    const res = await fetch(url, init)
    seen.push({ status: res.status, challenge: res.headers.get('www-authenticate') ?? '' })
    return res
  }
  const unscoped = await connect(resource, await issuer.mint({ subject: 'alice', actor: 'assistant', audience: resource }), recording)
  try {
    await unscoped.callTool({ name: 'read_customer', arguments: { id: 'c-1001' } })
    expect(false, 'a token without the crm scope cannot call tools')
  } catch (err) {
    if (err instanceof Unexpected) throw err
    const refusal = seen.at(-1)!
    print(`6. token without the crm scope: tools/call refused with HTTP ${refusal.status}, WWW-Authenticate: ${refusal.challenge}`)
    expect(
      refusal.status === 403 && refusal.challenge.includes('insufficient_scope') && refusal.challenge.includes('scope="crm"'),
      'a token without the crm scope gets 403 insufficient_scope naming crm',
    )
  } finally {
    await unscoped.close()
  }

  // 7. The same decisions inside the MCP server itself (createMcpAuthorizer), no gateway.
  const own = stack.protectedCrm.url
  const inProcess = await connect(own, await issuer.mint({ subject: 'alice', actor: 'assistant', scope: 'crm', audience: own }))
  try {
    const names = (await inProcess.listTools()).tools.map((t) => t.name).sort()
    const read = await inProcess.callTool({ name: 'read_customer', arguments: { id: 'c-1003' } })
    let refusal = 0
    try {
      await inProcess.callTool({ name: 'export_customers', arguments: {} })
    } catch (err) {
      if (!(err instanceof McpError)) throw err
      refusal = err.code
    }
    print(
      `7. in process (createMcpAuthorizer, no gateway): tools/list ${names.join(', ')}; read_customer ` +
        `${read.isError ? 'failed' : 'allowed'}; export_customers ${refusal ? `denied, JSON-RPC error ${refusal}` : 'ALLOWED'}`,
    )
    expect(
      names.join(',') === 'read_customer,update_customer' && !read.isError && refusal === -32001,
      'the in-process authorizer decides as the gateway does',
    )
  } finally {
    await inProcess.close()
  }
}

interface LoggedDecision {
  user: string
  on_behalf_of?: string[]
  relation: string
  object: string
  allowed: boolean
  detail?: { denied_by?: string }
}

/** loggedDecision polls `GET /stores/{store}/decisions?request_id=…` until the entry is written (≤ 5 s). */
async function loggedDecision(stack: CrmStack, requestId: string): Promise<LoggedDecision> {
  const url = `${stack.pemba.url}/stores/${stack.storeId}/decisions?request_id=${encodeURIComponent(requestId)}`
  for (let i = 0; i < 100; i++) {
    const res = await fetch(url)
    const body = (await res.json()) as { decisions?: LoggedDecision[] }
    expect(res.ok, `the decision log answers (${res.status} ${JSON.stringify(body)})`)
    if (body.decisions?.length) return body.decisions[0]
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Unexpected(`no decision logged under request id ${requestId}`)
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { serve: { type: 'boolean', default: false } }, strict: true })
  console.log('Starting Pemba, the token issuer, the CRM MCP server, the MCP gateway and the CRM enforcing in process ...')
  const stack = await startStack((line) => console.log(`  ${line}`))
  let code = 0
  try {
    console.log('\nThe agent (the official MCP SDK client), acting for alice:')
    await walkthrough(stack, (line) => console.log(line))
    console.log('\nEvery step answered as the model says.')
  } catch (err) {
    if (!(err instanceof Unexpected)) throw err
    console.log(`\nUNEXPECTED: ${err.message}`)
    code = 1
  }
  if (!values.serve) {
    await stack.stop()
    return code
  }
  const token = await stack.issuer.mint({ subject: 'alice', actor: 'assistant', scope: 'crm', audience: stack.resource })
  console.log(`\nServing until Ctrl-C. The MCP endpoint: ${stack.resource}`)
  console.log(`A token of agent:assistant acting for user:alice (valid 1 hour):\n${token}`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await stack.stop()
  return code
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(`example:mcp: ${(err as Error).stack ?? err}`)
      process.exit(1)
    },
  )
}
