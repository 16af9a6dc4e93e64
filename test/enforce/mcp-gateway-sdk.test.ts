/**
 * The MCP gateway end to end with the official SDK on both sides (issue 19, "What must be
 * shown"): an agent token acting for alice, through `pemba mcp-gateway`'s app, to a real MCP
 * server, decided by a real Pemba over HTTP.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPORTS } from '../helpers/mcp-upstream.ts'
import { decisionLogged, deleteTuple, startBench, type Bench } from './mcp-gateway-fixture.ts'

let b: Bench
beforeAll(async () => {
  b = await startBench()
})
afterAll(async () => {
  await b?.close()
})

/** The error a rejected SDK call threw. */
async function refusal(p: Promise<unknown>): Promise<McpError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(McpError)
  return e as McpError
}

describe('the MCP gateway with the official SDK', () => {
  it('an agent token acting for alice lists only the tools both may call', async () => {
    const client = await b.connect(await b.token())
    const { tools } = await client.listTools()
    // export_customers: the assistant may, alice may not; refund_order: alice may, the assistant may not.
    expect(tools.map((t) => t.name).sort()).toEqual(['count_slowly', 'read_customer'])
    // alice alone (no actor) may also refund
    const alone = await b.connect(await b.token({ act: undefined }))
    expect((await alone.listTools()).tools.map((t) => t.name).sort()).toEqual(['count_slowly', 'read_customer', 'refund_order'])
  })

  it('an allowed call passes through unchanged', async () => {
    const client = await b.connect(await b.token())
    const through = await client.callTool({ name: 'read_customer', arguments: { id: '42' } })
    const direct = new Client({ name: 'direct', version: '1.0.0' })
    await direct.connect(new StreamableHTTPClientTransport(new URL(b.upstream.url)))
    const straight = await direct.callTool({ name: 'read_customer', arguments: { id: '42' } })
    await direct.close()
    expect(through).toEqual(straight)
    expect(through.content).toEqual([{ type: 'text', text: 'customer 42: ACME Corp, 42 employees, héllo ✓' }])
  })

  it('streaming passes through: progress notifications arrive before the result', async () => {
    const client = await b.connect(await b.token())
    const progress: number[] = []
    const result = await client.callTool({ name: 'count_slowly', arguments: { n: 4 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    })
    expect(progress).toEqual([1, 2, 3, 4])
    expect(result.content).toEqual([{ type: 'text', text: 'counted to 4' }])
  })

  it('§8.49 a forbidden tool is refused with -32001 and the decision id Pemba logged it under', async () => {
    const client = await b.connect(await b.token())
    const e = await refusal(client.callTool({ name: 'export_customers', arguments: { limit: 10 } }))
    expect(e.code).toBe(-32001)
    const decisionId = (e.data as { decision_id: string }).decision_id
    expect(decisionId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    const logged = await decisionLogged(b, decisionId)
    expect(JSON.stringify(logged)).toContain('tool:crm/export_customers')
    // never reached the server
    const line = b.logs.find((l) => l.event === 'mcp_request' && JSON.stringify(l.messages ?? []).includes(decisionId))
    expect(line).toMatchObject({ subject: 'user:alice', actors: ['agent:assistant'], status: 200 })
    expect(JSON.stringify(b.logs)).not.toMatch(/eyJ/)
  })

  it('prompts and resources: listed as permitted, read and get checked', async () => {
    const client = await b.connect(await b.token())
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['customer_summary'])
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual([REPORTS[0]])
    const read = await client.readResource({ uri: REPORTS[0]! })
    expect(read.contents[0]).toMatchObject({ text: `report ${REPORTS[0]}` })
    const e = await refusal(client.readResource({ uri: REPORTS[1]! }))
    expect(e.code).toBe(-32001)
    const prompt = await client.getPrompt({ name: 'customer_summary', arguments: { id: '7' } })
    expect(prompt.messages).toHaveLength(1)
  })

  it("a tool's declared x-authzen-mapping decides its calls (the gateway lists the tools itself: no listing first)", async () => {
    const alone = await b.connect(await b.token({ act: undefined, scope: 'crm:read crm:refund' }))
    const ok = await alone.callTool({ name: 'refund_order', arguments: { order: 'o-1' } })
    expect(ok.content).toEqual([{ type: 'text', text: 'refunded o-1' }])
    const e = await refusal(alone.callTool({ name: 'refund_order', arguments: { order: 'o-2' } }))
    expect(e.code).toBe(-32001)
  })

  it("the server's own event stream (GET) reaches the client; ending the session (DELETE) forgets it", async () => {
    const client = await b.connect(await b.token())
    const changed = new Promise<void>((resolve) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()))
    const transport = client.transport as StreamableHTTPClientTransport
    const session = transport.sessionId!
    // the GET stream is opened after initialization: wait until it reaches the server
    const streaming = () => b.upstream.seen.some((r) => r.method === 'GET' && r.headers['mcp-session-id'] === session)
    for (let i = 0; i < 1000 && !streaming(); i++) await new Promise((r) => setTimeout(r, 10))
    expect(streaming()).toBe(true)
    b.upstream.toolListChanged()
    await changed
    await transport.terminateSession()
    expect(b.upstream.sessions()).not.toContain(session)
    const line = b.logs.findLast((l) => l.event === 'mcp_request' && l.http_method === 'DELETE')
    expect(line).toMatchObject({ status: 200, subject: 'user:alice' })
  })

  it('revoking the acts_for tuple stops the next call', async () => {
    const client = await b.connect(await b.token())
    await client.callTool({ name: 'read_customer', arguments: { id: '1' } })
    await deleteTuple(b, 'user:alice#acts_for@agent:assistant')
    try {
      const e = await refusal(client.callTool({ name: 'read_customer', arguments: { id: '1' } }))
      expect(e.code).toBe(-32001)
      expect((await client.listTools()).tools).toEqual([])
    } finally {
      await b.api.request('POST', `/stores/${b.store}/write`, {
        writes: { tuple_keys: [{ user: 'agent:assistant', relation: 'acts_for', object: 'user:alice' }] },
      })
    }
  })
})
