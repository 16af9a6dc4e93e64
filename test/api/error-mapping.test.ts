/**
 * The one error path (src/api/errors.ts): every answer that quotes the caller's input goes
 * through the configured redactor, so a configured preshared key placed in a request never
 * comes back, whether in a plain error, a batch-check item's error (token items too), or the
 * error line that ends a streamed list; the write rules' refusals keep OpenFGA's wire answers.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { PembaError, TupleWriteRejected } from '../../src/core/errors.ts'
import { createRedactor, REDACTED } from '../../src/core/redact.ts'
import { batchItemError, wireError, type ErrorContext } from '../../src/api/errors.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

// Long enough to be redacted by value, and shaped so that nothing but its configured value hides it.
const PRESHARED = 'psk-0123456789abcdef-secret'
const AUTH = { authorization: `Bearer ${PRESHARED}` }
const MODEL = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n'

function context(logged: unknown[] = []): ErrorContext {
  return { redact: createRedactor([PRESHARED]).text, logError: (err) => void logged.push(err), requestId: 'r1' }
}

describe('wireError and batchItemError', () => {
  const tuple = { objectType: 'doc', objectId: '1', relation: 'viewer', userType: 'user', userId: 'anne', userRelation: '' }

  it("map the write rules' refusals to OpenFGA's answers", () => {
    const wire = (reason: TupleWriteRejected['reason']) => wireError(new TupleWriteRejected(reason, tuple), context())
    const about = "user: 'user:anne', relation: 'viewer', object: 'doc:1'"
    const invalid = 'tuple to be written already existed or the tuple to be deleted did not exist'
    expect(wire('delete_missing')).toEqual({
      status: 400,
      body: { code: 'write_failed_due_to_invalid_input', message: `cannot delete a tuple which does not exist: ${about}: ${invalid}` },
    })
    expect(wire('write_existing')).toEqual({
      status: 400,
      body: { code: 'write_failed_due_to_invalid_input', message: `cannot write a tuple which already exists: ${about}: ${invalid}` },
    })
    expect(wire('different_condition')).toEqual({
      status: 409,
      body: { code: 'Aborted', message: `tuple to be written already existed with a different condition: ${about}` },
    })
    expect(wire('different_expiry')).toEqual({
      status: 409,
      body: { code: 'Aborted', message: `tuple to be written already existed with a different expiry: ${about}` },
    })
  })

  it('redact with the configured redactor, and log a fault without answering its detail', () => {
    const logged: unknown[] = []
    const fault = new Error(`broken ${PRESHARED}`)
    expect(wireError(new PembaError('validation_error', `bad '${PRESHARED}'`), context(logged))).toEqual({
      status: 400,
      body: { code: 'validation_error', message: `bad '${REDACTED}'` },
    })
    expect(wireError(fault, context(logged))).toEqual({ status: 500, body: { code: 'internal_error', message: 'Internal Server Error' } })
    expect(logged).toEqual([fault])
    expect(batchItemError(new PembaError('type_not_found', `type '${PRESHARED}'`), context())).toEqual({
      input_error: 'type_not_found',
      message: `type '${REDACTED}'`,
    })
    expect(batchItemError(new PembaError('deadline_exceeded', 'too slow'), context())).toEqual({ internal_error: 'deadline_exceeded', message: 'too slow' })
    expect(batchItemError(fault, context())).toEqual({ internal_error: 'internal_error', message: 'Internal Server Error' })
  })
})

describe('over HTTP, with a configured preshared key', () => {
  let client: TestClient
  let storeId: string
  const faults: unknown[] = []
  const post = (path: string, body: unknown) => client.request('POST', `/stores/${storeId}${path}`, body, AUTH)
  const noKey = (text: string) => {
    expect(text).not.toContain(PRESHARED)
    expect(text).toContain(REDACTED)
  }

  beforeAll(async () => {
    client = await createTestClient({ authPresharedKeys: `ci=${PRESHARED}` }, { logError: (err) => void faults.push(err), sweeper: false })
    // setup() sends no credentials: create the store with them, then the model and a tuple.
    const store = await client.request('POST', '/stores', { name: 'redacted' }, AUTH)
    expect(store.status, store.text).toBe(201)
    storeId = store.body.id
    const model = await client.request('POST', `/stores/${storeId}/authorization-models`, MODEL, { ...AUTH, 'content-type': 'text/plain' })
    expect(model.status, model.text).toBe(201)
    expect((await post('/write', { writes: { tuple_keys: [tupleKey('doc:1#viewer@user:anne')] } })).status).toBe(200)
  })
  afterAll(() => client.close())

  // The key is planted as the relation: a user or object holding it is refused without being
  // quoted at all (test/faults/secret-leaks.test.ts), a relation is quoted and redacted.
  it('a plain error answer', async () => {
    const r = await post('/check', { tuple_key: { user: 'user:anne', relation: PRESHARED, object: 'doc:1' } })
    expect(r.status).toBe(400)
    noKey(r.body.message)
  })

  it("a batch-check item's error", async () => {
    const r = await post('/batch-check', {
      checks: [
        { tuple_key: { user: 'user:anne', relation: PRESHARED, object: 'doc:1' }, correlation_id: 'a' },
        { tuple_key: tupleKey('doc:1#viewer@user:anne'), correlation_id: 'b' },
      ],
    })
    expect(r.status, r.text).toBe(200)
    expect(r.body.result.b).toEqual({ allowed: true })
    expect(r.body.result.a.error.input_error).toBeDefined()
    noKey(r.body.result.a.error.message)
  })

  it("a token batch-check item's error", async () => {
    const r = await post('/batch-check', {
      checks: [{ tuple_key: { relation: 'viewer', object: PRESHARED }, subject_token: 'not-a-token', correlation_id: 'a' }],
    })
    expect(r.status, r.text).toBe(200)
    expect(r.body.result.a.error.input_error).toBe('validation_error')
    noKey(r.body.result.a.error.message)
  })

  it('the error line that ends a streamed list, and a fault there is logged, not answered', async () => {
    const listObjects = vi.spyOn(client.pemba.lists, 'listObjects')
    try {
      for (const [thrown, answered] of [
        [new PembaError('validation_error', `condition failed for '${PRESHARED}'`), `condition failed for '${REDACTED}'`],
        [new Error(`database down: ${PRESHARED}`), 'Internal Server Error'],
      ] as const) {
        listObjects.mockImplementationOnce(async (_store, _input, onObject) => {
          onObject?.('doc:1')
          // After the first line is out: the error can only end the stream.
          await new Promise((resolve) => setTimeout(resolve, 5))
          throw thrown
        })
        faults.length = 0
        const r = await post('/streamed-list-objects', { type: 'doc', relation: 'viewer', user: 'user:anne' })
        expect(r.status).toBe(200)
        expect(r.text).not.toContain(PRESHARED)
        const lines = r.text.trim().split('\n').map((l) => JSON.parse(l))
        expect(lines).toEqual([{ result: { object: 'doc:1' } }, { error: { code: 2, message: answered, details: [] } }])
        expect(faults).toEqual(thrown instanceof PembaError ? [] : [thrown])
      }
    } finally {
      listObjects.mockRestore()
    }
  })
})
