/**
 * list-users under a wildcard minus an exclusion: the differential test's counterexample kept
 * as a plain test. `r2: [user:*] but not (r1 from parent but not r0 from parent)` grants
 * user:u1 (in r0 of the parent) although only `user:*` is written on r2, and the wildcard
 * itself is excluded: list-users must name user:u1, as check says.
 */
import { afterEach, beforeEach, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

it('lists users granted because they escape the subtrahend of an excluded wildcard', async () => {
  const { storeId, check } = await setup(
    client,
    `model
  schema 1.1
type user
type doc
  relations
    define parent: [doc]
    define r0: [user] and r1 from parent
    define r1: [user, user:*]
    define r2: [user:*] but not (r1 from parent but not r0 from parent)
`,
    ['doc:2#parent@doc:3', 'doc:2#r2@user:*', 'doc:3#parent@doc:3', 'doc:3#r0@user:u1', 'doc:3#r1@user:*'],
  )
  expect(await check('doc:2#r2@user:u1')).toBe(true)
  expect(await check('doc:2#r2@user:u2')).toBe(false)
  const res = await client.request('POST', `/stores/${storeId}/list-users`, {
    object: { type: 'doc', id: '2' },
    relation: 'r2',
    user_filters: [{ type: 'user' }],
  })
  expect(res.status, res.text).toBe(200)
  expect(res.body.users).toEqual([{ object: { type: 'user', id: 'u1' } }])
})
