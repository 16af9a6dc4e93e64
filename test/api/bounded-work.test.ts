/**
 * Pathological models and tuple sets end with the documented answer instead of running
 * unbounded: deep chains and wide fan-out hit the resolution limits (400
 * `authorization_model_resolution_too_complex`), expensive conditions hit the CEL cost budget
 * (400 `validation_error`), list calls stop at PEMBA_LIST_MAX_RESULTS or PEMBA_LIST_DEADLINE_MS
 * and say so (`truncated`), and a check past PEMBA_CHECK_DEADLINE_MS answers OpenFGA's
 * `deadline_exceeded`. Assertions are on the answers only, never on how long they took.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

const MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type team
  relations
    define member: [user]
type folder
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent
type doc
  relations
    define viewer: [team#member]
    define reader: [user with all_positive]
    define matcher: [user with matches_pattern]
condition all_positive(xs: list<int>) {
  xs.all(x, x > 0)
}
condition matches_pattern(s: string, pattern: string) {
  s.matches(pattern)
}
`

const DEPTH = 40
const FAN_OUT = 2000

function tuples(): string[] {
  const out: string[] = []
  // group:0 ⊃ group:1 ⊃ … ⊃ group:40 ∋ user:deep, and folder:0 ← folder:1 ← … ← folder:40 (viewer user:deep)
  for (let i = 0; i < DEPTH; i++) out.push(`group:${i}#member@group:${i + 1}#member`)
  out.push(`group:${DEPTH}#member@user:deep`)
  for (let i = 0; i < DEPTH; i++) out.push(`folder:${i}#parent@folder:${i + 1}`)
  out.push(`folder:${DEPTH}#viewer@user:deep`)
  // doc:wide is viewable by 2000 teams, none of which has a member.
  for (let i = 0; i < FAN_OUT; i++) out.push(`doc:wide#viewer@team:${i}#member`)
  return out
}

const TOO_COMPLEX = 'authorization_model_resolution_too_complex'

describe('pathological requests end with their documented answer', () => {
  let client: TestClient
  let storeId: string
  const post = (path: string, body: unknown) => client.request('POST', `/stores/${storeId}/${path}`, body)

  beforeAll(async () => {
    // A low dispatch budget makes the fan-out pathological without a huge data set; no cache,
    // so every request does its own work.
    client = await createTestClient({ maxDispatchesPerRequest: 1000, checkCacheSize: 0, tupleCacheSize: 0 })
    storeId = (await setup(client, MODEL, tuples())).storeId
    const res = await post('write', {
      writes: {
        tuple_keys: [
          { ...tupleKey('doc:costly#reader@user:s'), condition: { name: 'all_positive' } },
          { ...tupleKey('doc:pattern#matcher@user:s'), condition: { name: 'matches_pattern' } },
        ],
      },
    })
    expect(res.status, res.text).toBe(200)
  })
  afterAll(() => client.close())

  it('a nested-group chain deeper than the resolve node limit is too complex, not a stack overflow', async () => {
    const res = await post('check', { tuple_key: tupleKey('group:0#member@user:deep') })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe(TOO_COMPLEX)
    // Within the limit the same chain is answered.
    const near = await post('check', { tuple_key: tupleKey(`group:${DEPTH - 10}#member@user:deep`) })
    expect(near.status).toBe(200)
    expect(near.body.allowed).toBe(true)
  })

  it('a tuple-to-userset chain deeper than the limit is too complex', async () => {
    const res = await post('check', { tuple_key: tupleKey('folder:0#viewer@user:deep') })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe(TOO_COMPLEX)
  })

  it('wide fan-out past PEMBA_MAX_DISPATCHES_PER_REQUEST is too complex, for check and list-users', async () => {
    const check = await post('check', { tuple_key: tupleKey('doc:wide#viewer@user:nobody') })
    expect(check.status).toBe(400)
    expect(check.body.code).toBe(TOO_COMPLEX)
    // Listing the 2000 team usersets means confirming each one: past the budget too.
    const usersets = await post('list-users', {
      object: { type: 'doc', id: 'wide' },
      relation: 'viewer',
      user_filters: [{ type: 'team', relation: 'member' }],
    })
    expect(usersets.status).toBe(400)
    expect(usersets.body.code).toBe(TOO_COMPLEX)
    // Users are found a level at a time, one read per level: the same fan-out fits the budget.
    const users = await post('list-users', {
      object: { type: 'doc', id: 'wide' },
      relation: 'viewer',
      user_filters: [{ type: 'user' }],
    })
    expect(users.status).toBe(200)
    expect(users.body).toEqual({ users: [] })
  })

  it('a batch of pathological checks answers each with its error, and the batch itself succeeds', async () => {
    const checks = Array.from({ length: 50 }, (_, i) => ({
      tuple_key: tupleKey(i % 2 ? 'doc:wide#viewer@user:nobody' : 'folder:0#viewer@user:deep'),
      correlation_id: `c${i}`,
    }))
    const res = await post('batch-check', { checks })
    expect(res.status).toBe(200)
    for (let i = 0; i < 50; i++) {
      expect(res.body.result[`c${i}`].error.input_error).toBe(TOO_COMPLEX)
    }
  })

  it('a condition over a huge context list runs out of its CEL cost budget: 400', async () => {
    const xs = Array.from({ length: 50_000 }, (_, i) => i + 1)
    const res = await post('check', { tuple_key: tupleKey('doc:costly#reader@user:s'), context: { xs } })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('validation_error')
    expect(res.body.message).toMatch(/cost limit exceeded/)
    // The same condition over a short list is answered.
    const ok = await post('check', { tuple_key: tupleKey('doc:costly#reader@user:s'), context: { xs: [1, 2, 3] } })
    expect(ok.body).toEqual({ allowed: true, resolution: '' })
  })

  it('a backtracking-prone pattern supplied in the context is cut by the cost budget (no ReDoS)', async () => {
    const res = await post('check', {
      tuple_key: tupleKey('doc:pattern#matcher@user:s'),
      context: { s: 'a'.repeat(5000) + '!', pattern: '^(a|a)*$' },
    })
    expect(res.status).toBe(400)
    expect(res.body.message).toMatch(/cost limit exceeded/)
  })

  it('list-objects only lists objects that check confirms (depth-limited ones included)', async () => {
    // list-objects confirms candidates one after another with one memo, so folder:0 is
    // "confirmed" on the back of folder:1's memoised answer, although check of folder:0 alone
    // exceeds the resolve node limit. Every listed object must be one check allows.
    const res = await post('list-objects', { type: 'folder', relation: 'viewer', user: 'user:deep' })
    if (res.status === 400) {
      expect(res.body.code).toBe(TOO_COMPLEX)
      return
    }
    expect(res.status).toBe(200)
    for (const object of res.body.objects as string[]) {
      const check = await post('check', { tuple_key: { object, relation: 'viewer', user: 'user:deep' } })
      expect({ object, status: check.status, body: check.body }).toEqual({
        object,
        status: 200,
        body: { allowed: true, resolution: '' },
      })
    }
  })
})

describe('list and check budgets', () => {
  const OBJECTS = 3000
  let dsl: string
  let objectTuples: string[]
  beforeAll(() => {
    dsl = 'model\n  schema 1.1\ntype user\ntype team\n  relations\n    define member: [user]\ntype doc\n  relations\n    define viewer: [user, team#member]\n'
    objectTuples = Array.from({ length: OBJECTS }, (_, i) => `doc:${i}#viewer@user:anne`)
  })

  it('list-objects and list-users stop at PEMBA_LIST_MAX_RESULTS and say so', async () => {
    const client = await createTestClient({ listMaxResults: 10 })
    try {
      const { storeId } = await setup(client, dsl, [...objectTuples.slice(0, 50), ...Array.from({ length: 50 }, (_, i) => `doc:0#viewer@user:u${i}`)])
      const objects = await client.request('POST', `/stores/${storeId}/list-objects`, { type: 'doc', relation: 'viewer', user: 'user:anne' })
      expect(objects.status).toBe(200)
      expect(objects.body.objects).toHaveLength(10)
      expect(objects.body.truncated).toBe('max_results')
      expect(objects.headers.get('pemba-result-truncated')).toBe('max_results')
      const users = await client.request('POST', `/stores/${storeId}/list-users`, {
        object: { type: 'doc', id: '0' },
        relation: 'viewer',
        user_filters: [{ type: 'user' }],
      })
      expect(users.status).toBe(200)
      expect(users.body.users).toHaveLength(10)
      expect(users.body.truncated).toBe('max_results')
    } finally {
      await client.close()
    }
  })

  it('list-objects past PEMBA_LIST_DEADLINE_MS answers what it has, marked truncated: deadline', async () => {
    // 1 ms cannot cover confirming 3000 objects one by one.
    const client = await createTestClient({ listDeadlineMs: 1, checkCacheSize: 0, tupleCacheSize: 0 })
    try {
      const { storeId } = await setup(client, dsl, objectTuples)
      const res = await client.request('POST', `/stores/${storeId}/list-objects`, { type: 'doc', relation: 'viewer', user: 'user:anne' })
      expect(res.status).toBe(200)
      expect(res.body.truncated).toBe('deadline')
      expect(res.body.objects.length).toBeLessThan(OBJECTS)
    } finally {
      await client.close()
    }
  })

  it('a check past PEMBA_CHECK_DEADLINE_MS answers deadline_exceeded (OpenFGA: 500, code 4004)', async () => {
    // 3000 team usersets to try one by one, none with a member, and a 1 ms budget.
    const client = await createTestClient({ checkDeadlineMs: 1, checkCacheSize: 0, tupleCacheSize: 0 })
    try {
      const teams = Array.from({ length: OBJECTS }, (_, i) => `doc:wide#viewer@team:${i}#member`)
      const { storeId } = await setup(client, dsl, teams)
      const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey('doc:wide#viewer@user:nobody') })
      expect(res.body).toEqual({ code: 'deadline_exceeded', message: 'Request Deadline Exceeded' })
      expect(res.status).toBe(500)
    } finally {
      await client.close()
    }
  })
})
