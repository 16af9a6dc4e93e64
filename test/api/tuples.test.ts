/** Write, read and read-changes through the HTTP app. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

let client: TestClient
beforeEach(async () => {
  client = await createTestClient()
})
afterEach(async () => {
  await client.close()
})

const MODEL = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type document
  relations
    define parent: [folder]
    define viewer: [user, user:*, group#member]
    define editor: [user with in_office_hours]
    define can_view: viewer or editor
type folder
  relations
    define viewer: [user]
condition in_office_hours(hour: int) {
  hour >= 9 && hour < 17
}
`

async function readAll(storeId: string, tuple_key?: Record<string, string>) {
  const res = await client.request('POST', `/stores/${storeId}/read`, tuple_key ? { tuple_key } : {})
  expect(res.status, res.text).toBe(200)
  return res.body.tuples.map((t: { key: { object: string; relation: string; user: string } }) => `${t.key.object}#${t.key.relation}@${t.key.user}`).sort()
}

describe('write and read', () => {
  it('writes and deletes in one transaction, deletes first', async () => {
    const { storeId } = await setup(client, MODEL, ['document:1#viewer@user:anne'])
    const res = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [tupleKey('document:1#viewer@user:bob')] },
      deletes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] },
    })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({})
    expect(await readAll(storeId)).toEqual(['document:1#viewer@user:bob'])
  })

  it('validates every tuple against the model and writes nothing on error', async () => {
    const { storeId } = await setup(client, MODEL)
    const cases: [string, RegExp][] = [
      ['document:1#viewer@folder:x', /not an allowed type restriction/],
      ['document:1#nope@user:anne', /relation 'document#nope' not found/],
      ['nope:1#viewer@user:anne', /type 'nope' not found/],
      ['document:1#viewer@user', /malformed/],
      ['document:1#parent@folder:*', /not an allowed type restriction/],
      ['document:1#editor@user:anne', /condition/], // restriction requires the condition
    ]
    for (const [t, message] of cases) {
      const res = await client.request('POST', `/stores/${storeId}/write`, {
        writes: { tuple_keys: [tupleKey('document:9#viewer@user:ok'), tupleKey(t)] },
      })
      expect(res.status, t).toBe(400)
      expect(res.body.code, t).toBe('validation_error')
      expect(res.body.message, t).toMatch(message)
    }
    expect(await readAll(storeId)).toEqual([])
  })

  it('writes conditional tuples and validates their context', async () => {
    const { storeId } = await setup(client, MODEL)
    const ok = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...tupleKey('document:1#editor@user:anne'), condition: { name: 'in_office_hours', context: { hour: 10 } } }] },
    })
    expect(ok.status, ok.text).toBe(200)
    const read = await client.request('POST', `/stores/${storeId}/read`, {})
    expect(read.body.tuples[0].key.condition).toEqual({ name: 'in_office_hours', context: { hour: 10 } })
    for (const condition of [{ name: 'nope' }, { name: 'in_office_hours', context: { hour: 'ten' } }]) {
      const bad = await client.request('POST', `/stores/${storeId}/write`, {
        writes: { tuple_keys: [{ ...tupleKey('document:2#editor@user:anne'), condition }] },
      })
      expect(bad.status).toBe(400)
    }
  })

  it('implements on_duplicate and on_missing', async () => {
    const { storeId } = await setup(client, MODEL, ['document:1#viewer@user:anne'])
    const dup = await client.request('POST', `/stores/${storeId}/write`, { writes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] } })
    expect(dup.status).toBe(400)
    expect(dup.body.code).toBe('write_failed_due_to_invalid_input')
    const ignored = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')], on_duplicate: 'ignore' },
      deletes: { tuple_keys: [tupleKey('document:1#viewer@user:ghost')], on_missing: 'ignore' },
    })
    expect(ignored.status).toBe(200)
    const missing = await client.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [tupleKey('document:1#viewer@user:ghost')] } })
    expect(missing.body.code).toBe('write_failed_due_to_invalid_input')
    const badOption = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [tupleKey('document:2#viewer@user:anne')], on_duplicate: 'sometimes' },
    })
    expect(badOption.body.code).toBe('validation_error')
  })

  it('answers 409 when ignore meets the same tuple with another condition', async () => {
    const { storeId } = await setup(client, MODEL)
    const key = tupleKey('document:1#editor@user:anne')
    await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...key, condition: { name: 'in_office_hours', context: { hour: 9 } } }] },
    })
    const res = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [{ ...key, condition: { name: 'in_office_hours', context: { hour: 10 } } }], on_duplicate: 'ignore' },
    })
    expect(res.status).toBe(409)
    expect(res.body.code).toBe('Aborted')
  })

  it('rejects empty writes, duplicates in one request and more than 100 operations', async () => {
    const { storeId } = await setup(client, MODEL)
    expect((await client.request('POST', `/stores/${storeId}/write`, {})).body.code).toBe('invalid_write_input')
    const dup = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] },
      deletes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] },
    })
    expect(dup.body.code).toBe('cannot_allow_duplicate_tuples_in_one_request')
    const many = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: Array.from({ length: 101 }, (_, i) => tupleKey(`document:${i}#viewer@user:anne`)) },
    })
    expect(many.body.code).toBe('exceeded_entity_limit')
    expect(await readAll(storeId)).toEqual([])
  })

  it('reads by filter; object type only when user is set', async () => {
    const { storeId } = await setup(client, MODEL, [
      'document:1#viewer@user:anne',
      'document:2#viewer@user:anne',
      'document:2#viewer@user:bob',
      'folder:1#viewer@user:anne',
    ])
    expect(await readAll(storeId, { object: 'document:2' })).toEqual(['document:2#viewer@user:anne', 'document:2#viewer@user:bob'])
    expect(await readAll(storeId, { object: 'document:', user: 'user:anne' })).toEqual([
      'document:1#viewer@user:anne',
      'document:2#viewer@user:anne',
    ])
    expect(await readAll(storeId, { object: 'document:2', relation: 'viewer', user: 'user:bob' })).toEqual(['document:2#viewer@user:bob'])
    const bad = await client.request('POST', `/stores/${storeId}/read`, { tuple_key: { object: 'document:' } })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('validation_error')
  })

  it('pages reads with URL-safe continuation tokens', async () => {
    const tuples = Array.from({ length: 25 }, (_, i) => `document:${i}#viewer@user:anne`)
    const { storeId } = await setup(client, MODEL, tuples)
    const seen: string[] = []
    let token = ''
    let pages = 0
    do {
      const res = await client.request('POST', `/stores/${storeId}/read`, { page_size: 10, continuation_token: token })
      expect(res.status).toBe(200)
      seen.push(...res.body.tuples.map((t: { key: { object: string } }) => t.key.object))
      token = res.body.continuation_token
      expect(token).toMatch(/^[A-Za-z0-9_-]*$/)
      pages++
    } while (token)
    expect(pages).toBe(3)
    expect(new Set(seen).size).toBe(25)
    const bad = await client.request('POST', `/stores/${storeId}/read`, { continuation_token: 'eyJub3QiOiJ2YWxpZCJ9' })
    expect(bad.body.code).toBe('invalid_continuation_token')
  })

  it('records every committed change for read-changes', async () => {
    const { storeId } = await setup(client, MODEL, ['document:1#viewer@user:anne', 'folder:1#viewer@user:anne'])
    await client.request('POST', `/stores/${storeId}/write`, { deletes: { tuple_keys: [tupleKey('document:1#viewer@user:anne')] } })
    const res = await client.request('GET', `/stores/${storeId}/changes`)
    expect(res.status).toBe(200)
    expect(res.body.changes.map((c: { operation: string; tuple_key: { object: string } }) => `${c.operation} ${c.tuple_key.object}`)).toEqual([
      'TUPLE_OPERATION_WRITE document:1',
      'TUPLE_OPERATION_WRITE folder:1',
      'TUPLE_OPERATION_DELETE document:1',
    ])
    const typed = await client.request('GET', `/stores/${storeId}/changes?type=document&page_size=1`)
    expect(typed.body.changes).toHaveLength(1)
    const next = await client.request('GET', `/stores/${storeId}/changes?type=document&page_size=1&continuation_token=${typed.body.continuation_token}`)
    expect(next.body.changes[0].operation).toBe('TUPLE_OPERATION_DELETE')
    const end = await client.request('GET', `/stores/${storeId}/changes?type=document&continuation_token=${next.body.continuation_token}`)
    expect(end.body.changes).toEqual([])
    expect(end.body.continuation_token).toBe(next.body.continuation_token)
    const mismatch = await client.request('GET', `/stores/${storeId}/changes?type=folder&continuation_token=${next.body.continuation_token}`)
    expect(mismatch.body.code).toBe('query_string_type_continuation_token_mismatch')
    expect((await client.request('GET', `/stores/${storeId}/changes?page_size=101`)).body.code).toBe('page_size_invalid')
    expect((await client.request('GET', `/stores/${storeId}/changes?start_time=yesterday`)).body.code).toBe('invalid_start_time')
  })
})
