/**
 * The DSL sent to WriteAuthorizationModel without `Content-Type: text/plain` (curl -d's default
 * form encoding, or application/json) gets a 400 that says how to send it.
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
    ['application/json', DSL],
    ['application/json; charset=utf-8', DSL],
  ])('%s answers 400 with the hint', async (contentType, body) => {
    const r = await client.request('POST', `/stores/${storeId}/authorization-models`, body, { 'content-type': contentType })
    expect(r.status).toBe(400)
    expect(r.body.code).toBe('validation_error')
    expect(r.body.message).toMatch(/^invalid JSON body: Unexpected token 'm', "model/)
    expect(r.body.message.endsWith(HINT)).toBe(true)
  })

  it('the same DSL with text/plain is written', async () => {
    const r = await client.request('POST', `/stores/${storeId}/authorization-models`, DSL, { 'content-type': 'text/plain' })
    expect(r.status, r.text).toBe(201)
  })

  it('other endpoints keep the plain malformed-JSON message', async () => {
    const r = await client.request('POST', `/stores/${storeId}/check`, DSL, { 'content-type': 'application/x-www-form-urlencoded' })
    expect(r.status).toBe(400)
    expect(r.body.message).toMatch(/^invalid JSON body: /)
    expect(r.body.message).not.toContain('text/plain')
  })
})
