/**
 * Endpoints the web console (docs/console.md) needs beyond OpenFGA's API, usable by any client:
 *
 * - `GET /stores/{store}/summary`: a store with its model count, latest model, live tuple
 *   count (up to a cap) and last change (the stores page);
 * - `POST /models/validate`: a draft model in the DSL checked by the rules a write applies,
 *   every problem with its line and column, nothing stored (the model editor);
 * - `POST /models/dsl`: a stored model's JSON written as DSL (the model page, the diff).
 *
 * The model endpoints name no store: they read and write nothing, so any authenticated client
 * may call them; their work (parsing, validating, compiling a model of up to the size limit) is
 * CPU-bound, so they are admission-controlled (`expensive` in the route table), as the summary is.
 *
 * @module
 */
import type { Hono } from 'hono'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { modelToDslRequest, validateModelRequest, writeModelRequest } from '../contracts.ts'
import { storeJson } from '../serialize.ts'
import { errorContext } from '../errors.ts'
import { checkStoreId, formatTime, parseInput, parseJsonBody } from '../validation.ts'

export function registerConsoleSupportRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { stores, models } = deps

  route(app, 'GET /stores/:store/summary', async (c) => {
    const id = checkStoreId(c.req.param('store'))
    const { store, stats } = await stores.summary(id)
    return c.json({
      ...storeJson(store, false),
      model_count: stats.modelCount,
      latest_model_id: stats.latestModelId ?? null,
      tuple_count: stats.tupleCount,
      tuple_count_capped: stats.tupleCountCapped,
      last_change_at: stats.lastChangeAt ? formatTime(stats.lastChangeAt) : null,
    })
  })

  route(app, 'POST /models/validate', async (c) => {
    const body = parseInput(validateModelRequest, await parseJsonBody(c.req.raw), 'ValidateModelRequest')
    // The model is read as the write endpoint's contract reads it (defaults, patterns, counts)
    // and then checked by write's own checks: `valid` means that writing this DSL is accepted.
    const { model, errors } = models.validateDSL(body.dsl, (m) => parseInput(writeModelRequest, m, 'WriteAuthorizationModelRequest'))
    // The messages quote the text, as every error message does: redacted as those are.
    const { redact } = errorContext(deps, c.get('requestId'))
    return c.json({
      valid: model !== undefined,
      authorization_model: model ?? null,
      errors: errors.map((e) => ({ ...e, message: redact(e.message) })),
    })
  })

  route(app, 'POST /models/dsl', async (c) => {
    const body = parseInput(modelToDslRequest, await parseJsonBody(c.req.raw), 'ModelToDslRequest')
    return c.json({ dsl: models.toDSL(body.authorization_model) })
  })
}
