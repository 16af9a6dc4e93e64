/**
 * The DSL sent to WriteAuthorizationModel without `Content-Type: text/plain` gets an answer that
 * says how to send it: a 415 for curl -d's default form encoding (no JSON endpoint takes a body
 * not declared JSON: test/faults/browser-content-type.test.ts), a 400 when declared JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createStore } from '../helpers/fixtures.ts'

const DSL = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n'
const HINT = "; to send the model in OpenFGA's DSL, use Content-Type: text/plain (with curl: -H 'Content-Type: text/plain' --data-binary @model.fga)"

let client: TestClient
let storeId: string
beforeAll(async () => {
  client = await createTestClient()
  storeId = await createStore(client)
})
afterAll(() => client.close())

describe('the DSL sent as something else than text/plain', () => {
  it.each([
    ['application/x-www-form-urlencoded', DSL],
    // curl -d @model.fga drops the line breaks.
    ['application/x-www-form-urlencoded', DSL.replace(/\n/g, '')],
  ])('%s answers 415 with the hint', async (contentType, body) => {
    const r = await client.request('POST', `/stores/${storeId}/authorization-models`, body, { 'content-type': contentType })
    expect(r.status).toBe(415)
    expect(r.body.code).toBe('unsupported_media_type')
    expect(r.body.message).toMatch(/^Content-Type application\/x-www-form-urlencoded is not accepted: /)
    expect(r.body.message.endsWith(HINT)).toBe(true)
  })

  it.each([
    ['application/json', DSL],
    ['application/json; charset=utf-8', DSL],
  ])('%s answers 400 with the hint', async (contentType, body) => {
    const r = await client.request('POST', `/stores/${storeId}/authorization-models`, body, { 'content-type': contentType })
    expect(r.status).toBe(400)
    expect(r.body.code).toBe('validation_error')
    // The position only: the parser's excerpt of the body is never quoted (it may be a secret).
    expect(r.body.message).toMatch(/^invalid JSON body at line 1 column 1; /)
    expect(r.body.message).not.toContain('Unexpected token')
    expect(r.body.message.endsWith(HINT)).toBe(true)
  })

  it('the same DSL with text/plain is written', async () => {
    const r = await client.request('POST', `/stores/${storeId}/authorization-models`, DSL, { 'content-type': 'text/plain' })
    expect(r.status, r.text).toBe(201)
  })

  it('other endpoints keep the plain malformed-JSON message', async () => {
    const r = await client.request('POST', `/stores/${storeId}/check`, DSL, { 'content-type': 'application/json' })
    expect(r.status).toBe(400)
    expect(r.body.message).toMatch(/^invalid JSON body at line 1 column 1$/)
    expect(r.body.message).not.toContain('text/plain')
  })
})
