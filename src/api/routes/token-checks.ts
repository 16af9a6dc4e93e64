/**
 * Token-native checks (Pemba): a store's trusted token issuers, and check / batch-check bodies
 * that carry `subject_token` instead of `tuple_key.user`. See TokenIssuerService and
 * TokenCheckService for the rules; these handlers only parse and render.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { validationError } from '../../core/errors.ts'
import type { MixedBatchCheckItemResult, TokenCheckResult } from '../../service/token-checks.ts'
import type { QueryFacts } from '../../telemetry/request-observation.ts'
import type { TokenIssuer, TokenIssuerConfig } from '../../service/token-issuers.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { errorContext } from '../errors.ts'
import { mixedBatchCheckResultJson } from '../serialize.ts'
import { MODEL_HEADER, putTokenIssuerRequest, tokenBatchCheckRequest, tokenCheckRequest } from '../contracts.ts'
import { TOKEN_ISSUER_NAME, TOKEN_ISSUER_NAME_RULE } from '../../service/token-issuer-config.ts'
import { checkStoreId, contextual as contextualTupleKeys, formatTime, parseInput, parseJsonBody, requestMeta } from '../validation.ts'

function checkIssuerName(name: string): string {
  if (!TOKEN_ISSUER_NAME.test(name)) {
    throw validationError(`invalid token issuer name '${name}': ${TOKEN_ISSUER_NAME_RULE}`)
  }
  return name
}

function issuerJson(i: TokenIssuer): Record<string, unknown> {
  const { name, createdAt, updatedAt, ...config } = i
  return { name, ...config, created_at: formatTime(createdAt), updated_at: formatTime(updatedAt) }
}

export function registerTokenIssuerRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { tokenIssuers } = deps

  route(app, 'PUT /stores/:store/token-issuers/:name', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const name = checkIssuerName(c.req.param('name'))
    const body = parseInput(putTokenIssuerRequest, await parseJsonBody(c.req.raw), 'PutTokenIssuer')
    const r = await tokenIssuers.put(storeId, name, body as TokenIssuerConfig)
    return c.json(issuerJson(r.issuer), r.created ? 201 : 200)
  })

  route(app, 'GET /stores/:store/token-issuers', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const issuers = await tokenIssuers.list(storeId)
    return c.json({ token_issuers: issuers.map(issuerJson) })
  })

  route(app, 'GET /stores/:store/token-issuers/:name', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    return c.json(issuerJson(await tokenIssuers.get(storeId, checkIssuerName(c.req.param('name')))))
  })

  route(app, 'DELETE /stores/:store/token-issuers/:name', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    await tokenIssuers.delete(storeId, checkIssuerName(c.req.param('name')))
    return c.body(null, 204)
  })
}

/** carriesSubjectToken: is this check body (or one of this batch's items) a token check? */
export function carriesSubjectToken(body: unknown, batch = false): boolean {
  if (!body || typeof body !== 'object') return false
  if (!batch) return 'subject_token' in body
  const checks = (body as { checks?: unknown }).checks
  return Array.isArray(checks) && checks.some((ch) => !!ch && typeof ch === 'object' && 'subject_token' in ch)
}

export function tokenCheckJson(r: TokenCheckResult): Record<string, unknown> {
  const out: Record<string, unknown> = { allowed: r.allowed, resolution: '' }
  if (r.reason) out.reason = r.reason
  if (r.deniedBy) out.denied_by = r.deniedBy
  if (r.token) out.token = r.token
  if (r.explanation) out.explanation = r.explanation
  return out
}

/** POST /stores/{store}/check with `subject_token`. */
export async function tokenCheck(c: Context<AppEnv>, deps: AppDeps, storeId: string, raw: unknown): Promise<Response> {
  const body = parseInput(tokenCheckRequest, raw, 'CheckRequest')
  const observation = c.get('observation')
  observation.beginQuery('check', storeId, body.tuple_key.relation, body.tuple_key.object)
  const r = await deps.tokenChecks.check(storeId, {
    subjectToken: body.subject_token,
    relation: body.tuple_key.relation,
    object: body.tuple_key.object,
    modelId: body.authorization_model_id,
    contextualTuples: contextualTupleKeys(body.contextual_tuples?.tuple_keys),
    context: body.context ?? undefined,
    consistency: body.consistency,
    explain: body.explain ?? undefined,
  }, requestMeta(c))
  observation.endQuery(r.allowed ? 'allowed' : 'denied', r)
  c.header(MODEL_HEADER, r.modelId)
  return c.json(tokenCheckJson(r))
}

/** POST /stores/{store}/batch-check where some item carries `subject_token`. */
export async function tokenBatchCheck(c: Context<AppEnv>, deps: AppDeps, storeId: string, raw: unknown): Promise<Response> {
  const body = parseInput(tokenBatchCheckRequest, raw, 'BatchCheckRequest')
  const observation = c.get('observation')
  observation.beginQuery('batch_check', storeId)
  const r = await deps.tokenChecks.batchCheck(storeId, {
    modelId: body.authorization_model_id,
    consistency: body.consistency,
    checks: body.checks.map((ch) => ({
      correlationId: ch.correlation_id,
      tupleKey: ch.tuple_key,
      subjectToken: ch.subject_token,
      contextualTuples: contextualTupleKeys(ch.contextual_tuples?.tuple_keys),
      context: ch.context ?? undefined,
      onBehalfOf: ch.on_behalf_of ?? undefined,
      explain: ch.explain ?? undefined,
    })),
  }, requestMeta(c))
  observation.endQuery('ok', batchFacts(r), body.checks.length)
  c.header(MODEL_HEADER, r.modelId)
  return c.json({ result: mixedBatchCheckResultJson(r.result, errorContext(deps, c.get('requestId'))) })
}

/**
 * What a batch's engine work was: the dispatches of its items (identical items computed once
 * count once each; a token item refused before evaluation counts none). Both batch paths report it.
 */
export function batchFacts(r: { modelId: string; result: Record<string, MixedBatchCheckItemResult> }): QueryFacts {
  let dispatches = 0
  for (const id in r.result) {
    const item = r.result[id]
    if (item.ok && 'output' in item) dispatches += item.output.dispatches
  }
  return { modelId: r.modelId, dispatches }
}
