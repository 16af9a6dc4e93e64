/**
 * docs/authzen.md's action rule, as written: the model of "The action rule" and its three tuples
 * in a fresh store, and action search answering for each subject exactly what the page says
 * (the `{"results":…}` objects after "for `user:…`"), over the real app.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const ROOT = new URL('../..', import.meta.url).pathname
const page = readFileSync(`${ROOT}/docs/authzen.md`, 'utf8')
const section = page.slice(page.indexOf('### The action rule'), page.indexOf('\n## ', page.indexOf('### The action rule')))

let client: TestClient
beforeAll(async () => {
  client = await createTestClient({}, { sweeper: false })
})
afterAll(() => client.close())

it("answers action search as docs/authzen.md's action rule says", async () => {
  const model = /```\n(model\n[\s\S]*?)```/.exec(section)?.[1]
  expect(model, 'the model block').toBeDefined()
  const tuples = [...section.matchAll(/`(doc|folder):(\w+)#(\w+)@(\w+:\w+)`/g)].map((m) => `${m[1]}:${m[2]}#${m[3]}@${m[4]}`)
  expect(tuples).toEqual(['doc:d#owner@user:anne', 'doc:d#parent@folder:f', 'folder:f#owner@user:bob'])
  const { storeId } = await setup(client, model!, tuples)
  const claims = [...section.matchAll(/for `user:(\w+)`,?\s+`(\{"results":[^`]*\})`/g)]
  expect(claims.map((c) => c[1])).toEqual(['anne', 'bob'])
  for (const [, user, answer] of claims) {
    const r = await client.request('POST', `/stores/${storeId}/access/v1/search/action`, {
      subject: { type: 'user', id: user },
      resource: { type: 'doc', id: 'd' },
    }, { host: 'localhost' })
    expect(r.status, r.text).toBe(200)
    expect(r.body.results, user).toEqual(JSON.parse(answer!).results)
  }
  // The structure the subject holds is never an action.
  expect((await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:d#editor@user:anne') })).body.allowed).toBe(true)
})
