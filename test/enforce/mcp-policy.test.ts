/**
 * The MCP policy against a real Pemba over HTTP, with real tokens: which messages are asked
 * about and how (COAZ-MCP, reference §6.2 and §8.46–49, with the team's default mapping), list
 * filtering, the scope ceiling, and failing closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import { encodeId } from '../../src/enforce/mcp/mapping.ts'
import { McpPolicy, McpPolicyFailure } from '../../src/enforce/mcp/policy.ts'
import type { JsonRpcMessage, McpVerdict } from '../../src/enforce/mcp/types.ts'
import { closedPort, mcpWorld, memoryLogger, type McpWorld } from './mcp-fixture.ts'

let world: McpWorld
let policy: McpPolicy
let log: ReturnType<typeof memoryLogger>

beforeAll(async () => {
  world = await mcpWorld()
  log = memoryLogger()
  policy = new McpPolicy({ decisions: world.decisions, server: 'crm', log, allowMethods: ['tasks/list'] })
})
afterAll(async () => {
  await world?.close()
})

const call = (name: string, args?: Record<string, unknown>, id: number | string = 7): JsonRpcMessage => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: args === undefined ? { name } : { name, arguments: args },
})

/** The agent acting for alice, from the app `assistant-app`. */
const agentForAlice = () => world.caller({ act: { sub: 'assistant' }, client_id: 'assistant-app' })

async function logged(requestId: string): Promise<Array<Record<string, any>>> {
  return (await world.decisionLog()).filter((d) => d.request_id === requestId)
}

describe('methods that never reach the PDP (§8.46)', () => {
  it('§8.46 ping, initialize, notifications, logging/setLevel and client responses skip the PDP', async () => {
    const before = (await world.decisionLog()).length
    const caller = await agentForAlice()
    const messages: JsonRpcMessage[] = [
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      { jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 3 } },
      { jsonrpc: '2.0', id: 4, method: 'logging/setLevel', params: { level: 'info' } },
      { jsonrpc: '2.0', id: 5, result: {} },
      { jsonrpc: '2.0', id: 6, method: 'tools/list' },
    ]
    for (const m of messages) expect(await policy.decide(m, caller)).toEqual({ kind: 'forward' })
    expect((await world.decisionLog()).length).toBe(before)
  })

  it('§8.46 an unknown method is denied -32001 without a question; allow_methods lets one through', async () => {
    const before = (await world.decisionLog()).length
    const caller = await agentForAlice()
    const v = await policy.decide({ jsonrpc: '2.0', id: 9, method: 'sampling/createMessage', params: {} }, caller)
    expect(v).toMatchObject({ kind: 'deny', error: { code: -32001, data: { reason: 'method_not_allowed' } }, requestIds: [] })
    expect(await policy.decide({ jsonrpc: '2.0', id: 10, method: 'tasks/list' }, caller)).toEqual({ kind: 'forward' })
    expect((await world.decisionLog()).length).toBe(before)
  })
})

describe('the default mapping (§8.47)', () => {
  it('§8.47 tools/call asks tool:<server>/<name>#call as the delegated check, logged under the request id', async () => {
    const v = await policy.decide(call('read_customer', { id: '42' }), await agentForAlice())
    expect(v.kind).toBe('allow')
    const [requestId] = (v as Extract<McpVerdict, { kind: 'allow' }>).requestIds
    const [d] = await logged(requestId!)
    expect(d).toMatchObject({ user: 'agent:assistant', on_behalf_of: ['user:alice'], relation: 'call', object: 'tool:crm/read_customer', allowed: true })
  })

  it('§8.47 without actors the principal asks; bob, who delegated nothing, is refused through the agent', async () => {
    expect((await policy.decide(call('read_customer'), await world.caller())).kind).toBe('allow')
    const v = await policy.decide(call('read_customer'), await world.caller({ sub: 'bob', act: { sub: 'assistant' } }))
    expect(v.kind).toBe('deny')
  })

  it('§8.47 context.agent is the token client_id (a condition reads it)', async () => {
    expect((await policy.decide(call('audit_log'), await agentForAlice())).kind).toBe('allow')
    expect((await policy.decide(call('audit_log'), await world.caller({ act: { sub: 'assistant' }, client_id: 'other-app' }))).kind).toBe('deny')
    expect((await policy.decide(call('audit_log'), await world.caller({ act: { sub: 'assistant' } }))).kind).toBe('deny')
  })

  it('tool arguments reach conditions as resource_args_*', async () => {
    const caller = await agentForAlice()
    expect((await policy.decide(call('search_customers', { limit: 100, filter: { city: 'Oslo' } }), caller)).kind).toBe('allow')
    expect((await policy.decide(call('search_customers', { limit: 101 }), caller)).kind).toBe('deny')
    // Without the argument the condition cannot be evaluated: a denial (the caller's), not a PDP failure.
    expect(await policy.decide(call('search_customers', {}), caller)).toMatchObject({
      kind: 'deny',
      error: { code: -32001, data: { decision_id: expect.any(String), reason: 'condition_not_evaluated' } },
    })
  })

  it('resources/read encodes the URI (%, :, # and white space); prompts/get and completion/complete are asked too', async () => {
    expect(encodeId('file:///r/q3.pdf')).toBe('file%3A///r/q3.pdf')
    expect(encodeId('a b#c%d\te')).toBe('a%20b%23c%25d%09e')
    const caller = await agentForAlice()
    const read = (uri: string, method = 'resources/read') => policy.decide({ jsonrpc: '2.0', id: 1, method, params: { uri } }, caller)
    expect((await read('file:///r/q3.pdf')).kind).toBe('allow')
    expect((await read('file:///r/q 4.pdf')).kind).toBe('allow')
    expect((await read('file:///r/q3.pdf', 'resources/subscribe')).kind).toBe('allow')
    expect((await read('file:///r/secret.pdf')).kind).toBe('deny')
    expect((await policy.decide({ jsonrpc: '2.0', id: 2, method: 'prompts/get', params: { name: 'summary' } }, caller)).kind).toBe('allow')
    expect((await policy.decide({ jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'other' } }, caller)).kind).toBe('deny')
    const complete = (ref: Record<string, unknown>) =>
      policy.decide({ jsonrpc: '2.0', id: 4, method: 'completion/complete', params: { ref, argument: { name: 'a', value: 'b' } } }, caller)
    expect((await complete({ type: 'ref/prompt', name: 'summary' })).kind).toBe('allow')
    expect((await complete({ type: 'ref/resource', uri: 'file:///r/secret.pdf' })).kind).toBe('deny')
    expect(await complete({ type: 'ref/other' })).toMatchObject({ kind: 'deny', error: { code: -32602 } })
  })

  it('params that cannot be mapped are -32602, never asked', async () => {
    const caller = await agentForAlice()
    expect(await policy.decide({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} }, caller)).toMatchObject({
      kind: 'deny',
      error: { code: -32602, message: 'Invalid params: params.name must be a non-empty string' },
      requestIds: [],
    })
    expect(await policy.decide({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', arguments: [1] } }, caller)).toMatchObject({
      error: { code: -32602 },
    })
    expect(await policy.decide({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: `file:///${'x'.repeat(300)}` } }, caller)).toMatchObject({
      error: { code: -32602 },
    })
  })
})

describe('denials and failures (§8.49)', () => {
  it('§8.49 a denial is -32001 with the decision id it was logged under, and no explanation', async () => {
    const v = await policy.decide(call('export_customers'), await agentForAlice())
    expect(v).toMatchObject({ kind: 'deny', error: { code: -32001, message: "Forbidden: tools/call 'export_customers' is not allowed" } })
    const error = (v as Extract<McpVerdict, { kind: 'deny' }>).error
    expect(Object.keys(error.data!)).toEqual(['decision_id'])
    const [d] = await logged(error.data!.decision_id as string)
    expect(d).toMatchObject({ object: 'tool:crm/export_customers', allowed: false })
  })

  it('§8.49 Pemba unavailable is -32603 with the request id, logged', async () => {
    const down = memoryLogger()
    const p = new McpPolicy({ decisions: remoteDecisions({ url: `http://127.0.0.1:${await closedPort()}`, storeId: world.storeId }), server: 'crm', log: down })
    const v = await p.decide(call('read_customer'), await agentForAlice())
    expect(v).toMatchObject({ kind: 'deny', error: { code: -32603, data: { decision_id: expect.any(String) } } })
    const line = down.lines.find((l) => l.level === 'error')!
    expect(line.msg).toContain('Pemba could not be asked')
    expect(line.request_id).toBe((v as Extract<McpVerdict, { kind: 'deny' }>).error.data!.decision_id)
    // A list is never passed on unfiltered.
    await expect(p.filterListResult('tools/list', { tools: [{ name: 'read_customer', inputSchema: { type: 'object' } }] }, await agentForAlice())).rejects.toSatisfy(
      (e: unknown) => e instanceof McpPolicyFailure && e.error.code === -32603,
    )
  })

  it('§8.49 Pemba refusing the question (unknown store) is -32603 too, logged as misconfiguration', async () => {
    const bad = memoryLogger()
    const p = new McpPolicy({ decisions: remoteDecisions({ url: world.served.url, storeId: '01HZZZZZZZZZZZZZZZZZZZZZZZ' }), server: 'crm', log: bad })
    expect(await p.decide(call('read_customer'), await agentForAlice())).toMatchObject({ kind: 'deny', error: { code: -32603 } })
    expect(bad.lines.find((l) => l.level === 'error')!.msg).toContain('Pemba refused the question')
  })

  it("explain 'log' logs the denial's explanation for operators", async () => {
    const ops = memoryLogger()
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log: ops, explain: 'log' })
    const v = await p.decide(call('export_customers'), await agentForAlice())
    const decisionId = (v as Extract<McpVerdict, { kind: 'deny' }>).error.data!.decision_id
    await expect.poll(() => ops.lines.find((l) => l.decision_id === decisionId && l.level === 'info')).toBeTruthy()
    const line = ops.lines.find((l) => l.decision_id === decisionId)!
    expect(line).toMatchObject({ object: 'tool:crm/export_customers', action: 'call' })
    expect(line.explanation).toBeDefined()
  })
})

describe('the scope ceiling', () => {
  it('a token without a scope that allows the action gets insufficient_scope with the scopes, without asking', async () => {
    const before = (await world.decisionLog()).length
    const v = await policy.decide(call('read_customer'), await world.caller({ act: { sub: 'assistant' }, scope: 'crm:export' }))
    expect(v).toMatchObject({ kind: 'insufficient_scope', scopes: ['crm:read', 'crm:all'], error: { code: -32001, data: { scopes: ['crm:read', 'crm:all'] } } })
    expect((await world.decisionLog()).length).toBe(before)
  })
})

describe('list filtering', () => {
  it('tools, prompts, resources and templates are filtered to what the caller may use, in one batch', async () => {
    const caller = await agentForAlice()
    const tools = [
      { name: 'read_customer', inputSchema: { type: 'object' } },
      { name: 'export_customers', inputSchema: { type: 'object' } },
      { name: 'list_customers', inputSchema: { type: 'object' } },
    ]
    const before = (await world.decisionLog()).length
    const out = await policy.filterListResult('tools/list', { tools, nextCursor: 'c2' }, caller)
    expect(out).toEqual({ tools: [tools[0], tools[2]], nextCursor: 'c2' })
    const batch = (await world.decisionLog()).slice(0, (await world.decisionLog()).length - before)
    expect(new Set(batch.map((d) => d.request_id)).size).toBe(1)
    expect(await policy.filterListResult('prompts/list', { prompts: [{ name: 'summary' }, { name: 'other' }] }, caller)).toEqual({ prompts: [{ name: 'summary' }] })
    expect(
      await policy.filterListResult('resources/list', { resources: [{ uri: 'file:///r/q3.pdf', name: 'q3' }, { uri: 'file:///r/secret.pdf', name: 's' }] }, caller),
    ).toEqual({ resources: [{ uri: 'file:///r/q3.pdf', name: 'q3' }] })
    expect(
      await policy.filterListResult('resources/templates/list', { resourceTemplates: [{ uriTemplate: 'file:///r/{name}', name: 'r' }, { uriTemplate: 'db://{x}', name: 'd' }] }, caller),
    ).toEqual({ resourceTemplates: [{ uriTemplate: 'file:///r/{name}', name: 'r' }] })
    // Other results pass as they are.
    expect(await policy.filterListResult('tools/call', { content: [] }, caller)).toEqual({ content: [] })
  })

  it('a token whose scopes allow no call sees no tools', async () => {
    const caller = await world.caller({ scope: 'crm:export' })
    expect(await policy.filterListResult('tools/list', { tools: [{ name: 'read_customer' }] }, caller)).toEqual({ tools: [] })
  })
})

describe('configuration', () => {
  it('a server name that cannot be an id segment is refused, naming the option', () => {
    expect(() => new McpPolicy({ decisions: world.decisions, server: 'crm/x', log })).toThrow(/^server: /)
    expect(() => new McpPolicy({ decisions: world.decisions, server: '', log })).toThrow(/^server: /)
  })
})
