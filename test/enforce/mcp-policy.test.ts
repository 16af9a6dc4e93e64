/**
 * The MCP policy against a real Pemba over HTTP, with real tokens: which messages are asked
 * about and how (COAZ-MCP, reference §6.2 and §8.46–49, with the team's default mapping), list
 * filtering, the scope ceiling, and failing closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { embeddedDecisions } from '../../src/enforce/embedded.ts'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import { encodeId } from '../../src/core/ids.ts'
import { argumentProperties, MAX_ARGUMENT_BYTES, MAX_ARGUMENTS_BYTES } from '../../src/enforce/mcp/mapping.ts'
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
    const before = new Set((await world.decisionLog()).map((d) => d.request_id))
    const out = await policy.filterListResult('tools/list', { tools, nextCursor: 'c2' }, caller)
    expect(out).toEqual({ tools: [tools[0], tools[2]], nextCursor: 'c2' })
    const batch = (await world.decisionLog()).filter((d) => !before.has(d.request_id))
    expect(batch).toHaveLength(3)
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

  it('allow_methods cannot name a method the policy decides (that would switch enforcement off)', () => {
    for (const m of ['tools/call', 'resources/read', 'resources/subscribe', 'resources/unsubscribe', 'prompts/get', 'completion/complete', 'tools/list', 'resources/templates/list']) {
      expect(() => new McpPolicy({ decisions: world.decisions, server: 'crm', log, allowMethods: ['tasks/list', m] })).toThrow(
        `allow_methods: '${m}' is decided by the policy and cannot be allowed unasked`,
      )
    }
  })
})

describe('message shapes', () => {
  it('§8.46 a request (with an id) named notifications/* is an unknown method; a notification still skips the PDP', async () => {
    const caller = await agentForAlice()
    expect(await policy.decide({ jsonrpc: '2.0', id: 6, method: 'notifications/tools/call', params: { name: 'export_customers' } }, caller)).toMatchObject({
      kind: 'deny',
      error: { code: -32001, data: { reason: 'method_not_allowed' } },
    })
    expect(await policy.decide({ jsonrpc: '2.0', method: 'notifications/progress', params: {} }, caller)).toEqual({ kind: 'forward' })
  })

  it('a message without a method is forwarded only as a response (an id and exactly one of result and error)', async () => {
    const caller = await agentForAlice()
    const decide = (m: Record<string, unknown>) => policy.decide(m as JsonRpcMessage, caller)
    expect(await decide({ jsonrpc: '2.0', id: 8, result: {} })).toEqual({ kind: 'forward' })
    expect(await decide({ jsonrpc: '2.0', id: null, error: { code: -1, message: 'x' } })).toEqual({ kind: 'forward' })
    for (const bad of [{ jsonrpc: '2.0', id: 8, params: { name: 'export_customers' } }, { jsonrpc: '2.0', id: 8, result: {}, error: {} }, { jsonrpc: '2.0', result: {} }]) {
      expect(await decide(bad)).toMatchObject({ kind: 'deny', error: { code: -32600 }, requestIds: [] })
    }
  })

  it('tool names that would be other ids are encoded one-to-one and denied as unknown objects, or -32602 when too long', async () => {
    const caller = await agentForAlice()
    for (const name of ['read_customer#call@user:alice', 'a:b', 'read customer', 'read_customer\u2028', 'x/../read_customer', 'ｒｅａｄ_customer']) {
      expect(await policy.decide(call(name), caller)).toMatchObject({ kind: 'deny', error: { code: -32001 } })
    }
    expect(await policy.decide(call('t'.repeat(300)), caller)).toMatchObject({ kind: 'deny', error: { code: -32602 }, requestIds: [] })
  })

  it('a list member that is not a list is answered with an empty list, logged', async () => {
    const warned = memoryLogger()
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log: warned })
    expect(await p.filterListResult('tools/list', { tools: { export_customers: { name: 'export_customers' } } }, await agentForAlice())).toEqual({ tools: [] })
    expect(warned.lines.some((l) => l.level === 'warn' && String(l.msg).includes('not a list'))).toBe(true)
  })
})

describe('a condition that cannot be evaluated', () => {
  it('is a denial (condition_not_evaluated, warn), not a PDP failure, with the remote and the embedded client alike', async () => {
    for (const decisions of [world.decisions, embeddedDecisions(world.served.pemba, world.storeId)]) {
      const ops = memoryLogger()
      const p = new McpPolicy({ decisions, server: 'crm', log: ops })
      expect(await p.decide(call('search_customers', {}), await agentForAlice())).toMatchObject({
        kind: 'deny',
        error: { code: -32001, data: { reason: 'condition_not_evaluated' } },
      })
      expect(ops.lines.filter((l) => l.level === 'error')).toEqual([])
    }
  })
})

describe('refusals without a question', () => {
  it('a task-augmented tools/call is -32602 (its result could not be scoped to the caller)', async () => {
    const m: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_customer', arguments: {}, task: { ttl: 60000 } } }
    expect(await policy.decide(m, await agentForAlice())).toMatchObject({ kind: 'deny', error: { code: -32602 }, requestIds: [] })
    expect(await policy.decide({ jsonrpc: '2.0', id: 2, method: 'tasks/result', params: { taskId: 't1' } }, await agentForAlice())).toMatchObject({ error: { code: -32001 } })
  })

  it('an action no scope of the issuer allows is scope_missing: no step-up can help, Pemba is not asked', async () => {
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log, tools: { frob: { evaluation: { action: { name: 'frobnicate' }, resource: { type: 'tool', id: 'crm/frob' } } } } })
    const before = (await world.decisionLog()).length
    expect(await p.decide(call('frob'), await agentForAlice())).toMatchObject({ kind: 'deny', error: { code: -32001, data: { reason: 'scope_missing' } }, requestIds: [] })
    expect((await world.decisionLog()).length).toBe(before)
  })

  it('a listed item whose name cannot be an id is hidden, with a warning', async () => {
    const warned = memoryLogger()
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log: warned })
    const out = await p.filterListResult('tools/list', { tools: [{ name: 'read_customer' }, { name: 'x'.repeat(300) }, { title: 'no name' }] }, await agentForAlice())
    expect(out).toEqual({ tools: [{ name: 'read_customer' }] })
    expect(warned.lines.filter((l) => l.level === 'warn' && String(l.msg).includes('item is hidden'))).toHaveLength(2)
  })
})

describe('argument size (bounded questions)', () => {
  it('only arguments up to 4 KiB each and 64 KiB together become args_* properties', () => {
    const big = 'x'.repeat(MAX_ARGUMENT_BYTES)
    expect(argumentProperties({ id: '42', doc: big })).toEqual({ properties: { args_id: '42' }, leftOut: ['doc'] })
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`a${i}`, 'y'.repeat(2000)]))
    const { properties, leftOut } = argumentProperties(many)
    expect(Buffer.byteLength(JSON.stringify(properties))).toBeLessThanOrEqual(MAX_ARGUMENTS_BYTES)
    expect(leftOut.length).toBeGreaterThan(0)
    expect(Object.keys(properties!).length + leftOut.length).toBe(40)
  })

  it('a call with 1.1 MB of arguments is decided (not -32603); a condition needing a left-out argument denies it', async () => {
    const ops = memoryLogger()
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log: ops })
    const caller = await agentForAlice()
    const document = 'd'.repeat(1_100_000)
    expect(await p.decide(call('read_customer', { id: '42', document }), caller)).toMatchObject({ kind: 'allow' })
    // limit is too large to be sent, so the condition small(resource_args_limit) cannot be evaluated: denied.
    const v = await p.decide(call('search_customers', { limit: 'n'.repeat(5000) }), caller)
    expect(v).toMatchObject({ kind: 'deny', error: { code: -32001, data: { reason: 'condition_not_evaluated' } } })
    expect(ops.lines.filter((l) => l.level === 'error')).toEqual([])
  })
})

describe('the tool catalogue (declared mappings are never bypassed)', () => {
  const refund = { name: 'refund_order', inputSchema: { type: 'object', 'x-authzen-mapping': { evaluation: { action: { name: 'export' }, resource: { type: 'customer_list', id: 'all' } } } } }
  const plain = { name: 'read_customer', inputSchema: { type: 'object' } }

  it('with requireCatalogue, a call of a tool not yet known is -32603 catalogue_unavailable, never asked by the default mapping', async () => {
    const ops = memoryLogger()
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log: ops, requireCatalogue: true, tools: { export_customers: { evaluation: { action: { name: 'export' }, resource: { type: 'customer_list', id: 'all' } } } } })
    const caller = await agentForAlice()
    const before = (await world.decisionLog()).length
    expect(p.needsCatalogue('read_customer')).toBe(true)
    expect(p.needsCatalogue('export_customers')).toBe(false)
    expect(p.hasCatalogue).toBe(false)
    expect(await p.decide(call('read_customer'), caller)).toEqual({
      kind: 'deny',
      error: { code: -32603, message: 'Internal error: the tool catalogue is not loaded', data: { reason: 'catalogue_unavailable' } },
      requestIds: [],
    })
    expect((await world.decisionLog()).length).toBe(before)
    expect(ops.lines.some((l) => l.level === 'warn' && String(l.msg).includes('catalogue is not loaded'))).toBe(true)
    // A listing that passes through teaches the policy (here: no declared mapping → the default one).
    await p.filterListResult('tools/list', { tools: [plain] }, caller)
    expect(p.needsCatalogue('read_customer')).toBe(false)
    expect((await p.decide(call('read_customer'), caller)).kind).toBe('allow')
  })

  it('loadCatalogue: declared mappings apply, an unknown tool is -32602; clearCatalogue forgets', async () => {
    const p = new McpPolicy({ decisions: world.decisions, server: 'crm', log: memoryLogger(), requireCatalogue: true })
    const caller = await world.caller({ act: { sub: 'assistant' }, client_id: 'assistant-app', scope: 'crm:read crm:export' })
    p.loadCatalogue([plain, refund])
    expect(p.hasCatalogue).toBe(true)
    expect(p.needsCatalogue('refund_order')).toBe(false)
    // refund_order declares customer_list:all#export, which alice's agent may not do (its tool-level grant is irrelevant).
    const v = await p.decide(call('refund_order'), caller)
    expect(v).toMatchObject({ kind: 'deny', error: { code: -32001 } })
    const [d] = await logged((v as Extract<McpVerdict, { kind: 'deny' }>).error.data!.decision_id as string)
    expect(d).toMatchObject({ object: 'customer_list:all', relation: 'export' })
    expect(await p.decide(call('nope'), caller)).toMatchObject({ kind: 'deny', error: { code: -32602, message: "Invalid params: unknown tool 'nope'" }, requestIds: [] })
    p.clearCatalogue()
    expect(p.hasCatalogue).toBe(false)
    expect(p.needsCatalogue('read_customer')).toBe(true)
    expect(await p.decide(call('read_customer'), caller)).toMatchObject({ error: { code: -32603, data: { reason: 'catalogue_unavailable' } } })
  })

  it('without requireCatalogue (the default), nothing changes: unknown tools use the default mapping', async () => {
    expect(policy.needsCatalogue('read_customer')).toBe(false)
    expect((await policy.decide(call('read_customer'), await agentForAlice())).kind).toBe('allow')
  })
})
