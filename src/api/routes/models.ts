/**
 * Writing, listing and reading authorization models; see ModelService.
 *
 * @module
 */
import type { Hono } from 'hono'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { listQuery, writeModelRequest } from '../contracts.ts'
import { modelJson } from '../serialize.ts'
import { checkModelId, checkStoreId, decodeToken, encodeToken, mediaTypeEssence, parseInput, parseJsonBody, queryParams } from '../validation.ts'

const DSL_HINT =
  "to send the model in OpenFGA's DSL, use Content-Type: text/plain (with curl: -H 'Content-Type: text/plain' --data-binary @model.fga)"

export function registerModelRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { models } = deps

  /**
   * Accepts OpenFGA's JSON, or the DSL itself with `Content-Type: text/plain` (Pemba's
   * addition, so `curl --data-binary @model.fga` works without a transformer on the client).
   * A body that is not JSON gets a hint: it is most often the DSL sent with curl's default
   * `application/x-www-form-urlencoded` (and `-d @model.fga` drops the line breaks too), which
   * is refused with 415 as on every JSON endpoint. A `text/plain` body is a "simple" request a
   * web page may send to another origin without a preflight; the cross-origin write refusal
   * (cors.ts) is what keeps such a page from writing a model.
   */
  route(app, 'POST /stores/:store/authorization-models', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const contentType = c.req.header('content-type') ?? ''
    const raw = mediaTypeEssence(contentType) === 'text/plain' ? models.parseDSL(await c.req.text()) : await parseJsonBody(c.req.raw, DSL_HINT)
    const input = parseInput(writeModelRequest, raw, 'WriteAuthorizationModelRequest')
    const id = await models.write(storeId, input)
    return c.json({ authorization_model_id: id }, 201)
  })

  route(app, 'GET /stores/:store/authorization-models', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const q = parseInput(listQuery, queryParams(c.req.url), 'ReadAuthorizationModelsRequest')
    const page = await models.list(storeId, {
      pageSize: q.page_size ?? 50,
      after: decodeToken(q.continuation_token, 'models'),
    })
    return c.json({
      authorization_models: page.items.map(modelJson),
      continuation_token: encodeToken(page.next, 'models'),
    })
  })

  route(app, 'GET /stores/:store/authorization-models/:id', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const id = checkModelId(c.req.param('id'))
    const model = await models.read(storeId, id)
    return c.json({ authorization_model: modelJson(model) })
  })
}
