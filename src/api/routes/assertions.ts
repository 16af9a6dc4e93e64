/**
 * A model's assertions: written whole and read back; AssertionService checks them against the model.
 *
 * @module
 */
import type { Hono } from 'hono'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { MODEL_HEADER, writeAssertionsRequest } from '../contracts.ts'
import { checkModelId, checkStoreId, contextual, parseInput, parseJsonBody } from '../validation.ts'

export function registerAssertionRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { assertions } = deps

  route(app, 'PUT /stores/:store/assertions/:model', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const modelId = checkModelId(c.req.param('model'))
    const body = parseInput(writeAssertionsRequest, await parseJsonBody(c.req.raw), 'WriteAssertionsRequest')
    await assertions.write(
      storeId,
      modelId,
      body.assertions.map((a) => ({
        tupleKey: a.tuple_key,
        expectation: a.expectation,
        contextualTuples: contextual(a.contextual_tuples) ?? [],
        context: a.context ?? undefined,
      })),
    )
    c.header(MODEL_HEADER, modelId)
    return c.body(null, 204)
  })

  route(app, 'GET /stores/:store/assertions/:model', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const modelId = checkModelId(c.req.param('model'))
    const stored = await assertions.read(storeId, modelId)
    c.header(MODEL_HEADER, modelId)
    return c.json({ authorization_model_id: modelId, assertions: stored })
  })
}
