/**
 * Input built to exhaust the server rather than to ask it something: bodies nested deeper than
 * MAX_JSON_NESTING (which would overflow the stack of every recursive walk: zod, model
 * validation, JSON.stringify), DSL models with absurdly nested parentheses (the parser's time
 * grows faster than linearly) or over the model size limit, and streamed bodies over the body
 * limit. Each gets a 400/413 in the contract's format and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_DSL_NESTING, MAX_JSON_NESTING, jsonNestingExceeds } from '../../src/core/nesting.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'

const MODEL = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define owner: [user]\n    define viewer: [user] or owner\n'

const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)

describe('jsonNestingExceeds', () => {
  it('counts objects and arrays, not brackets inside strings', () => {
    expect(jsonNestingExceeds('[[[]]]', 3)).toBe(false)
    expect(jsonNestingExceeds('[[[[]]]]', 3)).toBe(true)
    expect(jsonNestingExceeds('{"a":{"b":[1]}}', 3)).toBe(false)
    expect(jsonNestingExceeds('{"a":{"b":[{}]}}', 3)).toBe(true)
    expect(jsonNestingExceeds(JSON.stringify({ s: '[[[[[[[[[[' }), 1)).toBe(false)
    expect(jsonNestingExceeds(JSON.stringify({ s: '\\"[[[[[[[["' }), 1)).toBe(false)
  })
})

describe('hostile bodies', () => {
  let client: TestClient
  let storeId: string
  let modelId: string
  const post = (path: string, body: string, headers?: Record<string, string>) =>
    client.request('POST', `/stores/${storeId}/${path}`, body, headers)
  const snapshot = async () => ({
    models: (await client.request('GET', `/stores/${storeId}/authorization-models`)).body,
    tuples: (await post('read', '{}')).body,
  })

  beforeAll(async () => {
    client = await createTestClient({ maxModelSizeBytes: 4096 })
    ;({ storeId, modelId } = await setup(client, MODEL, ['doc:1#viewer@user:anne']))
  })
  afterAll(() => client.close())

  it('refuses JSON nested deeper than the limit on every JSON endpoint, with 400', async () => {
    const before = await snapshot()
    const deep = nestedArrays(100_000)
    const deepContext = `{"tuple_key":{"user":"user:anne","relation":"viewer","object":"doc:1"},"context":{"x":${nestedArrays(MAX_JSON_NESTING)}}}`
    const deepModel = `{"schema_version":"1.1","type_definitions":[{"type":"user"},{"type":"doc","relations":{"viewer":${'{"union":{"child":['.repeat(1000)}{"this":{}}${']}}'.repeat(1000)}}}]}`
    for (const [path, body] of [
      ['check', deep],
      ['check', deepContext],
      ['write', `{"writes":{"tuple_keys":[{"user":"user:bob","relation":"viewer","object":"doc:2","condition":{"name":"c","context":{"x":${nestedArrays(5000)}}}}]}}`],
      ['authorization-models', deepModel],
      ['list-objects', deep],
      ['batch-check', deep],
    ] as const) {
      const res = await post(path, body)
      expect({ path, status: res.status, body: res.body }).toEqual({
        path,
        status: 400,
        body: { code: 'validation_error', message: `invalid JSON body: nested deeper than ${MAX_JSON_NESTING} levels` },
      })
    }
    const assertions = await client.request('PUT', `/stores/${storeId}/assertions/${modelId}`, `{"assertions":${deep}}`)
    expect(assertions.status).toBe(400)
    expect(await snapshot()).toEqual(before)
  })

  it('accepts nesting up to the limit', async () => {
    // The context sits at depth 2 of the body, so nesting of limit - 2 inside it is the deepest allowed.
    const context = `{"x":${nestedArrays(MAX_JSON_NESTING - 2)}}`
    const res = await post('check', `{"tuple_key":{"user":"user:anne","relation":"viewer","object":"doc:1"},"context":${context}}`)
    expect(res.status, res.text).toBe(200)
    expect(res.body.allowed).toBe(true)
  })

  it('refuses a DSL model with parentheses nested deeper than the limit, before parsing it', async () => {
    const before = await snapshot()
    const n = 1500 // parsing this would take tens of seconds (800 levels took over 2 s)
    const dsl = `model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define owner: [user]\n    define viewer: ${'('.repeat(n)}[user] or owner${')'.repeat(n)}\n`
    const res = await post('authorization-models', dsl, { 'content-type': 'text/plain' })
    expect(res.status).toBe(400)
    expect(res.body).toEqual({
      code: 'invalid_authorization_model',
      message: `invalid DSL: parentheses nested deeper than ${MAX_DSL_NESTING} levels`,
    })
    const fine = `model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define owner: [user]\n    define viewer: ${'('.repeat(20)}[user] or owner${')'.repeat(20)}\n`
    const ok = await post('authorization-models', fine, { 'content-type': 'text/plain' })
    expect(ok.status, ok.text).toBe(201)
    expect((await snapshot()).tuples).toEqual(before.tuples)
  })

  it('refuses DSL text over PEMBA_MAX_MODEL_SIZE_BYTES before parsing it', async () => {
    const before = await snapshot()
    const dsl = MODEL + '    define wide: [user]' + ' or owner'.repeat(1000) + '\n'
    const res = await post('authorization-models', dsl, { 'content-type': 'text/plain' })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('exceeded_entity_limit')
    expect(res.body.message).toMatch(/^model exceeds size limit: \d+ bytes vs 4096 bytes$/)
    expect(await snapshot()).toEqual(before)
  })
})

describe('streamed bodies without a Content-Length', () => {
  it('are counted as they arrive and refused with 413 past PEMBA_BODY_LIMIT_BYTES', async () => {
    const client = await createTestClient({ bodyLimitBytes: 1024 })
    try {
      const encoder = new TextEncoder()
      const stream = (pieces: string[]) =>
        new ReadableStream<Uint8Array>({
          start(controller) {
            for (const p of pieces) controller.enqueue(encoder.encode(p))
            controller.close()
          },
        })
      const big = await client.pemba.app.request('/stores', {
        method: 'POST',
        body: stream(['{"name":"', 'x'.repeat(700), 'x'.repeat(700), '"}']),
        headers: { 'content-type': 'application/json' },
        duplex: 'half',
      } as RequestInit)
      expect(big.status).toBe(413)
      expect(await big.json()).toEqual({ code: 'validation_error', message: 'request body exceeds the limit of 1024 bytes' })
      const small = await client.pemba.app.request('/stores', {
        method: 'POST',
        body: stream(['{"name":', '"streamed"}']),
        headers: { 'content-type': 'application/json' },
        duplex: 'half',
      } as RequestInit)
      expect(small.status).toBe(201)
      const stores = await client.request('GET', '/stores')
      expect(stores.body.stores.map((s: { name: string }) => s.name)).toEqual(['streamed'])
    } finally {
      await client.close()
    }
  })
})
