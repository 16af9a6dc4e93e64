/**
 * The conditions example of docs/api.md, run as written: a service account may call the billing API
 * only from an approved network and inside a maintenance window.
 */
import { afterEach, beforeEach, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { createStore } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

export const BILLING_MODEL = `model
  schema 1.1
type service_account
type api
  relations
    define caller: [service_account with approved_window]
condition approved_window(request_ip: ipaddress, approved_cidrs: list<string>, current_time: timestamp, window_start: timestamp, window_duration: duration) {
  approved_cidrs.exists(c, request_ip.in_cidr(c)) &&
  current_time >= window_start && current_time < window_start + window_duration
}
`

it('grants billing calls only from approved networks inside the maintenance window', async () => {
  const store = await createStore(client)
  const model = await client.request('POST', `/stores/${store}/authorization-models`, BILLING_MODEL, { 'content-type': 'text/plain' })
  expect(model.status, model.text).toBe(201)
  const write = await client.request('POST', `/stores/${store}/write`, {
    writes: {
      tuple_keys: [
        {
          user: 'service_account:billing-sync',
          relation: 'caller',
          object: 'api:billing',
          condition: {
            name: 'approved_window',
            context: { approved_cidrs: ['10.20.0.0/16', '192.168.7.0/24'], window_start: '2026-11-29T02:00:00Z', window_duration: '2h' },
          },
        },
      ],
    },
  })
  expect(write.status, write.text).toBe(200)
  const check = async (request_ip: string, current_time: string) => {
    const res = await client.request('POST', `/stores/${store}/check`, {
      tuple_key: { user: 'service_account:billing-sync', relation: 'caller', object: 'api:billing' },
      context: { request_ip, current_time },
    })
    expect(res.status, res.text).toBe(200)
    return res.body.allowed
  }
  expect(await check('10.20.3.4', '2026-11-29T02:30:00Z')).toBe(true)
  expect(await check('10.99.3.4', '2026-11-29T02:30:00Z')).toBe(false) // not an approved network
  expect(await check('10.20.3.4', '2026-11-29T04:30:00Z')).toBe(false) // after the window
  const missing = await client.request('POST', `/stores/${store}/check`, {
    tuple_key: { user: 'service_account:billing-sync', relation: 'caller', object: 'api:billing' },
    context: { request_ip: '10.20.3.4' },
  })
  expect(missing.status).toBe(400)
  expect(missing.body.message).toMatch(/current_time/)
})
