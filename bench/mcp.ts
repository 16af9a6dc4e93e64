/**
 * What `pemba mcp-gateway` adds to an MCP tool call (issue 19's target: p50 overhead ≤ 1 ms on
 * loopback), in one run: the same `tools/call read_customer` asked N times in a row, warm, in
 * one session each, directly to the MCP server, through the gateway in front of it, and to the
 * same server enforcing in process with `createMcpAuthorizer()`.
 *
 * The set-up is the MCP example's (examples/mcp/), every server a child process: Pemba (`pemba
 * serve`, a fresh SQLite file, the example's model and tuples), the CRM MCP server
 * (examples/mcp/server.ts) twice, plain and with `--pemba … --store … --issuer …` (the
 * authorizer asking Pemba over HTTP), and the gateway (`pemba mcp-gateway --config
 * examples/mcp/gateway.yaml`) in front of the plain one. The token issuer and the three MCP
 * clients (the official SDK) run in the bench process. Every session carries the agent's token
 * (`agent:assistant` acting for `user:alice`, scope `crm`), so all send the same bytes; the plain
 * server ignores it. An enforced call is verified (signature, audience, `act` chain, scope
 * ceiling), asked of Pemba over HTTP as a delegated check (one AuthZEN evaluation of
 * `tool:crm/read_customer#call`, in Pemba's decision log) and passed on; the result comes back
 * unchanged.
 *
 * The sides are driven in turn, round after round with the order rotating, so that they are
 * compared seconds apart on the same processes. The rows: p50/p95/p99 of each side over every
 * round; the overheads (enforced − direct) and ratios at p50 and p99; the median over rounds of
 * each round's p50 difference; and the CPU time per call of each serving process (which other
 * work on the machine disturbs less than latency).
 *
 * `run.ts` calls {@link mcpPart} at the end of its HTTP part; `npm run bench -- --mcp-only`
 * runs only the data set and this part.
 *
 * @module
 */
import { EventEmitter, setMaxListeners } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { fetchHttp } from '../examples/nhi/load.ts'
import { startIssuer } from '../examples/mcp/issuer.ts'
import { connect, freePort, GATEWAY_CONFIG, loadCrmModel } from '../examples/mcp/run.ts'
import { cpuSeconds, log, median, ms, num, startServer, stats, stopServer, us, type LatencyStats, type Server } from './harness.ts'

export interface McpBenchOptions {
  /** Sequential calls per side per round. */
  calls: number
  rounds: number
  /** Calls on each side before the first round (JIT, connections, Pemba's caches). */
  warmupCalls: number
  /** Adds one table row: figure, n, p50, p95, p99, rate, notes. */
  row: (...cells: (string | number)[]) => void
}

export interface McpBenchReport {
  calls: number
  rounds: number
  direct: LatencyStats
  gateway: LatencyStats
  authorizer: LatencyStats
  overheadP50Us: number
  overheadP99Us: number
  ratioP50: number
  ratioP99: number
  /** The median over rounds of (gateway p50 − direct p50) within the round. */
  overheadP50MedianOfRoundsUs: number
  roundsOverheadP50Us: number[]
  /** The same for the in-process authorizer (authorizer − direct). */
  authorizerOverheadP50Us: number
  authorizerOverheadP99Us: number
  authorizerOverheadP50MedianOfRoundsUs: number
  /** CPU time per call of each serving process (µs), where /proc could be read. */
  cpuUsPerCall?: { crm: number; gateway: number; pembaForGateway: number; protectedCrm: number; pembaForAuthorizer: number }
  targetP50OverheadUs: number
}

const TARGET_P50_OVERHEAD_US = 1000

/** A difference in µs, signed (an enforced side can be faster than direct in a noisy round). */
const signedUs = (x: number) => (x < 0 ? `−${us(-x)}` : us(x))

/** One side: a session, the processes serving it, and the latencies (ms) of its calls. */
interface Side {
  name: string
  client: Client
  /** Whose CPU time a call of this side costs. */
  servers: Server[]
  cpuSeconds: number[]
  samples: number[]
  rounds: LatencyStats[]
}

/** callOnce times one `tools/call read_customer`; a wrong answer (or a denial) stops the bench. */
async function callOnce(side: Side): Promise<number> {
  const t = performance.now()
  const result = await side.client.callTool({ name: 'read_customer', arguments: { id: 'c-1001' } })
  const elapsed = performance.now() - t
  const text = (result.content as { type: string; text?: string }[])[0]?.text ?? ''
  if (result.isError || !text.includes('Acme Ltd')) throw new Error(`${side.name}: unexpected answer ${JSON.stringify(result)}`)
  return elapsed
}

/** drive makes `calls` sequential calls on a side, adding the CPU its servers spent. */
async function drive(side: Side, calls: number): Promise<number[]> {
  const before = side.servers.map((s) => cpuSeconds(s))
  const out: number[] = []
  for (let i = 0; i < calls; i++) out.push(await callOnce(side))
  side.servers.forEach((s, i) => {
    const [a, b] = [before[i], cpuSeconds(s)]
    side.cpuSeconds[i] = a === undefined || b === undefined || Number.isNaN(side.cpuSeconds[i]) ? NaN : side.cpuSeconds[i] + (b - a)
  })
  return out
}

/** mcpPart runs the example's stack, measures the three sides and adds the rows; stops everything it started. */
export async function mcpPart(o: McpBenchOptions): Promise<McpBenchReport> {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-bench-mcp-'))
  const servers: Server[] = []
  const clients: Client[] = []
  const issuer = await startIssuer()
  // The SDK client's session signal collects an abort listener per request until the requests
  // are collected (undici), and Node warns, with a stack trace per call, past 1500: thousands of
  // calls on one session are expected here, and the warnings would be measured with them.
  const maxListeners = EventEmitter.defaultMaxListeners
  setMaxListeners(0)
  try {
    log('MCP: starting Pemba, the CRM MCP server (plain and enforcing in process) and the gateway ...')
    const pemba = await startServer('src/cli/main.ts', ['serve'], {
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite:${join(dir, 'pemba.db')}`,
    })
    servers.push(pemba)
    const storeId = await loadCrmModel(fetchHttp(pemba.url))
    const crm = await startServer('examples/mcp/server.ts', ['--port', '0'], {})
    servers.push(crm)
    const protectedCrm = await startServer(
      'examples/mcp/server.ts',
      ['--port', '0', '--pemba', pemba.url, '--store', storeId, '--issuer', issuer.url],
      {},
    )
    servers.push(protectedCrm)
    const port = await freePort()
    const gateway = await startServer('src/cli/main.ts', ['mcp-gateway', '--config', GATEWAY_CONFIG], {
      GATEWAY_PORT: String(port),
      CRM_URL: crm.url,
      PEMBA_URL: pemba.url,
      PEMBA_STORE: storeId,
      ISSUER_URL: issuer.url,
    })
    servers.push(gateway)
    const resource = `http://127.0.0.1:${port}/mcp`
    // The agent's token, for each endpoint's audience; the plain CRM ignores it.
    const token = (audience: string) => issuer.mint({ subject: 'alice', actor: 'assistant', scope: 'crm', audience, expiresIn: 3600 })
    const sides: Side[] = []
    for (const [name, url, audience, serving] of [
      ['direct', crm.url, resource, [crm]],
      ['gateway', resource, resource, [gateway, pemba]],
      ['authorizer', protectedCrm.url, protectedCrm.url, [protectedCrm, pemba]],
    ] as const) {
      const client = await connect(url, await token(audience))
      clients.push(client)
      // As an agent does: the tool list first (an enforcement point learns the tools' declared mappings from it).
      await client.listTools()
      sides.push({ name, client, servers: [...serving], cpuSeconds: serving.map(() => 0), samples: [], rounds: [] })
    }
    const [direct, through, inProcess] = sides
    log(`MCP: ${o.warmupCalls} warm-up calls on each side, then ${o.rounds} rounds of ${o.calls} sequential calls each ...`)
    for (const side of sides) await drive(side, o.warmupCalls)
    for (const side of sides) side.cpuSeconds = side.servers.map(() => 0)

    const roundsOverhead: number[] = []
    const roundsAuthorizer: number[] = []
    for (let r = 0; r < o.rounds; r++) {
      // The order rotates: each side goes first, second and third equally often.
      for (let k = 0; k < sides.length; k++) {
        const side = sides[(r + k) % sides.length]
        const samples = await drive(side, o.calls)
        side.samples.push(...samples)
        side.rounds.push(stats(samples))
      }
      roundsOverhead.push(through.rounds[r].p50Us - direct.rounds[r].p50Us)
      roundsAuthorizer.push(inProcess.rounds[r].p50Us - direct.rounds[r].p50Us)
      log(
        `  round ${r + 1}: p50 direct ${us(direct.rounds[r].p50Us)}, through the gateway ${us(through.rounds[r].p50Us)}, ` +
          `in-process authorizer ${us(inProcess.rounds[r].p50Us)}`,
      )
    }

    const [d, g, a] = sides.map((s) => stats(s.samples))
    const n = o.calls * o.rounds
    const perCall = (sec: number) => (sec / n) * 1e6
    const cpuRead = sides.every((s) => s.cpuSeconds.every((x) => !Number.isNaN(x)))
    const report: McpBenchReport = {
      calls: o.calls,
      rounds: o.rounds,
      direct: d,
      gateway: g,
      authorizer: a,
      overheadP50Us: g.p50Us - d.p50Us,
      overheadP99Us: g.p99Us - d.p99Us,
      ratioP50: g.p50Us / d.p50Us,
      ratioP99: g.p99Us / d.p99Us,
      overheadP50MedianOfRoundsUs: median(roundsOverhead),
      roundsOverheadP50Us: roundsOverhead,
      authorizerOverheadP50Us: a.p50Us - d.p50Us,
      authorizerOverheadP99Us: a.p99Us - d.p99Us,
      authorizerOverheadP50MedianOfRoundsUs: median(roundsAuthorizer),
      targetP50OverheadUs: TARGET_P50_OVERHEAD_US,
      ...(cpuRead
        ? {
            cpuUsPerCall: {
              crm: perCall(direct.cpuSeconds[0]),
              gateway: perCall(through.cpuSeconds[0]),
              pembaForGateway: perCall(through.cpuSeconds[1]),
              protectedCrm: perCall(inProcess.cpuSeconds[0]),
              pembaForAuthorizer: perCall(inProcess.cpuSeconds[1]),
            },
          }
        : {}),
    }
    const cpu = report.cpuUsPerCall
    const label = `${o.rounds}×${o.calls} sequential, one session, warm`
    const latencyRow = (what: string, st: LatencyStats, notes: string) =>
      o.row(`MCP tools/call, ${what} (${label})`, num(st.n), us(st.p50Us), us(st.p95Us), us(st.p99Us), `${num(st.perSec)} calls/s`, notes)
    latencyRow('directly to the MCP server', d, cpu ? `CPU per call: MCP server ${us(cpu.crm)}` : 'examples/mcp/server.ts')
    latencyRow('through pemba mcp-gateway', g, cpu ? `CPU per call: gateway ${us(cpu.gateway)}, Pemba ${us(cpu.pembaForGateway)}` : '')
    latencyRow(
      'MCP server enforcing in process (createMcpAuthorizer)',
      a,
      cpu ? `CPU per call: MCP server with the authorizer ${us(cpu.protectedCrm)}, Pemba ${us(cpu.pembaForAuthorizer)}` : '',
    )
    o.row(
      'MCP gateway overhead per tools/call (through − direct)',
      '',
      signedUs(report.overheadP50Us),
      '',
      signedUs(report.overheadP99Us),
      `${num(report.ratioP50, 2)}× at p50, ${num(report.ratioP99, 2)}× at p99`,
      `target p50 ≤ ${ms(TARGET_P50_OVERHEAD_US / 1000)}; median of the rounds' p50 differences ${signedUs(report.overheadP50MedianOfRoundsUs)}`,
    )
    o.row(
      'MCP in-process authorizer overhead per tools/call (authorizer − direct)',
      '',
      signedUs(report.authorizerOverheadP50Us),
      '',
      signedUs(report.authorizerOverheadP99Us),
      `${num(a.p50Us / d.p50Us, 2)}× at p50, ${num(a.p99Us / d.p99Us, 2)}× at p99`,
      `median of the rounds' p50 differences ${signedUs(report.authorizerOverheadP50MedianOfRoundsUs)}`,
    )
    return report
  } finally {
    for (const c of clients) await c.close().catch(() => {})
    for (const s of servers.reverse()) await stopServer(s)
    await issuer.close()
    rmSync(dir, { recursive: true, force: true })
    setMaxListeners(maxListeners)
  }
}
