import type { Hono } from 'hono'
import { PembaError } from '../../core/errors.ts'
import { parseObject, parseSubject } from '../../core/tuple.ts'
import type { AppDeps, AppEnv } from '../app.ts'
import { writeAssertionsRequest } from '../contracts.ts'
import { tupleKeyJson } from '../serialize.ts'
import { checkModelId, checkStoreId, parseInput, parseJsonBody } from '../validation.ts'
import { validateTuple, invalidTupleMessage } from '../../model/tuple-validation.ts'

const MODEL_HEADER = 'Openfga-Authorization-Model-Id'
const MAX_ASSERTIONS_BYTES = 64_000

export function registerAssertionRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { models, datastore } = deps

  app.put('/stores/:store/assertions/:model', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const modelId = checkModelId(c.req.param('model'))
    const body = parseInput(writeAssertionsRequest, await parseJsonBody(c.req.raw), 'WriteAssertionsRequest')
    const ts = await models.resolve(storeId, modelId)
    const assertions = body.assertions.map((a) => {
      const object = parseObject(a.tuple_key.object)
      const user = parseSubject(a.tuple_key.user)
      if (!object || !user) {
        throw new PembaError('validation_error', `invalid assertion tuple key '${a.tuple_key.object}#${a.tuple_key.relation}@${a.tuple_key.user}'`)
      }
      if (!ts.relation(object.type, a.tuple_key.relation)) {
        throw new PembaError('validation_error', `relation '${object.type}#${a.tuple_key.relation}' not found`)
      }
      if (!ts.hasType(user.type) || (user.relation && !ts.relation(user.type, user.relation))) {
        throw new PembaError('validation_error', `invalid user '${a.tuple_key.user}' for this model`)
      }
      const contextualTuples = (a.contextual_tuples ?? []).map((k) => {
        const key = { ...k, condition: k.condition ? { name: k.condition.name, context: k.condition.context ?? undefined } : undefined }
        const v = validateTuple(ts, key)
        if (!v.ok) throw new PembaError('validation_error', invalidTupleMessage(key, v.reason))
        return tupleKeyJson(key)
      })
      return {
        tuple_key: { object: a.tuple_key.object, relation: a.tuple_key.relation, user: a.tuple_key.user },
        expectation: a.expectation,
        contextual_tuples: contextualTuples,
        context: a.context ?? {},
      }
    })
    if (Buffer.byteLength(JSON.stringify(assertions)) > MAX_ASSERTIONS_BYTES) {
      throw new PembaError('exceeded_entity_limit', `assertions exceed the size limit of ${MAX_ASSERTIONS_BYTES} bytes`)
    }
    await datastore.writeAssertions(storeId, modelId, assertions)
    c.header(MODEL_HEADER, modelId)
    return c.body(null, 204)
  })

  app.get('/stores/:store/assertions/:model', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const modelId = checkModelId(c.req.param('model'))
    await models.resolve(storeId, modelId)
    const assertions = (await datastore.readAssertions(storeId, modelId)) ?? []
    c.header(MODEL_HEADER, modelId)
    return c.json({ authorization_model_id: modelId, assertions })
  })
}
