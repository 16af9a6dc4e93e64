/**
 * A check is cheap only while its data is: one document in ~20k folders makes `viewer from
 * parent` fan out to 20k subproblems. Such a check (alone or as the items of a batch) must stop
 * at its deadline, not run its whole fan-out first, and must give the event loop back while it
 * runs, so that /healthz and other requests keep answering (review of issue 22, finding 1).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup } from '../helpers/fixtures.ts'

const MODEL = `model
  schema 1.1
type user
type folder
  relations
    define viewer: [user]
type document
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent
`

const PARENTS = 20_000

let client: TestClient | undefined
afterEach(async () => {
  await client?.close()
  client = undefined
})

async function wideDocument(checkDeadlineMs: number) {
  client = await createTestClient({ checkDeadlineMs, checkCacheSize: 0, tupleIndexPreload: 'on' })
  const tuples: string[] = []
  for (let i = 0; i < PARENTS; i++) tuples.push(`document:big#parent@folder:f${i}`)
  const { storeId } = await setup(client, MODEL, tuples)
  return { c: client, storeId }
}

/** probe asks /healthz every 20 ms until `until` settles; it returns each probe's latency (ms). */
async function probe(c: TestClient, until: Promise<unknown>): Promise<number[]> {
  let done = false
  void until.finally(() => (done = true))
  const latencies: number[] = []
  while (!done) {
    const started = performance.now()
    const res = await c.pemba.app.request('/healthz')
    latencies.push(performance.now() - started)
    expect(res.status).toBe(200)
    await new Promise((r) => setTimeout(r, 20))
  }
  return latencies
}

describe('a check over a wide fan-out', () => {
  it('a batch of such checks stops at the deadline, each item deadline_exceeded', async () => {
    const { c, storeId } = await wideDocument(300)
    const checks = Array.from({ length: 50 }, (_, i) => ({
      tuple_key: { user: `user:u${i}`, relation: 'viewer', object: 'document:big' },
      correlation_id: String(i),
    }))
    const started = performance.now()
    const res = await c.request('POST', `/stores/${storeId}/batch-check`, { checks })
    const elapsed = performance.now() - started
    expect(res.status, res.text).toBe(200)
    const items = Object.values(res.body.result as Record<string, { error?: { message: string } }>)
    expect(items).toHaveLength(50)
    for (const item of items) expect(item.error?.message).toBe('Request Deadline Exceeded')
    // Before the fix every item ran its whole fan-out (28-35 s for this shape) and only then
    // answered deadline_exceeded. Not a speed assertion: a 300 ms deadline with wide slack for a
    // loaded shared machine (measured 3-6 s here: each item still finishes the step it is in).
    expect(elapsed).toBeLessThan(15_000)
  }, 120_000)

  it('one such check answers its deadline while /healthz keeps answering', async () => {
    const { c, storeId } = await wideDocument(1_500)
    const checking = c.request('POST', `/stores/${storeId}/check`, {
      tuple_key: { user: 'user:nobody', relation: 'viewer', object: 'document:big' },
    })
    const latencies = await probe(c, checking)
    const res = await checking
    // Either answer is right (a quiet machine may finish before the deadline); what matters is
    // that it is one of them, and that the probes ran meanwhile.
    if (res.status === 200) expect(res.body.allowed).toBe(false)
    else expect(res.body.code, res.text).toBe('deadline_exceeded')
    expect(latencies.length).toBeGreaterThan(0)
    // The issue states /healthz answers within 100 ms under load; on this shared two-core
    // machine it is asserted with the same slack as list-flood (max < 2 s). Before the fix one
    // such check held the loop for its whole run.
    expect(Math.max(...latencies)).toBeLessThan(2_000)
  }, 120_000)
})
