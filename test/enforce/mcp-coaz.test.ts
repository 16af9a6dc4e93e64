/**
 * Declared mappings (COAZ, reference §6.1–6.2, §8.48): checked and compiled at load, applied
 * per call with the verified caller as the subject, and used by the policy for their own tool
 * only, against a real Pemba.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyMapping, compileMapping } from '../../src/enforce/mcp/coaz.ts'
import { McpPolicy } from '../../src/enforce/mcp/policy.ts'
import type { JsonRpcMessage, McpCaller, McpVerdict } from '../../src/enforce/mcp/types.ts'
import { mcpWorld, memoryLogger, type McpWorld } from './mcp-fixture.ts'

let world: McpWorld
let alice: McpCaller

beforeAll(async () => {
  world = await mcpWorld(['customer_list:all#export@agent:reporter', 'user:alice#acts_for@agent:reporter'])
  alice = await world.caller({ act: { sub: 'assistant' }, client_id: 'assistant-app' })
})
afterAll(async () => {
  await world?.close()
})

const EXPORT = { evaluation: { action: { name: 'export' }, resource: { type: 'customer_list', id: 'all' } } }

const input = (args: Record<string, unknown>) => ({ params: { name: 'refund_order', arguments: args }, token: alice.claims as Record<string, unknown> })

const call = (name: string, args?: Record<string, unknown>): JsonRpcMessage => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args ?? {} } })

describe('compileMapping', () => {
  it('refuses a mapping that is not exactly one envelope, naming where and the path', () => {
    const where = "tool 'refund'"
    expect(() => compileMapping({}, where)).toThrow("tool 'refund': a mapping must have exactly one member, evaluation or evaluations (found: none)")
    expect(() => compileMapping({ evaluation: EXPORT.evaluation, evaluations: [] }, where)).toThrow('found: evaluation, evaluations')
    expect(() => compileMapping([EXPORT], where)).toThrow('a mapping must be an object')
    expect(() => compileMapping({ evaluations: [] }, where)).toThrow("tool 'refund': evaluations: must be a list of 1 to 50 evaluations")
    expect(() => compileMapping({ evaluations: [{ subject: { id: '$token.sub' }, ...EXPORT.evaluation }] }, where)).toThrow(
      'evaluations[0].subject: an evaluations entry has no subject',
    )
    expect(() => compileMapping({ evaluation: { ...EXPORT.evaluation, extra: 1 } }, where)).toThrow('evaluation.extra: unknown member')
    expect(() => compileMapping({ evaluation: { resource: EXPORT.evaluation.resource } }, where)).toThrow('evaluation.action: required')
    expect(() => compileMapping({ evaluation: { ...EXPORT.evaluation, context: { pemba: { consistency: 'HIGHER_CONSISTENCY' } } } }, where)).toThrow(
      'evaluation.context.pemba: reserved for Pemba',
    )
  })

  it('compiles each $ expression once and refuses a bad one with the path', () => {
    expect(() => compileMapping({ evaluation: { action: { name: 'x' }, resource: { type: 'order', id: '$params.arguments.(' } } }, 't')).toThrow(
      /^t: evaluation\.resource\.id: invalid expression 'params\.arguments\.\(': /,
    )
    expect(() => compileMapping({ evaluation: { action: { name: 'x' }, resource: { type: 'order', id: '$request.id' } } }, 't')).toThrow(
      /evaluation\.resource\.id: invalid expression 'request\.id': .*Unknown variable: request/,
    )
  })
})

describe('compileMapping refuses what a caller could abuse', () => {
  const base = { action: { name: 'refund' }, resource: { type: 'order', id: '$params.arguments.order' } }

  it('M1: a declared context.agent is refused (the agent is the token client_id)', () => {
    expect(() => compileMapping({ evaluation: { ...base, context: { agent: '$params.arguments.app' } } }, "tool 'x'")).toThrow(
      "tool 'x': evaluation.context.agent: the agent is the token's client_id; a mapping cannot declare it",
    )
  })

  it('M2: declared subject properties are refused (conditions would read request data as the subject\'s)', () => {
    expect(() => compileMapping({ evaluation: { ...base, subject: { id: '$token.sub', properties: { role: '$params.arguments.role' } } } }, "tool 'x'")).toThrow(
      "tool 'x': evaluation.subject.properties: the subject is the token's",
    )
    expect(() => compileMapping({ evaluation: { ...base, subject: { id: '$token.sub', properties: { role: 'admin' } } } }, "tool 'x'")).toThrow('subject.properties')
  })

  it('M2: a subject given whole by an expression never carries properties', () => {
    const m = compileMapping({ evaluation: { ...base, subject: '$params.arguments.who' } }, "tool 'x'")
    const r = applyMapping(m, input({ order: 'o-1', who: { id: 'alice', properties: { role: 'admin' } } }), alice)
    expect(r).toMatchObject({ ok: true, questions: [{ subject: { type: 'agent', id: 'assistant' } }] })
    expect(r.ok && r.questions[0]!.subject.properties).toBeUndefined()
  })

  it('comprehension macros are refused; a value nested too deeply is a mapping error, not a crash', () => {
    expect(() => compileMapping({ evaluation: { ...base, context: { n: '$params.arguments.ids.map(a, params.arguments.ids.map(b, a + b))' } } }, "tool 'x'")).toThrow(
      'comprehension macros',
    )
    let deep: unknown = 'leaf'
    for (let i = 0; i < 20_000; i++) deep = { d: deep }
    const m = compileMapping({ evaluation: { ...base, context: { blob: '$params.arguments.blob' } } }, "tool 'x'")
    expect(applyMapping(m, input({ order: 'o-1', blob: deep }), alice)).toMatchObject({ ok: false })
  })

  it('M4: questions larger than 64 KiB are a mapping error (the arguments are too large to authorise)', () => {
    const m = compileMapping({ evaluation: { ...base, context: { doc: '$params.arguments.doc' } } }, "tool 'x'")
    expect(applyMapping(m, input({ order: 'o-1', doc: 'x'.repeat(70_000) }), alice)).toEqual({
      ok: false,
      message: "tool 'x': the arguments are too large to authorise (the questions may have at most 65536 bytes)",
    })
  })
})

describe('applyMapping', () => {

  it('evaluates leaves; $$ is a literal $; an absent value (.?) drops the field; a list never fans out', () => {
    const m = compileMapping(
      {
        evaluation: {
          subject: { type: 'identity', id: '$token.sub' },
          action: { name: 'refund', properties: { price: '$$5', note: '$params.arguments.?note', tags: '$params.arguments.tags' } },
          resource: { type: 'order', id: '$params.arguments.order', properties: { region: '$token.?region', n: '$params.arguments.order + "-x"' } },
          context: { ticket: '$params.arguments.?ticket' },
        },
      },
      "tool 'refund_order'",
    )
    const r = applyMapping(m, input({ order: 'o-1', tags: ['a', 'b'] }), alice)
    expect(r).toEqual({
      ok: true,
      questions: [
        {
          // The subject is the verified caller: the agent, on behalf of alice (the policy adds on_behalf_of).
          subject: { type: 'agent', id: 'assistant' },
          action: { name: 'refund', properties: { price: '$5', tags: ['a', 'b'] } },
          resource: { type: 'order', id: 'o-1', properties: { n: 'o-1-x' } },
          // context.agent is the token's client_id.
          context: { agent: 'assistant-app' },
        },
      ],
    })
    // An expression that fails for this call is a mapping error naming the path; the expression
    // and its error (operator policy) are only in the detail, for the log.
    const failed = applyMapping(m, input({ order: 42, tags: [] }), alice)
    expect(failed).toEqual({
      ok: false,
      message: "tool 'refund_order': evaluation.resource.properties.n: the expression failed for this call",
      detail: expect.stringContaining("evaluation.resource.properties.n: 'params.arguments.order + \"-x\"' failed"),
    })
    // An integer id is written as a string.
    const byNumber = compileMapping({ evaluation: { action: { name: 'refund' }, resource: { type: 'order', id: '$params.arguments.order' } } }, 't')
    expect(applyMapping(byNumber, input({ order: 42 }), alice)).toMatchObject({ ok: true, questions: [{ resource: { id: '42' } }] })
  })

  it('§8.48 a declared subject.id that is not the token subject is a mapping error', () => {
    const m = compileMapping({ evaluation: { subject: { id: '$params.arguments.user' }, ...EXPORT.evaluation } }, "tool 'x'")
    expect(applyMapping(m, input({ user: 'alice' }), alice)).toMatchObject({ ok: true })
    expect(applyMapping(m, input({ user: 'bob' }), alice)).toEqual({ ok: false, message: "tool 'x': evaluation.subject.id does not name the token's subject" })
  })

  it('a missing key (without .?), a required field absent for this call, or a value of the wrong shape, is a mapping error', () => {
    const m = compileMapping({ evaluation: { action: { name: 'refund' }, resource: { type: 'order', id: '$params.arguments.order' } } }, "tool 'x'")
    expect(applyMapping(m, input({}), alice)).toEqual({
      ok: false,
      message: "tool 'x': evaluation.resource.id: a value it reads is missing for this call",
      detail: expect.stringContaining("use '.?' for an optional value"),
    })
    const optional = compileMapping({ evaluation: { action: { name: 'refund' }, resource: { type: 'order', id: '$params.arguments.?order' } } }, "tool 'x'")
    expect(applyMapping(optional, input({}), alice)).toEqual({ ok: false, message: "tool 'x': evaluation.resource.id is required (absent for this call)" })
    expect(applyMapping(m, input({ order: { a: 1 } }), alice)).toMatchObject({ ok: false, message: expect.stringContaining('evaluation.resource.id must be a non-empty string') })
    const ctx = compileMapping({ evaluation: { ...EXPORT.evaluation, context: '$params.arguments' } }, "tool 'x'")
    expect(applyMapping(ctx, input({ pemba: { contextual_tuples: [] } }), alice)).toMatchObject({ ok: false, message: expect.stringContaining('context.pemba is reserved') })
  })
})

describe('declared mappings in the policy (§8.48)', () => {
  function policy(tools?: Record<string, unknown>) {
    return new McpPolicy({ decisions: world.decisions, server: 'crm', log: memoryLogger(), tools: tools as never })
  }

  it('§8.48 a configured mapping replaces the default for its own tool only', async () => {
    const p = policy({ export_customers: EXPORT })
    const reporter = await world.caller({ act: { sub: 'reporter' }, scope: 'crm:all' })
    const v = await p.decide(call('export_customers'), reporter)
    expect(v.kind).toBe('allow')
    const [d] = (await world.decisionLog()).filter((x) => x.request_id === (v as Extract<McpVerdict, { kind: 'allow' }>).requestIds[0])
    expect(d).toMatchObject({ user: 'agent:reporter', on_behalf_of: ['user:alice'], relation: 'export', object: 'customer_list:all' })
    // Another tool keeps the default mapping.
    expect((await p.decide(call('read_customer'), alice)).kind).toBe('allow')
    // The assistant may not export (denied_by_actor).
    expect((await p.decide(call('export_customers'), await world.caller({ act: { sub: 'assistant' }, scope: 'crm:all' }))).kind).toBe('deny')
  })

  it('the scopes of every action are required: a token without crm:export is told so', async () => {
    const p = policy({ export_customers: { evaluations: [EXPORT.evaluation, { action: { name: 'call' }, resource: { type: 'tool', id: 'crm/export_customers' } }] } })
    expect(await p.decide(call('export_customers'), await world.caller({ act: { sub: 'reporter' }, scope: 'none' }))).toMatchObject({
      kind: 'insufficient_scope',
      scopes: ['crm:export', 'crm:all', 'crm:read'],
    })
  })

  it('§8.48 a subject mismatch is -32602 and Pemba is never asked', async () => {
    const p = policy({ export_customers: { evaluation: { subject: { id: '$params.arguments.for' }, ...EXPORT.evaluation } } })
    const before = (await world.decisionLog()).length
    const v = await p.decide(call('export_customers', { for: 'bob' }), await world.caller({ act: { sub: 'reporter' }, scope: 'crm:all' }))
    expect(v).toMatchObject({ kind: 'deny', error: { code: -32602 }, requestIds: [] })
    expect((v as Extract<McpVerdict, { kind: 'deny' }>).error.message).toContain('subject.id does not name the token')
    expect((await world.decisionLog()).length).toBe(before)
  })

  it("x-authzen-mapping is learned from tools/list; the configuration wins; an invalid one fails closed", async () => {
    const p = policy({ read_customer: { evaluation: { action: { name: 'call' }, resource: { type: 'tool', id: 'crm/read_customer' } } } })
    const reporter = await world.caller({ act: { sub: 'reporter' }, scope: 'crm:all' })
    // Before any listing the default applies: the reporter may not call export_customers as a tool.
    expect((await p.decide(call('export_customers'), reporter)).kind).toBe('deny')
    const listed = await p.filterListResult(
      'tools/list',
      {
        tools: [
          { name: 'export_customers', inputSchema: { type: 'object', 'x-authzen-mapping': EXPORT } },
          { name: 'read_customer', inputSchema: { type: 'object', 'x-authzen-mapping': { evaluation: { action: { name: 'nothing' }, resource: { type: 'tool', id: 'x' } } } } },
          { name: 'broken', inputSchema: { type: 'object', 'x-authzen-mapping': { evaluation: {} } } },
        ],
      },
      alice,
    )
    // Listing asks the tool-level question (export_customers is alice's, the agent's not).
    expect((listed.tools as Array<{ name: string }>).map((t) => t.name)).toEqual(['read_customer'])
    expect((await p.decide(call('export_customers'), reporter)).kind).toBe('allow')
    expect((await p.decide(call('read_customer'), alice)).kind).toBe('allow')
    expect(await p.decide(call('broken'), alice)).toMatchObject({ kind: 'deny', error: { code: -32602, message: "Invalid params: tool 'broken': its x-authzen-mapping is invalid" } })
  })

  it('M3: a bad id taken from the arguments is -32602, checked locally: Pemba is never asked, nothing is logged as an error', async () => {
    const ops = memoryLogger()
    const p = new McpPolicy({
      decisions: world.decisions,
      server: 'crm',
      log: ops,
      tools: { refund_order: { evaluation: { action: { name: 'export' }, resource: { type: 'customer_list', id: '$params.arguments.order' } } } },
    })
    const reporter = await world.caller({ act: { sub: 'reporter' }, scope: 'crm:all' })
    const before = (await world.decisionLog()).length
    for (const order of ['a b', 'a:b', 'a#b', 'x'.repeat(300)]) {
      const v = await p.decide(call('refund_order', { order }), reporter)
      expect(v).toMatchObject({ kind: 'deny', error: { code: -32602, message: expect.stringContaining('evaluation: invalid resource.id') }, requestIds: [] })
    }
    expect((await world.decisionLog()).length).toBe(before)
    expect(ops.lines.filter((l) => l.level === 'error')).toEqual([])
  })

  it('M1: without a client_id, the caller cannot set context.agent through a mapping; with one, it is the token\'s', async () => {
    // The whole context from the arguments: `agent` in it is dropped.
    const p = policy({ audit_log: { evaluation: { action: { name: 'call' }, resource: { type: 'tool', id: 'crm/audit_log' }, context: '$params.arguments' } } })
    const noClient = await world.caller({ act: { sub: 'assistant' } })
    expect((await p.decide(call('audit_log', { agent: 'assistant-app' }), noClient)).kind).toBe('deny')
    expect((await p.decide(call('audit_log', { agent: 'assistant-app' }), alice)).kind).toBe('allow')
    const spoof = await p.decide(call('audit_log', { agent: 'other' }), alice)
    expect(spoof.kind).toBe('allow')
  })

  it('a bad configured mapping stops the policy, naming the tool', () => {
    expect(() => policy({ export_customers: { evaluation: { action: {} } } })).toThrow(/^tools\.export_customers: evaluation\.resource: required/)
  })
})
