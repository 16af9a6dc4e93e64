/** Small helpers to set up a store with a model (DSL) and tuples through the HTTP API. */
import { expect } from 'vitest'
import { transformer } from '@openfga/syntax-transformer'
import type { TestClient } from './client.ts'

export async function createStore(client: TestClient, name = 'test-store'): Promise<string> {
  const res = await client.request('POST', '/stores', { name })
  expect(res.status).toBe(201)
  return res.body.id
}

export async function writeModel(client: TestClient, storeId: string, dsl: string): Promise<string> {
  const model = transformer.transformDSLToJSONObject(dsl)
  const res = await client.request('POST', `/stores/${storeId}/authorization-models`, model)
  expect(res.status, res.text).toBe(201)
  return res.body.authorization_model_id
}

/** tupleKey parses `object#relation@user` into a wire tuple key. */
export function tupleKey(s: string): { object: string; relation: string; user: string } {
  const at = s.indexOf('@')
  const left = s.slice(0, at)
  const hash = left.indexOf('#')
  return { object: left.slice(0, hash), relation: left.slice(hash + 1), user: s.slice(at + 1) }
}

export async function writeTuples(client: TestClient, storeId: string, tuples: string[]): Promise<void> {
  for (let i = 0; i < tuples.length; i += 100) {
    const res = await client.request('POST', `/stores/${storeId}/write`, {
      writes: { tuple_keys: tuples.slice(i, i + 100).map(tupleKey) },
    })
    expect(res.status, res.text).toBe(200)
  }
}

/** setup creates a store, writes the model and the tuples, and returns a check helper. */
export async function setup(client: TestClient, dsl: string, tuples: string[] = []) {
  const storeId = await createStore(client)
  const modelId = await writeModel(client, storeId, dsl)
  await writeTuples(client, storeId, tuples)
  const check = async (t: string, extra: Record<string, unknown> = {}) => {
    const res = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: tupleKey(t), ...extra })
    expect(res.status, res.text).toBe(200)
    return res.body.allowed as boolean
  }
  return { storeId, modelId, check }
}
