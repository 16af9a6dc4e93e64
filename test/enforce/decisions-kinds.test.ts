/**
 * Remote and embedded clients classify Pemba's failures the same way (reviewer E, M3): a
 * question Pemba refuses (4xx) is DecisionRejected in both; a question Pemba fails on (a 5xx:
 * `deadline_exceeded` past PEMBA_CHECK_DEADLINE_MS) is DecisionUnavailable of kind
 * `server_error` in both, never `network`/`timeout` (the kinds a fail-open enforcement point
 * opens on), so a caller who picks an expensive object cannot make a fail-open point let it in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DecisionRejected, DecisionUnavailable, FAIL_OPEN_KINDS, type DecisionClient } from '../../src/enforce/decisions.ts'
import { embeddedDecisions } from '../../src/enforce/embedded.ts'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import { serveHttp, type HttpClient } from '../authzen/core-fixture.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'

/** 3000 team usersets without a member to try one by one: far past a 1 ms check budget. */
const WIDE_MODEL = 'model\n  schema 1.1\ntype user\ntype team\n  relations\n    define member: [user]\ntype doc\n  relations\n    define viewer: [user, team#member]\n'
const TEAMS = Array.from({ length: 3000 }, (_, i) => `doc:wide#viewer@team:${i}#member`)

let pemba: HttpClient
let storeId: string

beforeAll(async () => {
  pemba = await serveHttp({ checkDeadlineMs: 1, checkCacheSize: 0, tupleCacheSize: 0 })
  storeId = await createStore(pemba, 'kinds')
  await writeModel(pemba, storeId, WIDE_MODEL)
  await writeTuples(pemba, storeId, TEAMS)
})
afterAll(async () => {
  await pemba?.close()
})

const slow = { subject: { type: 'user', id: 'nobody' }, action: { name: 'viewer' }, resource: { type: 'doc', id: 'wide' } }

describe.each([
  ['remote', (): DecisionClient => remoteDecisions({ url: pemba.url, storeId })],
  ['embedded', (): DecisionClient => embeddedDecisions(pemba.pemba, storeId)],
] as const)('%s decisions', (_mode, client) => {
  it('a question past its deadline is DecisionUnavailable of kind server_error, which never opens', async () => {
    const e = await client().evaluate(slow).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DecisionUnavailable)
    expect((e as DecisionUnavailable).kind).toBe('server_error')
    expect((e as Error).message).toMatch(/deadline|HTTP 500/i)
    expect(FAIL_OPEN_KINDS.has((e as DecisionUnavailable).kind)).toBe(false)
  })

  it('a question Pemba refuses (a relation the model lacks) is DecisionRejected with its 4xx', async () => {
    const e = await client().evaluate({ ...slow, action: { name: 'nope' } }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(DecisionRejected)
    expect((e as DecisionRejected).status).toBe(400)
  })
})
